#!/usr/bin/env python3
"""Runs every fuzz target (`make fuzz`) for a bounded time and prints its coverage.

Each target is a libFuzzer binary built by the Makefile with coverage
instrumentation. Its corpus lives under <out>/<target>/corpus and grows from
run to run; the seeds are the project's own files (protocol specs, system
descriptions), copied in on every run. A crash, a timeout (an input taking
more than 10 s: a tool gone super-linear) or running out of memory leaves the
input in <out>/<target>/ and makes this script exit non-zero.

Prints per target: time, runs, edges covered of those instrumented, features,
corpus size; then one summary line.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TARGETS = {
    "tingu": {
        "seeds": ["tingu/dingo-protocols/*.tingu"],
        "companion": None,
        "dict": "fuzz/dict/tingu.dict",
    },
    "system-builder": {
        "seeds": ["system.xml", "tests/systems/*.xml", "bench/systems/*.xml"],
        "companion": ".dingo.toml",
        "dict": "fuzz/dict/system-builder.dict",
    },
    # The ring's input is a script of operations (see fuzz/src/ring.rs);
    # libFuzzer grows its corpus from nothing within seconds.
    "ring": {"seeds": [], "companion": None, "dict": None},
}

COUNTERS = re.compile(r"\((\d+) inline 8-bit counters\)")
PROGRESS = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)/")
STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def seed(corpus, patterns, companion):
    """Copies the seed files; a seed with a companion file beside it (a
    system's wiring file) also goes in joined to it by a NUL byte, the
    target's way of taking two files."""
    n = 0
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            name = "seed-" + os.path.basename(path)
            shutil.copyfile(path, os.path.join(corpus, name))
            n += 1
            other = companion and os.path.splitext(path)[0] + companion
            if other and os.path.exists(other):
                with open(os.path.join(corpus, name + "+" + companion.lstrip(".")), "wb") as f:
                    f.write(open(path, "rb").read() + b"\0" + open(other, "rb").read())
                n += 1
    return n


def run(name, spec, bin_dir, out, seconds, image_dir):
    work = os.path.join(out, name)
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus, exist_ok=True)
    seeds = seed(corpus, spec["seeds"], spec["companion"])
    cmd = [
        os.path.join(bin_dir, "fuzz-" + name),
        corpus,
        f"-max_total_time={seconds}",
        "-print_final_stats=1",
        "-timeout=10",
        "-rss_limit_mb=2048",
        "-max_len=32768",
        f"-artifact_prefix={work}/",
    ]
    if spec["dict"]:
        cmd.append("-dict=" + os.path.join(ROOT, spec["dict"]))
    env = dict(os.environ)
    if image_dir:
        env["FUZZ_IMAGE_DIR"] = image_dir
    log = os.path.join(work, "log.txt")
    with open(log, "w") as f:
        # libFuzzer stops on its own after max_total_time; the margin only
        # catches a target that hangs inside one input past -timeout.
        try:
            status = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env,
                                    timeout=seconds + 120).returncode
        except subprocess.TimeoutExpired:
            status = "hung"
    text = open(log, errors="replace").read()
    total = COUNTERS.search(text)
    progress = PROGRESS.findall(text)
    stats = dict(STAT.findall(text))
    cov, ft, corp = progress[-1] if progress else ("0", "0", "0")
    edges = int(total.group(1)) if total else 0
    pct = 100.0 * int(cov) / edges if edges else 0.0
    runs = int(stats.get("number_of_executed_units", 0))
    rate = int(stats.get("average_exec_per_sec", 0))
    print(f"fuzz {name}: {seconds} s, {runs} runs ({rate}/s), coverage {cov} of {edges} "
          f"instrumented edges ({pct:.1f}%), {ft} features, corpus {corp} inputs "
          f"({seeds} seeds)", flush=True)
    if status != 0:
        artifacts = [p for p in glob.glob(os.path.join(work, "*-*"))
                     if os.path.basename(p).split("-")[0] in ("crash", "timeout", "oom", "leak")]
        print(f"FAIL fuzz {name}: libFuzzer status {status}; input: "
              f"{', '.join(sorted(artifacts)) or 'none saved'}; log: {log}")
        return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--image-dir", help="program images for system-builder inputs")
    ap.add_argument("targets", nargs="*", default=list(TARGETS))
    a = ap.parse_args()
    failed = [t for t in a.targets
              if not run(t, TARGETS[t], a.bin_dir, a.out, a.seconds, a.image_dir)]
    total = a.seconds * len(a.targets)
    print(f"fuzz: {len(a.targets)} targets, {total} s, "
          f"{'crashes in: ' + ', '.join(failed) if failed else 'no crashes'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
