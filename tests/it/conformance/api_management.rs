//! API Management in the conformance suite: the testkit's emulated ARM
//! (Microsoft.ApiManagement), seeded through ARM and read back with the plain ARM client of
//! [`super::messaging`] (reqwest and a minted token, not atg's ARM client).
//!
//! The source service holds every kind the plugin copies: named values (plain, secret, and Key
//! Vault-backed: its vault is not paired in the suite's runs, so the reference is kept as it
//! is), backends (one with credentials), a policy fragment, a version set, a group, a user, an
//! API with an operation, a schema and policies, a product with its API and groups (a custom
//! one and the built-in `developers`), policies at every scope (service, API, operation,
//! product) and subscriptions (to a product with an owner, to an API, and to every API owned by
//! the built-in administrator), plus bulk named values and backends so that 10% faults hit some
//! requests.
//!
//! Values: a secret named value's is read through `listValue`, a subscription's keys through
//! `listSecrets` (both keys, as the item's `value`); those are what template never copies.
//! Ids into the service (`apiVersionSetId`, a subscription's `scope` and `ownerId`) are compared
//! relative to their service.
//!
//! Left out of the items compared: what Azure creates with every service, the groups
//! `administrators`, `developers` and `guests`, the products `starter` and `unlimited` (with
//! their links and the administrator's subscriptions to them), the administrator user `1` and
//! the `master` subscription. An empty target
//! already holds them (the dry-run check reads an untouched target as empty), and the target's
//! are its own (another administrator, other master keys), so they are not the source's to
//! compare; `tests/it/api_management.rs` checks they are matched and never written. A link from
//! a copied product to a built-in group is compared: it is the source's.

use std::path::PathBuf;
use std::sync::Mutex;

use reqwest::Method;
use serde_json::{json, Value};

use super::messaging::{arm_actions, arm_inventory, arm_writes, forbid_arm, ArmRest};
use super::{Fixture, Item, Items, Target, World};
use crate::common::{Stack, SOURCE_SECRET, TARGET_SECRET};

/// The api-version atg's plugin uses.
const API_VERSION: &str = "2024-05-01";
const RESOURCE_TYPE: &str = "Microsoft.ApiManagement/service";
/// Enough bulk entities of two kinds that 10% faults hit some of the requests.
const BULK: usize = 12;

/// Secret named values: `(name, value)`.
const SECRET_VALUES: &[(&str, &str)] = &[
    ("backend-key", "sv-apim-backend-key-7d1e"),
    ("signing-key", "sv-apim-signing-key-2c9b"),
];
/// A credential in a backend's query.
const BACKEND_CODE: &str = "sv-apim-backend-code-5a3f";
/// Subscriptions: `(name, scope below the service, owner, primary key, secondary key)`; the
/// last one to every API, owned by the built-in administrator.
const SUBSCRIPTIONS: &[(&str, &str, Option<&str>, &str, &str)] = &[
    (
        "sub-ada",
        "products/gold",
        Some("users/u-ada"),
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "f9e8d7c6b5a4938271605f4e3d2c1b0a",
    ),
    (
        "sub-orders",
        "apis/orders",
        None,
        "11223344556677889900aabbccddeeff",
        "ffeeddccbbaa00998877665544332211",
    ),
    (
        "sub-admin-all",
        "apis",
        Some("users/1"),
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
        "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
    ),
];
const POLICY: &str = "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"x-key\" exists-action=\"override\"><value>{{backend-key}}</value></set-header>\n  </inbound>\n  <backend><base /></backend>\n  <outbound><base /></outbound>\n  <on-error><base /></on-error>\n</policies>";
const SERVICE_POLICY: &str = "<policies>\n  <inbound>\n    <cors><allowed-origins><origin>https://portal.example.test</origin></allowed-origins></cors>\n  </inbound>\n  <backend><forward-request /></backend>\n  <outbound />\n  <on-error />\n</policies>";

/// The POSTs that read a secret (`listValue`, `listSecrets`): they change nothing.
const SECRET_READS: &[&str] = &["/listvalue", "/listsecrets"];
/// The item the conflicts check makes differ.
const DAMAGED: (&str, &str) = ("named-value plain-greeting", "namedValues/plain-greeting");

/// What the suite reads: `(kind, the parent's kind ("": the service), collection)`, parents
/// before children.
const TREE: &[(&str, &str, &str)] = &[
    ("named-value", "", "namedValues"),
    ("backend", "", "backends"),
    ("policy-fragment", "", "policyFragments"),
    ("api-version-set", "", "apiVersionSets"),
    ("group", "", "groups"),
    ("user", "", "users"),
    ("api", "", "apis"),
    ("product", "", "products"),
    ("subscription", "", "subscriptions"),
    ("policy", "", "policies"),
    ("operation", "api", "operations"),
    ("schema", "api", "schemas"),
    ("policy", "api", "policies"),
    ("policy", "operation", "policies"),
    ("product-api", "product", "apis"),
    ("product-group", "product", "groups"),
    ("policy", "product", "policies"),
];

/// The source's entities: `(path below the service, properties)`, in an order the service
/// accepts (what a link or a reference names exists first). `service` is the source's id.
fn seed(service: &str) -> Vec<(String, Value)> {
    let mut entities = vec![
        (
            "namedValues/plain-greeting",
            json!({ "displayName": "plain-greeting", "value": "hello", "secret": false, "tags": ["greeting"] }),
        ),
        (
            "namedValues/from-vault",
            json!({ "displayName": "from-vault", "secret": true, "tags": [],
                "keyVault": { "secretIdentifier": "https://kv-unpaired.vault.azure.net/secrets/api-key", "identityClientId": null } }),
        ),
        (
            "backends/be-orders",
            json!({ "url": "https://orders.example.test", "protocol": "http", "description": "orders",
                "credentials": { "header": { "x-functions-key": ["{{backend-key}}"] }, "query": { "code": [BACKEND_CODE] } } }),
        ),
        (
            "policyFragments/pf-cors",
            json!({ "format": "xml", "description": "cors", "value": "<fragment><cors><allowed-origins><origin>*</origin></allowed-origins></cors></fragment>" }),
        ),
        (
            "apiVersionSets/vs-orders",
            json!({ "displayName": "Orders", "versioningScheme": "Segment" }),
        ),
        (
            "groups/partners",
            json!({ "displayName": "Partners", "description": "external", "type": "custom" }),
        ),
        (
            "users/u-ada",
            json!({ "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.test", "state": "active", "note": "partner" }),
        ),
        (
            "apis/orders",
            json!({ "displayName": "Orders", "path": "orders", "protocols": ["https"], "serviceUrl": "https://orders.example.test/api",
                "apiVersion": "v1", "apiVersionSetId": format!("{service}/apiVersionSets/vs-orders") }),
        ),
        (
            "apis/orders/operations/get-order",
            json!({ "displayName": "Get order", "method": "GET", "urlTemplate": "/orders/{id}",
                "templateParameters": [{ "name": "id", "type": "string", "required": true }] }),
        ),
        (
            "apis/orders/schemas/s-order",
            json!({ "contentType": "application/vnd.oai.openapi.components+json",
                "document": { "components": { "schemas": { "Order": { "type": "object" } } } } }),
        ),
        (
            "apis/orders/policies/policy",
            json!({ "format": "xml", "value": POLICY }),
        ),
        (
            "apis/orders/operations/get-order/policies/policy",
            json!({ "format": "xml", "value": POLICY.replace("x-key", "x-op") }),
        ),
        (
            "products/gold",
            json!({ "displayName": "Gold", "description": "gold", "subscriptionRequired": true, "approvalRequired": false, "state": "published" }),
        ),
        ("products/gold/apis/orders", json!({})),
        ("products/gold/groups/partners", json!({})),
        ("products/gold/groups/developers", json!({})),
        (
            "products/gold/policies/policy",
            json!({ "format": "xml", "value": POLICY.replace("x-key", "x-product") }),
        ),
        (
            "policies/policy",
            json!({ "format": "xml", "value": SERVICE_POLICY }),
        ),
    ]
    .into_iter()
    .map(|(path, properties)| (path.to_owned(), properties))
    .collect::<Vec<_>>();
    for (name, value) in SECRET_VALUES {
        let properties = json!({ "displayName": name, "value": value, "secret": true, "tags": [] });
        entities.insert(0, (format!("namedValues/{name}"), properties));
    }
    for index in 0..BULK {
        let name = format!("bulk-{index:02}");
        entities.push((
            format!("namedValues/{name}"),
            json!({ "displayName": name, "value": format!("value {index}"), "secret": false, "tags": [] }),
        ));
        entities.push((
            format!("backends/{name}"),
            json!({ "url": format!("https://{name}.example.test"), "protocol": "http" }),
        ));
    }
    for (name, scope, owner, primary, secondary) in SUBSCRIPTIONS {
        let mut properties = json!({
            "displayName": name, "scope": format!("{service}/{scope}"), "state": "active",
            "allowTracing": false, "primaryKey": primary, "secondaryKey": secondary,
        });
        if let Some(owner) = owner {
            properties["ownerId"] = json!(format!("{service}/{owner}"));
        }
        entities.push((format!("subscriptions/{name}"), properties));
    }
    entities
}

fn service_id(subscription: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/rg/providers/{RESOURCE_TYPE}/{name}")
}

/// What Azure creates with every service (see the module doc).
fn built_in(kind: &str, name: &str, properties: &Value) -> bool {
    match kind {
        "group" => properties["type"] == "system" || properties["builtIn"] == true,
        "product" => matches!(name, "starter" | "unlimited"),
        "user" => name == "1",
        "subscription" => {
            let ends = |member: &str, suffixes: &[&str]| {
                properties[member]
                    .as_str()
                    .is_some_and(|id| suffixes.iter().any(|suffix| id.ends_with(suffix)))
            };
            // The administrator's subscriptions to the default products, ids of its making.
            name == "master"
                || (ends("ownerId", &["/users/1"])
                    && ends("scope", &["/products/starter", "/products/unlimited"]))
        }
        _ => false,
    }
}

pub struct ApiManagementFixture;

pub struct ApiManagementWorld {
    stack: Stack,
    arm: ArmRest,
    /// The keys of the source's `master` subscription, read once seeded.
    master_keys: Mutex<Vec<String>>,
}

impl ApiManagementWorld {
    fn source_id(&self) -> String {
        service_id("source-sub", "apim-src")
    }

    fn target_id(&self, target: Target) -> String {
        service_id("target-sub", target.name())
    }

    /// A POST that only reads (`listValue`, `listSecrets`).
    async fn post(&self, id: &str) -> Value {
        self.arm.ok(Method::POST, id, None).await
    }

    /// Every entity of the service but its built-ins, keyed as the report names them.
    async fn read_service(&self, service: &str) -> Items {
        let mut items = Items::new();
        // (kind, path below the service, the names along it)
        let mut scopes: Vec<(&str, String, Vec<String>)> = vec![("", String::new(), Vec::new())];
        for (kind, parent, collection) in TREE {
            let parents: Vec<(String, Vec<String>)> = scopes
                .iter()
                .filter(|(k, _, _)| k == parent)
                .map(|(_, path, names)| (path.clone(), names.clone()))
                .collect();
            for (path, names) in parents {
                let at = format!("{path}{collection}");
                for listed in self.arm.list(&format!("{service}/{at}")).await {
                    let name = listed["name"].as_str().unwrap().rsplit('/').next().unwrap();
                    if built_in(kind, name, &listed["properties"]) {
                        continue;
                    }
                    let relative = format!("{at}/{name}");
                    let mut chain = names.clone();
                    if *kind != "policy" {
                        chain.push(name.to_owned());
                    }
                    let id = format!("{service}/{relative}");
                    // A policy is named by its scope's path, an API and a product may share
                    // a name.
                    let key = match (*kind, chain.join("/")) {
                        ("policy", _) if path.is_empty() => "service".to_owned(),
                        ("policy", _) => path.trim_end_matches('/').to_owned(),
                        (_, joined) => joined,
                    };
                    let (properties, credentials) = literal_credentials(&listed["properties"]);
                    let item = Item {
                        shape: shape(&properties, service),
                        value: match credentials {
                            Some(credentials) => Some(credentials),
                            None => self.value(kind, &id, &listed).await,
                        },
                        // A PUT replaces an entity: ARM keeps no versions to count.
                        writes: 1,
                    };
                    items.insert(format!("{kind} {key}"), item);
                    scopes.push((kind, format!("{relative}/"), chain));
                }
            }
        }
        items
    }

    /// A secret named value's value, a subscription's keys; `None` for other entities.
    async fn value(&self, kind: &str, id: &str, listed: &Value) -> Option<Value> {
        let properties = &listed["properties"];
        match kind {
            "named-value" if properties["secret"] == true && properties["keyVault"].is_null() => {
                Some(self.post(&format!("{id}/listValue")).await["value"].clone())
            }
            "subscription" => {
                let keys = self.post(&format!("{id}/listSecrets")).await;
                Some(json!([keys["primaryKey"], keys["secondaryKey"]]))
            }
            _ => None,
        }
    }

    /// The source's damaged entity written again as it is.
    async fn rewrite_source(&self, relative: &str) {
        let id = format!("{}/{relative}", self.source_id());
        let held = self.arm.get(&id).await.unwrap();
        self.arm
            .put(&id, &json!({ "properties": held["properties"] }))
            .await;
    }
}

/// The properties compared: ids into `service` made relative to it.
/// A backend's literal credentials (header and query values, the authorization parameter,
/// the proxy password; a `{{named value}}` reference is none) are its value, not its shape:
/// `properties` with each one marked, and the values, `None` when there are none.
fn literal_credentials(properties: &Value) -> (Value, Option<Value>) {
    let mut properties = properties.clone();
    let mut values = Vec::new();
    let mut take = |value: &mut Value| {
        if let Some(text) = value.as_str().filter(|text| !text.contains("{{")) {
            values.push(Value::String(text.to_owned()));
            *value = json!("<credential>");
        }
    };
    for collection in ["/credentials/header", "/credentials/query"] {
        if let Some(Value::Object(names)) = properties.pointer_mut(collection) {
            names
                .values_mut()
                .filter_map(Value::as_array_mut)
                .flatten()
                .for_each(&mut take);
        }
    }
    for single in ["/credentials/authorization/parameter", "/proxy/password"] {
        if let Some(value) = properties.pointer_mut(single) {
            take(value);
        }
    }
    (
        properties,
        (!values.is_empty()).then_some(Value::Array(values)),
    )
}

fn shape(properties: &Value, service: &str) -> Value {
    let text = properties.to_string().replace(service, "{service}");
    serde_json::from_str(&text).unwrap()
}

impl Fixture for ApiManagementFixture {
    type World = ApiManagementWorld;
    const PLUGIN: &'static str = "api-management";

    async fn start(&self) -> ApiManagementWorld {
        let stack = Stack::start().await;
        let arm = ArmRest::at(&stack, API_VERSION);
        let world = ApiManagementWorld {
            stack,
            arm,
            master_keys: Mutex::new(Vec::new()),
        };
        let service = json!({ "location": "westeurope", "sku": { "name": "Developer", "capacity": 1 }, "properties": {} });
        let targets = Target::ALL.map(|target| world.target_id(target));
        for id in std::iter::once(world.source_id()).chain(targets) {
            // The service's provisioning is not modelled: seeded, with what Azure creates in it.
            world
                .stack
                .emulator
                .seed_arm_resource(&id, service.clone())
                .unwrap();
        }
        world
    }
}

impl World for ApiManagementWorld {
    async fn seed_source(&self) {
        let source = self.source_id();
        for (relative, properties) in seed(&source) {
            let body = json!({ "properties": properties });
            self.arm.put(&format!("{source}/{relative}"), &body).await;
        }
        let master = self
            .post(&format!("{source}/subscriptions/master/listSecrets"))
            .await;
        let keys = ["primaryKey", "secondaryKey"].map(|k| master[k].as_str().unwrap().to_owned());
        self.master_keys.lock().unwrap().extend(keys);
    }

    fn target_name(&self, target: Target) -> String {
        target.name().to_owned()
    }

    fn inventory(&self, targets: &[Target]) -> PathBuf {
        let pairs: Vec<(String, String)> = targets
            .iter()
            .map(|target| (self.source_id(), self.target_id(*target)))
            .collect();
        arm_inventory(&self.stack, RESOURCE_TYPE, &pairs)
    }

    async fn read_source(&self) -> Items {
        self.read_service(&self.source_id()).await
    }

    async fn read_target(&self, target: Target) -> Items {
        self.read_service(&self.target_id(target)).await
    }

    fn writes(&self, target: Target) -> Vec<String> {
        arm_writes(&self.stack, &[self.target_id(target)], SECRET_READS)
    }

    fn source_value_reads(&self) -> Vec<String> {
        arm_actions(&self.stack, &[self.source_id()], SECRET_READS)
    }

    emulated_arm_world!();

    fn forbid(&self, target: Target) {
        forbid_arm(&self.stack, &[self.target_id(target)]);
    }

    async fn damage(&self, target: Target) -> String {
        let (key, relative) = DAMAGED;
        let body = json!({ "properties": { "displayName": "plain-greeting", "value": "changed in the target", "secret": false, "tags": ["greeting"] } });
        self.arm
            .put(&format!("{}/{relative}", self.target_id(target)), &body)
            .await;
        key.to_owned()
    }

    async fn touch_source(&self, key: &str) {
        assert_eq!(key, DAMAGED.0);
        self.rewrite_source(DAMAGED.1).await;
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            TARGET_SECRET.to_owned(),
            SOURCE_SECRET.to_owned(),
            // A token's header.
            "eyJ".to_owned(),
            BACKEND_CODE.to_owned(),
        ];
        secrets.extend(SECRET_VALUES.iter().map(|(_, value)| (*value).to_owned()));
        for (_, _, _, primary, secondary) in SUBSCRIPTIONS {
            secrets.extend([(*primary).to_owned(), (*secondary).to_owned()]);
        }
        secrets.extend(self.master_keys.lock().unwrap().iter().cloned());
        secrets
    }
}

#[tokio::test]
async fn conformance() {
    super::run(&ApiManagementFixture).await;
}
