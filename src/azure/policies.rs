//! Pipeline policies every atg client carries, in this order (all per call, before
//! authentication, so they see each request once with its final URL):
//!
//! 1. [`HostAllowListPolicy`]: a request may only go to a host of the selected cloud. A bearer
//!    token is attached after this policy, so a `nextLink` or inventory URL pointing elsewhere is
//!    refused before any token is sent.
//! 2. [`WriteGuardPolicy`]: the one choke point for writes. Source clients never write; target
//!    clients write only outside dry-run. A plugin that forgot to check gets an error, not a write.
//! 3. [`RetryPolicy`]: retries throttling, busy and transport faults with capped exponential
//!    backoff, honouring `Retry-After`; a 429 pauses every request to that host, not just one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Method, Request};
use rand::Rng;
use serde::Serialize;

use super::cloud::Cloud;
use super::error::{AzureError, AzureErrorKind};

/// The error a policy answers with when atg itself refuses to send a request.
pub(crate) fn refuse(message: String) -> azure_core::Error {
    let error = AzureError::new(AzureErrorKind::Refused, message.clone());
    azure_core::Error::with_error(ErrorKind::Other, error, message)
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

#[derive(Debug)]
pub struct RetryPolicy {
    settings: RetrySettings,
    stats: Arc<RetryStats>,
    /// Per host: no request before this instant (set by a 429's Retry-After).
    paused_until: Mutex<HashMap<String, Instant>>,
}

impl RetryPolicy {
    pub fn new(settings: RetrySettings, stats: Arc<RetryStats>) -> Self {
        RetryPolicy {
            settings,
            stats,
            paused_until: Mutex::new(HashMap::new()),
        }
    }

    /// Exponential backoff with full jitter in the upper half: attempt 1 waits about
    /// `initial_delay`, doubling up to `max_delay`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let base = self
            .settings
            .initial_delay
            .saturating_mul(1 << exponent)
            .min(self.settings.max_delay);
        let jitter = rand::rng().random_range(0.5..=1.0);
        base.mul_f64(jitter)
    }

    fn pause_host(&self, host: &str, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut paused) = self.paused_until.lock() {
            let entry = paused.entry(host.to_owned()).or_insert(until);
            if *entry < until {
                *entry = until;
            }
        }
    }

    fn host_pause(&self, host: &str) -> Option<Duration> {
        let paused = self.paused_until.lock().ok()?;
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
            let result = next[0].send(ctx, &mut attempt_request, &next[1..]).await;
            let decision = match &result {
                Ok(response) => classify(Ok(u16::from(response.status()))),
                Err(error) => classify(Err(error.kind())),
            };
            if decision == RetryDecision::Done || attempt >= self.settings.max_retries {
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
                    self.stats.throttled.fetch_add(1, Ordering::Relaxed);
                    self.pause_host(&host, wait);
                }
                RetryDecision::ServerBusy => {
                    self.stats.server_busy.fetch_add(1, Ordering::Relaxed);
                }
                RetryDecision::Transport => {
                    self.stats.transport.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

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
