#!/bin/sh
# Prints the workspace's PD crates for a board (default pc): those whose
# Cargo.toml says
#   [package.metadata.dingo]
#   pd = true
#   boards = ["pc", "sabrelite"]   # optional; without it: ["pc"]
# so the list of PD crates lives in the crates themselves and nowhere else.
#   tools/pd-crates.sh [BOARD]
board=${1:-pc}
cd "$(dirname "$0")/.." && cargo metadata --no-deps --format-version 1 --offline \
    | python3 -c 'import json, sys
board = sys.argv[1]
for p in json.load(sys.stdin)["packages"]:
    d = (p.get("metadata") or {}).get("dingo") or {}
    if d.get("pd") and board in d.get("boards", ["pc"]):
        print(p["name"])' "$board"
