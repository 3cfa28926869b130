//! Microsoft.EventHub: event hubs (with their `$Default` consumer group, `partitionCount` fixed at
//! creation), consumer groups and authorization rules, in the shapes of
//! `shared/azure-recordings/eventhubs/` (see [`super::messaging`] for what the family shares).

use serde_json::{json, Map, Value};

use super::messaging::{times, Entity, Family};
use super::store::Resource;

fn event_hub_defaults() -> Value {
    json!({
        "retentionDescription": { "cleanupPolicy": "Delete", "retentionTimeInHours": 168 },
        "messageRetentionInDays": 7,
        "partitionCount": 4,
        "status": "Active",
    })
}

/// The retention an event hub holds, from what the request set: `messageRetentionInDays` (1 to
/// 90 days) and `retentionDescription` derive each other under the `Delete` policy; under
/// `Compact` without `messageRetentionInDays`, the service answers a value beyond int64
/// (azure-rest-api-specs#36018), which it refuses when a client sends it back.
fn retention(requested: &Value, properties: &mut Map<String, Value>) -> Result<(), String> {
    let days = requested.get("messageRetentionInDays");
    if let Some(days) = days {
        if !days.as_u64().is_some_and(|days| (1..=90).contains(&days)) {
            return Err(format!(
                "SubCode=40000. The value '{days}' of the property 'messageRetentionInDays' is invalid: it must be a whole number of days from 1 to 90. To know more visit https://aka.ms/sbResourceMgrExceptions."
            ));
        }
    }
    match (requested.get("retentionDescription"), days) {
        (Some(description), _) => {
            let derived = if description["cleanupPolicy"] == "Compact" {
                days.cloned().unwrap_or(json!(u64::MAX))
            } else {
                let hours = description["retentionTimeInHours"].as_u64().unwrap_or(168);
                json!((hours / 24).max(1))
            };
            properties.insert("messageRetentionInDays".to_owned(), derived);
        }
        (None, Some(days)) => {
            let hours = days.as_u64().unwrap_or(7) * 24;
            properties.insert(
                "retentionDescription".to_owned(),
                json!({ "cleanupPolicy": "Delete", "retentionTimeInHours": hours }),
            );
        }
        (None, None) => {}
    }
    Ok(())
}

fn event_hub_read_only(resource: &Resource) -> Value {
    let partitions = resource.body["properties"]["partitionCount"]
        .as_u64()
        .unwrap_or(4);
    let mut out = times();
    out["partitionIds"] = json!((0..partitions).map(|id| id.to_string()).collect::<Vec<_>>());
    out
}

fn no_defaults() -> Value {
    json!({})
}

fn namespace_properties(_: &Resource) -> Value {
    json!({
        "isAutoInflateEnabled": false,
        "maximumThroughputUnits": 0,
        "kafkaEnabled": true,
    })
}

fn consumer_group_read_only(_: &Resource) -> Value {
    times()
}

pub(crate) static EVENT_HUB: Family = Family {
    namespace: "Microsoft.EventHub",
    namespace_properties,
    sku_capacity: true,
    entities: &[
        Entity {
            types: &["namespaces", "eventhubs"],
            label: "EventHub",
            settable: &[
                "retentionDescription",
                "messageRetentionInDays",
                "partitionCount",
                "status",
                "captureDescription",
            ],
            defaults: event_hub_defaults,
            immutable: &["partitionCount"],
            forwarding: &[],
            read_only: event_hub_read_only,
            location: true,
            default_child: Some(("consumergroups", "$Default", no_defaults)),
            derive: Some(retention),
        },
        Entity {
            types: &["namespaces", "eventhubs", "consumergroups"],
            label: "ConsumerGroup",
            settable: &["userMetadata"],
            defaults: no_defaults,
            immutable: &[],
            forwarding: &[],
            read_only: consumer_group_read_only,
            location: true,
            default_child: None,
            derive: None,
        },
    ],
};
