//! Device-code sign-in (`--dataplane-interactive`), for people without a service principal or
//! the Azure CLI. `azure_identity` 1.x has no device-code credential, so this is the OAuth 2.0
//! device authorization grant against the selected cloud's authority, with the Azure CLI's public
//! client id. The refresh token it receives serves the other scopes of the run without asking again.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::sensitive::Sensitive;
use super::transport::AzureHttp;

/// The Azure CLI's public client application id, which every tenant trusts for sign-in.
const PUBLIC_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";

pub type PromptFn = Arc<dyn Fn(&str) + Send + Sync>;

pub struct DeviceCodeCredential {
    http: AzureHttp,
    tenant: String,
    prompt: std::sync::Mutex<Option<PromptFn>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    refresh_token: Option<Sensitive>,
    tokens: HashMap<String, (Sensitive, time::OffsetDateTime)>,
}

impl fmt::Debug for DeviceCodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCodeCredential")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DeviceCodeAnswer {
    device_code: Sensitive,
    message: String,
    interval: Option<u64>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<Sensitive>,
    refresh_token: Option<Sensitive>,
    expires_in: Option<i64>,
    error: Option<String>,
    error_description: Option<String>,
}

fn credential_error(message: impl Into<String>) -> azure_core::Error {
    azure_core::Error::with_message(ErrorKind::Credential, message.into())
}

impl DeviceCodeCredential {
    pub fn new(http: AzureHttp, tenant: Option<String>) -> Self {
        DeviceCodeCredential {
            http,
            tenant: tenant.unwrap_or_else(|| "organizations".into()),
            prompt: std::sync::Mutex::new(None),
            state: Mutex::new(State::default()),
        }
    }

    /// Where the "open this URL and enter this code" message goes (the UI's printer).
    pub fn set_prompt(&self, prompt: PromptFn) {
        if let Ok(mut slot) = self.prompt.lock() {
            *slot = Some(prompt);
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{path}",
            self.http.cloud.authority_host(),
            self.tenant
        )
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> azure_core::Result<TokenAnswer> {
        let response = self
            .http
            .raw_client()
            .post(self.endpoint(path))
            .form(form)
            .send()
            .await
            .map_err(|e| {
                credential_error(format!("sign-in request failed: {}", e.without_url()))
            })?;
        response.json::<TokenAnswer>().await.map_err(|e| {
            credential_error(format!("unexpected sign-in answer: {}", e.without_url()))
        })
    }

    async fn sign_in(&self, scope: &str) -> azure_core::Result<TokenAnswer> {
        let scopes = format!("{scope} offline_access");
        let response = self
            .http
            .raw_client()
            .post(self.endpoint("devicecode"))
            .form(&[("client_id", PUBLIC_CLIENT_ID), ("scope", scopes.as_str())])
            .send()
            .await
            .map_err(|e| {
                credential_error(format!("device-code request failed: {}", e.without_url()))
            })?;
        let answer: DeviceCodeAnswer = response.json().await.map_err(|e| {
            credential_error(format!(
                "unexpected device-code answer: {}",
                e.without_url()
            ))
        })?;
        if let Ok(slot) = self.prompt.lock() {
            if let Some(prompt) = slot.as_ref() {
                prompt(&answer.message);
            }
        }
        let mut interval = Duration::from_secs(answer.interval.unwrap_or(5).max(1));
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(answer.expires_in.unwrap_or(900));
        loop {
            tokio::time::sleep(interval).await;
            if tokio::time::Instant::now() > deadline {
                return Err(credential_error("device-code sign-in timed out"));
            }
            let token = self
                .post(
                    "token",
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                        ("client_id", PUBLIC_CLIENT_ID),
                        ("device_code", answer.device_code.expose()),
                    ],
                )
                .await?;
            match token.error.as_deref() {
                None => return Ok(token),
                Some("authorization_pending") => {}
                Some("slow_down") => interval += Duration::from_secs(5),
                Some(code) => {
                    return Err(credential_error(format!(
                        "device-code sign-in failed: {}: {}",
                        super::error::sanitize_server_text(code),
                        super::error::sanitize_server_text(
                            &token.error_description.unwrap_or_default()
                        )
                    )))
                }
            }
        }
    }
}

#[async_trait]
impl TokenCredential for DeviceCodeCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let scope = scopes.join(" ");
        let mut state = self.state.lock().await;
        let now = time::OffsetDateTime::now_utc();
        if let Some((token, expires)) = state.tokens.get(&scope) {
            if *expires > now + time::Duration::minutes(5) {
                return Ok(AccessToken::new(token.expose().to_owned(), *expires));
            }
        }
        let answer = match state.refresh_token.clone() {
            Some(refresh) => {
                self.post(
                    "token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", PUBLIC_CLIENT_ID),
                        ("refresh_token", refresh.expose()),
                        ("scope", scope.as_str()),
                    ],
                )
                .await?
            }
            None => self.sign_in(&scope).await?,
        };
        if let Some(code) = answer.error {
            return Err(credential_error(format!("token request failed: {code}")));
        }
        let token = answer
            .access_token
            .ok_or_else(|| credential_error("the sign-in answer holds no access token"))?;
        if answer.refresh_token.is_some() {
            state.refresh_token = answer.refresh_token;
        }
        let expires = now + time::Duration::seconds(answer.expires_in.unwrap_or(3600));
        state.tokens.insert(scope, (token.clone(), expires));
        Ok(AccessToken::new(token.expose().to_owned(), expires))
    }
}
