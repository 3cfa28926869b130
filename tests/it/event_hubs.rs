//! Event Hubs end to end, beyond the conformance suite: the partition count fixed at creation,
//! the `$Default` consumer group, and the rules' keys, read back with the plain ARM client.

use serde_json::json;

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
