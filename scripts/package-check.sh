#!/usr/bin/env bash
# Every library crate packages for crates.io (`cargo package --no-verify`):
# metadata, readme and the files it ships are in order. Nothing is
# published. Packaging the crates together lets them name each other's
# unpublished versions.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for c in $(scripts/library-crates.sh); do args+=(-p "$c"); done
cargo package --no-verify --allow-dirty "${args[@]}" 2>&1 | grep -E "Packag|warning|error" || true
cargo package --no-verify --allow-dirty "${args[@]}" >/dev/null 2>&1
echo "packaged $(( ${#args[@]} / 2 )) crates: $(scripts/library-crates.sh | tr '\n' ' ')"
