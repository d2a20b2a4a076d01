"""Reading a boot's serial log when PDs' lines have crossed.

On a debug kernel every PD prints a byte per system call, so a PD of higher
priority that wakes in the middle of a lower one's line prints its own line
inside it: `net: NIC usb-net: link up` then `52:54:00:12:34:56 enabled`.
PDs cannot lock the console against each other, and the kernel has no call
that prints a string at once, so the test runner reads both the log as it
came and this reconstruction of it, and a pattern may match in either.

A line is taken to be cut where, past its own `name: ` prefix, another PD's
`name: ` begins (PD names come from the monitor's `built N PDs:` line).
The cut-off start waits for the first later line that does not begin with
a PD prefix, which is its rest. A real line that quotes another PD's
prefix is cut too; that only adds a reading, since the log as it came is
matched as well.

>>> log = ("monitor: built 2 PDs: usb-net (priority 130) net (priority 100)\\n"
...        "net: NIC usb-net: malformed notification\\n"
...        "52:54:00:12:34:56 enabled by usb-net; asking DHCP\\n"
...        "net: ports 7 andusb-net: one\\n"
...        "usb-net: two\\n"
...        " 80)\\n")
>>> print(untangle(log))
monitor: built 2 PDs: usb-net (priority 130) net (priority 100)
usb-net: malformed notification
net: NIC 52:54:00:12:34:56 enabled by usb-net; asking DHCP
usb-net: one
usb-net: two
net: ports 7 and 80)
<BLANKLINE>
>>> untangle("no monitor line: nothing is known\\n") == "no monitor line: nothing is known\\n"
True
"""
import re

BUILT = re.compile(r"monitor: built \d+ PDs: (.*)")


def pd_names(text):
    """The PDs the monitor says it built, and the monitor itself."""
    m = BUILT.search(text)
    if not m:
        return []
    return ["monitor"] + re.findall(r"(\S+) \(priority", m.group(1))


def untangle(text):
    """`text` with lines cut by other PDs' lines put back together (and
    without carriage returns, which some consoles put before a line)."""
    text = text.replace("\r", "")
    names = pd_names(text)
    if not names:
        return text
    return "\n".join(line for line, _ in untangle_lines(text, names))


def untangle_lines(text, names):
    """The lines of `text` (without carriage returns) put back together,
    each with the offset in `text` where its last piece ends."""
    # Longest first: at one place `usb-net: ` is preferred to `net: `.
    prefix = re.compile("|".join(re.escape(n + ": ") for n in sorted(names, key=len, reverse=True)))
    out, cut = [], []
    offset = 0
    for line in text.split("\n"):
        end = offset + len(line)
        offset = end + 1
        own = prefix.match(line)
        if cut and not own:
            line = cut.pop() + line
            own = prefix.match(line)
        start = own.end() if own else 0
        while True:
            inner = prefix.search(line, max(start, 1))
            if not inner:
                break
            cut.append(line[:inner.start()])
            line = line[inner.start():]
            start = len(prefix.match(line).group(0))
        out.append((line, end))
    # Starts whose rest never came stay at the end, as they are.
    if cut:
        last = out.pop()
        out.extend((c, len(text)) for c in reversed(cut))
        out.append(last)
    return out


def search(rx, text, pos, names):
    r"""Where the first match of `rx` at or past `pos` in `text` (without
    carriage returns) ends: in the log as it came, or else in its lines
    from `pos`'s on put back together, then the end of the last piece of
    the line the match ends in. None if there is none yet. For a runner
    that waits for a line while the log grows.

    >>> names = ["monitor", "usb-check", "roothub"]
    >>> log = ("usb-check: ready\n"
    ...        "usroothub: port 1: connected\n"
    ...        "b-check: keyboard connected (100)\n")
    >>> rx = re.compile(r"usb-check: keyboard connected \(100\)")
    >>> search(rx, log, 17, names) == len(log) - 1
    True
    >>> search(rx, log, len(log), names) is None
    True
    """
    m = rx.search(text, pos)
    if m:
        return m.end()
    if not names:
        return None
    start = text.rfind("\n", 0, pos) + 1
    lines = untangle_lines(text[start:], names)
    joined, ends, at = "\n".join(line for line, _ in lines), [], 0
    for line, raw_end in lines:
        at += len(line)
        ends.append((at, start + raw_end))
        at += 1
    for m in rx.finditer(joined):
        raw = next(r for j, r in ends if m.end() <= j)
        if raw > pos:
            return raw
    return None


def readings(path):
    """The log at `path` as it came, and reconstructed."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ("",)
    fixed = untangle(text)
    return (text,) if fixed == text else (text, fixed)


if __name__ == "__main__":
    import doctest
    import sys
    sys.exit(1 if doctest.testmod().failed else 0)
