//! The generic ARM resource store: resources keyed by lowercased id, PUT (201 create / 200
//! update), GET, PATCH (merge), DELETE (with the resource's children), an `ETag` on every resource
//! (`If-Match` / `If-None-Match`, 412 `PreconditionFailed`), both long-running styles
//! (`Azure-AsyncOperation` and `Location`, polled with `Retry-After`), `nextLink` paging, and
//! child resources (404 `ParentResourceNotFound` without their parent). It knows no provider:
//! rendering and completion styles come from the [`Provider`] it is handed.

use std::collections::{BTreeMap, HashMap};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::{arm_error, ArmRequest, Provider, ResourcePath};
use crate::http::{new_guid, take_page, ApiRequest, ApiResponse};

const DEFAULT_TOP: usize = 100;

/// One stored resource. Its Debug output leaves out `body` and `secrets`, which hold setting
/// values and keys.
#[derive(Clone)]
pub(crate) struct Resource {
    /// As first addressed (ARM keeps the case of the creating request).
    pub id: String,
    pub name: String,
    /// `namespace/type[/type...]`.
    pub kind: String,
    /// Every member but `id`, `name` and `type`, as last written.
    pub body: Value,
    /// Write-only data a provider keeps (access keys, ...): never rendered, read by actions.
    pub secrets: Value,
    /// Quoted, as ARM sends it in the `ETag` header.
    pub etag: String,
    pub provisioning_done: bool,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resource")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

impl Resource {
    pub fn new(path: &ResourcePath, body: Value) -> Self {
        Resource {
            id: path.id(),
            name: path.name().to_owned(),
            kind: path.kind(),
            body: without_identity(body),
            secrets: json!({}),
            etag: new_etag(),
            provisioning_done: true,
        }
    }
}

/// How a write completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Completion {
    /// 200 (update) / 201 (create) with the resource, done; DELETE: 200 without a body.
    Synchronous,
    /// 201 / 200 with the resource and an `Azure-AsyncOperation` header to poll for `status`.
    AzureAsyncOperation,
    /// 202 without a body and a `Location` header: 202 while running, then 200 (the resource).
    Location,
}

enum Operation {
    /// A PUT; the resource is done when the operation is.
    Put {
        resource_key: String,
        polls: u32,
    },
    Delete {
        polls: u32,
    },
}

#[derive(Default)]
pub(crate) struct ArmState {
    resources: BTreeMap<String, Resource>,
    operations: HashMap<String, Operation>,
    /// Per resource key: how many writes a provider refused as conflicting (Service Bus's
    /// `SubCode=40901`, see [`crate::options::EmulatorOptions::messaging_conflicts`]).
    pub refused_writes: HashMap<String, u32>,
}

/// A fresh `ETag`, quoted, in the shape ARM resource providers use (`"1D9625FB1DADF2B"`).
pub(crate) fn new_etag() -> String {
    format!("\"{:015X}\"", rand::random::<u64>() >> 4)
}

/// The body without the members ARM derives from the path.
fn without_identity(mut body: Value) -> Value {
    if let Some(object) = body.as_object_mut() {
        for member in ["id", "name", "type"] {
            object.remove(member);
        }
    }
    body
}

/// The generic rendering: the body, its identity and a `provisioningState`.
pub(crate) fn render_generic(resource: &Resource) -> Value {
    let mut out = identity(resource);
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

/// `id`, `name`, `type`, then the body's members.
pub(crate) fn identity(resource: &Resource) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(resource.id));
    out.insert("name".into(), json!(resource.name));
    out.insert("type".into(), json!(resource.kind));
    if let Some(body) = resource.body.as_object() {
        for (key, value) in body {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// RFC 7386 merge: objects merge member by member, `null` removes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(target) = target.as_object_mut() {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

pub(crate) fn not_found(path: &ResourcePath) -> ApiResponse {
    let names: Vec<&str> = path.pairs.iter().map(|(_, name)| name.as_str()).collect();
    arm_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!(
            "The Resource '{}/{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            path.kind(),
            names.join("/"),
            path.group
        ),
    )
}

fn parent_not_found(parent: &ResourcePath) -> ApiResponse {
    let names: Vec<&str> = parent.pairs.iter().map(|(_, name)| name.as_str()).collect();
    arm_error(
        StatusCode::NOT_FOUND,
        "ParentResourceNotFound",
        &format!(
            "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
            names.join("/")
        ),
    )
}

pub(crate) fn invalid_body() -> ApiResponse {
    arm_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestContent",
        "The request content was invalid and could not be deserialized.",
    )
}

fn precondition_failed() -> ApiResponse {
    arm_error(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
}

fn header<'a>(request: &'a ApiRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
}

/// Whether `condition` (an `If-Match` / `If-None-Match` value) names `etag`, or is `*`.
fn matches(condition: &str, etag: &str) -> bool {
    let bare = |tag: &str| {
        tag.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_owned()
    };
    condition
        .split(',')
        .any(|tag| tag.trim() == "*" || bare(tag) == bare(etag))
}

/// The JSON object body of a write, or the answer ARM gives a body that is not one.
pub(crate) fn object_body(request: &ApiRequest) -> Result<Value, ApiResponse> {
    match request.json_body() {
        Ok(body) if body.is_object() => Ok(body),
        _ => Err(invalid_body()),
    }
}

impl ArmState {
    pub fn get(&self, key: &str) -> Option<&Resource> {
        self.resources.get(key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Resource> {
        self.resources.get_mut(key)
    }

    /// Stores a resource as is (seeding and auto-created children); replaces one with its key.
    pub fn insert(&mut self, resource: Resource) {
        self.resources
            .insert(resource.id.to_ascii_lowercase(), resource);
    }

    /// Resources directly under `parent_key` of child type `kind` (lowercase), in key order.
    pub fn children<'a>(
        &'a self,
        parent_key: &str,
        kind: &str,
    ) -> impl Iterator<Item = &'a Resource> + 'a {
        let prefix = format!("{parent_key}/{kind}/");
        let length = prefix.len();
        self.resources
            .range(prefix.clone()..)
            .take_while(move |(key, _)| key.starts_with(&prefix))
            .filter(move |(key, _)| !key[length..].contains('/'))
            .map(|(_, resource)| resource)
    }

    /// 404 `ParentResourceNotFound` when the path is a child whose parent does not exist.
    pub fn check_parent(&self, path: &ResourcePath) -> Result<(), ApiResponse> {
        match path.parent() {
            Some(parent) if !self.resources.contains_key(&parent.key()) => {
                Err(parent_not_found(&parent))
            }
            _ => Ok(()),
        }
    }

    /// 412 when the request's `If-Match` / `If-None-Match` does not hold for the resource.
    pub fn check_preconditions(&self, request: &ApiRequest, key: &str) -> Result<(), ApiResponse> {
        let current = self
            .resources
            .get(key)
            .map(|resource| resource.etag.as_str());
        if let Some(condition) = header(request, "if-match") {
            if !current.is_some_and(|etag| matches(condition, etag)) {
                return Err(precondition_failed());
            }
        }
        if let Some(condition) = header(request, "if-none-match") {
            if current.is_some_and(|etag| matches(condition, etag)) {
                return Err(precondition_failed());
            }
        }
        Ok(())
    }

    /// The generic behaviour for a request no provider quirk answered.
    pub fn handle(&mut self, provider: &dyn Provider, request: &ArmRequest<'_>) -> ApiResponse {
        let path = &request.path;
        if let Err(answer) = self.check_parent(&path.resource()) {
            return answer;
        }
        match (request.method(), path.tail.as_deref()) {
            (&Method::GET, Some(collection)) => {
                let parent_key = if path.pairs.is_empty() {
                    format!(
                        "/subscriptions/{}/resourcegroups/{}/providers/{}",
                        path.subscription, path.group, path.namespace
                    )
                    .to_ascii_lowercase()
                } else if self.resources.contains_key(&path.key()) {
                    path.key()
                } else {
                    return parent_not_found(&path.resource());
                };
                let kind = collection.to_ascii_lowercase();
                let items: Vec<(String, Value)> = self
                    .children(&parent_key, &kind)
                    .map(|resource| {
                        (
                            resource.id.to_ascii_lowercase(),
                            provider.render(resource, request.api_version()),
                        )
                    })
                    .collect();
                page(request.http, items)
            }
            (_, Some(_)) => not_found(path),
            (&Method::GET, None) => match self.resources.get(&path.key()) {
                Some(found) => answer(provider, found, StatusCode::OK, request.api_version()),
                None => not_found(path),
            },
            (&Method::PUT, None) => match object_body(request.http) {
                Ok(body) => {
                    let completion = provider.completion(&Method::PUT, path);
                    self.put(provider, request, body, completion)
                }
                Err(answer) => answer,
            },
            (&Method::PATCH, None) => match object_body(request.http) {
                Ok(body) => self.patch(provider, request, &body),
                Err(answer) => answer,
            },
            (&Method::DELETE, None) => {
                let completion = provider.completion(&Method::DELETE, path);
                self.delete(request, completion)
            }
            _ => arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The method is not allowed on this resource.",
            ),
        }
    }

    /// PUT: replaces the body (creating the resource if missing) after the parent and
    /// precondition checks, and answers in the completion style.
    pub fn put(
        &mut self,
        provider: &dyn Provider,
        request: &ArmRequest<'_>,
        body: Value,
        completion: Completion,
    ) -> ApiResponse {
        let path = &request.path;
        let key = path.key();
        if let Err(answer) = self
            .check_parent(path)
            .and_then(|()| self.check_preconditions(request.http, &key))
        {
            return answer;
        }
        let existing = self.resources.get(&key);
        let created = existing.is_none();
        let mut resource = Resource::new(path, body);
        if let Some(existing) = existing {
            // ARM keeps the id's case and the write-only data of the first creation.
            resource.id.clone_from(&existing.id);
            resource.name.clone_from(&existing.name);
            resource.secrets = existing.secrets.clone();
        }
        resource.provisioning_done = completion == Completion::Synchronous;
        self.resources.insert(key.clone(), resource);
        if created {
            provider.on_created(self, &key);
        }
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let Some(stored) = self.resources.get(&key) else {
            return not_found(path);
        };
        match completion {
            Completion::Synchronous => answer(provider, stored, status, request.api_version()),
            Completion::AzureAsyncOperation => {
                let answer = answer(provider, stored, status, request.api_version());
                let url = self.start(
                    request,
                    "operations",
                    Operation::Put {
                        resource_key: key,
                        polls: 0,
                    },
                );
                answer.with_header("azure-asyncoperation", url)
            }
            Completion::Location => {
                let url = self.start(
                    request,
                    "operationResults",
                    Operation::Put {
                        resource_key: key,
                        polls: 0,
                    },
                );
                ApiResponse::empty(StatusCode::ACCEPTED)
                    .with_header("location", url)
                    .with_header("retry-after", "1")
            }
        }
    }

    /// PATCH: merges the body into the stored one (404 when missing); done at once.
    pub fn patch(
        &mut self,
        provider: &dyn Provider,
        request: &ArmRequest<'_>,
        patch: &Value,
    ) -> ApiResponse {
        let key = request.path.key();
        if let Err(answer) = self.check_preconditions(request.http, &key) {
            return answer;
        }
        let Some(resource) = self.resources.get_mut(&key) else {
            return not_found(&request.path);
        };
        merge(&mut resource.body, &without_identity(patch.clone()));
        resource.etag = new_etag();
        let resource = resource.clone();
        answer(provider, &resource, StatusCode::OK, request.api_version())
    }

    /// DELETE: removes the resource and its children; 204 when there was nothing to delete.
    pub fn delete(&mut self, request: &ArmRequest<'_>, completion: Completion) -> ApiResponse {
        let key = request.path.key();
        if let Err(answer) = self.check_preconditions(request.http, &key) {
            return answer;
        }
        if self.resources.remove(&key).is_none() {
            return ApiResponse::empty(StatusCode::NO_CONTENT);
        }
        let children = format!("{key}/");
        self.resources
            .retain(|other, _| !other.starts_with(&children));
        match completion {
            Completion::Synchronous => ApiResponse::empty(StatusCode::OK),
            Completion::AzureAsyncOperation => {
                let url = self.start(request, "operations", Operation::Delete { polls: 0 });
                ApiResponse::empty(StatusCode::ACCEPTED)
                    .with_header("azure-asyncoperation", url)
                    .with_header("retry-after", "1")
            }
            Completion::Location => {
                let url = self.start(request, "operationResults", Operation::Delete { polls: 0 });
                ApiResponse::empty(StatusCode::ACCEPTED)
                    .with_header("location", url)
                    .with_header("retry-after", "1")
            }
        }
    }

    /// Registers an operation and returns the URL to poll it at.
    fn start(
        &mut self,
        request: &ArmRequest<'_>,
        collection: &str,
        operation: Operation,
    ) -> String {
        let operation_id = new_guid();
        self.operations.insert(operation_id.clone(), operation);
        format!(
            "{}/subscriptions/{}/providers/Microsoft.Emulator/{collection}/{operation_id}?api-version={}",
            request.base,
            request.path.subscription,
            request.api_version()
        )
    }

    /// Counts a poll; `true` once the operation is done (the second poll), when a PUT's
    /// resource becomes provisioned.
    fn advance(&mut self, operation_id: &str) -> Option<(bool, Option<String>)> {
        let (polls, resource_key) = match self.operations.get_mut(operation_id)? {
            Operation::Put {
                resource_key,
                polls,
            } => (polls, Some(resource_key.clone())),
            Operation::Delete { polls } => (polls, None),
        };
        *polls += 1;
        let done = *polls >= 2;
        if done {
            if let Some(resource) = resource_key
                .as_ref()
                .and_then(|key| self.resources.get_mut(key))
            {
                resource.provisioning_done = true;
            }
        }
        Some((done, resource_key))
    }

    /// `Azure-AsyncOperation` polls: `InProgress` once, then `Succeeded`.
    pub fn poll_async_operation(&mut self, operation_id: &str) -> ApiResponse {
        match self.advance(operation_id) {
            None => operation_not_found(),
            Some((false, _)) => {
                ApiResponse::json(StatusCode::OK, &json!({ "status": "InProgress" }))
                    .with_header("retry-after", "1")
            }
            Some((true, _)) => ApiResponse::json(StatusCode::OK, &json!({ "status": "Succeeded" })),
        }
    }

    /// `Location` polls: 202 once, then 200, with the resource for a PUT.
    pub fn poll_location(
        &mut self,
        operation_id: &str,
        api_version: &str,
        provider_of: &dyn Fn(&str) -> &'static dyn Provider,
    ) -> ApiResponse {
        match self.advance(operation_id) {
            None => operation_not_found(),
            Some((false, _)) => {
                ApiResponse::empty(StatusCode::ACCEPTED).with_header("retry-after", "1")
            }
            Some((true, Some(key))) => match self.resources.get(&key) {
                Some(resource) => answer(
                    provider_of(&resource.kind),
                    resource,
                    StatusCode::OK,
                    api_version,
                ),
                None => ApiResponse::empty(StatusCode::OK),
            },
            Some((true, None)) => ApiResponse::empty(StatusCode::OK),
        }
    }

    /// `GET .../resources`: top-level resources under `prefix` (lowercase), as list items.
    pub fn list_top_level(
        &self,
        request: &ApiRequest,
        prefix: &str,
        provider_of: &dyn Fn(&str) -> &'static dyn Provider,
    ) -> ApiResponse {
        let items = self
            .resources
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(_, resource)| resource.kind.matches('/').count() == 1)
            .map(|(key, resource)| {
                let rendered = provider_of(&resource.kind).render(
                    resource,
                    request.query_param("api-version").unwrap_or_default(),
                );
                let mut item = json!({
                    "id": resource.id,
                    "name": resource.name,
                    "type": resource.kind,
                    "location": rendered["location"],
                    "tags": rendered.get("tags").cloned().unwrap_or_else(|| json!({})),
                });
                if let Some(kind) = rendered.get("kind").filter(|kind| kind.is_string()) {
                    item["kind"] = kind.clone();
                }
                (key.clone(), item)
            })
            .collect();
        page(request, items)
    }
}

/// The resource as the provider renders it, with its `ETag` header.
pub(crate) fn answer(
    provider: &dyn Provider,
    resource: &Resource,
    status: StatusCode,
    api_version: &str,
) -> ApiResponse {
    ApiResponse::json(status, &provider.render(resource, api_version))
        .with_header("etag", resource.etag.clone())
}

fn operation_not_found() -> ApiResponse {
    arm_error(
        StatusCode::NOT_FOUND,
        "OperationNotFound",
        "The operation was not found.",
    )
}

/// One page of `items` (key, rendered), after `$skiptoken`, at most `$top`, with a `nextLink`
/// when more follow.
fn page(request: &ApiRequest, items: Vec<(String, Value)>) -> ApiResponse {
    let top = request
        .query_param("$top")
        .and_then(|top| top.parse::<usize>().ok())
        .filter(|top| *top > 0)
        .unwrap_or(DEFAULT_TOP);
    let skip = request
        .query_param("$skiptoken")
        .and_then(|token| URL_SAFE_NO_PAD.decode(token).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let (values, continuation) = take_page(items, skip.as_deref(), top);
    let mut body = json!({ "value": values });
    if let Some(last) = continuation {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider whose writes complete through `Location`.
    struct LocationProvider;

    impl Provider for LocationProvider {
        fn namespace(&self) -> &'static str {
            "Test.Location"
        }

        fn completion(&self, _method: &Method, _path: &ResourcePath) -> Completion {
            Completion::Location
        }
    }

    fn request(method: Method, path: &str, body: &str) -> ApiRequest {
        ApiRequest {
            method,
            host: "management.azure.com".into(),
            path: path.into(),
            raw_query: "api-version=1".into(),
            query: vec![("api-version".into(), "1".into())],
            headers: hyper::HeaderMap::new(),
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    fn arm_request(http: &ApiRequest) -> ArmRequest<'_> {
        static OPTIONS: std::sync::LazyLock<crate::options::EmulatorOptions> =
            std::sync::LazyLock::new(Default::default);
        ArmRequest {
            http,
            path: ResourcePath::parse(&http.segments()).expect("path"),
            base: "https://management.azure.com".into(),
            options: &OPTIONS,
        }
    }

    fn operation_id(answer: &ApiResponse) -> String {
        let (_, location) = answer
            .headers
            .iter()
            .find(|(name, _)| name == "location")
            .expect("location header");
        let path = location.split('?').next().unwrap_or_default();
        path.rsplit('/').next().unwrap_or_default().to_owned()
    }

    #[test]
    fn location_style_writes_answer_202_then_the_resource() {
        let mut state = ArmState::default();
        let http = request(
            Method::PUT,
            "/subscriptions/s/resourceGroups/g/providers/Test.Location/things/t",
            r#"{"location":"westeurope","properties":{"a":1}}"#,
        );
        let put = arm_request(&http);
        let accepted = state.handle(&LocationProvider, &put);
        assert_eq!(accepted.status, StatusCode::ACCEPTED);
        assert!(accepted.body.is_empty());
        assert!(accepted
            .headers
            .iter()
            .any(|(name, value)| name == "retry-after" && value == "1"));
        let operation = operation_id(&accepted);
        let provider_of = |_: &str| -> &'static dyn Provider { &LocationProvider };
        let running = state.poll_location(&operation, "1", &provider_of);
        assert_eq!(running.status, StatusCode::ACCEPTED);
        let done = state.poll_location(&operation, "1", &provider_of);
        assert_eq!(done.status, StatusCode::OK);
        let body: Value = serde_json::from_slice(&done.body).expect("json");
        assert_eq!(body["properties"]["a"], 1);
        assert_eq!(body["properties"]["provisioningState"], "Succeeded");

        let http = request(Method::DELETE, &put.http.path, "");
        let delete = arm_request(&http);
        let accepted = state.handle(&LocationProvider, &delete);
        assert_eq!(accepted.status, StatusCode::ACCEPTED);
        let operation = operation_id(&accepted);
        assert_eq!(
            state.poll_location(&operation, "1", &provider_of).status,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            state.poll_location(&operation, "1", &provider_of).status,
            StatusCode::OK
        );
        assert!(state.get(&delete.path.key()).is_none());
    }

    #[test]
    fn resources_debug_without_values_or_keys() {
        let path = ResourcePath::parse(&[
            "subscriptions",
            "s",
            "resourceGroups",
            "g",
            "providers",
            "N",
            "t",
            "r",
        ])
        .expect("path");
        let mut resource =
            Resource::new(&path, json!({"properties": {"password": "canary-value"}}));
        resource.secrets = json!({"keys": ["canary-key"]});
        let debug = format!("{resource:?}");
        assert!(!debug.contains("canary"), "{debug}");
        assert!(debug.contains("/providers/N/t/r"));
    }

    #[test]
    fn merge_patches_members_and_null_removes() {
        let mut target = json!({"properties": {"a": 1, "b": {"c": 2, "d": 3}}, "tags": {"x": "1"}});
        merge(
            &mut target,
            &json!({"properties": {"b": {"c": 20, "d": null}, "e": [1]}, "tags": null}),
        );
        assert_eq!(
            target,
            json!({"properties": {"a": 1, "b": {"c": 20}, "e": [1]}})
        );
    }

    #[test]
    fn etag_conditions_match_quoted_weak_and_star() {
        assert!(matches("*", "\"A1\""));
        assert!(matches("\"A1\"", "\"A1\""));
        assert!(matches("W/\"A1\", \"B2\"", "\"A1\""));
        assert!(!matches("\"B2\"", "\"A1\""));
        assert_eq!(new_etag().len(), 17);
    }
}
