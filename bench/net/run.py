#!/usr/bin/env python3
"""The net bench (`make bench`, after bench/run.py): boots the UDP echo
image of each NIC (bench/net/net-echo.xml on the RTL8139,
bench/net/virtio-net-echo.xml on virtio-net-pci, on its INTx line and,
virtio-net-msix-echo.xml, on MSI-X; the same net PD binary,
10.0.2.15/24, port 7) under QEMU's -icount
on the raw-frame wire, with the TCG plugin bench/net/insn-count.c counting
guest instructions, and drives it with tests/peers/net-peer's bench load:
64- and 1472-byte datagrams with 32 in flight, and 64-byte ping-pong (one
in flight). For each it prints echoed packets per second (host time),
guest instructions per echoed packet split into the driver PD's and the
net PD's own code (the plugin's per-block profile, bench/net/profile.py,
books each block to its program) and the rest (the kernel's work:
system calls, interrupt delivery, scheduling, PD switches), the kernel's
share of everything (the plugin's upper-half count), and the round trip's
median and 99th percentile. The same run boots the Linux baseline
(bench/linux/build.py: Debian 12's Linux 6.1, 8139cp on the RTL8139 and
virtio_net on virtio-net-pci, a recvmmsg/sendmmsg echo server) with the
same QEMU command, wire, loads and plugin, and prints each of our rows'
packets per second and instructions per echo as ratios to Linux's on the
same NIC and load. The other rows also give packets
per second as a ratio to the RTL8139's of the same run and load. The
RTL8139 runs in both of its receive modes, each its own image of the same
system (net-echo.xml: normal mode, set in net-echo.dingo.toml;
net-echo-cplus.xml: C+ mode), so both are measured in the same run.

Busy periods on Linux: its kernel command line (bench/linux/build.py)
makes the idle loop a plain `hlt` (idle=halt) and stops the tick while
idle (nohz=on), so the plugin's periods end as they do on seL4. But Linux
drives the NIC from the kernel, so a period that ran only kernel code can
be packet work (a transmit-complete interrupt after the echo went out),
which the plugin books as idle; on seL4 the driver is a PD, so its work is
always busy. Linux's figure is therefore its busy instructions plus the
instructions of kernel-only periods beyond what the idle guest runs in
the same time (its quiet rate, measured for QUIET seconds before the load
starts): the idle column shows what was left out.
"""
import argparse
import importlib.util
import os
import re
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.path.join(ROOT, "target", "release", "net-peer")
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

# bench/net/profile.py by its path: on sys.path it would shadow the
# standard library's `profile`.
_spec = importlib.util.spec_from_file_location(
    "bench_profile", os.path.join(os.path.dirname(os.path.abspath(__file__)), "profile.py"))
_profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_profile)
Profile = _profile.Profile

READY = re.compile(r"net: address 10\.0\.2\.15/24 \(static\)")
LINE = re.compile(r"bench: (.*)")
# (payload bytes, in flight, echoes)
RUNS = [(64, 32, 20000), (1472, 32, 10000), (64, 1, 3000)]
# (name, image under build/release/ or LINUX, qemu.py virtio devices, the
# driver PD or None for Linux, the Linux row it is measured against)
LINUX = "linux"
NICS = [("linux 8139cp", LINUX, (), None, None),
        ("linux virtio", LINUX, ("net",), None, None),
        ("rtl8139", "bench-net-net-echo.elf", (), "rtl8139", "linux 8139cp"),
        ("rtl8139 C+", "bench-net-net-echo-cplus.elf", (), "rtl8139", "linux 8139cp"),
        ("virtio-net", "bench-net-virtio-net-echo.elf", ("net",), "virtio-net", "linux virtio"),
        ("virtio-net MSI-X", "bench-net-virtio-net-msix-echo.elf", ("net",), "virtio-net",
         "linux virtio")]
# Seconds the booted guest idles before the load, to measure its quiet
# rate of instructions (Linux's figure: see the module doc).
QUIET = 2.0


def free_pair():
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise OSError("no free UDP port pair")


def counters_now(path):
    """The plugin's counters (bench/net/insn-count.c): total, kernel, busy, halts."""
    with open(path, "rb") as f:
        return struct.unpack("<4Q", f.read(32))


def one(build, plugin, image, size, inflight, count, logdir, profile, nic, virtio, driver, linux, top=12,
        inline=False):
    name = f"net-echo-{nic.replace(' C+', '-cplus').replace(' ', '-')}-{size}-{inflight}"
    log = os.path.join(logdir, name + ".log")
    counters = os.path.join(logdir, name + ".counters")
    qmp = os.path.join(logdir, name + ".qmp")
    # seL4 rows always keep the per-block profile: it splits the cost
    # between the programs (bench/net/profile.py).
    prof = os.path.join(logdir, name + ".profile") if driver is not None else None
    port = free_pair()
    plugin_args = f"{plugin},out={counters}" + (f",profile={prof}" if prof else "")
    if driver is None:
        kernel, image = os.path.join(linux, "vmlinux"), os.path.join(linux, "initramfs.cpio")
        with open(os.path.join(linux, "cmdline")) as f:
            append = ["-append", f.read().strip()]
    else:
        kernel, append = os.path.join(build, "kernel", "release", "kernel32.elf"), []
    proc = qemu.start(
        kernel=kernel,
        image=image, disk=os.path.join(build, "usb-disk.img"), log=log,
        qmp=qmp, net=f"dgram:{port}", virtio=virtio,
        # sleep=on: while the guest idles (waiting for the host), virtual
        # time follows real time instead of racing through timer ticks.
        extra=["-icount", "shift=0,align=off,sleep=on", "-plugin", plugin_args] + append)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None, f"QEMU exited ({proc.returncode}); log {log}"
            with open(log, "rb") as f:
                if READY.search(f.read().decode("utf-8", "replace")):
                    break
            time.sleep(0.2)
        else:
            return None, f"never ready; log {log}"
        if driver is None:
            q0, t0 = counters_now(counters), time.monotonic()
            time.sleep(QUIET)
            q1, t1 = counters_now(counters), time.monotonic()
        peer = PEER
        run = subprocess.run([peer, "bench", str(port), str(size), str(inflight), str(count), counters]
                             + ([prof] if prof else []),
                             capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1))
        m = LINE.search(run.stdout)
        if run.returncode != 0 or not m:
            return None, f"peer failed: {run.stdout.strip()} {run.stderr.strip()}"
        r = dict(kv.split("=") for kv in m.group(1).split())
        if prof:
            target = os.path.join(ROOT, "target", "sel4-release", "x86_64-unknown-linux-gnu", "release")
            elfs = [os.path.join(build, "kernel", "release", "kernel.elf")] + [
                os.path.join(target, pd) for pd in (driver, "net", "timer", "pci")]
            p = Profile(prof + ".0", prof + ".1", elfs)
            if profile:
                p.print(count, top=top, inline=inline)
            r["driver"] = p.per_program.get(driver, 0)
            r["net"] = p.per_program.get("net", 0)
            for suffix in ("", ".0", ".1"):
                os.remove(prof + suffix)
        if driver is None:
            r["quiet_per_s"] = (q1[0] - q0[0]) / (t1 - t0)
        return r, None
    except subprocess.TimeoutExpired:
        return None, "peer timed out"
    finally:
        qemu.quit(qmp)
        qemu.stop(proc, 10)


def cost(r):
    """Instructions per echo of a result line, split as the table prints
    them: busy, kernel, left out as idle; a Linux row's busy figure adds
    its kernel-only work beyond the quiet rate (see the module doc)."""
    n = int(r["echoed"])
    busy, idle = int(r["busy"]), int(r["insns"]) - int(r["busy"])
    if "quiet_per_s" in r:
        extra = max(0.0, idle - r["quiet_per_s"] * float(r["seconds"]))
        busy, idle = busy + extra, idle - extra
    return busy / n, int(r["kernel"]) / n, idle / n


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugin", required=True, help="the insn-count plugin (.so)")
    ap.add_argument("--linux", help="the Linux baseline (bench/linux/build.py's output directory); "
                                    "without it the Linux rows and ratios are left out")
    ap.add_argument("--nic", action="append", choices=[n[0] for n in NICS],
                    help="only this NIC (default: all)")
    ap.add_argument("--load", action="append", metavar="SIZE:INFLIGHT",
                    help="only these loads (default: all)")
    ap.add_argument("--top", type=int, default=12, help="with --profile: functions shown per program")
    ap.add_argument("--inline", action="store_true",
                    help="with --profile: also book instructions to the inlined functions")
    ap.add_argument("--profile", action="store_true",
                    help="also print where the instructions go (bench/net/profile.py; not for Linux)")
    a = ap.parse_args()
    for path, what, how in [(PEER, "the load generator", "cargo build --release -p net-peer"),
                            (a.plugin, "the TCG plugin", "make bench")]:
        if not os.path.exists(path):
            sys.exit(f"bench/net/run.py: {path}: {what} is not built (build it with `{how}`)")
    logdir = os.path.join(a.build, "bench-logs")
    os.makedirs(logdir, exist_ok=True)
    runs = [r for r in RUNS if not a.load or f"{r[0]}:{r[1]}" in a.load]
    print("== net bench: UDP echo on the raw-frame wire, -icount, guest instructions by TCG plugin")
    if a.linux:
        with open(os.path.join(a.linux, "version")) as f:
            print(f"   Linux baseline: {f.read().strip()}")
    print(f"   {'nic':<16} {'load':<20} {'pkt/s':>7} {'insn/pkt':>9} {'driver':>7} {'net':>7} {'rest':>7} "
          f"{'kernel':>7} {'idle':>7} {'rtt p50':>8} {'rtt p99':>8} {'pps/Linux':>9} {'insn/Linux':>10} "
          f"{'pps/rtl8139':>11}")
    failed = False
    pps = {}
    insns = {}
    for nic, image, virtio, driver, baseline in NICS:
        if (a.nic and nic not in a.nic) or (driver is None and not a.linux):
            continue
        image = os.path.join(a.build, "release", image)
        for size, inflight, count in runs:
            r, err = one(a.build, a.plugin, image, size, inflight, count, logdir,
                         a.profile and driver is not None, nic, virtio, driver, a.linux, a.top, a.inline)
            load = f"{size} B, {inflight} in flight"
            if err:
                print(f"   {nic:<16} {load:<20} did not complete: {err}")
                failed = True
                continue
            n = int(r["echoed"])
            busy, kernel, idle = cost(r)
            rate = n / float(r["seconds"])
            pps[(nic, size, inflight)] = rate
            insns[(nic, size, inflight)] = busy
            if driver is None:
                split = f"{'-':>7} {'-':>7} {'-':>7}"
            else:
                per = {k: int(r[k]) / n for k in ("driver", "net")}
                split = f"{per['driver']:>7.0f} {per['net']:>7.0f} {busy - per['driver'] - per['net']:>7.0f}"
            lin = (baseline, size, inflight)
            vs_pps = f"{rate / pps[lin]:.2f}x" if lin in pps else "-"
            vs_insn = f"{busy / insns[lin]:.2f}x" if lin in insns else "-"
            base = pps.get(("rtl8139", size, inflight))
            vs = f"{rate / base:.2f}x" if driver and nic != "rtl8139" and base else "-"
            print(f"   {nic:<16} {load:<20} {rate:>7.0f} {busy:>9.0f} {split} {kernel:>7.0f} {idle:>7.0f} "
                  f"{float(r['rtt_median_us']):>7.0f}u {float(r['rtt_p99_us']):>7.0f}u {vs_pps:>9} {vs_insn:>10} "
                  f"{vs:>11}"
                  + (f"  ({r['resent']} stalls resent after 1 s)" if r.get("resent", "0") != "0" else ""))
    print("   (insn/pkt: instructions in busy periods, those that ran any PD, or on Linux any user code,")
    print("    plus Linux's kernel-only periods beyond its quiet rate; idle: the rest (timer ticks while")
    print("    the system waited for the host), not counted; driver, net: each PD's own code (user")
    print("    mode, from the plugin's per-block profile); rest: the kernel's work in busy periods")
    print("    (system calls, interrupts, PD switches) and the other PDs; kernel: every kernel-mode")
    print("    instruction; pps/Linux, insn/Linux: against the Linux row of this run with the same NIC")
    print("    and load (8139cp for the RTL8139, virtio_net for virtio-net); pps/rtl8139: packets per")
    print("    second against the RTL8139 row of this run)")
    modes = [(size, inflight, insns[("rtl8139", size, inflight)], insns[("rtl8139 C+", size, inflight)])
             for size, inflight, *_ in runs
             if ("rtl8139", size, inflight) in insns and ("rtl8139 C+", size, inflight) in insns]
    if modes:
        print("   RTL8139 C+ against normal mode, instructions per echo: " + "; ".join(
            f"{size} B, {inflight} in flight {c / n - 1:+.0%}" for size, inflight, n, c in modes))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
