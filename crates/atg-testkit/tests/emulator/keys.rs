//! Keys: the soft-delete, versions and backup they share with secrets, and real public JWKs.

use atg_testkit::kv_rest::VaultRestClient;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::start;

/// Keys go through the same collection as secrets: soft-delete, the deleted listing, the
/// conflict on a deleted name, recover, update, versions, backup and restore, purge.
#[tokio::test]
async fn keys_share_soft_delete_versions_and_backup_with_secrets() {
    let (emulator, _) = start().await;
    let client = VaultRestClient::new(&emulator, "kv1").expect("client");
    client
        .create_key("k", "EC", None, Some("P-256"))
        .await
        .expect("create");
    let deleted = client
        .raw(Method::DELETE, "/keys/k", None)
        .await
        .expect("delete");
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(
        deleted.body["recoveryId"],
        "https://kv1.vault.azure.net/deletedkeys/k"
    );
    let listed = client.list_all("/deletedkeys").await.expect("deleted list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["kid"], "https://kv1.vault.azure.net/keys/k");
    let conflict = client
        .raw(
            Method::POST,
            "/keys/k/create",
            Some(&json!({"kty": "EC", "crv": "P-256"})),
        )
        .await
        .expect("create");
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(
        conflict.body["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );
    let recovered = client
        .raw(Method::POST, "/deletedkeys/k/recover", None)
        .await
        .expect("recover");
    assert_eq!(recovered.status, StatusCode::OK);
    let updated = client
        .raw(
            Method::PATCH,
            "/keys/k",
            Some(&json!({"key_ops": ["sign"], "tags": {"env": "prod"}})),
        )
        .await
        .expect("update");
    assert_eq!(updated.body["key"]["key_ops"], json!(["sign"]));
    assert_eq!(updated.body["tags"]["env"], "prod");
    client
        .create_key("k", "EC", None, Some("P-256"))
        .await
        .expect("create after recover");
    assert_eq!(
        client
            .list_all("/keys/k/versions")
            .await
            .expect("versions")
            .len(),
        2
    );
    let backup = client
        .raw(Method::POST, "/keys/k/backup", None)
        .await
        .expect("backup");
    let kid = client.get_key("k").await.expect("get").expect("exists")["key"]["kid"].clone();
    client
        .raw(Method::DELETE, "/keys/k", None)
        .await
        .expect("delete");
    let purged = client
        .raw(Method::DELETE, "/deletedkeys/k", None)
        .await
        .expect("purge");
    assert_eq!(purged.status, StatusCode::NO_CONTENT);
    let purge_again = client
        .raw(Method::DELETE, "/deletedkeys/k", None)
        .await
        .expect("purge");
    assert_eq!(purge_again.status, StatusCode::NOT_FOUND);
    assert_eq!(purge_again.body["error"]["code"], "KeyNotFound");
    let restored = client
        .raw(Method::POST, "/keys/restore", Some(&backup.body))
        .await
        .expect("restore");
    assert_eq!(restored.status, StatusCode::OK);
    assert_eq!(restored.body["key"]["kid"], kid);
    let again = client
        .raw(Method::POST, "/keys/restore", Some(&backup.body))
        .await
        .expect("restore");
    assert_eq!(again.status, StatusCode::CONFLICT);
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
