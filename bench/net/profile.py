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

With --inline, each program's instructions are also booked to every
function of the inline chain at its blocks' first addresses (addr2line
-i): under fat LTO most code is inlined into a PD's main loop, which the
per-symbol figures then show as one lump. A block is booked whole to the
chain of its first instruction, so the figures are approximate.
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
        self.path = path
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

    def inline_chains(self, vaddrs):
        """Each address's inline chain, innermost first, as function names."""
        vaddrs = sorted(vaddrs)
        out = subprocess.run(["addr2line", "-e", self.path, "-f", "-i", "-C", "-a"]
                             + [f"{v:#x}" for v in vaddrs],
                             capture_output=True, text=True, check=True).stdout
        chains, current = {}, None
        lines = out.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("0x"):
                current = int(lines[i], 16)
                chains[current] = []
                i += 1
                continue
            chains[current].append(lines[i])
            i += 2
        return chains

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


class Profile:
    """Instructions executed between two snapshots, by program and function."""

    def __init__(self, before, after, elf_paths):
        self.elfs = [Elf(p) for p in elf_paths]
        earlier = {i: r[1] for i, r in records(before)}
        self.per_program = defaultdict(int)
        self.per_function = defaultdict(int)
        self.calls = defaultdict(int)
        self.blocks = defaultdict(lambda: defaultdict(int))
        for i, (vaddr, insns, n_insns, nbytes, code) in records(after):
            delta = insns - earlier.get(i, 0)
            if delta <= 0:
                continue
            code = code[:nbytes]
            owners = [e for e in self.elfs if e.bytes_at(vaddr, len(code)) == code]
            if len(owners) == 1:
                owner = owners[0].name
                fn, entry = owners[0].function(vaddr)
                if entry:
                    self.calls[(owner, fn)] += delta // max(n_insns, 1)
                self.blocks[owners[0]][vaddr] += delta
            else:
                owner = "(unknown)" if not owners else "(ambiguous)"
                fn = f"{vaddr:#x}"
            self.per_program[owner] += delta
            self.per_function[(owner, fn)] += delta

    def print(self, n, per="echo", top=12, inline=False):
        """The table, per `n` of what the count counts."""
        n = max(n, 1)
        total = sum(self.per_program.values())
        print(f"   profile: {total / n:.0f} instructions per {per}")
        for owner, count in sorted(self.per_program.items(), key=lambda kv: -kv[1]):
            print(f"   {owner:<14} {count / n:>8.0f}")
            fns = sorted(((c, f) for (o, f), c in self.per_function.items() if o == owner), reverse=True)
            for c, f in fns[:top]:
                entered = self.calls.get((owner, f))
                times = f"{entered / n:>6.1f}x" if entered else " " * 7
                print(f"       {c / n:>8.1f} {times}  {f[:100]}")
            elf = next((e for e in self.elfs if e.name == owner), None)
            if inline and elf is not None:
                inclusive = defaultdict(int)
                for vaddr, chain in elf.inline_chains(self.blocks[elf].keys()).items():
                    for f in dict.fromkeys(chain):
                        inclusive[f] += self.blocks[elf][vaddr]
                print("       inlined, inclusive:")
                for f, c in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
                    print(f"       {c / n:>8.1f}         {f[:100]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("echoes", type=int)
    ap.add_argument("elfs", nargs="+")
    ap.add_argument("--per", default="echo", help="what the count counts (the USB bench: command)")
    ap.add_argument("--top", type=int, default=12, help="functions shown per program")
    ap.add_argument("--inline", action="store_true",
                    help="also book instructions to the functions inlined at each block")
    a = ap.parse_args()
    Profile(a.before, a.after, a.elfs).print(a.echoes, a.per, a.top, a.inline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
