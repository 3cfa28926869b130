//! Service Bus and Event Hubs in the conformance suite: the testkit's emulated ARM, seeded and
//! read back with a plain REST client (reqwest and a minted token, not atg's ARM client). One
//! world for both services: their namespaces have the same shapes; a [`Service`] says what each
//! holds.
//!
//! The namespaces' `RootManageSharedAccessKey` is left out of the items compared here: the
//! service creates it with every namespace, so an empty target is never without it
//! (`tests/it/service_bus.rs` checks its keys are replicated).

use std::path::PathBuf;

use atg_testkit::kv_rest::test_http_client;
use atg_testkit::mint_token;
use serde_json::{json, Value};

use super::{Item, Items, Target, World};
use crate::common::{Stack, SOURCE_SECRET, TARGET_SECRET, TARGET_TENANT};

const ARM: &str = "https://management.azure.com";
const API_VERSION: &str = "2024-01-01";
/// Read-only members, rendered by the service, that are no item's shape.
const READ_ONLY: &[&str] = &[
    "createdAt",
    "updatedAt",
    "accessedAt",
    "sizeInBytes",
    "messageCount",
    "countDetails",
    "subscriptionCount",
    "partitionIds",
];
/// Enough entities that 10% faults hit some of the requests.
const BULK: usize = 16;

/// What a service's namespace holds, for the world.
pub struct Service {
    /// `Microsoft.ServiceBus`.
    pub provider: &'static str,
    /// (report kind, collection, parent collection) in walk order.
    pub kinds: &'static [(&'static str, &'static str, Option<&'static str>)],
    /// Collections whose entities hold authorization rules.
    pub rule_holders: &'static [&'static str],
    /// Writes the source's entities below a namespace (ARM paths relative to it, bodies).
    pub seed: fn() -> Vec<(String, Value)>,
    /// The collection and body of the bulk entities.
    pub bulk: (&'static str, fn() -> Value),
    /// An item the conflicts check makes differ: (key, relative path, the target's body).
    pub damage: (&'static str, &'static str, fn() -> Value),
}

/// A plain ARM client: reqwest with the emulator's CA and a minted token.
pub struct ArmRest {
    http: reqwest::Client,
    token: String,
    api_version: &'static str,
}

impl ArmRest {
    /// At the messaging providers' api-version.
    pub fn new(stack: &Stack) -> ArmRest {
        ArmRest::at(stack, API_VERSION)
    }

    /// At `api_version` (another provider's).
    pub fn at(stack: &Stack, api_version: &'static str) -> ArmRest {
        ArmRest {
            http: test_http_client(
                stack.emulator.ca_pem(),
                stack.emulator.addr(),
                &["management.azure.com"],
            )
            .unwrap(),
            token: mint_token(TARGET_TENANT, "conformance", ARM),
            api_version,
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        id: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let separator = if id.contains('?') { '&' } else { '?' };
        let mut request = self
            .http
            .request(
                method,
                format!("{ARM}{id}{separator}api-version={}", self.api_version),
            )
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a request that must succeed (any 2xx); answers the body.
    pub async fn ok(&self, method: reqwest::Method, id: &str, body: Option<&Value>) -> Value {
        let (status, answer) = self.send(method.clone(), id, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {id}: {status} {answer}"
        );
        answer
    }

    /// PUTs `body`: created, updated or accepted.
    pub async fn put(&self, id: &str, body: &Value) {
        self.ok(reqwest::Method::PUT, id, Some(body)).await;
    }

    pub async fn get(&self, id: &str) -> Option<Value> {
        let (status, answer) = self.send(reqwest::Method::GET, id, None).await;
        (status == 200).then_some(answer)
    }

    /// Every item of a collection (one page: the tests' collections are small).
    pub async fn list(&self, collection: &str) -> Vec<Value> {
        let (status, answer) = self.send(reqwest::Method::GET, collection, None).await;
        assert_eq!(status, 200, "GET {collection}: {answer}");
        assert!(answer["nextLink"].is_null(), "paged: {collection}");
        answer["value"].as_array().cloned().unwrap_or_default()
    }

    /// Both keys of a rule, as one value.
    pub async fn keys(&self, rule: &str) -> Value {
        let (status, answer) = self
            .send(reqwest::Method::POST, &format!("{rule}/listKeys"), None)
            .await;
        assert_eq!(status, 200, "listKeys {rule}");
        json!([answer["primaryKey"], answer["secondaryKey"]])
    }

    pub async fn set_key(&self, rule: &str, key_type: &str, key: &str) {
        let (status, _) = self
            .send(
                reqwest::Method::POST,
                &format!("{rule}/regenerateKeys"),
                Some(&json!({ "keyType": key_type, "key": key })),
            )
            .await;
        assert_eq!(status, 200, "regenerateKeys {rule}");
    }
}

/// A key in the shape Azure makes them (44 characters), different per `seed`.
pub fn key(seed: &str) -> String {
    format!("{seed:A<40}K4y=").chars().take(44).collect()
}

pub struct MessagingWorld {
    pub stack: Stack,
    pub service: &'static Service,
    pub arm: ArmRest,
}

impl MessagingWorld {
    pub async fn start(service: &'static Service) -> MessagingWorld {
        let stack = Stack::start().await;
        let arm = ArmRest::new(&stack);
        let world = MessagingWorld {
            stack,
            service,
            arm,
        };
        world
            .arm
            .put(&world.namespace("source-sub", "src-ns"), &namespace_body())
            .await;
        for target in Target::ALL {
            let id = world.target_id(target);
            world.arm.put(&id, &namespace_body()).await;
        }
        world
    }

    pub fn namespace(&self, subscription: &str, name: &str) -> String {
        format!(
            "/subscriptions/{subscription}/resourceGroups/rg/providers/{}/namespaces/{name}",
            self.service.provider
        )
    }

    pub fn source_id(&self) -> String {
        self.namespace("source-sub", "src-ns")
    }

    pub fn target_id(&self, target: Target) -> String {
        self.namespace("target-sub", &self.target_name(target))
    }

    /// An inventory of pairs of namespace ids.
    pub fn pairs_inventory(&self, pairs: &[(String, String)]) -> PathBuf {
        let resource_type = format!("{}/namespaces", self.service.provider);
        arm_inventory(&self.stack, &resource_type, pairs)
    }

    /// PUTs each `(path below the source namespace, body)`, in order.
    pub async fn seed_entities(&self, entities: &[(&str, Value)]) {
        let source = self.source_id();
        for (relative, body) in entities {
            self.arm.put(&format!("{source}/{relative}"), body).await;
        }
    }

    /// Every item of a namespace, keyed `"{kind} {relative path}"`.
    pub async fn read_namespace(&self, namespace: &str) -> Items {
        let mut items = Items::new();
        let mut scopes: Vec<(&str, String)> = vec![("", String::new())];
        for (kind, collection, parent) in self.service.kinds {
            let parents: Vec<String> = scopes
                .iter()
                .filter(|(c, _)| *c == parent.unwrap_or_default())
                .map(|(_, relative)| relative.clone())
                .collect();
            for parent in parents {
                let at = join(&parent, collection);
                for listed in self.arm.list(&format!("{namespace}/{at}")).await {
                    let relative = format!("{at}/{}", listed["name"].as_str().unwrap());
                    let mut shape = listed["properties"].clone();
                    if let Some(object) = shape.as_object_mut() {
                        object.retain(|key, _| !READ_ONLY.contains(&key.as_str()));
                    }
                    items.insert(
                        format!("{kind} {relative}"),
                        Item {
                            shape,
                            value: None,
                            // A PUT replaces a resource: ARM keeps no versions to count.
                            writes: 1,
                        },
                    );
                    scopes.push((collection, relative));
                }
            }
        }
        for (_, relative) in scopes
            .iter()
            .filter(|(c, _)| c.is_empty() || self.service.rule_holders.contains(c))
        {
            let at = join(relative, "authorizationRules");
            for listed in self.arm.list(&format!("{namespace}/{at}")).await {
                let name = listed["name"].as_str().unwrap();
                if name == "RootManageSharedAccessKey" {
                    continue;
                }
                let rule = format!("{at}/{name}");
                let mut rights: Vec<Value> = listed["properties"]["rights"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                rights.sort_by_key(Value::to_string);
                let keys = self.arm.keys(&format!("{namespace}/{rule}")).await;
                items.insert(
                    format!("authorization-rule {rule}"),
                    Item {
                        shape: json!({ "rights": rights }),
                        value: Some(keys),
                        writes: 1,
                    },
                );
            }
        }
        items
    }

    /// Requests that changed the namespace `id` (every method but GET, and not listKeys).
    pub fn writes_to(&self, id: &str) -> Vec<String> {
        arm_writes(&self.stack, &[id.to_owned()], &["/listkeys"])
    }
}

/// An inventory of pairs of ARM resource ids of `resource_type`.
pub fn arm_inventory(stack: &Stack, resource_type: &str, pairs: &[(String, String)]) -> PathBuf {
    let resource = |id: &str| {
        json!({
            "id": id,
            "type": resource_type,
            "name": id.rsplit('/').next().unwrap_or_default(),
        })
    };
    let resources: Vec<Value> = pairs
        .iter()
        .map(|(source, target)| json!({ "source": resource(source), "target": resource(target) }))
        .collect();
    stack.write_json(
        "inventory.json",
        &json!({ "version": 1, "resources": resources }),
    )
}

/// Requests that changed a resource of `ids` or below it: every method but GET, and not a POST
/// whose path ends with one of `reads` (`/listkeys`: actions that only read).
pub fn arm_writes(stack: &Stack, ids: &[String], reads: &[&str]) -> Vec<String> {
    arm_requests(stack, ids, |method, path| {
        let reading = method == "POST" && reads.iter().any(|read| path.ends_with(read));
        method != "GET" && !reading
    })
}

/// The POSTs to a resource of `ids` or below it whose path ends with one of `actions`
/// (`/listkeys`: the requests that read a value).
pub fn arm_actions(stack: &Stack, ids: &[String], actions: &[&str]) -> Vec<String> {
    arm_requests(stack, ids, |method, path| {
        method == "POST" && actions.iter().any(|action| path.ends_with(action))
    })
}

/// The requests (method and path) to a resource of `ids` or below it that `keep` (given the
/// method and the lowercase path) keeps.
fn arm_requests(stack: &Stack, ids: &[String], keep: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let ids: Vec<String> = ids.iter().map(|id| id.to_ascii_lowercase()).collect();
    stack
        .requests()
        .into_iter()
        .filter(|r| {
            let path = r.path.to_ascii_lowercase();
            let below = |id: &String| {
                path.strip_prefix(id.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            };
            ids.iter().any(below) && keep(&r.method, &path)
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Every request to a resource of `ids` or below it answered 403 from now on.
pub fn forbid_arm(stack: &Stack, ids: &[String]) {
    stack.emulator.set_options(|options| {
        options
            .forbidden_arm_scopes
            .extend(ids.iter().map(|id| id.to_ascii_lowercase()));
    });
}

fn join(parent: &str, collection: &str) -> String {
    if parent.is_empty() {
        collection.to_owned()
    } else {
        format!("{parent}/{collection}")
    }
}

pub fn namespace_body() -> Value {
    json!({ "location": "westeurope", "sku": { "name": "Standard", "tier": "Standard" } })
}

/// The keys the source's authorization rules are given: `(rule path, primary, secondary)`.
pub fn source_keys(rules: &[&str]) -> Vec<(String, String, String)> {
    rules
        .iter()
        .map(|rule| {
            let tag = rule.replace('/', "-");
            (
                (*rule).to_owned(),
                key(&format!("p-{tag}")),
                key(&format!("s-{tag}")),
            )
        })
        .collect()
}

impl World for MessagingWorld {
    async fn seed_source(&self) {
        let source = self.source_id();
        let mut rules = Vec::new();
        for (relative, body) in (self.service.seed)() {
            if relative.contains("/authorizationRules/")
                || relative.starts_with("authorizationRules/")
            {
                rules.push(relative.clone());
            }
            self.arm.put(&format!("{source}/{relative}"), &body).await;
        }
        let (collection, body) = self.service.bulk;
        for index in 0..BULK {
            self.arm
                .put(&format!("{source}/{collection}/bulk-{index:02}"), &body())
                .await;
        }
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        for (rule, primary, secondary) in source_keys(&rules) {
            let id = format!("{source}/{rule}");
            self.arm.set_key(&id, "PrimaryKey", &primary).await;
            self.arm.set_key(&id, "SecondaryKey", &secondary).await;
        }
    }

    fn target_name(&self, target: Target) -> String {
        target.name().to_owned()
    }

    fn inventory(&self, targets: &[Target]) -> PathBuf {
        let pairs: Vec<(String, String)> = targets
            .iter()
            .map(|t| (self.source_id(), self.target_id(*t)))
            .collect();
        self.pairs_inventory(&pairs)
    }

    async fn read_source(&self) -> Items {
        self.read_namespace(&self.source_id()).await
    }

    async fn read_target(&self, target: Target) -> Items {
        self.read_namespace(&self.target_id(target)).await
    }

    fn writes(&self, target: Target) -> Vec<String> {
        self.writes_to(&self.target_id(target))
    }

    fn source_value_reads(&self) -> Vec<String> {
        arm_actions(&self.stack, &[self.source_id()], &["/listkeys"])
    }

    emulated_arm_world!();

    fn forbid(&self, target: Target) {
        forbid_arm(&self.stack, &[self.target_id(target)]);
    }

    async fn damage(&self, target: Target) -> String {
        let (key, relative, body) = self.service.damage;
        self.arm
            .put(&format!("{}/{relative}", self.target_id(target)), &body())
            .await;
        key.to_owned()
    }

    async fn touch_source(&self, key: &str) {
        let (damaged, relative, _) = self.service.damage;
        assert_eq!(key, damaged);
        let source = format!("{}/{relative}", self.source_id());
        let held = self.arm.get(&source).await.unwrap();
        self.arm
            .put(&source, &json!({ "properties": held["properties"] }))
            .await;
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            TARGET_SECRET.to_owned(),
            SOURCE_SECRET.to_owned(),
            // A token's header.
            "eyJ".to_owned(),
        ];
        let rules: Vec<String> = (self.service.seed)()
            .into_iter()
            .map(|(relative, _)| relative)
            .filter(|relative| relative.contains("authorizationRules/"))
            .collect();
        let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
        for (_, primary, secondary) in source_keys(&rules) {
            secrets.push(primary);
            secrets.push(secondary);
        }
        secrets
    }
}
