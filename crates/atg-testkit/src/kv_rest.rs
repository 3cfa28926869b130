//! `VaultRestClient`: a deliberately plain Key Vault REST client (reqwest, no Azure SDK) for tests.
//! Tests seed sources and read targets back with it, so what `atg` wrote is verified by a different
//! reader than the writer under test. It always sends a minted bearer, so it never sees the challenge.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{mint_token, Emulator};

/// Data-plane API version the client speaks.
pub const API_VERSION: &str = "7.5";

/// A raw REST client for one vault served by the emulator.
pub struct VaultRestClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Status and JSON body of a raw call (`Value::Null` when the body is empty or not JSON).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl VaultRestClient {
    /// A client for `<vault>.vault.azure.net` on `emulator`, with a token for the vault's tenant.
    ///
    /// # Errors
    /// Fails when the reqwest client cannot be built from the emulator's CA.
    pub fn new(emulator: &Emulator, vault: &str) -> anyhow::Result<Self> {
        let tenant = emulator.tenant_of(vault);
        Self::with_parts(
            emulator.ca_pem(),
            emulator.addr(),
            &format!("{vault}.vault.azure.net"),
            &mint_token(&tenant, "atg-testkit-reader", "https://vault.azure.net"),
        )
    }

    /// A client for any vault host, resolved to `addr`, trusting `ca_pem`, sending `token`.
    ///
    /// # Errors
    /// Fails when the CA is not valid PEM or the client cannot be built.
    pub fn with_parts(
        ca_pem: &str,
        addr: SocketAddr,
        vault_host: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        let http = test_http_client(ca_pem, addr, &[vault_host])?;
        Ok(Self {
            http,
            base: format!("https://{vault_host}"),
            token: token.to_owned(),
        })
    }

    /// `https://<vault host>`.
    #[must_use]
    pub fn vault_url(&self) -> &str {
        &self.base
    }

    /// Sends one request to `path_and_query` (relative to the vault, or an absolute nextLink).
    ///
    /// # Errors
    /// Fails only on transport errors; HTTP errors come back as a status.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<RawResponse> {
        let url = if path_and_query.starts_with("https://") {
            path_and_query.to_owned()
        } else {
            let separator = if path_and_query.contains('?') {
                '&'
            } else {
                '?'
            };
            format!(
                "{}{path_and_query}{separator}api-version={API_VERSION}",
                self.base
            )
        };
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .context("send request to the emulator")?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.context("read response body")?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn expect_ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let response = self.raw(method.clone(), path, body).await?;
        if !response.status.is_success() {
            // Error bodies carry codes and messages, never secret values.
            bail!(
                "{method} {path} answered {}: {}",
                response.status,
                response.body["error"]["code"]
                    .as_str()
                    .unwrap_or("no error code")
            );
        }
        Ok(response.body)
    }

    async fn optional(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let response = self.raw(Method::GET, path, None).await?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response.body)),
            status => bail!(
                "GET {path} answered {status}: {}",
                response.body["error"]["code"]
                    .as_str()
                    .unwrap_or("no error code")
            ),
        }
    }

    /// Follows `nextLink` until it is null and returns every item.
    ///
    /// # Errors
    /// Fails on any non-success page.
    pub async fn list_all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(link) = next.take() {
            let page = self.expect_ok(Method::GET, &link, None).await?;
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            next = page["nextLink"].as_str().map(str::to_owned);
        }
        Ok(items)
    }

    /// `PUT /secrets/{name}`; returns the `SecretBundle`.
    ///
    /// # Errors
    /// Fails on a non-success status (e.g. 409 for a soft-deleted name).
    pub async fn set_secret(
        &self,
        name: &str,
        value: &str,
        content_type: Option<&str>,
        tags: Option<&BTreeMap<String, String>>,
        enabled: bool,
    ) -> anyhow::Result<Value> {
        let mut body = json!({ "value": value, "attributes": { "enabled": enabled } });
        if let Some(content_type) = content_type {
            body["contentType"] = json!(content_type);
        }
        if let Some(tags) = tags {
            body["tags"] = json!(tags);
        }
        self.expect_ok(Method::PUT, &format!("/secrets/{name}"), Some(&body))
            .await
    }

    /// Latest version with its value; `None` when the secret does not exist.
    ///
    /// # Errors
    /// Fails on statuses other than 200 and 404 (e.g. 403 for a disabled secret).
    pub async fn get_secret(&self, name: &str) -> anyhow::Result<Option<Value>> {
        self.optional(&format!("/secrets/{name}/")).await
    }

    /// # Errors
    /// Fails on any non-success page.
    pub async fn list_secrets(&self) -> anyhow::Result<Vec<Value>> {
        self.list_all("/secrets").await
    }

    /// # Errors
    /// Fails on any non-success page.
    pub async fn secret_versions(&self, name: &str) -> anyhow::Result<Vec<Value>> {
        self.list_all(&format!("/secrets/{name}/versions")).await
    }

    /// Soft-deletes; returns the `DeletedSecretBundle`.
    ///
    /// # Errors
    /// Fails on a non-success status.
    pub async fn delete_secret(&self, name: &str) -> anyhow::Result<Value> {
        self.expect_ok(Method::DELETE, &format!("/secrets/{name}"), None)
            .await
    }

    /// # Errors
    /// Fails on a non-success status.
    pub async fn recover_secret(&self, name: &str) -> anyhow::Result<Value> {
        self.expect_ok(
            Method::POST,
            &format!("/deletedsecrets/{name}/recover"),
            None,
        )
        .await
    }

    /// Purges a soft-deleted secret (204).
    ///
    /// # Errors
    /// Fails on a non-success status.
    pub async fn purge(&self, name: &str) -> anyhow::Result<()> {
        self.expect_ok(Method::DELETE, &format!("/deletedsecrets/{name}"), None)
            .await
            .map(|_| ())
    }

    /// `POST /keys/{name}/create`: `kty` RSA/EC(-HSM), `key_size` for RSA, `crv` for EC.
    ///
    /// # Errors
    /// Fails on a non-success status.
    pub async fn create_key(
        &self,
        name: &str,
        kty: &str,
        key_size: Option<u32>,
        crv: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut body = json!({ "kty": kty, "attributes": { "enabled": true } });
        if let Some(size) = key_size {
            body["key_size"] = json!(size);
        }
        if let Some(crv) = crv {
            body["crv"] = json!(crv);
        }
        self.expect_ok(Method::POST, &format!("/keys/{name}/create"), Some(&body))
            .await
    }

    /// # Errors
    /// Fails on statuses other than 200 and 404.
    pub async fn get_key(&self, name: &str) -> anyhow::Result<Option<Value>> {
        self.optional(&format!("/keys/{name}/")).await
    }

    /// # Errors
    /// Fails on any non-success page.
    pub async fn list_keys(&self) -> anyhow::Result<Vec<Value>> {
        self.list_all("/keys").await
    }

    /// Starts `POST /certificates/{name}/create` and polls `pending` until it completes
    /// (or fails, or 30 s pass); returns the `CertificateBundle`.
    ///
    /// # Errors
    /// Fails when the operation fails or does not complete in time.
    pub async fn create_certificate(&self, name: &str, policy: &Value) -> anyhow::Result<Value> {
        let body = json!({ "policy": policy, "attributes": { "enabled": true } });
        self.expect_ok(
            Method::POST,
            &format!("/certificates/{name}/create"),
            Some(&body),
        )
        .await?;
        for _ in 0..300 {
            let operation = self
                .expect_ok(Method::GET, &format!("/certificates/{name}/pending"), None)
                .await?;
            match operation["status"].as_str() {
                Some("completed") => {
                    return self
                        .get_certificate(name)
                        .await?
                        .context("certificate missing after completion");
                }
                Some("inProgress") => tokio::time::sleep(Duration::from_millis(100)).await,
                other => bail!("certificate operation for {name} ended as {other:?}"),
            }
        }
        bail!("certificate operation for {name} did not complete within 30 s")
    }

    /// # Errors
    /// Fails on statuses other than 200 and 404.
    pub async fn get_certificate(&self, name: &str) -> anyhow::Result<Option<Value>> {
        self.optional(&format!("/certificates/{name}/")).await
    }

    /// # Errors
    /// Fails on any non-success page.
    pub async fn list_certificates(&self) -> anyhow::Result<Vec<Value>> {
        self.list_all("/certificates").await
    }
}

/// A reqwest client that trusts only `ca_pem` and resolves `hosts` to `addr` (HTTP/1.1, no retries).
///
/// # Errors
/// Fails when the CA is not valid PEM or the client cannot be built.
pub fn test_http_client(
    ca_pem: &str,
    addr: SocketAddr,
    hosts: &[&str],
) -> anyhow::Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).context("parse emulator ca pem")?;
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .timeout(Duration::from_secs(30));
    for host in hosts {
        builder = builder.resolve(host, addr);
    }
    builder.build().context("build test http client")
}
