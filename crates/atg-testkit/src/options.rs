//! Runtime knobs of the emulator: latency, throttling, fault injection (before a request takes
//! effect, and lost answers after a write took effect), authorization and identity.
//!
//! Owns only plain data; the server reads a snapshot of it for every request, so changes made through
//! [`crate::Emulator::set_options`] or `PUT /_emulator/config` apply to the next request.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// Tenant every vault belongs to unless [`EmulatorOptions::vault_tenants`] says otherwise.
pub const DEFAULT_TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000a7f0";

/// Everything that shapes the emulator's answers. `Default` gives a permissive, fast emulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulatorOptions {
    /// Port to bind on 127.0.0.1; `None` picks an ephemeral port. Read only at start.
    pub port: Option<u16>,
    /// Added delay before every data-plane or token request is answered, in milliseconds.
    pub latency_ms: u64,
    /// Per-vault sliding-window limit; `None` disables throttling.
    pub throttle: Option<ThrottleOptions>,
    /// Fault injection on data-plane (Key Vault and ARM) requests; `None` disables it.
    pub faults: Option<FaultOptions>,
    /// Which requests `faults` may hit: `METHOD` or `METHOD collection` (see
    /// [`operation_matches`]), e.g. `PUT`, `POST list`; empty means every request.
    pub fault_operations: Vec<String>,
    /// Key Vault writes that take effect but whose answer is lost; `None` disables it.
    pub lost_answers: Option<LostAnswerOptions>,
    /// ARM writes that take effect but whose answer is lost (the collection of an ARM request
    /// is its action or last resource type, e.g. `PUT config`, `POST list`, `PUT sites`);
    /// `None` disables it. Apart from `lost_answers`, so Key Vault scenarios keep their meaning.
    pub arm_lost_answers: Option<LostAnswerOptions>,
    /// Service Bus and Event Hubs: each write (PUT, DELETE) of a child of a topic or an event
    /// hub (subscription, rule, consumer group, authorization rule) is first refused this many
    /// times with 409 `Conflict` `SubCode=40901`, before it takes effect: what Azure answers
    /// while another write to a related entity is in progress. 0 refuses none.
    pub messaging_conflicts: u32,
    /// Vault names (lowercase, without DNS suffix) whose every authorized request answers 403.
    pub forbidden_vaults: BTreeSet<String>,
    /// Key Vault paths (lowercase, whole, e.g. `/deletedsecrets`: the listing of deleted secrets)
    /// whose every authorized request answers 403, as for an identity that lacks that permission.
    pub forbidden_paths: BTreeSet<String>,
    /// ARM resource ids (or any scope above resources: a resource group) under which every
    /// request answers 403 `AuthorizationFailed`, as for an identity without a role there.
    pub forbidden_arm_scopes: BTreeSet<String>,
    /// Tenant of every vault not listed in `vault_tenants`.
    pub default_tenant: String,
    /// Vault name (lowercase) -> tenant id, for cross-tenant scenarios.
    pub vault_tenants: BTreeMap<String, String>,
    /// Service principals the token endpoint accepts; empty means "accept anyone".
    pub principals: Vec<Principal>,
    /// A hostile or broken service: every follow-up URL it answers with (a body's `nextLink`,
    /// an `Azure-AsyncOperation` or `Location` header) gets this origin (`scheme://host:port`)
    /// instead of its own, path and query kept. `None` leaves them.
    pub follow_up_origin: Option<String>,
    /// A service that echoes credentials: appended to the `error.message` of every JSON error
    /// answer (status 400 and above), with `{authorization}` replaced by the request's
    /// `Authorization` header. `None` leaves messages as they are.
    pub error_message_echo: Option<String>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            port: None,
            latency_ms: 0,
            throttle: None,
            faults: None,
            fault_operations: Vec::new(),
            lost_answers: None,
            arm_lost_answers: None,
            messaging_conflicts: 0,
            forbidden_vaults: BTreeSet::new(),
            forbidden_paths: BTreeSet::new(),
            forbidden_arm_scopes: BTreeSet::new(),
            default_tenant: DEFAULT_TENANT_ID.to_owned(),
            vault_tenants: BTreeMap::new(),
            principals: Vec::new(),
            follow_up_origin: None,
            error_message_echo: None,
        }
    }
}

impl EmulatorOptions {
    /// The tenant a vault (name without DNS suffix) belongs to.
    #[must_use]
    pub fn tenant_of(&self, vault: &str) -> &str {
        self.vault_tenants
            .get(&vault.to_ascii_lowercase())
            .map_or(self.default_tenant.as_str(), String::as_str)
    }
}

/// At most `limit` transactions per vault in any `window_ms` window (Key Vault: 4,000 per 10 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleOptions {
    pub limit: u32,
    pub window_ms: u64,
}

/// Inject faults into a fraction of data-plane requests, before they have any effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultOptions {
    /// Fraction of requests to fault, 0.0..=1.0.
    pub rate: f64,
    /// Kinds to choose from uniformly; empty means all kinds.
    #[serde(default)]
    pub kinds: Vec<FaultKind>,
    /// Seed of the deterministic random generator that picks faulted requests.
    #[serde(default)]
    pub seed: u64,
}

/// What an injected fault looks like to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// 429 with `Retry-After: 1`.
    #[serde(rename = "429")]
    TooManyRequests,
    /// 503 Service Unavailable.
    #[serde(rename = "503")]
    ServiceUnavailable,
    /// The TCP connection is closed (RST) without any response.
    #[serde(rename = "reset")]
    ConnectionReset,
}

impl FaultKind {
    pub const ALL: [FaultKind; 3] = [
        FaultKind::TooManyRequests,
        FaultKind::ServiceUnavailable,
        FaultKind::ConnectionReset,
    ];

    /// Parses `429`, `503` or `reset`.
    ///
    /// # Errors
    /// Returns a message naming the accepted spellings.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "429" => Ok(Self::TooManyRequests),
            "503" => Ok(Self::ServiceUnavailable),
            "reset" => Ok(Self::ConnectionReset),
            other => Err(format!(
                "unknown fault kind `{other}`, expected 429, 503 or reset"
            )),
        }
    }
}

/// Carry out a fraction of Key Vault writes (PUT, PATCH, POST, DELETE that succeed), then lose
/// the answer: what a client sees when a connection drops or a gateway fails after the vault
/// acted. A retry then meets the write already done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LostAnswerOptions {
    /// Fraction of matching writes whose answer is lost, 0.0..=1.0.
    pub rate: f64,
    /// Kinds to choose from uniformly; empty means all kinds.
    #[serde(default)]
    pub kinds: Vec<LostAnswerKind>,
    /// Which writes: `METHOD` or `METHOD collection`, e.g. `PUT secrets`, `POST certificates`,
    /// `DELETE` (collection = first path segment, case-insensitive); empty means every write.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Seed of the deterministic random generator that picks the writes.
    #[serde(default)]
    pub seed: u64,
    /// For [`LostAnswerKind::Timeout`]: how long the answer is held before the connection closes.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    2_000
}

impl LostAnswerOptions {
    /// Whether a write with this method to this first path segment is subject to lost answers.
    #[must_use]
    pub fn covers(&self, method: &str, collection: &str) -> bool {
        let write = ["PUT", "PATCH", "POST", "DELETE"]
            .iter()
            .any(|write| write.eq_ignore_ascii_case(method));
        write && operation_matches(&self.operations, method, collection)
    }
}

/// Whether a request with this method to this collection is one of `operations`, each
/// `METHOD` or `METHOD collection` (case-insensitive); empty `operations` match every request.
/// The collection is a Key Vault request's first path segment (`secrets`, `deletedkeys`), an
/// ARM request's action or last resource type (`list`, `listkeys`, `config`, `sites`).
#[must_use]
pub fn operation_matches(operations: &[String], method: &str, collection: &str) -> bool {
    operations.is_empty()
        || operations.iter().any(|operation| {
            let mut parts = operation.split_whitespace();
            let method_matches = parts.next().is_some_and(|m| m.eq_ignore_ascii_case(method));
            let collection_matches = parts
                .next()
                .is_none_or(|c| c.eq_ignore_ascii_case(collection));
            method_matches && collection_matches
        })
}

/// How a lost answer looks to the client. The write has taken effect in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LostAnswerKind {
    /// The TCP connection is reset instead of answering.
    #[serde(rename = "reset")]
    ConnectionReset,
    /// 500 Internal Server Error.
    #[serde(rename = "500")]
    InternalServerError,
    /// 503 Service Unavailable.
    #[serde(rename = "503")]
    ServiceUnavailable,
    /// No answer for `timeout_ms`, then the connection closes.
    #[serde(rename = "timeout")]
    Timeout,
}

impl LostAnswerKind {
    pub const ALL: [LostAnswerKind; 4] = [
        LostAnswerKind::ConnectionReset,
        LostAnswerKind::InternalServerError,
        LostAnswerKind::ServiceUnavailable,
        LostAnswerKind::Timeout,
    ];

    /// Parses `reset`, `500`, `503` or `timeout`.
    ///
    /// # Errors
    /// Returns a message naming the accepted spellings.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "reset" => Ok(Self::ConnectionReset),
            "500" => Ok(Self::InternalServerError),
            "503" => Ok(Self::ServiceUnavailable),
            "timeout" => Ok(Self::Timeout),
            other => Err(format!(
                "unknown lost-answer kind `{other}`, expected reset, 500, 503 or timeout"
            )),
        }
    }
}

/// A client-credentials principal the token endpoint accepts.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub client_id: String,
    /// Never serialized back out of the control API, never printed.
    #[serde(skip_serializing, default)]
    pub client_secret: String,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_answers_cover_writes_by_method_and_collection() {
        let mut options = LostAnswerOptions {
            rate: 1.0,
            kinds: Vec::new(),
            operations: Vec::new(),
            seed: 0,
            timeout_ms: 1,
        };
        assert!(options.covers("PUT", "secrets"));
        assert!(options.covers("delete", "keys"));
        assert!(
            !options.covers("GET", "secrets"),
            "reads never lose answers"
        );
        options.operations = vec!["PUT secrets".into(), "POST".into()];
        assert!(options.covers("PUT", "Secrets"));
        assert!(!options.covers("PUT", "keys"));
        assert!(options.covers("POST", "certificates"));
        assert!(!options.covers("PATCH", "secrets"));
    }
}
