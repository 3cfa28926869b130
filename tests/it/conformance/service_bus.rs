//! Service Bus in the conformance suite (see [`super::messaging`]).

use serde_json::{json, Value};

use super::messaging::{MessagingWorld, Service};
use super::Fixture;

pub struct ServiceBusFixture;

/// Every kind the plugin copies, each with properties other than the service's defaults.
pub fn seed() -> Vec<(String, Value)> {
    let entity = |relative: &str, properties: Value| {
        (relative.to_owned(), json!({ "properties": properties }))
    };
    let rule = |relative: &str, rights: &[&str]| {
        (
            relative.to_owned(),
            json!({ "properties": { "rights": rights } }),
        )
    };
    vec![
        entity(
            "topics/t-orders",
            json!({ "defaultMessageTimeToLive": "P7D", "requiresDuplicateDetection": true, "maxSizeInMegabytes": 2048 }),
        ),
        entity("queues/q-sink", json!({ "maxDeliveryCount": 3 })),
        entity(
            "queues/q-plain",
            json!({ "lockDuration": "PT2M", "maxDeliveryCount": 7, "deadLetteringOnMessageExpiration": true }),
        ),
        entity("queues/q-session", json!({ "requiresSession": true })),
        entity(
            "queues/a-forwarder",
            json!({ "forwardTo": "q-sink", "forwardDeadLetteredMessagesTo": "q-sink" }),
        ),
        entity(
            "topics/t-orders/subscriptions/s-audit",
            json!({ "maxDeliveryCount": 5 }),
        ),
        entity(
            "topics/t-orders/subscriptions/s-fwd",
            json!({ "forwardTo": "q-sink" }),
        ),
        entity(
            "topics/t-orders/subscriptions/s-audit/rules/high",
            json!({
                "filterType": "SqlFilter",
                "sqlFilter": { "sqlExpression": "priority > 5", "compatibilityLevel": 20 },
                "action": { "sqlExpression": "SET routed = 1", "compatibilityLevel": 20 },
            }),
        ),
        entity(
            "topics/t-orders/subscriptions/s-fwd/rules/by-id",
            json!({ "filterType": "CorrelationFilter", "correlationFilter": { "correlationId": "c-1", "label": "red" }, "action": {} }),
        ),
        rule("authorizationRules/app-send", &["Send"]),
        rule("queues/q-plain/authorizationRules/reader", &["Listen"]),
        rule(
            "topics/t-orders/authorizationRules/pub",
            &["Send", "Listen"],
        ),
    ]
}

fn bulk() -> Value {
    json!({ "properties": { "maxDeliveryCount": 4 } })
}

fn damaged() -> Value {
    json!({ "properties": { "lockDuration": "PT2M", "maxDeliveryCount": 99, "deadLetteringOnMessageExpiration": true } })
}

pub static SERVICE_BUS: Service = Service {
    provider: "Microsoft.ServiceBus",
    kinds: &[
        ("topic", "topics", None),
        ("queue", "queues", None),
        ("subscription", "subscriptions", Some("topics")),
        ("rule", "rules", Some("subscriptions")),
    ],
    rule_holders: &["queues", "topics"],
    seed,
    bulk: ("queues", bulk),
    damage: ("queue queues/q-plain", "queues/q-plain", damaged),
};

impl Fixture for ServiceBusFixture {
    type World = MessagingWorld;
    const PLUGIN: &'static str = "service-bus";

    async fn start(&self) -> MessagingWorld {
        MessagingWorld::start(&SERVICE_BUS).await
    }
}

#[tokio::test]
async fn conformance() {
    super::run(&ServiceBusFixture).await;
}
