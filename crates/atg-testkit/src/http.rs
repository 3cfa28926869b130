//! The request and response values every handler works with: a fully buffered request with the host
//! normalised and the query parsed, and a small response builder. Handlers never see hyper types, so
//! they stay plain functions over data.

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

/// A buffered request. The body is kept only for the handler; it is never logged.
pub(crate) struct ApiRequest {
    pub method: Method,
    /// Lowercased `Host` header without port.
    pub host: String,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiRequest {
    /// First query parameter whose name matches case-insensitively (`maxresults` vs `maxResults`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The bearer token of the `Authorization` header, if any.
    pub fn bearer(&self) -> Option<&str> {
        let value = self
            .headers
            .get(hyper::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
            .filter(|token| !token.is_empty())
    }

    /// The body as JSON; an empty body reads as an empty object.
    pub fn json_body(&self) -> Result<Value, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&self.body).map_err(|error| format!("invalid json body: {error}"))
    }

    /// Whether the body is a JSON object with a `value` member (recorded as a boolean only).
    pub fn body_has_value(&self) -> bool {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .is_some_and(|body| body.get("value").is_some())
    }

    /// Path segments without empty ones, so `/secrets/a/` and `/secrets/a` read the same.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// A response under construction.
pub(crate) struct ApiResponse {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl ApiResponse {
    pub fn json(status: StatusCode, value: &Value) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".to_owned(),
                "application/json; charset=utf-8".to_owned(),
            )],
            body: Bytes::from(value.to_string()),
        }
    }

    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The `{"error":{"code","message"[,"innererror":{"code"}]}}` body Key Vault and ARM use.
    pub fn error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Self {
        let mut error = json!({ "code": code, "message": message });
        if let Some(inner) = inner {
            error["innererror"] = json!({ "code": inner });
        }
        Self::json(status, &json!({ "error": error }))
    }
}

/// Up to `max` of `items` (sorted by key) whose key sorts after `after`, and the last key
/// served when more follow: the continuation both Key Vault's and ARM's `$skiptoken` carry, so
/// deletions between pages neither skip nor repeat items.
pub(crate) fn take_page(
    items: Vec<(String, Value)>,
    after: Option<&str>,
    max: usize,
) -> (Vec<Value>, Option<String>) {
    let mut remaining = items
        .into_iter()
        .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
        .peekable();
    let mut values = Vec::new();
    let mut last_key = None;
    while values.len() < max {
        let Some((key, value)) = remaining.next() else {
            break;
        };
        values.push(value);
        last_key = Some(key);
    }
    let continuation = remaining.peek().and(last_key);
    (values, continuation)
}

/// Seconds since the Unix epoch, the unit Key Vault uses for every date.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A random GUID-shaped id for request ids and operation ids.
pub(crate) fn new_guid() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A Key Vault object version: 32 lowercase hex digits.
pub(crate) fn new_version() -> String {
    format!("{:032x}", rand::random::<u128>())
}
