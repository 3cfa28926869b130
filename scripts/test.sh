#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, then runs the whole suite inside a private
# network namespace (as root), so the stand-ins are reachable only on loopback and nothing can
# leave the machine. Without root it runs in the current namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --workspace --all-targets --locked

if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
  exec unshare --net -- bash -c 'ip link set lo up && exec scripts/run-tests.sh'
fi
exec scripts/run-tests.sh
