//! Microsoft.ServiceBus: queues, topics, subscriptions (with their `$Default` rule), rules (SQL
//! and correlation filters, actions) and authorization rules, in the shapes of
//! `shared/azure-recordings/servicebus/` (see [`super::messaging`] for what the family shares).

use serde_json::{json, Value};

use super::messaging::{times, Entity, Family};
use super::store::Resource;

const FOREVER: &str = "P10675199DT2H48M5.4775807S";

fn count_details() -> Value {
    json!({
        "activeMessageCount": 0,
        "deadLetterMessageCount": 0,
        "scheduledMessageCount": 0,
        "transferMessageCount": 0,
        "transferDeadLetterMessageCount": 0,
    })
}

fn queue_defaults() -> Value {
    json!({
        "maxMessageSizeInKilobytes": 256,
        "lockDuration": "PT1M",
        "maxSizeInMegabytes": 1024,
        "requiresDuplicateDetection": false,
        "requiresSession": false,
        "defaultMessageTimeToLive": FOREVER,
        "deadLetteringOnMessageExpiration": false,
        "enableBatchedOperations": true,
        "duplicateDetectionHistoryTimeWindow": "PT10M",
        "maxDeliveryCount": 10,
        "status": "Active",
        "autoDeleteOnIdle": FOREVER,
        "enablePartitioning": false,
        "enableExpress": false,
    })
}

fn queue_read_only(_: &Resource) -> Value {
    let mut out = times();
    out["sizeInBytes"] = json!(0);
    out["messageCount"] = json!(0);
    out["countDetails"] = count_details();
    out["accessedAt"] = json!("0001-01-01T00:00:00");
    out
}

fn topic_defaults() -> Value {
    json!({
        "maxMessageSizeInKilobytes": 256,
        "defaultMessageTimeToLive": FOREVER,
        "maxSizeInMegabytes": 1024,
        "requiresDuplicateDetection": false,
        "duplicateDetectionHistoryTimeWindow": "PT10M",
        "enableBatchedOperations": true,
        "status": "Active",
        "supportOrdering": true,
        "autoDeleteOnIdle": FOREVER,
        "enablePartitioning": false,
        "enableExpress": false,
    })
}

fn topic_read_only(_: &Resource) -> Value {
    let mut out = times();
    out["sizeInBytes"] = json!(0);
    out["accessedAt"] = json!("0001-01-01T00:00:00");
    out["subscriptionCount"] = json!(0);
    out["countDetails"] = count_details();
    out
}

fn subscription_defaults() -> Value {
    json!({
        "lockDuration": "PT1M",
        "requiresSession": false,
        "defaultMessageTimeToLive": FOREVER,
        "deadLetteringOnFilterEvaluationExceptions": true,
        "deadLetteringOnMessageExpiration": false,
        "maxDeliveryCount": 10,
        "status": "Active",
        "enableBatchedOperations": true,
        "autoDeleteOnIdle": FOREVER,
        "isClientAffine": false,
    })
}

fn subscription_read_only(_: &Resource) -> Value {
    let mut out = times();
    out["messageCount"] = json!(0);
    out["accessedAt"] = json!("0001-01-01T00:00:00");
    out["countDetails"] = count_details();
    out
}

fn rule_defaults() -> Value {
    json!({ "action": {}, "filterType": "SqlFilter" })
}

/// The rule every subscription is created with: it lets every message through.
fn default_rule() -> Value {
    json!({
        "action": {},
        "filterType": "SqlFilter",
        "sqlFilter": { "sqlExpression": "1=1", "compatibilityLevel": 20 },
    })
}

fn nothing(_: &Resource) -> Value {
    json!({})
}

fn namespace_properties(_: &Resource) -> Value {
    json!({ "premiumMessagingPartitions": 0 })
}

pub(crate) static SERVICE_BUS: Family = Family {
    namespace: "Microsoft.ServiceBus",
    namespace_properties,
    sku_capacity: false,
    entities: &[
        Entity {
            types: &["namespaces", "queues"],
            label: "Queue",
            settable: &[
                "maxMessageSizeInKilobytes",
                "lockDuration",
                "maxSizeInMegabytes",
                "requiresDuplicateDetection",
                "requiresSession",
                "defaultMessageTimeToLive",
                "deadLetteringOnMessageExpiration",
                "enableBatchedOperations",
                "duplicateDetectionHistoryTimeWindow",
                "maxDeliveryCount",
                "status",
                "autoDeleteOnIdle",
                "enablePartitioning",
                "enableExpress",
                "forwardTo",
                "forwardDeadLetteredMessagesTo",
            ],
            defaults: queue_defaults,
            immutable: &[
                "requiresSession",
                "requiresDuplicateDetection",
                "enablePartitioning",
            ],
            forwarding: &["forwardTo", "forwardDeadLetteredMessagesTo"],
            read_only: queue_read_only,
            location: true,
            default_child: None,
            derive: None,
        },
        Entity {
            types: &["namespaces", "topics"],
            label: "Topic",
            settable: &[
                "maxMessageSizeInKilobytes",
                "defaultMessageTimeToLive",
                "maxSizeInMegabytes",
                "requiresDuplicateDetection",
                "duplicateDetectionHistoryTimeWindow",
                "enableBatchedOperations",
                "status",
                "supportOrdering",
                "autoDeleteOnIdle",
                "enablePartitioning",
                "enableExpress",
            ],
            defaults: topic_defaults,
            immutable: &["requiresDuplicateDetection", "enablePartitioning"],
            forwarding: &[],
            read_only: topic_read_only,
            location: true,
            default_child: None,
            derive: None,
        },
        Entity {
            types: &["namespaces", "topics", "subscriptions"],
            label: "Subscription",
            settable: &[
                "lockDuration",
                "requiresSession",
                "defaultMessageTimeToLive",
                "deadLetteringOnFilterEvaluationExceptions",
                "deadLetteringOnMessageExpiration",
                "maxDeliveryCount",
                "status",
                "enableBatchedOperations",
                "autoDeleteOnIdle",
                "isClientAffine",
                "clientAffineProperties",
                "forwardTo",
                "forwardDeadLetteredMessagesTo",
            ],
            defaults: subscription_defaults,
            immutable: &["requiresSession"],
            forwarding: &["forwardTo", "forwardDeadLetteredMessagesTo"],
            read_only: subscription_read_only,
            location: false,
            default_child: Some(("rules", "$Default", default_rule)),
            derive: None,
        },
        Entity {
            types: &["namespaces", "topics", "subscriptions", "rules"],
            label: "Rule",
            settable: &["action", "filterType", "sqlFilter", "correlationFilter"],
            defaults: rule_defaults,
            immutable: &[],
            forwarding: &[],
            read_only: nothing,
            location: false,
            default_child: None,
            derive: None,
        },
    ],
};
