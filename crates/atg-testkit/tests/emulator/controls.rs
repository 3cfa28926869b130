//! What tests set and observe through the emulator's controls: throttling, faults injected before
//! a request, answers lost after a write, the request log and the control API.

use std::time::Duration;

use atg_testkit::kv_rest::VaultRestClient;
use atg_testkit::{
    Emulator, FaultKind, FaultOptions, LostAnswerKind, LostAnswerOptions, ThrottleOptions,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::start;

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let (emulator, _) = start().await;
    emulator.set_options(|options| {
        options.throttle = Some(ThrottleOptions {
            limit: 50,
            window_ms: 1000,
        });
    });
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    let other = VaultRestClient::new(&emulator, "kv2").expect("client");
    let mut throttled = None;
    for index in 0..60 {
        let response = client
            .raw(Method::GET, "/secrets", None)
            .await
            .expect("send");
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some((index, response));
            break;
        }
    }
    let (index, response) = throttled.expect("a request beyond the limit is throttled");
    assert_eq!(index, 50);
    assert_eq!(response.body["error"]["code"], "Throttled");
    let retry_after: u64 = response.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!(retry_after >= 1);
    // The limit is per vault.
    assert_eq!(
        other
            .raw(Method::GET, "/secrets", None)
            .await
            .expect("send")
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        client
            .raw(Method::GET, "/secrets", None)
            .await
            .expect("send")
            .status,
        StatusCode::OK
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn faults_hit_data_planes_only_and_never_have_side_effects() {
    let (emulator, http) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    emulator.set_options(|options| {
        options.faults = Some(FaultOptions {
            rate: 1.0,
            kinds: vec![FaultKind::ServiceUnavailable],
            seed: 7,
        });
    });
    let response = client
        .raw(Method::PUT, "/secrets/f", Some(&json!({"value": "v"})))
        .await
        .expect("send");
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    emulator.set_options(|options| {
        options.faults = Some(FaultOptions {
            rate: 1.0,
            kinds: vec![FaultKind::TooManyRequests],
            seed: 7,
        });
    });
    let response = client
        .raw(Method::PUT, "/secrets/f", Some(&json!({"value": "v"})))
        .await
        .expect("send");
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers["retry-after"], "1");
    emulator.set_options(|options| {
        options.faults = Some(FaultOptions {
            rate: 1.0,
            kinds: vec![FaultKind::ConnectionReset],
            seed: 7,
        });
    });
    let error = client
        .raw(Method::PUT, "/secrets/f", Some(&json!({"value": "v"})))
        .await;
    assert!(error.is_err(), "a reset is a transport error, not a status");

    // Token and control requests are never faulted.
    let token = http
        .post("https://login.microsoftonline.com/t1/oauth2/v2.0/token")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(token.status(), StatusCode::OK);
    let log = http
        .get("https://kv1.vault.azure.net/_emulator/requests")
        .send()
        .await
        .expect("control");
    assert_eq!(log.status(), StatusCode::OK);

    emulator.set_options(|options| options.faults = None);
    assert!(
        client.get_secret("f").await.expect("get").is_none(),
        "faulted writes had no effect"
    );
    let faults: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter_map(|r| r.fault.map(|f| (f, r.status)))
        .collect();
    assert_eq!(
        faults,
        vec![
            (FaultKind::ServiceUnavailable, Some(503)),
            (FaultKind::TooManyRequests, Some(429)),
            (FaultKind::ConnectionReset, None)
        ]
    );

    // A fractional rate with a fixed seed faults some but not all requests, reproducibly.
    emulator.set_options(|options| {
        options.faults = Some(FaultOptions {
            rate: 0.5,
            kinds: vec![FaultKind::ServiceUnavailable],
            seed: 42,
        });
    });
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            client
                .raw(Method::GET, "/secrets", None)
                .await
                .expect("send")
                .status
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&503) && statuses.contains(&200),
        "{statuses:?}"
    );
    emulator.shutdown().await;
}

fn lose_answers(emulator: &Emulator, kinds: Vec<LostAnswerKind>, operations: &[&str]) {
    emulator.set_options(|options| {
        options.lost_answers = Some(LostAnswerOptions {
            rate: 1.0,
            kinds,
            operations: operations.iter().map(|o| (*o).to_owned()).collect(),
            seed: 3,
            timeout_ms: 200,
        });
    });
}

/// A lost answer comes after the write took effect: the client sees an error, the vault has
/// the write, and a retried Set Secret adds a second version (Key Vault's versioning).
#[tokio::test]
async fn lost_answers_come_after_writes_take_effect() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    lose_answers(
        &emulator,
        vec![LostAnswerKind::ServiceUnavailable],
        &["PUT secrets"],
    );
    let response = client
        .raw(Method::PUT, "/secrets/s1", Some(&json!({"value": "v1"})))
        .await
        .expect("send");
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    // Reads are never lost; the write is there.
    let secret = client
        .get_secret("s1")
        .await
        .expect("get")
        .expect("written");
    assert_eq!(secret["value"], "v1");
    client
        .raw(Method::PUT, "/secrets/s1", Some(&json!({"value": "v1"})))
        .await
        .expect("retry");
    assert_eq!(
        client.secret_versions("s1").await.expect("versions").len(),
        2
    );

    // Writes the operations do not name answer normally.
    let deleted = client
        .raw(Method::DELETE, "/secrets/s1", None)
        .await
        .expect("delete");
    assert_eq!(deleted.status, StatusCode::OK);

    // A reset and a timeout are transport errors, after the write.
    lose_answers(
        &emulator,
        vec![LostAnswerKind::ConnectionReset],
        &["POST keys"],
    );
    assert!(client
        .create_key("k1", "RSA", Some(2048), None)
        .await
        .is_err());
    assert!(client.get_key("k1").await.expect("get").is_some());
    lose_answers(&emulator, vec![LostAnswerKind::Timeout], &[]);
    let started = std::time::Instant::now();
    assert!(client
        .raw(
            Method::PATCH,
            "/keys/k1",
            Some(&json!({"tags": {"a": "b"}}))
        )
        .await
        .is_err());
    assert!(started.elapsed() >= Duration::from_millis(200));
    let key = client.get_key("k1").await.expect("get").expect("exists");
    assert_eq!(key["tags"]["a"], "b");

    // Failed writes keep their answer: nothing took effect, so nothing is lost.
    let missing = client
        .raw(Method::PATCH, "/keys/absent", Some(&json!({"tags": {}})))
        .await
        .expect("send");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let lost: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter_map(|r| r.lost_answer.map(|kind| (r.method, kind, r.status)))
        .collect();
    assert_eq!(
        lost,
        vec![
            (
                "PUT".to_owned(),
                LostAnswerKind::ServiceUnavailable,
                Some(503)
            ),
            (
                "PUT".to_owned(),
                LostAnswerKind::ServiceUnavailable,
                Some(503)
            ),
            ("POST".to_owned(), LostAnswerKind::ConnectionReset, None),
            ("PATCH".to_owned(), LostAnswerKind::Timeout, None),
        ]
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn request_log_records_metadata_but_never_values() {
    let (emulator, http) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    client
        .set_secret("logged", "very-secret-sentinel", None, None, true)
        .await
        .expect("set");
    client.get_secret("logged").await.expect("get");
    http.get("https://kv1.vault.azure.net/secrets?api-version=7.4")
        .send()
        .await
        .expect("challenge");
    let log = emulator.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].method, "PUT");
    assert_eq!(log[0].vault.as_deref(), Some("kv1"));
    assert_eq!(log[0].path, "/secrets/logged");
    assert_eq!(log[0].status, Some(200));
    assert!(log[0].bearer && log[0].body_has_value);
    assert!(!log[1].body_has_value);
    assert!(!log[2].bearer);
    assert_eq!(log[2].status, Some(401));
    assert_eq!(log[2].query, "api-version=7.4");

    let via_control: Value = http
        .get("https://kv1.vault.azure.net/_emulator/requests")
        .send()
        .await
        .expect("control")
        .json()
        .await
        .expect("json");
    assert_eq!(via_control.as_array().map(Vec::len), Some(3));
    assert!(!via_control.to_string().contains("very-secret-sentinel"));
    http.delete("https://kv1.vault.azure.net/_emulator/requests")
        .send()
        .await
        .expect("clear");
    assert!(emulator.requests().is_empty());

    // Configuration through the control API merges into the current options.
    let updated: Value = http
        .put("https://localhost/_emulator/config".replace("localhost", "kv1.vault.azure.net"))
        .json(&json!({"latency_ms": 5, "forbidden_vaults": ["kv9"]}))
        .send()
        .await
        .expect("config")
        .json()
        .await
        .expect("json");
    assert_eq!(updated["latency_ms"], 5);
    assert_eq!(emulator.options().forbidden_vaults.len(), 1);
    assert_eq!(
        emulator.options().default_tenant,
        atg_testkit::DEFAULT_TENANT_ID
    );
    emulator.shutdown().await;
}
