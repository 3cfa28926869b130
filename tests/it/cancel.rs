//! Ctrl-C: the first lets the items in flight finish and reports what each really did; the
//! second stops at once with exit 130.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::common::*;
use crate::storage::StorageStack;

/// Starts `atg deploy` replicating `src-kv` into `dst-kv`, stdout and stderr piped.
fn spawn_replication(stack: &Stack, concurrency: &str) -> tokio::process::Child {
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let args = [
        "--dataplane-mode",
        "replication",
        "--output",
        "json",
        "--concurrency",
        concurrency,
    ];
    atg_command(&stack.deploy_args(&inventory, &args), &TARGET_PRINCIPAL)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Waits until the emulator has seen `count` secrets written into `dst-kv`.
async fn wait_for_writes(stack: &Stack, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while secrets_written(stack).len() < count {
        assert!(Instant::now() < deadline, "atg wrote nothing within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A stack whose `src-kv` holds `count` secrets and whose answers take `latency_ms` each.
pub(crate) async fn slow_stack(count: usize, latency_ms: u64) -> Stack {
    let stack = Stack::start().await;
    let source = stack.vault("src-kv");
    for index in 0..count {
        source
            .set_secret(&format!("s{index:02}"), "v", None, None, true)
            .await
            .unwrap();
    }
    stack
        .emulator
        .set_options(|options| options.latency_ms = latency_ms);
    stack
}

fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
}

/// One interrupt, then atg's output once it has stopped (and its stderr as text).
async fn interrupt_and_wait(child: tokio::process::Child) -> (std::process::Output, String) {
    interrupt(&child);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("atg stops after ctrl-c")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

/// Names of the secrets the emulator says were written into `dst-kv` (its request log, not atg).
fn secrets_written(stack: &Stack) -> BTreeSet<String> {
    stack
        .vault_writes()
        .into_iter()
        .filter(|request| {
            request.vault.as_deref() == Some("dst-kv")
                && request.method == "PUT"
                && request.status.is_some_and(|status| status < 300)
        })
        .filter_map(|request| {
            request
                .path
                .strip_prefix("/secrets/")
                .map(|name| name.trim_end_matches('/').to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_first_ctrl_c_lets_writes_in_flight_land_and_reports_them() {
    // Slow answers, four items at a time, each a read of the source then a write to the target
    // (a second each): the interrupt lands half way through the second batch's writes.
    let stack = slow_stack(40, 1000).await;
    let child = spawn_replication(&stack, "4");
    wait_for_writes(&stack, 4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (output, stderr) = interrupt_and_wait(child).await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // A request the server received takes effect whether or not its answer is read: give the
    // emulator time to finish anything atg might have walked away from.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let written = secrets_written(&stack);

    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["cancelled"], true);
    let items = report["resources"][0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 40, "every item is reported once: {report}");
    let mut replicated = BTreeSet::new();
    for item in items {
        let name = item["name"].as_str().unwrap().to_owned();
        match item["outcome"].as_str().unwrap() {
            "created" => {
                replicated.insert(name);
            }
            "skipped" => {
                assert!(
                    !written.contains(&name),
                    "`{name}` was written but reported {item}"
                );
                assert_eq!(item["reason"], "cancelled before it started", "{item}");
            }
            _ => panic!("unexpected item {item}"),
        }
    }
    assert_eq!(
        replicated, written,
        "replicated items are exactly those the emulator saw written"
    );
    assert!(
        (8..40).contains(&written.len()),
        "the interrupt landed mid-run: {written:?}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        stderr.contains("cancelled"),
        "the summary is printed: {stderr}"
    );
}

#[tokio::test]
async fn a_second_ctrl_c_stops_at_once_with_exit_130() {
    // Slow enough that the run is far from done when the answers become slower still.
    let stack = slow_stack(20, 200).await;
    let mut child = spawn_replication(&stack, "4");
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for_writes(&stack, 1).await;
    // Every answer now takes 10 s: the items in flight would keep atg busy for a while.
    stack
        .emulator
        .set_options(|options| options.latency_ms = 10_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    interrupt(&child);
    let mut seen = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
            .await
            .expect("atg says it was interrupted")
            .unwrap()
            .unwrap_or_else(|| panic!("atg ended before the second interrupt: {seen:?}"));
        let first = line.contains("interrupted");
        seen.push(line);
        if first {
            break;
        }
    }
    let interrupted_again = Instant::now();
    interrupt(&child);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap_or_else(|_| panic!("atg did not stop at the second ctrl-c: {seen:?}"))
        .unwrap();
    assert_eq!(status.code(), Some(130), "{seen:?}");
    assert!(
        interrupted_again.elapsed() < Duration::from_secs(5),
        "atg waited for the slow answers"
    );
}

#[tokio::test]
async fn a_pending_async_copy_is_not_waited_for_and_reported_unconfirmed() {
    let storage = StorageStack::start().await;
    // Azurite has no Put Page From URL: the page blob goes by async Copy Blob, which the
    // gateway keeps `pending` for as long as atg polls.
    storage.seed(
        "srcacct",
        &json!({ "containers": [{ "name": "disks", "blobs": [
            { "name": "os.vhd", "type": "PageBlob", "size": 4096, "pages": [[0, 4096]] }
        ]}]}),
    );
    storage.gateway.set_pending_copies(true);
    let inventory = storage.inventory(json!({}));
    let args = storage.deploy_args(
        &inventory,
        &["--dataplane-mode", "replication", "--output", "json"],
    );
    let child = atg_command(&args, &TARGET_PRINCIPAL)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let polled = || {
        storage.gateway.requests().iter().any(|request| {
            request.method == "HEAD"
                && request.host.starts_with("dstacct.")
                && request.path.ends_with("/os.vhd")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !polled() {
        assert!(Instant::now() < deadline, "atg never polled the copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let interrupted = Instant::now();
    let (output, stderr) = interrupt_and_wait(child).await;
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "atg kept polling the copy after the interrupt: {stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let blob = report["resources"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["kind"] == "blob" && item["name"] == "disks/os.vhd")
        .unwrap_or_else(|| panic!("the blob is reported: {report}"));
    assert_eq!(blob["outcome"], "failed", "{blob}");
    assert!(
        blob["error"]
            .as_str()
            .unwrap()
            .contains("copy started, not confirmed"),
        "{blob}"
    );
}
