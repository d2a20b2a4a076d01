#!/usr/bin/env python3
"""Runs every test of the project and prints one summary line.

1. Host unit tests: `cargo test` over the workspace's default members.
2. Protocol verification: `tingu verify` (SPIN) on the protocol library,
   one test per model; a refuted model fails.
3. Boot tests (tests/boot.toml): boot an image in QEMU, bounded by a timeout;
   check the decoded exit status and the serial log, and for screen tests
   what the VGA text screen shows; on the Sabre Lite what a UART shows when
   typed into.

Ends with `N passed, N failed` and exits non-zero on any failure.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed")


def host_tests():
    print("== host unit tests (cargo test)", flush=True)
    proc = subprocess.Popen(["cargo", "test", "--color", "never"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    passed = failed = 0
    for line in proc.stdout:
        sys.stdout.write(line)
        m = RESULT.search(line)
        if m:
            passed += int(m.group(1))
            failed += int(m.group(2))
    if proc.wait() != 0 and failed == 0:
        print("FAIL cargo test exited non-zero before running its tests (build error?)")
        failed += 1
    return passed, failed


def verify_protocols():
    """`tingu verify` on tingu/dingo-protocols: one result per model."""
    print("== protocol verification (tingu verify, SPIN)", flush=True)
    lib = os.path.join(ROOT, "tingu", "dingo-protocols")
    files = sorted(os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".tingu"))
    proc = subprocess.run(["cargo", "run", "-q", "-p", "tingu", "--", "verify", *files],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    passed = sum(1 for line in proc.stdout.splitlines() if line.startswith("verified "))
    m = re.search(r"^(\d+) of (\d+) models failed$", proc.stdout, re.MULTILINE)
    failed = int(m.group(1)) if m else 0
    if proc.returncode != 0 and failed == 0:
        print("FAIL tingu verify exited non-zero without a verdict")
        failed = 1
    return passed, failed


def check_log(text, test):
    """Returns what is wrong with the serial log, or None."""
    pos = 0
    for pattern in test.get("expect", []):
        m = re.compile(pattern).search(text, pos)
        if not m:
            return f"expected /{pattern}/ after offset {pos}"
        pos = m.end()
    for pattern in test.get("present", []):
        if not re.search(pattern, text):
            return f"expected /{pattern}/ somewhere in the log"
    for pattern in test.get("absent", []):
        m = re.search(pattern, text)
        if m:
            return f"unexpected /{pattern}/: {m.group(0)!r}"
    return None


def screen_matches(patterns, screen):
    """Index of the first of `patterns` not found on the screen (in order,
    each after the last; ^ and $ match at each row), or None if all are."""
    text = "\n".join(screen)
    pos = 0
    for i, pattern in enumerate(patterns):
        m = re.compile(pattern, re.MULTILINE).search(text, pos)
        if not m:
            return i
        pos = m.end()
    return None


class LogWatch:
    """Stops a boot once the serial log matches `pattern` (for systems that
    run on, as on a PC, instead of ending the run)."""

    def __init__(self, log, pattern):
        self.log, self.pattern = log, re.compile(pattern)

    def __call__(self, _qmp):
        with open(self.log, "rb") as f:
            return bool(self.pattern.search(f.read().decode("utf-8", "replace")))


class ScreenCheck:
    """Stops a boot once the VGA text screen shows every pattern; keeps the
    last screen it read for the report."""

    def __init__(self, patterns, size):
        self.patterns, self.size = patterns, size
        self.screen, self.shown_size, self.missing = [], None, 0

    def __call__(self, qmp):
        self.screen = qemu.vga_text(qmp)
        self.missing = screen_matches(self.patterns, self.screen)
        if self.missing is not None:
            return False
        self.shown_size = qemu.screen_size(qmp)
        return True

    def problem(self):
        if self.missing is not None:
            return f"screen never showed /{self.patterns[self.missing]}/"
        if self.size and self.shown_size != tuple(self.size):
            return f"screen is {self.shown_size[0]}x{self.shown_size[1]} pixels, expected {self.size[0]}x{self.size[1]} (VGA text mode)"
        return None


class UartCheck:
    """Types `text` into the Sabre Lite's UART1 (a Unix socket QEMU
    serves) once the serial log matches `ready`, then stops the boot once
    the log matches `stop_at`; keeps what the UART sent for the report."""

    def __init__(self, log, socket_path, ready, text, stop_at):
        self.log, self.path, self.ready, self.text = log, socket_path, re.compile(ready), text
        self.stop_at = re.compile(stop_at)
        self.sock, self.typed, self.output = None, False, b""

    def __call__(self, _qmp):
        if self.sock is None:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.path)
                self.sock.setblocking(False)
            except OSError:
                self.sock = None
                return False
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.output += data
        except BlockingIOError:
            pass
        with open(self.log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        if not self.typed and self.ready.search(log):
            self.sock.sendall(self.text.encode())
            self.typed = True
        return self.typed and bool(self.stop_at.search(log))

    def text_sent(self):
        return self.output.decode("utf-8", "replace").replace("\r", "")


def boot_tests(build, only):
    with open(os.path.join(HERE, "boot.toml"), "rb") as f:
        tests = tomllib.load(f)["test"]
    passed = failed = 0
    logdir = os.path.join(build, "test-logs")
    os.makedirs(logdir, exist_ok=True)
    print("== boot tests (QEMU)", flush=True)
    by_name = {t["name"]: t for t in tests}
    for t in tests:
        if only and t["name"] not in only:
            continue
        if "checks_of" in t:
            # Another test's checks too (on another boot path), after this
            # test's own expectations: those are about the boot itself.
            base = by_name[t["checks_of"]]
            t = {**t, "outcome": t.get("outcome", base["outcome"])}
            for key in ("expect", "present", "absent"):
                t[key] = t.get(key, []) + base.get(key, [])
        flavour = t["flavour"]
        board = t.get("board", "pc")
        # The board's outputs: build/ for the pc, build/<board>/ for others.
        out = build if board == "pc" else os.path.join(build, board)
        log = os.path.join(logdir, t["name"] + ".log")
        screen = ScreenCheck(t["screen"], t.get("screen_size")) if "screen" in t else None
        uart_socket = os.path.join(logdir, t["name"] + ".uart1") if "uart_input" in t else None
        uart = (UartCheck(log, uart_socket, t["uart_ready"], t["uart_input"], t["stop_at"])
                if uart_socket else None)
        until = screen or uart or (LogWatch(log, t["stop_at"]) if "stop_at" in t else None)
        status, secs = qemu.boot(
            kernel=os.path.join(build, "kernel", flavour, "kernel32.elf"),
            image=os.path.join(out, flavour, t.get("image", "system.elf")),
            board=board, uart1=uart_socket,
            disk=os.path.join(build, "usb-disk.img"),
            log=log, timeout=t["timeout"], icount=t.get("icount", False),
            qmp=os.path.join(logdir, t["name"] + ".qmp"),
            boot=t.get("boot", "kernel"),
            medium=os.path.join(build, t["medium"]) if "medium" in t else None,
            firmware=t.get("firmware", "seabios"), without=t.get("without", ()),
            until=until)
        outcome = qemu.decode(status)
        with open(log, "rb") as f:
            text = f.read().decode("utf-8", "replace").replace("\r", "")
        problem = None
        if outcome != t["outcome"]:
            problem = f"outcome {outcome} (status {status}), expected {t['outcome']}"
            if screen and screen.problem():
                problem += "; " + screen.problem()
        else:
            problem = check_log(text, t) or (screen and screen.problem())
        if uart:
            if not problem:
                problem = check_log(uart.text_sent(), {"expect": t.get("uart_output", [])})
                problem = problem and "UART: " + problem
            with open(os.path.join(logdir, t["name"] + ".uart"), "w") as f:
                f.write(uart.text_sent())
        if screen:
            with open(os.path.join(logdir, t["name"] + ".screen"), "w") as f:
                f.write("\n".join(screen.screen) + "\n")
        if problem:
            failed += 1
            print(f"FAIL {t['name']} ({secs:.1f}s): {problem}; log: {log}")
            print("     last lines: " + " | ".join(text.strip().splitlines()[-5:]))
        else:
            passed += 1
            print(f"PASS {t['name']} ({secs:.1f}s, {outcome})")
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--boot-only", nargs="*", help="run only these boot tests, no host tests")
    a = ap.parse_args()
    hp, hf = (0, 0) if a.boot_only is not None else host_tests()
    vp, vf = (0, 0) if a.boot_only is not None else verify_protocols()
    bp, bf = boot_tests(a.build, a.boot_only)
    print(f"== host: {hp} passed, {hf} failed; protocols: {vp} passed, {vf} failed; "
          f"boot: {bp} passed, {bf} failed")
    print(f"{hp + vp + bp} passed, {hf + vf + bf} failed")
    sys.exit(1 if hf + vf + bf else 0)


if __name__ == "__main__":
    main()
