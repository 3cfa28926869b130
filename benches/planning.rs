//! Planning benchmark. Prints figures; asserts nothing about time.
//!
//! Wall time and peak memory (`VmHWM` of the atg process, `/usr/bin/time -f %M`) of
//! `atg deploy --dry-run --dataplane-mode replication` over a storage account whose container
//! lists 10,000 and then 100,000 blobs: once into an empty target account, once into a target
//! whose container holds the same blobs (every blob then decided identical). A dry run decides
//! every blob, walking both listings a page at a time; memory must not grow with the blobs.
//! Target: peak(100,000) ≤ 1.5 × peak(10,000).
//!
//! The listings are the storage gateway's synthetic List Blobs (`atg_testkit::synthetic_listing`:
//! generated pages shaped as Azure's, 5,000 blobs at most per page, with markers), because
//! Azurite cannot be seeded with 100,000 blobs in practice (docs/benchmarks.md). Every other
//! request (containers, their settings, the user delegation key) reaches Azurite, and atg talks
//! to production host names through `--connect-to`, as in the tests. Each run's report is checked
//! before a figure is printed: every listed blob decided, as the case expects.
//!
//! Run: `cargo bench --bench planning` (about a minute on 2 cores). Sizes:
//! `ATG_BENCH_PLANNING_FEW` (default 10,000), `ATG_BENCH_PLANNING_MANY` (default 100,000).
//! Needs Azurite (`scripts/azurite.sh install`) and /usr/bin/time (`scripts/bench-setup.sh`).

// A benchmark prints its figures and fails loudly on a broken setup; figures are converted
// between integers and floats for display only.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::Instant;

use atg_testkit::mint_token;
use serde_json::Value;

use common::{env_count, read_time_file, StorageStand, CLIENT, TENANT};

mod common;

const CONTAINER: &str = "bench";
const SOURCE: &str = "plansrc";
/// No container at all: every blob is to create.
const EMPTY: &str = "planempty";
/// The same container, listing the same blobs: every blob is identical.
const SAME: &str = "plansame";

/// Creates `account/bench` straight in Azurite, with a token of the bench's own.
async fn create_container(stand: &StorageStand, account: &str) {
    let ca = std::fs::read(&stand.azurite.ca_path).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let response = client
        .put(format!(
            "https://127.0.0.1:{}/{account}/{CONTAINER}?restype=container",
            stand.azurite.blob.port()
        ))
        .bearer_auth(mint_token(TENANT, CLIENT, "https://storage.azure.com"))
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "create container: {response:?}"
    );
}

/// The dry run: (seconds, peak RSS in KiB, CPU seconds, report).
fn dry_run(stand: &StorageStand, target: &str) -> (f64, u64, f64, Value) {
    let time_file = stand.dir.path().join(format!("{target}.time"));
    let mut command = stand.atg_command((SOURCE, target), &["--dry-run"], ("%M %U %S", &time_file));
    let started = Instant::now();
    let output = command.output().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    // The gateway logs every request; the bench should not grow with the runs.
    stand.gateway.clear_requests();
    assert!(
        output.status.success(),
        "atg failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (peak_kib, cpu) = read_time_file(&time_file);
    (seconds, peak_kib, cpu, report)
}

/// The container's plan note (`blobs: 0 to create, ...`), after checking it decided `blobs`
/// blobs as `expected` says.
fn blob_note(report: &Value, blobs: u64, expected: &str) -> String {
    let container = report["resources"][0]["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["kind"] == "container"))
        .unwrap_or_else(|| panic!("no container in the report: {report:#}"));
    let notes: Vec<&str> = container["notes"]
        .as_array()
        .map(|notes| notes.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let note = notes
        .iter()
        .find(|note| note.starts_with("blobs: "))
        .unwrap_or_else(|| panic!("no blob plan in {notes:?}"));
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&format!("{blobs} blob(s)")))
            && note.contains(expected),
        "expected {blobs} blobs planned `{expected}`: {notes:?}"
    );
    (*note).to_owned()
}

#[tokio::main]
async fn main() {
    let few = env_count("ATG_BENCH_PLANNING_FEW", 10_000) as u64;
    let many = env_count("ATG_BENCH_PLANNING_MANY", 100_000) as u64;
    let stand = StorageStand::start(&[SOURCE, EMPTY, SAME]).await;
    // The containers exist in Azurite (empty); their listings are the gateway's.
    for account in [SOURCE, SAME] {
        create_container(&stand, account).await;
    }
    for (target, case) in [
        (EMPTY, "target empty"),
        (SAME, "target holds the same blobs"),
    ] {
        let mut peaks = Vec::new();
        for blobs in [few, many] {
            for account in [SOURCE, SAME] {
                stand
                    .gateway
                    .set_synthetic_listing(account, CONTAINER, Some(blobs));
            }
            let expected = if target == EMPTY {
                format!("blobs: {blobs} to create")
            } else {
                format!("{blobs} identical")
            };
            let (seconds, peak, cpu, report) = dry_run(&stand, target);
            let note = blob_note(&report, blobs, &expected);
            println!(
                "planning/{case}: {blobs} blobs listed: {seconds:6.2} s ({:.0} blobs/s; atg CPU {cpu:.1} s), peak RSS {:6.1} MiB  ({note})",
                blobs as f64 / seconds,
                peak as f64 / 1024.0
            );
            peaks.push(peak);
        }
        println!(
            "planning/{case}: peak RSS at {many} blobs / at {few} blobs = {:.2}x  (target <= 1.5x)",
            peaks[1] as f64 / peaks[0] as f64
        );
    }
    stand.stop().await;
}
