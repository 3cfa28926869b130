//! The matching rules, one by one, with ambiguity and leftovers.

use super::naming::{md5_hex, prefix};
use super::*;
use crate::inventory::Properties;

const SOURCE_SUB: &str = "00000000-0000-4000-8000-00000000000a";
const TARGET_SUB: &str = "00000000-0000-4000-8000-00000000000b";

fn resource(subscription: &str, resource_type: &str, name: &str) -> Resource {
    Resource {
        id: format!(
            "/subscriptions/{subscription}/resourceGroups/rg/providers/{resource_type}/{name}"
        ),
        resource_type: resource_type.into(),
        name: name.into(),
        subscription_id: Some(subscription.into()),
        resource_group: Some("rg".into()),
        properties: Properties::Missing,
        options: serde_json::Map::new(),
    }
}

fn source(resource_type: &str, name: &str, twin: Option<&str>) -> SourceResource {
    SourceResource {
        resource: resource(SOURCE_SUB, resource_type, name),
        twin: twin.map(|t| Twin {
            id: t.into(),
            name: t.into(),
        }),
    }
}

fn target(resource_type: &str, name: &str) -> Resource {
    resource(TARGET_SUB, resource_type, name)
}

fn run(sources: &[SourceResource], targets: &[Resource]) -> Matched {
    match_resources(
        sources.to_vec(),
        targets.to_vec(),
        &[],
        &[],
        &MatchOptions::default(),
    )
    .unwrap()
}

fn run_with(
    sources: &[SourceResource],
    targets: &[Resource],
    name_mappings: &[NameMapping],
) -> Matched {
    match_resources(
        sources.to_vec(),
        targets.to_vec(),
        &[],
        name_mappings,
        &MatchOptions::default(),
    )
    .unwrap()
}

fn pair_names(matched: &Matched) -> Vec<(String, String, MatchRule)> {
    matched
        .pairs
        .iter()
        .map(|p| (p.source.name.clone(), p.target.name.clone(), p.match_rule))
        .collect()
}

const KV: &str = "Microsoft.KeyVault/vaults";

#[test]
fn md5_matches_python_hashlib() {
    // python3 -c 'import hashlib; print(hashlib.md5(b"vault-0123456789abcdef").hexdigest())'
    assert_eq!(
        md5_hex("vault-0123456789abcdef"),
        "b7bf97ed717850299bff65c84ac798ca"
    );
    assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
}

#[test]
fn atg_names_follow_each_types_rule() {
    let twin = Twin {
        id: "vault-0123456789abcdef".into(),
        name: "vault-0123456789abcdef".into(),
    };
    let hash = md5_hex(&twin.id);
    assert_eq!(
        atg_planned_name(KV, &twin, TARGET_SUB, true),
        format!("vault-0123456789a-{}", &hash[..6])
    );
    assert_eq!(atg_planned_name(KV, &twin, TARGET_SUB, false), twin.name);
    assert_eq!(
        atg_planned_name("Microsoft.Storage/storageAccounts", &twin, TARGET_SUB, true),
        format!("vault-0123456789ab{}", &hash[..6])
    );
    let long = Twin {
        id: "x".repeat(70),
        name: "x".repeat(70),
    };
    let long_hash = md5_hex(&long.id);
    assert_eq!(
        atg_planned_name("Microsoft.Web/sites", &long, TARGET_SUB, false),
        format!("{}{}", "x".repeat(54), &long_hash[..6])
    );
    assert_eq!(
        atg_planned_name(
            "Microsoft.ContainerRegistry/registries",
            &long,
            TARGET_SUB,
            false
        ),
        format!("{}{}", "x".repeat(44), &long_hash[..6])
    );
    let cosmos = Twin {
        id: "Cosmos-ABC".into(),
        name: "Cosmos-ABC".into(),
    };
    assert_eq!(
        atg_planned_name(
            "Microsoft.DocumentDB/databaseAccounts",
            &cosmos,
            TARGET_SUB,
            false
        ),
        format!("cosmos-abc-{}", &md5_hex(TARGET_SUB)[..8])
    );
    assert_eq!(
        atg_planned_name("Microsoft.Compute/virtualMachines", &twin, TARGET_SUB, true),
        twin.name
    );
}

#[test]
fn exact_names_pair_case_insensitively_by_type() {
    let matched = run(
        &[source(KV, "Shared-KV", None)],
        &[
            target(KV, "shared-kv"),
            target("Microsoft.Storage/storageAccounts", "shared-kv"),
        ],
    );
    assert_eq!(
        pair_names(&matched),
        vec![("Shared-KV".into(), "shared-kv".into(), MatchRule::ExactName)]
    );
    assert_eq!(matched.unmatched.len(), 1);
    assert_eq!(matched.unmatched[0].side, TARGET);
    assert_eq!(
        matched.unmatched[0].resource_type,
        "Microsoft.Storage/storageAccounts"
    );
}

#[test]
fn atg_naming_pairs_through_the_twin_across_subscriptions() {
    let twin = "vault-0123456789abcdef";
    let planned = format!("vault-0123456789a-{}", &md5_hex(twin)[..6]);
    let matched = run(
        &[source(KV, "prod-kv", Some(twin))],
        &[target(KV, &planned), target(KV, "unrelated")],
    );
    assert_eq!(
        pair_names(&matched),
        vec![("prod-kv".into(), planned, MatchRule::AtgNaming)]
    );
    // In the same subscription and tenant, ATG keeps the twin's name.
    let same = SourceResource {
        resource: resource(TARGET_SUB, KV, "prod-kv"),
        twin: Some(Twin {
            id: twin.into(),
            name: twin.into(),
        }),
    };
    let matched = run(&[same], &[target(KV, twin)]);
    assert_eq!(matched.pairs.len(), 1);
    assert_eq!(matched.pairs[0].match_rule, MatchRule::AtgNaming);
}

#[test]
fn a_tenant_change_alone_suffixes_key_vault_names() {
    let twin = "vault-0123456789abcdef";
    let same_sub = SourceResource {
        resource: resource(TARGET_SUB, KV, "prod-kv"),
        twin: Some(Twin {
            id: twin.into(),
            name: twin.into(),
        }),
    };
    let planned = format!("vault-0123456789a-{}", &md5_hex(twin)[..6]);
    let options = MatchOptions {
        source_tenant_id: Some("tenant-a".into()),
        target_tenant_id: Some("tenant-b".into()),
    };
    let matched = match_resources(
        vec![same_sub.clone()],
        vec![target(KV, &planned)],
        &[],
        &[],
        &options,
    )
    .unwrap();
    assert_eq!(matched.pairs[0].match_rule, MatchRule::AtgNaming);
    let matched = run(&[same_sub], &[target(KV, &planned)]);
    assert!(matched.pairs.is_empty(), "{:?}", matched.unmatched);
}

#[test]
fn name_mappings_follow_atg_conflict_renames() {
    let twin = "storage-00112233445566";
    let planned = format!("{}{}", prefix(twin, 18), &md5_hex(twin)[..6]);
    let renamed = format!("{}-copy", prefix(&planned, 19));
    let mappings = [NameMapping {
        original_name: planned.clone(),
        new_name: renamed.clone(),
        resource_type: Some("Microsoft.Storage/storageAccounts".into()),
    }];
    let sources = [source(
        "Microsoft.Storage/storageAccounts",
        "prodstore",
        Some(twin),
    )];
    let targets = [target("Microsoft.Storage/storageAccounts", &renamed)];
    let matched = run_with(&sources, &targets, &mappings);
    assert_eq!(
        pair_names(&matched),
        vec![("prodstore".into(), renamed, MatchRule::AtgNameMapping)]
    );
    // Without the file nothing pairs: the rename is not guessed.
    let matched = run(&sources, &targets);
    assert!(matched.pairs.is_empty());
    assert_eq!(matched.unmatched.len(), 2);
}

#[test]
fn a_name_mappings_entry_keyed_by_the_real_name_beats_a_look_alike() {
    const STORAGE: &str = "Microsoft.Storage/storageAccounts";
    let mappings = [NameMapping {
        original_name: "stprodmedia".into(),
        new_name: "stprodmediacopy".into(),
        resource_type: Some(STORAGE.into()),
    }];
    let sources = [source(STORAGE, "stprodmedia", None)];
    let matched = match_resources(
        sources.to_vec(),
        vec![
            target(STORAGE, "stprodmedia5da01d"),
            target(STORAGE, "stprodmediacopy"),
        ],
        &[],
        &mappings,
        &MatchOptions::default(),
    )
    .unwrap();
    assert_eq!(
        pair_names(&matched),
        vec![(
            "stprodmedia".into(),
            "stprodmediacopy".into(),
            MatchRule::AtgNameMapping
        )]
    );
    // The entry's target is missing: the source stays unmatched, never paired by a weaker rule.
    let matched = run_with(&sources, &[target(STORAGE, "stprodmedia5da01d")], &mappings);
    assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
    let source = matched.unmatched.iter().find(|u| u.side == SOURCE).unwrap();
    assert!(
        source
            .reason
            .contains("name_mappings.json maps it to `stprodmediacopy`"),
        "{}",
        source.reason
    );
}

#[test]
fn a_random_suffix_of_6_to_16_characters_pairs_last() {
    let matched = run(
        &[
            source(KV, "app-kv", None),
            source(KV, "other", Some("vault-ffff")),
        ],
        &[
            target(KV, "app-kvx7k2p9q"),
            target(KV, "vault-ffffa1b2c3d4"),
        ],
    );
    assert_eq!(
        pair_names(&matched),
        vec![
            ("app-kv".into(), "app-kvx7k2p9q".into(), MatchRule::Suffix),
            (
                "other".into(),
                "vault-ffffa1b2c3d4".into(),
                MatchRule::Suffix
            )
        ]
    );
    for bad in [
        "app-kvabcde",
        "app-kvABCDEF",
        "app-kv--abcdef",
        "app-kv-abcde",
        "app-kv0123456789abcdefg",
    ] {
        let matched = run(&[source(KV, "app-kv", None)], &[target(KV, bad)]);
        assert!(matched.pairs.is_empty(), "{bad} must not pair");
    }
}

#[test]
fn the_suffix_may_follow_a_hyphen_and_the_plan_shows_it() {
    let matched = run(
        &[source(KV, "kv-prod-core", None)],
        &[target(KV, "kv-prod-core-a1b2c3")],
    );
    assert_eq!(
        pair_names(&matched),
        vec![(
            "kv-prod-core".into(),
            "kv-prod-core-a1b2c3".into(),
            MatchRule::Suffix
        )]
    );
    let evidence = &matched.pairs[0].evidence;
    assert_eq!(evidence.base.as_deref(), Some("kv-prod-core"));
    assert_eq!(evidence.suffix.as_deref(), Some("-a1b2c3"));
    // With and without the hyphen: two candidates, ambiguous, no tie-break by length.
    let matched = run(
        &[source(KV, "kv-prod", None)],
        &[target(KV, "kv-prod-a1b2c3"), target(KV, "kv-proda1b2c3d4")],
    );
    assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
    let source = &matched.unmatched[0];
    assert!(
        source.reason.starts_with("ambiguous (suffix)"),
        "{}",
        source.reason
    );
    let candidates: Vec<(&str, &str)> = source
        .candidates
        .iter()
        .map(|c| (c.name.as_str(), c.rejected.as_str()))
        .collect();
    assert_eq!(
        candidates,
        vec![
            (
                "kv-prod-a1b2c3",
                "one of several targets fitting it (suffix)"
            ),
            (
                "kv-proda1b2c3d4",
                "one of several targets fitting it (suffix)"
            ),
        ]
    );
}

#[test]
fn unused_name_mappings_are_warnings_and_disagreeing_ones_decide_nothing() {
    let mappings = [
        NameMapping {
            original_name: "gone-kv".into(),
            new_name: "gone-kv-copy".into(),
            resource_type: None,
        },
        NameMapping {
            original_name: "twice-kv".into(),
            new_name: "twice-kv-copy".into(),
            resource_type: None,
        },
        NameMapping {
            original_name: "twice-kv".into(),
            new_name: "twice-kv-other".into(),
            resource_type: Some(KV.into()),
        },
    ];
    let matched = run_with(
        &[source(KV, "twice-kv", None)],
        &[target(KV, "twice-kv-copy"), target(KV, "twice-kv")],
        &mappings,
    );
    assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
    assert!(matched.unmatched[0]
        .reason
        .starts_with("ambiguous (atg_name_mapping): name_mappings.json has several entries"));
    assert_eq!(matched.warnings.len(), 1, "{:?}", matched.warnings);
    assert!(matched.warnings[0].starts_with(
        "name_mappings.json entry `gone-kv` -> `gone-kv-copy` matches no source resource"
    ));
}

#[test]
fn cosmos_names_hashed_from_both_subscriptions_are_ambiguous() {
    const COSMOS: &str = "Microsoft.DocumentDB/databaseAccounts";
    let twin = Twin {
        id: "orders-0011".into(),
        name: "orders-0011".into(),
    };
    let for_target = atg_planned_name(COSMOS, &twin, TARGET_SUB, true);
    let for_source = atg_planned_name(COSMOS, &twin, SOURCE_SUB, true);
    let sources = [source(COSMOS, "orders", Some("orders-0011"))];
    let matched = run(&sources, &[target(COSMOS, &for_source)]);
    assert_eq!(matched.pairs[0].match_rule, MatchRule::AtgNaming);
    assert_eq!(
        matched.pairs[0]
            .evidence
            .planned_for_subscription
            .as_deref(),
        Some(SOURCE_SUB)
    );
    let matched = run(
        &sources,
        &[target(COSMOS, &for_target), target(COSMOS, &for_source)],
    );
    assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
    let names: Vec<&str> = matched.unmatched[0]
        .candidates
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&for_target.as_str()) && names.contains(&for_source.as_str()));
}

#[test]
fn databases_pair_through_their_renamed_server() {
    const SERVER: &str = "Microsoft.Sql/servers";
    const DATABASE: &str = "Microsoft.Sql/servers/databases";
    let database = |subscription: &str, server: &str, name: &str| {
        let mut database = resource(subscription, DATABASE, name);
        database.id = format!(
            "/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Sql/servers/{server}/databases/{name}"
        );
        database
    };
    let sources = vec![
        source(SERVER, "sql-prod", None),
        SourceResource {
            resource: database(SOURCE_SUB, "sql-prod", "orders"),
            twin: None,
        },
    ];
    let targets = vec![
        target(SERVER, "sql-prod-copy"),
        target(SERVER, "sql-other"),
        database(TARGET_SUB, "sql-prod-copy", "orders"),
        database(TARGET_SUB, "sql-other", "orders"),
    ];
    let mappings = [NameMapping {
        original_name: "sql-prod".into(),
        new_name: "sql-prod-copy".into(),
        resource_type: Some(SERVER.into()),
    }];
    let matched =
        match_resources(sources, targets, &[], &mappings, &MatchOptions::default()).unwrap();
    assert_eq!(
        pair_names(&matched),
        vec![
            (
                "sql-prod".into(),
                "sql-prod-copy".into(),
                MatchRule::AtgNameMapping
            ),
            ("orders".into(), "orders".into(), MatchRule::Parent),
        ]
    );
    let parent = matched.pairs[1].evidence.parent.as_ref().unwrap();
    assert!(parent.target_id.ends_with("/sql-prod-copy"));
    assert!(matched.pairs[1]
        .target
        .id
        .contains("/servers/sql-prod-copy/"));
}

#[test]
fn a_source_is_never_paired_with_itself() {
    let same = source(KV, "kv", None);
    let matched = run(
        std::slice::from_ref(&same),
        std::slice::from_ref(&same.resource),
    );
    assert!(matched.pairs.is_empty());
    assert_eq!(
        matched.unmatched[0].candidates[0].rejected,
        "it is the same resource"
    );
}

#[test]
fn ambiguity_is_reported_and_never_resolved_by_a_weaker_rule() {
    // Two targets fit one source by suffix.
    let matched = run(
        &[source(KV, "app-kv", None)],
        &[target(KV, "app-kvaaaaaa"), target(KV, "app-kvbbbbbb")],
    );
    assert!(matched.pairs.is_empty());
    let reasons: Vec<&str> = matched
        .unmatched
        .iter()
        .map(|u| u.reason.as_str())
        .collect();
    assert!(
        reasons[0].starts_with("ambiguous (suffix): several targets fit"),
        "{reasons:?}"
    );
    // Two sources (same name, two subscriptions) claim one target by name: neither gets it,
    // not even through the suffix rule afterwards.
    let mut second = source(KV, "shared", None);
    second.resource.id = second.resource.id.replace(SOURCE_SUB, "other-sub");
    let matched = run(
        &[source(KV, "shared", None), second],
        &[target(KV, "shared"), target(KV, "sharedabcdef")],
    );
    assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
    let target_reason = matched
        .unmatched
        .iter()
        .find(|u| u.side == TARGET && u.name == "shared")
        .unwrap();
    assert!(target_reason
        .reason
        .starts_with("ambiguous (exact_name): several sources fit"));
}

#[test]
fn explicit_mappings_win_and_bad_ones_are_errors() {
    let sources = [source(KV, "a", None), source(KV, "b", None)];
    let targets = [target(KV, "a"), target(KV, "b")];
    let crossed = [ExplicitMapping {
        source_id: sources[0].resource.id.to_uppercase(),
        target_id: targets[1].id.clone(),
    }];
    let matched = match_resources(
        sources.to_vec(),
        targets.to_vec(),
        &crossed,
        &[],
        &MatchOptions::default(),
    )
    .unwrap();
    assert_eq!(
        pair_names(&matched),
        vec![
            ("a".into(), "b".into(), MatchRule::Mapping),
            // `b` lost its namesake to the mapping; `a` (the target) is left.
        ]
    );
    assert_eq!(matched.unmatched.len(), 2);
    let missing = [ExplicitMapping {
        source_id: "/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/zz"
            .into(),
        target_id: targets[0].id.clone(),
    }];
    let error = match_resources(
        sources.to_vec(),
        targets.to_vec(),
        &missing,
        &[],
        &MatchOptions::default(),
    )
    .unwrap_err();
    assert!(
        error.contains("is not among the source resources"),
        "{error}"
    );
}

#[test]
fn leftovers_say_what_was_tried() {
    let matched = run(
        &[
            source(KV, "lonely", Some("vault-1")),
            source("Microsoft.Compute/virtualMachines", "vm", None),
        ],
        &[target(KV, "nothing-alike")],
    );
    let reasons: Vec<(&str, &str)> = matched
        .unmatched
        .iter()
        .map(|u| (u.name.as_str(), u.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3);
    assert!(reasons[0].1.contains("the same name, ATG's name"));
    assert!(reasons[1]
        .1
        .contains("no target of type Microsoft.Compute/virtualMachines"));
    assert_eq!(
        reasons[2],
        ("nothing-alike", "no source resource matches it")
    );
}
