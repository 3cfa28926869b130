#!/usr/bin/env bash
# Azurite (Microsoft's Storage emulator) for atg's Storage tests.
#   scripts/azurite.sh install   npm-installs azurite@3.35.0 into .stand-ins/azurite (idempotent)
# Tests start and stop their own Azurite instances (crates/atg-testkit/src/azurite.rs); this
# script only installs it. 3.35.0 is the newest release that runs on Node 20.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.35.0
DIR=.stand-ins/azurite

case "${1:-install}" in
  install)
    installed=$(node -p "require('./$DIR/node_modules/azurite/package.json').version" 2>/dev/null || true)
    if [ "$installed" = "$VERSION" ]; then
      exit 0
    fi
    mkdir -p "$DIR"
    printf 'azurite: npm install azurite@%s into %s\n' "$VERSION" "$DIR" >&2
    npm install --prefix "$DIR" --no-audit --no-fund --silent "azurite@$VERSION"
    ;;
  *)
    echo "usage: scripts/azurite.sh install" >&2
    exit 2
    ;;
esac
