//! Azure Storage data planes (Blob, Queue, Table) as raw REST on `azure_core` pipelines.
//!
//! Every client here is built from [`AzureHttp::client_options`], so the host allow-list, the
//! write guard and the retry policy apply to each request exactly as for the SDK clients. The
//! official `azure_storage_blob` 1.x crate is not used: it has no shared-key or SAS signing, no
//! synchronous Copy Blob From URL, and hides the status codes atg branches on (501 for calls a
//! service does not implement, 409/412 for conditional writes); Tables and Queues have no
//! official 1.x crate at all.
//!
//! Owns: endpoints of an account, authorisation (bearer or SAS), request signing of SAS tokens
//! ([`sas`]), and the operations of each service ([`blob`], [`queue`], [`table`]). It must not
//! decide what to copy: that is the storage plugin's job.
//!
//! Secrets: SAS tokens and keys live in [`Sensitive`]; URLs are shown only through
//! [`redact_url`]; errors carry the service's code and first message line, never a URL query.

pub mod blob;
pub mod queue;
pub mod sas;
pub mod shared_key;
pub mod table;
mod wire;
mod xml;

pub use xml::SignedIdentifier;

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{Context, Method, Pipeline, PipelineSendOptions, Request, Url};

use super::cloud::Cloud;
use super::error::{AzureError, AzureErrorKind};
use super::policies::{SendOnce, WriteAccess};
use super::sensitive::{redact_url, Sensitive};
use super::transport::AzureHttp;

/// Token scope of every storage data plane, in every cloud.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// `x-ms-version` for Blob and Queue (2020-10-02 or later is needed for tags on copy and
/// copy-source authorisation).
pub const STORAGE_VERSION: &str = "2025-01-05";
/// `x-ms-version` for Table (the Table service lags the blob versions).
pub const TABLE_VERSION: &str = "2019-02-02";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageService {
    Blob,
    Queue,
    Table,
}

impl StorageService {
    pub fn label(self) -> &'static str {
        match self {
            StorageService::Blob => "blob",
            StorageService::Queue => "queue",
            StorageService::Table => "table",
        }
    }
}

/// How requests to one account are authorised.
#[derive(Clone)]
pub enum StorageAuth {
    /// Entra ID bearer token for `https://storage.azure.com`.
    Bearer(Arc<dyn TokenCredential>),
    /// A SAS token (query string without `?`), appended to every URL.
    Sas(Sensitive),
    /// The account key, signing each request (Shared Key). Only for what takes nothing else:
    /// stored access policies.
    SharedKey(Sensitive),
}

impl std::fmt::Debug for StorageAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageAuth::Bearer(_) => f.write_str("Bearer"),
            StorageAuth::Sas(_) => f.write_str("Sas(<redacted>)"),
            StorageAuth::SharedKey(_) => f.write_str("SharedKey(<redacted>)"),
        }
    }
}

/// The data-plane endpoints of one storage account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageEndpoints {
    pub account: String,
    pub blob: Url,
    pub queue: Url,
    pub table: Url,
}

impl StorageEndpoints {
    /// Endpoints from `properties.primaryEndpoints` when given, else derived from the account
    /// name and the cloud (`https://<account>.<service>.<suffix>/`). Every endpoint must be an
    /// https URL on the cloud's storage suffix: credentials are never sent anywhere else.
    pub fn resolve(
        account: &str,
        primary_endpoints: Option<&serde_json::Value>,
        cloud: Cloud,
    ) -> Result<Self, String> {
        let account = account.to_ascii_lowercase();
        if account.len() < 3
            || account.len() > 24
            || !account
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return Err(format!(
                "`{account}` is not a storage account name (3-24 lowercase letters and digits)"
            ));
        }
        let endpoint = |service: StorageService| -> Result<Url, String> {
            let expected_host = format!("{account}.{}.{}", service.label(), cloud.storage_suffix());
            let given = primary_endpoints
                .and_then(|e| e.get(service.label()))
                .and_then(serde_json::Value::as_str);
            let Some(given) = given else {
                return Url::parse(&format!("https://{expected_host}/"))
                    .map_err(|e| format!("storage endpoint for `{account}`: {e}"));
            };
            let url = Url::parse(given)
                .map_err(|e| format!("{} endpoint `{given}` is not a URL: {e}", service.label()))?;
            let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
            if url.scheme() != "https"
                || host != expected_host
                || url.port().is_some_and(|p| p != 443)
            {
                return Err(format!(
                    "{} endpoint `{}` is not https://{expected_host}/: refusing to send credentials there",
                    service.label(),
                    redact_url(&url)
                ));
            }
            Url::parse(&format!("https://{host}/"))
                .map_err(|e| format!("storage endpoint for `{account}`: {e}"))
        };
        Ok(StorageEndpoints {
            blob: endpoint(StorageService::Blob)?,
            queue: endpoint(StorageService::Queue)?,
            table: endpoint(StorageService::Table)?,
            account,
        })
    }

    pub fn of(&self, service: StorageService) -> &Url {
        match service {
            StorageService::Blob => &self.blob,
            StorageService::Queue => &self.queue,
            StorageService::Table => &self.table,
        }
    }
}

/// An answer from a storage service: any status, the headers and the body.
#[derive(Debug)]
pub struct StorageResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl StorageResponse {
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .get_optional_str(&HeaderName::from_static(name))
    }

    /// The `x-ms-meta-*` headers as a metadata map, names lowercased: the HTTP client loses
    /// their case, which `StorageClient::listed_metadata` keeps.
    pub fn metadata(&self) -> std::collections::BTreeMap<String, String> {
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                name.as_str()
                    .strip_prefix("x-ms-meta-")
                    .map(|key| (key.to_ascii_lowercase(), value.as_str().to_owned()))
            })
            .collect()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error this answer stands for: status, the service's error code and the first line
    /// of its message (storage messages go on with request id and time), and the request id.
    pub fn error(&self) -> AzureError {
        let (code, message) = xml::error_code_and_message(&self.body)
            .or_else(|| table::json_error(&self.body))
            .unwrap_or((None, None));
        AzureError::from_response(
            self.status,
            self.header("x-ms-request-id").map(str::to_owned),
            b"",
        )
        .with_service_text(
            code.or_else(|| self.header("x-ms-error-code").map(str::to_owned)),
            message.as_deref(),
        )
    }

    /// `Ok(self)` for a 2xx answer, the error otherwise.
    pub fn success(self) -> Result<Self, AzureError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }
}

/// One account's service (blob, queue or table) with one authorisation and write access.
#[derive(Clone)]
pub struct StorageClient {
    pipeline: Pipeline,
    base: Url,
    sas: Option<Sensitive>,
    pub service: StorageService,
}

impl std::fmt::Debug for StorageClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageClient")
            .field("base", &self.base.as_str())
            .field("service", &self.service)
            .field("sas", &self.sas.is_some())
            .finish_non_exhaustive()
    }
}

impl StorageClient {
    pub fn new(
        http: &AzureHttp,
        endpoints: &StorageEndpoints,
        service: StorageService,
        auth: &StorageAuth,
        access: WriteAccess,
    ) -> Self {
        let (per_retry, sas): (Vec<Arc<dyn Policy>>, _) = match auth {
            StorageAuth::Bearer(credential) => (
                vec![Arc::new(BearerTokenAuthorizationPolicy::new(
                    credential.clone(),
                    [STORAGE_SCOPE],
                ))],
                None,
            ),
            StorageAuth::Sas(token) => (Vec::new(), Some(token.clone())),
            StorageAuth::SharedKey(key) => (
                vec![Arc::new(shared_key::SharedKeyPolicy::new(
                    &endpoints.account,
                    endpoints.of(service),
                    key.clone(),
                    service,
                ))],
                None,
            ),
        };
        let mut options = http.client_options(endpoints.of(service), access);
        options.transport = Some(azure_core::http::Transport::new(
            wire::StorageTransport::new(http),
        ));
        let pipeline = Pipeline::new(
            Some("atg"),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            per_retry,
            None,
        );
        StorageClient {
            pipeline,
            base: endpoints.of(service).clone(),
            sas,
            service,
        }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The URL of `segments` (each percent-encoded as one path segment; a blob name is split on
    /// `/` by the caller) with `query`, without the SAS.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// A URL with this client's SAS appended (for copy sources). Keep it in [`Sensitive`].
    pub fn url_with_sas(&self, url: &Url) -> Sensitive {
        let mut text = url.to_string();
        if let Some(sas) = &self.sas {
            text.push(if url.query().is_some() { '&' } else { '?' });
            text.push_str(sas.expose());
        }
        Sensitive::new(text)
    }

    /// Sends one request and returns any answer; errors only when there is no answer.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<StorageResponse, AzureError> {
        self.send_in(&Context::new(), method, url, headers, body)
            .await
    }

    /// [`Self::send`] without retries, for a request that is not idempotent: the caller looks
    /// whether a try whose answer was lost took effect before sending it again.
    pub async fn send_once(
        &self,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<StorageResponse, AzureError> {
        let context = Context::new().with_value(SendOnce);
        self.send_in(&context, method, url, headers, body).await
    }

    async fn send_in(
        &self,
        context: &Context<'_>,
        method: Method,
        url: Url,
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<StorageResponse, AzureError> {
        let target = self.url_with_sas(&url);
        let parsed = Url::parse(target.expose()).map_err(|e| {
            AzureError::new(
                AzureErrorKind::Other,
                format!("bad storage url `{}`: {e}", redact_url(&url)),
            )
        })?;
        let mut request = Request::new(parsed, method);
        let version = if self.service == StorageService::Table {
            TABLE_VERSION
        } else {
            STORAGE_VERSION
        };
        request.insert_header("x-ms-version", version);
        request.insert_header("x-ms-date", http_date(time::OffsetDateTime::now_utc()));
        for (name, value) in headers {
            request.insert_header(name.to_ascii_lowercase(), value.clone());
        }
        match body {
            Some(bytes) => {
                request.insert_header("content-length", bytes.len().to_string());
                request.set_body(bytes);
            }
            None if matches!(method, Method::Put | Method::Post | Method::Patch) => {
                request.insert_header("content-length", "0");
                request.set_body(Vec::<u8>::new());
            }
            None => {}
        }
        let response = self
            .pipeline
            .send(
                context,
                &mut request,
                Some(PipelineSendOptions {
                    skip_checks: true,
                    ..Default::default()
                }),
            )
            .await?;
        let status = u16::from(response.status());
        let headers = response.headers().clone();
        let body = response.into_body().to_vec();
        Ok(StorageResponse {
            status,
            headers,
            body,
        })
    }
}

impl StorageClient {
    /// One page (at most 5,000, with metadata) of the service's own listing (`comp=list`:
    /// containers or queues) from `marker`; `parse` reads each `<item>` under `<list>`.
    pub(super) async fn list_service<T>(
        &self,
        marker: Option<&str>,
        (list, item): (&str, &str),
        parse: impl Fn(roxmltree::Node<'_, '_>) -> Option<T>,
    ) -> Result<blob::Page<T>, AzureError> {
        self.list_service_from((None, marker), (list, item), parse)
            .await
    }

    /// The metadata of one container or queue as the listing shows it: names in their case,
    /// which response headers lose (the HTTP client lowercases them). `None` when not listed.
    pub(super) async fn listed_metadata(
        &self,
        (list, item): (&str, &str),
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AzureError> {
        // The item itself is the first name that starts with its name.
        let page = self
            .list_service_from((Some(name), None), (list, item), |node| {
                (xml::name_of(node)? == name).then(|| xml::metadata(node))
            })
            .await?;
        Ok(page.items.into_iter().next())
    }

    async fn list_service_from<T>(
        &self,
        (prefix, marker): (Option<&str>, Option<&str>),
        (list, item): (&str, &str),
        parse: impl Fn(roxmltree::Node<'_, '_>) -> Option<T>,
    ) -> Result<blob::Page<T>, AzureError> {
        let mut query = vec![
            ("comp", "list"),
            ("include", "metadata"),
            ("maxresults", if prefix.is_some() { "1" } else { "5000" }),
        ];
        if let Some(prefix) = prefix {
            query.push(("prefix", prefix));
        }
        if let Some(marker) = marker {
            query.push(("marker", marker));
        }
        let response = self
            .send(Method::Get, self.url(&[], &query), &[], None)
            .await?
            .success()?;
        let document = xml::parse(&response.body).map_err(|e| {
            AzureError::new(
                AzureErrorKind::Other,
                format!("could not read the {} list: {e}", item.to_ascii_lowercase()),
            )
        })?;
        let root = document.root_element();
        let items = xml::child(root, list)
            .map(|nodes| xml::children(nodes, item).filter_map(&parse).collect())
            .unwrap_or_default();
        Ok(blob::Page {
            items,
            next_marker: xml::child_text(root, "NextMarker")
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
        })
    }
}

/// An RFC 7231 date (`Tue, 15 Nov 1994 08:12:31 GMT`), as `x-ms-date` wants it.
pub fn http_date(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// ISO 8601 with seconds and `Z` (SAS times, key info).
pub fn iso_seconds(at: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Parses an RFC 7231 date as storage listings and headers carry it.
pub fn parse_http_date(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc2822).ok()
}

/// Splits a blob name into path segments, so `/` stays a separator and everything else is
/// percent-encoded.
pub fn blob_segments<'a>(container: &'a str, blob: &'a str) -> Vec<&'a str> {
    std::iter::once(container).chain(blob.split('/')).collect()
}

/// `x-ms-meta-*` request headers for a metadata map. Header names travel in lower case, so
/// names with upper-case letters are also listed as they are in [`wire::METADATA_NAMES`], which
/// makes the transport write them by hand with their case (the service keeps it).
pub(super) fn metadata_headers(metadata: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = metadata
        .iter()
        .map(|(key, value)| (format!("x-ms-meta-{key}"), value.clone()))
        .collect();
    if metadata
        .keys()
        .any(|key| key.chars().any(char::is_uppercase))
    {
        let names: Vec<&str> = metadata.keys().map(String::as_str).collect();
        headers.push((wire::METADATA_NAMES.to_owned(), names.join(",")));
    }
    headers
}

/// The `(&str, String)` header list `StorageClient::send` takes.
pub(super) fn borrowed(headers: &[(String, String)]) -> Vec<(&str, String)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_derived_or_validated() {
        let derived = StorageEndpoints::resolve("srcacct", None, Cloud::AzureCloud).unwrap();
        assert_eq!(
            derived.blob.as_str(),
            "https://srcacct.blob.core.windows.net/"
        );
        assert_eq!(
            derived.table.as_str(),
            "https://srcacct.table.core.windows.net/"
        );
        let given = serde_json::json!({"blob": "https://srcacct.blob.core.windows.net/"});
        assert!(StorageEndpoints::resolve("srcacct", Some(&given), Cloud::AzureCloud).is_ok());
        let evil = serde_json::json!({"blob": "https://evil.example/?sig=x"});
        let error =
            StorageEndpoints::resolve("srcacct", Some(&evil), Cloud::AzureCloud).unwrap_err();
        assert!(
            error.contains("refusing") && !error.contains("sig=x"),
            "{error}"
        );
        assert!(StorageEndpoints::resolve("Bad_Name", None, Cloud::AzureCloud).is_err());
        let china = StorageEndpoints::resolve("acct1", None, Cloud::AzureChinaCloud).unwrap();
        assert_eq!(
            china.queue.as_str(),
            "https://acct1.queue.core.chinacloudapi.cn/"
        );
    }

    #[test]
    fn storage_error_messages_are_sanitized() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request. Signature: sig=SIGSECRET AccountKey=KEYSECRET==\nRequestId:1</Message></Error>";
        let response = StorageResponse {
            status: 403,
            headers: Headers::new(),
            body: body.as_bytes().to_vec(),
        };
        let shown = response.error().to_string();
        assert!(
            shown.contains("403 AuthenticationFailed: Server failed to authenticate the request"),
            "{shown}"
        );
        assert!(
            !shown.contains("SIGSECRET") && !shown.contains("KEYSECRET"),
            "{shown}"
        );
    }

    #[test]
    fn dates_format_as_storage_expects() {
        let at = time::macros::datetime!(1994-11-15 08:12:31 UTC);
        assert_eq!(http_date(at), "Tue, 15 Nov 1994 08:12:31 GMT");
        assert_eq!(iso_seconds(at), "1994-11-15T08:12:31Z");
        assert_eq!(parse_http_date("Tue, 15 Nov 1994 08:12:31 GMT"), Some(at));
    }
}
