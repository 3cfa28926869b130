//! Behaviour of the emulator as seen over HTTPS: challenge flow, paging, soft delete, keys,
//! certificates, throttling, fault injection (before a request and lost answers after a write),
//! forbidden vaults, the request log, ARM and tokens.

use std::time::Duration;

use atg_testkit::kv_rest::{test_http_client, VaultRestClient};
use atg_testkit::{
    mint_token, mint_token_with_expiry, Emulator, EmulatorOptions, FaultKind, FaultOptions,
    LostAnswerKind, LostAnswerOptions, Principal, ThrottleOptions,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const HOSTS: [&str; 5] = [
    "kv1.vault.azure.net",
    "kv2.vault.azure.net",
    "kv3.vault.azure.cn",
    "login.microsoftonline.com",
    "management.azure.com",
];

async fn start() -> (Emulator, reqwest::Client) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("start emulator");
    let http = test_http_client(emulator.ca_pem(), emulator.addr(), &HOSTS).expect("client");
    (emulator, http)
}

fn kv_token(emulator: &Emulator, vault: &str) -> String {
    mint_token(
        &emulator.tenant_of(vault),
        "test-client",
        "https://vault.azure.net",
    )
}

#[tokio::test]
async fn challenge_flow_and_bearer_validation() {
    let (emulator, http) = start().await;
    let url = "https://kv1.vault.azure.net/secrets/s1?api-version=7.4";

    let response = http
        .put(url)
        .header("content-length", "0")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("header")
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"https://vault.azure.net\"",
            emulator.tenant_of("kv1")
        )
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "Unauthorized");

    // The China cloud challenges with its own authority and resource.
    let response = http
        .get("https://kv3.vault.azure.cn/secrets?api-version=7.4")
        .send()
        .await
        .expect("send");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("header")
        .to_owned();
    assert!(
        challenge.contains("https://login.chinacloudapi.cn/"),
        "{challenge}"
    );
    assert!(
        challenge.contains("resource=\"https://vault.azure.cn\""),
        "{challenge}"
    );

    let body = json!({"value": "v"});
    let wrong_tenant = mint_token("another-tenant", "c", "https://vault.azure.net");
    let response = http
        .put(url)
        .bearer_auth(wrong_tenant)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let wrong_audience = mint_token(&emulator.tenant_of("kv1"), "c", "https://storage.azure.com");
    let response = http
        .put(url)
        .bearer_auth(wrong_audience)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let expired = mint_token_with_expiry(
        &emulator.tenant_of("kv1"),
        "c",
        "https://vault.azure.net",
        1000,
    );
    let response = http
        .put(url)
        .bearer_auth(expired)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let token = kv_token(&emulator, "kv1");
    let response = http
        .put("https://kv1.vault.azure.net/secrets/s1")
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "api-version is required"
    );

    let response = http
        .put(url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::OK);
    for header in [
        "x-ms-keyvault-region",
        "x-ms-keyvault-service-version",
        "x-ms-request-id",
        "cache-control",
    ] {
        assert!(response.headers().contains_key(header), "missing {header}");
    }
    let bundle: Value = response.json().await.expect("json");
    let id = bundle["id"].as_str().expect("id");
    let version = id.rsplit('/').next().expect("version");
    assert!(id.starts_with("https://kv1.vault.azure.net/secrets/s1/"));
    assert_eq!(version.len(), 32);
    assert!(version.chars().all(|c| c.is_ascii_hexdigit()));

    // A per-vault tenant moves the challenge and the accepted tokens.
    emulator.set_options(|options| {
        options
            .vault_tenants
            .insert("kv1".into(), "tenant-b".into());
    });
    let response = http
        .get(url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("header")
        .to_owned();
    assert!(challenge.contains("/tenant-b\""), "{challenge}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn secrets_page_with_next_links_and_hide_values_in_lists() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    for index in 0..30 {
        client
            .set_secret(
                &format!("secret-{index:02}"),
                "sentinel-value",
                Some("text/plain"),
                None,
                true,
            )
            .await
            .expect("set");
    }
    let first = client
        .raw(Method::GET, "/secrets", None)
        .await
        .expect("page");
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["value"].as_array().map(Vec::len), Some(25));
    let next = first.body["nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    assert!(
        next.starts_with("https://kv1.vault.azure.net:443/secrets?api-version=7.5&$skiptoken="),
        "{next}"
    );
    assert!(next.ends_with("&maxresults=25"), "{next}");
    let second = client.raw(Method::GET, &next, None).await.expect("page 2");
    assert_eq!(second.body["value"].as_array().map(Vec::len), Some(5));
    assert_eq!(second.body["nextLink"], Value::Null);

    let all = client.list_secrets().await.expect("list");
    assert_eq!(all.len(), 30);
    for item in &all {
        assert!(item.get("value").is_none(), "list items carry no value");
        let id = item["id"].as_str().expect("id");
        assert_eq!(
            id.matches('/').count(),
            4,
            "list ids carry no version: {id}"
        );
    }
    let small = client
        .raw(Method::GET, "/secrets?maxresults=10", None)
        .await
        .expect("page");
    assert_eq!(small.body["value"].as_array().map(Vec::len), Some(10));
    assert!(small.body["nextLink"]
        .as_str()
        .expect("next")
        .ends_with("maxresults=10"));
    let too_big = client
        .raw(Method::GET, "/secrets?maxresults=26", None)
        .await
        .expect("page");
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);

    client
        .set_secret("secret-00", "second", None, None, true)
        .await
        .expect("set");
    let versions = client.secret_versions("secret-00").await.expect("versions");
    assert_eq!(versions.len(), 2);
    assert!(versions
        .iter()
        .all(|v| v["id"].as_str().expect("id").matches('/').count() == 5));
    let latest = client
        .get_secret("secret-00")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(latest["value"], "second");
    let without_slash = client
        .raw(Method::GET, "/secrets/secret-00", None)
        .await
        .expect("get");
    assert_eq!(without_slash.body["value"], "second");
    let first_version = versions[0]["id"]
        .as_str()
        .expect("id")
        .rsplit('/')
        .next()
        .expect("v")
        .to_owned();
    let old = client
        .raw(
            Method::GET,
            &format!("/secrets/secret-00/{first_version}"),
            None,
        )
        .await
        .expect("get");
    assert_eq!(old.body["value"], "sentinel-value");
    assert!(client.get_secret("missing").await.expect("get").is_none());
    let missing = client
        .raw(Method::GET, "/secrets/missing/", None)
        .await
        .expect("get");
    assert_eq!(missing.body["error"]["code"], "SecretNotFound");
    emulator.shutdown().await;
}

#[tokio::test]
async fn disabled_secret_value_is_forbidden_and_patch_updates_attributes() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    client
        .set_secret("off", "v", None, None, false)
        .await
        .expect("set");
    let response = client
        .raw(Method::GET, "/secrets/off/", None)
        .await
        .expect("get");
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.body["error"]["code"], "Forbidden");
    assert_eq!(
        response.body["error"]["innererror"]["code"],
        "SecretDisabled"
    );
    let patched = client
        .raw(
            Method::PATCH,
            "/secrets/off/",
            Some(&json!({"attributes": {"enabled": true}, "tags": {"a": "b"}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.status, StatusCode::OK);
    assert!(patched.body.get("value").is_none());
    assert_eq!(patched.body["tags"]["a"], "b");
    assert_eq!(
        client
            .get_secret("off")
            .await
            .expect("get")
            .expect("exists")["value"],
        "v"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn soft_delete_conflict_recover_and_purge() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    client
        .set_secret("s", "one", None, None, true)
        .await
        .expect("set");
    let deleted = client.delete_secret("s").await.expect("delete");
    assert_eq!(
        deleted["recoveryId"],
        "https://kv1.vault.azure.net/deletedsecrets/s"
    );
    let deleted_date = deleted["deletedDate"].as_i64().expect("deletedDate");
    assert_eq!(
        deleted["scheduledPurgeDate"].as_i64(),
        Some(deleted_date + 7 * 86_400)
    );
    assert!(deleted.get("value").is_none());

    let conflict = client
        .raw(Method::PUT, "/secrets/s", Some(&json!({"value": "two"})))
        .await
        .expect("set");
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.body["error"]["code"], "Conflict");
    assert_eq!(
        conflict.body["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );
    assert!(client.get_secret("s").await.expect("get").is_none());

    let listed = client
        .list_all("/deletedsecrets")
        .await
        .expect("deleted list");
    assert_eq!(listed.len(), 1);
    let recovered = client.recover_secret("s").await.expect("recover");
    assert!(recovered.get("value").is_none());
    client
        .set_secret("s", "two", None, None, true)
        .await
        .expect("set after recover");
    assert_eq!(
        client.secret_versions("s").await.expect("versions").len(),
        2
    );

    client.delete_secret("s").await.expect("delete");
    client.purge("s").await.expect("purge");
    let purge_again = client
        .raw(Method::DELETE, "/deletedsecrets/s", None)
        .await
        .expect("purge");
    assert_eq!(purge_again.status, StatusCode::NOT_FOUND);
    client
        .set_secret("s", "three", None, None, true)
        .await
        .expect("set after purge");
    assert_eq!(
        client.secret_versions("s").await.expect("versions").len(),
        1
    );

    // Backup and restore keep the version ids.
    let backup = client
        .raw(Method::POST, "/secrets/s/backup", None)
        .await
        .expect("backup");
    let version = client.get_secret("s").await.expect("get").expect("exists")["id"].clone();
    client.delete_secret("s").await.expect("delete");
    client.purge("s").await.expect("purge");
    let restored = client
        .raw(Method::POST, "/secrets/restore", Some(&backup.body))
        .await
        .expect("restore");
    assert_eq!(restored.status, StatusCode::OK);
    assert_eq!(restored.body["id"], version);
    emulator.shutdown().await;
}

fn b64url_len(value: &Value) -> usize {
    URL_SAFE_NO_PAD
        .decode(value.as_str().expect("string"))
        .expect("base64url")
        .len()
}

#[tokio::test]
async fn created_keys_have_real_public_jwks() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    let rsa = client
        .create_key("rsa", "RSA", Some(3072), None)
        .await
        .expect("rsa");
    assert_eq!(rsa["key"]["kty"], "RSA");
    assert_eq!(b64url_len(&rsa["key"]["n"]), 384);
    assert_eq!(rsa["key"]["e"], "AQAB");
    assert!(
        rsa["key"].get("d").is_none(),
        "private members never leave the vault"
    );
    assert_eq!(rsa["attributes"]["exportable"], false);
    let n = URL_SAFE_NO_PAD
        .decode(rsa["key"]["n"].as_str().expect("n"))
        .expect("n");
    assert!(
        n[0] & 0x80 != 0 && n[n.len() - 1] & 1 == 1,
        "modulus is full-size and odd"
    );

    let ec = client
        .create_key("ec", "EC", None, Some("P-256"))
        .await
        .expect("ec");
    assert_eq!(ec["key"]["crv"], "P-256");
    assert_eq!(b64url_len(&ec["key"]["x"]), 32);
    assert_eq!(b64url_len(&ec["key"]["y"]), 32);
    assert_eq!(ec["key"]["key_ops"], json!(["sign", "verify"]));

    // The EC point must be on the curve: aws-lc-rs refuses invalid public keys when verifying.
    let mut point = vec![4_u8];
    point.extend(
        URL_SAFE_NO_PAD
            .decode(ec["key"]["x"].as_str().expect("x"))
            .expect("x"),
    );
    point.extend(
        URL_SAFE_NO_PAD
            .decode(ec["key"]["y"].as_str().expect("y"))
            .expect("y"),
    );
    let verifier = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        &point,
    );
    let error = verifier.verify(b"message", b"\x30\x06\x02\x01\x01\x02\x01\x01");
    assert!(error.is_err(), "bogus signature must not verify");

    let again = client
        .create_key("rsa", "RSA-HSM", None, None)
        .await
        .expect("new version");
    assert_eq!(again["key"]["kty"], "RSA-HSM");
    assert_ne!(again["key"]["n"], rsa["key"]["n"]);
    let keys = client.list_keys().await.expect("list");
    assert_eq!(keys.len(), 2);
    assert!(client.get_key("rsa").await.expect("get").is_some());
    let deleted = client
        .raw(Method::DELETE, "/keys/ec", None)
        .await
        .expect("delete");
    assert_eq!(
        deleted.body["recoveryId"],
        "https://kv1.vault.azure.net/deletedkeys/ec"
    );
    let conflict = client.create_key("ec", "EC", None, None).await;
    assert!(conflict.is_err(), "soft-deleted key name is not reusable");
    let bad = client
        .raw(
            Method::POST,
            "/keys/bad/create",
            Some(&json!({"kty": "RSA", "key_size": 1000})),
        )
        .await
        .expect("bad");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    emulator.shutdown().await;
}

#[tokio::test]
async fn certificate_create_is_a_polled_operation_with_managed_backing_objects() {
    let (emulator, http) = start().await;
    let token = kv_token(&emulator, "kv1");
    let policy = json!({
        "key_props": {"exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false},
        "secret_props": {"contentType": "application/x-pkcs12"},
        "x509_props": {"subject": "CN=app.example.com", "sans": {"dns_names": ["app.example.com"]}, "validity_months": 12},
        "issuer": {"name": "Self"}
    });
    let response = http
        .post("https://kv1.vault.azure.net/certificates/c1/create?api-version=7.4")
        .bearer_auth(&token)
        .json(&json!({"policy": policy}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with(
            "https://kv1.vault.azure.net/certificates/c1/pending?api-version=7.4&request_id="
        ),
        "{location}"
    );
    let operation: Value = response.json().await.expect("json");
    assert_eq!(operation["status"], "inProgress");

    let poll = |url: String| {
        let http = http.clone();
        let token = token.clone();
        async move {
            let response = http.get(url).bearer_auth(token).send().await.expect("poll");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.expect("json")
        }
    };
    assert_eq!(poll(location.clone()).await["status"], "inProgress");
    let done = poll(location.clone()).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(
        done["target"],
        "https://kv1.vault.azure.net/certificates/c1"
    );

    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    let certificate = client
        .get_certificate("c1")
        .await
        .expect("get")
        .expect("exists");
    let version = certificate["id"]
        .as_str()
        .expect("id")
        .rsplit('/')
        .next()
        .expect("v")
        .to_owned();
    assert_eq!(
        certificate["kid"],
        format!("https://kv1.vault.azure.net/keys/c1/{version}")
    );
    assert_eq!(
        certificate["sid"],
        format!("https://kv1.vault.azure.net/secrets/c1/{version}")
    );
    assert!(STANDARD
        .decode(certificate["cer"].as_str().expect("cer"))
        .is_ok());
    assert_eq!(
        certificate["policy"]["x509_props"]["subject"],
        "CN=app.example.com"
    );
    assert_eq!(
        certificate["policy"]["id"],
        "https://kv1.vault.azure.net/certificates/c1/policy"
    );

    let secret = client
        .get_secret("c1")
        .await
        .expect("get")
        .expect("backing secret");
    assert_eq!(secret["managed"], true);
    assert_eq!(secret["kid"], certificate["kid"]);
    assert_eq!(secret["contentType"], "application/x-pkcs12");
    assert!(STANDARD
        .decode(secret["value"].as_str().expect("value"))
        .is_ok());
    let key = client
        .get_key("c1")
        .await
        .expect("get")
        .expect("backing key");
    assert_eq!(key["managed"], true);
    assert_eq!(key["key"]["kty"], "RSA");

    // A PEM policy yields a PEM backing secret.
    let mut pem_policy = policy.clone();
    pem_policy["secret_props"]["contentType"] = json!("application/x-pem-file");
    client
        .create_certificate("c2", &pem_policy)
        .await
        .expect("create pem");
    let pem_secret = client.get_secret("c2").await.expect("get").expect("exists");
    let pem_text = pem_secret["value"].as_str().expect("value");
    assert!(
        pem_text.contains("-----BEGIN PRIVATE KEY-----")
            && pem_text.contains("-----BEGIN CERTIFICATE-----")
    );

    // Import the PEM into another name; cer and x5t must match the source.
    let imported = client
        .raw(
            Method::POST,
            "/certificates/c3/import",
            Some(&json!({"value": STANDARD.encode(pem_text), "policy": {"secret_props": {"contentType": "application/x-pem-file"}}})),
        )
        .await
        .expect("import");
    assert_eq!(imported.status, StatusCode::OK, "{:?}", imported.body);
    let source = client
        .get_certificate("c2")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(imported.body["cer"], source["cer"]);
    assert_eq!(imported.body["x5t"], source["x5t"]);

    let policy_response = client
        .raw(Method::GET, "/certificates/c1/policy", None)
        .await
        .expect("policy");
    assert_eq!(policy_response.body["issuer"]["name"], "Self");
    assert_eq!(client.list_certificates().await.expect("list").len(), 3);

    // Unknown issuers never complete.
    let mut unknown = policy.clone();
    unknown["issuer"] = json!({"name": "Unknown"});
    client
        .raw(
            Method::POST,
            "/certificates/c4/create",
            Some(&json!({"policy": unknown})),
        )
        .await
        .expect("create");
    for _ in 0..3 {
        let state = client
            .raw(Method::GET, "/certificates/c4/pending", None)
            .await
            .expect("poll");
        assert_eq!(state.body["status"], "inProgress");
    }
    assert!(client.get_certificate("c4").await.expect("get").is_none());

    // Deleting a certificate takes its key and secret with it; recovery brings them back.
    let deleted = client
        .raw(Method::DELETE, "/certificates/c1", None)
        .await
        .expect("delete");
    assert_eq!(
        deleted.body["recoveryId"],
        "https://kv1.vault.azure.net/deletedcertificates/c1"
    );
    assert!(client.get_secret("c1").await.expect("get").is_none());
    client
        .raw(Method::POST, "/deletedcertificates/c1/recover", None)
        .await
        .expect("recover");
    assert!(client.get_secret("c1").await.expect("get").is_some());
    emulator.shutdown().await;
}

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

#[tokio::test]
async fn forbidden_vault_answers_403_by_rbac() {
    let (emulator, _) = start().await;
    emulator.set_options(|options| {
        options.forbidden_vaults.insert("kv2".into());
    });
    let client = VaultRestClient::new(&emulator, "kv2").expect("client");
    let response = client
        .raw(Method::GET, "/secrets", None)
        .await
        .expect("send");
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert_eq!(response.body["error"]["code"], "Forbidden");
    assert_eq!(
        response.body["error"]["innererror"]["code"],
        "ForbiddenByRbac"
    );
    let allowed = VaultRestClient::new(&emulator, "kv1").expect("client");
    assert_eq!(
        allowed
            .raw(Method::GET, "/secrets", None)
            .await
            .expect("send")
            .status,
        StatusCode::OK
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

#[tokio::test]
async fn token_endpoint_mints_tokens_and_checks_configured_principals() {
    let (emulator, http) = start().await;
    let url = "https://login.microsoftonline.com/tenant-a/oauth2/v2.0/token";
    let form = |secret: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", secret),
            ("scope", "https://vault.azure.net/.default"),
        ]
    };
    let response: Value = http
        .post(url)
        .form(&form("anything"))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    assert_eq!(response["token_type"], "Bearer");
    assert_eq!(response["expires_in"], 3599);
    let token = response["access_token"].as_str().expect("token");
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).expect("claims"))
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(claims["aud"], "https://vault.azure.net");
    assert_eq!(claims["tid"], "tenant-a");
    assert_eq!(claims["iss"], "https://sts.windows.net/tenant-a/");
    assert_eq!(claims["appid"], "app-1");

    emulator.set_options(|options| {
        options.principals.push(Principal {
            tenant_id: "tenant-a".into(),
            client_id: "app-1".into(),
            client_secret: "right".into(),
        });
    });
    let wrong = http
        .post(url)
        .form(&form("wrong"))
        .send()
        .await
        .expect("token");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .starts_with("AADSTS7000215"));
    let right = http
        .post(url)
        .form(&form("right"))
        .send()
        .await
        .expect("token");
    assert_eq!(right.status(), StatusCode::OK);
    emulator.shutdown().await;
}

#[tokio::test]
async fn arm_resources_have_lros_paging_and_list_keys() {
    let (emulator, http) = start().await;
    let token = mint_token("t", "c", "https://management.azure.com");
    let rg = "https://management.azure.com/subscriptions/sub1/resourceGroups/rg1";
    // A namespace without a provider module: the generic store's long-running writes.
    let resource = format!("{rg}/providers/Microsoft.Example/things/app1?api-version=2023-01-01");

    let response = http.get(&resource).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let wrong_audience = mint_token("t", "c", "https://vault.azure.net");
    assert_eq!(
        http.get(&resource)
            .bearer_auth(wrong_audience)
            .send()
            .await
            .expect("get")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let legacy = mint_token("t", "c", "https://management.core.windows.net/");
    let missing = http
        .get(&resource)
        .bearer_auth(legacy)
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("x-ms-request-id"));
    assert!(missing
        .headers()
        .contains_key("x-ms-ratelimit-remaining-subscription-reads"));
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error"]["code"], "ResourceNotFound");

    let created = http
        .put(&resource)
        .bearer_auth(&token)
        .json(&json!({"location": "westeurope", "properties": {"siteConfig": {}}}))
        .send()
        .await
        .expect("put");
    assert_eq!(created.status(), StatusCode::CREATED);
    let operation = created.headers()["azure-asyncoperation"]
        .to_str()
        .expect("header")
        .to_owned();
    let body: Value = created.json().await.expect("json");
    assert_eq!(body["properties"]["provisioningState"], "Creating");
    assert_eq!(body["type"], "Microsoft.Example/things");
    let poll = |url: String| {
        let http = http.clone();
        let token = token.clone();
        async move { http.get(url).bearer_auth(token).send().await.expect("poll") }
    };
    assert_eq!(
        poll(operation.clone())
            .await
            .json::<Value>()
            .await
            .expect("json")["status"],
        "InProgress"
    );
    assert_eq!(
        poll(operation.clone())
            .await
            .json::<Value>()
            .await
            .expect("json")["status"],
        "Succeeded"
    );
    let got: Value = poll(resource.clone()).await.json().await.expect("json");
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");

    for name in ["app2", "app3"] {
        let url = format!("{rg}/providers/Microsoft.Example/things/{name}?api-version=2023-01-01");
        http.put(url)
            .bearer_auth(&token)
            .json(&json!({"location": "westeurope"}))
            .send()
            .await
            .expect("put");
    }
    let first: Value = poll(format!("{rg}/resources?api-version=2021-04-01&$top=2"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(first["value"].as_array().map(Vec::len), Some(2));
    let next = first["nextLink"].as_str().expect("nextLink").to_owned();
    let second: Value = poll(next).await.json().await.expect("json");
    assert_eq!(second["value"].as_array().map(Vec::len), Some(1));
    assert!(second.get("nextLink").is_none());

    let deleted = http
        .delete(&resource)
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), StatusCode::ACCEPTED);
    let location = deleted.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert_eq!(poll(location.clone()).await.status(), StatusCode::ACCEPTED);
    assert_eq!(poll(location).await.status(), StatusCode::OK);
    assert_eq!(poll(resource.clone()).await.status(), StatusCode::NOT_FOUND);

    emulator.seed_storage_keys(
        "sub1",
        "rg1",
        "acct1",
        vec!["a2V5MQ==".into(), "a2V5Mg==".into()],
    );
    let list_keys = format!(
        "{rg}/providers/Microsoft.Storage/storageAccounts/acct1/listKeys?api-version=2023-01-01"
    );
    let keys = http
        .post(&list_keys)
        .bearer_auth(&token)
        .send()
        .await
        .expect("listKeys");
    assert_eq!(keys.status(), StatusCode::OK);
    assert!(keys
        .headers()
        .contains_key("x-ms-ratelimit-remaining-subscription-writes"));
    let keys: Value = keys.json().await.expect("json");
    assert_eq!(keys["keys"][0]["keyName"], "key1");
    assert_eq!(keys["keys"][1]["value"], "a2V5Mg==");
    assert_eq!(keys["keys"][0]["permissions"], "FULL");
    let unknown = list_keys.replace("acct1", "acct2");
    assert_eq!(
        http.post(&unknown)
            .bearer_auth(&token)
            .send()
            .await
            .expect("listKeys")
            .status(),
        StatusCode::NOT_FOUND
    );
    emulator.shutdown().await;
}

/// Key Vault's own password-less PFX (a backing secret as real Key Vault served it, see
/// `tests/fixtures/`) imports without a password, as it does into Key Vault.
#[tokio::test]
async fn a_pfx_exported_by_real_key_vault_imports_without_password() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    let pfx = include_str!("fixtures/real-key-vault-export.pfx.b64").trim();
    let imported = client
        .raw(
            Method::POST,
            "/certificates/from-azure/import",
            Some(&json!({"value": pfx, "policy": {"secret_props": {"contentType": "application/x-pkcs12"}}})),
        )
        .await
        .expect("import");
    assert_eq!(imported.status, StatusCode::OK, "{:?}", imported.body);
    // The thumbprint Key Vault reported for this certificate.
    assert_eq!(imported.body["x5t"], "a3smTonNIUP_pLaBLH80RuxPGOc");
    assert_eq!(
        imported.body["policy"]["x509_props"]["subject"],
        "CN=MyCert"
    );
    let key = client
        .get_key("from-azure")
        .await
        .expect("get")
        .expect("backing key");
    assert_eq!(key["key"]["kty"], "RSA");
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
