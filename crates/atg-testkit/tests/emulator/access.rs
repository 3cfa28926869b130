//! Who may call a vault: the challenge flow and bearer validation, the token endpoint and its
//! configured principals, and vaults forbidden by RBAC.

use atg_testkit::kv_rest::VaultRestClient;
use atg_testkit::{mint_token, mint_token_with_expiry, Principal};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{kv_token, start};

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
