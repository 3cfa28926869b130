//! The service's entities atg copies, one table: where each kind is listed, what it depends on
//! (the stage it is written in), and how an entity is read for comparing and writing.
//!
//! Entities are addressed by their path relative to the service (`apis/echo/operations/get`);
//! ids inside an entity that point into the source service (`apiVersionSetId`, a
//! subscription's `scope` and `ownerId`) are rewritten to the target service.

use serde_json::{Map, Value};

/// One kind of entity.
pub struct Kind {
    /// The report's kind.
    pub name: &'static str,
    /// The collection under its parent (`namedValues`, `operations`, `policies`).
    pub collection: &'static str,
    /// The kinds whose entities hold this kind's collection; empty: the service itself.
    pub parents: &'static [&'static str],
    /// Written after every entity of an earlier stage (references resolve only then).
    pub stage: usize,
    /// A link between two entities (a product's API or group, a group's user): it exists or
    /// not, its properties are the linked entity's, and the service has no GET for it.
    pub link: bool,
}

pub const NAMED_VALUE: &str = "named-value";
pub const BACKEND: &str = "backend";
pub const POLICY_FRAGMENT: &str = "policy-fragment";
pub const VERSION_SET: &str = "api-version-set";
pub const GROUP: &str = "group";
pub const USER: &str = "user";
pub const GROUP_USER: &str = "group-user";
pub const API: &str = "api";
pub const OPERATION: &str = "operation";
pub const SCHEMA: &str = "schema";
pub const PRODUCT: &str = "product";
pub const PRODUCT_API: &str = "product-api";
pub const PRODUCT_GROUP: &str = "product-group";
pub const POLICY: &str = "policy";
pub const SUBSCRIPTION: &str = "subscription";

const fn kind(
    name: &'static str,
    collection: &'static str,
    parents: &'static [&'static str],
    stage: usize,
) -> Kind {
    Kind {
        name,
        collection,
        parents,
        stage,
        link: false,
    }
}

const fn link(
    name: &'static str,
    collection: &'static str,
    parent: &'static [&'static str],
    stage: usize,
) -> Kind {
    Kind {
        link: true,
        ..kind(name, collection, parent, stage)
    }
}

/// Every kind, parents before children (the order they are listed in). The stages follow what
/// refers to what: a policy fragment may name a backend and named values; an API its version
/// set; an operation its schemas; a policy anything; a subscription its owner and scope.
pub const KINDS: &[Kind] = &[
    kind(NAMED_VALUE, "namedValues", &[], 0),
    kind(BACKEND, "backends", &[], 0),
    kind(VERSION_SET, "apiVersionSets", &[], 0),
    kind(GROUP, "groups", &[], 0),
    kind(USER, "users", &[], 0),
    kind(POLICY_FRAGMENT, "policyFragments", &[], 1),
    kind(API, "apis", &[], 1),
    kind(PRODUCT, "products", &[], 1),
    link(GROUP_USER, "users", &[GROUP], 1),
    kind(SCHEMA, "schemas", &[API], 2),
    link(PRODUCT_API, "apis", &[PRODUCT], 2),
    link(PRODUCT_GROUP, "groups", &[PRODUCT], 2),
    kind(OPERATION, "operations", &[API], 3),
    kind(POLICY, "policies", &["", API, OPERATION, PRODUCT], 4),
    kind(SUBSCRIPTION, "subscriptions", &[], 5),
];

/// The number of stages.
pub const STAGES: usize = 6;

pub fn of(name: &str) -> &'static Kind {
    KINDS
        .iter()
        .find(|kind| kind.name == name)
        .unwrap_or_else(|| unreachable!("every kind named is in KINDS"))
}

/// Members the service computes or that a write cannot set: never compared, never written.
const READ_ONLY: &[&str] = &[
    "provisioningState",
    "isCurrent",
    "isOnline",
    "createdDate",
    "createdDateTime",
    "updatedDateTime",
    "registrationDate",
    "startDate",
    "expirationDate",
    "endDate",
    "notificationDate",
    "builtIn",
    "groups",
    "identities",
    "primaryKey",
    "secondaryKey",
];

/// One entity as listed.
#[derive(Clone)]
pub struct Entity {
    pub kind: &'static str,
    /// Relative to the service, in the source's case (`apis/echo/operations/get`).
    pub path: String,
    /// Its writable properties, ids rewritten to the target service.
    pub properties: Map<String, Value>,
    /// What a new service holds of itself (see [`is_built_in`]): matched, never written.
    pub built_in: bool,
    /// How a built-in was matched when not by its path (see
    /// [`match_administrators_subscriptions`]).
    pub matched: Option<String>,
}

impl Entity {
    /// An entity of `kind` at `path` from a listed document of the service `service`,
    /// rewriting ids into `service` to `to_service`.
    pub fn new(
        kind: &'static str,
        path: String,
        document: &Value,
        service: &str,
        to_service: &str,
    ) -> Self {
        let mut properties = if of(kind).link {
            // It exists or not: what it shows is the linked entity, compared as that entity.
            Map::new()
        } else {
            document["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default()
        };
        properties.retain(|member, _| !READ_ONLY.contains(&member.as_str()));
        if let Some(Value::Object(key_vault)) = properties.get_mut("keyVault") {
            // The service's last refresh from the vault (a time and a status code).
            key_vault.remove("lastStatus");
        }
        let mut value = Value::Object(properties);
        rewrite_ids(&mut value, service, to_service);
        Entity {
            kind,
            path,
            built_in: is_built_in(kind, document),
            matched: None,
            properties: match value {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }

    /// How the report names it: the names along its path (`echo/get`); a policy by its
    /// scope's path (`apis/echo/operations/get`, `products/gold`; `service` for the service's
    /// own), since an API and a product may share a name.
    pub fn name(&self) -> String {
        if self.kind == POLICY {
            let scope = self
                .path
                .strip_suffix("policies/policy")
                .unwrap_or(&self.path)
                .trim_end_matches('/');
            return if scope.is_empty() {
                "service".to_owned()
            } else {
                scope.to_owned()
            };
        }
        self.path
            .split('/')
            .skip(1)
            .step_by(2)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The key both sides pair on.
    pub fn key(&self) -> String {
        self.path.to_ascii_lowercase()
    }

    /// The members of the source's entity that differ in the target's (a member absent on
    /// one side equals null).
    pub fn differs_from(&self, target: &Entity) -> bool {
        self.properties.iter().any(|(member, value)| {
            let theirs = target.properties.get(member).unwrap_or(&Value::Null);
            if self.kind == POLICY && member == "value" {
                let text = |v: &Value| super::policy::normalized(v.as_str().unwrap_or_default());
                return text(value) != text(theirs);
            }
            value != theirs
        })
    }
}

/// Matches the administrator's subscriptions of the source to the target's of the same scope:
/// a new service makes one for each of its default products (and for a product created later)
/// with a generated id, so the ids differ and copying the source's would duplicate them (or
/// fail: `starter` allows one subscription per user). A source subscription owned by the
/// administrator (user `1`) that the target lacks by id is matched to the target's of the same
/// owner and scope: it takes that one's path and is a built-in (its keys stay the target's).
pub fn match_administrators_subscriptions(source: &mut [Entity], target: &[Entity]) {
    let member = |entity: &Entity, name: &str| {
        entity
            .properties
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let is_administrators = |entity: &Entity| {
        entity.kind == SUBSCRIPTION
            && !entity.built_in
            && member(entity, "ownerId").ends_with("/users/1")
    };
    let mut taken: Vec<String> = source.iter().map(Entity::key).collect();
    for entity in source.iter_mut().filter(|e| is_administrators(e)) {
        if target.iter().any(|t| t.key() == entity.key()) {
            continue;
        }
        let same_scope = target.iter().find(|t| {
            is_administrators(t)
                && member(t, "scope") == member(entity, "scope")
                && !taken.contains(&t.key())
        });
        if let Some(theirs) = same_scope {
            entity.matched = Some(format!(
                "the source's {}: the administrator's subscription to the same scope, made by each service with its own id: matched by owner and scope, not written; its keys stay the target's",
                entity.name()
            ));
            entity.path.clone_from(&theirs.path);
            entity.built_in = true;
            taken.push(theirs.key());
        }
    }
}

/// Replaces the prefix `from` (case-insensitive, a whole id: `.../service/a` is no prefix of
/// `.../service/ab`) of every string in `value` by `to`.
fn rewrite_ids(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(text)
            if text.len() >= from.len()
                && text.is_char_boundary(from.len())
                && text[..from.len()].eq_ignore_ascii_case(from)
                && matches!(text.as_bytes().get(from.len()), None | Some(b'/')) =>
        {
            *text = format!("{to}{}", &text[from.len()..]);
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_ids(item, from, to)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|item| rewrite_ids(item, from, to)),
        _ => {}
    }
}

/// What a new service already holds and atg matches instead of writing: the system groups
/// (their membership is the service's), the administrator user and the `master` subscription.
/// A product's link to a system group is not: the link is the source's (a listed link shows
/// the group's properties, `type: system` included), and is written when the target lacks it.
pub fn is_built_in(kind: &str, document: &Value) -> bool {
    let properties = &document["properties"];
    match kind {
        GROUP => properties["builtIn"] == Value::Bool(true) || properties["type"] == "system",
        USER => document["name"] == "1",
        // The all-access subscription: its keys are the target service's own.
        SUBSCRIPTION => document["name"] == "master",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_administrators_subscriptions_are_matched_by_owner_and_scope() {
        let service =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/a";
        let subscription = |name: &str, properties: Value| {
            Entity::new(
                SUBSCRIPTION,
                format!("subscriptions/{name}"),
                &json!({ "name": name, "properties": properties }),
                service,
                service,
            )
        };
        let starter = |name: &str| {
            subscription(
                name,
                json!({ "ownerId": format!("{service}/users/1"), "scope": format!("{service}/products/starter") }),
            )
        };
        // One with neither owner nor scope (all APIs, no owner) is left alone, never a panic.
        let mut source = vec![starter("s-admin"), subscription("s-plain", json!({}))];
        let target = vec![starter("t-admin")];
        match_administrators_subscriptions(&mut source, &target);
        assert_eq!(source[0].path, "subscriptions/t-admin");
        assert!(source[0].built_in);
        assert!(source[0]
            .matched
            .as_deref()
            .is_some_and(|note| note.contains("s-admin")));
        assert_eq!(source[1].path, "subscriptions/s-plain");
        assert!(!source[1].built_in);
    }

    #[test]
    fn ids_into_the_source_service_point_at_the_target_and_read_only_members_go() {
        let source =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/a";
        let target =
            "/subscriptions/t/resourceGroups/h/providers/Microsoft.ApiManagement/service/b";
        let document = json!({ "properties": {
            "ownerId": format!("{}/users/u1", source.to_ascii_uppercase()),
            "scope": format!("{source}/products/starter"),
            "createdDate": "2026-01-01", "state": "active"
        }});
        let entity = Entity::new(
            SUBSCRIPTION,
            "subscriptions/s1".into(),
            &document,
            source,
            target,
        );
        assert_eq!(entity.properties["ownerId"], format!("{target}/users/u1"));
        assert_eq!(
            entity.properties["scope"],
            format!("{target}/products/starter")
        );
        assert!(!entity.properties.contains_key("createdDate"));
        // Another service whose name starts with the source's is not the source.
        let elsewhere = format!("{source}b/products/p");
        let other = Entity::new(
            SUBSCRIPTION,
            "subscriptions/s2".into(),
            &json!({ "properties": { "scope": elsewhere } }),
            source,
            target,
        );
        assert_eq!(other.properties["scope"], elsewhere);
        assert_eq!(entity.name(), "s1");
        let policy = Entity::new(
            POLICY,
            "apis/echo/operations/get/policies/policy".into(),
            &json!({}),
            source,
            target,
        );
        assert_eq!(policy.name(), "apis/echo/operations/get");
    }

    #[test]
    fn a_system_group_is_built_in_and_a_products_link_to_it_is_not() {
        let developers = json!({ "name": "developers", "properties": {
            "displayName": "Developers", "builtIn": true, "type": "system"
        }});
        assert!(is_built_in(GROUP, &developers));
        assert!(!is_built_in(PRODUCT_GROUP, &developers));
    }
}
