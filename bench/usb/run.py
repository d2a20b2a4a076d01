#!/usr/bin/env python3
"""The USB disk bench (`make bench`, after the net bench): boots the USB
stack's bench image (bench/usb/usb-disk.xml: ohci, roothub, usb-storage
and usb-check, release build) under QEMU's -icount with the TCG plugin
bench/net/insn-count.c counting guest instructions. usb-check reads the
whole 16 MiB disk once and compares it, then says `bench: read <size> KiB begins`,
reads it again PASSES-1 times, `bench: read ends`, and the same around
WRITES MiB written, with 1 MiB requests and with 64 KiB ones (Linux's). The harness samples the plugin's counters when
each line appears (polling the serial log; the lag is a few milliseconds
of a run of seconds) and prints MB/s (usb-check's own figure: virtual
time, in which QEMU's OHCI runs one 1 ms frame per virtual millisecond,
so what counts is frames per command) and guest instructions per MiB,
with ratios to Linux 6.1's usb-storage over ohci-pci on this QEMU
(shared/DESIGN.md section 3: 10 MB/s and 2.6 M instructions per MiB
read with 64 KiB reads, 13.6 MB/s and 3.8 M per MiB written). Linux is
not run here."""
import argparse
import os
import re
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

MARK = re.compile(r"usb-check: bench: (read|write) (\d+) KiB (begins|ends)(?:, (\d+) bytes, (\d+\.\d+) MB/s)?")
DONE = re.compile(r"usb-check: all checks passed")
LINUX = {"read": (10.0, 2.6e6), "write": (13.6, 3.8e6)}


def counters(path):
    try:
        with open(path, "rb") as f:
            total, kernel = struct.unpack("<QQ", f.read(16))
        return total, kernel
    except (OSError, struct.error):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugin", required=True, help="the insn-count plugin (.so)")
    ap.add_argument("--image", help="default: build/release/bench-usb-usb-disk.elf")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    image = a.image or os.path.join(a.build, "release", "bench-usb-usb-disk.elf")
    logdir = os.path.join(a.build, "bench-logs")
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, "usb-disk.log")
    count_file = os.path.join(logdir, "usb-disk.counters")
    qmp = os.path.join(logdir, "usb-disk.qmp")
    print("== USB disk bench: usb-storage over OHCI, -icount, guest instructions by TCG plugin")
    proc = qemu.start(
        kernel=os.path.join(a.build, "kernel", "release", "kernel32.elf"),
        image=image, disk=os.path.join(a.build, "usb-disk.img"), log=log, qmp=qmp,
        extra=["-icount", "shift=0,align=off,sleep=off", "-plugin", f"{a.plugin},out={count_file}"])
    seen = {}
    deadline = time.monotonic() + a.timeout
    ok = False
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            now = counters(count_file)
            with open(log, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for m in MARK.finditer(text):
                key = (m.group(1), int(m.group(2)), m.group(3))
                if key not in seen and now:
                    seen[key] = (now, m.group(4), m.group(5))
            # Done only once every marker has its sample: the counter file
            # can be caught mid-rewrite (no sample that poll).
            marks = {(m.group(1), int(m.group(2)), m.group(3)) for m in MARK.finditer(text)}
            if DONE.search(text) and marks <= seen.keys():
                ok = True
                break
            time.sleep(0.005)
    finally:
        qemu.quit(qmp)
        qemu.stop(proc, 10)
    print(f"   {'load':<28} {'MB/s':>7} {'insn/MiB':>10} {'kernel':>9} {'vs Linux MB/s':>14} {'insn':>6}")
    failed = not ok
    for what, kib in [(w, k) for k in (1024, 64) for w in ("read", "write")]:
        b, e = seen.get((what, kib, "begins")), seen.get((what, kib, "ends"))
        if not (b and e and e[1]):
            print(f"   {what} {kib} KiB did not complete (log {log})")
            failed = True
            continue
        mib = int(e[1]) / (1 << 20)
        insn = (e[0][0] - b[0][0]) / mib
        kernel = (e[0][1] - b[0][1]) / mib
        mbs = float(e[2])
        lm, li = LINUX[what]
        print(f"   {what + f' {mib:.0f} MiB, {kib} KiB requests':<28} {mbs:>7.2f} {insn:>10.0f} {kernel:>9.0f} "
              f"{mbs / lm:>13.2f}x {insn / li:>5.2f}x")
    print("   (MB/s in virtual time; insn/MiB: every guest instruction while the load ran, kernel's")
    print("    included; vs Linux: Linux 6.1 usb-storage over ohci-pci on this QEMU, DESIGN.md section 3)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
