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
so what counts is frames per command; while the guest idles waiting for
QEMU's disk I/O, which its thread pool does in host time, virtual time
follows the host's clock, as in the blk and net benches) and guest
instructions per MiB,
with ratios to Linux 6.1's usb-storage over ohci-pci on this QEMU
(shared/DESIGN.md section 3: 10 MB/s and 2.6 M instructions per MiB
read with 64 KiB reads, 13.6 MB/s and 3.8 M per MiB written). Linux is
not run here. `--profile read` (or `write`) also says where the
instructions of the 64 KiB commands go, per PD and function
(bench/net/profile.py over the plugin's per-block profile).

Then the keyboard latency bench (`key_bench`; bench/usb/usb-keys.xml):
QMP send-key to the key delivered to usb-check, idle and while the disk
is read, median and p99 in host wall time."""
import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

# Whole lines only: an `ends` line caught before its figures were written
# would otherwise match without them, and be sampled as a load that never
# ended.
MARK = re.compile(r"usb-check: bench: (read|write) (\d+) KiB (begins|ends)(?:, (\d+) bytes, (\d+\.\d+) MB/s)?\r?\n")
DONE = re.compile(r"usb-check: all checks passed")
# What bounds the keyboard's latency (usb-kbd's choice of polling period).
KBD_POLL = "is polled every 1 ms frame (usb_kbd_core::POLL_MS; its bInterval, 10, is only the longest period allowed)"
LINUX = {"read": (10.0, 2.6e6), "write": (13.6, 3.8e6)}


def counters(path):
    try:
        with open(path, "rb") as f:
            total, kernel = struct.unpack("<QQ", f.read(16))
        return total, kernel
    except (OSError, struct.error):
        return None


KEY_READY = re.compile(r"usb-check: bench: keys (idle|reading): ready for (\d+) keys")
KEY_LINE = re.compile(rb"usb-check: bench: key (\d+)\r?\n")
KEY_FAIL = re.compile(r"usb-check: FAILED|panic|FAULT")


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def key_bench(a):
    """The keyboard latency bench (bench/usb/usb-keys.xml): QEMU without
    -icount, so its virtual clock, which drives the OHCI frame timer, is
    the host's clock and a frame lasts a real millisecond. Each key is
    timed on the host from just before its QMP send-key to its line
    (usb-check prints each press as the Keyboard port delivers it) in the
    serial log, which is polled every 0.1 ms. Keys are spaced 40-70 ms
    apart at random, so they fall at random phases of the polling period."""
    import random
    image = os.path.join(a.build, "release", "bench-usb-usb-keys.elf")
    logdir = os.path.join(a.build, "bench-logs")
    log = os.path.join(logdir, "usb-keys.log")
    qmp_path = os.path.join(logdir, "usb-keys.qmp")
    print("== USB keyboard latency: QMP send-key to the key delivered to its consumer (usb-check)")
    proc = qemu.start(kernel=os.path.join(a.build, "kernel", "release", "kernel32.elf"),
                      image=image, disk=os.path.join(a.build, "usb-disk.img"), log=log, qmp=qmp_path)
    results = {}
    rng = random.Random(1)
    deadline = time.monotonic() + a.timeout
    conn = None
    try:
        with open(log, "rb") as f:
            text = b""
            for phase in ("idle", "reading"):
                while True:
                    text += f.read()
                    m = [r for r in KEY_READY.finditer(text.decode("utf-8", "replace")) if r.group(1) == phase]
                    bad = KEY_FAIL.search(text.decode("utf-8", "replace"))
                    if m or bad or proc.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
                if not m:
                    print(f"   keys {phase}: usb-check never got ready (log {log})")
                    return False
                count = int(m[0].group(2))
                if conn is None:
                    conn = qemu.Qmp(qmp_path)
                times = []
                for i in range(count):
                    seen = len(KEY_LINE.findall(text))
                    t0 = time.monotonic()
                    qemu.send_keys(conn, ["abcdefghijklmnopqrstuvwxyz"[i % 26]], 10)
                    while len(KEY_LINE.findall(text)) <= seen:
                        if time.monotonic() - t0 > 5:
                            print(f"   keys {phase}: key {i} not delivered within 5 s (log {log})")
                            return False
                        time.sleep(0.0001)
                        text += f.read()
                    times.append((time.monotonic() - t0) * 1000)
                    time.sleep(rng.uniform(0.04, 0.07))
                results[phase] = times
    finally:
        if conn:
            conn.close()
        qemu.quit(qmp_path)
        qemu.stop(proc, 10)
    print(f"   {'disk':<28} {'keys':>5} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for phase, times in results.items():
        label = "idle" if phase == "idle" else "read all along (1 MiB reads)"
        print(f"   {label:<28} {len(times):>5} {percentile(times, 50):>10.2f} {percentile(times, 99):>8.2f} "
              f"{max(times):>8.2f}")
    print("   (clock: host wall time, QEMU without -icount, so one OHCI frame per real millisecond;")
    print(f"    bound: usb-kbd's interrupt ED {KBD_POLL}, a report is")
    print("    reported in the done queue at the next frame boundary, then ohci -> usb-kbd -> usb-check")
    print("    over their ports; under TCG the host's load adds to every figure)")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugin", required=True, help="the insn-count plugin (.so)")
    ap.add_argument("--image", help="default: build/release/bench-usb-usb-disk.elf")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--no-keys", action="store_true", help="skip the keyboard latency bench")
    ap.add_argument("--profile", choices=["read", "write"],
                    help="also print where the instructions of 64 KiB reads (or writes) go, per command "
                         "(bench/net/profile.py)")
    a = ap.parse_args()
    image = a.image or os.path.join(a.build, "release", "bench-usb-usb-disk.elf")
    logdir = os.path.join(a.build, "bench-logs")
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, "usb-disk.log")
    count_file = os.path.join(logdir, "usb-disk.counters")
    qmp = os.path.join(logdir, "usb-disk.qmp")
    prof = os.path.join(logdir, "usb-disk.profile") if a.profile else None
    plugin = f"{a.plugin},out={count_file}" + (f",profile={prof}" if prof else "")
    print("== USB disk bench: usb-storage over OHCI, -icount, guest instructions by TCG plugin")
    proc = qemu.start(
        kernel=os.path.join(a.build, "kernel", "release", "kernel32.elf"),
        image=image, disk=os.path.join(a.build, "usb-disk.img"), log=log, qmp=qmp,
        # sleep=on: with sleep=off an idle guest's clock jumped from timer
        # deadline to deadline while a disk read was still pending on the
        # host, running OHCI frames as fast as the host could, and 1 MiB
        # reads came out anywhere between 10 and 330 MB/s, with 120,000 to
        # 146,000 instructions per MiB.
        extra=["-icount", "shift=0,align=off,sleep=on", "-plugin", plugin])
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
                    if prof and key[:2] == (a.profile, 64):
                        shutil.copyfile(prof, prof + (".0" if key[2] == "begins" else ".1"))
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
    if prof and not failed:
        e = seen[(a.profile, 64, "ends")]
        commands = int(e[1]) // 65536
        target = os.path.join(ROOT, "target", "sel4-release", "x86_64-unknown-linux-gnu", "release")
        elfs = [os.path.join(a.build, "kernel", "release", "kernel.elf")] + [
            os.path.join(target, pd) for pd in ("ohci", "roothub", "usb-storage", "usb-check", "usb-kbd", "timer", "pci")]
        print(f"   where the instructions of 64 KiB {a.profile}s go, per command ({commands} commands):")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "net", "profile.py"),
                        prof + ".0", prof + ".1", str(commands)] + elfs + ["--per", "command"], check=False)
    print("   (MB/s in virtual time; insn/MiB: every guest instruction while the load ran, kernel's")
    print("    included; vs Linux: Linux 6.1 usb-storage over ohci-pci on this QEMU, DESIGN.md section 3)")
    if not a.no_keys:
        failed |= not key_bench(a)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
