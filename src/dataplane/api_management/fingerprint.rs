//! What a plan's decision on an entity was made from: a digest of each side's compared
//! properties (the listing gives no entity tag or modification time), with every secret-bearing member
//! left out, not even hashed (a digest of a low-entropy secret in a plan file can be
//! brute-forced). A change of such a member alone is seen when the plan is applied, by deciding
//! the entity again.

use serde_json::{Map, Value};

use super::backend;
use super::entities::{Entity, BACKEND, NAMED_VALUE};
use crate::dataplane::kit::fingerprint;

/// The fingerprint of `source` decided against `target` (`None`: the target lacks it).
pub(super) fn decided_from(source: &Entity, target: Option<&Entity>) -> String {
    fingerprint::shapes(&shape(source), target.map(shape).as_ref())
}

/// An entity's compared properties without its secret-bearing members: a secret named value's
/// value, a backend's literal credentials (see [`backend`]). A subscription's keys are never
/// among an entity's properties (`entities::READ_ONLY`).
fn shape(entity: &Entity) -> Value {
    let mut properties: Map<String, Value> = match entity.kind {
        BACKEND => backend::without_literal_credentials(&entity.properties),
        _ => entity.properties.clone(),
    };
    if entity.kind == NAMED_VALUE && properties.get("secret") == Some(&Value::Bool(true)) {
        properties.remove("value");
    }
    Value::Object(properties)
}

#[cfg(test)]
mod tests {
    use super::super::entities::SUBSCRIPTION;
    use super::*;
    use serde_json::json;

    const SERVICE: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/a";

    fn entity(kind: &'static str, path: &str, properties: Value) -> Entity {
        let mut document = json!({ "name": path.rsplit('/').next() });
        document["properties"] = properties;
        Entity::new(kind, path.to_owned(), &document, SERVICE, SERVICE)
    }

    #[test]
    fn no_secret_member_reaches_a_fingerprint() {
        let cases = [
            (
                NAMED_VALUE,
                "namedValues/db",
                json!({"displayName": "db", "secret": true, "value": "s3cret-1"}),
                json!({"displayName": "db", "secret": true, "value": "s3cret-2"}),
            ),
            (
                SUBSCRIPTION,
                "subscriptions/app",
                json!({"displayName": "app", "primaryKey": "k-1", "secondaryKey": "k-2"}),
                json!({"displayName": "app", "primaryKey": "k-3", "secondaryKey": "k-4"}),
            ),
            (
                BACKEND,
                "backends/b",
                json!({"url": "https://b", "credentials": {"header": {"x-key": ["k-1"]}}, "proxy": {"url": "http://p", "password": "p-1"}}),
                json!({"url": "https://b", "credentials": {"header": {"x-key": ["k-2"]}}, "proxy": {"url": "http://p", "password": "p-2"}}),
            ),
        ];
        for (kind, path, one, other) in cases {
            let (one, other) = (entity(kind, path, one), entity(kind, path, other));
            assert_eq!(
                decided_from(&one, Some(&one)),
                decided_from(&other, Some(&other)),
                "a secret of a {kind} reached its fingerprint"
            );
        }
        // What is not a secret does: a plain named value's value, a backend's url.
        let plain = |value: &str| {
            entity(
                NAMED_VALUE,
                "namedValues/p",
                json!({"secret": false, "value": value}),
            )
        };
        assert_ne!(
            decided_from(&plain("a"), None),
            decided_from(&plain("b"), None)
        );
        let backend = |url: &str| entity(BACKEND, "backends/b", json!({ "url": url }));
        assert_ne!(
            decided_from(&backend("https://a"), None),
            decided_from(&backend("https://b"), None)
        );
        // A backend's credential names and references are no secret: a change reaches it.
        let header = |name: &str, value: &str| {
            entity(
                BACKEND,
                "backends/b",
                json!({ "credentials": { "header": { name: [value] } } }),
            )
        };
        assert_ne!(
            decided_from(&header("x-key", "{{one}}"), None),
            decided_from(&header("x-key", "{{other}}"), None)
        );
        assert_ne!(
            decided_from(&header("x-key", "k-1"), None),
            decided_from(&header("x-other", "k-1"), None)
        );
    }
}
