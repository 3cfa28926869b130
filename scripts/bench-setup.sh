#!/usr/bin/env bash
# Benchmarks only: installs what `cargo bench` needs beyond the test setup (scripts/setup.sh,
# which it runs first). Kept apart so the test setup stays as fast as it is. Idempotent.
#   rclone (Debian's 1.60): the peer benches/storage.rs measures atg's blob copying against.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'bench-setup: %s\n' "$*" >&2; }

scripts/setup.sh

missing=()
command -v rclone >/dev/null || missing+=(rclone)
[ -x /usr/bin/time ] || missing+=(time)   # peak memory figures
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
fi
