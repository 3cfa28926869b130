//! Microsoft.EventHub: event hubs (with their `$Default` consumer group, `partitionCount` fixed at
//! creation), consumer groups and authorization rules, in the shapes of
//! `shared/azure-recordings/eventhubs/` (see [`super::messaging`] for what the family shares).

use serde_json::{json, Value};

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
        },
    ],
};
