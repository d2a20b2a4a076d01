#!/usr/bin/env python3
"""Builds the Linux baseline of the net bench: Debian 12's Linux 6.1 kernel
(the package's bzImage's kernel, unchanged, uncompressed
to boot faster) and an initramfs that meets the bench
image contract (README, network section): a UDP echo server on port 7 at
10.0.2.15/24, peer 10.0.2.2, on the RTL8139 (8139cp) or virtio-net-pci
(virtio_net), whichever the machine has, printing `net: address
10.0.2.15/24 (static)` when it echoes. bench/net/run.py boots it with the
same QEMU command, wire, load and plugin as the seL4 images.

Everything third-party is fetched at build time with `apt-get download`,
by the exact versions pinned below, and unpacked with `dpkg-deb -x`:
nothing is committed. The initramfs holds busybox (busybox-static, for
/init's shell, insmod and ip), the NIC modules and their dependencies
(from their .modinfo), and bench/linux/udp-echo.c compiled
static with the host's gcc. Written to OUT: vmlinux, initramfs.cpio,
cmdline (the kernel command line run.py passes) and version.
"""
import argparse
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# The one place the versions are pinned (Debian 12 "bookworm"; the kernel
# comes from bookworm-security). A version the archive no longer carries
# fails the download with a message naming this line.
KERNEL_ABI = "6.1.0-57-amd64"
PACKAGES = {
    "kernel": ("linux-image-6.1.0-57-amd64-unsigned", "6.1.192-3"),
    "busybox": ("busybox-static", "1:1.35.0-4+deb12u1+b1"),
}
# The NIC drivers the image loads (each with the modules its .modinfo
# names; virtio_pci is virtio-net-pci's transport); a driver whose device
# is absent loads and stays idle. The RTL8139's is 8139cp, not 8139too:
# QEMU's RTL8139 is revision 0x20, a C+ chip, which 8139too's probe
# refuses ("is an enhanced 8139C+ chip, use 8139cp").
DRIVERS = ["8139cp", "virtio_net", "virtio_pci"]
# idle=halt: the idle loop is `hlt`, as seL4's, so the plugin's busy-period
# accounting (a period ends at a kernel hlt) sees Linux's idle the same
# way. nohz=on: the tick stops while idle, so an idle guest runs (almost)
# no timer ticks. mitigations=off: no speculative-execution workarounds
# (seL4's build has none either), Linux's fastest syscall path.
CMDLINE = "console=ttyS0 quiet panic=-1 idle=halt nohz=on mitigations=off"


def say(msg):
    print(f"[bench/linux] {msg}", flush=True)


def fail(msg):
    sys.exit(f"bench/linux/build.py: error: {msg}")


def run(cmd, what, **kw):
    try:
        return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        fail(f"{what}: {cmd[0]} not found (Debian: apt-get install {TOOLS.get(cmd[0], cmd[0])})")
    except subprocess.CalledProcessError as e:
        fail(f"{what} failed (exit {e.returncode}): {' '.join(cmd)}\n{e.stdout}{e.stderr}".rstrip())


TOOLS = {"apt-get": "apt", "dpkg-deb": "dpkg", "cpio": "cpio", "gcc": "gcc", "xz": "xz-utils", "zstd": "zstd"}


def download(dl, name, version):
    """The .deb of `name` at `version` in `dl` (downloaded once)."""
    arch_version = version.split(":", 1)[-1]
    deb = os.path.join(dl, f"{name}_{arch_version}_amd64.deb")
    if os.path.exists(deb):
        return deb
    say(f"downloading {name}={version} (apt-get download)")
    os.makedirs(dl, exist_ok=True)
    try:
        r = subprocess.run(["apt-get", "download", f"{name}={version}"], cwd=dl,
                           capture_output=True, text=True)
    except FileNotFoundError:
        fail("apt-get not found: the Linux baseline needs a Debian host (or its .debs in " + dl + ")")
    # apt-get names the file with the epoch's colon escaped.
    got = os.path.join(dl, f"{name}_{version.replace(':', '%3a')}_amd64.deb")
    if r.returncode != 0 or not os.path.exists(got):
        fail(f"apt-get download {name}={version} failed (exit {r.returncode}): {r.stderr.strip()}\n"
             f"  is the Debian archive reachable (apt-get update)? The version is pinned in "
             f"bench/linux/build.py, PACKAGES; `apt-cache policy {name}` shows what the archive has.")
    os.replace(got, deb)
    return deb


def unpack(deb, into):
    if os.path.isdir(into):
        shutil.rmtree(into)
    run(["dpkg-deb", "-x", deb, into], f"unpacking {os.path.basename(deb)}")


def modinfo(path):
    """The `key=value` strings of module `path`'s .modinfo section (ELF64)."""
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:5] != b"\x7fELF\x02":
        fail(f"{path}: not an ELF64 module")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(i):
        name, _, _, _, off, size = struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        if elf[stroff + name:elf.index(b"\0", stroff + name)] == b".modinfo":
            info = {}
            for kv in elf[off:off + size].split(b"\0"):
                k, sep, v = kv.decode("utf-8", "replace").partition("=")
                if sep:
                    info[k] = v
            return info
    fail(f"{path}: no .modinfo section")


def modules(tree):
    """The module files DRIVERS need, in load order (dependencies first,
    from each module's .modinfo `depends`: the package ships no
    modules.dep, depmod writes it on installation)."""
    base = os.path.join(tree, "lib", "modules", KERNEL_ABI)
    if not os.path.isdir(base):
        fail(f"{base} missing: is {PACKAGES['kernel'][0]} the kernel for ABI {KERNEL_ABI}?")
    by_name = {}
    for d, _, files in os.walk(base):
        for f in files:
            if ".ko" in f:
                by_name[f.split(".ko")[0].replace("-", "_")] = os.path.join(d, f)
    order = []

    def add(name, chain):
        if name not in by_name:
            fail(f"no module {name} under {base} (built in? see boot/config-{KERNEL_ABI}); "
                 f"needed by {' <- '.join(reversed(chain)) or 'DRIVERS'}")
        path = by_name[name]
        if path in order:
            return
        if name in chain:
            fail(f"module dependency cycle: {' -> '.join(chain + [name])}")
        with tempfile.NamedTemporaryFile(suffix=".ko") as plain:
            decompressed(path, plain.name)
            depends = modinfo(plain.name).get("depends", "")
        for dep in filter(None, depends.split(",")):
            add(dep.replace("-", "_"), chain + [name])
        order.append(path)

    for drv in DRIVERS:
        add(drv, [])
    return order


def decompressed(src, dst):
    """Copies module `src` to `dst` (.ko), decompressing .ko.xz / .ko.zst:
    busybox insmod loads plain .ko files."""
    if src.endswith(".ko"):
        shutil.copyfile(src, dst)
    elif src.endswith(".ko.xz"):
        with open(dst, "wb") as out:
            subprocess.run(["xz", "-dc", src], stdout=out, check=True)
    elif src.endswith(".ko.zst"):
        with open(dst, "wb") as out:
            subprocess.run(["zstd", "-dc", src], stdout=out, check=True)
    else:
        fail(f"{src}: not a .ko, .ko.xz or .ko.zst module")


INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
exec >/dev/console 2>&1 </dev/null
mount -t proc proc /proc
mount -t sysfs sys /sys
while read -r m; do
    insmod "/lib/modules/$m" || echo "linux-bench: insmod $m failed"
done </lib/modules/order
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -e /sys/class/net/eth0 ]; then
    echo "linux-bench: no eth0 (neither an RTL8139 nor a virtio-net-pci?); links: $(ls /sys/class/net)"
    echo "linux-bench: modules: $(cut -d' ' -f1 /proc/modules | tr '\\n' ' ')"; dmesg | tail -20; exit 1
fi
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
echo "linux-bench: $(uname -r) on $(basename "$(readlink /sys/class/net/eth0/device/driver)")," \\
     "cmdline: $(cat /proc/cmdline)"
exec /bin/udp-echo
"""


def vmlinux(bzimage, out):
    """The kernel ELF inside `bzimage` (its xz payload, unpacked): QEMU's
    -kernel boots it through its PVH note, skipping the decompressor,
    which under TCG takes about as long as the rest of the boot."""
    with open(bzimage, "rb") as f:
        data = f.read()
    at = data.find(b"\xfd7zXZ\x00")
    if at < 0:
        fail(f"{bzimage}: no xz payload (the config's CONFIG_KERNEL_XZ changed?)")
    try:
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
    except lzma.LZMAError as e:
        fail(f"{bzimage}: xz payload at offset {at}: {e}")
    if elf[:4] != b"\x7fELF":
        fail(f"{bzimage}: the xz payload at offset {at} is not an ELF")
    with open(out, "wb") as f:
        f.write(elf)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (e.g. build/linux)")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    dl = os.path.join(out, "dl")
    debs = {k: download(dl, *v) for k, v in PACKAGES.items()}
    say(f"unpacking {os.path.basename(debs['kernel'])} and {os.path.basename(debs['busybox'])}")
    kernel_tree = os.path.join(out, "kernel-pkg")
    busybox_tree = os.path.join(out, "busybox-pkg")
    unpack(debs["kernel"], kernel_tree)
    unpack(debs["busybox"], busybox_tree)
    vmlinuz = os.path.join(kernel_tree, "boot", f"vmlinuz-{KERNEL_ABI}")
    if not os.path.exists(vmlinuz):
        fail(f"{vmlinuz} missing from {os.path.basename(debs['kernel'])}")
    busybox = os.path.join(busybox_tree, "bin", "busybox")
    if not os.path.exists(busybox):
        fail(f"{busybox} missing from {os.path.basename(debs['busybox'])}")

    root = os.path.join(out, "root")
    if os.path.isdir(root):
        shutil.rmtree(root)
    for d in ("bin", "dev", "proc", "sys", "lib/modules"):
        os.makedirs(os.path.join(root, d))
    shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
    names = []
    for mod in modules(kernel_tree):
        name = os.path.basename(mod).split(".ko")[0] + ".ko"
        decompressed(mod, os.path.join(root, "lib", "modules", name))
        names.append(name)
    with open(os.path.join(root, "lib", "modules", "order"), "w") as f:
        f.write("".join(n + "\n" for n in names))
    say(f"modules, in load order: {' '.join(names)}")
    say("compiling bench/linux/udp-echo.c (static)")
    run(["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", os.path.join(root, "bin", "udp-echo"),
         os.path.join(HERE, "udp-echo.c")], "compiling udp-echo.c")
    init = os.path.join(root, "init")
    with open(init, "w") as f:
        f.write(INIT)
    os.chmod(init, 0o755)

    cpio = os.path.join(out, "initramfs.cpio")
    say(f"writing {cpio} (cpio newc)")
    files = sorted(os.path.relpath(os.path.join(d, n), root)
                   for d, dirs, fs in os.walk(root) for n in dirs + fs)
    run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "-O", cpio + ".tmp"], "writing the initramfs",
        cwd=root, input="".join(f + "\n" for f in files))
    os.replace(cpio + ".tmp", cpio)
    vmlinux(vmlinuz, os.path.join(out, "vmlinux"))
    with open(os.path.join(out, "cmdline"), "w") as f:
        f.write(CMDLINE + "\n")
    with open(os.path.join(out, "version"), "w") as f:
        f.write(f"{PACKAGES['kernel'][0]} {PACKAGES['kernel'][1]}, {PACKAGES['busybox'][0]} "
                f"{PACKAGES['busybox'][1]}\n")
    # The unpacked kernel package is 400 MB; the .debs stay for the next build.
    shutil.rmtree(kernel_tree)
    shutil.rmtree(busybox_tree)
    say(f"done: {out}/vmlinux, {out}/initramfs.cpio")


if __name__ == "__main__":
    main()
