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
}

pub const NAMED_VALUE: &str = "named-value";
pub const BACKEND: &str = "backend";
pub const POLICY_FRAGMENT: &str = "policy-fragment";
pub const VERSION_SET: &str = "api-version-set";
pub const GROUP: &str = "group";
pub const USER: &str = "user";
pub const API: &str = "api";
pub const OPERATION: &str = "operation";
pub const SCHEMA: &str = "schema";
pub const PRODUCT: &str = "product";
pub const PRODUCT_API: &str = "product-api";
pub const PRODUCT_GROUP: &str = "product-group";
pub const POLICY: &str = "policy";
pub const SUBSCRIPTION: &str = "subscription";

/// Every kind, parents before children (the order they are listed in).
pub const KINDS: &[Kind] = &[
    Kind {
        name: NAMED_VALUE,
        collection: "namedValues",
        parents: &[],
        stage: 0,
    },
    Kind {
        name: BACKEND,
        collection: "backends",
        parents: &[],
        stage: 1,
    },
    Kind {
        name: POLICY_FRAGMENT,
        collection: "policyFragments",
        parents: &[],
        stage: 1,
    },
    Kind {
        name: VERSION_SET,
        collection: "apiVersionSets",
        parents: &[],
        stage: 0,
    },
    Kind {
        name: GROUP,
        collection: "groups",
        parents: &[],
        stage: 0,
    },
    Kind {
        name: USER,
        collection: "users",
        parents: &[],
        stage: 0,
    },
    Kind {
        name: API,
        collection: "apis",
        parents: &[],
        stage: 1,
    },
    Kind {
        name: PRODUCT,
        collection: "products",
        parents: &[],
        stage: 1,
    },
    Kind {
        name: OPERATION,
        collection: "operations",
        parents: &[API],
        stage: 2,
    },
    Kind {
        name: SCHEMA,
        collection: "schemas",
        parents: &[API],
        stage: 2,
    },
    Kind {
        name: PRODUCT_API,
        collection: "apis",
        parents: &[PRODUCT],
        stage: 2,
    },
    Kind {
        name: PRODUCT_GROUP,
        collection: "groups",
        parents: &[PRODUCT],
        stage: 2,
    },
    Kind {
        name: POLICY,
        collection: "policies",
        parents: &["", API, OPERATION, PRODUCT],
        stage: 3,
    },
    Kind {
        name: SUBSCRIPTION,
        collection: "subscriptions",
        parents: &[],
        stage: 4,
    },
];

/// The number of stages.
pub const STAGES: usize = 5;

pub fn kind(name: &str) -> &'static Kind {
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
        let mut properties = document["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        properties.retain(|member, _| !READ_ONLY.contains(&member.as_str()));
        let mut value = Value::Object(properties);
        rewrite_ids(&mut value, service, to_service);
        Entity {
            kind,
            path,
            built_in: is_built_in(kind, document),
            properties: match value {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }

    /// How the report names it: the names along its path (`echo/get`), `service` for the
    /// service's own policy.
    pub fn name(&self) -> String {
        let names: Vec<&str> = self
            .path
            .split('/')
            .skip(1)
            .step_by(2)
            .filter(|name| !(self.kind == POLICY && *name == "policy"))
            .collect();
        if names.is_empty() {
            "service".to_owned()
        } else {
            names.join("/")
        }
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

/// Replaces the prefix `from` (case-insensitive) of every string in `value` by `to`.
fn rewrite_ids(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(text)
            if text.len() >= from.len()
                && text.is_char_boundary(from.len())
                && text[..from.len()].eq_ignore_ascii_case(from) =>
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
        assert_eq!(entity.name(), "s1");
        let policy = Entity::new(
            POLICY,
            "apis/echo/operations/get/policies/policy".into(),
            &json!({}),
            source,
            target,
        );
        assert_eq!(policy.name(), "echo/get");
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
