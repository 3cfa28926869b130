//! Event Hubs end to end, beyond the conformance suite: the partition count fixed at creation,
//! the `$Default` consumer group, and the rules' keys, read back with the plain ARM client.

use serde_json::json;

use crate::common::resource_item;
use crate::conformance::event_hubs::EVENT_HUBS;
use crate::conformance::messaging::{key, MessagingWorld};
use crate::conformance::Target;

#[tokio::test]
async fn partition_count_is_reported_default_group_matched_and_keys_copied() {
    let world = MessagingWorld::start(&EVENT_HUBS).await;
    let (source, target) = (world.source_id(), world.target_id(Target::Replica));
    world
        .arm
        .put(
            &format!("{source}/eventhubs/telemetry"),
            &json!({ "properties": { "partitionCount": 8, "messageRetentionInDays": 2 } }),
        )
        .await;
    world
        .arm
        .put(&format!("{source}/eventhubs/fresh"), &json!({}))
        .await;
    let rule = "eventhubs/telemetry/authorizationRules/ingest";
    world
        .arm
        .put(
            &format!("{source}/{rule}"),
            &json!({ "properties": { "rights": ["Send"] } }),
        )
        .await;
    let (primary, secondary) = (key("eh-primary"), key("eh-secondary"));
    world
        .arm
        .set_key(&format!("{source}/{rule}"), "PrimaryKey", &primary)
        .await;
    world
        .arm
        .set_key(&format!("{source}/{rule}"), "SecondaryKey", &secondary)
        .await;
    // Terraform made the event hub in the target with its default partition count.
    world
        .arm
        .put(&format!("{target}/eventhubs/telemetry"), &json!({}))
        .await;

    let inventory = world.pairs_inventory(&[(source.clone(), target.clone())]);
    let run = world
        .stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json", "-vv"],
        )
        .await;
    let report = run.report();
    let resource = &report["resources"][0];
    let items = resource["items"].as_array().unwrap();
    let find = |kind: &str, name: &str| {
        items
            .iter()
            .find(|i| i["kind"] == kind && i["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}: {resource:#}"))
    };
    let telemetry = find("event-hub", "eventhubs/telemetry");
    assert_eq!(telemetry["outcome"], "partial", "{telemetry}");
    assert!(
        telemetry["reason"]
            .as_str()
            .unwrap()
            .contains("partitionCount (8 in the source, 4 in the target)"),
        "{telemetry}"
    );
    let held = world
        .arm
        .get(&format!("{target}/eventhubs/telemetry"))
        .await
        .unwrap();
    assert_eq!(held["properties"]["partitionCount"], 4);
    assert_eq!(held["properties"]["messageRetentionInDays"], 2);

    // $Default exists once per event hub, never written by atg.
    for hub in ["telemetry", "fresh"] {
        let groups = world
            .arm
            .list(&format!("{target}/eventhubs/{hub}/consumergroups"))
            .await;
        assert_eq!(groups.len(), 1, "{hub}: {groups:#?}");
        let outcome = &find(
            "consumer-group",
            &format!("eventhubs/{hub}/consumergroups/$Default"),
        )["outcome"];
        assert_eq!(outcome, "identical", "{hub}");
    }
    assert!(
        !world
            .writes_to(&target)
            .iter()
            .any(|w| w.contains("/consumergroups/")),
        "{:#?}",
        world.writes_to(&target)
    );

    assert_eq!(
        world.arm.keys(&format!("{source}/{rule}")).await,
        world.arm.keys(&format!("{target}/{rule}")).await
    );
    for secret in [&primary, &secondary] {
        assert!(!run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()));
    }
}

/// Runs a replication over `inventory`; answers the report.
async fn replicate(world: &MessagingWorld, inventory: &std::path::Path) -> serde_json::Value {
    let args = ["--dataplane-mode", "replication", "--output", "json"];
    world.stack.deploy(inventory, &args).await.report()
}

/// The replica target's event hub `name`, read with the plain ARM client.
async fn target_hub(world: &MessagingWorld, name: &str) -> serde_json::Value {
    let target = world.target_id(Target::Replica);
    let id = format!("{target}/eventhubs/{name}");
    world.arm.get(&id).await.expect("the event hub exists")
}

/// A capture description into the storage account `account` of `subscription`.
fn capture(subscription: &str, account: &str) -> serde_json::Value {
    json!({
        "enabled": true,
        "encoding": "Avro",
        "intervalInSeconds": 120,
        "sizeLimitInBytes": 10_485_760,
        "destination": {
            "name": "EventHubArchive.AzureBlockBlob",
            "properties": {
                "storageAccountResourceId": storage_account(subscription, account),
                "blobContainer": "archive",
                "archiveNameFormat": "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}",
            },
        },
    })
}

fn storage_account(subscription: &str, account: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{account}")
}

#[tokio::test]
async fn capture_points_at_the_paired_storage_account_or_is_left_out_and_reported() {
    let world = MessagingWorld::start(&EVENT_HUBS).await;
    let (source, target) = (world.source_id(), world.target_id(Target::Replica));
    for (hub, account) in [("archived", "srcarchive"), ("elsewhere", "unpaired")] {
        world
            .arm
            .put(
                &format!("{source}/eventhubs/{hub}"),
                &json!({ "properties": { "captureDescription": capture("source-sub", account) } }),
            )
            .await;
    }
    // The storage account pair is in the run only for the reference: no storage stand-in here.
    let namespace = |id: &str| json!({ "id": id, "type": "Microsoft.EventHub/namespaces", "name": id.rsplit('/').next() });
    let account = |subscription: &str, name: &str| json!({ "id": storage_account(subscription, name), "type": "Microsoft.Storage/storageAccounts", "name": name });
    let inventory = world.stack.write_json(
        "inventory.json",
        &json!({ "version": 1, "resources": [
            { "source": namespace(&source), "target": namespace(&target) },
            { "source": account("source-sub", "srcarchive"), "target": account("target-sub", "tgtarchive") },
        ] }),
    );
    let report = replicate(&world, &inventory).await;
    let resource = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource_type"] == "Microsoft.EventHub/namespaces")
        .unwrap_or_else(|| panic!("{report:#}"));

    let archived = resource_item(resource, "event-hub", "eventhubs/archived");
    assert_eq!(archived["outcome"], "created", "{archived}");
    let held = target_hub(&world, "archived").await;
    assert_eq!(
        held["properties"]["captureDescription"],
        capture("target-sub", "tgtarchive")
    );

    let elsewhere = resource_item(resource, "event-hub", "eventhubs/elsewhere");
    assert_eq!(elsewhere["outcome"], "partial", "{elsewhere}");
    let reason = elsewhere["reason"].as_str().unwrap();
    assert!(
        reason.contains("storage account unpaired is not paired") && reason.contains("pair it"),
        "{elsewhere}"
    );
    let held = target_hub(&world, "elsewhere").await;
    assert!(
        held["properties"].get("captureDescription").is_none(),
        "{held:#}"
    );
}

#[tokio::test]
async fn a_compacted_event_hub_is_written_with_its_retention_description_only() {
    let world = MessagingWorld::start(&EVENT_HUBS).await;
    let (source, target) = (world.source_id(), world.target_id(Target::Replica));
    let retention = json!({ "cleanupPolicy": "Compact", "tombstoneRetentionTimeInHours": 24 });
    world
        .arm
        .put(
            &format!("{source}/eventhubs/compacted"),
            &json!({ "properties": { "partitionCount": 2, "retentionDescription": retention } }),
        )
        .await;
    // What the service answers for it (azure-rest-api-specs#36018), and refuses back.
    let answered = world
        .arm
        .get(&format!("{source}/eventhubs/compacted"))
        .await
        .unwrap();
    assert!(
        answered["properties"]["messageRetentionInDays"]
            .as_u64()
            .is_some_and(|days| days > i64::MAX as u64),
        "{answered:#}"
    );

    let inventory = world.pairs_inventory(&[(source.clone(), target.clone())]);
    for (run_number, outcome) in [(1, "created"), (2, "identical")] {
        let report = replicate(&world, &inventory).await;
        let hub = resource_item(&report["resources"][0], "event-hub", "eventhubs/compacted");
        assert_eq!(hub["outcome"], outcome, "run {run_number}: {hub}");
    }
    let held = target_hub(&world, "compacted").await;
    assert_eq!(held["properties"]["retentionDescription"], retention);
    assert_eq!(held["properties"]["partitionCount"], 2);
}
