//! Azure Resource Manager calls on `azure_core`'s pipeline: JSON GET/PUT/PATCH/POST with extra
//! headers per call (`If-Match`), paging by `nextLink`, and long-running operations
//! (`operation.rs`: `Azure-AsyncOperation`, `Location` or the resource's `provisioningState`,
//! each call with its own deadline).
//!
//! There is no official Rust management SDK, so plugins that need ARM (storage keys, app
//! settings, registries) go through this one client, which carries the same policies as every
//! other client: host allow-list, write guard and retries. Each resource provider's api-version
//! and models live in their own module ([`storage`], [`web`], [`servicebus`], [`eventhub`]); a POST that only reads (a list
//! action) is declared so by the call that makes it ([`CallOptions::reads_only`]), never guessed
//! from its path.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{ClientOptions, PipelineSendOptions};
use azure_core::http::{Context, Method, Pipeline, RawResponse, Request, Url};
use serde_json::Value;

use super::error::{AzureError, AzureErrorKind};
use super::policies::{ReadsOnly, WriteAccess};
use super::transport::AzureHttp;

pub mod apim;
pub mod eventhub;
mod operation;
pub mod servicebus;
pub mod storage;
pub mod web;

/// How long an operation is polled when its call sets no deadline of its own.
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Clone, Debug)]
pub struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
    /// Longest an operation is polled when the call gives no [`CallOptions::deadline`].
    pub operation_timeout: Duration,
}

/// What one call adds to the request and to its wait.
#[derive(Clone, Default)]
pub struct CallOptions {
    /// Extra request headers (`If-Match`, `If-None-Match`), sent on the call itself, not on the
    /// polls of its operation. Names lowercase.
    pub headers: Vec<(&'static str, String)>,
    /// A POST that changes nothing (a list action such as `listKeys` or `config/appsettings/list`):
    /// read-only clients (the source, a dry run) let it through. Only the caller knows.
    pub reads_only: bool,
    /// Longest the operation this call starts is polled (SQL exports and registry imports run for
    /// hours); `None` is the client's [`ArmClient::operation_timeout`].
    pub deadline: Option<Duration>,
}

impl CallOptions {
    /// A POST list action: a read.
    pub fn read() -> Self {
        CallOptions {
            reads_only: true,
            ..CallOptions::default()
        }
    }

    /// Writes only over the resource version `etag` (`*`: only over an existing resource).
    #[must_use]
    pub fn if_match(mut self, etag: &str) -> Self {
        self.headers.push(("if-match", etag.to_owned()));
        self
    }

    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("CallOptions")
            .field("headers", &names)
            .field("reads_only", &self.reads_only)
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// An ARM answer: status, the headers atg reads, and the JSON body (`Value::Null` when empty).
/// Its Debug leaves the body out: `listKeys` answers hold account keys.
pub struct ArmResponse {
    pub status: u16,
    pub body: Value,
    pub azure_async_operation: Option<String>,
    pub location: Option<String>,
    pub retry_after: Option<Duration>,
    /// The resource version, for a later `If-Match`.
    pub etag: Option<String>,
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
        let endpoint = Url::parse(http.cloud.resource_manager())?;
        let options = http.client_options(&endpoint, access);
        Ok(Self::with_options(
            endpoint,
            options,
            credential,
            &http.cloud.resource_manager_scope(),
        ))
    }

    /// A client on `options` (atg's policies and transport; the unit tests swap the transport).
    fn with_options(
        endpoint: Url,
        options: ClientOptions,
        credential: Arc<dyn TokenCredential>,
        scope: &str,
    ) -> Self {
        let auth: Arc<dyn Policy> =
            Arc::new(BearerTokenAuthorizationPolicy::new(credential, [scope]));
        // The endpoint policy pins every request (paging, operation polling) to the ARM host.
        let pipeline = Pipeline::new(
            Some("atg"),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        ArmClient {
            pipeline,
            endpoint,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    fn url(&self, path_or_url: &str) -> Result<Url, AzureError> {
        let parsed = if path_or_url.starts_with("https://") || path_or_url.starts_with("http://") {
            Url::parse(path_or_url)
        } else {
            self.endpoint.join(path_or_url)
        };
        parsed.map_err(|e| AzureError::new(AzureErrorKind::Other, format!("bad ARM url: {e}")))
    }

    /// Sends one request with the call's own headers and read declaration; any status is
    /// returned, errors are only for no answer at all.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
        options: &CallOptions,
    ) -> Result<ArmResponse, AzureError> {
        let mut request = Request::new(self.url(path_or_url)?, method);
        request.insert_header("accept", "application/json");
        for (name, value) in &options.headers {
            request.insert_header(*name, value.clone());
        }
        if let Some(body) = body {
            request.insert_header("content-type", "application/json");
            let bytes = serde_json::to_vec(body)
                .map_err(|e| AzureError::new(AzureErrorKind::Other, e.to_string()))?;
            request.set_body(bytes);
        }
        let context = if options.reads_only {
            Context::new().with_value(ReadsOnly)
        } else {
            Context::new()
        };
        let response = self
            .pipeline
            .send(
                &context,
                &mut request,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await?;
        to_arm_response(&response)
    }

    /// Sends one request and turns a non-success status into an error.
    pub async fn call(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
    ) -> Result<ArmResponse, AzureError> {
        self.call_with(method, path_or_url, body, &CallOptions::default())
            .await
    }

    /// [`Self::call`] with the call's own headers and read declaration.
    pub async fn call_with(
        &self,
        method: Method,
        path_or_url: &str,
        body: Option<&Value>,
        options: &CallOptions,
    ) -> Result<ArmResponse, AzureError> {
        let response = self.send(method, path_or_url, body, options).await?;
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
        let response = self
            .send(Method::Get, path, None, &CallOptions::default())
            .await?;
        match response.status {
            404 => Ok(None),
            200..=299 => Ok(Some(response.body)),
            _ => Err(error_from(&response)),
        }
    }

    /// A POST that writes (a read-only client refuses it); list actions use [`Self::post_read`].
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, AzureError> {
        Ok(self.call(Method::Post, path, body).await?.body)
    }

    /// A POST list action (`listKeys`, `config/appsettings/list`): declared a read by its caller,
    /// so the source and a dry run may make it.
    pub async fn post_read(&self, path: &str) -> Result<Value, AzureError> {
        Ok(self
            .call_with(Method::Post, path, None, &CallOptions::read())
            .await?
            .body)
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
            // A page that is no ARM list (a proxy's HTML page answered 200) would read as an
            // empty collection: nothing copied and nothing said.
            let Some(Value::Array(items)) = body.get("value") else {
                return Err(AzureError::new(
                    AzureErrorKind::Other,
                    "a listing answered a page that is not an ARM list (no `value` array)",
                ));
            };
            on_page(items.clone())?;
        }
        Ok(())
    }

    /// PUT (or PATCH/POST/DELETE) and wait for a long-running operation to finish. Returns
    /// the final resource, or a POST's result, when ARM gives one.
    pub async fn call_and_wait(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AzureError> {
        self.call_and_wait_with(method, path, body, &CallOptions::default())
            .await
    }
}

fn header(response: &RawResponse, name: &'static str) -> Option<String> {
    response
        .headers()
        .get_optional_str(&HeaderName::from_static(name))
        .map(str::to_owned)
}

/// The answer as atg reads it. A success whose body is not JSON (a proxy's or a portal's page
/// answered 200) is an error: read as nothing, it would look like an empty resource.
fn to_arm_response(response: &RawResponse) -> Result<ArmResponse, AzureError> {
    let body = response.body();
    let status = u16::from(response.status());
    let success = (200..300).contains(&status);
    let json = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(json) => json,
            Err(_) if success => {
                return Err(AzureError::new(
                    AzureErrorKind::Other,
                    format!("ARM answered {status} with a body that is not JSON"),
                ))
            }
            Err(_) => Value::Null,
        }
    };
    let mut arm = ArmResponse {
        status,
        body: json,
        azure_async_operation: header(response, "azure-asyncoperation"),
        location: header(response, "location"),
        retry_after: super::policies::retry_after(response.headers()),
        etag: header(response, "etag"),
    };
    if !success {
        // Keep only what error_from needs; never hold a body we did not parse as an error.
        let error = AzureError::from_response(status, header(response, "x-ms-request-id"), body);
        arm.body = serde_json::json!({
            "error": { "code": error.code, "message": error.message, "innererror": { "code": error.inner_code } },
            "requestId": error.request_id,
        });
    }
    Ok(arm)
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
pub(crate) mod fake;
#[cfg(test)]
mod tests;
