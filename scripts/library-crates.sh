#!/usr/bin/env bash
# The workspace's library crates: every member that may be published
# (`publish = false` marks the examples, benches and fuzz crates).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p.get("publish") != []:
        print(p["name"])
' | sort
