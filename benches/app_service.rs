//! App Service benchmark. Prints figures; asserts nothing about time.
//!
//! 200 sites with 100 app settings each, copied into 200 empty target sites through the emulated
//! ARM with 20 ms added per request: atg's wall time against the peer, an
//! `az webapp config appsettings set`-style loop (per site, one after another: list the source's
//! settings, list the target's, PUT the merged map) with the official Python management client,
//! in the same run on the same emulator.
//!
//! Run: `cargo bench --bench app_service` (`ATG_BENCH_SITES` and `ATG_BENCH_SETTINGS` change the
//! sizes). Needs python3 with azure-mgmt-web (scripts/setup.sh).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use atg_testkit::{mint_token, Emulator, EmulatorOptions, Principal};
use serde_json::{json, Value};

const TENANT: &str = "72f988bf-0000-4000-8000-00000000a7f0";
const CLIENT: &str = "00000000-0000-4000-8000-0000000000be";
const SECRET: &str = "bench-client-secret";
const SOURCE_SUB: &str = "00000000-0000-4000-8000-0000000000a1";
const TARGET_SUB: &str = "00000000-0000-4000-8000-0000000000b2";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn site_id(subscription: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Web/sites/{name}")
}

/// A site as the emulator seeds it, with `settings` app settings (no request, no latency).
fn seed_site(emulator: &Emulator, id: &str, settings: usize) {
    let subscription = id.split('/').nth(2).unwrap();
    let app_settings: Vec<Value> = (0..settings)
        .map(|index| json!({ "name": format!("Setting{index:03}"), "value": format!("value-{index:03}") }))
        .collect();
    emulator
        .seed_arm_resource(
            id,
            json!({
                "location": "westeurope",
                "kind": "app",
                "properties": {
                    "serverFarmId": format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Web/serverfarms/plan"),
                    "siteConfig": { "appSettings": app_settings },
                },
            }),
        )
        .unwrap();
}

fn write_json(path: PathBuf, value: &Value) -> PathBuf {
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

fn run_atg(emulator: &Emulator, ca: &Path, inventory: &Path) -> (f64, Value) {
    let addr = emulator.addr();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_atg"))
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
        .args(["--connect-to", &format!("login.microsoftonline.com={addr}")])
        .args(["--connect-to", &format!("management.azure.com={addr}")])
        .env("AZURE_DATAPLANE_CLIENT_ID", CLIENT)
        .env("AZURE_DATAPLANE_CLIENT_SECRET", SECRET)
        .env("AZURE_DATAPLANE_TENANT_ID", TENANT)
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "atg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (seconds, serde_json::from_slice(&output.stdout).unwrap())
}

fn run_peer(emulator: &Emulator, ca: &Path, pairs: &Path) -> Option<(f64, u64)> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/peers/appsettings_loop.py"
    );
    let output = Command::new("python3")
        .arg(script)
        .arg(pairs)
        .env("ATG_EMULATOR_ADDR", emulator.addr().to_string())
        .env("ATG_EMULATOR_CA", ca)
        .env(
            "ATG_EMULATOR_TOKEN",
            mint_token(TENANT, CLIENT, "https://management.azure.com"),
        )
        .output()
        .ok()?;
    if !output.status.success() {
        println!(
            "peer failed (run scripts/setup.sh?): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let line: Value = serde_json::from_slice(&output.stdout).ok()?;
    Some((line["seconds"].as_f64()?, line["sites"].as_u64()?))
}

#[tokio::main]
async fn main() {
    let sites = env_count("ATG_BENCH_SITES", 200);
    let settings = env_count("ATG_BENCH_SETTINGS", 100);
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorOptions {
        default_tenant: TENANT.into(),
        principals: vec![Principal {
            tenant_id: TENANT.into(),
            client_id: CLIENT.into(),
            client_secret: SECRET.into(),
        }],
        ..EmulatorOptions::default()
    })
    .await
    .unwrap();
    let ca = emulator.write_ca(dir.path()).unwrap();
    let mut atg_pairs = Vec::new();
    let mut peer_pairs = Vec::new();
    for index in 0..sites {
        let source = site_id(SOURCE_SUB, &format!("src-{index:03}"));
        seed_site(&emulator, &source, settings);
        for (prefix, pairs) in [("atg", &mut atg_pairs), ("peer", &mut peer_pairs)] {
            let target = site_id(TARGET_SUB, &format!("{prefix}-{index:03}"));
            seed_site(&emulator, &target, 0);
            pairs.push((source.clone(), target));
        }
    }
    let resource = |id: &str| json!({ "id": id, "type": "Microsoft.Web/sites", "name": id.rsplit('/').next().unwrap() });
    let inventory = write_json(
        dir.path().join("inventory.json"),
        &json!({ "resources": atg_pairs.iter().map(|(s, t)| json!({ "source": resource(s), "target": resource(t) })).collect::<Vec<_>>() }),
    );
    let peer_list = write_json(dir.path().join("pairs.json"), &json!(peer_pairs));

    emulator.set_options(|o| o.latency_ms = 20);
    let (atg_seconds, report) = run_atg(&emulator, &ca, &inventory);
    println!("app_service/latency-20ms: {sites} sites x {settings} app settings");
    println!(
        "  atg:        {atg_seconds:8.2} s  ({} sites succeeded, {} items replicated, {} failed)",
        report["totals"]["succeeded"],
        report["totals"]["items"]["replicated"],
        report["totals"]["items"]["failed"]
    );
    match run_peer(&emulator, &ca, &peer_list) {
        Some((peer_seconds, peer_sites)) => {
            println!("  peer loop:  {peer_seconds:8.2} s  ({peer_sites} sites; azure-mgmt-web, list source, list target, PUT, sequential)");
            println!("  speed-up:   {:8.1}x", peer_seconds / atg_seconds);
        }
        None => println!("  peer loop:  not measured"),
    }
}
