//! A minimal, generic ARM: bearer check, an in-memory resource store keyed by resource id with
//! PUT (201 + `Azure-AsyncOperation`), GET, DELETE (202 + `Location`), resource-group and
//! subscription listing with `$top` / `nextLink` paging, and storage `listKeys` from seeded keys.
//! It knows nothing about any resource provider beyond that.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{new_guid, ApiRequest, ApiResponse};
use crate::options::EmulatorOptions;
use crate::server::{lock, Shared};
use crate::token::check_token;

pub(crate) const ARM_HOSTS: [&str; 3] = [
    "management.azure.com",
    "management.chinacloudapi.cn",
    "management.usgovcloudapi.net",
];

const AUDIENCES: [&str; 8] = [
    "https://management.azure.com",
    "https://management.core.windows.net/",
    "https://management.chinacloudapi.cn",
    "https://management.core.chinacloudapi.cn/",
    "https://management.usgovcloudapi.net",
    "https://management.core.usgovcloudapi.net/",
    "https://management.azure.com/",
    "https://management.chinacloudapi.cn/",
];

const DEFAULT_TOP: usize = 100;

struct Resource {
    id: String,
    name: String,
    kind: String,
    body: Value,
    provisioning_done: bool,
}

enum Operation {
    Create { resource_key: String, polls: u32 },
    Delete { polls: u32 },
}

#[derive(Default)]
pub(crate) struct ArmState {
    resources: BTreeMap<String, Resource>,
    operations: HashMap<String, Operation>,
    storage_keys: HashMap<String, Vec<String>>,
}

impl ArmState {
    pub fn seed_storage_keys(
        &mut self,
        subscription: &str,
        resource_group: &str,
        account: &str,
        keys: Vec<String>,
    ) {
        let id = format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Storage/storageAccounts/{account}"
        );
        let key = id.to_ascii_lowercase();
        self.resources.entry(key.clone()).or_insert_with(|| Resource {
            id: id.clone(),
            name: account.to_owned(),
            kind: "Microsoft.Storage/storageAccounts".to_owned(),
            body: json!({ "location": "westus", "tags": {}, "kind": "StorageV2", "properties": {} }),
            provisioning_done: true,
        });
        if keys.is_empty() {
            self.storage_keys.remove(&key);
        } else {
            self.storage_keys.insert(key, keys);
        }
    }
}

fn arm_error(status: StatusCode, code: &str, message: &str) -> ApiResponse {
    ApiResponse::error(status, code, message, None)
}

/// Parsed `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{type}/{name}...]`.
struct ResourcePath {
    id: String,
    name: String,
    kind: String,
    /// Trailing action segment, e.g. `listKeys`.
    action: Option<String>,
}

fn parse_resource_path(segments: &[&str]) -> Option<ResourcePath> {
    let ["subscriptions", subscription, resource_groups, group, "providers", namespace, rest @ ..] =
        segments
    else {
        return None;
    };
    if !resource_groups.eq_ignore_ascii_case("resourceGroups") || rest.len() < 2 {
        return None;
    }
    let (pairs, action) = if rest.len() % 2 == 1 {
        (
            &rest[..rest.len() - 1],
            rest.last().map(|a| (*a).to_owned()),
        )
    } else {
        (rest, None)
    };
    let mut kind = (*namespace).to_owned();
    let mut id =
        format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}");
    for pair in pairs.chunks(2) {
        kind.push('/');
        kind.push_str(pair[0]);
        id.push('/');
        id.push_str(pair[0]);
        id.push('/');
        id.push_str(pair[1]);
    }
    Some(ResourcePath {
        id,
        name: pairs.last().map(|n| (*n).to_owned()).unwrap_or_default(),
        kind,
        action,
    })
}

pub(crate) fn handle(
    shared: &Shared,
    _options: &EmulatorOptions,
    request: &ApiRequest,
) -> ApiResponse {
    let response = authorize_and_route(shared, request);
    let remaining = if request.method == Method::GET {
        "x-ms-ratelimit-remaining-subscription-reads"
    } else if request.method == Method::DELETE {
        "x-ms-ratelimit-remaining-subscription-deletes"
    } else {
        "x-ms-ratelimit-remaining-subscription-writes"
    };
    let request_id = new_guid();
    response
        .with_header("cache-control", "no-cache")
        .with_header("x-ms-request-id", request_id.clone())
        .with_header("x-ms-correlation-request-id", request_id)
        .with_header(remaining, "11999")
}

fn authorize_and_route(shared: &Shared, request: &ApiRequest) -> ApiResponse {
    let Some(token) = request.bearer() else {
        return arm_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        )
        .with_header(
            "www-authenticate",
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\"",
        );
    };
    if check_token(token, &AUDIENCES, None).is_err() {
        return arm_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationTokenAudience",
            "The access token has been obtained for wrong audience or resource, or it is expired.",
        );
    }
    if request.query_param("api-version").is_none_or(str::is_empty) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    let segments = request.segments();
    let mut state = lock(&shared.arm);
    match segments.as_slice() {
        ["subscriptions", _, "providers", "Microsoft.Emulator", "operations", operation_id] => {
            poll_async_operation(&mut state, operation_id)
        }
        ["subscriptions", _, "providers", "Microsoft.Emulator", "operationResults", operation_id] => {
            poll_location(&mut state, operation_id)
        }
        ["subscriptions", subscription, "resources"] if request.method == Method::GET => {
            let prefix = format!("/subscriptions/{subscription}/").to_ascii_lowercase();
            list(&state, request, &prefix)
        }
        ["subscriptions", subscription, resource_groups, group, "resources"]
            if request.method == Method::GET
                && resource_groups.eq_ignore_ascii_case("resourceGroups") =>
        {
            let prefix = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/")
                .to_ascii_lowercase();
            list(&state, request, &prefix)
        }
        _ => match parse_resource_path(&segments) {
            Some(path) => resource(&mut state, request, &path),
            None => arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                "The resource type could not be found in the emulated resource manager.",
            ),
        },
    }
}

fn not_found(path: &ResourcePath) -> ApiResponse {
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The Resource '{}/{}' under resource group was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", path.kind, path.name),
    )
}

fn render(resource: &Resource) -> Value {
    let mut out = resource.body.clone();
    out["id"] = json!(resource.id);
    out["name"] = json!(resource.name);
    out["type"] = json!(resource.kind);
    if !out["properties"].is_object() {
        out["properties"] = json!({});
    }
    out["properties"]["provisioningState"] = json!(if resource.provisioning_done {
        "Succeeded"
    } else {
        "Creating"
    });
    out
}

fn resource(state: &mut ArmState, request: &ApiRequest, path: &ResourcePath) -> ApiResponse {
    let key = path.id.to_ascii_lowercase();
    let base = format!("https://{}", request.host);
    let api_version = request.query_param("api-version").unwrap_or_default();
    match (&request.method, path.action.as_deref()) {
        (&Method::POST, Some(action)) if action.eq_ignore_ascii_case("listKeys") => {
            match (state.resources.contains_key(&key), state.storage_keys.get(&key)) {
                (_, Some(keys)) => ApiResponse::json(
                    StatusCode::OK,
                    &json!({ "keys": keys.iter().enumerate().map(|(index, value)| json!({
                        "keyName": format!("key{}", index + 1),
                        "value": value,
                        "permissions": "FULL",
                        "creationTime": "2024-01-01T00:00:00.0000000Z",
                    })).collect::<Vec<_>>() }),
                ),
                (true, None) => arm_error(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailed",
                    &format!("The client does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action' over scope '{}'.", path.id),
                ),
                (false, None) => not_found(path),
            }
        }
        (_, Some(_)) => not_found(path),
        (&Method::GET, None) => match state.resources.get(&key) {
            Some(found) => ApiResponse::json(StatusCode::OK, &render(found)),
            None => not_found(path),
        },
        (&Method::PUT, None) => {
            let body = match request.json_body() {
                Ok(body) if body.is_object() => body,
                _ => {
                    return arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContent",
                        "The request content was invalid and could not be deserialized.",
                    )
                }
            };
            let existed = state.resources.contains_key(&key);
            let resource = Resource {
                id: path.id.clone(),
                name: path.name.clone(),
                kind: path.kind.clone(),
                body,
                provisioning_done: false,
            };
            let rendered = render(&resource);
            state.resources.insert(key.clone(), resource);
            let operation_id = new_guid();
            state.operations.insert(
                operation_id.clone(),
                Operation::Create {
                    resource_key: key,
                    polls: 0,
                },
            );
            let subscription = path.id.split('/').nth(2).unwrap_or_default();
            ApiResponse::json(if existed { StatusCode::OK } else { StatusCode::CREATED }, &rendered).with_header(
                "azure-asyncoperation",
                format!("{base}/subscriptions/{subscription}/providers/Microsoft.Emulator/operations/{operation_id}?api-version={api_version}"),
            )
        }
        (&Method::DELETE, None) => {
            if state.resources.remove(&key).is_none() {
                return ApiResponse::empty(StatusCode::NO_CONTENT);
            }
            state.storage_keys.remove(&key);
            let operation_id = new_guid();
            state
                .operations
                .insert(operation_id.clone(), Operation::Delete { polls: 0 });
            let subscription = path.id.split('/').nth(2).unwrap_or_default();
            ApiResponse::empty(StatusCode::ACCEPTED)
                .with_header(
                    "location",
                    format!("{base}/subscriptions/{subscription}/providers/Microsoft.Emulator/operationResults/{operation_id}?api-version={api_version}"),
                )
                .with_header("retry-after", "1")
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The method is not allowed on this resource.",
        ),
    }
}

/// `Azure-AsyncOperation` polls: `InProgress` once, then `Succeeded` (and the resource is done).
fn poll_async_operation(state: &mut ArmState, operation_id: &str) -> ApiResponse {
    let Some(Operation::Create {
        resource_key,
        polls,
    }) = state.operations.get_mut(operation_id)
    else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            "The operation was not found.",
        );
    };
    *polls += 1;
    if *polls < 2 {
        return ApiResponse::json(StatusCode::OK, &json!({ "status": "InProgress" }))
            .with_header("retry-after", "1");
    }
    let resource_key = resource_key.clone();
    if let Some(resource) = state.resources.get_mut(&resource_key) {
        resource.provisioning_done = true;
    }
    ApiResponse::json(StatusCode::OK, &json!({ "status": "Succeeded" }))
}

/// `Location` polls: 202 once, then 200.
fn poll_location(state: &mut ArmState, operation_id: &str) -> ApiResponse {
    let Some(Operation::Delete { polls }) = state.operations.get_mut(operation_id) else {
        return arm_error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            "The operation was not found.",
        );
    };
    *polls += 1;
    if *polls < 2 {
        ApiResponse::empty(StatusCode::ACCEPTED).with_header("retry-after", "1")
    } else {
        ApiResponse::empty(StatusCode::OK)
    }
}

fn list(state: &ArmState, request: &ApiRequest, prefix: &str) -> ApiResponse {
    let top = request
        .query_param("$top")
        .and_then(|top| top.parse::<usize>().ok())
        .filter(|top| *top > 0)
        .unwrap_or(DEFAULT_TOP);
    let skip = request
        .query_param("$skiptoken")
        .and_then(|token| URL_SAFE_NO_PAD.decode(token).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let mut matching = state
        .resources
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .filter(|(key, _)| skip.as_ref().is_none_or(|skip| *key > skip))
        .peekable();
    let mut values = Vec::new();
    let mut last = None;
    while values.len() < top {
        let Some((key, resource)) = matching.next() else {
            break;
        };
        let rendered = render(resource);
        values.push(json!({
            "id": resource.id,
            "name": resource.name,
            "type": resource.kind,
            "location": rendered["location"],
            "tags": rendered.get("tags").cloned().unwrap_or_else(|| json!({})),
        }));
        last = Some(key.clone());
    }
    let mut body = json!({ "value": values });
    if let (Some(_), Some(last)) = (matching.peek(), last) {
        let api_version = request.query_param("api-version").unwrap_or_default();
        body["nextLink"] = json!(format!(
            "https://{}{}?api-version={api_version}&%24top={top}&%24skiptoken={}",
            request.host,
            request.path,
            URL_SAFE_NO_PAD.encode(last)
        ));
    }
    ApiResponse::json(StatusCode::OK, &body)
}
