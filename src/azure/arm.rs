//! Azure Resource Manager calls on `azure_core`'s pipeline: JSON GET/PUT/POST, paging by
//! `nextLink`, and long-running operations (`Azure-AsyncOperation` or `Location` polling).
//!
//! There is no official Rust management SDK, so plugins that need ARM (storage keys, app
//! settings, registries) go through this one client, which carries the same policies as every
//! other client: host allow-list, write guard and retries.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::PipelineSendOptions;
use azure_core::http::{Context, Method, Pipeline, RawResponse, Request, Url};
use serde_json::Value;

use super::error::{AzureError, AzureErrorKind};
use super::policies::WriteAccess;
use super::transport::AzureHttp;

#[derive(Clone, Debug)]
pub struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
    /// Longest an operation is polled before giving up.
    pub operation_timeout: Duration,
}

/// An ARM answer: status, the headers atg reads, and the JSON body (`Value::Null` when empty).
/// Its Debug leaves the body out: `listKeys` answers hold account keys.
pub struct ArmResponse {
    pub status: u16,
    pub body: Value,
    pub azure_async_operation: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
}

impl std::fmt::Debug for ArmResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmResponse")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    pub fn new(
        http: &AzureHttp,
        credential: Arc<dyn TokenCredential>,
        access: WriteAccess,
    ) -> anyhow::Result<Self> {
        let scope = http.cloud.resource_manager_scope();
        let auth: Arc<dyn Policy> =
            Arc::new(BearerTokenAuthorizationPolicy::new(credential, [scope]));
        let endpoint = Url::parse(http.cloud.resource_manager())?;
        // The endpoint policy pins every request (paging, operation polling) to the ARM host.
        let pipeline = Pipeline::new(
            Some("atg"),
            Some(env!("CARGO_PKG_VERSION")),
            http.client_options(&endpoint, access),
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(ArmClient {
            pipeline,
            endpoint,
            operation_timeout: Duration::from_secs(30 * 60),
        })
    }

    fn url(&self, path_or_url: &str) -> Result<Url, AzureError> {
        let parsed = if path_or_url.starts_with("https://") || path_or_url.starts_with("http://") {
            Url::parse(path_or_url)
        } else {
            self.endpoint.join(path_or_url)
        };
        parsed.map_err(|e| AzureError::new(AzureErrorKind::Other, format!("bad ARM url: {e}")))
    }

    /// Sends one request; any status is returned, errors are only for no answer at all.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<ArmResponse, AzureError> {
        let mut request = Request::new(self.url(path_or_url)?, method);
        request.insert_header("accept", "application/json");
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            let bytes = serde_json::to_vec(body)
                .map_err(|e| AzureError::new(AzureErrorKind::Other, e.to_string()))?;
            request.set_body(bytes);
        }
        let response = self
            .pipeline
            .send(
                &Context::new(),
                &mut request,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await?;
        Ok(to_arm_response(&response))
    }

    /// Sends one request and turns a non-success status into an error.
    pub async fn call(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<ArmResponse, AzureError> {
        let response = self.send(method, path_or_url, body).await?;
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(error_from(&response))
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, AzureError> {
        Ok(self.call(Method::Get, path, None).await?.body)
    }

    /// GET that answers `None` for 404.
    pub async fn get_optional(&self, path: &str) -> Result<Option<Value>, AzureError> {
        let response = self.send(Method::Get, path, None).await?;
        match response.status {
            404 => Ok(None),
            200..=299 => Ok(Some(response.body)),
            _ => Err(error_from(&response)),
        }
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, AzureError> {
        Ok(self.call(Method::Post, path, body).await?.body)
    }

    /// Every item of a list, following `nextLink` until it is absent or null, one page at a time.
    pub async fn list_pages(
        &self,
        path: &str,
        mut on_page: impl FnMut(Vec<Value>) -> Result<(), AzureError>,
    ) -> Result<(), AzureError> {
        let mut next = Some(path.to_owned());
        while let Some(url) = next.take() {
            let body = self.get(&url).await?;
            next = body
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let items = match body.get("value") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            on_page(items)?;
        }
        Ok(())
    }

    /// PUT (or PATCH/POST/DELETE) and wait for a long-running operation to finish. Returns
    /// the final resource when ARM gives one.
    pub async fn call_and_wait(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AzureError> {
        let first = self.call(method, path, body).await?;
        if !matches!(first.status, 201 | 202) && !is_running(&first.body) {
            return Ok(first.body);
        }
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let mut wait = next_wait(first.retry_after, Duration::from_millis(500));
        // An operation URL off the ARM host is refused by the pipeline's endpoint policy.
        if let Some(status_url) = first.azure_async_operation.clone() {
            loop {
                tokio::time::sleep(wait).await;
                let poll = self.call(Method::Get, &status_url, None).await?;
                let status = poll
                    .body
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match status.to_ascii_lowercase().as_str() {
                    "succeeded" => break,
                    "failed" | "canceled" | "cancelled" => {
                        return Err(operation_error(&poll.body, status));
                    }
                    _ => {}
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(AzureError::new(
                        AzureErrorKind::Other,
                        "long-running operation timed out",
                    ));
                }
                wait = next_wait(poll.retry_after, wait);
            }
            if method == Method::Delete || method == Method::Post {
                return Ok(Value::Null);
            }
            return self.get(path).await;
        }
        if let Some(location) = first.location.clone() {
            loop {
                tokio::time::sleep(wait).await;
                let poll = self.call(Method::Get, &location, None).await?;
                if poll.status != 202 {
                    return Ok(poll.body);
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(AzureError::new(
                        AzureErrorKind::Other,
                        "long-running operation timed out",
                    ));
                }
                wait = next_wait(poll.retry_after, wait);
            }
        }
        // 201 with a non-terminal provisioningState and no header: poll the resource itself.
        loop {
            tokio::time::sleep(wait).await;
            let resource = self.get(path).await?;
            if !is_running(&resource) {
                return match provisioning_state(&resource) {
                    Some(state) if state.eq_ignore_ascii_case("failed") => {
                        Err(operation_error(&resource, state))
                    }
                    _ => Ok(resource),
                };
            }
            if tokio::time::Instant::now() > deadline {
                return Err(AzureError::new(
                    AzureErrorKind::Other,
                    "long-running operation timed out",
                ));
            }
            wait = next_wait(None, wait);
        }
    }
}

/// The next polling interval: the server's Retry-After when given, else double the last one,
/// always between 1 s and 30 s.
fn next_wait(retry_after: Option<Duration>, last: Duration) -> Duration {
    retry_after
        .unwrap_or_else(|| last.saturating_mul(2))
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
}

fn provisioning_state(body: &Value) -> Option<&str> {
    body.pointer("/properties/provisioningState")
        .and_then(Value::as_str)
}

fn is_running(body: &Value) -> bool {
    provisioning_state(body).is_some_and(|state| {
        !["succeeded", "failed", "canceled"].contains(&state.to_ascii_lowercase().as_str())
    })
}

fn operation_error(body: &Value, status: &str) -> AzureError {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut error = AzureError::from_response(200, None, &bytes);
    error.status = None;
    if error.code.is_none() {
        error.message = format!("long-running operation ended {status}");
    }
    error
}

fn header(response: &RawResponse, name: &'static str) -> Option<String> {
    response
        .headers()
        .get_optional_str(&HeaderName::from_static(name))
        .map(str::to_owned)
}

fn to_arm_response(response: &RawResponse) -> ArmResponse {
    let body = response.body();
    let status = u16::from(response.status());
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    };
    let mut arm = ArmResponse {
        status,
        body: json,
        azure_async_operation: header(response, "azure-asyncoperation"),
        location: header(response, "location"),
        retry_after: super::policies::retry_after(response.headers()),
    };
    if !(200..300).contains(&status) {
        // Keep only what error_from needs; never hold a body we did not parse as an error.
        let error = AzureError::from_response(status, header(response, "x-ms-request-id"), body);
        arm.body = serde_json::json!({
            "error": { "code": error.code, "message": error.message, "innererror": { "code": error.inner_code } },
            "requestId": error.request_id,
        });
    }
    arm
}

fn error_from(response: &ArmResponse) -> AzureError {
    let request_id = response
        .body
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let bytes = serde_json::to_vec(&response.body).unwrap_or_default();
    AzureError::from_response(response.status, request_id, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_waits_stay_between_one_and_thirty_seconds() {
        assert_eq!(
            next_wait(Some(Duration::ZERO), Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(
            next_wait(None, Duration::from_secs(4)),
            Duration::from_secs(8)
        );
        assert_eq!(
            next_wait(None, Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(next_wait(None, Duration::MAX), Duration::from_secs(30));
    }

    #[test]
    fn provisioning_states_decide_whether_to_poll() {
        assert!(is_running(
            &serde_json::json!({"properties":{"provisioningState":"Creating"}})
        ));
        assert!(!is_running(
            &serde_json::json!({"properties":{"provisioningState":"Succeeded"}})
        ));
        assert!(!is_running(&serde_json::json!({"properties":{}})));
    }
}
