//! Microsoft.ServiceBus: the changes Azure refuses and the entities Azure creates itself.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::Arm;

const NAMESPACE: &str = "/providers/Microsoft.ServiceBus/namespaces/ns1";

#[tokio::test]
async fn service_bus_refuses_changes_azure_refuses_and_creates_what_azure_creates() {
    let arm = Arm::start().await;
    let arm = &arm;
    let put = |path: &str, body: Value| {
        let path = format!("{NAMESPACE}{path}");
        async move { arm.send(Method::PUT, &path, Some(body), &[]).await }
    };
    assert_eq!(
        put(
            "",
            json!({"location": "westeurope", "sku": {"name": "Standard"}})
        )
        .await
        .status,
        StatusCode::OK
    );
    // Forwarding to an entity the namespace lacks.
    let forwarding = put("/queues/a", json!({"properties": {"forwardTo": "b"}})).await;
    assert_eq!(
        forwarding.status,
        StatusCode::BAD_REQUEST,
        "{}",
        forwarding.body
    );
    assert_eq!(put("/queues/b", json!({})).await.status, StatusCode::OK);
    assert_eq!(
        put(
            "/queues/a",
            json!({"properties": {"forwardTo": "b", "requiresSession": true}})
        )
        .await
        .status,
        StatusCode::OK
    );
    // A property fixed at creation.
    let changed = put(
        "/queues/a",
        json!({"properties": {"requiresSession": false}}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::BAD_REQUEST);
    assert!(
        changed.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("'requiresSession' property of an existing Queue cannot be changed"),
        "{}",
        changed.body
    );
    // The service's own children.
    assert_eq!(put("/topics/t", json!({})).await.status, StatusCode::OK);
    assert_eq!(
        put("/topics/t/subscriptions/s", json!({})).await.status,
        StatusCode::OK
    );
    let rules = arm
        .send(
            Method::GET,
            &format!("{NAMESPACE}/topics/t/subscriptions/s/rules"),
            None,
            &[],
        )
        .await;
    assert_eq!(rules.body["value"][0]["name"], "$Default", "{}", rules.body);
    // Keys: listKeys, and regenerateKeys setting a given key.
    let root = format!("{NAMESPACE}/AuthorizationRules/RootManageSharedAccessKey");
    let before = arm
        .send(Method::POST, &format!("{root}/listKeys"), None, &[])
        .await;
    assert_eq!(before.status, StatusCode::OK);
    let given = "a-key-of-forty-four-characters-for-the-test=";
    let set = arm
        .send(
            Method::POST,
            &format!("{root}/regenerateKeys"),
            Some(json!({"keyType": "SecondaryKey", "key": given})),
            &[],
        )
        .await;
    assert_eq!(set.body["secondaryKey"], given);
    assert_eq!(set.body["primaryKey"], before.body["primaryKey"]);
    let fresh = arm
        .send(
            Method::POST,
            &format!("{root}/regenerateKeys"),
            Some(json!({"keyType": "PrimaryKey"})),
            &[],
        )
        .await;
    assert_ne!(fresh.body["primaryKey"], before.body["primaryKey"]);
}
