//! Event Hubs in the conformance suite (see [`super::messaging`]).

use serde_json::{json, Value};

use super::messaging::{MessagingWorld, Service};
use super::Fixture;

pub struct EventHubsFixture;

/// Every kind the plugin copies, each with properties other than the service's defaults.
pub fn seed() -> Vec<(String, Value)> {
    vec![
        (
            "eventhubs/eh-orders".to_owned(),
            json!({ "properties": { "partitionCount": 2, "messageRetentionInDays": 3 } }),
        ),
        (
            "eventhubs/eh-orders/consumergroups/cg-audit".to_owned(),
            json!({ "properties": { "userMetadata": "audit team" } }),
        ),
        (
            "authorizationRules/listen-all".to_owned(),
            json!({ "properties": { "rights": ["Listen"] } }),
        ),
        (
            "eventhubs/eh-orders/authorizationRules/sender".to_owned(),
            json!({ "properties": { "rights": ["Send"] } }),
        ),
    ]
}

fn bulk() -> Value {
    json!({ "properties": { "messageRetentionInDays": 2 } })
}

fn damaged() -> Value {
    json!({ "properties": { "partitionCount": 2, "messageRetentionInDays": 6 } })
}

pub static EVENT_HUBS: Service = Service {
    provider: "Microsoft.EventHub",
    kinds: &[
        ("event-hub", "eventhubs", None),
        ("consumer-group", "consumergroups", Some("eventhubs")),
    ],
    rule_holders: &["eventhubs"],
    seed,
    bulk: ("eventhubs", bulk),
    damage: (
        "event-hub eventhubs/eh-orders",
        "eventhubs/eh-orders",
        damaged,
    ),
};

impl Fixture for EventHubsFixture {
    type World = MessagingWorld;
    const PLUGIN: &'static str = "event-hubs";

    async fn start(&self) -> MessagingWorld {
        MessagingWorld::start(&EVENT_HUBS).await
    }
}

#[tokio::test]
async fn conformance() {
    super::run(&EventHubsFixture).await;
}
