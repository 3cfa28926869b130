//! `atg verify`: both sides read back item by item after a deploy, with verdicts a pipeline can
//! gate on; the target is damaged through the testkit's plain REST client (not atg's clients).

use serde_json::json;

use crate::common::*;
use crate::key_vault::{seed_source, SENTINEL};
use crate::storage::{StorageStack, SOURCE, TARGET};

/// `atg verify` over `inventory`, with the same transport flags as deploy.
async fn verify(stack: &Stack, inventory: &std::path::Path, args: &[&str]) -> Run {
    let mut all = stack.deploy_args(inventory, args);
    all[0] = "verify".into();
    atg(&all, &TARGET_PRINCIPAL).await
}

#[tokio::test]
async fn verify_passes_an_exact_copy_and_names_every_damage_without_writing() {
    let stack = Stack::start().await;
    seed_source(&stack, "src-kv").await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let replication = ["--dataplane-mode", "replication", "--output", "json"];
    let run = stack.deploy(&inventory, &replication).await;
    assert_eq!(run.code, 0, "{run}");

    let writes = stack.vault_writes().len();
    let exact = verify(&stack, &inventory, &replication).await;
    assert_eq!(exact.code, 0, "{exact}");
    let report = exact.report();
    assert_eq!(report["verify"], true);
    let totals = &report["totals"]["items"];
    for gap in ["missing", "different", "unverified", "extra"] {
        assert_eq!(totals[gap], 0, "{gap}: {report}");
    }
    assert_eq!(report["totals"]["fidelity"], 1.0, "{report}");
    assert_eq!(report["resources"][0]["fidelity"], 1.0, "{report}");
    assert_eq!(
        report_item(&report, "certificate", "self-cert")["verdict"],
        "identical"
    );

    // Damage the target: a changed value, changed tags, a deleted secret, an item of its own.
    let target = stack.vault("dst-kv");
    target
        .set_secret("plain", "changed-in-target", None, None, true)
        .await
        .unwrap();
    target
        .set_secret(
            "versioned",
            "v3",
            None,
            Some(&tags(&[("owner", "someone-else")])),
            true,
        )
        .await
        .unwrap();
    target.delete_secret("typed").await.unwrap();
    target
        .set_secret("only-in-target", "x", None, None, true)
        .await
        .unwrap();
    let writes_before = stack.vault_writes().len();

    let damaged = verify(&stack, &inventory, &replication).await;
    assert_eq!(damaged.code, 1, "{damaged}");
    let report = damaged.report();
    let plain = report_item(&report, "secret", "plain");
    assert_eq!(plain["verdict"], "different", "{plain}");
    assert_eq!(plain["differs"], serde_json::json!(["value"]), "{plain}");
    let versioned = report_item(&report, "secret", "versioned");
    assert_eq!(versioned["verdict"], "different", "{versioned}");
    assert_eq!(
        versioned["differs"],
        serde_json::json!(["tags"]),
        "{versioned}"
    );
    assert_eq!(
        report_item(&report, "secret", "typed")["verdict"],
        "missing"
    );
    assert_eq!(
        report_item(&report, "secret", "only-in-target")["verdict"],
        "extra"
    );
    let totals = &report["totals"]["items"];
    assert_eq!(totals["missing"], 1, "{report}");
    assert_eq!(totals["different"], 2, "{report}");
    assert_eq!(totals["extra"], 1, "{report}");
    let fidelity = report["totals"]["fidelity"].as_f64().unwrap();
    assert!(fidelity < 1.0 && fidelity > 0.0, "{fidelity}");
    assert_eq!(report["resources"][0]["status"], "failed");
    // The human summary names each damage; values never appear anywhere.
    for line in [
        "different (value) secret `plain`",
        "missing secret `typed`",
        "extra (only in the target) secret `only-in-target`",
    ] {
        assert!(damaged.stderr.contains(line), "{line}\n{damaged}");
    }
    for output in [
        &exact.stdout,
        &exact.stderr,
        &damaged.stdout,
        &damaged.stderr,
    ] {
        assert!(!output.contains(SENTINEL));
        assert!(!output.contains("changed-in-target"));
    }
    // Verify reads only.
    assert_eq!(stack.vault_writes().len(), writes_before);
    assert!(writes_before > writes);
}

#[tokio::test]
async fn verify_refuses_flags_that_only_shape_writes() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    for flag in [
        &["--dry-run"][..],
        &["--on-conflict", "skip"],
        &["--on-deleted", "purge"],
    ] {
        let run = verify(&stack, &inventory, flag).await;
        assert_eq!(run.code, 2, "{run}");
        assert!(
            run.stderr
                .contains(&format!("atg verify takes no {}", flag[0])),
            "{run}"
        );
    }
    assert!(stack.requests().is_empty());
}

/// `atg verify` over a storage inventory, through the storage gateway.
async fn verify_storage(storage: &StorageStack, inventory: &std::path::Path) -> Run {
    let mut all = storage.deploy_args(
        inventory,
        &["--dataplane-mode", "replication", "--output", "json"],
    );
    all[0] = "verify".into();
    atg(&all, &TARGET_PRINCIPAL).await
}

#[tokio::test]
async fn storage_blobs_and_entities_are_planned_and_verified_one_by_one() {
    let storage = StorageStack::start().await;
    let blobs: Vec<_> = (0..5)
        .map(|i| json!({ "name": format!("b{i}"), "size": 100 * (i + 1) }))
        .collect();
    storage.seed(
        SOURCE,
        &json!({
            "containers": [{ "name": "data", "metadata": {}, "blobs": blobs }],
            "tables": [{ "name": "people", "entities": [
                { "PartitionKey": "p", "RowKey": "1", "Name": "ada" },
                { "PartitionKey": "p", "RowKey": "2", "Name": "grace", "Age": ["Int32", 36] }
            ]}]
        }),
    );
    let inventory = storage.inventory(json!({}));

    // A dry run decides every blob and says what a copy would move; a pipeline sees changes.
    let dry = storage
        .deploy(
            &inventory,
            &[
                "--dry-run",
                "--detailed-exitcode",
                "--dataplane-mode",
                "replication",
                "--output",
                "json",
            ],
        )
        .await;
    assert_eq!(dry.code, 3, "{dry}");
    let report = dry.report();
    let resource = &report["resources"][0];
    assert_eq!(resource["counts_by_kind"]["blob"]["planned"], 5, "{report}");
    assert_eq!(resource["counts_by_kind"]["blob"]["planned_changes"], 5);
    assert_eq!(resource["facts"]["bytes_to_copy"], 1500, "{report}");
    assert_eq!(resource["counts_by_kind"]["entity"]["planned_changes"], 2);
    let people = report_item(&report, "table", "people");
    assert!(
        people["notes"]
            .to_string()
            .contains("entities: 2 to create"),
        "{people}"
    );
    let data = report_item(&report, "container", "data");
    assert!(
        data["notes"].to_string().contains("blobs: 5 to create"),
        "{data}"
    );
    assert!(storage.target_writes().is_empty());

    let run = storage
        .deploy(&inventory, &["--dataplane-mode", "replication"])
        .await;
    assert_eq!(run.code, 0, "{run}");
    let exact = verify_storage(&storage, &inventory).await;
    assert_eq!(exact.code, 0, "{exact}");
    let report = exact.report();
    // 5 blobs, 2 entities, the container and the table.
    assert_eq!(report["totals"]["items"]["identical"], 9, "{report}");
    assert_eq!(report["totals"]["fidelity"], 1.0, "{report}");

    // Damage the target behind atg's back (Python SDK): one blob changed, one deleted, one
    // only in the target.
    let conn = storage.azurite.connection_string(TARGET);
    let ca = storage.azurite.ca_path.display().to_string();
    storage.python(&[
        "put-blob",
        &conn,
        &ca,
        "data",
        &json!({ "name": "b1", "size": 7 }).to_string(),
    ]);
    storage.python(&["delete-blob", &conn, &ca, "data", "b2"]);
    storage.python(&[
        "put-blob",
        &conn,
        &ca,
        "data",
        &json!({ "name": "zz-extra", "size": 1 }).to_string(),
    ]);
    storage.python(&[
        "put-entity",
        &conn,
        &ca,
        "people",
        &json!({ "PartitionKey": "p", "RowKey": "2", "Name": "grace", "Age": ["Int32", 37] })
            .to_string(),
    ]);
    let writes = storage.target_writes().len();
    let damaged = verify_storage(&storage, &inventory).await;
    assert_eq!(damaged.code, 1, "{damaged}");
    let report = damaged.report();
    let changed = report_item(&report, "blob", "data/b1");
    assert_eq!(changed["verdict"], "different", "{changed}");
    assert_eq!(changed["differs"], json!(["value"]), "{changed}");
    assert_eq!(
        report_item(&report, "blob", "data/b2")["verdict"],
        "missing"
    );
    assert_eq!(
        report_item(&report, "blob", "data/zz-extra")["verdict"],
        "extra"
    );
    let totals = &report["totals"]["items"];
    assert_eq!(totals["missing"], 1, "{report}");
    assert_eq!(totals["different"], 2, "{report}");
    let grace = report_item(&report, "entity", "people/p/2");
    assert_eq!(grace["verdict"], "different", "{grace}");
    assert_eq!(totals["extra"], 1, "{report}");
    assert_eq!(storage.target_writes().len(), writes, "verify wrote");
}

#[tokio::test]
async fn storage_structure_verifies_in_template_mode_without_comparing_contents() {
    let storage = StorageStack::start().await;
    storage.seed(
        SOURCE,
        &json!({
            "containers": [{ "name": "data", "metadata": { "owner": "a" },
                             "blobs": [{ "name": "b", "size": 10 }] }],
            "queues": [{ "name": "jobs", "metadata": { "purpose": "work" }, "messages": ["one"] }],
            "tables": [{ "name": "people", "entities": [{ "PartitionKey": "p", "RowKey": "1" }] }]
        }),
    );
    let inventory = storage.inventory(json!({}));
    let run = storage
        .deploy(&inventory, &["--dataplane-mode", "template"])
        .await;
    assert_eq!(run.code, 0, "{run}");
    let mut all = storage.deploy_args(
        &inventory,
        &["--dataplane-mode", "template", "--output", "json"],
    );
    all[0] = "verify".into();
    let verified = atg(&all, &TARGET_PRINCIPAL).await;
    // Template promises the structure: the container, queue and table with their settings,
    // decided by those settings (their blobs, messages and entities are not promised).
    assert_eq!(verified.code, 0, "{verified}");
    let report = verified.report();
    assert_eq!(report["totals"]["items"]["unverified"], 0, "{report}");
    assert_eq!(report["totals"]["items"]["identical"], 3, "{report}");
    for (kind, name) in [
        ("container", "data"),
        ("queue", "jobs"),
        ("table", "people"),
    ] {
        assert_eq!(report_item(&report, kind, name)["verdict"], "identical");
    }
}
