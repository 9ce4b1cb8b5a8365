#!/usr/bin/env bash
# The public API of every library crate, kept in api/<crate>.txt.
#
#   scripts/api-check.sh           rewrite the listings (commit them with the change)
#   scripts/api-check.sh --check   fail if the API differs from the listings (CI)
#
# The listings come from rustdoc's JSON output (RUSTC_BOOTSTRAP=1 lets the
# stable toolchain emit it, as cargo-semver-checks does) through
# scripts/public-api.py. A diff is an API change: note it in CHANGELOG.md.
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
[ "${1:-}" = "--check" ] && check=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/api"
mkdir -p api
fail=0
for c in $(scripts/library-crates.sh); do
    RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p "$c" --lib --all-features -- \
        -Z unstable-options --output-format json 2>/dev/null
    json="$CARGO_TARGET_DIR/doc/${c//-/_}.json"
    new=$(python3 scripts/public-api.py "$json")
    if [ $check = 1 ]; then
        if ! diff -u "api/$c.txt" <(printf '%s\n' "$new") >/tmp/api-diff.$$ 2>&1; then
            echo "public API of $c changed (run scripts/api-check.sh, note it in CHANGELOG.md):"
            cat /tmp/api-diff.$$
            fail=1
        fi
        rm -f /tmp/api-diff.$$
    else
        printf '%s\n' "$new" >"api/$c.txt"
    fi
done
[ $check = 1 ] && [ $fail = 0 ] && echo "public API unchanged ($(ls api | wc -l) crates)"
exit $fail
