//! Certificates: creation as a polled operation with managed backing objects, and the import of
//! a PFX exported by real Key Vault.

use atg_testkit::kv_rest::VaultRestClient;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{kv_token, start};

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

/// Key Vault's own password-less PFX (a backing secret as real Key Vault served it, see
/// `tests/fixtures/`) imports without a password, as it does into Key Vault.
#[tokio::test]
async fn a_pfx_exported_by_real_key_vault_imports_without_password() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    let pfx = include_str!("../fixtures/real-key-vault-export.pfx.b64").trim();
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
