#!/usr/bin/env python3
"""Boots boot tests (tests/boot.toml) many times each, for failures that
show only in some boots (an interrupt landing in a narrow window).

    tools/boot-loop.py timer example-system -n 60

Each boot is bounded by the test's own timeout and checked as `make test`
checks it; a boot whose kernel reports an exception, or whose log shows a
line the test forbids (its `absent` patterns), is stopped there rather than
left to run into the timeout (a halted kernel never exits QEMU). The files
of every failed boot are kept as build/test-logs/<test>-loop-<n>.*. Prints
one line per failed boot, with what ended it, and a summary per test; exits
non-zero if any boot failed. Not part of `make test`: run it after
`make image-debug` when a change touches interrupts or the kernel.
"""
import argparse
import os
import re
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside tests/run.py
sys.path.insert(0, os.path.join(ROOT, "tests"))
import run  # noqa: E402

# The debug kernel's report before it halts (handleKernelException).
KERNEL_EXCEPTION = r"=+ KERNEL EXCEPTION =+"


def why(text, problem, absent):
    """What ended a failed boot, in one line: the kernel's exception report
    (vector, error code, IP), else the monitor's report of a PD fault, else
    the first line the test forbids, else the check that failed."""
    m = re.search(KERNEL_EXCEPTION + r"\s*\n((?:\w+:.*\n){1,3})", text)
    if m:
        return "kernel exception: " + ", ".join(" ".join(line.split()) for line in m.group(1).splitlines())
    m = re.search(r"monitor: FAULT in PD .*", text)
    if m:
        return m.group(0)
    for line in text.splitlines():
        if any(re.search(p, line) for p in absent):
            return line.strip()
    return problem


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tests", nargs="+", help="boot test names from tests/boot.toml")
    ap.add_argument("-n", "--boots", type=int, default=60, help="boots per test (default 60)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    # A plain kill would leave the QEMU of the current boot running; as an
    # exception it passes through qemu.boot, which kills it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tests = run.load_tests()
    unknown = [name for name in a.tests if name not in tests]
    if unknown:
        sys.exit(f"boot-loop: no boot test {', '.join(unknown)} in tests/boot.toml")
    logdir = os.path.join(a.build, "test-logs")
    os.makedirs(logdir, exist_ok=True)
    any_failed = False
    for name in a.tests:
        test = tests[name]
        if "stop_at" not in test and "screen" not in test:
            doomed = [KERNEL_EXCEPTION] + test.get("absent", [])
            test = {**test, "stop_at": "|".join(f"(?:{p})" for p in doomed)}
        failed = []
        for i in range(1, a.boots + 1):
            loop_name = f"{name}-loop-{i}"
            problem, secs, _, log, text = run.boot_one(a.build, test, logdir, loop_name)
            if problem:
                failed.append(i)
                problem = why(text, problem, test.get("absent", []))
                print(f"FAIL {name} boot {i} ({secs:.1f}s): {problem}; log: {log}", flush=True)
                print("     last lines: " + " | ".join(text.strip().splitlines()[-3:]), flush=True)
            # A passed boot's files go; a failed one keeps all but its
            # sockets (QMP, UART), of no use once QEMU is gone.
            for f in os.listdir(logdir):
                if f.startswith(loop_name + ".") and (not problem or f.endswith((".qmp", ".uart1"))):
                    os.remove(os.path.join(logdir, f))
        print(f"{name}: {a.boots - len(failed)} of {a.boots} boots passed"
              + (f"; failed: boot {', '.join(map(str, failed))}" if failed else ""), flush=True)
        any_failed = any_failed or bool(failed)
    sys.exit(1 if any_failed else 0)


if __name__ == "__main__":
    main()
