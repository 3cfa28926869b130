//! The emulated Azure Resource Manager: bearer and api-version checks, the response headers ARM
//! sends, path parsing, and dispatch to one [`Provider`] per resource-provider namespace. The
//! generic resource store (ids, PUT/GET/PATCH/DELETE, `ETag`s, long-running operations, paging,
//! children) lives in `store`; each provider module holds only its service's quirks, grounded in
//! `shared/azure-recordings/<service>/`. A namespace without a module gets the generic store.

mod apim;
mod eventhub;
mod messaging;
mod servicebus;
mod storage;
mod store;
mod web;

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::http::{new_guid, ApiRequest, ApiResponse};
use crate::options::EmulatorOptions;
use crate::server::{lock, Shared};
use crate::token::check_token;

pub(crate) use store::{ArmState, Completion, Resource};

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

/// One resource provider's behaviour where it differs from the generic store. Every method has
/// the generic behaviour as its default, so a provider states only its quirks.
pub(crate) trait Provider: Sync {
    /// The namespace, e.g. `Microsoft.Web` (matched case-insensitively).
    fn namespace(&self) -> &'static str;

    /// The api-versions the provider accepts; empty accepts any.
    fn api_versions(&self) -> &'static [&'static str] {
        &[]
    }

    /// Answers a request the provider handles its own way (POST actions such as `.../list`,
    /// validation, singletons); `None` leaves it to the generic store.
    fn handle(&self, _state: &mut ArmState, _request: &ArmRequest<'_>) -> Option<ApiResponse> {
        None
    }

    /// The resource as the provider renders it in GET, PUT and PATCH answers and list items,
    /// for a request made with `api_version`.
    fn render(&self, resource: &Resource, _api_version: &str) -> Value {
        store::render_generic(resource)
    }

    /// How a PUT or DELETE the generic store carries out completes: by default a PUT answers
    /// 201/200 with `Azure-AsyncOperation`, a DELETE 202 with `Location`.
    fn completion(&self, method: &Method, _path: &ResourcePath) -> Completion {
        if method == Method::DELETE {
            Completion::Location
        } else {
            Completion::AzureAsyncOperation
        }
    }

    /// Children the service creates with a resource (a site's configuration, for instance),
    /// called once after a PUT created `resource_key`.
    fn on_created(&self, _state: &mut ArmState, _resource_key: &str) {}
}

/// The generic behaviour, for namespaces without a module of their own.
struct GenericProvider;

impl Provider for GenericProvider {
    fn namespace(&self) -> &'static str {
        ""
    }
}

/// Every provider with quirks, one module each.
static PROVIDERS: &[&dyn Provider] = &[
    &storage::StorageProvider,
    &web::WebProvider,
    &servicebus::SERVICE_BUS,
    &eventhub::EVENT_HUB,
    &apim::ApiManagementProvider,
];

fn provider_for(namespace: &str) -> &'static dyn Provider {
    PROVIDERS
        .iter()
        .copied()
        .find(|provider| provider.namespace().eq_ignore_ascii_case(namespace))
        .unwrap_or(&GenericProvider)
}

/// `/subscriptions/{s}/resourceGroups/{g}/providers/{namespace}/{type}/{name}[/{type}/{name}...]`
/// with an optional last segment: an action for POST (`listKeys`, `list`), a collection for GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    pub subscription: String,
    pub group: String,
    pub namespace: String,
    /// `(type, name)` pairs from the outermost resource inwards; empty for a collection of
    /// top-level resources (`.../providers/{namespace}/{type}`).
    pub pairs: Vec<(String, String)>,
    /// The trailing odd segment, if any.
    pub tail: Option<String>,
}

impl ResourcePath {
    pub fn parse(segments: &[&str]) -> Option<ResourcePath> {
        let ["subscriptions", subscription, resource_groups, group, "providers", namespace, rest @ ..] =
            segments
        else {
            return None;
        };
        if !resource_groups.eq_ignore_ascii_case("resourceGroups") || rest.is_empty() {
            return None;
        }
        let (pairs, tail) = if rest.len() % 2 == 1 {
            (
                &rest[..rest.len() - 1],
                rest.last().map(|t| (*t).to_owned()),
            )
        } else {
            (rest, None)
        };
        Some(ResourcePath {
            subscription: (*subscription).to_owned(),
            group: (*group).to_owned(),
            namespace: (*namespace).to_owned(),
            pairs: pairs
                .chunks(2)
                .map(|pair| (pair[0].to_owned(), pair[1].to_owned()))
                .collect(),
            tail,
        })
    }

    /// The resource id as addressed (the case the client used).
    pub fn id(&self) -> String {
        let mut id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/{}",
            self.subscription, self.group, self.namespace
        );
        for (kind, name) in &self.pairs {
            id.push('/');
            id.push_str(kind);
            id.push('/');
            id.push_str(name);
        }
        id
    }

    /// The store key: the id, lowercased (ARM ids are case-insensitive).
    pub fn key(&self) -> String {
        self.id().to_ascii_lowercase()
    }

    /// `namespace/type[/type...]`.
    pub fn kind(&self) -> String {
        let mut kind = self.namespace.clone();
        for (segment, _) in &self.pairs {
            kind.push('/');
            kind.push_str(segment);
        }
        kind
    }

    pub fn name(&self) -> &str {
        self.pairs.last().map_or("", |(_, name)| name.as_str())
    }

    /// The enclosing resource of a child resource; `None` for a top-level one.
    pub fn parent(&self) -> Option<ResourcePath> {
        (self.pairs.len() > 1).then(|| ResourcePath {
            pairs: self.pairs[..self.pairs.len() - 1].to_vec(),
            tail: None,
            ..self.clone()
        })
    }

    /// This path without its tail: the resource an action or a child collection belongs to.
    pub fn resource(&self) -> ResourcePath {
        ResourcePath {
            tail: None,
            ..self.clone()
        }
    }

    /// The type segments in lowercase, e.g. `["sites", "slots", "config"]`, to match routes.
    pub fn types(&self) -> Vec<String> {
        self.pairs
            .iter()
            .map(|(kind, _)| kind.to_ascii_lowercase())
            .collect()
    }
}

/// A request to a resource path, as providers see it.
pub(crate) struct ArmRequest<'a> {
    pub http: &'a ApiRequest,
    pub path: ResourcePath,
    /// `https://{host}`, for follow-up URLs.
    pub base: String,
    /// The emulator's options for this request.
    pub options: &'a EmulatorOptions,
}

impl ArmRequest<'_> {
    pub fn method(&self) -> &Method {
        &self.http.method
    }

    pub fn api_version(&self) -> &str {
        self.http.query_param("api-version").unwrap_or_default()
    }

    /// Whether this is `method` with the tail `action` (case-insensitive).
    pub fn is_action(&self, method: &Method, action: &str) -> bool {
        self.http.method == method
            && self
                .path
                .tail
                .as_deref()
                .is_some_and(|tail| tail.eq_ignore_ascii_case(action))
    }
}

pub(crate) fn arm_error(status: StatusCode, code: &str, message: &str) -> ApiResponse {
    ApiResponse::error(status, code, message, None)
}

pub(crate) fn handle(
    shared: &Shared,
    options: &EmulatorOptions,
    request: &ApiRequest,
) -> ApiResponse {
    let response = authorize_and_route(shared, options, request);
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

fn authorize_and_route(
    shared: &Shared,
    options: &EmulatorOptions,
    request: &ApiRequest,
) -> ApiResponse {
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
    let Some(api_version) = request.query_param("api-version").filter(|v| !v.is_empty()) else {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    let segments = request.segments();
    let base = format!("https://{}", request.host);
    let mut state = lock(&shared.arm);
    match segments.as_slice() {
        ["subscriptions", _, "providers", "Microsoft.Emulator", "operations", operation_id] => {
            state.poll_async_operation(operation_id)
        }
        ["subscriptions", _, "providers", "Microsoft.Emulator", "operationResults", operation_id] => {
            state.poll_location(operation_id, api_version, &|kind| {
                provider_for(namespace_of(kind))
            })
        }
        ["subscriptions", subscription, "resources"] if request.method == Method::GET => {
            let prefix = format!("/subscriptions/{subscription}/").to_ascii_lowercase();
            state.list_top_level(request, &prefix, &|kind| provider_for(namespace_of(kind)))
        }
        ["subscriptions", subscription, resource_groups, group, "resources"]
            if request.method == Method::GET
                && resource_groups.eq_ignore_ascii_case("resourceGroups") =>
        {
            let prefix = format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/")
                .to_ascii_lowercase();
            state.list_top_level(request, &prefix, &|kind| provider_for(namespace_of(kind)))
        }
        _ => match ResourcePath::parse(&segments) {
            Some(path) => {
                if let Some(answer) = forbidden(options, request, &path) {
                    return answer;
                }
                let provider = provider_for(&path.namespace);
                if !accepts(provider, api_version) {
                    return unsupported_api_version(provider, &path, api_version);
                }
                let request = ArmRequest {
                    http: request,
                    path,
                    base,
                    options,
                };
                provider
                    .handle(&mut state, &request)
                    .unwrap_or_else(|| state.handle(provider, &request))
            }
            None => arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                "The resource type could not be found in the emulated resource manager.",
            ),
        },
    }
}

/// Stores a resource as a test states it, without the provider's validation (a function, which
/// only deployed code creates on Azure), and lets the provider add what it creates with it.
pub(crate) fn seed(state: &mut ArmState, id: &str, body: Value) -> Result<(), String> {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let path = ResourcePath::parse(&segments)
        .filter(|path| path.tail.is_none() && !path.pairs.is_empty())
        .ok_or_else(|| format!("`{id}` is not a resource id"))?;
    if !body.is_object() {
        return Err("the resource body must be a json object".to_owned());
    }
    let key = path.key();
    let created = state.get(&key).is_none();
    state.insert(Resource::new(&path, body));
    if created {
        provider_for(&path.namespace).on_created(state, &key);
    }
    Ok(())
}

/// What faults and lost answers choose an ARM request by: its action or child collection
/// (`list`, `listkeys`, `slots`), else its last resource type (`sites`, `config`,
/// `functionKeys`), else the last segment that is not an id (`operations`, `resources`).
pub(crate) fn operation_collection(segments: &[&str]) -> String {
    match ResourcePath::parse(segments) {
        Some(path) => path
            .tail
            .or_else(|| path.pairs.last().map(|(kind, _)| kind.clone()))
            .unwrap_or_default(),
        // Skips ids (GUIDs): `.../operations/{id}` is `operations`.
        None => segments
            .iter()
            .rev()
            .find(|segment| !segment.contains('-'))
            .map(|segment| (*segment).to_owned())
            .unwrap_or_default(),
    }
}

/// ARM's 403 for a request under one of [`EmulatorOptions::forbidden_arm_scopes`], naming the
/// action the identity lacks (`.../read`, `.../write`, `.../delete`, `.../{action}/action`).
fn forbidden(
    options: &EmulatorOptions,
    request: &ApiRequest,
    path: &ResourcePath,
) -> Option<ApiResponse> {
    let key = path.key();
    let scope = options.forbidden_arm_scopes.iter().find(|scope| {
        let scope = scope.trim_end_matches('/').to_ascii_lowercase();
        key == scope || key.starts_with(&format!("{scope}/"))
    })?;
    let kind = path.kind();
    let action = match (&request.method, path.tail.as_deref()) {
        (&Method::POST, Some(action)) => format!("{kind}/{action}/action"),
        (&Method::GET, _) => format!("{kind}/read"),
        (&Method::DELETE, _) => format!("{kind}/delete"),
        _ => format!("{kind}/write"),
    };
    Some(arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        &format!(
            "The client does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    ))
}

/// `Microsoft.Web` of `Microsoft.Web/sites/slots`.
fn namespace_of(kind: &str) -> &str {
    kind.split('/').next().unwrap_or_default()
}

fn accepts(provider: &dyn Provider, api_version: &str) -> bool {
    let accepted = provider.api_versions();
    accepted.is_empty()
        || accepted
            .iter()
            .any(|version| version.eq_ignore_ascii_case(api_version))
}

/// ARM's answer to an api-version the provider does not register for the type.
fn unsupported_api_version(
    provider: &dyn Provider,
    path: &ResourcePath,
    api_version: &str,
) -> ApiResponse {
    let kind = path.types().join("/");
    arm_error(
        StatusCode::BAD_REQUEST,
        "NoRegisteredProviderFound",
        &format!(
            "No registered resource provider found for location 'westeurope' and API version '{api_version}' for type '{kind}'. The supported api-versions are '{}'. The supported locations are 'westeurope, francecentral, eastus'.",
            provider.api_versions().join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_type_name_pairs_and_a_tail() {
        let segments: Vec<&str> =
            "subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/app/slots/dev/config/appsettings/list"
                .split('/')
                .collect();
        let path = ResourcePath::parse(&segments).expect("path");
        assert_eq!(path.kind(), "Microsoft.Web/sites/slots/config");
        assert_eq!(path.name(), "appsettings");
        assert_eq!(path.tail.as_deref(), Some("list"));
        assert_eq!(
            path.parent().map(|parent| parent.id()),
            Some(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/app/slots/dev"
                    .to_owned()
            )
        );
        assert_eq!(path.types(), ["sites", "slots", "config"]);
        let collection: Vec<&str> =
            "subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites"
                .split('/')
                .collect();
        let collection = ResourcePath::parse(&collection).expect("collection");
        assert!(collection.pairs.is_empty());
        assert_eq!(collection.tail.as_deref(), Some("sites"));
        let word = |path: &str| operation_collection(&path.split('/').collect::<Vec<_>>());
        assert_eq!(word("subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/a/config/appsettings"), "config");
        assert_eq!(word("subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/sites/a/host/default/listkeys"), "listkeys");
        assert_eq!(
            word("subscriptions/0000-1/providers/Microsoft.Emulator/operations/ab-cd"),
            "operations"
        );
        assert_eq!(word("subscriptions/0000-1/resources"), "resources");
    }
}
