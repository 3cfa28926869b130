//! Pipeline policies every atg client carries, in this order (the first four per call, before
//! authentication, so they see each request once with its final URL):
//!
//! 1. [`EndpointPolicy`]: a client sends only to the scheme, host and port it was built for. A
//!    `nextLink`, an operation or copy-status URL on any other origin (another vault, a storage
//!    account, the sign-in host, another port) is refused before a bearer token is attached.
//! 2. [`HostAllowListPolicy`]: a request may only go to a host of the selected cloud, so an
//!    inventory URL pointing elsewhere is refused before any token is sent.
//! 3. [`WriteGuardPolicy`]: the one choke point for writes. Source clients never write; target
//!    clients write only outside dry-run. A plugin that forgot to check gets an error, not a write.
//! 4. [`RetryPolicy`]: retries throttling, busy and transport faults with capped exponential
//!    backoff, honouring `Retry-After`; a 429 pauses every request to that host, not just one.
//!    An untrusted certificate, a name that does not resolve, or a sign-in host that refuses
//!    connections fails at once with its cause: waiting does not change them.
//! 5. [`TracePolicy`] (per try, after authentication, so it sees every request on the wire):
//!    one `trace` line per HTTP attempt with method, host, path, status and duration, never a
//!    query string, header value or body.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Request, Url};

mod retry;

pub use retry::*;

use super::cloud::Cloud;
use super::error::{AzureError, AzureErrorKind};

/// The error a policy answers with when atg itself refuses to send a request.
pub(crate) fn refuse(message: String) -> azure_core::Error {
    let error = AzureError::new(AzureErrorKind::Refused, message.clone());
    azure_core::Error::with_error(ErrorKind::Other, error, message)
}

/// Scheme, host and port (the known default when the URL has none): where a client may send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub fn of(url: &Url) -> Self {
        Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url
                .host_str()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Pins a client to the origin it was built for. Services hand out follow-up URLs (`nextLink`,
/// `Azure-AsyncOperation`, `Location`); one on another origin gets neither a request nor the
/// client's bearer token, and the caller gets an error naming the host (never the query).
#[derive(Debug)]
pub struct EndpointPolicy {
    origin: Origin,
}

impl EndpointPolicy {
    pub fn new(endpoint: &Url) -> Self {
        EndpointPolicy {
            origin: Origin::of(endpoint),
        }
    }

    fn check(&self, url: &Url) -> Result<(), azure_core::Error> {
        let origin = Origin::of(url);
        if origin == self.origin {
            return Ok(());
        }
        Err(refuse(format!(
            "refused to send a request to `{origin}`: this client talks only to `{}` (a service answer pointed to another host, port or scheme)",
            self.origin
        )))
    }
}

#[async_trait]
impl Policy for EndpointPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        self.check(request.url())?;
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[derive(Debug)]
pub struct HostAllowListPolicy {
    cloud: Cloud,
}

impl HostAllowListPolicy {
    pub fn new(cloud: Cloud) -> Self {
        HostAllowListPolicy { cloud }
    }
}

#[async_trait]
impl Policy for HostAllowListPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let url = request.url();
        let host = url.host_str().unwrap_or_default();
        if url.scheme() != "https" || !self.cloud.allows_host(host) {
            return Err(refuse(format!(
                "refused to send a request to `{}://{host}`: not a {} host over https",
                url.scheme(),
                self.cloud
            )));
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// Whether a client may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteAccess {
    /// Reads only: every source client, and every target client in dry-run.
    ReadOnly,
    ReadWrite,
}

#[derive(Debug)]
pub struct WriteGuardPolicy {
    access: WriteAccess,
    refused: Arc<AtomicU64>,
}

impl WriteGuardPolicy {
    pub fn new(access: WriteAccess, refused: Arc<AtomicU64>) -> Self {
        WriteGuardPolicy { access, refused }
    }
}

/// Marks a request its caller declared a read although it is a POST (an ARM list action such
/// as `listKeys`, Storage's Get User Delegation Key, which mints a signing key and changes
/// nothing). The caller knows what it sends; the write guard keeps no list of paths.
#[derive(Clone, Copy, Debug)]
pub struct ReadsOnly;

/// GET and HEAD read; a POST reads only when its caller marked it [`ReadsOnly`].
fn is_read(method: Method, declared_read: bool) -> bool {
    match method {
        Method::Get | Method::Head => true,
        Method::Post => declared_read,
        _ => false,
    }
}

/// A Key Vault write that adds a version (set a secret, import a key, create or import a
/// certificate or key, restore). Resending one whose answer was lost would add a second version,
/// so only its 429s (which Key Vault never carries out) are resent here; the Key Vault plugin
/// reads the target back before writing again.
pub(super) fn adds_key_vault_version(method: Method, host: &str, path: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let path = path.trim_end_matches('/').to_ascii_lowercase();
    let in_vault = Cloud::ALL
        .iter()
        .any(|cloud| host.ends_with(cloud.key_vault_suffix()));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    in_vault
        && matches!(
            (method, segments.as_slice()),
            (Method::Put, ["secrets" | "keys", _])
                | (
                    Method::Post,
                    [_, "restore"] | ["keys" | "certificates", _, "create" | "import"]
                )
        )
}

#[async_trait]
impl Policy for WriteGuardPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if self.access == WriteAccess::ReadOnly
            && !is_read(request.method(), ctx.value::<ReadsOnly>().is_some())
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(refuse(format!(
                "refused {} {}: this client is read-only (source side, or dry-run)",
                request.method(),
                request.url().path()
            )));
        }
        next[0].send(ctx, request, &next[1..]).await
    }
}

/// A short name for a failure before an answer (the kind's Debug could carry a response).
fn failure_kind(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Io => "io",
        ErrorKind::Connection => "connection",
        ErrorKind::Credential => "credential",
        ErrorKind::HttpResponse { .. } => "http response",
        _ => "other",
    }
}

/// One `trace` line per HTTP attempt (`-vv`): method, host (with a port other than the
/// scheme's), path, status or the kind of transport failure, duration and attempt number.
/// Never a query string (a SAS), a header value (a token) or a body (a secret).
#[derive(Debug, Default)]
pub struct TracePolicy;

#[async_trait]
impl Policy for TracePolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if !tracing::enabled!(tracing::Level::TRACE) {
            return next[0].send(ctx, request, &next[1..]).await;
        }
        let started = Instant::now();
        let method = request.method();
        let url = request.url();
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = url.path().to_owned();
        let attempt = ctx.value::<Attempt>().map_or(0, |a| a.0);
        let result = next[0].send(ctx, request, &next[1..]).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(response) => tracing::trace!(
                %method,
                %host,
                %path,
                status = u16::from(response.status()),
                duration_ms,
                attempt,
                "http request"
            ),
            Err(error) => tracing::trace!(
                %method,
                %host,
                %path,
                error = failure_kind(error.kind()),
                duration_ms,
                attempt,
                "http request failed"
            ),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rest of a pipeline: counts what reaches it.
    #[derive(Debug, Default)]
    struct Sent(AtomicU64);

    #[async_trait]
    impl Policy for Sent {
        async fn send(
            &self,
            _ctx: &Context,
            _request: &mut Request,
            _next: &[Arc<dyn Policy>],
        ) -> PolicyResult {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(azure_core::Error::with_message(ErrorKind::Other, "sent"))
        }
    }

    #[tokio::test]
    async fn a_client_sends_only_to_its_own_scheme_host_and_port() {
        let endpoint = Url::parse("https://src.vault.azure.net/").unwrap();
        let policy = EndpointPolicy::new(&endpoint);
        let sent = Arc::new(Sent::default());
        let next: Vec<Arc<dyn Policy>> = vec![sent.clone()];
        // Key Vault's nextLink spells the default port out.
        for same in [
            "https://src.vault.azure.net/secrets?api-version=7.5",
            "https://SRC.vault.azure.net:443/secrets?$skiptoken=abc",
        ] {
            let mut request = Request::new(Url::parse(same).unwrap(), Method::Get);
            let error = policy
                .send(&Context::new(), &mut request, &next)
                .await
                .unwrap_err();
            assert_eq!(error.to_string(), "sent", "{same}");
        }
        for (other, host) in [
            (
                "https://other.vault.azure.net/secrets?$skiptoken=SECRETTOKEN",
                "https://other.vault.azure.net:443",
            ),
            (
                "https://src.vault.azure.net:8443/secrets?$skiptoken=SECRETTOKEN",
                "https://src.vault.azure.net:8443",
            ),
            (
                "http://src.vault.azure.net/secrets?$skiptoken=SECRETTOKEN",
                "http://src.vault.azure.net:80",
            ),
            (
                "https://acct.blob.core.windows.net/c?sig=SECRETTOKEN",
                "https://acct.blob.core.windows.net:443",
            ),
            (
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                "https://login.microsoftonline.com:443",
            ),
        ] {
            let mut request = Request::new(Url::parse(other).unwrap(), Method::Get);
            let error = AzureError::from(
                policy
                    .send(&Context::new(), &mut request, &next)
                    .await
                    .unwrap_err(),
            );
            assert_eq!(error.kind, AzureErrorKind::Refused, "{other}");
            let shown = error.to_string();
            assert!(shown.contains(host), "{shown}");
            assert!(!shown.contains("SECRETTOKEN"), "{shown}");
        }
        assert_eq!(
            sent.0.load(Ordering::SeqCst),
            2,
            "only the same origin was sent"
        );
    }

    #[test]
    fn only_key_vault_writes_that_add_a_version_are_left_unsent() {
        let vault = "v.vault.azure.net";
        assert!(adds_key_vault_version(Method::Put, vault, "/secrets/a"));
        assert!(adds_key_vault_version(
            Method::Put,
            "v.vault.azure.cn",
            "/keys/a"
        ));
        assert!(adds_key_vault_version(
            Method::Post,
            vault,
            "/keys/a/create"
        ));
        assert!(adds_key_vault_version(
            Method::Post,
            vault,
            "/certificates/a/import"
        ));
        assert!(adds_key_vault_version(
            Method::Post,
            vault,
            "/certificates/a/create"
        ));
        assert!(adds_key_vault_version(
            Method::Post,
            vault,
            "/secrets/restore"
        ));
        // Idempotent writes and reads are resent as before.
        assert!(!adds_key_vault_version(Method::Patch, vault, "/secrets/a"));
        assert!(!adds_key_vault_version(Method::Delete, vault, "/secrets/a"));
        assert!(!adds_key_vault_version(
            Method::Post,
            vault,
            "/deletedsecrets/a/recover"
        ));
        assert!(!adds_key_vault_version(Method::Get, vault, "/secrets/a"));
        // Storage uploads overwrite: resending them is safe.
        assert!(!adds_key_vault_version(
            Method::Put,
            "a.blob.core.windows.net",
            "/c/b"
        ));
    }

    #[test]
    fn only_declared_posts_count_as_reads() {
        assert!(is_read(Method::Get, false));
        assert!(is_read(Method::Head, false));
        assert!(is_read(Method::Post, true));
        // A list action's path alone no longer makes it a read: its caller says so.
        assert!(!is_read(Method::Post, false));
        for method in [Method::Put, Method::Patch, Method::Delete] {
            assert!(!is_read(method, true), "{method}");
        }
    }
}
