#!/bin/sh
# Prints the workspace's PD crates: those whose Cargo.toml says
#   [package.metadata.dingo]
#   pd = true
# so the list of PD crates lives in the crates themselves and nowhere else.
cd "$(dirname "$0")/.." && cargo metadata --no-deps --format-version 1 --offline \
    | python3 -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if ((p.get("metadata") or {}).get("dingo") or {}).get("pd"):
        print(p["name"])'
