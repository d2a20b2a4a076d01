#!/usr/bin/env python3
"""`make bench`: boots each benchmark image once under QEMU's -icount mode
(one instruction per virtual nanosecond, so figures repeat exactly), reads
the `bench: <who> <what> <N> cycles` lines, and prints every figure with
its ratio to the raw baseline measured in the same run.

The PDs time with the TSC, which under -icount advances by one per guest
instruction: their "cycles" are instructions executed (user and kernel,
both sides of the exchange), not cycles of any real CPU. The table says so."""
import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

LINE = re.compile(r"bench: (\S+) (\S+) (\d+) cycles")
# Sizes a benchmark reports beside its figures (the port bench: RAM per
# port end), printed under its table as they came.
SIZES = re.compile(r"^\S+: bytes per .*$", re.M)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("images", nargs="+", help="image names under build/release/")
    a = ap.parse_args()
    failed = False
    for name in a.images:
        log = os.path.join(a.build, "bench-logs", name + ".log")
        os.makedirs(os.path.dirname(log), exist_ok=True)
        status, secs = qemu.boot(
            kernel=os.path.join(a.build, "kernel", "release", "kernel32.elf"),
            image=os.path.join(a.build, "release", name + ".elf"),
            disk=os.path.join(a.build, "usb-disk.img"),
            log=log, timeout=300, icount=True)
        with open(log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        figures = {(who, what): int(n) for who, what, n in LINE.findall(text)}
        outcome = qemu.decode(status)
        print(f"== {name} ({outcome}, {secs:.1f}s; log {log})")
        raw = {what: n for (who, what), n in figures.items() if who == "raw"}
        if outcome != "guest-success" or not raw:
            print("   benchmark did not complete")
            failed = True
            continue
        print(f"   {'figure':<30} {'instructions':>12} {'baseline':>9} {'ratio':>7}")
        for (who, what), n in sorted(figures.items()):
            base = raw.get(what)
            ratio = f"{n / base:.3f}x" if base else "-"
            print(f"   {who + ' ' + what:<30} {n:>12} {base or '-':>9} {ratio:>7}")
        print("   (instructions per round trip under -icount, both PDs and the kernel)")
        for line in SIZES.findall(text.replace("\r", "")):
            print(f"   {line}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
