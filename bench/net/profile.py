#!/usr/bin/env python3
"""Where the net bench's guest instructions go, per program and function.

    bench/net/profile.py PROFILE.0 PROFILE.1 ECHOES ELF...

PROFILE.0 and PROFILE.1 are copies of the insn-count plugin's profile
file (bench/net/insn-count.c) from before and after a measurement (the
net peer's bench load makes them); ECHOES is the number of echoes in
between. Every PD is linked at the same addresses, so a block's address
alone does not say whose it is: its first bytes, compared with what each
ELF holds at that address, do (a block that matches none, or more than
one, is counted as such). Prints instructions per echo for each program
and its most expensive functions, with how often each was entered per
echo (executions of the block at its first instruction).
"""
import argparse
import os
import struct
import subprocess
import sys
from collections import defaultdict

HEADER = 4096
RECORD = struct.Struct("<QQII16s")


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    used = struct.unpack_from("<Q", data, 0)[0]
    for i in range(used):
        yield i, RECORD.unpack_from(data, HEADER + i * RECORD.size)


class Elf:
    """An ELF64's loadable bytes and its function symbols."""

    def __init__(self, path):
        self.name = os.path.basename(path).removesuffix(".elf")
        with open(path, "rb") as f:
            data = f.read()
        if data[:4] != b"\x7fELF" or data[4] != 2:
            raise SystemExit(f"{path}: not an ELF64 file")
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        self.segments = []
        for i in range(phnum):
            p_type, _flags, off, vaddr, _pa, filesz, _memsz, _al = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == 1 and filesz:
                self.segments.append((vaddr, data[off:off + filesz]))
        out = subprocess.run(["nm", "-C", "-S", "--defined-only", "-n", path],
                             capture_output=True, text=True, check=True).stdout
        self.symbols = []
        for line in out.splitlines():
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[2] in "tTwW":
                self.symbols.append((int(parts[0], 16), int(parts[1], 16), parts[3]))

    def bytes_at(self, vaddr, n):
        for base, blob in self.segments:
            if base <= vaddr and vaddr + n <= base + len(blob):
                return blob[vaddr - base:vaddr - base + n]
        return None

    def function(self, vaddr):
        """The function holding `vaddr`, and whether `vaddr` is its entry."""
        best = None
        for start, size, name in self.symbols:
            if start > vaddr:
                break
            if vaddr < start + max(size, 1):
                best = (name, start == vaddr)
        return best or (f"?{vaddr:#x}", False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("echoes", type=int)
    ap.add_argument("elfs", nargs="+")
    ap.add_argument("--per", default="echo", help="what the count counts (the USB bench: command)")
    ap.add_argument("--top", type=int, default=12, help="functions shown per program")
    a = ap.parse_args()
    elfs = [Elf(p) for p in a.elfs]
    before = {i: r[1] for i, r in records(a.before)}
    per_program = defaultdict(int)
    per_function = defaultdict(int)
    calls = defaultdict(int)
    for i, (vaddr, insns, n_insns, nbytes, code) in records(a.after):
        delta = insns - before.get(i, 0)
        if delta <= 0:
            continue
        code = code[:nbytes]
        owners = [e for e in elfs if e.bytes_at(vaddr, len(code)) == code]
        if len(owners) == 1:
            owner = owners[0].name
            fn, entry = owners[0].function(vaddr)
            if entry:
                calls[(owner, fn)] += delta // max(n_insns, 1)
        else:
            owner = "(unknown)" if not owners else "(ambiguous)"
            fn = f"{vaddr:#x}"
        per_program[owner] += delta
        per_function[(owner, fn)] += delta
    total = sum(per_program.values())
    n = max(a.echoes, 1)
    print(f"   profile: {total / n:.0f} instructions per {a.per}")
    for owner, count in sorted(per_program.items(), key=lambda kv: -kv[1]):
        print(f"   {owner:<14} {count / n:>8.0f}")
        fns = sorted(((c, f) for (o, f), c in per_function.items() if o == owner), reverse=True)
        for c, f in fns[:a.top]:
            entered = calls.get((owner, f))
            times = f"{entered / n:>6.1f}x" if entered else " " * 7
            print(f"       {c / n:>8.1f} {times}  {f[:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
