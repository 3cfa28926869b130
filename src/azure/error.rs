//! Errors from Azure, classified by what the caller should do about them.
//!
//! An [`AzureError`] keeps what helps a person act (status, service error code, inner code, the
//! service's message, `x-ms-request-id`) and never a request or response body: bodies can hold
//! secret values. The service's `message` is kept because it names what went wrong, but every
//! text that comes from a server passes through [`sanitize_server_text`] first: a proxy or a
//! service may echo the request's bearer token, a SAS signature or a key back in its message.

use std::fmt;

use azure_core::error::ErrorKind;
use serde::Deserialize;

/// What went wrong, in the terms a caller branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AzureErrorKind {
    /// The service answered with a non-success status.
    Http,
    /// The request never got an answer (connection refused or reset, timeout, TLS).
    Transport,
    /// No token could be obtained.
    Credential,
    /// atg itself refused to send the request (host outside the cloud, write during dry-run).
    Refused,
    /// Anything else (an answer atg could not understand, a client-side validation).
    Other,
}

#[derive(Clone, Debug)]
pub struct AzureError {
    pub kind: AzureErrorKind,
    pub status: Option<u16>,
    /// The service's error code, e.g. `Conflict`, `Forbidden`, `SecretNotFound`.
    pub code: Option<String>,
    /// The innermost error code, e.g. `ObjectIsDeletedButRecoverable`, `ForbiddenByRbac`.
    pub inner_code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
    // Cosmos and a few other ARM providers answer unwrapped.
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    #[serde(rename = "innererror", alias = "innerError")]
    inner: Option<Box<ErrorBody>>,
}

impl AzureError {
    pub fn new(kind: AzureErrorKind, message: impl Into<String>) -> Self {
        AzureError {
            kind,
            status: None,
            code: None,
            inner_code: None,
            message: message.into(),
            request_id: None,
        }
    }

    /// Builds an error from a status, headers and an error body as Azure sends them.
    pub fn from_response(status: u16, request_id: Option<String>, body: &[u8]) -> Self {
        let mut error = AzureError::new(AzureErrorKind::Http, status_text(status));
        error.status = Some(status);
        error.request_id = request_id.map(|id| sanitize_server_text(&id));
        if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
            let clean = |text: Option<String>| text.map(|t| sanitize_server_text(&t));
            if let Some(body) = envelope.error {
                error.code = clean(body.code);
                if let Some(message) = clean(body.message) {
                    error.message = message;
                }
                let mut inner = body.inner;
                while let Some(next) = inner {
                    if next.code.is_some() {
                        error.inner_code = clean(next.code);
                    }
                    inner = next.inner;
                }
            } else {
                error.code = clean(envelope.code);
                if let Some(message) = clean(envelope.message) {
                    error.message = message;
                }
            }
        }
        error
    }

    /// Sets the service's error code and the first line of its message (services that go on
    /// with request id and time), both sanitized: for answers that are not Azure's JSON error.
    #[must_use]
    pub fn with_service_text(mut self, code: Option<String>, message: Option<&str>) -> Self {
        self.code = code.map(|code| sanitize_server_text(&code));
        let first = message
            .and_then(|m| m.lines().next())
            .unwrap_or_default()
            .trim();
        if !first.is_empty() {
            self.message = sanitize_server_text(first);
        }
        self
    }

    pub fn status(&self) -> Option<u16> {
        self.status
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    pub fn is_forbidden(&self) -> bool {
        matches!(self.status, Some(401 | 403))
    }

    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            AzureErrorKind::Transport => true,
            AzureErrorKind::Http => matches!(self.status, Some(408 | 429 | 500 | 502 | 503 | 504)),
            _ => false,
        }
    }

    /// Whether the code or inner code names this condition (case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        [&self.code, &self.inner_code]
            .into_iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case(code))
    }
}

fn status_text(status: u16) -> String {
    let reason = match status {
        400 => "bad request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        409 => "conflict",
        429 => "too many requests",
        500 => "internal server error",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "unexpected status",
    };
    format!("{reason} ({status})")
}

impl fmt::Display for AzureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.code) {
            (Some(status), Some(code)) => write!(f, "{status} {code}: {}", self.message)?,
            (Some(status), None) => write!(f, "{status}: {}", self.message)?,
            _ => f.write_str(&self.message)?,
        }
        if let Some(inner) = &self.inner_code {
            write!(f, " ({inner})")?;
        }
        if let Some(request_id) = &self.request_id {
            write!(f, " [x-ms-request-id {request_id}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for AzureError {}

impl From<azure_core::Error> for AzureError {
    fn from(error: azure_core::Error) -> Self {
        match error.kind() {
            ErrorKind::HttpResponse {
                status,
                raw_response,
                error_code,
            } => {
                let status = u16::from(*status);
                if let Some(response) = raw_response {
                    let request_id = response
                        .headers()
                        .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                            "x-ms-request-id",
                        ))
                        .map(str::to_owned);
                    AzureError::from_response(status, request_id, response.body())
                } else {
                    let mut azure = AzureError::from_response(status, None, b"");
                    azure.code.clone_from(error_code);
                    azure
                }
            }
            ErrorKind::Io | ErrorKind::Connection => {
                AzureError::new(AzureErrorKind::Transport, describe_chain(&error))
            }
            ErrorKind::Credential => {
                AzureError::new(AzureErrorKind::Credential, describe_chain(&error))
            }
            _ => {
                // Our own policies refuse requests with a typed inner error; keep that kind.
                if let Some(refusal) = find_refusal(&error) {
                    return refusal;
                }
                AzureError::new(AzureErrorKind::Other, describe_chain(&error))
            }
        }
    }
}

fn find_refusal(error: &azure_core::Error) -> Option<AzureError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(azure) = current.downcast_ref::<AzureError>() {
            return Some(azure.clone());
        }
        source = current.source();
    }
    None
}

/// The messages of an error and its sources, joined. `azure_core`'s errors carry no bodies, and
/// reqwest's errors carry URLs without the query only when we ask, so each part is checked.
fn describe_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        let text = sanitize_server_text(&current.to_string());
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = current.source();
    }
    parts.join(": ")
}

/// Names whose value is a secret wherever they appear as `name=value` or `name: value`
/// (compared case-insensitively, at a word start).
/// HTTP authorization schemes whose credential follows a space (`SharedKey acct:signature`).
const AUTH_SCHEMES: &[&str] = &["bearer ", "sharedkeylite ", "sharedkey ", "basic "];

const SECRET_NAMES: &[&str] = &[
    "authorization",
    "sig",
    "accountkey",
    "sharedaccesskey",
    "sharedaccesssignature",
    "client_secret",
    "clientsecret",
    "client_assertion",
    "device_code",
    "access_token",
    "refresh_token",
    "password",
    "pwd",
];

const REDACTED: &str = "<redacted>";

/// A text that came from a server (an error message, code or description, a transport error),
/// fit to show: URL query strings, `Bearer` tokens, JWTs and the values of secret-looking
/// `name=value` pairs (SAS `sig`, `AccountKey`, `SharedAccessKey`, `client_secret`,
/// `password`, ...) are replaced by `<redacted>`; the rest is kept.
pub fn sanitize_server_text(text: &str) -> String {
    let text = strip_query_strings(text);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let at_word_start = i == 0 || !is_word_byte(bytes[i - 1]);
        if at_word_start {
            if let Some(value_start) = secret_value_start(bytes, i) {
                out.push_str(&text[i..value_start]);
                out.push_str(REDACTED);
                i = value_end(bytes, value_start);
                continue;
            }
            if starts_with_ignore_case(&bytes[i..], b"eyj") {
                let end = value_end(bytes, i);
                if end - i >= 16 {
                    out.push_str(REDACTED);
                    i = end;
                    continue;
                }
            }
        }
        let ch = text[i..].chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack[..needle.len()].eq_ignore_ascii_case(needle)
}

/// Where the secret value starts when a secret name (or `Bearer `) starts at `i`.
fn secret_value_start(bytes: &[u8], i: usize) -> Option<usize> {
    let rest = &bytes[i..];
    if let Some(scheme) = AUTH_SCHEMES
        .iter()
        .find(|scheme| starts_with_ignore_case(rest, scheme.as_bytes()))
    {
        let mut start = i + scheme.len();
        while bytes.get(start) == Some(&b' ') {
            start += 1;
        }
        // "Bearer token expired" is prose; a token has more than lowercase letters.
        let word = &bytes[start..value_end(bytes, start)];
        return (!word.is_empty() && !word.iter().all(u8::is_ascii_lowercase)).then_some(start);
    }
    let name = SECRET_NAMES
        .iter()
        .find(|name| starts_with_ignore_case(rest, name.as_bytes()))?;
    let mut j = i + name.len();
    let skip = |j: &mut usize, set: &[u8]| {
        while bytes.get(*j).is_some_and(|b| set.contains(b)) {
            *j += 1;
        }
    };
    skip(&mut j, b"\"' ");
    if !matches!(bytes.get(j), Some(b'=' | b':')) {
        return None;
    }
    j += 1;
    skip(&mut j, b"\"' ");
    // `Authorization: Bearer …`: the scheme's own rule takes the credential after it.
    let scheme_follows = AUTH_SCHEMES
        .iter()
        .any(|scheme| starts_with_ignore_case(&bytes[j..], scheme.as_bytes()));
    (!scheme_follows).then_some(j)
}

/// The end of a value starting at `start`: the next delimiter of URLs, connection strings,
/// JSON or prose.
fn value_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|b| b.is_ascii_whitespace() || b"&;\"',)<>}]".contains(b))
        .map_or(bytes.len(), |offset| start + offset)
}

/// Removes `?query` from any URL inside a message (a SAS token lives there).
pub fn strip_query_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    for ch in text.chars() {
        if in_query {
            if ch.is_whitespace() || ch == ')' || ch == '"' || ch == '\'' {
                in_query = false;
                out.push(ch);
            }
            continue;
        }
        if ch == '?' && out.contains("://") {
            in_query = true;
            out.push_str("?<redacted>");
            continue;
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_vault_conflict_keeps_the_inner_code() {
        let body = br#"{"error":{"code":"Conflict","message":"Secret s1 is currently in a deleted but recoverable state","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}"#;
        let error = AzureError::from_response(409, Some("rid-1".into()), body);
        assert!(error.has_code("ObjectIsDeletedButRecoverable"));
        assert!(error.has_code("conflict"));
        assert!(!error.is_retryable());
        let shown = error.to_string();
        assert!(
            shown.contains("409 Conflict") && shown.contains("rid-1"),
            "{shown}"
        );
    }

    #[test]
    fn retry_classification_follows_the_status() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(
                AzureError::from_response(status, None, b"").is_retryable(),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 412] {
            assert!(
                !AzureError::from_response(status, None, b"").is_retryable(),
                "{status}"
            );
        }
        assert!(AzureError::new(AzureErrorKind::Transport, "reset").is_retryable());
        assert!(!AzureError::new(AzureErrorKind::Refused, "dry run").is_retryable());
    }

    #[test]
    fn unwrapped_arm_errors_are_understood() {
        let error =
            AzureError::from_response(404, None, br#"{"code":"NotFound","message":"gone"}"#);
        assert_eq!(error.code.as_deref(), Some("NotFound"));
        assert_eq!(error.message, "gone");
    }

    #[test]
    fn server_messages_lose_tokens_signatures_keys_and_passwords() {
        let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwcyJ9.c2lnbmF0dXJl";
        let message = format!(
            "Caller is not authorized. Authorization: Bearer {jwt}; token {jwt}; \
             copy source https://a.blob.core.windows.net/c/b?sv=2024&sig=SIGVALUE; \
             sig=BARESIG&se=1 DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=KEYVALUE==;\
             Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=SAKVALUE= \
             client_secret=CSVALUE&grant_type=x {{\"password\": \"PWVALUE\"}} Server=s;Password=PW2;"
        );
        let body = serde_json::json!({"error": {"code": "Forbidden", "message": message}});
        let error = AzureError::from_response(403, None, body.to_string().as_bytes());
        let shown = error.to_string();
        for secret in [
            "eyJ0eXAi", "SIGVALUE", "BARESIG", "KEYVALUE", "SAKVALUE", "CSVALUE", "PWVALUE", "PW2",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "Caller is not authorized",
            "AccountName=acct",
            "SharedAccessKeyName=k",
            "grant_type=x",
            "Server=s",
            "403 Forbidden",
        ] {
            assert!(shown.contains(kept), "{kept} missing from {shown}");
        }
        assert_eq!(
            sanitize_server_text("Bearer token expired; signature mismatch"),
            "Bearer token expired; signature mismatch"
        );
    }

    #[test]
    fn every_authorization_scheme_and_camel_case_secret_is_redacted() {
        let text = concat!(
            "header was Authorization: SharedKey acct:S1gnatureAAAA==; ",
            "then authorization=Basic dXNlcjpwYXNzd29yZA==; ",
            "then Authorization: 0paqueCredential42; ",
            "then Authorization: Bearer AbC.dEf-123; ",
            r#"{"clientSecret": "cs-value-9"}; device_code=DC-CODE-7"#,
        );
        let shown = sanitize_server_text(text);
        for secret in [
            "S1gnature",
            "dXNlcjpwYXNzd29yZA",
            "0paqueCredential42",
            "AbC.dEf",
            "cs-value-9",
            "DC-CODE-7",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
        assert!(
            shown.starts_with("header was Authorization: SharedKey <redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn query_strings_are_stripped_from_messages() {
        let text = "error sending request for url (https://a.blob.core.windows.net/c/b?sig=SECRET&sv=1): reset";
        let cleaned = strip_query_strings(text);
        assert!(!cleaned.contains("SECRET"), "{cleaned}");
        assert!(cleaned.ends_with("): reset"), "{cleaned}");
    }
}
