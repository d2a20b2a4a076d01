#!/usr/bin/env python3
"""The one place that knows the QEMU command line; used by `make run`,
`make test` and `make bench`.

    qemu/qemu.py run  --kernel K --image I [--icount]        interactive console
    qemu/qemu.py boot --kernel K --image I --log F [--timeout S] [--icount]
                                                             bounded boot; prints the
                                                             decoded outcome, exit 0 on
                                                             the success code
    qemu/qemu.py run|boot --boot cdrom|disk --medium M [--firmware seabios|ovmf]
                                                             boot a medium the way a PC
                                                             does (make image writes them)
    --net SPEC   the NIC's network (default `user`; `run` forwards 5557 and 5580):
                 user                 QEMU's user network (DHCP, NAT)
                 user:ECHO:STATUS     the same, host ports ECHO (UDP and TCP) and
                                      STATUS (TCP) on 127.0.0.1 forwarded to the
                                      guest's 7 and 80
                 dgram:PORT           a raw-frame wire: each Ethernet frame is one
                                      UDP datagram between 127.0.0.1:PORT (QEMU) and
                                      127.0.0.1:PORT+1 (a host program, the only
                                      other station)

The machine: x86_64 `pc` under TCG with the default VGA card, an rtl8139 NIC
on user-mode networking, an OHCI controller with a USB keyboard and a USB
disk (a small raw image the build creates), isa-debug-exit at port 0xf4, and
a QMP socket for hot-plug tests and for reading the screen. A guest write of
v to port 0xf4 makes QEMU exit with status 2v+1; the monitor writes 0x10 on
success and 0x11 on failure.

`--virtio net` puts the NIC's network on a virtio-net-pci at slot 4 instead
of the RTL8139; `--virtio blk` adds a virtio-blk-pci at slot 6 on the same
raw image as the USB disk (see VIRTIO_NET_SLOT for why those slots).

The Sabre Lite (`--board sabrelite`): QEMU's `sabrelite` machine (i.MX6,
one Cortex-A9, 1 GiB), booted from the boot image system-builder writes
(the loader with the kernel and the system image, `-kernel`), UART2 (the
console) on stdout and UART1 on a Unix socket when asked (`uart1`: tests
type into it and read it), the SoC's ENET on the --net network (as the
pc's NIC), semihosting on for user code: that is how its runs end, with
the same exit statuses as the debug-exit device's.

Boot paths: `kernel` (the default) hands QEMU's multiboot loader the kernel
and the system image, with no firmware boot at all. `cdrom` boots an ISO
from the CD drive and `disk` a disk image as the first hard disk, both
through the firmware, SeaBIOS (legacy BIOS) or OVMF (UEFI, Debian's `ovmf`):
the path a real PC takes. Devices can be left out (`without`) to test how
the system copes when one is absent.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

EXIT_PORT = 0xF4
GUEST_SUCCESS = 0x10
GUEST_FAILURE = 0x11

BOOTS = ("kernel", "cdrom", "disk")
BOARDS = ("pc", "sabrelite")
FIRMWARE = {"seabios": None, "ovmf": "/usr/share/ovmf/OVMF.fd"}

# The VGA text buffer: 80x25 cells of (character, attribute) bytes.
VGA_TEXT = 0xB8000
VGA_COLS, VGA_ROWS = 80, 25


# Host ports `run` forwards to the guest's echo (7) and status (80)
# services; system.dingo.toml tells the net PD, which prints them.
RUN_NET = "user:5557:5580"
GUEST_IP = "10.0.2.15"


def netdev(spec):
    """The -netdev argument for a --net SPEC (see the module doc)."""
    kind, _, rest = (spec or "user").partition(":")
    if kind == "user":
        if not rest:
            return "user,id=n0"
        echo, status = (int(p) for p in rest.split(":"))
        fwd = [f"udp:127.0.0.1:{echo}-{GUEST_IP}:7", f"tcp:127.0.0.1:{echo}-{GUEST_IP}:7",
               f"tcp:127.0.0.1:{status}-{GUEST_IP}:80"]
        return "user,id=n0," + ",".join("hostfwd=" + f for f in fwd)
    if kind == "dgram":
        port = int(rest)
        return (f"dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={port},"
                f"remote.type=inet,remote.host=127.0.0.1,remote.port={port + 1}")
    raise ValueError(f"qemu: unknown --net {spec!r} (user, user:ECHO:STATUS or dgram:PORT)")


# The USB devices by QMP id: each on a port of its own, so that a device
# plugged again (device_add) comes back where it was.
USB_DEVICES = {
    "usb-kbd": {"driver": "usb-kbd", "bus": "ohci.0", "port": "1"},
    "usb-disk": {"driver": "usb-storage", "bus": "ohci.0", "port": "2", "drive": "usbdisk"},
    # Only with nic="usb-net": the netdev stays while the device is unplugged.
    "usb-net": {"driver": "usb-net", "bus": "ohci.0", "port": "3", "netdev": "n0"},
}


def usb_device(name):
    props = ",".join(f"{k}={v}" for k, v in USB_DEVICES[name].items() if k != "driver")
    return ["-device", f"{USB_DEVICES[name]['driver']},{props},id={name}"]


def disk_drive(disk):
    return f"if=none,id=usbdisk,format=raw,file={disk},snapshot=on,file.locking=off"


def unplug(qmp, name, timeout=5.0):
    """QMP device_del of a USB device; returns once QEMU no longer has it.
    A disk's drive goes with it (QEMU deletes a -drive's backend when its
    device goes), so it is added again for the next plug."""
    qmp.execute("device_del", id=name)
    drive = USB_DEVICES[name].get("drive")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = qmp.execute("human-monitor-command", **{"command-line": "info usb"})
        # The device leaves the bus first; its drive goes when QEMU
        # finalizes it, a little later.
        gone = f"ID: {name}" not in info
        if gone and drive:
            gone = drive not in [b["device"] for b in qmp.execute("query-block")]
        if gone:
            return
        time.sleep(0.01)
    raise RuntimeError(f"QMP: {name} still present {timeout} s after device_del")


def plug(qmp, name, disk):
    """QMP device_add of a USB device at its port (the disk's drive first)."""
    spec = dict(USB_DEVICES[name])
    if "drive" in spec:
        blocks = [b["device"] for b in qmp.execute("query-block")]
        if spec["drive"] not in blocks:
            qmp.execute("human-monitor-command", **{"command-line": f"drive_add 0 {disk_drive(disk)}"})
    qmp.execute("device_add", id=name, **spec)


def send_keys(qmp, qcodes, hold_ms):
    """Presses `qcodes` together, holds them `hold_ms`, releases them."""
    qmp.execute("send-key", keys=[{"type": "qcode", "data": k} for k in qcodes], **{"hold-time": hold_ms})


# The virtio devices a boot may add (`virtio`), each at a slot whose INTx
# line no other driver PD of the systems that use it takes: the firmware
# routes slot 4 to line 11 (the RTL8139's, which virtio-net replaces on the
# NIC's network) and slot 6 to line 10 (OHCI's, whose driver the virtio-blk
# systems do not run). seL4 gives an IRQ to one handler.
VIRTIO_NET_SLOT = 4
VIRTIO_BLK_SLOT = 6
VIRTIO = ("net", "blk")


def devices(disk, without=(), net=None, virtio=(), nic="rtl8139"):
    """The machine's devices, by the names `without` may drop; `virtio`
    adds virtio-net-pci (which then carries the NIC's network instead of
    the RTL8139) or virtio-blk-pci (on `disk`, like the USB disk). `nic`
    "usb-net" puts the NIC's network on QEMU's usb-net (CDC-ECM) at port 3
    of the OHCI controller instead, with no RTL8139."""
    unknown = set(virtio) - set(VIRTIO)
    if unknown:
        raise ValueError(f"unknown virtio devices: {sorted(unknown)} (known: {', '.join(VIRTIO)})")
    if nic not in ("rtl8139", "usb-net"):
        raise ValueError(f"unknown nic {nic!r} (rtl8139 or usb-net)")
    usb_net = ["-netdev", netdev(net), *usb_device("usb-net")] if nic == "usb-net" else []
    if nic == "usb-net":
        without = (*without, "rtl8139")
    nic_device = (["-device", f"virtio-net-pci,netdev=n0,addr={VIRTIO_NET_SLOT}"] if "net" in virtio
                  else ["-device", "rtl8139,netdev=n0"])
    groups = {
        "debug-exit": ["-device", f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x04"],
        "rtl8139": ["-netdev", netdev(net), *nic_device],
        "ohci": [
            # Slot 5, not the next free one (4): there the firmware routes its
            # INTx to line 10, the RTL8139's (slot 3) to line 11. seL4 gives
            # an IRQ to one handler, so two driver PDs cannot share a line.
            "-device", "pci-ohci,id=ohci,addr=5",
            *usb_device("usb-kbd"),
            # snapshot: guest writes go to a throwaway overlay, so the image is
            # only read and parallel boots never contend for its lock.
            "-drive", disk_drive(disk),
            *usb_device("usb-disk"),
            *usb_net,
        ],
    }
    if "blk" in virtio:
        groups["virtio-blk"] = [
            "-drive", f"if=none,id=vblk,format=raw,file={disk},snapshot=on,file.locking=off",
            "-device", f"virtio-blk-pci,drive=vblk,addr={VIRTIO_BLK_SLOT}",
        ]
    unknown = set(without) - set(groups)
    if unknown:
        raise ValueError(f"unknown devices to leave out: {sorted(unknown)} (known: {sorted(groups)})")
    # Without the RTL8139 QEMU would add its default NIC (an e1000) in the
    # same slot: a machine with no NIC at all is the case to test.
    none = ["-nic", "none"] if "rtl8139" in without else []
    return none + [arg for name, args in groups.items() if name not in without for arg in args]


def sabrelite_command(image, qmp=None, icount=False, extra=(), uart1=None, net=None):
    """The Sabre Lite: `image` is the boot image (loader, kernel, system);
    `uart1` a Unix socket path for UART1, which QEMU serves; `net` the
    ENET's network (a --net SPEC, as the pc's NIC's)."""
    uart = (["-chardev", f"socket,id=uart1,path={uart1},server=on,wait=off", "-serial", "chardev:uart1"]
            if uart1 else ["-serial", "null"])
    cmd = [
        "qemu-system-arm", "-M", "sabrelite", "-smp", "1", "-m", "1G",
        "-nographic", "-monitor", "none", "-no-reboot",
        # serial0 is UART1, serial1 UART2, the console.
        *uart,
        "-serial", "stdio",
        "-semihosting-config", "enable=on,target=native,userspace=on",
        "-kernel", image,
        # The SoC's ENET takes the first NIC; its MAC is QEMU's first,
        # 52:54:00:12:34:56, as the pc's RTL8139's.
        "-netdev", netdev(net), "-net", "nic,netdev=n0",
    ]
    if qmp:
        cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    if icount:
        cmd += ["-icount", "shift=0,align=off,sleep=off"]
    return cmd + list(extra)


def command(kernel=None, image=None, disk=None, qmp=None, icount=False, extra=(),
            boot="kernel", medium=None, firmware="seabios", without=(), net=None, board="pc",
            uart1=None, virtio=(), nic="rtl8139"):
    if board == "sabrelite":
        return sabrelite_command(image, qmp, icount, extra, uart1, net)
    if board != "pc":
        raise ValueError(f"unknown board {board!r} (known: {', '.join(BOARDS)})")
    cmd = [
        "qemu-system-x86_64",
        "-machine", "pc", "-accel", "tcg",
        "-cpu", "qemu64,+pdpe1gb,+fsgsbase",
        "-m", "512",
        "-nographic", "-no-reboot",
    ]
    if boot not in BOOTS:
        raise ValueError(f"unknown boot path {boot!r} (known: {', '.join(BOOTS)})")
    if firmware not in FIRMWARE:
        raise ValueError(f"unknown firmware {firmware!r} (known: {', '.join(FIRMWARE)})")
    if FIRMWARE[firmware]:
        cmd += ["-bios", FIRMWARE[firmware]]
    if boot == "kernel":
        cmd += ["-kernel", kernel, "-initrd", image]
    elif boot == "cdrom":
        # CD first: SeaBIOS would otherwise try the disks and wait on each.
        cmd += ["-drive", f"file={medium},media=cdrom,readonly=on,file.locking=off", "-boot", "order=d"]
    else:
        cmd += ["-drive", f"file={medium},format=raw,if=ide,snapshot=on,file.locking=off",
                "-boot", "order=c"]
    cmd += devices(disk, without, net, virtio, nic)
    if qmp:
        cmd += ["-qmp", f"unix:{qmp},server=on,wait=off"]
    if icount:
        # One virtual nanosecond per instruction: timing that repeats.
        cmd += ["-icount", "shift=0,align=off,sleep=off"]
    return cmd + list(extra)


def decode(status):
    """What a QEMU exit status means."""
    if status is None:
        return "timeout"
    if status == "stopped":
        return "stopped"
    if status == 2 * GUEST_SUCCESS + 1:
        return "guest-success"
    if status == 2 * GUEST_FAILURE + 1:
        return "guest-failure"
    if status & 1 and status > 1:
        return f"guest-exit-{status >> 1:#x}"
    if status == 0:
        return "qemu-shutdown"
    return f"qemu-error-{status}"


class Qmp:
    """A QMP connection to a running QEMU (one command at a time)."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self._reply()  # the greeting
        self.execute("qmp_capabilities")

    def _reply(self):
        while True:
            while b"\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("QMP connection closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def execute(self, name, **arguments):
        self.sock.sendall(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        reply = self._reply()
        if "error" in reply:
            raise RuntimeError(f"QMP {name}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def close(self):
        self.sock.close()


def vga_text(qmp):
    """The VGA text buffer as 25 lines (characters only, trailing blanks cut)."""
    with tempfile.NamedTemporaryFile(prefix="vga-", suffix=".bin") as f:
        qmp.execute("pmemsave", val=VGA_TEXT, size=VGA_COLS * VGA_ROWS * 2, filename=f.name)
        cells = f.read()
    chars = bytes(c if 0x20 <= c < 0x7F else 0x20 for c in cells[0::2])
    return [chars[r * VGA_COLS:(r + 1) * VGA_COLS].decode("ascii").rstrip() for r in range(VGA_ROWS)]


def screen_size(qmp):
    """The displayed screen's size in pixels, from a screendump (720x400 is
    VGA text mode 80x25 with its 9x16 font)."""
    with tempfile.NamedTemporaryFile(prefix="screen-", suffix=".ppm") as f:
        qmp.execute("screendump", filename=f.name)
        header = f.read(64)
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s", header)
    if not m:
        raise RuntimeError("screendump did not write a PPM image")
    return int(m.group(1)), int(m.group(2))


def start(kernel, image, disk, log, icount=False, qmp=None, net=None, extra=(),
          boot="kernel", medium=None, firmware="seabios", without=(), board="pc",
          virtio=(), nic="rtl8139"):
    """Starts QEMU in the background, serial output into `log`, for a
    caller that runs a host program meanwhile; end it with `quit` and
    `stop`. Boots as `command` does (the kernel directly, or a medium
    through the firmware; a board's boot image)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command(kernel, image, disk, qmp=qmp, icount=icount, net=net, extra=extra,
                    boot=boot, medium=medium, firmware=firmware, without=without, board=board,
                    virtio=virtio, nic=nic),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def quit(qmp_path):
    """Asks a running QEMU to quit (status 0); false if it did not answer."""
    try:
        conn = Qmp(qmp_path)
    except OSError:
        return False
    try:
        conn.execute("quit")
        return True
    except (OSError, RuntimeError):
        return False
    finally:
        conn.close()


def stop(proc, timeout):
    """Waits up to `timeout` seconds for QEMU, then kills it by its PID.
    Returns its status, or None if it had to be killed."""
    try:
        return proc.wait(timeout=max(timeout, 0))
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def boot(kernel=None, image=None, disk=None, log=None, timeout=60, icount=False, qmp=None,
         boot="kernel", medium=None, firmware="seabios", without=(), until=None, poll=0.5,
         net=None, board="pc", uart1=None, virtio=(), driver=None, nic="rtl8139"):
    """Boots once, serial output into `log`; returns (status or None, seconds).
    A QEMU still running after `timeout` seconds is killed by its own PID.
    With `until` (a function of a Qmp connection), QEMU is asked every `poll`
    seconds; once `until` returns true it is quit over QMP and the status is
    "stopped". With `driver` (a function of the QMP socket path, run in a
    thread of its own while QEMU runs), a test drives the machine: it must
    return once QEMU is gone; the boot does not wait for it longer."""
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command(kernel, image, disk, qmp=qmp, icount=icount, boot=boot, medium=medium,
                    firmware=firmware, without=without, net=net, board=board, uart1=uart1,
                    virtio=virtio, nic=nic),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        thread = None
        if driver is not None:
            thread = threading.Thread(target=driver, args=(qmp,), daemon=True)
            thread.start()
        status = None
        try:
            if until is None:
                status = proc.wait(timeout=timeout)
            else:
                status = _wait_until(proc, qmp, until, start + timeout, poll)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            if thread is not None:
                thread.join(timeout=5)
    return status, time.monotonic() - start


def _wait_until(proc, qmp_path, until, deadline, poll):
    conn = None
    try:
        while time.monotonic() < deadline:
            try:
                return proc.wait(timeout=poll)
            except subprocess.TimeoutExpired:
                pass
            if conn is None:
                try:
                    conn = Qmp(qmp_path)
                except OSError:
                    continue  # not listening yet
            if until(conn):
                conn.execute("quit")
                proc.wait(timeout=10)
                return "stopped"
        raise subprocess.TimeoutExpired(proc.args, 0)
    finally:
        if conn:
            conn.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "boot"])
    ap.add_argument("--board", choices=BOARDS, default="pc",
                    help="pc (x86_64) or sabrelite (its --image is the boot image)")
    ap.add_argument("--kernel", help="the kernel (--boot kernel)")
    ap.add_argument("--image", help="the system image, root task ELF (--boot kernel)")
    ap.add_argument("--boot", choices=BOOTS, default="kernel")
    ap.add_argument("--medium", help="the ISO (--boot cdrom) or disk image (--boot disk)")
    ap.add_argument("--firmware", choices=sorted(FIRMWARE), default="seabios")
    ap.add_argument("--without", action="append", default=[], help="leave this device out (rtl8139, ohci, debug-exit)")
    ap.add_argument("--virtio", action="append", default=[], choices=VIRTIO,
                    help="add virtio-net-pci (the NIC's network moves to it) or virtio-blk-pci (on --disk)")
    ap.add_argument("--disk", help="raw image behind the USB disk (pc)")
    ap.add_argument("--log", help="serial log file (boot mode)")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--icount", action="store_true")
    ap.add_argument("--qmp", help="QMP unix socket path (default: beside the image or medium)")
    ap.add_argument("--net", help="the NIC's network (default: user; run: " + RUN_NET + ")")
    a = ap.parse_args()
    if a.board != "pc":
        need = [a.image]
        if a.image is None:
            sys.exit(f"qemu: --board {a.board} needs --image (the boot image)")
    elif a.disk is None:
        sys.exit("qemu: --board pc needs --disk")
    else:
        need = ([a.kernel, a.image] if a.boot == "kernel" else [a.medium]) + [a.disk]
        if None in need:
            sys.exit("qemu: --boot kernel needs --kernel and --image" if a.boot == "kernel"
                     else f"qemu: --boot {a.boot} needs --medium")
    for path in need:
        if not os.path.exists(path):
            sys.exit(f"qemu: {path}: no such file (build it with make)")
    # Every boot gets a QMP socket, for tests that hot-plug devices.
    a.qmp = a.qmp or os.path.splitext(a.image or a.medium)[0] + ".qmp"
    opts = dict(boot=a.boot, medium=a.medium, firmware=a.firmware, without=a.without,
                board=a.board, virtio=a.virtio)
    if a.mode == "run":
        print("qemu: Ctrl-A X quits", file=sys.stderr)
        print(f"qemu: USB hot-plug and keys over QMP ({a.qmp}) or the QEMU monitor (Ctrl-A C): "
              "device_del usb-kbd | device_add usb-kbd,bus=ohci.0,port=1,id=usb-kbd | "
              "sendkey a (usb-disk: device_del usb-disk, drive_add 0 "
              f"{disk_drive(a.disk)}, device_add usb-storage,bus=ohci.0,port=2,drive=usbdisk,id=usb-disk)",
              file=sys.stderr)
        cmd = command(a.kernel, a.image, a.disk, qmp=a.qmp, icount=a.icount, net=a.net or RUN_NET, **opts)
        # QEMU keeps the terminal; afterwards say what its status means.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        outcome = decode(subprocess.call(cmd))
        print(f"\nqemu: {outcome}", file=sys.stderr)
        sys.exit(1 if outcome in ("guest-failure",) or outcome.startswith("qemu-error") else 0)
    if not a.log:
        sys.exit("qemu: boot mode needs --log")
    status, secs = boot(a.kernel, a.image, a.disk, a.log, a.timeout, a.icount, a.qmp, net=a.net, **opts)
    outcome = decode(status)
    print(f"qemu: {outcome} (status {status}) after {secs:.1f}s; serial log {a.log}")
    sys.exit(0 if outcome == "guest-success" else 1)


if __name__ == "__main__":
    main()
