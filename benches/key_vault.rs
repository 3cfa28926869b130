//! Key Vault replication benchmark. Prints figures; asserts nothing about time.
//!
//! 1. 1,000 secrets between two emulated vaults with 20 ms added per request: atg's wall time
//!    against ATG's approach (a sequential get-then-set loop with the official Python SDK), in the
//!    same run. Target: atg ≥ 10× faster.
//! 2. The same with the emulator enforcing Key Vault's limit (4,000 transactions / 10 s per
//!    vault): atg against the floor of 2,000 requests at 400/s = 5 s. Target ≤ 1.2× the floor.
//! 3. Peak memory (`VmHWM` via /usr/bin/time) replicating 10,000 secrets. Target ≤ 100 MiB.
//!
//! Run: `cargo bench --bench key_vault` (`ATG_BENCH_SECRETS` and `ATG_BENCH_MEMORY_SECRETS` change
//! the sizes). Needs python3 with azure-keyvault-secrets (scripts/setup.sh).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atg_testkit::kv_rest::VaultRestClient;
use atg_testkit::{mint_token, Emulator, ThrottleOptions};
use serde_json::{json, Value};

use common::{env_count, CLIENT, TENANT};

mod common;

async fn seed(emulator: &Emulator, vault: &str, count: usize) {
    let client = Arc::new(VaultRestClient::new(emulator, vault).unwrap());
    let names: Vec<usize> = (0..count).collect();
    for chunk in names.chunks(64) {
        let mut tasks = tokio::task::JoinSet::new();
        for &index in chunk {
            let client = client.clone();
            tasks.spawn(async move {
                client
                    .set_secret(
                        &format!("secret-{index:05}"),
                        &format!("value-{index:05}"),
                        Some("text/plain"),
                        None,
                        true,
                    )
                    .await
                    .unwrap();
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
    }
}

fn inventory(dir: &Path, source: &str, target: &str) -> std::path::PathBuf {
    let resource = |sub: &str, name: &str| {
        json!({
            "id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}"),
            "type": "Microsoft.KeyVault/vaults",
            "name": name,
        })
    };
    let path = dir.join(format!("inventory-{target}.json"));
    let body = json!({ "resources": [{ "source": resource("s", source), "target": resource("t", target) }] });
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

/// Runs atg under /usr/bin/time; returns (seconds, peak RSS in KiB, report).
fn run_atg(emulator: &Emulator, ca: &Path, inventory: &Path) -> (f64, u64, Value) {
    let time_file = inventory.with_extension("time");
    let started = Instant::now();
    let output = common::atg_deploy(emulator, ca, inventory, ("%M %U %S", &time_file))
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "atg failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (peak_kib, _) = common::read_time_file(&time_file);
    (seconds, peak_kib, report)
}

fn run_peer(emulator: &Emulator, ca: &Path, source: &str, target: &str) -> Option<(f64, u64)> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/kv_copy_loop.py");
    let output = Command::new("python3")
        .arg(script)
        .args([source, target])
        .env("ATG_EMULATOR_ADDR", emulator.addr().to_string())
        .env("ATG_EMULATOR_CA", ca)
        .env(
            "ATG_EMULATOR_TOKEN",
            mint_token(TENANT, CLIENT, "https://vault.azure.net"),
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
    Some((line["seconds"].as_f64()?, line["copied"].as_u64()?))
}

fn replicated(report: &Value) -> (u64, u64) {
    let items = &report["totals"]["items"];
    (
        items["replicated"].as_u64().unwrap_or(0),
        items["failed"].as_u64().unwrap_or(0),
    )
}

#[tokio::main]
async fn main() {
    let secrets = env_count("ATG_BENCH_SECRETS", 1_000);
    let memory_secrets = env_count("ATG_BENCH_MEMORY_SECRETS", 10_000);
    let dir = tempfile::tempdir().unwrap();
    let emulator = common::emulator().await;
    let ca = emulator.write_ca(dir.path()).unwrap();
    seed(&emulator, "bench-src", secrets).await;

    // 1. Latency-bound: atg vs the sequential loop.
    emulator.set_options(|o| o.latency_ms = 20);
    let (atg_seconds, _, report) = run_atg(
        &emulator,
        &ca,
        &inventory(dir.path(), "bench-src", "bench-dst-atg"),
    );
    let (copied, failed) = replicated(&report);
    println!("key_vault/latency-20ms: {secrets} secrets");
    println!("  atg:        {atg_seconds:8.2} s  ({copied} replicated, {failed} failed)");
    match run_peer(&emulator, &ca, "bench-src", "bench-dst-peer") {
        Some((peer_seconds, peer_copied)) => {
            println!("  peer loop:  {peer_seconds:8.2} s  ({peer_copied} copied; Python SDK, get-then-set, sequential)");
            println!(
                "  speed-up:   {:8.1}x  (target >= 10x)",
                peer_seconds / atg_seconds
            );
        }
        None => println!("  peer loop:  not measured"),
    }

    // 2. Throttle-bound: Key Vault's 4,000 transactions per 10 s.
    emulator.set_options(|o| {
        o.latency_ms = 0;
        o.throttle = Some(ThrottleOptions {
            limit: 4_000,
            window_ms: 10_000,
        });
    });
    tokio::time::sleep(Duration::from_secs(10)).await; // empty the throttle window
    let (seconds, _, report) = run_atg(
        &emulator,
        &ca,
        &inventory(dir.path(), "bench-src", "bench-dst-throttled"),
    );
    let (copied, failed) = replicated(&report);
    let floor = 2.0 * secrets as f64 / 400.0;
    println!("key_vault/throttle-4000-per-10s: {secrets} secrets");
    println!("  atg:        {seconds:8.2} s  ({copied} replicated, {failed} failed, {} throttled retries)", report["retries"]["throttled"]);
    println!("  floor:      {floor:8.2} s  (2 requests per secret at 400/s on one limit)");
    println!("  ratio:      {:8.2}x  (target <= 1.2x; the limit is per vault, so reads and writes overlap)", seconds / floor);

    // 2b. The same average rate with a burst of 400 (400 per 1 s): here the limit binds, since
    //     the source vault alone gets ~2 requests per secret (the value, and the version count).
    emulator.set_options(|o| {
        o.throttle = Some(ThrottleOptions {
            limit: 400,
            window_ms: 1_000,
        });
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (seconds, _, report) = run_atg(
        &emulator,
        &ca,
        &inventory(dir.path(), "bench-src", "bench-dst-throttled-burst"),
    );
    let (copied, failed) = replicated(&report);
    println!("key_vault/throttle-400-per-1s: {secrets} secrets");
    println!("  atg:        {seconds:8.2} s  ({copied} replicated, {failed} failed, {} throttled retries)", report["retries"]["throttled"]);
    println!(
        "  ratio:      {:8.2}x  (against the 5 s floor; target <= 1.2x)",
        seconds / floor
    );

    // 3. Memory at 10,000 secrets.
    emulator.set_options(|o| o.throttle = None);
    seed(&emulator, "bench-mem-src", memory_secrets).await;
    let (seconds, peak_kib, report) = run_atg(
        &emulator,
        &ca,
        &inventory(dir.path(), "bench-mem-src", "bench-mem-dst"),
    );
    let (copied, failed) = replicated(&report);
    println!("key_vault/memory: {memory_secrets} secrets");
    println!("  atg:        {seconds:8.2} s  ({copied} replicated, {failed} failed)");
    println!(
        "  peak RSS:   {:8.1} MiB  (target <= 100 MiB)",
        peak_kib as f64 / 1024.0
    );
    emulator.shutdown().await;
}
