//! Inventory checks and input files.

use super::*;

#[test]
fn truncated_properties_keep_fields_that_survived_the_cut() {
    let full = r#"{"vaultUri":"https://kv1.vault.azure.net/","tenantId":"t","accessPolicies":[{"tenantId":"x","objectId":"y"}],"sku":{"name":"stand"#;
    let props = Properties::from_value(Some(&Value::String(full.into()))).unwrap();
    assert!(props.is_truncated());
    assert_eq!(
        props.get_str("vaultUri").as_deref(),
        Some("https://kv1.vault.azure.net/")
    );
    assert_eq!(props.get_str("tenantId").as_deref(), Some("t"));
    // objectId is nested, not top-level.
    assert_eq!(props.get_str("objectId"), None);
    let cut = r#"{"tenantId":"t","vaultUri":"https://kv1.vau"#;
    let props = Properties::from_value(Some(&Value::String(cut.into()))).unwrap();
    assert_eq!(props.get_str("vaultUri"), None);
}

#[test]
fn properties_as_object_or_string_read_the_same() {
    let object = serde_json::json!({"vaultUri": "https://a.vault.azure.net/"});
    let text = Value::String(object.to_string());
    for value in [object, text] {
        let props = Properties::from_value(Some(&value)).unwrap();
        assert_eq!(
            props.get_str("vaultUri").as_deref(),
            Some("https://a.vault.azure.net/")
        );
    }
    assert!(Properties::from_value(Some(&serde_json::json!(3))).is_err());
    assert!(Properties::from_value(Some(&Value::String("[1]".into()))).is_err());
}

fn vault(name: &str) -> Resource {
    let id =
        format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}");
    Resource {
        id,
        resource_type: "Microsoft.KeyVault/vaults".into(),
        name: name.into(),
        subscription_id: Some("s".into()),
        resource_group: Some("rg".into()),
        properties: Properties::Missing,
        options: serde_json::Map::new(),
    }
}

fn inventory(pairs: &[(&str, &str)], match_rule: MatchRule) -> Inventory {
    Inventory {
        pairs: pairs
            .iter()
            .map(|(source, target)| ResourcePair {
                source: vault(source),
                target: vault(target),
                match_rule,
                evidence: Evidence::default(),
            })
            .collect(),
        unmatched: Vec::new(),
        origin: "test".into(),
        warnings: Vec::new(),
    }
}

#[test]
fn one_source_may_fill_several_targets() {
    let inventory = inventory(&[("a", "b"), ("a", "c")], MatchRule::Inventory);
    assert!(
        inventory.problems().is_empty(),
        "{:?}",
        inventory.problems()
    );
    assert!(inventory.check().is_ok());
}

#[test]
fn graph_pairs_are_named_by_their_ids() {
    let inventory = inventory(&[("a", "a")], MatchRule::ExactName);
    let problems = inventory.problems();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with(
            "pair `/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/a` -> `"
        ),
        "{problems:?}"
    );
}

#[test]
fn control_characters_from_any_source_are_refused_and_escaped() {
    let mut inventory = inventory(&[("a", "b")], MatchRule::AtgNaming);
    inventory
        .unmatched
        .push(Unmatched::new(SOURCE, &vault("x\u{7f}y"), "no target"));
    let problems = inventory.problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("source id `"), "{problems:?}");
    assert!(
        problems[1].contains("source name `x\\u{7f}y` contains control characters"),
        "{problems:?}"
    );
    assert!(!problems.concat().chars().any(char::is_control));
}

#[test]
fn escaping_writes_c0_del_and_c1_as_code_points_and_keeps_the_rest() {
    assert_eq!(escape_controls("kv-é"), "kv-é");
    assert_eq!(
        escape_controls("a\u{1b}[31m\n\u{7f}\u{9b}b"),
        "a\\u{1b}[31m\\u{a}\\u{7f}\\u{9b}b"
    );
}

#[test]
fn arm_ids_give_subscription_and_group() {
    let (sub, group) = Resource::parse_id(
        "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv",
    )
    .unwrap();
    assert_eq!((sub.as_str(), group.as_deref()), ("s1", Some("rg1")));
    assert!(Resource::parse_id("kv").is_err());
    assert!(Resource::parse_id("/resourceGroups/rg").is_err());
}
