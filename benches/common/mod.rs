//! What the benchmarks share: the principal atg signs in as, sizes from the environment, and
//! the storage stand-in (the emulator for Entra and ARM, Azurite behind the testkit's gateway on
//! production host names) with the atg command line that reaches it through `--connect-to`.

// Each benchmark is its own crate and uses a part of this module.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use atg_testkit::azurite::{Azurite, AzuriteAccount};
use atg_testkit::storage_gateway::StorageGateway;
use atg_testkit::{Emulator, EmulatorOptions, Principal};
use serde_json::json;

pub const TENANT: &str = "72f988bf-0000-4000-8000-00000000a7f0";
pub const CLIENT: &str = "00000000-0000-4000-8000-0000000000be";
pub const SECRET: &str = "bench-client-secret";

/// A size from the environment (`10_000` and `10,000` read as 10000), else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// The emulator, knowing the bench's principal.
pub async fn emulator() -> Emulator {
    Emulator::start(EmulatorOptions {
        default_tenant: TENANT.into(),
        principals: vec![Principal {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
        }],
        ..EmulatorOptions::default()
    })
    .await
    .unwrap()
}

/// The emulator, Azurite with some accounts, the gateway in front of it, and a scratch folder.
pub struct StorageStand {
    pub emulator: Emulator,
    pub azurite: Azurite,
    pub gateway: StorageGateway,
    pub ca: PathBuf,
    pub dir: tempfile::TempDir,
}

impl StorageStand {
    pub async fn start(accounts: &[&str]) -> StorageStand {
        let emulator = emulator().await;
        let accounts: Vec<AzuriteAccount> =
            accounts.iter().map(|a| AzuriteAccount::named(a)).collect();
        let azurite = Azurite::start(&emulator, &accounts)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let gateway = StorageGateway::start(&emulator, &azurite, None)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = emulator.write_ca(dir.path()).unwrap();
        StorageStand {
            emulator,
            azurite,
            gateway,
            ca,
            dir,
        }
    }

    /// An inventory with one pair of storage accounts.
    pub fn inventory(&self, source: &str, target: &str) -> PathBuf {
        let resource = |subscription: &str, name: &str| {
            json!({
                "id": format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{name}"),
                "type": "Microsoft.Storage/storageAccounts",
                "name": name,
                "properties": "{}",
            })
        };
        let path = self.dir.path().join(format!("inventory-{target}.json"));
        let body = json!({ "version": 1, "resources": [{
            "source": resource("source-sub", source),
            "target": resource("target-sub", target),
        }]});
        std::fs::write(&path, body.to_string()).unwrap();
        path
    }

    /// [`atg_deploy`] over `source` → `target`, with `args`, reaching storage through the
    /// gateway.
    pub fn atg_command(
        &self,
        (source, target): (&str, &str),
        args: &[&str],
        time: (&str, &Path),
    ) -> std::process::Command {
        let mut command = atg_deploy(
            &self.emulator,
            &self.ca,
            &self.inventory(source, target),
            time,
        );
        command.args(args).args(
            self.gateway
                .connect_to_args()
                .into_iter()
                .map(OsString::from),
        );
        command
    }

    pub async fn stop(self) {
        self.azurite.stop().await;
        self.emulator.shutdown().await;
    }
}

/// `atg deploy --dataplane --dataplane-mode replication --output json` of `inventory`, under
/// `/usr/bin/time -f time_format -o time_file`, signing in as the bench's principal and reaching
/// Entra, ARM and Key Vault on the emulator.
pub fn atg_deploy(
    emulator: &Emulator,
    ca: &Path,
    inventory: &Path,
    (time_format, time_file): (&str, &Path),
) -> std::process::Command {
    let addr = emulator.addr();
    let mut command = std::process::Command::new("/usr/bin/time");
    command
        .args(["-f", time_format, "-o"])
        .arg(time_file)
        .arg(env!("CARGO_BIN_EXE_atg"))
        .args([
            "deploy",
            "--dataplane",
            "--dataplane-mode",
            "replication",
            "--output",
            "json",
            "--no-progress",
            "-q",
        ])
        .arg("--inventory")
        .arg(inventory)
        .arg("--ca-cert")
        .arg(ca)
        .args(["--connect-to", &format!("vault.azure.net={addr}")])
        .args(["--connect-to", &format!("login.microsoftonline.com={addr}")])
        .args(["--connect-to", &format!("management.azure.com={addr}")])
        .env("AZURE_DATAPLANE_CLIENT_ID", CLIENT)
        .env("AZURE_DATAPLANE_CLIENT_SECRET", SECRET)
        .env("AZURE_DATAPLANE_TENANT_ID", TENANT)
        .env("PATH", "/usr/bin:/bin");
    command
}

/// `/usr/bin/time -f "%M %U %S"` output: peak RSS in KiB and CPU seconds (user + system).
pub fn read_time_file(path: &std::path::Path) -> (u64, f64) {
    let text = std::fs::read_to_string(path).unwrap();
    let fields: Vec<&str> = text
        .trim()
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .collect();
    let number = |i: usize| fields[i].parse::<f64>().unwrap();
    (fields[0].parse().unwrap(), number(1) + number(2))
}
