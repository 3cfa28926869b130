#!/usr/bin/env bash
# The test suite proper (scripts/test.sh calls it after setup and build). Starts the stand-ins
# that live outside the test binaries, runs every test, stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

export ATG_SHARED_DIR=${ATG_SHARED_DIR:-$(cd .. && pwd)/shared}
cargo test --workspace --locked --offline -- --test-threads "${ATG_TEST_THREADS:-4}"
