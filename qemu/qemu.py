#!/usr/bin/env python3
"""The one place that knows the QEMU command line; used by `make run`,
`make test` and `make bench`.

    qemu/qemu.py run  --kernel K --image I [--icount]        interactive console
    qemu/qemu.py boot --kernel K --image I --log F [--timeout S] [--icount]
                                                             bounded boot; prints the
                                                             decoded outcome, exit 0 on
                                                             the success code

The machine: x86_64 `pc` under TCG with an rtl8139 NIC on user-mode
networking, an OHCI controller with a USB keyboard and a USB disk (a small raw
image the build creates), isa-debug-exit at port 0xf4, and a QMP socket for
hot-plug tests. A guest write of v to port 0xf4 makes QEMU exit with status
2v+1; the monitor writes 0x10 on success and 0x11 on failure.
"""
import argparse
import os
import signal
import subprocess
import sys
import time

EXIT_PORT = 0xF4
GUEST_SUCCESS = 0x10
GUEST_FAILURE = 0x11


def command(kernel, image, disk, qmp=None, icount=False, extra=()):
    cmd = [
        "qemu-system-x86_64",
        "-machine", "pc", "-accel", "tcg",
        "-cpu", "qemu64,+pdpe1gb,+fsgsbase",
        "-m", "512",
        "-nographic", "-no-reboot",
        "-kernel", kernel, "-initrd", image,
        "-device", f"isa-debug-exit,iobase={EXIT_PORT:#x},iosize=0x04",
        "-netdev", "user,id=n0",
        "-device", "rtl8139,netdev=n0",
        # Slot 5, not the next free one (4): there the firmware routes its
        # INTx to line 10, the RTL8139's (slot 3) to line 11. seL4 gives an
        # IRQ to one handler, so two driver PDs cannot share a line.
        "-device", "pci-ohci,id=ohci,addr=5",
        "-device", "usb-kbd,bus=ohci.0",
        # snapshot: guest writes go to a throwaway overlay, so the image is
        # only read and parallel boots never contend for its lock.
        "-drive", f"if=none,id=usbdisk,format=raw,file={disk},snapshot=on,file.locking=off",
        "-device", "usb-storage,bus=ohci.0,drive=usbdisk",
    ]
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
    if status == 2 * GUEST_SUCCESS + 1:
        return "guest-success"
    if status == 2 * GUEST_FAILURE + 1:
        return "guest-failure"
    if status & 1 and status > 1:
        return f"guest-exit-{status >> 1:#x}"
    if status == 0:
        return "qemu-shutdown"
    return f"qemu-error-{status}"


def boot(kernel, image, disk, log, timeout, icount=False, qmp=None):
    """Boots once, serial output into `log`; returns (status or None, seconds).
    A QEMU still running after `timeout` seconds is killed by its own PID."""
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command(kernel, image, disk, qmp=qmp, icount=icount),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            status = None
    return status, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "boot"])
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--image", required=True, help="the system image (root task ELF)")
    ap.add_argument("--disk", required=True, help="raw image behind the USB disk")
    ap.add_argument("--log", help="serial log file (boot mode)")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--icount", action="store_true")
    ap.add_argument("--qmp", help="QMP unix socket path (default: beside the image)")
    a = ap.parse_args()
    for path in (a.kernel, a.image, a.disk):
        if not os.path.exists(path):
            sys.exit(f"qemu: {path}: no such file (build it with make)")
    # Every boot gets a QMP socket, for tests that hot-plug devices.
    a.qmp = a.qmp or os.path.splitext(a.image)[0] + ".qmp"
    if a.mode == "run":
        print("qemu: Ctrl-A X quits", file=sys.stderr)
        cmd = command(a.kernel, a.image, a.disk, qmp=a.qmp, icount=a.icount)
        # QEMU keeps the terminal; afterwards say what its status means.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        outcome = decode(subprocess.call(cmd))
        print(f"\nqemu: {outcome}", file=sys.stderr)
        sys.exit(1 if outcome in ("guest-failure",) or outcome.startswith("qemu-error") else 0)
    if not a.log:
        sys.exit("qemu: boot mode needs --log")
    status, secs = boot(a.kernel, a.image, a.disk, a.log, a.timeout, a.icount, a.qmp)
    outcome = decode(status)
    print(f"qemu: {outcome} (status {status}) after {secs:.1f}s; serial log {a.log}")
    sys.exit(0 if outcome == "guest-success" else 1)


if __name__ == "__main__":
    main()
