//! Retries: throttling, busy and transport faults with capped exponential backoff and jitter,
//! `Retry-After` honoured, a 429 pausing its whole host; lasting connect failures (untrusted
//! certificates, names that do not resolve, a sign-in host that refuses) fail at once with their
//! cause. Key Vault writes that add a version are never resent after a lost answer (the plugin
//! reads the target back instead), nor is a request marked [`SendOnce`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use rand::Rng;
use serde::Serialize;

use super::adds_key_vault_version;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
