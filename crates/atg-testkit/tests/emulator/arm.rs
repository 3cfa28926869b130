//! The emulated ARM as the Key Vault and Storage tests use it: long-running operations, paging and
//! list keys.

use atg_testkit::mint_token;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::start;

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
