#!/usr/bin/env python3
"""Runs every test of the project and prints one summary line.

1. Host unit tests: `cargo test` over the workspace's default members, and
   the doctests of console_log (the runner's reading of crossed lines).
2. Protocol verification: `tingu verify` (SPIN) on the protocol library,
   one test per model; a refuted model fails.
3. Boot tests (tests/boot.toml): boot an image in QEMU, bounded by a timeout;
   check the decoded exit status and the serial log, and for screen tests
   what the VGA text screen shows; on the Sabre Lite what a UART shows when
   typed into. A test with a `peer` runs that host program while QEMU runs
   (see `peer_test`).

Ends with `N passed, N failed` and exits non-zero on any failure.
"""
import argparse
import doctest
import os
import re
import socket
import subprocess
import sys
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402
import console_log  # noqa: E402

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
    # The runner's own logic: the console log reconstruction's examples.
    doc = doctest.testmod(console_log)
    print(f"test result: console_log doctests: {doc.attempted - doc.failed} passed; {doc.failed} failed")
    return passed + doc.attempted - doc.failed, failed + doc.failed


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
    """Returns what is wrong with `text` (a log, or the readings of one
    from console_log.readings, which pass if one of them has every
    expected line and none has an unexpected one), or None."""
    texts = (text,) if isinstance(text, str) else text
    problems = [expected_lines(t, test) for t in texts]
    if all(problems):
        return problems[0]
    for pattern in test.get("absent", []):
        for t in texts:
            m = re.search(pattern, t)
            if m:
                return f"unexpected /{pattern}/: {m.group(0)!r}"
    return None


def expected_lines(text, test):
    pos = 0
    for pattern in test.get("expect", []):
        m = re.compile(pattern).search(text, pos)
        if not m:
            return f"expected /{pattern}/ after offset {pos}"
        pos = m.end()
    for pattern in test.get("present", []):
        if not re.search(pattern, text):
            return f"expected /{pattern}/ somewhere in the log"
    return None


def log_matches(pattern, log):
    """Whether the serial log at `log` matches `pattern`, as it came or
    with crossed lines put back together."""
    return any(pattern.search(t) for t in console_log.readings(log))


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
        return log_matches(self.pattern, self.log)


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


def free_port(kind, pair=False):
    """A port free on 127.0.0.1 for UDP and TCP (and the next one, if
    `pair`), found by binding port 0."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        wanted = [port, port + 1] if pair else [port]
        try:
            for p in wanted:
                for k in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, k) as s:
                        s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise OSError("no free port pair on 127.0.0.1")


def peer_test(t, build, log, qmp_path):
    """Boots with the test's network (`net`: "user-forward" or "dgram"),
    waits for `ready` in the serial log, runs the test's `drive` steps if
    it has any, then the `peer` command (its
    placeholders {echo} {status} {port} {qmp} filled in), then quits QEMU
    over QMP. Everything is bounded by the test's `timeout`. Returns
    (status, seconds, peer exit code, peer output)."""
    subst = {"qmp": qmp_path}
    if t["net"] == "user-forward":
        subst["echo"], subst["status"] = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
        net = f"user:{subst['echo']}:{subst['status']}"
    elif t["net"] == "dgram":
        subst["port"] = free_port(socket.SOCK_DGRAM, pair=True)
        net = f"dgram:{subst['port']}"
    else:
        raise ValueError(f"test {t['name']}: unknown net {t['net']!r}")
    cmd = [str(a).format(**subst) for a in t["peer"]]
    cmd[0] = os.path.join(ROOT, "target", "debug", cmd[0])
    begin = time.monotonic()
    deadline = begin + t["timeout"]
    board = t.get("board", "pc")
    out = build if board == "pc" else os.path.join(build, board)
    proc = qemu.start(
        kernel=os.path.join(build, "kernel", t["flavour"], "kernel32.elf"),
        image=os.path.join(out, t["flavour"], t.get("image", "system.elf")),
        disk=os.path.join(build, "usb-disk.img"), log=log, qmp=qmp_path, net=net,
        boot=t.get("boot", "kernel"),
        medium=os.path.join(build, t["medium"]) if "medium" in t else None,
        firmware=t.get("firmware", "seabios"), without=t.get("without", ()), board=board,
        virtio=t.get("virtio", ()), nic=t.get("nic", "rtl8139"))
    ready = re.compile(t["ready"])
    code, output = None, f"(peer not started: /{t['ready']}/ never appeared)"
    while time.monotonic() < deadline and proc.poll() is None:
        if log_matches(ready, log):
            if "drive" in t:
                # The test's QMP steps (hot-plug) first, then the peer.
                drive = Drive(t["drive"], log, os.path.join(build, "usb-disk.img"), deadline)
                drive(qmp_path)
                if drive.problem:
                    code, output = None, f"(peer not started: {drive.problem})"
                    break
            try:
                run = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                     timeout=max(deadline - time.monotonic(), 1))
                code, output = run.returncode, run.stdout + run.stderr
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                code, output = None, out + "\n(peer timed out)"
            break
        time.sleep(0.2)
    qemu.quit(qmp_path)
    status = qemu.stop(proc, max(deadline - time.monotonic(), 5))
    return status, time.monotonic() - begin, code, output


class UartCheck:
    """Types `text` into the Sabre Lite's UART1 (a Unix socket QEMU
    serves) once the serial log matches `ready`, then stops the boot once
    the log matches `stop_at` and what the UART sent has every line of
    `output` (or `drain` seconds after `stop_at`, as the UART's last bytes
    may still be on their way when the log line is there); keeps what the
    UART sent for the report."""

    def __init__(self, log, socket_path, ready, text, stop_at, output, drain=3.0):
        self.log, self.path, self.ready, self.text = log, socket_path, re.compile(ready), text
        self.stop_at, self.want, self.drain = re.compile(stop_at), output, drain
        self.sock, self.typed, self.output, self.stopped_at = None, False, b"", None

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
        if not self.typed and log_matches(self.ready, self.log):
            self.sock.sendall(self.text.encode())
            self.typed = True
        if self.stopped_at is None:
            if not (self.typed and log_matches(self.stop_at, self.log)):
                return False
            self.stopped_at = time.monotonic()
        return (expected_lines(self.text_sent(), {"expect": self.want}) is None
                or time.monotonic() - self.stopped_at > self.drain)

    def text_sent(self):
        return self.output.decode("utf-8", "replace").replace("\r", "")


class Drive:
    """Drives a boot through QMP (a test's `drive` steps), in its own thread.
    Each step waits for a line in the serial log, then acts:

        wait = "regex"              the line to wait for (required)
        type = "abc"                each character is a key (QMP qcode), pressed
                                    and released, `pace_ms` apart (default 40)
        chord = "qwe"               the keys pressed together, held `hold_ms`
        replug = ["usb-kbd", ...]   `cycles` times: unplug every device, plug it
                                    again, wait for each one's `ready` regex
                                    (its {n}, the device's count, starts at
                                    `first`, default 2) before the next cycle

    Every wait is bounded by the test's timeout; the first problem ends the
    driving and is reported with the test."""

    def __init__(self, steps, log, disk, deadline):
        self.steps, self.log, self.disk, self.deadline = steps, log, disk, deadline
        self.problem = None
        self.pos = 0
        self.actions = 0

    def _text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace").replace("\r", "")
        except OSError:
            return ""

    def _wait_line(self, pattern, what):
        # In the log as it came or with crossed lines put back together
        # (console_log): a line another PD cut must not stall the drive.
        rx = re.compile(pattern)
        while time.monotonic() < self.deadline:
            text = self._text()
            end = console_log.search(rx, text, self.pos, console_log.pd_names(text))
            if end is not None:
                self.pos = end
                return
            if re.search(r"all checks passed|FAILED|FAULT", self._text()[self.pos:]):
                raise RuntimeError(f"the run ended before /{pattern}/ ({what})")
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for /{pattern}/ ({what})")

    def __call__(self, qmp_path):
        try:
            qmp = None
            while qmp is None:
                if time.monotonic() > self.deadline:
                    raise RuntimeError("QMP socket never came up")
                try:
                    qmp = qemu.Qmp(qmp_path)
                except OSError:
                    time.sleep(0.05)
            for i, step in enumerate(self.steps):
                self._wait_line(step["wait"], f"drive step {i + 1}")
                self._act(qmp, step)
            qmp.close()
        except (RuntimeError, OSError, ValueError) as e:
            self.problem = f"drive: {e}"

    def _act(self, qmp, step):
        if "type" in step:
            pace = step.get("pace_ms", 40) / 1000
            for c in step["type"]:
                qemu.send_keys(qmp, [c], step.get("hold_ms", 10))
                self.actions += 1
                time.sleep(pace)
        if "keys" in step:
            # QEMU key names (qcodes), one press each: "ret" and the like.
            for k in step["keys"]:
                qemu.send_keys(qmp, [k], step.get("hold_ms", 10))
                self.actions += 1
                time.sleep(step.get("pace_ms", 40) / 1000)
        if "chord" in step:
            qemu.send_keys(qmp, list(step["chord"]), step.get("hold_ms", 300))
            self.actions += 1
        if "replug" in step:
            first = step.get("first", 2)
            for cycle in range(step.get("cycles", 1)):
                for name in step["replug"]:
                    qemu.unplug(qmp, name)
                # Vary the time unplugged: some unplugs land mid-transfer,
                # some plugs mid-debounce of the others.
                time.sleep((cycle % 5) * 0.01)
                for name in step["replug"]:
                    qemu.plug(qmp, name, self.disk)
                    self.actions += 1
                for name, ready in zip(step["replug"], step["ready"]):
                    self._wait_ready(ready.replace("{n}", str(first + cycle)), f"{name} cycle {cycle + 1}")

    def _wait_ready(self, pattern, what):
        # Devices re-announce in any order: search from the step's start.
        start = self.pos
        self._wait_line(pattern, what)
        self.pos = start


def load_tests():
    """boot.toml's tests by name, each with the checks of its checks_of
    test merged in."""
    with open(os.path.join(HERE, "boot.toml"), "rb") as f:
        tests = tomllib.load(f)["test"]
    by_name = {t["name"]: t for t in tests}
    merged = {}
    for t in tests:
        if "checks_of" in t:
            # Another test's checks too (on another boot path), after this
            # test's own expectations: those are about the boot itself.
            base = by_name[t["checks_of"]]
            t = {**t, "outcome": t.get("outcome", base["outcome"])}
            for key in ("expect", "present", "absent", "peer_expect"):
                t[key] = t.get(key, []) + base.get(key, [])
            for key in ("net", "ready", "peer"):
                if key in base and key not in t:
                    t[key] = base[key]
        merged[t["name"]] = t
    return merged


def boot_one(build, t, logdir, name=None):
    """Boots test `t` (from load_tests) once; its files in `logdir` are
    named after `name` (default: the test's). Returns (problem or None,
    seconds, outcome, log path, log text)."""
    name = name or t["name"]
    flavour = t["flavour"]
    board = t.get("board", "pc")
    # The board's outputs: build/ for the pc, build/<board>/ for others.
    out = build if board == "pc" else os.path.join(build, board)
    log = os.path.join(logdir, name + ".log")
    screen = ScreenCheck(t["screen"], t.get("screen_size")) if "screen" in t else None
    uart_socket = os.path.join(logdir, name + ".uart1") if "uart_input" in t else None
    uart = (UartCheck(log, uart_socket, t["uart_ready"], t["uart_input"], t["stop_at"],
                      t.get("uart_output", []))
            if uart_socket else None)
    until = screen or uart or (LogWatch(log, t["stop_at"]) if "stop_at" in t else None)
    qmp_path = os.path.join(logdir, name + ".qmp")
    drive = None
    if "drive" in t and "peer" not in t:
        drive = Drive(t["drive"], log, os.path.join(build, "usb-disk.img"),
                      time.monotonic() + t["timeout"])
    peer_code = peer_out = None
    if "peer" in t:
        status, secs, peer_code, peer_out = peer_test(t, build, log, qmp_path)
        with open(os.path.join(logdir, name + ".peer.log"), "w") as f:
            f.write(peer_out)
    else:
        status, secs = qemu.boot(
            kernel=os.path.join(build, "kernel", flavour, "kernel32.elf"),
            image=os.path.join(out, flavour, t.get("image", "system.elf")),
            board=board, uart1=uart_socket,
            disk=os.path.join(build, "usb-disk.img"),
            log=log, timeout=t["timeout"], icount=t.get("icount", False),
            qmp=qmp_path,
            boot=t.get("boot", "kernel"),
            medium=os.path.join(build, t["medium"]) if "medium" in t else None,
            firmware=t.get("firmware", "seabios"), without=t.get("without", ()),
            until=until, virtio=t.get("virtio", ()), driver=drive, nic=t.get("nic", "rtl8139"))
    outcome = qemu.decode(status)
    text = console_log.readings(log)
    problem = None
    if outcome != t["outcome"]:
        problem = f"outcome {outcome} (status {status}), expected {t['outcome']}"
        if screen and screen.problem():
            problem += "; " + screen.problem()
    elif "peer" in t and peer_code != 0:
        problem = f"peer exited with {peer_code}: " + " | ".join(
            l for l in peer_out.splitlines() if "FAIL" in l or "timed out" in l or "not started" in l)
    else:
        problem = check_log(text, t) or (screen and screen.problem()) or (
            check_log(peer_out, {"expect": t.get("peer_expect", [])}) if "peer" in t else None)
    if uart:
        if not problem:
            problem = check_log(uart.text_sent(), {"expect": t.get("uart_output", [])})
            problem = problem and "UART: " + problem
        with open(os.path.join(logdir, name + ".uart"), "w") as f:
            f.write(uart.text_sent())
    if drive and drive.problem and not problem:
        problem = drive.problem
    if screen:
        with open(os.path.join(logdir, name + ".screen"), "w") as f:
            f.write("\n".join(screen.screen) + "\n")
    return problem, secs, outcome, log, text


def boot_tests(build, only):
    passed = failed = 0
    logdir = os.path.join(build, "test-logs")
    os.makedirs(logdir, exist_ok=True)
    print("== boot tests (QEMU)", flush=True)
    for t in load_tests().values():
        if only and t["name"] not in only:
            continue
        problem, secs, outcome, log, text = boot_one(build, t, logdir)
        if problem:
            failed += 1
            print(f"FAIL {t['name']} ({secs:.1f}s): {problem}; log: {log}")
            print("     last lines: " + " | ".join(text[0].replace("\r", "").strip().splitlines()[-5:]))
        else:
            passed += 1
            print(f"PASS {t['name']} ({secs:.1f}s, {outcome})")
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--boot-only", nargs="*", help="run only these boot tests, no host tests")
    a = ap.parse_args()
    unknown = sorted(set(a.boot_only or ()) - set(load_tests()))
    if unknown:
        ap.error(f"no boot test named {', '.join(unknown)} in tests/boot.toml")
    hp, hf = (0, 0) if a.boot_only is not None else host_tests()
    vp, vf = (0, 0) if a.boot_only is not None else verify_protocols()
    # The host peers of the network tests.
    subprocess.run(["cargo", "build", "-q", "-p", "net-peer"], cwd=ROOT, check=True)
    bp, bf = boot_tests(a.build, a.boot_only)
    print(f"== host: {hp} passed, {hf} failed; protocols: {vp} passed, {vf} failed; "
          f"boot: {bp} passed, {bf} failed")
    print(f"{hp + vp + bp} passed, {hf + vf + bf} failed")
    sys.exit(1 if hf + vf + bf else 0)


if __name__ == "__main__":
    main()
