//! Types that hold secret material (secret values, keys, tokens, SAS, connection strings).
//!
//! Their `Debug` prints a fixed marker and they have no `Display`, so a secret cannot reach a log,
//! a report or an error message by formatting. Getting at the value is an explicit `expose()` call,
//! which is easy to audit with grep.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// A secret string. Zeroed when dropped.
#[derive(Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    /// The secret itself. Call only to hand it to the service that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

impl Drop for Sensitive {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A URL fit for logs and reports: scheme, host, port and path, never the query (which may hold
/// a SAS token) nor user information.
pub fn redact_url(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push(':');
        shown.push_str(&port.to_string());
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?<redacted>");
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Sensitive::new("hunter2-sentinel");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "hunter2-sentinel");
    }

    #[test]
    fn urls_lose_their_query_and_credentials() {
        let url = url::Url::parse("https://user:pw@acct.blob.core.windows.net/c/b?sv=2024&sig=abc")
            .unwrap();
        let shown = redact_url(&url);
        assert_eq!(shown, "https://acct.blob.core.windows.net/c/b?<redacted>");
        assert!(!shown.contains("sig") && !shown.contains("pw"));
    }
}
