#!/usr/bin/env python3
"""The fault campaign of `make faults`: boots a campaign system
(tests/systems/faults.xml: 1000 faults; faults-100.xml: 100) on the
raw-frame wire, runs the peer's UDP echo stream through it (net-peer
restart), and reads the figures from the guest's log and the peer's.

The campaign's N faults go into rtl8139 (pds/rtl8139's campaign param,
rtl8139-core's campaign module): crash, hang, protocol violation and
garbage from the device in turn. Garbage is one interrupt's worth of
register reads through the corrupting bus (kit/hwio's garbage module):
all ones, which the driver detects (its status reads 0xffff: the device
is gone) and answers by failing, so that the monitor restarts it; or
noise, which its checks detect (impossible status bits, a receive write
offset outside the ring) and it recovers from by itself. Every other
fault ends the instance, and the next instance takes the next fault.

From the log: each injection (its number, class and TSC); each detection,
by the monitor (a fault or a handler overrun, its TSC) or for garbage by
the driver itself; each recovery, by a restart (and how long after the
failure the driver ran again) or by the driver (when it received again);
and what the network PD's shadow did at each restart (requests
outstanding, resubmitted, answered). A request outstanding that was
neither resubmitted nor answered is unanswered. A system crash is the run
not ending normally or any PD but the driver faulting.

Exits non-zero unless every injection was detected and recovered, there
was no system crash, no request was left unanswered and the peer got
every datagram back.

With --system usb-faults (the second half of `make faults`) the campaign
goes into usb-storage instead (tests/systems/usb-faults.xml: 100 faults,
its `campaign` param) while usb-check reads the whole disk 10 times: the
same four classes, the garbage being one status wrapper overwritten in the
DMA window (all ones or noise) that the driver's checks catch and reset
recovery gets over. The disk user's BlockDevice shadow resubmits what was
outstanding at each restart; usb-check fails the run on any request
unanswered for 30 s or answered with an error, and compares every block
of the first read.

The campaign first stalled after some restart, every PD waiting and the
NIC enabled but receiving nothing: QEMU's RTL8139 holds frames back once
its ring is full and takes them again only on a CAPR write, which a chip
reset does not replace; the driver now writes CAPR when it starts the
chip (rtl8139-core's start_chip).
"""
import argparse
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402


def monitor_lines(pd):
    """The monitor's lines about `pd`: its failures, its restarts, and
    faults of any other PD."""
    return (re.compile(rf"monitor: PD '{pd}' failed \((a fault|a handler overrun)\) at tsc (\d+)"),
            re.compile(rf"monitor: restarted PD '{pd}' as incarnation (\d+) at tsc \d+, (\d+) us after it failed"),
            re.compile(rf"monitor: FAULT in PD '(?!{pd}')"))


def shadow_line(component, port, protocol):
    """The client end's report of a restart its shadow got over: the
    incarnation, requests outstanding, resubmitted and answered."""
    return re.compile(rf"component {component} port {port}: {protocol}: the peer restarted \(incarnation (\d+)\);"
                      r".*shadow: (\d+) requests outstanding, replaying \d+ for the state, resubmitting (\d+),"
                      r" answering (\d+)")


INJECTED = re.compile(r"rtl8139: fault injection (\d+): (.+?) after \d+ frames at tsc (\d+)")
FAILED, RESTARTED, OTHER_FAULT = monitor_lines("rtl8139")
# The driver's own verdict on a garbage fault, and its own recovery.
GARBAGE_DETECTED = re.compile(r"rtl8139: fault (\d+) detected: (.+?) at tsc (\d+); (failing|recovering by itself)")
GARBAGE_MISSED = re.compile(r"rtl8139: fault (\d+) not detected")
SELF_RECOVERED = re.compile(r"rtl8139: fault (\d+) recovered by the driver: receiving again at tsc (\d+)")
SHADOW = shadow_line("net", "eth", "EthernetController")
TSC_MHZ = re.compile(r"TSC frequency: (\d+) MHz")
STREAM = re.compile(r"udp-through-restarts: (\d+) of (\d+) datagrams echoed byte for byte, \d+ in flight; "
                    r"(\d+) resent, \d+ duplicate echoes ignored; (\d+) gaps over \S+ "
                    r"\(median (\S+), longest (\S+)\); (\S+)s")

SYSTEMS = {"faults": (1000, 45000), "faults-100": (100, 5000), "usb-faults": (100, None)}
# The classes as the driver names them (rtl8139-core's Class::describe).
NOISE = "garbage from the device (noise)"
GARBAGE = ("garbage from the device (all ones)", NOISE)


def attribute(text, patterns, ends_instance):
    """Who each failure the monitor reports belongs to: the fault injected
    last before it that ends an instance (`ends_instance(class)`), and
    each restart to the failure before it. A failure with no such fault
    pending (a handler overrun under host load, say) is unplanned.
    `patterns`: the driver's injection line, the monitor's failure and
    restart lines. Returns the failures by fault (why, tsc), the restart
    times by fault (us), the unplanned count, and every failure's why."""
    injected, failed, restarted = patterns
    by_monitor, restart_of, unplanned, failures = {}, {}, 0, []
    pending = owner = None
    for line in text.splitlines():
        if m := injected.search(line):
            if ends_instance(m.group(2)):
                pending = int(m.group(1))
        elif m := failed.search(line):
            failures.append(m.group(1))
            owner, pending = pending, None
            if owner is None:
                unplanned += 1
            else:
                by_monitor[owner] = (m.group(1), int(m.group(2)))
        elif (m := restarted.search(line)) and owner is not None:
            restart_of[owner] = int(m.group(2))
            owner = None
    return by_monitor, restart_of, unplanned, failures


def print_times(latency, recovery):
    for cls, values in sorted(latency.items()):
        print(f"detection latency, {cls}: {spread(values, 'ms')} ({len(values)})")
    for how, values in sorted(recovery.items()):
        print(f"recovery time, {how}: {spread(values, 'ms')} ({len(values)})")


def spread(values, unit):
    if not values:
        return "none"
    return f"median {statistics.median(values):.1f} {unit}, worst {max(values):.1f} {unit}"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(run.ROOT, "build"))
    ap.add_argument("--system", default="faults", choices=sorted(SYSTEMS),
                    help="faults: 1000 faults (make faults); faults-100: 100")
    a = ap.parse_args()
    faults, datagrams = SYSTEMS[a.system]
    if datagrams is None:
        return usb_campaign(a.build, a.system, faults)
    logdir = os.path.join(a.build, "test-logs")
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, f"campaign-{a.system}.log")
    t = {"name": a.system, "flavour": "debug", "image": f"{a.system}.elf", "timeout": 900,
         "net": "dgram", "ready": r"net: address 10\.0\.2\.15/24 \(static\)",
         "peer": ["net-peer", "restart", "{port}", str(datagrams), "100"]}
    print(f"[faults] {a.system}: {faults} faults into rtl8139 (crash, hang, violation, garbage) "
          f"during {datagrams} UDP echoes", flush=True)
    status, secs, code, peer = run.peer_test(t, a.build, log, os.path.join(logdir, f"campaign-{a.system}.qmp"))
    with open(log, "rb") as f:
        text = f.read().decode("utf-8", "replace").replace("\r", "")
    with open(log + ".peer", "w") as f:
        f.write(peer)

    mhz = int(m.group(1)) if (m := TSC_MHZ.search(text)) else 0
    ms = (lambda ticks: ticks / mhz / 1000) if mhz else (lambda ticks: 0.0)
    injected = {int(k): (cls, int(tsc)) for k, cls, tsc in INJECTED.findall(text)}
    failures = [(why, int(tsc)) for why, tsc in FAILED.findall(text)]
    restarts = {int(n) - 1: int(us) for n, us in RESTARTED.findall(text)}
    own = {int(k): (why, int(tsc), then) for k, why, tsc, then in GARBAGE_DETECTED.findall(text)}
    missed = {int(k) for k in GARBAGE_MISSED.findall(text)}
    self_recovered = {int(k): int(tsc) for k, tsc in SELF_RECOVERED.findall(text)}
    shadows = [tuple(map(int, s)) for s in SHADOW.findall(text)]
    unanswered = sum(out - res - ans for _, out, res, ans in shadows)
    resubmitted = sum(res for _, _, res, _ in shadows)
    answered = sum(ans for _, _, _, ans in shadows)
    crashes = len(OTHER_FAULT.findall(text)) + (0 if run.qemu.decode(status) == "qemu-shutdown" else 1)

    by_monitor, restart_of, unplanned, _ = attribute(
        text, (INJECTED, FAILED, RESTARTED), lambda cls: cls != NOISE)
    detected, recovered, latency, recovery = set(), set(), {}, {}
    for k, (cls, at) in sorted(injected.items()):
        if cls in GARBAGE:
            # The driver's own checks must notice garbage.
            if k not in own:
                continue
            detected.add(k)
            latency.setdefault(cls, []).append(ms(own[k][1] - at))
            if cls == NOISE:
                if k in self_recovered:
                    recovered.add(k)
                    recovery.setdefault("by the driver", []).append(ms(self_recovered[k] - own[k][1]))
                continue
        elif k in by_monitor:
            detected.add(k)
            latency.setdefault(cls, []).append(ms(by_monitor[k][1] - at))
        if k in restart_of:
            recovered.add(k)
            recovery.setdefault("by a restart (backoff included)", []).append(restart_of[k] / 1000)
    stream = STREAM.search(peer)

    classes = {}
    for cls, _ in injected.values():
        classes[cls] = classes.get(cls, 0) + 1
    print(f"injected   {len(injected)} of {faults}: " + ", ".join(f"{n} {c}" for c, n in classes.items()))
    print(f"detected   {len(detected)} ({sum(1 for w, _ in failures if w == 'a fault')} faults and "
          f"{sum(1 for w, _ in failures if w != 'a fault')} handler overruns seen by the monitor; "
          f"{sum(1 for k in own if own[k][2] == 'failing')} garbage faults seen by the driver, which failed, "
          f"{sum(1 for k in own if own[k][2] != 'failing')} it recovered from itself; "
          f"{len(missed)} garbage faults passed its checks)")
    reasons = {}
    for why, _, _ in own.values():
        reasons[why] = reasons.get(why, 0) + 1
    for why, n in sorted(reasons.items()):
        print(f"  garbage detected by: {why}: {n}")
    print(f"recovered  {len(recovered)} ({len(restarts)} restarts, {len(self_recovered)} by the driver)")
    print(f"unplanned failures (no fault injected; each also restarted) {unplanned}")
    print(f"system crashes {crashes}; requests left unanswered {unanswered} "
          f"(shadow: {resubmitted} resubmitted, {answered} answered over {len(shadows)} restarts)")
    print_times(latency, recovery)
    if stream:
        echoed, count, resent, gaps, median, longest, took = stream.groups()
        per = int(resent) / max(len(recovered), 1)
        print(f"echo stream: {echoed} of {count} echoed in {took} s; {resent} datagrams lost and resent "
              f"({per:.1f} per recovery); {gaps} gaps over 50 ms, median {median}, longest {longest}")
    else:
        print("echo stream: no result from the peer:\n" + peer.strip())
    print(f"run: {secs:.0f} s; logs {log} and {log}.peer")
    ok = (len(injected) == faults and len(detected) == faults and len(recovered) == faults
          and unplanned == 0 and crashes == 0 and unanswered == 0 and code == 0 and stream is not None)
    print("[faults] " + ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


USB_INJECTED = re.compile(r"usb-storage: fault injection (\d+): (.+?) after \d+ commands at tsc (\d+)")
USB_FAILED, USB_RESTARTED, USB_OTHER_FAULT = monitor_lines("usb-storage")
USB_DETECTED = re.compile(r"usb-storage: fault (\d+) detected: .+? at tsc (\d+); recovering by itself")
USB_MISSED = re.compile(r"usb-storage: fault (\d+) not detected")
USB_RECOVERED = re.compile(r"usb-storage: fault (\d+) recovered by the driver: commands pass again at tsc (\d+)")
USB_SHADOW = shadow_line("usb-check", "blk", "BlockDevice")
USB_GARBAGE = "garbage from the device"


def usb_campaign(build, system, faults):
    """The campaign into usb-storage; the same figures as for rtl8139,
    with the disk reads in place of the echo stream."""
    logdir = os.path.join(build, "test-logs")
    os.makedirs(logdir, exist_ok=True)
    t = {"name": system, "flavour": "debug", "image": f"{system}.elf", "timeout": 600,
         "outcome": "guest-success",
         "expect": [r"usb-check: read every block of the disk \(16 MiB\) and compared: all match",
                    r"usb-check: all checks passed"]}
    print(f"[faults] {system}: {faults} faults into usb-storage (crash, hang, violation, garbage) "
          f"during 10 reads of the whole disk", flush=True)
    problem, secs, outcome, log, readings = run.boot_one(build, t, logdir, f"campaign-{system}")
    # The log with lines that PDs crossed put back together.
    text = readings[-1].replace("\r", "")
    mhz = int(m.group(1)) if (m := TSC_MHZ.search(text)) else 0
    ms = (lambda ticks: ticks / mhz / 1000) if mhz else (lambda ticks: 0.0)
    injected = {int(k): (cls, int(tsc)) for k, cls, tsc in USB_INJECTED.findall(text)}
    own = {int(k): int(tsc) for k, tsc in USB_DETECTED.findall(text)}
    missed = {int(k) for k in USB_MISSED.findall(text)}
    self_recovered = {int(k): int(tsc) for k, tsc in USB_RECOVERED.findall(text)}
    shadows = [tuple(map(int, x)) for x in USB_SHADOW.findall(text)]
    unanswered = sum(out - res - ans for _, out, res, ans in shadows)
    resubmitted = sum(res for _, _, res, _ in shadows)
    crashes = len(USB_OTHER_FAULT.findall(text)) + (0 if outcome == "guest-success" else 1)
    # As for rtl8139: a failure belongs to the last fault injected before
    # it that ends an instance, a restart to the failure before it.
    by_monitor, restart_of, unplanned, failures = attribute(
        text, (USB_INJECTED, USB_FAILED, USB_RESTARTED), lambda cls: not cls.startswith(USB_GARBAGE))
    detected, recovered, latency, recovery = set(), set(), {}, {}
    for k, (cls, at) in sorted(injected.items()):
        if cls.startswith(USB_GARBAGE):
            if k in own:
                detected.add(k)
                latency.setdefault(cls, []).append(ms(own[k] - at))
                if k in self_recovered:
                    recovered.add(k)
                    recovery.setdefault("by the driver", []).append(ms(self_recovered[k] - own[k]))
        elif k in by_monitor:
            detected.add(k)
            latency.setdefault(cls, []).append(ms(by_monitor[k][1] - at))
            if k in restart_of:
                recovered.add(k)
                recovery.setdefault("by a restart (backoff included)", []).append(restart_of[k] / 1000)
    classes = {}
    for cls, _ in injected.values():
        classes[cls] = classes.get(cls, 0) + 1
    print(f"injected   {len(injected)} of {faults}: " + ", ".join(f"{n} {c}" for c, n in classes.items()))
    print(f"detected   {len(detected)} ({sum(1 for w in failures if w == 'a fault')} faults and "
          f"{sum(1 for w in failures if w != 'a fault')} handler overruns seen by the monitor; "
          f"{len(own)} garbage status wrappers caught by the driver's checks; {len(missed)} passed them)")
    print(f"recovered  {len(recovered)} ({len(restart_of)} restarts, {len(self_recovered)} by the driver)")
    print(f"unplanned failures (no fault injected; each also restarted) {unplanned}")
    print(f"system crashes {crashes}; requests left unanswered {unanswered} "
          f"(shadow: {resubmitted} resubmitted over {len(shadows)} restarts)")
    print_times(latency, recovery)
    print(f"disk reads: {'every read answered OK, the first read compared' if not problem else problem}")
    print(f"run: {secs:.0f} s; log {log}")
    ok = (len(injected) == faults and len(detected) == faults and len(recovered) == faults
          and unplanned == 0 and crashes == 0 and unanswered == 0 and problem is None)
    print("[faults] " + ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
