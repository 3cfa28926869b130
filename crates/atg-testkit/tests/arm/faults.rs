//! What ARM answers when a test asks it to fail: faults and lost answers chosen by operation, and
//! 403s for forbidden scopes and resources.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::web::SITE;
use crate::Arm;

#[tokio::test]
async fn arm_faults_and_lost_answers_are_chosen_by_operation() {
    let arm = Arm::start().await;
    arm.create_site("app").await;
    let settings = format!("{SITE}/config/appsettings");
    arm.emulator.set_options(|options| {
        options.faults = Some(atg_testkit::FaultOptions {
            rate: 1.0,
            kinds: vec![atg_testkit::FaultKind::TooManyRequests],
            seed: 1,
        });
        options.fault_operations = vec!["POST list".into()];
    });
    let throttled = arm
        .web(Method::POST, &format!("{settings}/list"), None)
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.header("retry-after"), "1");
    let read = arm.web(Method::GET, SITE, None).await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "other operations are not faulted"
    );

    arm.emulator.set_options(|options| {
        options.faults = None;
        options.arm_lost_answers = Some(atg_testkit::LostAnswerOptions {
            rate: 1.0,
            kinds: vec![atg_testkit::LostAnswerKind::InternalServerError],
            operations: vec!["PUT config".into()],
            seed: 1,
            timeout_ms: 1,
        });
    });
    let lost = arm
        .web(
            Method::PUT,
            &settings,
            Some(json!({"properties": {"s1": "v1"}})),
        )
        .await;
    assert_eq!(lost.status, StatusCode::INTERNAL_SERVER_ERROR);
    let listed = arm
        .web(Method::POST, &format!("{settings}/list"), None)
        .await;
    assert_eq!(
        listed.body["properties"],
        json!({"s1": "v1"}),
        "the write took effect"
    );
    let requests = arm.emulator.requests();
    assert!(requests
        .iter()
        .any(|r| r.lost_answer.is_some() && r.method == "PUT"));
    arm.emulator.shutdown().await;
}

#[tokio::test]
async fn forbidden_scopes_answer_403_with_the_missing_action() {
    let arm = Arm::start().await;
    arm.create_site("app").await;
    arm.emulator.set_options(|options| {
        options
            .forbidden_arm_scopes
            .insert(format!("/subscriptions/sub1/resourceGroups/rg1{SITE}"));
    });
    let listed = arm.list(SITE, "appsettings").await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN);
    assert_eq!(listed.body["error"]["code"], "AuthorizationFailed");
    let message = listed.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("'Microsoft.Web/sites/config/list/action'"),
        "{message}"
    );
    let read = arm.web(Method::GET, SITE, None).await;
    assert_eq!(read.status, StatusCode::FORBIDDEN);
    let other = arm
        .web(Method::GET, "/providers/Microsoft.Web/sites/app10", None)
        .await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "a sibling is not under the scope"
    );
    arm.emulator.shutdown().await;
}

#[tokio::test]
async fn a_forbidden_resource_answers_403_at_and_below_it() {
    let arm = Arm::start().await;
    arm.emulator.set_options(|options| {
        options.forbidden_arm_scopes.insert(
            "/subscriptions/sub1/resourcegroups/rg1/providers/microsoft.eventhub/namespaces/ns1"
                .into(),
        );
    });
    for path in [
        "/providers/Microsoft.EventHub/namespaces/ns1",
        "/providers/Microsoft.EventHub/namespaces/ns1/eventhubs",
    ] {
        let answer = arm.send(Method::GET, path, None, &[]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(answer.body["error"]["code"], "AuthorizationFailed");
    }
    let beside = arm
        .send(
            Method::GET,
            "/providers/Microsoft.EventHub/namespaces/ns10",
            None,
            &[],
        )
        .await;
    assert_eq!(beside.status, StatusCode::NOT_FOUND);
}
