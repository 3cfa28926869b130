//! Bad input is refused before any request: exit 2, a message naming the entry, and an empty
//! request log at the emulator (which would otherwise have seen at least the token requests).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const STORAGE_TYPE: &str = "Microsoft.Storage/storageAccounts";

/// A Key Vault resource in one subscription, so that ids repeat across pairs as they would.
fn kv(name: &str) -> Value {
    kv_resource("sub", name, None)
}

fn storage(name: &str, properties: &Value) -> Value {
    json!({
        "id": format!("/subscriptions/sub/resourceGroups/rg/providers/{STORAGE_TYPE}/{name}"),
        "type": STORAGE_TYPE,
        "name": name,
        "properties": properties,
    })
}

/// An inventory of Key Vault pairs, source and target ids in the same subscription.
fn kv_pairs(stack: &Stack, pairs: &[(&str, &str)]) -> PathBuf {
    let resources: Vec<Value> = pairs
        .iter()
        .map(|(source, target)| json!({ "source": kv(source), "target": kv(target) }))
        .collect();
    stack.write_json("pairs.json", &json!({ "resources": resources }))
}

/// Runs atg, expects exit 2 with every `expected` text on stderr, and no request at all.
async fn refused(stack: &Stack, inventory: &Path, args: &[&str], expected: &[&str]) -> Run {
    let run = stack.deploy(inventory, args).await;
    assert_eq!(run.code, 2, "{run}");
    for text in expected {
        assert!(run.stderr.contains(text), "expected `{text}` in:\n{run}");
    }
    assert!(run.stdout.is_empty(), "{run}");
    assert!(
        stack.requests().is_empty(),
        "requests before the refusal: {:?}",
        stack.requests()
    );
    run
}

#[tokio::test]
async fn a_pair_listed_twice_is_refused_naming_both_entries() {
    let stack = Stack::start().await;
    // Ids differ only in case: ARM ids are case-insensitive.
    let path = stack.write_json(
        "twice.json",
        &json!({ "resources": [
            { "source": kv("src-kv"), "target": kv("dst-kv") },
            { "source": kv("src-kv"), "target": kv_resource("SUB", "DST-KV", None) },
        ]}),
    );
    refused(
        &stack,
        &path,
        &[],
        &[
            "resources[1] (source `src-kv`): the same pair as resources[0] (source `src-kv`), listed twice",
            "hint:",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_source_that_is_its_own_target_is_refused() {
    let stack = Stack::start().await;
    let path = kv_pairs(&stack, &[("same-kv", "same-kv")]);
    refused(
        &stack,
        &path,
        &[],
        &["resources[0] (source `same-kv`): the source is its own target"],
    )
    .await;
}

#[tokio::test]
async fn a_cycle_is_refused() {
    let stack = Stack::start().await;
    let path = kv_pairs(&stack, &[("kv-a", "kv-b"), ("kv-b", "kv-a")]);
    let run = refused(
        &stack,
        &path,
        &[],
        &["2 problems", "read while it is written"],
    )
    .await;
    for expected in [
        "vaults/kv-b` is the target of resources[0] (source `kv-a`) and the source of resources[1] (source `kv-b`)",
        "vaults/kv-a` is the target of resources[1] (source `kv-b`) and the source of resources[0] (source `kv-a`)",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {run}");
    }
}

#[tokio::test]
async fn a_chain_is_refused_at_its_middle() {
    let stack = Stack::start().await;
    let path = kv_pairs(&stack, &[("kv-a", "kv-b"), ("kv-b", "kv-c")]);
    let run = refused(
        &stack,
        &path,
        &[],
        &["vaults/kv-b` is the target of resources[0] (source `kv-a`) and the source of resources[1] (source `kv-b`)"],
    )
    .await;
    assert!(!run.stderr.contains("kv-c`"), "only the middle: {run}");
}

#[tokio::test]
async fn two_pairs_writing_into_one_target_are_refused() {
    let stack = Stack::start().await;
    let path = kv_pairs(&stack, &[("kv-a", "kv-t"), ("kv-b", "kv-t")]);
    refused(
        &stack,
        &path,
        &[],
        &["resources[1] (source `kv-b`) and resources[0] (source `kv-a`) both write into the target"],
    )
    .await;
}

/// Runs atg with `args` plus the emulator's transport; it must exit 2 within seconds, saying
/// `expected`, before any request.
async fn refused_within_seconds(args: &[String], expected: &str) {
    let stack = Stack::start().await;
    let mut args = args.to_vec();
    args.extend(stack.transport_args());
    let mut command = atg_command(&args, &TARGET_PRINCIPAL);
    command.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap_or_else(|_| panic!("atg still running after 30 s: {args:?}"))
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(expected),
        "expected `{expected}` in:\n{stderr}"
    );
    assert!(stack.requests().is_empty());
}

/// Runs atg on an inventory path that is not a file.
async fn not_a_file(path: &Path, expected: &str) {
    let args = ["deploy", "--inventory", &path.display().to_string()].map(String::from);
    refused_within_seconds(&args, expected).await;
}

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    path
}

#[tokio::test]
async fn an_endless_or_blocking_inventory_is_refused_as_not_a_regular_file() {
    not_a_file(
        Path::new("/dev/zero"),
        "not a regular file (a character device)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    not_a_file(
        &fifo(dir.path(), "inventory.fifo"),
        "not a regular file (a FIFO)",
    )
    .await;
    not_a_file(dir.path(), "not a regular file (a directory)").await;
}

#[tokio::test]
async fn a_mappings_file_that_is_not_a_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mappings = fifo(dir.path(), "mappings.json");
    let args = [
        "deploy",
        "--neo4j-uri",
        "bolt://127.0.0.1:9",
        "--neo4j-password",
        "p",
        "--source-subscription",
        "00000000-0000-0000-0000-000000000001",
        "--iac-dir",
        &dir.path().display().to_string(),
        "--mappings",
        &mappings.display().to_string(),
    ]
    .map(String::from);
    refused_within_seconds(&args, "not a regular file (a FIFO)").await;
}

#[tokio::test]
async fn an_inventory_over_the_size_limit_is_refused_not_truncated() {
    let stack = Stack::start().await;
    let path = stack.path("huge.json");
    // Sparse: 64 MiB and one byte without writing them.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 * 1024 * 1024 + 1)
        .unwrap();
    refused(&stack, &path, &[], &["larger than the limit of 64 MiB"]).await;
}

#[tokio::test]
async fn bad_per_pair_options_are_refused_before_any_request() {
    let stack = Stack::start().await;
    let storage_pair = |options: Value| {
        json!({ "resources": [{
            "source": storage("srcacct", &json!({})),
            "target": storage("dstacct", &json!({})),
            "options": options,
        }]})
    };
    let cases = [
        (
            storage_pair(json!({ "blok_size_mib": 8 })),
            "resources[0] (source `srcacct`): options: unknown field `blok_size_mib`",
        ),
        (
            storage_pair(json!({ "block_size_mib": 0 })),
            "resources[0] (source `srcacct`): options.block_size_mib must be a whole number from 1 to 4000",
        ),
        (
            storage_pair(json!({ "block_size_mib": 1e20 })),
            "options.block_size_mib must be a whole number from 1 to 4000",
        ),
        (
            storage_pair(json!({ "queue_messages": "all" })),
            "options.queue_messages must be none or peek",
        ),
        (
            json!({ "resources": [{
                "source": kv("src-kv"), "target": kv("dst-kv"), "options": { "queue_messages": "peek" },
            }]}),
            "resources[0] (source `src-kv`): unknown option `queue_messages`: the key-vault plugin takes no options",
        ),
    ];
    for (inventory, expected) in cases {
        let path = stack.write_json("options.json", &inventory);
        refused(&stack, &path, &[], &[expected]).await;
    }
}

#[tokio::test]
async fn endpoints_outside_the_cloud_are_refused_before_any_request() {
    let stack = Stack::start().await;
    let cases = [
        (
            json!({ "resources": [{
                "source": kv("src-kv"),
                "target": kv_resource("sub", "dst-kv", Some("https://dst-kv.vault.azure.cn/".into())),
            }]}),
            "resources[0] (source `src-kv`): target: vault URI `https://dst-kv.vault.azure.cn` is not a AzureCloud Key Vault",
        ),
        (
            json!({ "resources": [{
                "source": storage("srcacct", &json!({ "primaryEndpoints": { "blob": "https://collector.example/" } })),
                "target": storage("dstacct", &json!({})),
            }]}),
            "resources[0] (source `srcacct`): source: blob endpoint `https://collector.example/` is not https://srcacct.blob.core.windows.net/",
        ),
    ];
    for (inventory, expected) in cases {
        let path = stack.write_json("endpoints.json", &inventory);
        refused(&stack, &path, &[], &[expected]).await;
    }
}

#[tokio::test]
async fn a_report_path_that_cannot_be_written_is_refused_before_any_request() {
    let stack = Stack::start().await;
    let inventory = kv_pairs(&stack, &[("src-kv", "dst-kv")]);
    let missing = stack.path("no-such-dir/report.json");
    refused(
        &stack,
        &inventory,
        &["--report", &missing.display().to_string()],
        &["--report", "the directory", "does not exist"],
    )
    .await;
    let directory = stack.dir.path().display().to_string();
    refused(
        &stack,
        &inventory,
        &["--report", &directory],
        &["is a directory"],
    )
    .await;
    // The probe leaves nothing behind.
    let left: Vec<_> = std::fs::read_dir(stack.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains("probe"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn control_characters_in_names_are_refused_and_never_echoed_raw() {
    let stack = Stack::start().await;
    let evil = "kv\u{1b}]0;owned\u{7}\u{9b}31m";
    let path = stack.write_json(
        "evil.json",
        &json!({ "resources": [{ "source": kv(evil), "target": kv("dst-kv") }] }),
    );
    let run = refused(
        &stack,
        &path,
        &[],
        &["source.id `/subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv\\u{1b}]0;owned\\u{7}\\u{9b}31m` contains control characters"],
    )
    .await;
    assert!(
        !run.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached stderr: {:?}",
        run.stderr
    );
}

#[tokio::test]
async fn an_empty_inventory_says_there_is_nothing_to_do() {
    let stack = Stack::start().await;
    let path = stack.write_json("empty.json", &json!({ "resources": [] }));
    // No credentials at all: none is needed when there is nothing to do.
    let run = stack
        .deploy_with_env(&path, &["--output", "json"], &[])
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("nothing to do: the inventory has no resources"),
        "{run}"
    );
    let report = run.report();
    assert_eq!(report["resources"], json!([]), "{run}");
    assert_eq!(report["totals"]["resources"], 0, "{run}");
    assert!(stack.requests().is_empty());
}

#[tokio::test]
async fn the_graph_next_to_an_inventory_is_two_sources() {
    let stack = Stack::start().await;
    let inventory = kv_pairs(&stack, &[("src-kv", "dst-kv")]);
    refused(
        &stack,
        &inventory,
        &["--neo4j-uri", "bolt://127.0.0.1:7687"],
        &["two sources of resources: --inventory and --neo4j-uri"],
    )
    .await;
    refused(
        &stack,
        &inventory,
        &["--neo4j-database", "tenant"],
        &["two sources of resources: --inventory and --neo4j-database"],
    )
    .await;
    // NEO4J_URI in the environment (set for ATG, say) is not a second source: a warning.
    let empty = stack.write_json("empty.json", &json!({ "resources": [] }));
    let run = stack
        .deploy_with_env(&empty, &[], &[("NEO4J_URI", "bolt://127.0.0.1:7687")])
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("warning: NEO4J_URI is set, but --inventory is given: the graph is not read"),
        "{run}"
    );
}
