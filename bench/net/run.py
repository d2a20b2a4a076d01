#!/usr/bin/env python3
"""The net bench (`make bench`, after bench/run.py): boots the UDP echo
image of each NIC (bench/net/net-echo.xml on the RTL8139,
bench/net/virtio-net-echo.xml on virtio-net-pci; the same net PD binary,
10.0.2.15/24, port 7) under QEMU's -icount
on the raw-frame wire, with the TCG plugin bench/net/insn-count.c counting
guest instructions, and drives it with tests/peers/net-peer's bench load:
64- and 1472-byte datagrams with 32 in flight, and 64-byte ping-pong (one
in flight). For each it prints echoed packets per second (host time),
guest instructions per echoed packet split into the driver PD's and the
net PD's busy time (their own code and their kernel calls, from the TSC,
which under -icount counts instructions) and the rest (kernel work
outside them: interrupt delivery, scheduling, PD switches), the kernel's
share of everything (the plugin's upper-half count), and the round trip's
median and 99th percentile. Ratios are to the Linux 6.1 figures measured
on this QEMU with the same NIC (8139too, virtio_net; shared/DESIGN.md
section 3); Linux is not run here. The other rows also give packets
per second as a ratio to the RTL8139's of the same run and load. The
RTL8139 runs in both of its receive modes, each its own image of the same
system (net-echo.xml: normal mode, set in net-echo.dingo.toml;
net-echo-cplus.xml: C+ mode), so both are measured in the same run.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))
import qemu  # noqa: E402

READY = re.compile(r"net: address 10\.0\.2\.15/24 \(static\)")
LINE = re.compile(r"bench: (.*)")
# (payload bytes, in flight, echoes, Linux 6.1 instructions per echo with
# 8139too, with virtio_net; None: not measured)
RUNS = [(64, 32, 20000, 12300, 13800), (1472, 32, 10000, None, None), (64, 1, 3000, 15300, None)]
# (name, image under build/release/, qemu.py virtio devices, the driver PD)
NICS = [("rtl8139", "bench-net-net-echo.elf", (), "rtl8139"),
        ("rtl8139 C+", "bench-net-net-echo-cplus.elf", (), "rtl8139"),
        ("virtio-net", "bench-net-virtio-net-echo.elf", ("net",), "virtio-net")]


def free_pair():
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise OSError("no free UDP port pair")


def one(build, plugin, image, size, inflight, count, logdir, profile, nic, virtio, driver):
    name = f"net-echo-{nic.replace(' C+', '-cplus')}-{size}-{inflight}"
    log = os.path.join(logdir, name + ".log")
    counters = os.path.join(logdir, name + ".counters")
    qmp = os.path.join(logdir, name + ".qmp")
    prof = os.path.join(logdir, name + ".profile") if profile else None
    port = free_pair()
    plugin_args = f"{plugin},out={counters}" + (f",profile={prof}" if prof else "")
    proc = qemu.start(
        kernel=os.path.join(build, "kernel", "release", "kernel32.elf"),
        image=image, disk=os.path.join(build, "usb-disk.img"), log=log,
        qmp=qmp, net=f"dgram:{port}", virtio=virtio,
        # sleep=on: while the guest idles (waiting for the host), virtual
        # time follows real time instead of racing through timer ticks.
        extra=["-icount", "shift=0,align=off,sleep=on", "-plugin", plugin_args])
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return None, f"QEMU exited ({proc.returncode}); log {log}"
            with open(log, "rb") as f:
                if READY.search(f.read().decode("utf-8", "replace")):
                    break
            time.sleep(0.2)
        else:
            return None, f"never ready; log {log}"
        peer = os.path.join(ROOT, "target", "release", "net-peer")
        run = subprocess.run([peer, "bench", str(port), str(size), str(inflight), str(count), counters]
                             + ([prof] if prof else []),
                             capture_output=True, text=True, timeout=max(deadline - time.monotonic(), 1))
        m = LINE.search(run.stdout)
        if run.returncode != 0 or not m:
            return None, f"peer failed: {run.stdout.strip()} {run.stderr.strip()}"
        if prof:
            target = os.path.join(ROOT, "target", "sel4-release", "x86_64-unknown-linux-gnu", "release")
            elfs = [os.path.join(build, "kernel", "release", "kernel.elf")] + [
                os.path.join(target, pd) for pd in (driver, "net", "timer", "pci")]
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "net", "profile.py"),
                            prof + ".0", prof + ".1", str(count)] + elfs, check=False)
            for suffix in ("", ".0", ".1"):
                os.remove(prof + suffix)
        return dict(kv.split("=") for kv in m.group(1).split()), None
    except subprocess.TimeoutExpired:
        return None, "peer timed out"
    finally:
        qemu.quit(qmp)
        qemu.stop(proc, 10)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--plugin", required=True, help="the insn-count plugin (.so)")
    ap.add_argument("--nic", action="append", choices=[n[0] for n in NICS],
                    help="only this NIC (default: all)")
    ap.add_argument("--load", action="append", metavar="SIZE:INFLIGHT",
                    help="only these loads (default: all)")
    ap.add_argument("--profile", action="store_true",
                    help="also print where the instructions go (bench/net/profile.py)")
    a = ap.parse_args()
    logdir = os.path.join(a.build, "bench-logs")
    os.makedirs(logdir, exist_ok=True)
    runs = [r for r in RUNS if not a.load or f"{r[0]}:{r[1]}" in a.load]
    print("== net bench: UDP echo on the raw-frame wire, -icount, guest instructions by TCG plugin")
    print(f"   {'nic':<11} {'load':<20} {'pkt/s':>7} {'insn/pkt':>9} {'driver':>7} {'net':>7} {'rest':>7} "
          f"{'kernel':>7} {'idle':>7} {'rtt p50':>8} {'rtt p99':>8} {'vs Linux':>9} {'pps vs rtl8139':>15}")
    failed = False
    pps = {}
    insns = {}
    for nic, image, virtio, driver in NICS:
        if a.nic and nic not in a.nic:
            continue
        image = os.path.join(a.build, "release", image)
        for size, inflight, count, linux_rtl, linux_virtio in runs:
            linux = linux_virtio if virtio else linux_rtl
            r, err = one(a.build, a.plugin, image, size, inflight, count, logdir, a.profile,
                         nic, virtio, driver)
            load = f"{size} B, {inflight} in flight"
            if err:
                print(f"   {nic:<11} {load:<20} did not complete: {err}")
                failed = True
                continue
            n = int(r["echoed"])
            per = {k: int(r[k]) / n for k in ("insns", "kernel", "busy", "driver", "net")}
            rest = per["busy"] - per["driver"] - per["net"]
            idle = per["insns"] - per["busy"]
            ratio = f"{per['busy'] / linux:.2f}x" if linux else "-"
            rate = n / float(r["seconds"])
            pps[(nic, size, inflight)] = rate
            insns[(nic, size, inflight)] = per["busy"]
            base = pps.get(("rtl8139", size, inflight))
            vs = f"{rate / base:.2f}x" if nic != "rtl8139" and base else "-"
            print(f"   {nic:<11} {load:<20} {rate:>7.0f} {per['busy']:>9.0f} {per['driver']:>7.0f} "
                  f"{per['net']:>7.0f} {rest:>7.0f} {per['kernel']:>7.0f} {idle:>7.0f} "
                  f"{float(r['rtt_median_us']):>7.0f}u {float(r['rtt_p99_us']):>7.0f}u {ratio:>9} {vs:>15}"
                  + (f"  ({r['resent']} stalls resent after 1 s)" if r.get("resent", "0") != "0" else ""))
    print("   (insn/pkt: instructions in busy periods, those that ran any PD; idle: kernel timer ticks")
    print("    while the system waited for the host, not counted; driver, net: each PD's busy time, its")
    print("    kernel calls included; rest: kernel work outside both; kernel: every kernel-mode")
    print("    instruction; vs Linux: instructions per packet against Linux 6.1 on this QEMU with the")
    print("    same NIC: 8139too 12,300 at 32 in flight and 15,300 ping-pong, virtio_net 13,800 at 32 in")
    print("    flight; pps vs rtl8139: packets per second against the RTL8139 row of this run)")
    modes = [(size, inflight, insns[("rtl8139", size, inflight)], insns[("rtl8139 C+", size, inflight)])
             for size, inflight, *_ in runs
             if ("rtl8139", size, inflight) in insns and ("rtl8139 C+", size, inflight) in insns]
    if modes:
        print("   RTL8139 C+ against normal mode, instructions per echo: " + "; ".join(
            f"{size} B, {inflight} in flight {c / n - 1:+.0%}" for size, inflight, n, c in modes))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
