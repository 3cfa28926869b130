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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Request, Url};
use rand::Rng;
use serde::Serialize;

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

/// Requests that use POST but only read (ARM list actions; Storage's Get User Delegation Key,
/// which mints a signing key and changes nothing).
fn is_read(method: Method, path: &str, query: Option<&str>) -> bool {
    match method {
        Method::Get | Method::Head => true,
        Method::Post => {
            let path = path.trim_end_matches('/').to_ascii_lowercase();
            // ARM list actions only (a table or queue named `list` is not one of them).
            (path.starts_with("/subscriptions/")
                && path.contains("/providers/")
                && (path.ends_with("/listkeys")
                    || path.ends_with("/list")
                    || path.ends_with("/listvalue")))
                || (path.is_empty()
                    && query.is_some_and(|q| {
                        let q = q.to_ascii_lowercase();
                        q.split('&').any(|p| p == "comp=userdelegationkey")
                            && q.split('&').any(|p| p == "restype=service")
                    }))
        }
        _ => false,
    }
}

/// A Key Vault write that adds a version (set a secret, import a key, create or import a
/// certificate or key, restore). Resending one whose answer was lost would add a second version,
/// so only its 429s (which Key Vault never carries out) are resent here; the Key Vault plugin
/// reads the target back before writing again.
fn adds_key_vault_version(method: Method, host: &str, path: &str) -> bool {
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
            && !is_read(
                request.method(),
                request.url().path(),
                request.url().query(),
            )
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

/// Retry tuning. Defaults follow Key Vault's guidance (1, 2, 4, 8, 16 s) with jitter.
#[derive(Clone, Debug)]
pub struct RetrySettings {
    pub max_retries: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            max_retries: 8,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Retries counted over a run, reported in the summary.
#[derive(Debug, Default)]
pub struct RetryStats {
    pub throttled: AtomicU64,
    pub server_busy: AtomicU64,
    pub transport: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetryCounts {
    pub throttled: u64,
    pub server_busy: u64,
    pub transport: u64,
}

impl RetryStats {
    pub fn snapshot(&self) -> RetryCounts {
        RetryCounts {
            throttled: self.throttled.load(Ordering::Relaxed),
            server_busy: self.server_busy.load(Ordering::Relaxed),
            transport: self.transport.load(Ordering::Relaxed),
        }
    }
}

/// What to do with the outcome of one try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    Done,
    /// Throttled (429): every request to the host waits.
    Throttled,
    /// A transient server condition (408, 500, 502, 503, 504).
    ServerBusy,
    /// The request got no answer (reset, refused, timeout).
    Transport,
}

/// Classifies one try: `Ok(status)` for an answer, `Err(kind)` for a failure before one.
pub fn classify(outcome: Result<u16, &ErrorKind>) -> RetryDecision {
    match outcome {
        Ok(429) => RetryDecision::Throttled,
        Ok(408 | 500 | 502 | 503 | 504) => RetryDecision::ServerBusy,
        Err(ErrorKind::Io | ErrorKind::Connection) => RetryDecision::Transport,
        Ok(_) | Err(_) => RetryDecision::Done,
    }
}

/// The server's requested wait: `retry-after-ms`, `x-ms-retry-after-ms`, or `Retry-After`
/// (seconds or an HTTP date).
pub fn retry_after(headers: &Headers) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = headers
            .get_optional_str(&HeaderName::from_static(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = headers.get_optional_str(&HeaderName::from_static("retry-after"))?;
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = date - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Where a request that got no answer will not get one by waiting: the cause, said for a person.
/// An untrusted or mismatched certificate and a name that does not resolve stay so for the run;
/// a refused connection or a missing route does too when it is the sign-in host (a vault may be
/// restarting, the sign-in host does not come back in seconds). A temporary resolver failure
/// is lasting from the second attempt on.
pub fn lasting_connect_failure(
    error: &(dyn std::error::Error + 'static),
    host: &str,
    sign_in: bool,
    first_attempt: bool,
) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(rustls::Error::InvalidCertificate(cause)) =
            current.downcast_ref::<rustls::Error>()
        {
            return Some(format!(
                "the certificate of `{host}` is not trusted: {}\nhint: pass the CA that issued it with --ca-cert, or check --connect-to",
                certificate_cause(cause)
            ));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            let why = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => Some("refused the connection"),
                std::io::ErrorKind::NetworkUnreachable | std::io::ErrorKind::HostUnreachable => {
                    Some("cannot be reached (no route)")
                }
                _ => None,
            };
            if let Some(why) = why.filter(|_| sign_in) {
                return Some(format!(
                    "the sign-in host `{host}` {why}\nhint: check that this machine can reach it (proxy, firewall, --connect-to)"
                ));
            }
        }
        let text = current.to_string();
        // EAI_AGAIN ("Temporary failure in name resolution") may be a resolver hiccup: it
        // counts as lasting only when it comes again on the retry.
        let temporary = text.contains("Temporary failure") || text.contains("try again");
        if (text.contains("dns error") || text.contains("failed to lookup address"))
            && !(temporary && first_attempt)
        {
            return Some(format!(
                "the host name `{host}` could not be resolved\nhint: check the name, this machine's DNS, or --connect-to"
            ));
        }
        // io::Error's own source() skips the error it wraps (TLS errors come wrapped twice).
        source = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

fn certificate_cause(cause: &rustls::CertificateError) -> String {
    use rustls::CertificateError as Cause;
    match cause {
        Cause::UnknownIssuer => "unknown issuer".into(),
        // A CA of the same name as a trusted one, but another key.
        Cause::BadSignature => "its signature is not from a trusted CA".into(),
        Cause::Expired | Cause::ExpiredContext { .. } => "it has expired".into(),
        Cause::NotValidYet | Cause::NotValidYetContext { .. } => "it is not valid yet".into(),
        Cause::NotValidForName => "it is not valid for this name".into(),
        Cause::Revoked => "it has been revoked".into(),
        other => other.to_string(),
    }
}

/// The attempt number of a request (0 for the first try), set by [`RetryPolicy`] for the
/// policies after it.
#[derive(Clone, Copy, Debug)]
pub struct Attempt(pub u32);

/// The retry state of a run (settings, counters, per-host pauses), shared by every client.
#[derive(Debug)]
struct RetryState {
    settings: RetrySettings,
    stats: Arc<RetryStats>,
    /// Per host: no request before this instant (set by a 429's Retry-After).
    paused_until: Mutex<HashMap<String, Instant>>,
}

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    state: Arc<RetryState>,
    /// Token requests: a refused connection is not retried.
    sign_in: bool,
}

impl RetryPolicy {
    pub fn new(settings: RetrySettings, stats: Arc<RetryStats>) -> Self {
        RetryPolicy {
            state: Arc::new(RetryState {
                settings,
                stats,
                paused_until: Mutex::new(HashMap::new()),
            }),
            sign_in: false,
        }
    }

    /// The same shared state, for the pipelines of token requests.
    #[must_use]
    pub fn for_sign_in(&self) -> Self {
        RetryPolicy {
            state: self.state.clone(),
            sign_in: true,
        }
    }

    /// Exponential backoff with full jitter in the upper half: attempt 1 waits about
    /// `initial_delay`, doubling up to `max_delay`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let settings = &self.state.settings;
        let base = settings
            .initial_delay
            .saturating_mul(1 << exponent)
            .min(settings.max_delay);
        let jitter = rand::rng().random_range(0.5..=1.0);
        base.mul_f64(jitter)
    }

    fn pause_host(&self, host: &str, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut paused) = self.state.paused_until.lock() {
            let entry = paused.entry(host.to_owned()).or_insert(until);
            if *entry < until {
                *entry = until;
            }
        }
    }

    fn host_pause(&self, host: &str) -> Option<Duration> {
        let paused = self.state.paused_until.lock().ok()?;
        let until = paused.get(host)?;
        until.checked_duration_since(Instant::now())
    }
}

/// In a request's [`Context`]: send it once, never retried here. For a request that is not
/// idempotent (Put Message): when its answer is lost it may have taken effect, and only its
/// caller can look before sending it again.
#[derive(Clone, Copy, Debug)]
pub struct SendOnce;

#[async_trait]
impl Policy for RetryPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if ctx.value::<SendOnce>().is_some() {
            return next[0].send(ctx, request, &next[1..]).await;
        }
        let host = request.url().host_str().unwrap_or_default().to_owned();
        let stats = &self.state.stats;
        let mut attempt = 0u32;
        loop {
            if let Some(wait) = self.host_pause(&host) {
                tokio::time::sleep(wait).await;
            }
            // Each try gets its own copy: policies after this one (Key Vault's challenge policy
            // strips the body of its first, unauthenticated request) may change the request, and
            // a retry must send the original.
            let mut attempt_request = request.clone();
            if attempt > 0 {
                attempt_request.body_mut().reset().await?;
            }
            let attempt_ctx = ctx.to_borrowed().with_value(Attempt(attempt));
            let result = next[0]
                .send(&attempt_ctx, &mut attempt_request, &next[1..])
                .await;
            let decision = match &result {
                Ok(response) => classify(Ok(u16::from(response.status()))),
                Err(error) => {
                    if let Some(cause) =
                        lasting_connect_failure(error, &host, self.sign_in, attempt == 0)
                    {
                        return Err(azure_core::Error::with_message(
                            ErrorKind::Connection,
                            cause,
                        ));
                    }
                    classify(Err(error.kind()))
                }
            };
            if decision == RetryDecision::Done || attempt >= self.state.settings.max_retries {
                return result;
            }
            if decision != RetryDecision::Throttled
                && adds_key_vault_version(request.method(), &host, request.url().path())
            {
                return result;
            }
            attempt += 1;
            let requested = match &result {
                Ok(response) => retry_after(response.headers()),
                Err(_) => None,
            };
            let wait = requested.map_or_else(
                || self.backoff(attempt),
                |r| r.min(Duration::from_secs(120)),
            );
            match decision {
                RetryDecision::Throttled => {
                    stats.throttled.fetch_add(1, Ordering::Relaxed);
                    self.pause_host(&host, wait);
                }
                RetryDecision::ServerBusy => {
                    stats.server_busy.fetch_add(1, Ordering::Relaxed);
                }
                RetryDecision::Transport => {
                    stats.transport.fetch_add(1, Ordering::Relaxed);
                }
                RetryDecision::Done => {}
            }
            tracing::debug!(
                host = %host,
                attempt,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                reason = ?decision,
                "retrying request"
            );
            tokio::time::sleep(wait).await;
        }
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
    fn certificate_dns_and_sign_in_refusals_are_lasting() {
        // As the TLS connector reports it: an io::Error inside an io::Error.
        let untrusted = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ));
        let error = azure_core::Error::with_error(ErrorKind::Io, untrusted, "send");
        let cause = lasting_connect_failure(&error, "v.vault.azure.net", false, false).unwrap();
        assert!(
            cause.contains("`v.vault.azure.net` is not trusted: unknown issuer")
                && cause.contains("hint: pass the CA that issued it with --ca-cert"),
            "{cause}"
        );
        let refused = || {
            azure_core::Error::with_error(
                ErrorKind::Io,
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                "send",
            )
        };
        assert!(
            lasting_connect_failure(&refused(), "login.microsoftonline.com", true, false)
                .is_some_and(|c| c.contains("refused the connection"))
        );
        // A vault that refuses may be restarting: retried.
        assert!(lasting_connect_failure(&refused(), "v.vault.azure.net", false, false).is_none());
        let no_route = azure_core::Error::with_error(
            ErrorKind::Io,
            std::io::Error::from(std::io::ErrorKind::NetworkUnreachable),
            "send",
        );
        assert!(
            lasting_connect_failure(&no_route, "login.microsoftonline.com", true, false)
                .is_some_and(|c| c.contains("cannot be reached"))
        );
        let dns = azure_core::Error::with_message(
            ErrorKind::Io,
            "client error (Connect): dns error: failed to lookup address information",
        );
        assert!(
            lasting_connect_failure(&dns, "nowhere.vault.azure.net", false, false)
                .is_some_and(|c| c.contains("could not be resolved"))
        );
        let hiccup = azure_core::Error::with_message(
            ErrorKind::Io,
            "dns error: failed to lookup address information: Temporary failure in name resolution",
        );
        assert!(lasting_connect_failure(&hiccup, "v.vault.azure.net", false, true).is_none());
        assert!(lasting_connect_failure(&hiccup, "v.vault.azure.net", false, false).is_some());
        let reset = azure_core::Error::with_error(
            ErrorKind::Io,
            std::io::Error::from(std::io::ErrorKind::ConnectionReset),
            "send",
        );
        assert!(lasting_connect_failure(&reset, "v.vault.azure.net", true, false).is_none());
    }

    #[test]
    fn throttling_busy_and_transport_faults_are_retried() {
        assert_eq!(classify(Ok(429)), RetryDecision::Throttled);
        for status in [408, 500, 502, 503, 504] {
            assert_eq!(classify(Ok(status)), RetryDecision::ServerBusy, "{status}");
        }
        assert_eq!(classify(Err(&ErrorKind::Io)), RetryDecision::Transport);
        assert_eq!(
            classify(Err(&ErrorKind::Connection)),
            RetryDecision::Transport
        );
    }

    #[test]
    fn client_errors_and_refusals_are_not_retried() {
        for status in [200, 201, 204, 400, 401, 403, 404, 409] {
            assert_eq!(classify(Ok(status)), RetryDecision::Done, "{status}");
        }
        assert_eq!(classify(Err(&ErrorKind::Credential)), RetryDecision::Done);
        assert_eq!(classify(Err(&ErrorKind::Other)), RetryDecision::Done);
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut headers = Headers::new();
        headers.insert("retry-after", "3");
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let mut headers = Headers::new();
        headers.insert("x-ms-retry-after-ms", "250");
        headers.insert("retry-after", "3");
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut headers = Headers::new();
        headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        assert_eq!(retry_after(&Headers::new()), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::new(
            RetrySettings {
                max_retries: 5,
                initial_delay: Duration::from_millis(100),
                max_delay: Duration::from_millis(400),
            },
            Arc::default(),
        );
        assert!(policy.backoff(1) <= Duration::from_millis(100));
        assert!(policy.backoff(1) >= Duration::from_millis(50));
        assert!(policy.backoff(3) >= Duration::from_millis(200));
        assert!(policy.backoff(30) <= Duration::from_millis(400));
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
    fn post_list_actions_count_as_reads() {
        assert!(is_read(Method::Get, "/secrets/a", None));
        assert!(is_read(
            Method::Post,
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a/listKeys",
            None
        ));
        assert!(!is_read(Method::Post, "/keys/k/create", None));
        // An insert into a table or queue that happens to be named like a list action.
        assert!(!is_read(Method::Post, "/list", None));
        assert!(!is_read(Method::Post, "/listkeys", None));
        assert!(!is_read(Method::Put, "/secrets/a", None));
        assert!(!is_read(Method::Delete, "/secrets/a", None));
        assert!(!is_read(Method::Patch, "/secrets/a/", None));
        assert!(is_read(
            Method::Post,
            "/",
            Some("restype=service&comp=userdelegationkey")
        ));
        assert!(!is_read(Method::Post, "/$batch", None));
        assert!(!is_read(
            Method::Post,
            "/Tables",
            Some("comp=userdelegationkey")
        ));
    }
}
