#!/usr/bin/env bash
# The test suite proper (scripts/test.sh calls it after setup and build): every test of the
# workspace, then one closing line with the totals of all test binaries. Each test starts the
# stand-ins it needs (emulator, Azurite, FalkorDB) and stops them.
set -euo pipefail
cd "$(dirname "$0")/.."

export ATG_SHARED_DIR=${ATG_SHARED_DIR:-$(cd .. && pwd)/shared}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

status=0
cargo test --workspace --locked --offline -- --test-threads "${ATG_TEST_THREADS:-4}" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
