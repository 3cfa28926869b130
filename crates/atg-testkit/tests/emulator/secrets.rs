//! Secrets: paging with next links, values hidden in lists, disabled secrets, and the soft-delete
//! cycle (conflict, recover, purge).

use atg_testkit::kv_rest::VaultRestClient;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::start;

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
