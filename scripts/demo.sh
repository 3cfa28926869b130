#!/usr/bin/env bash
# A local replication demo: starts the project's Key Vault/Entra emulator with a seeded source
# vault (and, when Azurite can be installed, a seeded source storage account), replicates them
# into empty targets with `atg deploy --dataplane --dataplane-mode replication`, then runs it
# again to show that a re-run writes nothing.
# atg talks to https://demo-src.vault.azure.net etc. exactly as in Azure; only the transport is
# pointed at the emulator (--connect-to) and its test CA trusted (--ca-cert).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --quiet -p atg -p atg-testkit --bins
work=$(mktemp -d)
emulator_pid=
cleanup() {
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

storage_demo=()
if scripts/azurite.sh install >&2; then
  storage_demo=(--storage-demo demosrc,demodst)
else
  echo "demo: Azurite could not be installed (npm); the storage part is left out" >&2
fi
target/debug/atg-emulator --ca-out "$work" --seed-demo demo-src --latency-ms 5 "${storage_demo[@]}" >"$work/ready" &
emulator_pid=$!
for _ in $(seq 1 300); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { echo "demo: the emulator did not start" >&2; exit 1; }
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$work/ready")
storage=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("storage", ""))' "$work/ready")
storage_pair=
if [ -n "$storage" ]; then
  storage_pair=',
    {
      "source": { "id": "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/demo/providers/Microsoft.Storage/storageAccounts/demosrc",
                  "type": "Microsoft.Storage/storageAccounts", "name": "demosrc" },
      "target": { "id": "/subscriptions/00000000-0000-0000-0000-00000000000b/resourceGroups/demo/providers/Microsoft.Storage/storageAccounts/demodst",
                  "type": "Microsoft.Storage/storageAccounts", "name": "demodst" }
    }'
fi

cat >"$work/inventory.json" <<JSON
{
  "version": 1,
  "resources": [
    {
      "source": { "id": "/subscriptions/00000000-0000-0000-0000-00000000000a/resourceGroups/demo/providers/Microsoft.KeyVault/vaults/demo-src",
                  "type": "Microsoft.KeyVault/vaults", "name": "demo-src" },
      "target": { "id": "/subscriptions/00000000-0000-0000-0000-00000000000b/resourceGroups/demo/providers/Microsoft.KeyVault/vaults/demo-dst",
                  "type": "Microsoft.KeyVault/vaults", "name": "demo-dst",
                  "properties": "{\"vaultUri\":\"https://demo-dst.vault.azure.net/\",\"tenantId\":\"72f988bf-0000-4000-8000-00000000a7f0\",\"accessPol" }
    }$storage_pair
  ]
}
JSON

export AZURE_DATAPLANE_CLIENT_ID=00000000-0000-4000-8000-0000000000de
export AZURE_DATAPLANE_TENANT_ID=72f988bf-0000-4000-8000-00000000a7f0
export AZURE_DATAPLANE_CLIENT_SECRET=demo-client-secret
transport=(--ca-cert "$work/ca.pem"
  --connect-to "vault.azure.net=$addr"
  --connect-to "login.microsoftonline.com=$addr"
  --connect-to "management.azure.com=$addr")
if [ -n "$storage" ]; then
  transport+=(--connect-to "blob.core.windows.net=$storage"
    --connect-to "queue.core.windows.net=$storage"
    --connect-to "table.core.windows.net=$storage")
fi

echo "== atg deploy --dataplane --dataplane-mode replication (emulator at $addr)" >&2
target/debug/atg deploy --dataplane --dataplane-mode replication --inventory "$work/inventory.json" \
  "${transport[@]}" --report "$work/report.json" || status=$?
echo >&2
echo "== the same command again: nothing to write" >&2
target/debug/atg deploy --dataplane --dataplane-mode replication --inventory "$work/inventory.json" \
  "${transport[@]}" --no-progress
exit "${status:-0}"
