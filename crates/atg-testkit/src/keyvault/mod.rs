//! The Key Vault data plane: host parsing, the 401 challenge and bearer checks, api-version,
//! forbidden vaults, throttling, the response headers Key Vault sends, paging, and the versioned,
//! soft-deletable object store that secrets, keys and certificates share. Per-object semantics live
//! in `secrets`, `keys` and `certificates`; key material in `crypto`.
//!
//! State is in memory, one [`Vault`] per vault host; a vault exists as soon as it is addressed.

mod certificates;
mod crypto;
mod keys;
mod pfx;
mod secrets;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{new_guid, now_unix, take_page, ApiRequest, ApiResponse};
use crate::options::EmulatorOptions;
use crate::server::{lock, Shared};
use crate::token::{check_token, TokenProblem};

/// DNS suffix, token resource and Entra authority of each cloud's vaults.
const CLOUDS: [(&str, &str, &str); 3] = [
    (
        ".vault.azure.net",
        "https://vault.azure.net",
        "https://login.microsoftonline.com",
    ),
    (
        ".vault.azure.cn",
        "https://vault.azure.cn",
        "https://login.chinacloudapi.cn",
    ),
    (
        ".vault.usgovcloudapi.net",
        "https://vault.usgovcloudapi.net",
        "https://login.microsoftonline.us",
    ),
];

pub(crate) const RECOVERY_LEVEL: &str = "CustomizedRecoverable+Purgeable";
pub(crate) const RECOVERABLE_DAYS: i64 = 7;
const MAX_PAGE: usize = 25;

/// The vault name of a vault host (`myvault` for `myvault.vault.azure.net`).
pub(crate) fn vault_name(host: &str) -> Option<&str> {
    CLOUDS.iter().find_map(|(suffix, _, _)| {
        host.strip_suffix(suffix)
            .filter(|name| !name.is_empty() && !name.contains('.'))
    })
}

fn cloud_of(host: &str) -> (&'static str, &'static str) {
    CLOUDS
        .iter()
        .find(|(suffix, _, _)| host.ends_with(suffix))
        .map_or((CLOUDS[0].1, CLOUDS[0].2), |(_, resource, authority)| {
            (*resource, *authority)
        })
}

/// All vaults, keyed by host.
#[derive(Default)]
pub(crate) struct VaultStore {
    vaults: Mutex<HashMap<String, Vault>>,
}

#[derive(Default)]
pub(crate) struct Vault {
    pub secrets: Collection<secrets::SecretData>,
    pub keys: Collection<keys::KeyData>,
    pub certificates: Collection<certificates::CertificateData>,
    pub pending: BTreeMap<String, certificates::PendingCertificate>,
}

/// Object attributes shared by secrets, keys and certificates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Attributes {
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    /// Keys only.
    pub exportable: Option<bool>,
    /// Keys only: "1" for HSM-protected keys, "0" for software keys.
    #[serde(default)]
    pub hsm_platform: Option<String>,
}

impl Attributes {
    pub fn new() -> Self {
        let now = now_unix();
        Self {
            enabled: true,
            nbf: None,
            exp: None,
            created: now,
            updated: now,
            exportable: None,
            hsm_platform: None,
        }
    }

    /// Applies the writable members of a request's `attributes` object.
    pub fn apply(&mut self, attributes: &Value) {
        if let Some(enabled) = attributes.get("enabled").and_then(Value::as_bool) {
            self.enabled = enabled;
        }
        if let Some(nbf) = attributes.get("nbf") {
            self.nbf = nbf.as_i64();
        }
        if let Some(exp) = attributes.get("exp") {
            self.exp = exp.as_i64();
        }
        if let Some(exportable) = attributes.get("exportable").and_then(Value::as_bool) {
            self.exportable = Some(exportable);
        }
    }

    pub fn to_json(&self) -> Value {
        let mut out = json!({ "enabled": self.enabled });
        if let Some(nbf) = self.nbf {
            out["nbf"] = json!(nbf);
        }
        if let Some(exp) = self.exp {
            out["exp"] = json!(exp);
        }
        out["created"] = json!(self.created);
        out["updated"] = json!(self.updated);
        out["recoveryLevel"] = json!(RECOVERY_LEVEL);
        out["recoverableDays"] = json!(RECOVERABLE_DAYS);
        if let Some(exportable) = self.exportable {
            out["exportable"] = json!(exportable);
            // 7.5+ reports the HSM platform: "0" for software keys, "1" for HSM keys.
            out["hsmPlatform"] = json!(self.hsm_platform.as_deref().unwrap_or("0"));
        }
        out
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Version<T> {
    pub id: String,
    pub attributes: Attributes,
    pub tags: Option<Value>,
    pub data: T,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Object<T> {
    pub name: String,
    /// Oldest first; the last one is "latest".
    pub versions: Vec<Version<T>>,
}

impl<T> Object<T> {
    pub fn latest(&self) -> Option<&Version<T>> {
        self.versions.last()
    }

    pub fn version(&self, version: Option<&str>) -> Option<&Version<T>> {
        match version {
            None => self.latest(),
            Some(id) => self.versions.iter().find(|v| v.id.eq_ignore_ascii_case(id)),
        }
    }

    pub fn version_mut(&mut self, version: Option<&str>) -> Option<&mut Version<T>> {
        match version {
            None => self.versions.last_mut(),
            Some(id) => self
                .versions
                .iter_mut()
                .find(|v| v.id.eq_ignore_ascii_case(id)),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Deleted<T> {
    pub object: Object<T>,
    pub deleted_date: i64,
}

impl<T> Deleted<T> {
    /// `recoveryId`, `deletedDate` and `scheduledPurgeDate` of a deleted bundle.
    pub fn decorate(&self, base: &str, collection: &str, bundle: &mut Value) {
        bundle["recoveryId"] = json!(format!("{base}/{collection}/{}", self.object.name));
        bundle["deletedDate"] = json!(self.deleted_date);
        bundle["scheduledPurgeDate"] = json!(self.deleted_date + RECOVERABLE_DAYS * 86_400);
    }
}

/// Active and soft-deleted objects of one kind; names are case-insensitive as in Key Vault.
#[derive(Debug)]
pub(crate) struct Collection<T> {
    pub active: BTreeMap<String, Object<T>>,
    pub deleted: BTreeMap<String, Deleted<T>>,
}

impl<T> Default for Collection<T> {
    fn default() -> Self {
        Self {
            active: BTreeMap::new(),
            deleted: BTreeMap::new(),
        }
    }
}

impl<T: Clone> Collection<T> {
    pub fn get(&self, name: &str) -> Option<&Object<T>> {
        self.active.get(&name.to_ascii_lowercase())
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Object<T>> {
        self.active.get_mut(&name.to_ascii_lowercase())
    }

    pub fn is_deleted(&self, name: &str) -> bool {
        self.deleted.contains_key(&name.to_ascii_lowercase())
    }

    /// Adds a new latest version; the caller has checked the name is not soft-deleted.
    pub fn push(&mut self, name: &str, version: Version<T>) -> &Version<T> {
        let object = self
            .active
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Object {
                name: name.to_owned(),
                versions: Vec::new(),
            });
        object.versions.push(version);
        let last = object.versions.len() - 1;
        &object.versions[last]
    }

    pub fn delete(&mut self, name: &str) -> Option<&Deleted<T>> {
        let key = name.to_ascii_lowercase();
        let object = self.active.remove(&key)?;
        self.deleted.insert(
            key.clone(),
            Deleted {
                object,
                deleted_date: now_unix(),
            },
        );
        self.deleted.get(&key)
    }

    pub fn recover(&mut self, name: &str) -> Option<&Object<T>> {
        let key = name.to_ascii_lowercase();
        let deleted = self.deleted.remove(&key)?;
        self.active.insert(key.clone(), deleted.object);
        self.active.get(&key)
    }

    pub fn purge(&mut self, name: &str) -> bool {
        self.deleted.remove(&name.to_ascii_lowercase()).is_some()
    }
}

/// Whether the request's api-version shows key attributes `exportable` and `hsmPlatform`: 7.5 and
/// later, previews of 7.5 and the date-named versions that followed 7.6.
pub(crate) fn reports_key_platform(request: &ApiRequest) -> bool {
    let version = request.query_param("api-version").unwrap_or_default();
    let mut numbers = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major = numbers.next().unwrap_or(0);
    let minor = numbers.next().unwrap_or(0);
    major >= 1000 || (major, minor) >= (7, 5)
}

/// What a handler needs to render URLs and read the request.
pub(crate) struct Context<'a> {
    /// `https://{vault host}` — ids carry no port.
    pub base: String,
    pub request: &'a ApiRequest,
}

impl Context<'_> {
    pub fn body(&self) -> Result<Value, ApiResponse> {
        self.request
            .json_body()
            .map_err(|message| bad_parameter(&message))
    }
}

pub(crate) fn bad_parameter(message: &str) -> ApiResponse {
    ApiResponse::error(StatusCode::BAD_REQUEST, "BadParameter", message, None)
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 127
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub(crate) fn invalid_name(kind: &str, name: &str) -> ApiResponse {
    bad_parameter(&format!(
        "The request URI contains an invalid name: {name}. {kind} names must match ^[0-9a-zA-Z-]+$"
    ))
}

pub(crate) fn not_found(code: &str, kind: &str, id: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::NOT_FOUND,
        code,
        &format!(
            "A {kind} with (name/id) {id} was not found in this key vault. If you recently deleted this {kind} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
        None,
    )
}

pub(crate) fn deleted_conflict(kind_title: &str, kind: &str, name: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "{kind_title} {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {kind} can only be recovered or purged."
        ),
        Some("ObjectIsDeletedButRecoverable"),
    )
}

/// An opaque backup blob: base64url of the object with all its versions. Unlike Key Vault's it is
/// not encrypted; it only has to round-trip through this emulator.
pub(crate) fn backup_blob<T: Serialize>(kind: &str, object: &T) -> ApiResponse {
    let blob = json!({ "kind": kind, "object": object });
    ok(&json!({ "value": URL_SAFE_NO_PAD.encode(blob.to_string()) }))
}

/// Reads a blob written by [`backup_blob`] for the same kind.
pub(crate) fn restore_blob<T: for<'de> Deserialize<'de>>(
    kind: &str,
    body: &Value,
) -> Result<T, ApiResponse> {
    let invalid = || bad_parameter("Backup blob contains invalid or corrupt version.");
    let value = body["value"].as_str().ok_or_else(invalid)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let blob: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if blob["kind"] != kind {
        return Err(invalid());
    }
    serde_json::from_value(blob["object"].clone()).map_err(|_| invalid())
}

pub(crate) fn ok(value: &Value) -> ApiResponse {
    ApiResponse::json(StatusCode::OK, value)
}

/// One page of a list. `items` must be sorted by their key; the skiptoken carries the last key
/// served, so deletions between pages neither skip nor repeat items.
pub(crate) fn page(context: &Context<'_>, items: Vec<(String, Value)>) -> ApiResponse {
    let request = context.request;
    let max = match request.query_param("maxresults") {
        None => MAX_PAGE,
        Some(text) => match text.parse::<usize>() {
            Ok(max) if (1..=MAX_PAGE).contains(&max) => max,
            _ => {
                return bad_parameter(&format!(
                    "Invalid value for maxresults: {text}. The value must be between 1 and 25."
                ))
            }
        },
    };
    let marker = request
        .query_param("$skiptoken")
        .and_then(|token| URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|token| token["NextMarker"].as_str().map(str::to_owned));
    let (values, continuation) = take_page(items, marker.as_deref(), max);
    let next_link = match continuation {
        Some(last) => {
            let token = URL_SAFE_NO_PAD.encode(json!({ "NextMarker": last }).to_string());
            let api_version = request.query_param("api-version").unwrap_or_default();
            // Key Vault writes the explicit :443 and echoes maxresults after the token.
            json!(format!(
                "{}:443{}?api-version={api_version}&$skiptoken={token}&maxresults={max}",
                context.base,
                request.path.trim_end_matches('/'),
            ))
        }
        _ => Value::Null,
    };
    ok(&json!({ "value": values, "nextLink": next_link }))
}

/// A sort key that keeps versions in creation order.
pub(crate) fn ordinal_key(index: usize) -> String {
    format!("{index:08}")
}

fn unauthorized(authority: &str, tenant: &str, resource: &str, message: &str) -> ApiResponse {
    ApiResponse::error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None).with_header(
        "www-authenticate",
        format!("Bearer authorization=\"{authority}/{tenant}\", resource=\"{resource}\""),
    )
}

/// Entry point for every request to a vault host.
pub(crate) fn handle(
    shared: &Shared,
    options: &EmulatorOptions,
    request: &ApiRequest,
) -> ApiResponse {
    let name = vault_name(&request.host).unwrap_or_default().to_owned();
    let response = authorize_and_route(shared, options, request, &name);
    decorate(response, request)
}

fn authorize_and_route(
    shared: &Shared,
    options: &EmulatorOptions,
    request: &ApiRequest,
    vault: &str,
) -> ApiResponse {
    let (resource, authority) = cloud_of(&request.host);
    let tenant = options.tenant_of(vault);
    let Some(token) = request.bearer() else {
        return unauthorized(
            authority,
            tenant,
            resource,
            "AKV10000: Request is missing a Bearer or PoP token.",
        );
    };
    if let Err(problem) = check_token(token, &[resource], Some(tenant)) {
        let message = match problem {
            TokenProblem::Malformed => "AKV10000: Request is missing a Bearer or PoP token.".to_owned(),
            TokenProblem::Expired => "AKV10022: Invalid token: the token is expired.".to_owned(),
            TokenProblem::Audience(found) => {
                format!("AKV10022: Invalid audience. Expected {resource}, found: {found}.")
            }
            TokenProblem::Tenant(found) => format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tenant}/, found https://sts.windows.net/{found}/."
            ),
        };
        return unauthorized(authority, tenant, resource, &message);
    }
    if request.query_param("api-version").is_none_or(str::is_empty) {
        return bad_parameter(
            "The request URI is missing the required query parameter api-version.",
        );
    }
    let path = request.path.trim_end_matches('/').to_ascii_lowercase();
    if options
        .forbidden_vaults
        .contains(&vault.to_ascii_lowercase())
        || options.forbidden_paths.contains(&path)
    {
        return ApiResponse::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nVault: {vault};location=westus;\r\n"
            ),
            Some("ForbiddenByRbac"),
        );
    }
    // A misbehaving (or hostile) endpoint: `redirect-*` vaults answer every authorized request
    // with a 307 to another vault, so tests can check that clients never follow it.
    if let Some(rest) = vault.to_ascii_lowercase().strip_prefix("redirect-") {
        let host = request
            .host
            .replacen(vault, &format!("redirected-{rest}"), 1);
        return ApiResponse::empty(StatusCode::TEMPORARY_REDIRECT)
            .with_header("location", format!("https://{host}{}", request.path));
    }
    if let Some(retry_after) = shared.throttle(options, &request.host) {
        return ApiResponse::error(
            StatusCode::TOO_MANY_REQUESTS,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: A best effort throttling mechanism has been applied.",
            None,
        )
        .with_header("retry-after", retry_after.to_string());
    }
    let context = Context {
        base: format!("https://{}", request.host),
        request,
    };
    let mut vaults = lock(&shared.vaults.vaults);
    let vault_state = vaults.entry(request.host.clone()).or_default();
    certificates::advance_pending(vault_state);
    route(vault_state, &context)
}

fn route(vault: &mut Vault, context: &Context<'_>) -> ApiResponse {
    let segments = context.request.segments();
    let Some(first) = segments.first() else {
        return not_found_path();
    };
    match first.to_ascii_lowercase().as_str() {
        "secrets" | "deletedsecrets" => secrets::route(vault, context, &segments),
        "keys" | "deletedkeys" => keys::route(vault, context, &segments),
        "certificates" | "deletedcertificates" => certificates::route(vault, context, &segments),
        _ => not_found_path(),
    }
}

pub(crate) fn not_found_path() -> ApiResponse {
    ApiResponse::error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The requested resource or operation is not supported by the emulator.",
        None,
    )
}

pub(crate) fn method_not_allowed() -> ApiResponse {
    ApiResponse::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The requested method is not allowed on this resource.",
        None,
    )
}

/// The headers every Key Vault response carries.
fn decorate(response: ApiResponse, request: &ApiRequest) -> ApiResponse {
    let mut response = response
        .with_header("cache-control", "no-cache")
        .with_header("pragma", "no-cache")
        .with_header("expires", "-1")
        .with_header("x-content-type-options", "nosniff")
        .with_header(
            "strict-transport-security",
            "max-age=31536000;includeSubDomains",
        )
        .with_header("x-ms-keyvault-region", "westus")
        .with_header("x-ms-keyvault-service-version", "1.9.1095.1")
        .with_header(
            "x-ms-keyvault-network-info",
            "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
        )
        .with_header("x-ms-request-id", new_guid());
    if let Some(client_request_id) = request
        .headers
        .get("x-ms-client-request-id")
        .and_then(|value| value.to_str().ok())
    {
        response = response.with_header("x-ms-client-request-id", client_request_id.to_owned());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_come_from_all_three_clouds() {
        assert_eq!(vault_name("kv1.vault.azure.net"), Some("kv1"));
        assert_eq!(vault_name("kv1.vault.azure.cn"), Some("kv1"));
        assert_eq!(vault_name("kv1.vault.usgovcloudapi.net"), Some("kv1"));
        assert_eq!(vault_name("vault.azure.net"), None);
        assert_eq!(vault_name("a.b.vault.azure.net"), None);
        assert_eq!(cloud_of("kv1.vault.azure.cn").0, "https://vault.azure.cn");
    }
}
