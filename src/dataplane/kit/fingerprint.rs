//! Fingerprints for the plans of services whose items carry no version (the ARM plugins): what
//! a decision was made from, so that a plan applied later can tell that an item changed since.
//!
//! Each side is a digest of its canonical compared shape (the members the plugin compares, keys
//! sorted at every level), then its modification time where the service gives one. The caller
//! chooses the shape and must leave every secret-bearing member out of it: a digest of a
//! low-entropy secret in a plan file could be brute-forced.

use md5::{Digest, Md5};
use serde_json::Value;

/// One side of an item as its decision saw it: `md5 <hex>`, then ` at <stamp>` when the service
/// gives a modification time. `shape` holds no secret (see the module's documentation).
pub fn side(shape: &Value, stamp: Option<&str>) -> String {
    // Canonical: serde_json's maps keep their keys sorted (its `preserve_order` feature is off;
    // the test below fails if a dependency turns it on).
    let digest = format!("md5 {:x}", Md5::digest(shape.to_string().as_bytes()));
    match stamp {
        Some(stamp) => format!("{digest} at {stamp}"),
        None => digest,
    }
}

/// The fingerprint of an item decided from `source` against `target` (`None`: the target lacks
/// it), each made by [`side`]: `source md5 ..., target absent`.
pub fn pair(source: &str, target: Option<&str>) -> String {
    format!("source {source}, target {}", target.unwrap_or("absent"))
}

/// The fingerprint of an item decided from two shapes, for a service that gives no modification
/// time: [`pair`] of their [`side`]s.
pub fn shapes(source: &Value, target: Option<&Value>) -> String {
    pair(
        &side(source, None),
        target.map(|target| side(target, None)).as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_side_depends_on_the_shape_and_the_stamp_never_on_key_order() {
        let mut one = serde_json::Map::new();
        one.insert("b".into(), json!(1));
        one.insert("a".into(), json!({"y": [1, 2], "x": null}));
        let mut other = serde_json::Map::new();
        other.insert("a".into(), json!({"x": null, "y": [1, 2]}));
        other.insert("b".into(), json!(1));
        let (one, other) = (Value::Object(one), Value::Object(other));
        assert_eq!(side(&one, None), side(&other, None));
        assert!(side(&one, None).starts_with("md5 "));
        assert_ne!(
            side(&one, None),
            side(&json!({"a": {"y": [2, 1]}, "b": 1}), None)
        );
        assert_ne!(side(&one, Some("t1")), side(&one, Some("t2")));
        assert_eq!(
            pair("s", None),
            "source s, target absent",
            "the format docs/plan.md shows"
        );
    }
}
