#!/usr/bin/env python3
"""The block bench (`make bench`): boots each disk driver's bench image
under QEMU's -icount with the TCG plugin bench/net/insn-count.c counting
guest instructions, and times blk-check's whole-disk read passes and
write passes (tests/pds/blk-check: 64 KiB requests, four in flight, into
and out of the BlockDevice data region). For each it prints MB/s (host
time: virtual time follows real time while the guest waits, -icount
sleep=on) and guest instructions per MiB moved (the whole system: test
PD, driver, kernel). Linux 6.1's usb-storage over ohci-pci on this QEMU
(shared/DESIGN.md section 3) reads about 10 MB/s at 2.6 M instructions
per MiB with 64 KiB reads and writes about 13.6 MB/s; Linux is not run
here. The usb-storage driver's image joins this table when it has one.
"""
import argparse
import os
import re
import struct
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

# (name, image under build/release/, qemu.py virtio devices)
DISKS = [("virtio-blk", "bench-blk-virtio-blk.elf", ("blk",))]
LINUX_READ_MBS, LINUX_READ_INSN_MIB, LINUX_WRITE_MBS = 10.0, 2.6e6, 13.6
# Whole lines only: the log is read while QEMU writes it.
MARK = re.compile(r"blk-check: (read|write) passes (begin|end)(?:: (\d+) MiB)?\r?\n")


def insns(path):
    with open(path, "rb") as f:
        total, _kernel = struct.unpack("<QQ", f.read(16))
    return total


def one(build, plugin, name, image, virtio, logdir):
    log = os.path.join(logdir, f"blk-{name}.log")
    counters = os.path.join(logdir, f"blk-{name}.counters")
    qmp = os.path.join(logdir, f"blk-{name}.qmp")
    proc = qemu.start(
        kernel=os.path.join(build, "kernel", "release", "kernel32.elf"),
        image=os.path.join(build, "release", image), disk=os.path.join(build, "usb-disk.img"),
        log=log, qmp=qmp, virtio=virtio,
        extra=["-icount", "shift=0,align=off,sleep=on", "-plugin", f"{plugin},out={counters}"])
    marks, seen = {}, 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None and len(marks) < 4:
            with open(log, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for m in list(MARK.finditer(text))[seen:]:
                marks[(m.group(1), m.group(2))] = (time.monotonic(), insns(counters), m.group(3))
                seen += 1
            time.sleep(0.002)
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except Exception as e:  # noqa: BLE001 - reported as the row's failure
        return None, f"{e}; log {log}"
    finally:
        qemu.quit(qmp)
        qemu.stop(proc, 10)
    if len(marks) < 4 or qemu.decode(proc.returncode) != "guest-success":
        return None, f"the passes did not complete ({qemu.decode(proc.returncode)}); log {log}"
    out = {}
    for kind in ("read", "write"):
        (t0, i0, _), (t1, i1, mib) = marks[(kind, "begin")], marks[(kind, "end")]
        mib = int(mib)
        out[kind] = (mib * 1.048576 / (t1 - t0), (i1 - i0) / mib)
    return out, None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugin", required=True, help="the insn-count plugin (.so)")
    a = ap.parse_args()
    logdir = os.path.join(a.build, "bench-logs")
    os.makedirs(logdir, exist_ok=True)
    print("== block bench: whole-disk passes, 64 KiB requests, 4 in flight, -icount, TCG plugin")
    print(f"   {'disk':<11} {'read MB/s':>9} {'insn/MiB':>10} {'write MB/s':>10} {'insn/MiB':>10} "
          f"{'read vs Linux':>14}")
    failed = False
    for name, image, virtio in DISKS:
        r, err = one(a.build, a.plugin, name, image, virtio, logdir)
        if err:
            print(f"   {name:<11} did not complete: {err}")
            failed = True
            continue
        (rm, ri), (wm, wi) = r["read"], r["write"]
        print(f"   {name:<11} {rm:>9.1f} {ri:>10.0f} {wm:>10.1f} {wi:>10.0f} "
              f"{rm / LINUX_READ_MBS:>6.1f}x MB/s")
    print("   (MB/s in host time; insn/MiB: every guest instruction, the whole system; Linux 6.1's")
    print(f"    usb-storage on ohci-pci here: {LINUX_READ_MBS} MB/s read at {LINUX_READ_INSN_MIB / 1e6} M insn/MiB,")
    print(f"    {LINUX_WRITE_MBS} MB/s write)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
