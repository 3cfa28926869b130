#!/usr/bin/env bash
# A local replication demo: starts the project's Key Vault/Entra emulator with a seeded source
# vault, replicates it into an empty target vault with `atg deploy --dataplane --dataplane-mode
# replication`, then runs it again to show that a re-run writes nothing.
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

target/debug/atg-emulator --ca-out "$work" --seed-demo demo-src --latency-ms 5 >"$work/ready" &
emulator_pid=$!
for _ in $(seq 1 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { echo "demo: the emulator did not start" >&2; exit 1; }
addr=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$work/ready")

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
    }
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

echo "== atg deploy --dataplane --dataplane-mode replication (emulator at $addr)" >&2
target/debug/atg deploy --dataplane --dataplane-mode replication --inventory "$work/inventory.json" \
  "${transport[@]}" --report "$work/report.json" || status=$?
echo >&2
echo "== the same command again: nothing to write" >&2
target/debug/atg deploy --dataplane --dataplane-mode replication --inventory "$work/inventory.json" \
  "${transport[@]}" --no-progress
exit "${status:-0}"
