//! Microsoft.Web: sites of kinds `app`, `app,linux`, `functionapp`, `functionapp,linux` and their
//! slots, grounded in `shared/azure-recordings/appservice/` (status codes, JSON shapes, casing):
//! - a site or slot PUT completes at once with 200 and the site shape the recordings show (the
//!   2023-01-01 members only from that api-version on, `site.json`); a slot needs `location` and
//!   `properties.serverFarmId`; each creates its configuration (`config/appsettings`,
//!   `config/connectionstrings`, `config/azurestorageaccounts`, `config/web`, and for a site
//!   `config/slotConfigNames`; for function apps the host keys);
//! - `POST config/{appsettings|connectionstrings|azurestorageaccounts}/list` reads, `PUT` replaces
//!   the whole map (a GET of those is refused: values are read only through `list`);
//! - `config/slotConfigNames` (site only): GET, and a PUT that replaces all three name lists;
//! - `config/web`: GET, PUT, PATCH (whose answer names the site, as recorded);
//! - function apps: `GET functions`, `POST host/default/listkeys`, `PUT|DELETE
//!   host/default/{functionKeys|systemKeys}/{name}`, `POST functions/{fn}/listkeys`,
//!   `PUT|DELETE functions/{fn}/keys/{name}`; functions exist only when seeded (code is never
//!   deployed here), so a PUT of a function is refused.
//!
//! Every route under a site also answers under `/slots/{slot}/`.

use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

mod config;
mod keys;

use self::config::{put_map_config, put_slot_config_names, read_config, write_config_web};
use self::keys::{new_key, write_key};
use super::store::{identity, not_found, object_body, Resource};
use super::{arm_error, ArmRequest, ArmState, Completion, Provider, ResourcePath};
use crate::http::ApiResponse;

/// The Microsoft.Web api-versions of the spec readme (2016-08-01 on).
const API_VERSIONS: &[&str] = &[
    "2016-08-01",
    "2018-02-01",
    "2018-11-01",
    "2019-08-01",
    "2020-06-01",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-01-15",
    "2021-02-01",
    "2021-03-01",
    "2022-03-01",
    "2022-09-01",
    "2023-01-01",
    "2023-12-01",
    "2024-04-01",
    "2024-11-01",
    "2025-03-01",
    "2025-05-01",
    "2026-03-15",
    "2026-07-15",
    "2026-09-01",
];

/// Site properties and site-config members the recordings show only from 2023-01-01 on.
const SITE_MEMBERS_SINCE_2023: &[&str] = &[
    "afdEnabled",
    "daprConfig",
    "ipMode",
    "vnetBackupRestoreEnabled",
    "managedEnvironmentId",
    "endToEndEncryptionEnabled",
    "functionsRuntimeAdminIsolationEnabled",
    "inFlightFeatures",
    "sshEnabled",
];
const SITE_CONFIG_MEMBERS_SINCE_2023: &[&str] = &["sitePrivateLinkHostEnabled"];
const HOST_NAME_SSL_STATE_MEMBERS_SINCE_2023: &[&str] = &["certificateResourceId", "virtualIPv6"];

/// Configuration maps read by `POST .../list` and replaced by `PUT`.
const MAP_CONFIGS: &[&str] = &["appsettings", "connectionstrings", "azurestorageaccounts"];

fn site_template() -> Value {
    serde_json::from_str(include_str!("site.json")).unwrap_or_else(|_| json!({}))
}

fn config_web_template() -> Value {
    serde_json::from_str(include_str!("config_web.json")).unwrap_or_else(|_| json!({}))
}

pub(crate) struct WebProvider;

/// Where a request lands: the site or slot it belongs to, and the route below it.
struct Scope {
    /// `sites/{site}` or `sites/{site}/slots/{slot}`.
    app: ResourcePath,
    /// Type/name pairs below the app, lowercased types.
    below: Vec<(String, String)>,
}

fn scope(path: &ResourcePath) -> Option<Scope> {
    let types = path.types();
    let depth = match types.as_slice() {
        [site, slots, ..] if site == "sites" && slots == "slots" => 2,
        [site, ..] if site == "sites" => 1,
        _ => return None,
    };
    let app = ResourcePath {
        pairs: path.pairs.get(..depth)?.to_vec(),
        tail: None,
        ..path.clone()
    };
    let below = path.pairs[depth..]
        .iter()
        .map(|(kind, name)| (kind.to_ascii_lowercase(), name.clone()))
        .collect();
    Some(Scope { app, below })
}

fn is_function_app(site: &Resource) -> bool {
    site.body["kind"]
        .as_str()
        .is_some_and(|kind| kind.to_ascii_lowercase().contains("functionapp"))
}

fn bad_request(message: &str) -> ApiResponse {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

impl Provider for WebProvider {
    fn namespace(&self) -> &'static str {
        "Microsoft.Web"
    }

    fn api_versions(&self) -> &'static [&'static str] {
        API_VERSIONS
    }

    fn completion(&self, _method: &Method, _path: &ResourcePath) -> Completion {
        Completion::Synchronous
    }

    fn handle(&self, state: &mut ArmState, request: &ArmRequest<'_>) -> Option<ApiResponse> {
        let scope = scope(&request.path)?;
        let method = request.method().clone();
        let tail = request.path.tail.as_deref().map(str::to_ascii_lowercase);
        let below: Vec<(&str, &str)> = scope
            .below
            .iter()
            .map(|(kind, name)| (kind.as_str(), name.as_str()))
            .collect();
        // Everything below an app needs the app.
        if !below.is_empty() || tail.as_deref().is_some_and(|tail| tail != "slots") {
            if let Err(answer) = app_exists(state, &scope.app) {
                return Some(answer);
            }
        }
        let answer = match (method, below.as_slice(), tail.as_deref()) {
            (Method::PUT, [], None) => put_app(self, state, request),
            (Method::GET, [("config", name)], None) if is_map_config(name) => {
                return Some(arm_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "MethodNotAllowed",
                    "The requested resource does not support http method 'GET'.",
                ))
            }
            (Method::POST, [("config", name)], Some("list")) if is_map_config(name) => {
                read_config(state, request)
            }
            (Method::PUT, [("config", name)], None) if is_map_config(name) => {
                put_map_config(state, request, &name.to_ascii_lowercase())
            }
            (method, [("config", name)], None) if name.eq_ignore_ascii_case("slotconfignames") => {
                if scope.app.pairs.len() > 1 {
                    not_found(&request.path)
                } else if method == Method::PUT {
                    put_slot_config_names(state, request)
                } else if method == Method::GET {
                    read_config(state, request)
                } else {
                    return None;
                }
            }
            (method, [("config", name)], None) if name.eq_ignore_ascii_case("web") => {
                match method {
                    Method::GET => read_config(state, request),
                    Method::PUT | Method::PATCH => {
                        write_config_web(state, request, &scope.app, method == Method::PATCH)
                    }
                    _ => return None,
                }
            }
            (_, [("config", _)], _) => not_found(&request.path),
            (Method::GET, [], Some(_)) => list_with_null_links(state.handle(self, request)),
            (Method::PUT, [("functions", _)], None) => bad_request(
                "Functions are created by deploying code, which the emulator does not do; seed them through the control API (PUT /_emulator/arm/{resource id}).",
            ),
            (Method::POST, [("functions", name)], Some("listkeys")) => {
                match state.get(&request.path.key()) {
                    Some(function) => ApiResponse::json(
                        StatusCode::OK,
                        &json!({
                            "id": function.id,
                            "name": name,
                            "type": "Microsoft.Web/sites/functions",
                            "properties": function.secrets["keys"],
                        }),
                    ),
                    None => not_found(&request.path),
                }
            }
            (method, [("functions", _), ("keys", key)], None) => {
                let holder = request.path.parent()?;
                write_key(state, request, &holder, "keys", key, &method)
            }
            (Method::POST, [("host", _)], Some("listkeys")) => {
                match state.get(&request.path.key()) {
                    Some(host) => ApiResponse::json(StatusCode::OK, &host.secrets),
                    None => not_found(&request.path),
                }
            }
            (method, [("host", _), (kind, key)], None)
                if matches!(*kind, "functionkeys" | "systemkeys" | "masterkey") =>
            {
                let holder = request.path.parent()?;
                let member = match *kind {
                    "functionkeys" => "functionKeys",
                    "systemkeys" => "systemKeys",
                    _ => "masterKey",
                };
                write_key(state, request, &holder, member, key, &method)
            }
            _ => return None,
        };
        Some(answer)
    }

    fn render(&self, resource: &Resource, api_version: &str) -> Value {
        let kind = resource.kind.to_ascii_lowercase();
        match kind.as_str() {
            "microsoft.web/sites" | "microsoft.web/sites/slots" => {
                render_app(resource, api_version)
            }
            "microsoft.web/sites/functions" => {
                let mut out = identity(resource);
                out["name"] = json!(qualified_name(&resource.id));
                out
            }
            _ => identity(resource),
        }
    }

    fn on_created(&self, state: &mut ArmState, resource_key: &str) {
        let Some(created) = state.get(resource_key).cloned() else {
            return;
        };
        match created.kind.to_ascii_lowercase().as_str() {
            "microsoft.web/sites" | "microsoft.web/sites/slots" => {
                create_app_children(state, &created);
            }
            "microsoft.web/sites/functions" => {
                if let Some(function) = state.get_mut(resource_key) {
                    function.secrets = json!({ "keys": { "default": new_key() } });
                    if !function.body["properties"].is_object() {
                        function.body["properties"] = json!({});
                    }
                    let name = created.name.clone();
                    function.body["properties"]["name"] = json!(name);
                    function.body["properties"]["isDisabled"] = json!(false);
                }
            }
            _ => {}
        }
    }
}

/// App Service lists (`GET .../slots`, `.../functions`) end with `"nextLink": null` and
/// carry `"id": null`, as recorded.
fn list_with_null_links(mut answer: ApiResponse) -> ApiResponse {
    if let Ok(mut body) = serde_json::from_slice::<Value>(&answer.body) {
        if body["value"].is_array() {
            if body.get("nextLink").is_none() {
                body["nextLink"] = Value::Null;
            }
            body["id"] = Value::Null;
            answer.body = body.to_string().into();
        }
    }
    answer
}

fn is_map_config(name: &str) -> bool {
    MAP_CONFIGS
        .iter()
        .any(|config| config.eq_ignore_ascii_case(name))
}

fn app_exists(state: &ArmState, app: &ResourcePath) -> Result<(), ApiResponse> {
    state.check_parent(app)?;
    if state.get(&app.key()).is_some() {
        Ok(())
    } else {
        Err(not_found(app))
    }
}

/// `site` or `site/slot` (`.../sites/{site}/slots/{slot}` and its children).
fn qualified_name(id: &str) -> String {
    let segments: Vec<&str> = id.split('/').collect();
    let names: Vec<&str> = segments
        .iter()
        .enumerate()
        .skip(7)
        .filter(|(index, _)| index % 2 == 0)
        .map(|(_, name)| *name)
        .collect();
    names.join("/")
}

/// The site (or slot) id, name and host-name form of any id at or below it.
struct AppNames {
    id: String,
    /// `site` or `site/slot`, as the service names the resource.
    qualified: String,
    site: String,
    slot: Option<String>,
    group: String,
    subscription: String,
}

fn app_names(id: &str) -> AppNames {
    let segments: Vec<&str> = id.split('/').collect();
    let site = segments.get(8).copied().unwrap_or_default().to_owned();
    let slot = (segments
        .get(9)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("slots")))
    .then(|| segments.get(10).copied().unwrap_or_default().to_owned());
    let depth = if slot.is_some() { 11 } else { 9 };
    AppNames {
        id: segments[..depth.min(segments.len())].join("/"),
        qualified: slot
            .as_ref()
            .map_or_else(|| site.clone(), |slot| format!("{site}/{slot}")),
        site,
        slot,
        group: segments.get(4).copied().unwrap_or_default().to_owned(),
        subscription: segments.get(2).copied().unwrap_or_default().to_owned(),
    }
}

/// Replaces the template's `__SITE__`, `__GROUP__` and `__SUBSCRIPTION__` in every string.
fn fill(value: &mut Value, names: &AppNames) {
    match value {
        Value::String(text) if text.contains("__") => {
            let host = names.slot.as_ref().map_or_else(
                || names.site.clone(),
                |slot| format!("{}-{slot}", names.site),
            );
            *text = text
                .replace("__SITE__", &host)
                .replace("__GROUP__", &names.group)
                .replace("__SUBSCRIPTION__", &names.subscription);
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fill(item, names)),
        Value::Object(members) => members.values_mut().for_each(|member| fill(member, names)),
        _ => {}
    }
}

fn older_than_2023(api_version: &str) -> bool {
    api_version < "2023-01-01"
}

/// A site or slot: the recorded site shape, with what was written over it.
fn render_app(resource: &Resource, api_version: &str) -> Value {
    let names = app_names(&resource.id);
    let mut properties = site_template();
    fill(&mut properties, &names);
    if let Some(written) = resource.body["properties"].as_object() {
        for (key, value) in written {
            if key != "siteConfig" && properties.get(key).is_some() {
                properties[key] = value.clone();
            }
        }
    }
    properties["name"] = json!(match &names.slot {
        Some(slot) => format!("{}({slot})", names.site),
        None => names.site.clone(),
    });
    properties["repositorySiteName"] = json!(names.site);
    properties["slotName"] = names.slot.as_ref().map_or(Value::Null, |slot| json!(slot));
    let kind = resource.body["kind"].as_str().unwrap_or("app");
    properties["kind"] = json!(kind);
    if older_than_2023(api_version) {
        if let Some(members) = properties.as_object_mut() {
            for member in SITE_MEMBERS_SINCE_2023 {
                members.remove(*member);
            }
        }
        if let Some(members) = properties["siteConfig"].as_object_mut() {
            for member in SITE_CONFIG_MEMBERS_SINCE_2023 {
                members.remove(*member);
            }
        }
        for state in properties["hostNameSslStates"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(members) = state.as_object_mut() {
                for member in HOST_NAME_SSL_STATE_MEMBERS_SINCE_2023 {
                    members.remove(*member);
                }
            }
        }
    }
    let mut out = Map::new();
    out.insert("id".into(), json!(resource.id));
    out.insert("name".into(), json!(names.qualified));
    out.insert("type".into(), json!(resource.kind));
    out.insert("kind".into(), json!(kind));
    out.insert("location".into(), resource.body["location"].clone());
    if let Some(tags) = resource.body.get("tags").filter(|tags| tags.is_object()) {
        out.insert("tags".into(), tags.clone());
    }
    out.insert("properties".into(), properties);
    Value::Object(out)
}

/// PUT of a site or slot: `location` (and for a slot `serverFarmId`) required; 200 at once.
fn put_app(provider: &WebProvider, state: &mut ArmState, request: &ArmRequest<'_>) -> ApiResponse {
    let mut body = match object_body(request.http) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    if body["location"].as_str().is_none_or(str::is_empty) {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    }
    let slot = request.path.pairs.len() > 1;
    if slot && !body["properties"]["serverFarmId"].is_string() {
        return bad_request("The parameter properties.serverFarmId has an invalid value.");
    }
    if body["kind"].as_str().is_none() {
        // A slot takes its site's kind.
        let kind = request
            .path
            .parent()
            .and_then(|site| state.get(&site.key()))
            .and_then(|site| site.body["kind"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "app".to_owned());
        body["kind"] = json!(kind);
    }
    let mut answer = state.put(provider, request, body, Completion::Synchronous);
    if answer.status == StatusCode::CREATED {
        // The recordings answer 200 to a create as to an update.
        answer.status = StatusCode::OK;
    }
    answer
}

/// The configuration children a site or slot is created with.
fn create_app_children(state: &mut ArmState, app: &Resource) {
    let path_of = |name: &str| format!("{}/config/{name}", app.id);
    let location = app.body["location"].clone();
    let site_config = &app.body["properties"]["siteConfig"];
    let settings: Map<String, Value> = site_config["appSettings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|setting| {
            Some((
                setting["name"].as_str()?.to_owned(),
                setting["value"].clone(),
            ))
        })
        .collect();
    let connection_strings: Map<String, Value> = site_config["connectionStrings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry["name"].as_str()?.to_owned(),
                json!({"value": entry["connectionString"], "type": entry["type"]}),
            ))
        })
        .collect();
    let mut web = config_web_template();
    if let Some(members) = site_config.as_object() {
        for (key, value) in members {
            if !matches!(key.as_str(), "appSettings" | "connectionStrings")
                && web.get(key).is_some()
            {
                web[key] = value.clone();
            }
        }
    }
    fill(&mut web, &app_names(&app.id));
    let mut children = vec![
        ("appsettings", Value::Object(settings)),
        ("connectionstrings", Value::Object(connection_strings)),
        ("azurestorageaccounts", json!({})),
        ("web", web),
    ];
    if !app.kind.to_ascii_lowercase().ends_with("slots") {
        children.push((
            "slotConfigNames",
            json!({"connectionStringNames": null, "appSettingNames": null, "azureStorageConfigNames": null}),
        ));
    }
    for (name, properties) in children {
        let mut child = resource_at(
            &path_of(name),
            json!({"location": location, "properties": properties}),
        );
        child.etag.clone_from(&app.etag);
        state.insert(child);
    }
    if is_function_app(app) {
        let mut host = resource_at(
            &format!("{}/host/default", app.id),
            json!({"location": location}),
        );
        host.secrets = json!({
            "masterKey": new_key(),
            "functionKeys": { "default": new_key() },
            "systemKeys": {},
        });
        state.insert(host);
    }
}

fn resource_at(id: &str, body: Value) -> Resource {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    let path = ResourcePath::parse(&segments).unwrap_or_else(|| ResourcePath {
        subscription: String::new(),
        group: String::new(),
        namespace: "Microsoft.Web".into(),
        pairs: Vec::new(),
        tail: None,
    });
    Resource::new(&path, body)
}
