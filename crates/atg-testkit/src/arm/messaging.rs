//! What Microsoft.ServiceBus and Microsoft.EventHub share (one resource provider codebase on
//! Azure, the same ARM shapes), grounded in `shared/azure-recordings/{servicebus,eventhubs}/`:
//! - every PUT completes at once with 200, create or update; a namespace DELETE answers 202
//!   with `Location`, an entity DELETE 200;
//! - an entity stores its settable properties (the request's, else the service's defaults) and
//!   renders the read-only ones (counts, times) around them; read-only members a client sends
//!   back (the CLI PUTs what it GOT) are ignored;
//! - properties fixed at creation (`requiresSession`, `partitionCount` ...) refused on update
//!   with 400 and Azure's wording; `forwardTo` / `forwardDeadLetteredMessagesTo` naming an entity
//!   the namespace lacks refused with 400;
//! - children the service creates itself: `RootManageSharedAccessKey` on a namespace, `$Default`
//!   on a subscription (rule) or an event hub (consumer group);
//! - with [`crate::options::EmulatorOptions::messaging_conflicts`], a write of a child of a topic
//!   or an event hub is first refused with 409 `Conflict` `SubCode=40901`, as Azure answers
//!   while another write to a related entity is in progress (the Service Bus Resource Manager
//!   exceptions page; azure-sdk-for-js#6276);
//! - authorization rules at namespace and entity scope: `rights` required, keys made at
//!   creation (write-only), `POST listKeys` (any case) and `POST regenerateKeys {keyType, key?}`
//!   (the given key is set, else a new one is made).

use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::store::{identity, not_found, object_body, Resource};
use super::{arm_error, ArmRequest, ArmState, Completion, Provider, ResourcePath};
use crate::http::ApiResponse;

/// One resource provider of the family.
pub(crate) struct Family {
    /// `Microsoft.ServiceBus` or `Microsoft.EventHub`.
    pub namespace: &'static str,
    /// The namespace's rendered properties of this provider only, besides what the request
    /// set and what both providers render.
    pub namespace_properties: fn(&Resource) -> Value,
    /// Whether the namespace's `sku` carries a `capacity` (Event Hubs).
    pub sku_capacity: bool,
    pub entities: &'static [Entity],
}

/// One entity type under a namespace (queue, topic, subscription, rule, event hub, consumer
/// group).
pub(crate) struct Entity {
    /// The lowercase type segments from the namespace on, e.g. `["namespaces", "topics",
    /// "subscriptions"]`.
    pub types: &'static [&'static str],
    /// What the service calls it in its messages (`Queue`, `Subscription`).
    pub label: &'static str,
    /// Every property a client can set.
    pub settable: &'static [&'static str],
    /// The service's value of settable properties a request leaves out.
    pub defaults: fn() -> Value,
    /// Fixed at creation: an update that changes one is refused.
    pub immutable: &'static [&'static str],
    /// Properties naming another queue or topic of the namespace.
    pub forwarding: &'static [&'static str],
    /// Read-only members rendered with the settable ones.
    pub read_only: fn(&Resource) -> Value,
    /// Whether the rendering carries the namespace's `location`.
    pub location: bool,
    /// The child the service creates with it: (collection, name, properties).
    pub default_child: Option<DefaultChild>,
    /// Checks the request's properties (`properties` of the body) and derives from them what
    /// the service does into the stored properties; `Err`: the 400 message. `None`: what the
    /// request set, and the defaults.
    pub derive: Option<Derive>,
}

/// See [`Entity::derive`].
pub(crate) type Derive = fn(&Value, &mut Map<String, Value>) -> Result<(), String>;

/// A child the service creates with its parent: (collection, name, properties).
pub(crate) type DefaultChild = (&'static str, &'static str, fn() -> Value);

/// The rights an authorization rule may hold.
const RIGHTS: &[&str] = &["Listen", "Send", "Manage"];

/// The times the recordings show on entities, fixed (only their type is compared).
pub(crate) fn times() -> Value {
    json!({
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
    })
}

/// What both providers render of a namespace.
fn namespace_properties(resource: &Resource) -> Value {
    let name = &resource.name;
    json!({
        "minimumTlsVersion": "1.2",
        "publicNetworkAccess": "Enabled",
        "disableLocalAuth": false,
        "zoneRedundant": false,
        "provisioningState": "Succeeded",
        "metricId": format!("00000000-0000-0000-0000-000000000000:{name}"),
        "createdAt": "2024-01-01T00:00:00.000Z",
        "updatedAt": "2024-01-01T00:00:00.000Z",
        "serviceBusEndpoint": format!("https://{name}.servicebus.windows.net:443/"),
        "status": "Active",
    })
}

/// 409 `SubCode=40901` for a write of a child of a topic or an event hub, the first
/// `messaging_conflicts` times it is sent.
fn conflicting_write(
    state: &mut ArmState,
    request: &ArmRequest<'_>,
    types: &[String],
) -> Option<ApiResponse> {
    let limit = request.options.messaging_conflicts;
    let write = matches!(*request.method(), Method::PUT | Method::DELETE);
    let under_entity = types.len() > 2
        && matches!(
            types.get(1).map(String::as_str),
            Some("topics" | "eventhubs")
        );
    if limit == 0 || !write || !under_entity || request.path.tail.is_some() {
        return None;
    }
    let refused = state.refused_writes.entry(request.path.key()).or_default();
    if *refused >= limit {
        return None;
    }
    *refused += 1;
    let namespace = &request.path.pairs[0].1;
    let (_, topic) = &request.path.pairs[1];
    Some(arm_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "SubCode=40901. Another conflicting operation is in progress. To know more visit https://aka.ms/sbResourceMgrExceptions. TrackingId:{}_G1, SystemTracker:{namespace}:Topic:{topic}, Timestamp:2024-01-01T00:00:00",
            crate::http::new_guid()
        ),
    ))
}

fn bad_request(message: &str) -> ApiResponse {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// A fresh SAS key in the shape Azure makes them (32 random bytes, base64, 44 characters).
fn new_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn is_rules(types: &[String]) -> bool {
    types
        .last()
        .is_some_and(|last| last == "authorizationrules")
}

impl Family {
    fn entity(&self, types: &[String]) -> Option<&'static Entity> {
        self.entities.iter().find(|entity| {
            entity.types.len() == types.len() && entity.types.iter().zip(types).all(|(a, b)| a == b)
        })
    }
}

impl Provider for Family {
    fn namespace(&self) -> &'static str {
        self.namespace
    }

    fn handle(&self, state: &mut ArmState, request: &ArmRequest<'_>) -> Option<ApiResponse> {
        let path = &request.path;
        let types = path.types();
        if types.first().map(String::as_str) != Some("namespaces") {
            return None;
        }
        let tail = path.tail.as_deref().map(str::to_ascii_lowercase);
        if let Some(refused) = conflicting_write(state, request, &types) {
            return Some(refused);
        }
        match (request.method(), tail.as_deref()) {
            (&Method::POST, Some("listkeys")) if is_rules(&types) => {
                Some(match state.get(&path.key()) {
                    Some(rule) => keys_answer(rule),
                    None => not_found(path),
                })
            }
            (&Method::POST, Some("regeneratekeys")) if is_rules(&types) => {
                Some(regenerate(state, request))
            }
            (&Method::PUT, None) => Some(self.put(state, request, &types)),
            _ => None,
        }
    }

    fn render(&self, resource: &Resource, _api_version: &str) -> Value {
        self.render_resource(resource)
    }

    fn completion(&self, method: &Method, path: &ResourcePath) -> Completion {
        if method == Method::DELETE && path.pairs.len() == 1 {
            Completion::Location
        } else {
            Completion::Synchronous
        }
    }

    fn on_created(&self, state: &mut ArmState, resource_key: &str) {
        self.create_children(state, resource_key);
    }
}

impl Family {
    fn put(&self, state: &mut ArmState, request: &ArmRequest<'_>, types: &[String]) -> ApiResponse {
        let body = match object_body(request.http) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let path = &request.path;
        if let Err(answer) = state.check_parent(path) {
            return answer;
        }
        let stored = if types.len() == 1 {
            if body["location"].as_str().is_none_or(str::is_empty) {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "LocationRequired",
                    "The location property is required for this definition.",
                );
            }
            namespace_body(body)
        } else if is_rules(types) {
            match rule_body(&body, &namespace_location(state, path)) {
                Ok(stored) => stored,
                Err(answer) => return answer,
            }
        } else {
            let Some(entity) = self.entity(types) else {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "InvalidResourceType",
                    "The resource type could not be found in the namespace.",
                );
            };
            match entity_body(state, path, entity, &body) {
                Ok(stored) => stored,
                Err(answer) => return answer,
            }
        };
        let mut answer = state.put(self, request, stored, Completion::Synchronous);
        if answer.status == StatusCode::CREATED {
            // The recordings answer 200 to a create as to an update.
            answer.status = StatusCode::OK;
        }
        if is_rules(types) && types.len() > 2 {
            // An entity's rule is answered without the location its GET shows, as recorded.
            if let Ok(mut rendered) = serde_json::from_slice::<Value>(&answer.body) {
                if let Some(object) = rendered.as_object_mut() {
                    object.remove("location");
                }
                answer.body = rendered.to_string().into();
            }
        }
        answer
    }

    fn render_resource(&self, resource: &Resource) -> Value {
        let segments: Vec<&str> = resource.id.split('/').collect();
        let types: Vec<String> = segments
            .iter()
            .skip(7)
            .step_by(2)
            .map(|segment| segment.to_ascii_lowercase())
            .collect();
        let mut out = identity(resource);
        if types.len() == 1 {
            let mut properties = (self.namespace_properties)(resource);
            merge_into(&mut properties, &namespace_properties(resource));
            merge_into(&mut properties, &resource.body["properties"]);
            out["properties"] = properties;
            if self.sku_capacity && out["sku"].is_object() && out["sku"].get("capacity").is_none() {
                out["sku"]["capacity"] = json!(1);
            }
        } else if let Some(entity) = self.entity(&types) {
            let mut properties = resource.body["properties"].clone();
            merge_into(&mut properties, &(entity.read_only)(resource));
            out["properties"] = properties;
        }
        out
    }

    fn create_children(&self, state: &mut ArmState, resource_key: &str) {
        let Some(created) = state.get(resource_key).cloned() else {
            return;
        };
        let segments: Vec<&str> = created.id.split('/').filter(|s| !s.is_empty()).collect();
        let Some(path) = ResourcePath::parse(&segments) else {
            return;
        };
        let types = path.types();
        if types.len() == 1 {
            let mut rule = Resource::new(
                &child(&path, "AuthorizationRules", "RootManageSharedAccessKey"),
                json!({ "location": created.body["location"], "properties": { "rights": ["Listen", "Manage", "Send"] } }),
            );
            rule.secrets = fresh_keys();
            state.insert(rule);
        } else if is_rules(&types) {
            if let Some(rule) = state.get_mut(resource_key) {
                rule.secrets = fresh_keys();
            }
        } else if let Some((collection, name, properties)) =
            self.entity(&types).and_then(|entity| entity.default_child)
        {
            let mut body = json!({ "properties": properties() });
            if let Some(location) = created.body.get("location") {
                body["location"] = location.clone();
            }
            state.insert(Resource::new(&child(&path, collection, name), body));
        }
    }
}

fn child(path: &ResourcePath, collection: &str, name: &str) -> ResourcePath {
    let mut pairs = path.pairs.clone();
    pairs.push((collection.to_owned(), name.to_owned()));
    ResourcePath {
        pairs,
        tail: None,
        ..path.clone()
    }
}

fn namespace_path(path: &ResourcePath) -> ResourcePath {
    ResourcePath {
        pairs: path.pairs[..1].to_vec(),
        tail: None,
        ..path.clone()
    }
}

fn namespace_location(state: &ArmState, path: &ResourcePath) -> Value {
    state
        .get(&namespace_path(path).key())
        .map_or(Value::Null, |namespace| namespace.body["location"].clone())
}

/// A namespace as stored: no `identity` of type `None` (not rendered, as recorded), `tags`
/// always.
fn namespace_body(mut body: Value) -> Value {
    if body["identity"]["type"].as_str() == Some("None") {
        if let Some(object) = body.as_object_mut() {
            object.remove("identity");
        }
    }
    if !body["tags"].is_object() {
        body["tags"] = json!({});
    }
    body
}

/// Adds `extra`'s members that `target` lacks.
fn merge_into(target: &mut Value, extra: &Value) {
    if !target.is_object() {
        *target = json!({});
    }
    if let (Some(target), Some(extra)) = (target.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            target.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
}

/// The stored body of an entity PUT: the settable properties (the request's, else the
/// defaults), after the immutable and forwarding checks.
fn entity_body(
    state: &ArmState,
    path: &ResourcePath,
    entity: &Entity,
    body: &Value,
) -> Result<Value, ApiResponse> {
    let requested = &body["properties"];
    let defaults = (entity.defaults)();
    let mut properties = Map::new();
    for key in entity.settable {
        let value = requested
            .get(*key)
            .filter(|value| !value.is_null())
            .or_else(|| defaults.get(*key));
        if let Some(value) = value {
            properties.insert((*key).to_owned(), value.clone());
        }
    }
    if let Some(derive) = entity.derive {
        derive(requested, &mut properties).map_err(|message| bad_request(&message))?;
    }
    if let Some(existing) = state.get(&path.key()) {
        for key in entity.immutable {
            let before = existing.body["properties"].get(*key);
            if before.is_some() && before != properties.get(*key) {
                return Err(bad_request(&format!(
                    "SubCode=40000. The value for the '{key}' property of an existing {} cannot be changed. To know more visit https://aka.ms/sbResourceMgrExceptions.",
                    entity.label
                )));
            }
        }
    }
    let namespace = namespace_path(path);
    for key in entity.forwarding {
        let Some(target) = properties.get(*key).and_then(Value::as_str) else {
            continue;
        };
        if target.is_empty() {
            properties.remove(*key);
            continue;
        }
        let exists = ["queues", "topics"].iter().any(|collection| {
            state
                .get(&child(&namespace, collection, target).key())
                .is_some()
        });
        if !exists {
            return Err(bad_request(&format!(
                "SubCode=40000. Cannot create a messaging entity with '{key}' set to '{target}': the entity does not exist in the namespace. To know more visit https://aka.ms/sbResourceMgrExceptions."
            )));
        }
    }
    let mut stored = json!({ "properties": properties });
    if entity.location {
        stored["location"] = namespace_location(state, path);
    }
    Ok(stored)
}

/// The stored body of an authorization rule PUT: its rights (required, known words).
fn rule_body(body: &Value, location: &Value) -> Result<Value, ApiResponse> {
    let rights: Vec<&str> = body["properties"]["rights"]
        .as_array()
        .map(|rights| rights.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if rights.is_empty() || rights.iter().any(|right| !RIGHTS.contains(right)) {
        return Err(bad_request(
            "SubCode=40000. The rights of an authorization rule must be one or more of Listen, Send and Manage.",
        ));
    }
    Ok(json!({ "location": location, "properties": { "rights": rights } }))
}

fn fresh_keys() -> Value {
    json!({ "primaryKey": new_key(), "secondaryKey": new_key() })
}

/// `listKeys`' answer: both keys and their connection strings.
fn keys_answer(rule: &Resource) -> ApiResponse {
    let segments: Vec<&str> = rule.id.split('/').collect();
    let namespace = segments.get(8).copied().unwrap_or_default();
    // An entity-scoped rule's connection strings name the entity.
    let entity_path = if segments.len() > 11 {
        format!(
            ";EntityPath={}",
            segments.get(10).copied().unwrap_or_default()
        )
    } else {
        String::new()
    };
    let connection = |key: &Value| {
        format!(
            "Endpoint=sb://{namespace}.servicebus.windows.net/;SharedAccessKeyName={};SharedAccessKey={}{entity_path}",
            rule.name,
            key.as_str().unwrap_or_default()
        )
    };
    ApiResponse::json(
        StatusCode::OK,
        &json!({
            "primaryConnectionString": connection(&rule.secrets["primaryKey"]),
            "secondaryConnectionString": connection(&rule.secrets["secondaryKey"]),
            "primaryKey": rule.secrets["primaryKey"],
            "secondaryKey": rule.secrets["secondaryKey"],
            "keyName": rule.name,
        }),
    )
}

/// `regenerateKeys {keyType, key?}`: the given key is set, else a new one is made.
fn regenerate(state: &mut ArmState, request: &ArmRequest<'_>) -> ApiResponse {
    let body = match object_body(request.http) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let member = match body["keyType"].as_str() {
        Some("PrimaryKey") => "primaryKey",
        Some("SecondaryKey") => "secondaryKey",
        _ => return bad_request("SubCode=40000. The keyType must be PrimaryKey or SecondaryKey."),
    };
    let key = match body.get("key").and_then(Value::as_str) {
        Some(key) if !key.is_empty() => key.to_owned(),
        _ => new_key(),
    };
    let path = &request.path;
    let Some(rule) = state.get_mut(&path.key()) else {
        return not_found(path);
    };
    rule.secrets[member] = json!(key);
    let rule = rule.clone();
    keys_answer(&rule)
}
