#!/usr/bin/env python3
"""The fault campaign of `make faults`: boots a campaign system
(tests/systems/faults.xml: 1000 faults; faults-100.xml: 100) on the
raw-frame wire, runs the peer's UDP echo stream through it (net-peer
restart), and reads the figures from the guest's log and the peer's.

The driver's first N instances each get one fault (crash, hang, protocol
violation in turn; pds/rtl8139's campaign param). From the log: each
injection (its class and TSC), each detection by the monitor (a fault or
a handler overrun, its TSC), each restart (and how long after the failure
it ran again), and what the network PD's shadow did at each restart
(requests outstanding, resubmitted, answered). A request outstanding that
was neither resubmitted nor answered is unanswered. A system crash is the
run not ending normally or any PD but the driver faulting.

Exits non-zero unless every injection was detected and recovered, there
was no system crash, no request was left unanswered and the peer got
every datagram back.

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

INJECTED = re.compile(r"rtl8139: fault injection (\d+): (.+?) after \d+ frames at tsc (\d+)")
FAILED = re.compile(r"monitor: PD 'rtl8139' failed \((a fault|a handler overrun)\) at tsc (\d+)")
RESTARTED = re.compile(r"monitor: restarted PD 'rtl8139' as incarnation (\d+) at tsc \d+, (\d+) us after it failed")
SHADOW = re.compile(r"component net port eth: EthernetController: the peer restarted \(incarnation (\d+)\);"
                    r".*shadow: (\d+) requests outstanding, replaying \d+ for the state, resubmitting (\d+),"
                    r" answering (\d+)")
OTHER_FAULT = re.compile(r"monitor: FAULT in PD '(?!rtl8139')")
TSC_MHZ = re.compile(r"TSC frequency: (\d+) MHz")
STREAM = re.compile(r"udp-through-restarts: (\d+) of (\d+) datagrams echoed byte for byte, \d+ in flight; "
                    r"(\d+) resent, \d+ duplicate echoes ignored; (\d+) gaps over \S+ "
                    r"\(median (\S+), longest (\S+)\); (\S+)s")

SYSTEMS = {"faults": (1000, 45000), "faults-100": (100, 5000)}


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
    logdir = os.path.join(a.build, "test-logs")
    os.makedirs(logdir, exist_ok=True)
    log = os.path.join(logdir, f"campaign-{a.system}.log")
    t = {"name": a.system, "flavour": "debug", "image": f"{a.system}.elf", "timeout": 900,
         "net": "dgram", "ready": r"net: address 10\.0\.2\.15/24 \(static\)",
         "peer": ["net-peer", "restart", "{port}", str(datagrams), "100"]}
    print(f"[faults] {a.system}: {faults} faults into rtl8139 during {datagrams} UDP echoes", flush=True)
    status, secs, code, peer = run.peer_test(t, a.build, log, os.path.join(logdir, f"campaign-{a.system}.qmp"))
    with open(log, "rb") as f:
        text = f.read().decode("utf-8", "replace").replace("\r", "")
    with open(log + ".peer", "w") as f:
        f.write(peer)

    mhz = int(m.group(1)) if (m := TSC_MHZ.search(text)) else 0
    injected = {int(n): (cls, int(tsc)) for n, cls, tsc in INJECTED.findall(text)}
    detected = [(why, int(tsc)) for why, tsc in FAILED.findall(text)]
    recovered = {int(n) - 1: int(us) for n, us in RESTARTED.findall(text)}
    shadows = [tuple(map(int, s)) for s in SHADOW.findall(text)]
    unanswered = sum(out - res - ans for _, out, res, ans in shadows)
    resubmitted = sum(res for _, _, res, _ in shadows)
    answered = sum(ans for _, _, _, ans in shadows)
    crashes = len(OTHER_FAULT.findall(text)) + (0 if run.qemu.decode(status) == "qemu-shutdown" else 1)

    # Detection latency per class: injection to the monitor's verdict. The
    # failures come in incarnation order, one per instance.
    latency = {}
    for n, (why, tsc) in enumerate(detected, start=1):
        if n in injected and mhz:
            cls, at = injected[n]
            latency.setdefault(cls, []).append((tsc - at) / mhz / 1000)
    stream = STREAM.search(peer)

    print(f"injected   {len(injected)} of {faults}")
    print(f"detected   {len(detected)} ({sum(1 for w, _ in detected if w == 'a fault')} faults, "
          f"{sum(1 for w, _ in detected if w != 'a fault')} handler overruns)")
    print(f"recovered  {len(recovered)}")
    print(f"system crashes {crashes}; requests left unanswered {unanswered} "
          f"(shadow: {resubmitted} resubmitted, {answered} answered over {len(shadows)} restarts)")
    for cls, values in sorted(latency.items()):
        print(f"detection latency, {cls}: {spread(values, 'ms')} ({len(values)})")
    print(f"recovery time (failure to running again, backoff included): "
          f"{spread([us / 1000 for us in recovered.values()], 'ms')}")
    if stream:
        echoed, count, resent, gaps, median, longest, took = stream.groups()
        per = int(resent) / max(len(recovered), 1)
        print(f"echo stream: {echoed} of {count} echoed in {took} s; {resent} datagrams lost and resent "
              f"({per:.1f} per recovery); {gaps} gaps over 50 ms, median {median}, longest {longest}")
    else:
        print("echo stream: no result from the peer:\n" + peer.strip())
    print(f"run: {secs:.0f} s; logs {log} and {log}.peer")
    ok = (len(injected) == faults and len(detected) == faults and len(recovered) == faults
          and crashes == 0 and unanswered == 0 and code == 0 and stream is not None)
    print("[faults] " + ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
