//! The test context: a fresh emulator per test, the atg binary, inventories, and readers that
//! are not atg (the testkit's plain REST client) to check what atg wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use atg_testkit::kv_rest::VaultRestClient;
use atg_testkit::{Emulator, EmulatorOptions, Principal, RecordedRequest};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const TARGET_TENANT: &str = "11111111-1111-4111-8111-111111111111";
pub const SOURCE_TENANT: &str = "22222222-2222-4222-8222-222222222222";
pub const TARGET_CLIENT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
pub const TARGET_SECRET: &str = "target-client-secret-value";
pub const SOURCE_CLIENT: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
pub const SOURCE_SECRET: &str = "source-client-secret-value";
/// The target principal as the environment gives it (both sides use it).
pub const TARGET_PRINCIPAL: [(&str, &str); 3] = [
    ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
    ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
    ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
];

pub struct Stack {
    pub emulator: Emulator,
    pub dir: TempDir,
    pub ca: PathBuf,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn report(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not a JSON report ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Stack {
    /// An emulator where every vault lives in the target tenant and both principals exist.
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut EmulatorOptions)) -> Stack {
        let mut options = EmulatorOptions {
            default_tenant: TARGET_TENANT.into(),
            principals: vec![
                Principal {
                    tenant_id: TARGET_TENANT.into(),
                    client_id: TARGET_CLIENT.into(),
                    client_secret: TARGET_SECRET.into(),
                },
                Principal {
                    tenant_id: SOURCE_TENANT.into(),
                    client_id: SOURCE_CLIENT.into(),
                    client_secret: SOURCE_SECRET.into(),
                },
            ],
            ..EmulatorOptions::default()
        };
        change(&mut options);
        let emulator = Emulator::start(options).await.expect("the emulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = emulator.write_ca(dir.path()).expect("write the CA");
        Stack { emulator, dir, ca }
    }

    pub fn vault(&self, name: &str) -> VaultRestClient {
        VaultRestClient::new(&self.emulator, name).expect("REST client")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an inventory of Key Vault pairs (source, target); `properties` given as ATG stores
    /// them (a JSON string) for the target, absent for the source (derived from the name).
    pub fn kv_inventory(&self, pairs: &[(&str, &str)]) -> PathBuf {
        let resources: Vec<Value> = pairs
            .iter()
            .map(|(source, target)| {
                json!({
                    "source": kv_resource("source-sub", source, None),
                    "target": kv_resource("target-sub", target, Some(format!("https://{target}.vault.azure.net/"))),
                })
            })
            .collect();
        self.write_json(
            "inventory.json",
            &json!({ "version": 1, "resources": resources }),
        )
    }

    pub fn write_json(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }

    /// Flags that point atg at the emulator: transport only, no logic changes.
    pub fn transport_args(&self) -> Vec<String> {
        let addr = self.emulator.addr();
        vec![
            "--ca-cert".into(),
            self.ca.display().to_string(),
            "--connect-to".into(),
            format!("vault.azure.net={addr}"),
            "--connect-to".into(),
            format!("login.microsoftonline.com={addr}"),
            "--connect-to".into(),
            format!("management.azure.com={addr}"),
        ]
    }

    /// Runs `atg deploy` with the target principal in the environment (both sides use it).
    pub async fn deploy(&self, inventory: &Path, args: &[&str]) -> Run {
        self.deploy_with_env(inventory, args, &TARGET_PRINCIPAL)
            .await
    }

    /// Runs `atg deploy` with `args` plus `--report FILE`; answers the run and the file's text.
    pub async fn deploy_with_report(&self, inventory: &Path, args: &[&str]) -> (Run, String) {
        let report_path = self.path("report.json");
        let mut all = args.to_vec();
        all.extend(["--report", report_path.to_str().unwrap()]);
        let run = self.deploy(inventory, &all).await;
        let report = std::fs::read_to_string(&report_path).unwrap_or_default();
        (run, report)
    }

    pub async fn deploy_with_env(
        &self,
        inventory: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        atg(&self.deploy_args(inventory, args), env).await
    }

    /// The arguments of `atg deploy` over `inventory` against the emulator, then `args`.
    pub fn deploy_args(&self, inventory: &Path, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec![
            "deploy".into(),
            "--dataplane".into(),
            "--inventory".into(),
            inventory.display().to_string(),
        ];
        all.extend(self.transport_args());
        all.extend(args.iter().map(|s| (*s).to_owned()));
        all
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.emulator.requests()
    }

    /// Requests that change a vault (anything but GET/HEAD on the Key Vault data plane).
    pub fn vault_writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.vault.is_some() && r.method != "GET" && r.method != "HEAD")
            .collect()
    }
}

pub fn kv_resource(subscription: &str, name: &str, vault_uri: Option<String>) -> Value {
    let mut resource = json!({
        "id": format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}"),
        "type": "Microsoft.KeyVault/vaults",
        "name": name,
    });
    if let Some(uri) = vault_uri {
        resource["properties"] =
            Value::String(json!({ "vaultUri": uri, "tenantId": TARGET_TENANT }).to_string());
    }
    resource
}

/// Runs the atg binary with a clean Azure environment plus `env`.
pub async fn atg(args: &[String], env: &[(&str, &str)]) -> Run {
    let mut command = atg_command(args, env);
    let output: Output =
        tokio::time::timeout(std::time::Duration::from_secs(240), command.output())
            .await
            .expect("atg finished within 240 s")
            .expect("atg runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The atg command [`atg`] runs (clean Azure environment plus `env`), for tests that need the
/// process itself (to kill it, say).
pub fn atg_command(args: &[String], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_atg"));
    command.args(args).stdin(std::process::Stdio::null());
    for (key, _) in std::env::vars() {
        // The runner's own settings must not leak into atg: credentials, graph, log filter,
        // and the terminal width clap wraps --help to.
        if key.starts_with("AZURE_")
            || key.starts_with("ATG_")
            || key.starts_with("NEO4J_")
            || key == "COLUMNS"
            || key == "RUST_LOG"
            || key == "IDENTITY_ENDPOINT"
            || key == "MSI_ENDPOINT"
        {
            command.env_remove(key);
        }
    }
    // Keep the Azure CLI and managed identity out of the chain in tests.
    command.env("PATH", "/usr/bin:/bin");
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The name of a Key Vault object from its id.
pub fn name_of(item: &Value) -> String {
    let id = item
        .get("id")
        .or_else(|| item.get("kid"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    id.split('/').nth(4).unwrap_or_default().to_owned()
}

/// The first resource's listed item of `kind` named `name` in a JSON report.
pub fn report_item<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["resources"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["kind"] == kind && item["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {report}"))
}

/// The item `kind` `name` of one resource's entry in a report (panics naming it when absent).
pub fn resource_item<'r>(resource: &'r Value, kind: &str, name: &str) -> &'r Value {
    resource["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == kind && i["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {resource:#}"))
}
