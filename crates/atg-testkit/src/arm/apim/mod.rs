//! Microsoft.ApiManagement: a service's entities (named values, backends, policy fragments, API
//! version sets, APIs with operations, schemas and policies, products with their APIs and groups,
//! groups, users, subscriptions), grounded in `shared/azure-recordings/apim/`:
//! - entity writes answer at once: PUT 201 (create) / 200 (update) with the entity and its `ETag`;
//!   a stale `If-Match` answers 412 (the generic store);
//! - a named value's PUT or PATCH, and an API imported from a specification (`format` + `value`),
//!   answer 202 without a body and `Location: <the entity's URL>&asyncId=...&asyncCode=201|200`;
//!   a GET of that URL answers the entity with the status `asyncCode` names;
//! - a secret named value's `value` is never in a GET or a list: only `POST .../listValue` reads
//!   it; a subscription's keys only `POST .../listSecrets` (keys made up when a PUT has none);
//! - a policy's XML is re-formatted on write (one element a line, tab-indented, CRLF), as the
//!   service does, so a client comparing texts sees a difference that is not one;
//! - an API's `path` loses its leading `/` and gains the defaults the service fills in;
//! - a new service (PUT or seeded) holds what Azure creates with one: the groups
//!   `administrators`, `developers`, `guests`, the products `starter` and `unlimited` with the
//!   administrator's subscription to each (ids of the service's making), the administrator
//!   user `1` and the `master` subscription;
//! - lists carry `count`; `HEAD` answers 200 (an entity) or 204 (a link) with no body;
//! - a link (a product's API or group, a group's user) has no GET in the REST specification
//!   (only HEAD, PUT, DELETE and the list): a GET answers 405, as ASP.NET services do;
//! - a Consumption service has no groups: any request to its groups or a product's groups
//!   answers 400 `MethodNotAllowedInPricingTier` (Azure/apiops#686).
//!
//! The service itself is a plain ARM resource here: its provisioning (an hour on Azure) is not
//! modelled, tests seed it.

mod xml;

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::store::{self, identity, not_found, object_body, Resource};
use super::{arm_error, ArmRequest, ArmState, Completion, Provider, ResourcePath};
use crate::http::ApiResponse;

use xml::reformat;

pub(crate) struct ApiManagementProvider;

/// Groups every service has, with their recorded properties.
const SYSTEM_GROUPS: &[(&str, &str, &str)] = &[
    (
        "administrators",
        "Administrators",
        "Administrators is a built-in group containing the admin email account provided at the time of service creation. Its membership is managed by the system.",
    ),
    (
        "developers",
        "Developers",
        "Developers is a built-in group. Its membership is managed by the system. Signed-in users fall into this group.",
    ),
    (
        "guests",
        "Guests",
        "Guests is a built-in group. Its membership is managed by the system. Unauthenticated users visiting the developer portal fall into this group.",
    ),
];

/// Products a new Developer or Premium service has.
const DEFAULT_PRODUCTS: &[(&str, &str, Option<u32>)] = &[
    ("starter", "Starter", Some(1)),
    ("unlimited", "Unlimited", None),
];

impl Provider for ApiManagementProvider {
    fn namespace(&self) -> &'static str {
        "Microsoft.ApiManagement"
    }

    fn completion(&self, _method: &Method, _path: &ResourcePath) -> Completion {
        Completion::Synchronous
    }

    fn handle(&self, state: &mut ArmState, request: &ArmRequest<'_>) -> Option<ApiResponse> {
        let path = &request.path;
        let types = path.types();
        if types.first().map(String::as_str) != Some("service") {
            return None;
        }
        let entity = types.last().map(String::as_str).unwrap_or_default();
        let tail = path.tail.as_deref().map(str::to_ascii_lowercase);
        let groups =
            types[1..].iter().any(|kind| kind == "groups") || tail.as_deref() == Some("groups");
        if groups && is_consumption(state, path) {
            return Some(arm_error(
                StatusCode::BAD_REQUEST,
                "MethodNotAllowedInPricingTier",
                "Method not allowed in Consumption pricing tier",
            ));
        }
        let method = request.method().clone();
        let answer = match (&method, tail.as_deref()) {
            (&Method::GET, None) if request.http.query_param("asyncId").is_some() => {
                async_result(self, state, request)
            }
            (&Method::GET, None) if is_link(&types) => arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The requested resource does not support http method 'GET'.",
            ),
            (&Method::HEAD, None) => match state.get(&path.key()) {
                Some(found) if is_link(&types) => ApiResponse::empty(StatusCode::NO_CONTENT)
                    .with_header("etag", found.etag.clone()),
                Some(found) => {
                    ApiResponse::empty(StatusCode::OK).with_header("etag", found.etag.clone())
                }
                None => ApiResponse::empty(StatusCode::NOT_FOUND),
            },
            (&Method::GET, Some(_)) => {
                let mut answer = state.handle(self, request);
                with_count(&mut answer);
                answer
            }
            (&Method::POST, Some("listvalue")) if entity == "namedvalues" => {
                match state.get(&path.key()) {
                    Some(found) => ApiResponse::json(
                        StatusCode::OK,
                        &json!({ "value": found.body["properties"]["value"] }),
                    )
                    .with_header("etag", found.etag.clone()),
                    None => not_found(path),
                }
            }
            (&Method::POST, Some("listsecrets")) if entity == "subscriptions" => {
                match state.get(&path.key()) {
                    Some(found) => ApiResponse::json(
                        StatusCode::OK,
                        &json!({
                            "primaryKey": found.body["properties"]["primaryKey"],
                            "secondaryKey": found.body["properties"]["secondaryKey"],
                        }),
                    )
                    .with_header("etag", found.etag.clone()),
                    None => not_found(path),
                }
            }
            (&Method::PUT, None) if types.len() > 1 => {
                let body = match object_body(request.http) {
                    Ok(body) => body,
                    Err(answer) => return Some(answer),
                };
                let imported = entity == "apis" && body["properties"].get("format").is_some();
                let body = match prepare(state, path, entity, body) {
                    Ok(body) => body,
                    Err(answer) => return Some(answer),
                };
                let answer = state.put(self, request, body, Completion::Synchronous);
                if entity == "namedvalues" || imported {
                    accepted(request, answer)
                } else {
                    answer
                }
            }
            (&Method::PATCH, None) if entity == "namedvalues" => match object_body(request.http) {
                Ok(body) => {
                    let answer = state.patch(self, request, &body);
                    accepted(request, answer)
                }
                Err(answer) => answer,
            },
            _ => return None,
        };
        Some(answer)
    }

    fn render(&self, resource: &Resource, api_version: &str) -> Value {
        let kind = resource.kind.to_ascii_lowercase();
        if kind == "microsoft.apimanagement/service" {
            return store::render_generic(resource);
        }
        let mut out = identity(resource);
        if kind.ends_with("/apis") && !kind.contains("/products/") {
            render_api(&mut out, api_version);
        }
        if let Some(properties) = out["properties"].as_object_mut() {
            if kind.ends_with("/namedvalues") && properties.get("secret") == Some(&json!(true)) {
                properties.remove("value");
            }
            if kind.ends_with("/subscriptions") {
                properties.remove("primaryKey");
                properties.remove("secondaryKey");
            }
        }
        out
    }

    fn on_created(&self, state: &mut ArmState, resource_key: &str) {
        let Some(created) = state.get(resource_key).cloned() else {
            return;
        };
        if created
            .kind
            .eq_ignore_ascii_case("Microsoft.ApiManagement/service")
        {
            create_defaults(state, &created);
        }
    }
}

/// An API as the service shows it: `authenticationSettings` with nulls (and from 2022 on their
/// lists), and a `type` only when it is not the default `http`.
fn render_api(api: &mut Value, api_version: &str) {
    let Some(properties) = api["properties"].as_object_mut() else {
        return;
    };
    let mut settings = json!({ "oAuth2": null, "openid": null });
    if api_version >= "2022" {
        settings["oAuth2AuthenticationSettings"] = json!([]);
        settings["openidAuthenticationSettings"] = json!([]);
    }
    properties.insert("authenticationSettings".into(), settings);
    if properties.get("type") == Some(&json!("http")) {
        properties.remove("type");
    }
}

/// A product's APIs and groups, and a group's users, are links to entities of the service.
fn is_link(types: &[String]) -> bool {
    match types {
        [_, parent, linked] => {
            (parent == "products" && matches!(linked.as_str(), "apis" | "groups"))
                || (parent == "groups" && linked == "users")
        }
        _ => false,
    }
}

/// What the service does to an entity's body before storing it; a link to an entity that does
/// not exist is refused.
fn prepare(
    state: &ArmState,
    path: &ResourcePath,
    entity: &str,
    mut body: Value,
) -> Result<Value, ApiResponse> {
    if !body["properties"].is_object() {
        body["properties"] = json!({});
    }
    let properties = &mut body["properties"];
    match entity {
        "policies" => {
            if let Some(text) = properties["value"].as_str() {
                properties["value"] = json!(reformat(text));
            }
            if properties.get("format").is_none() {
                properties["format"] = json!("xml");
            }
        }
        "apis" if path.pairs.len() == 2 => {
            if let Some(text) = properties["path"].as_str() {
                properties["path"] = json!(text.trim_start_matches('/'));
            }
            for (member, default) in [
                ("apiRevision", json!("1")),
                ("isCurrent", json!(true)),
                ("subscriptionRequired", json!(true)),
                ("description", Value::Null),
                ("serviceUrl", Value::Null),
                (
                    "subscriptionKeyParameterNames",
                    json!({ "header": "Ocp-Apim-Subscription-Key", "query": "subscription-key" }),
                ),
            ] {
                if properties.get(member).is_none() {
                    properties[member] = default;
                }
            }
            if let Some(object) = properties.as_object_mut() {
                // The specification is parsed into the API (not modelled); a clone or a new
                // revision is made from its source, which is not echoed.
                for member in ["format", "value", "sourceApiId", "authenticationSettings"] {
                    object.remove(member);
                }
            }
        }
        "apiversionsets" => {
            for member in ["versionHeaderName", "versionQueryName"] {
                if properties.get(member).is_none() {
                    properties[member] = Value::Null;
                }
            }
        }
        "subscriptions" => {
            for member in ["primaryKey", "secondaryKey"] {
                if properties[member].as_str().is_none_or(str::is_empty) {
                    properties[member] = json!(new_key());
                }
            }
            if properties.get("state").is_none() {
                properties["state"] = json!("submitted");
            }
        }
        _ if is_link(&path.types()) => {
            // A product's API or group, a group's user: the entity linked must exist; the link
            // shows it.
            let service = ResourcePath {
                pairs: path.pairs[..1].to_vec(),
                tail: None,
                ..path.clone()
            };
            let linked = format!(
                "{}/{entity}/{}",
                service.key(),
                path.name().to_ascii_lowercase()
            );
            match state.get(&linked) {
                Some(found) => body["properties"] = found.body["properties"].clone(),
                None => return Err(not_found(path)),
            }
        }
        _ => {}
    }
    Ok(body)
}

/// APIM's asynchronous answer to a write already carried out: 202, no body, and a `Location`
/// to the entity with the status the GET will answer.
fn accepted(request: &ArmRequest<'_>, done: ApiResponse) -> ApiResponse {
    if !done.status.is_success() {
        return done;
    }
    let code = if done.status == StatusCode::CREATED {
        201
    } else {
        200
    };
    let async_id = format!("{:024x}", rand::random::<u128>() >> 32);
    ApiResponse::empty(StatusCode::ACCEPTED).with_header(
        "location",
        format!(
            "{}{}?api-version={}&asyncId={async_id}&asyncCode={code}",
            request.base,
            request.http.path,
            request.api_version()
        ),
    )
}

/// The GET of an `asyncId` location: the entity, with the status its write answered.
fn async_result(
    provider: &ApiManagementProvider,
    state: &ArmState,
    request: &ArmRequest<'_>,
) -> ApiResponse {
    let status = match request.http.query_param("asyncCode") {
        Some("201") => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    match state.get(&request.path.key()) {
        Some(found) => store::answer(provider, found, status, request.api_version()),
        None => not_found(&request.path),
    }
}

/// APIM lists carry the number of items on the page.
fn with_count(answer: &mut ApiResponse) {
    if let Ok(mut body) = serde_json::from_slice::<Value>(&answer.body) {
        if let Some(count) = body["value"].as_array().map(Vec::len) {
            body["count"] = json!(count);
            answer.body = body.to_string().into();
        }
    }
}

/// A subscription key in the service's shape (32 hex characters).
fn new_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn child(service: &Resource, kind: &str, name: &str, properties: &Value) -> Resource {
    let segments: Vec<String> = format!("{}/{kind}/{name}", service.id)
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let path = ResourcePath::parse(&segments).unwrap_or_else(|| unreachable!("a child id parses"));
    Resource::new(&path, json!({ "properties": properties.clone() }))
}

/// Whether the service `path` is in is of the Consumption tier, which has no groups (its
/// groups and product groups answer 400 `MethodNotAllowedInPricingTier`, as Azure/apiops#686
/// shows).
fn is_consumption(state: &ArmState, path: &ResourcePath) -> bool {
    let service = ResourcePath {
        pairs: path.pairs[..1].to_vec(),
        tail: None,
        ..path.clone()
    };
    state
        .get(&service.key())
        .is_some_and(|found| found.body["sku"]["name"] == "Consumption")
}

/// What Azure creates with a service (a Consumption one has no groups).
fn create_defaults(state: &mut ArmState, service: &Resource) {
    let groups = service.body["sku"]["name"] != "Consumption";
    for (name, display, description) in SYSTEM_GROUPS.iter().filter(|_| groups) {
        state.insert(child(
            service,
            "groups",
            name,
            &json!({ "displayName": display, "description": description, "builtIn": true, "type": "system", "externalId": null }),
        ));
    }
    for (name, display, limit) in DEFAULT_PRODUCTS {
        state.insert(child(
            service,
            "products",
            name,
            &json!({
                "displayName": display,
                "description": format!("Subscribers will be able to run {} calls.", if limit.is_some() { "5 calls/minute up to a maximum of 100" } else { "unlimited" }),
                "subscriptionRequired": true,
                "approvalRequired": limit.is_some(),
                "subscriptionsLimit": limit,
                "state": "published",
            }),
        ));
        // The administrator's subscription to it, with an id of the service's making.
        state.insert(child(
            service,
            "subscriptions",
            &new_key()[..24],
            &json!({
                "ownerId": format!("{}/users/1", service.id),
                "scope": format!("{}/products/{name}", service.id),
                "displayName": null,
                "state": "active",
                "allowTracing": false,
                "primaryKey": new_key(),
                "secondaryKey": new_key(),
            }),
        ));
        for (group, _, _) in SYSTEM_GROUPS.iter().filter(|_| groups) {
            state.insert(child(
                service,
                &format!("products/{name}/groups"),
                group,
                &json!({ "displayName": group, "builtIn": true, "type": "system" }),
            ));
        }
    }
    state.insert(child(
        service,
        "users",
        "1",
        &json!({
            "firstName": "Administrator",
            "lastName": "",
            "email": "admin@contoso.com",
            "state": "active",
            "note": null,
            "identities": [{ "provider": "Azure", "id": "admin@contoso.com" }],
        }),
    ));
    state.insert(child(
        service,
        "subscriptions",
        "master",
        &json!({
            "ownerId": format!("{}/users/1", service.id),
            "scope": format!("{}/", service.id),
            "displayName": "Built-in all-access subscription",
            "state": "active",
            "allowTracing": false,
            "primaryKey": new_key(),
            "secondaryKey": new_key(),
        }),
    ));
}
