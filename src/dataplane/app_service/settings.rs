//! App settings and connection strings of a site or slot: the source's entries merged into the
//! target's map, which is then written whole (the service's PUT replaces the map).
//!
//! The rules, in order, per name of the source:
//! 1. an infrastructure setting (the target's storage, content share, monitoring, package,
//!    runtime, registry and sign-in secret: [`is_infrastructure`]) keeps the target's value, or
//!    stays absent, unless the pair's `copy_infrastructure_settings` names it; each is reported;
//! 2. template mode writes a placeholder only where the target lacks the name; a target value is
//!    never replaced by a placeholder;
//! 3. replication writes the source's value, its Key Vault reference rewritten to the paired
//!    target vault ([`super::key_vault_refs`]);
//! 4. a name the target holds with another value follows `--on-conflict` ([`Decision`]).
//!
//! A name only the target has is never removed. Values are [`Sensitive`]: notes name settings,
//! never their values.

use std::collections::BTreeMap;

use serde_json::Value;

use super::key_vault_refs::{rewrite, Rewrite, VaultPairs};
use super::{item, Item, Scope, Work};
use crate::azure::arm::web::ConnectionString;
use crate::azure::{Cloud, Sensitive};
use crate::dataplane::kit::{fingerprint, Decision, Existing, Newer};
use crate::dataplane::{Difference, Mode, OnConflict, PlannedAction};

/// App settings that belong to the target's own infrastructure: copying the source's would
/// point the target app at the source's storage, content share, monitoring or registry.
const INFRASTRUCTURE: &[&str] = &[
    "AzureWebJobsStorage",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
    "WEBSITE_RUN_FROM_PACKAGE",
    "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET",
];
const INFRASTRUCTURE_PREFIXES: &[&str] = &["FUNCTIONS_", "DOCKER_REGISTRY_SERVER_"];

/// Whether `name` is one of the target's infrastructure settings (names compared as App
/// Service does, ignoring case).
pub fn is_infrastructure(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    INFRASTRUCTURE
        .iter()
        .any(|known| known.eq_ignore_ascii_case(name))
        || INFRASTRUCTURE_PREFIXES
            .iter()
            .any(|prefix| upper.starts_with(prefix))
}

/// A value of a map that is merged: an app setting, or a connection string with its type.
pub trait Entry: Clone + PartialEq {
    fn value(&self) -> &Sensitive;
    /// The same entry (type kept) with another value.
    fn with_value(&self, value: Sensitive) -> Self;
    /// What of the entry is not secret, for a plan's fingerprint: never its value.
    fn public(&self) -> Value;
}

impl Entry for Sensitive {
    fn value(&self) -> &Sensitive {
        self
    }

    fn with_value(&self, value: Sensitive) -> Self {
        value
    }

    fn public(&self) -> Value {
        Value::Null
    }
}

impl Entry for ConnectionString {
    fn value(&self) -> &Sensitive {
        &self.value
    }

    fn with_value(&self, value: Sensitive) -> Self {
        ConnectionString {
            value,
            kind: self.kind.clone(),
        }
    }

    fn public(&self) -> Value {
        Value::from(self.kind.as_str())
    }
}

/// What decides a merge.
pub struct Rules<'a> {
    /// `app setting`, `connection string`.
    pub what: &'static str,
    pub mode: Mode,
    pub on_conflict: OnConflict,
    /// Whether the infrastructure deny-list applies (app settings only).
    pub infrastructure: bool,
    /// Infrastructure settings the pair's options ask to copy.
    pub copy_infrastructure: &'a [String],
    pub vaults: &'a VaultPairs,
    pub cloud: Cloud,
    pub placeholder: &'static str,
}

/// The map to write and what it took.
#[derive(Debug)]
pub struct Merged<V> {
    /// The target's map with the source's entries in: what the PUT sends.
    pub map: BTreeMap<String, V>,
    /// Names absent in the target and written.
    pub created: usize,
    /// Names the target held with another value, written over.
    pub changed: usize,
    pub notes: Vec<String>,
    /// Names `--on-conflict` leaves as the target holds them, with the reason.
    pub skipped: Vec<String>,
    /// Names `--on-conflict fail` refuses: nothing of the map is written.
    pub refused: Vec<String>,
}

impl<V: Entry> Merged<V> {
    /// The plan: fail (a refused name), skip (nothing to write but names left differing),
    /// identical (nothing to write), create (into an empty map) or overwrite.
    pub fn planned(&self, target: &BTreeMap<String, V>) -> PlannedAction {
        if !self.refused.is_empty() {
            PlannedAction::Fail {
                reason: self.refused.join("; "),
            }
        } else if self.map == *target && !self.skipped.is_empty() {
            PlannedAction::Skip {
                reason: self.skipped.join("; "),
            }
        } else if self.map == *target {
            PlannedAction::Identical
        } else if target.is_empty() {
            PlannedAction::Create
        } else {
            PlannedAction::Overwrite {
                differs: vec![Difference::Value],
            }
        }
    }

    /// In words, for the outcome: `3 created, 1 changed`.
    pub fn describe(&self) -> String {
        format!("{} created, {} changed", self.created, self.changed)
    }
}

/// The item of one scope's map (`kind`: app settings or connection strings): the merge of
/// `(source, target)` planned, with the work that writes the merged map.
pub(super) fn map_item<V: Entry>(
    kind: &'static str,
    scope: &Scope,
    (source, target): (&BTreeMap<String, V>, &BTreeMap<String, V>),
    rules: &Rules<'_>,
    work: impl FnOnce(BTreeMap<String, V>, String) -> Work,
) -> Item {
    let decided_from = fingerprint::shapes(&public(source), Some(&public(target)));
    let merged = merge(source, target, rules);
    let action = merged.planned(target);
    let mut describe = merged.describe();
    if rules.mode == Mode::Template {
        describe.push_str(" (placeholders)");
    }
    let mut notes = merged.notes;
    if !matches!(action, PlannedAction::Skip { .. }) {
        // Written or failed for other names: the names left are worth a note.
        notes.extend(merged.skipped);
    }
    item(
        kind,
        scope.label.clone(),
        action,
        notes,
        work(merged.map, describe),
    )
    .decided_from(decided_from)
}

/// A map's names with what is not secret of each entry (a connection string's type): setting
/// and connection-string values are secrets and never enter a fingerprint, not even hashed.
fn public<V: Entry>(map: &BTreeMap<String, V>) -> Value {
    Value::Object(
        map.iter()
            .map(|(name, entry)| (name.clone(), entry.public()))
            .collect(),
    )
}

/// Merges `source` into `target` by [`Rules`] (see the module's documentation).
pub fn merge<V: Entry>(
    source: &BTreeMap<String, V>,
    target: &BTreeMap<String, V>,
    rules: &Rules<'_>,
) -> Merged<V> {
    let mut merged = Merged {
        map: target.clone(),
        created: 0,
        changed: 0,
        notes: Vec::new(),
        skipped: Vec::new(),
        refused: Vec::new(),
    };
    let what = rules.what;
    for (name, entry) in source {
        let held = target.get(name);
        if rules.infrastructure
            && is_infrastructure(name)
            && !rules
                .copy_infrastructure
                .iter()
                .any(|asked| asked.eq_ignore_ascii_case(name))
        {
            merged.notes.push(match held {
                Some(_) => format!("{what} `{name}`: the target's own infrastructure setting kept (options.copy_infrastructure_settings copies it)"),
                None => format!("{what} `{name}`: infrastructure setting not copied, the target sets its own (options.copy_infrastructure_settings copies it)"),
            });
            continue;
        }
        let desired = match rules.mode {
            // A placeholder never replaces a value the target holds.
            Mode::Template if held.is_some() => continue,
            Mode::Template => entry.with_value(Sensitive::new(rules.placeholder)),
            Mode::Replication => match rewrite(entry.value().expose(), rules.vaults, rules.cloud) {
                Rewrite::NotAReference => entry.clone(),
                Rewrite::Rewritten {
                    value,
                    vault,
                    dropped_version,
                } => {
                    merged.notes.push(format!(
                            "{what} `{name}`: Key Vault reference rewritten to the paired vault `{vault}`{} (the app's identity needs `Key Vault Secrets User` there)",
                            if dropped_version { ", latest version" } else { "" }
                        ));
                    entry.with_value(Sensitive::new(value))
                }
                Rewrite::Kept { vault } => {
                    merged.notes.push(format!(
                            "{what} `{name}`: Key Vault reference to `{vault}` kept as it is (that vault is not paired in this run)"
                        ));
                    entry.clone()
                }
            },
        };
        let existing = match held {
            None => Existing::Absent,
            Some(held) if *held == desired => Existing::Identical,
            Some(_) => Existing::Differs(Newer::Unknown(
                "app settings and connection strings carry no modification time",
            )),
        };
        match Decision::new(rules.on_conflict, &format!("{what} `{name}`"), existing) {
            Decision::Write => {
                if held.is_some() {
                    merged.changed += 1;
                } else {
                    merged.created += 1;
                }
                merged.map.insert(name.clone(), desired);
            }
            Decision::Identical => {}
            Decision::Skip(reason) => merged.skipped.push(reason),
            Decision::Fail(reason) => merged.refused.push(reason),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACEHOLDER: &str = "placeholder";

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, Sensitive> {
        entries
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Sensitive::new(*value)))
            .collect()
    }

    fn rules(mode: Mode, on_conflict: OnConflict, vaults: &VaultPairs) -> Rules<'_> {
        Rules {
            what: "app setting",
            mode,
            on_conflict,
            infrastructure: true,
            copy_infrastructure: &[],
            vaults,
            cloud: Cloud::AzureCloud,
            placeholder: PLACEHOLDER,
        }
    }

    #[test]
    fn no_setting_or_connection_string_value_reaches_a_fingerprint() {
        let vaults = VaultPairs::default();
        let rules = rules(Mode::Replication, OnConflict::Overwrite, &vaults);
        let fingerprint_of = |source: &BTreeMap<String, Sensitive>,
                              target: &BTreeMap<String, Sensitive>| {
            map_item(
                "app-settings",
                &Scope::production(),
                (source, target),
                &rules,
                |_, _| Work::Settled,
            )
            .item
            .fingerprint
        };
        let one = fingerprint_of(&map(&[("Db", "pw-1")]), &map(&[("Db", "pw-2")]));
        let other = fingerprint_of(&map(&[("Db", "pw-3")]), &map(&[("Db", "pw-4")]));
        assert!(one.is_some());
        assert_eq!(one, other, "a value reached the fingerprint");
        // A name is what it covers.
        let renamed = fingerprint_of(&map(&[("Db2", "pw-3")]), &map(&[("Db", "pw-4")]));
        assert_ne!(one, renamed);
        // A connection string's type, never its value.
        let strings = |value: &str, kind: &str| {
            let entry = ConnectionString {
                value: Sensitive::new(value),
                kind: kind.to_owned(),
            };
            BTreeMap::from([("Main".to_owned(), entry)])
        };
        let strings_of = |source: &BTreeMap<String, ConnectionString>| {
            map_item(
                "connection-strings",
                &Scope::production(),
                (source, &BTreeMap::new()),
                &rules,
                |_, _| Work::Settled,
            )
            .item
            .fingerprint
        };
        assert_eq!(
            strings_of(&strings("Server=a;Password=1", "SQLAzure")),
            strings_of(&strings("Server=b;Password=2", "SQLAzure"))
        );
        assert_ne!(
            strings_of(&strings("v", "SQLAzure")),
            strings_of(&strings("v", "Custom"))
        );
    }

    #[test]
    fn the_targets_infrastructure_and_its_own_settings_are_kept() {
        let vaults = VaultPairs::default();
        let source = map(&[
            ("AzureWebJobsStorage", "source-storage"),
            ("FUNCTIONS_WORKER_RUNTIME", "node"),
            ("WEBSITE_RUN_FROM_PACKAGE", "https://src/pkg?sig=x"),
            ("Greeting", "hello"),
        ]);
        let target = map(&[
            ("AzureWebJobsStorage", "target-storage"),
            ("FUNCTIONS_WORKER_RUNTIME", "dotnet"),
            ("OnlyInTarget", "mine"),
        ]);
        let merged = merge(
            &source,
            &target,
            &rules(Mode::Replication, OnConflict::Overwrite, &vaults),
        );
        assert_eq!(
            merged.map,
            map(&[
                ("AzureWebJobsStorage", "target-storage"),
                ("FUNCTIONS_WORKER_RUNTIME", "dotnet"),
                ("Greeting", "hello"),
                ("OnlyInTarget", "mine"),
            ])
        );
        assert_eq!((merged.created, merged.changed), (1, 0));
        assert_eq!(merged.notes.len(), 3, "{:?}", merged.notes);
        assert!(merged
            .notes
            .iter()
            .any(|n| n.contains("`AzureWebJobsStorage`: the target's own")));
        assert!(merged
            .notes
            .iter()
            .any(|n| n.contains("`WEBSITE_RUN_FROM_PACKAGE`: infrastructure setting not copied")));
        assert!(merged
            .notes
            .iter()
            .all(|n| !n.contains("source-storage") && !n.contains("sig=")));
        // Asked for by name, one is copied like any other.
        let asked = ["website_run_from_package".to_owned()];
        let merged = merge(
            &source,
            &target,
            &Rules {
                copy_infrastructure: &asked,
                ..rules(Mode::Replication, OnConflict::Overwrite, &vaults)
            },
        );
        assert_eq!(
            merged.map["WEBSITE_RUN_FROM_PACKAGE"].expose(),
            "https://src/pkg?sig=x"
        );
        assert_eq!(merged.map["AzureWebJobsStorage"].expose(), "target-storage");
    }

    #[test]
    fn template_placeholders_never_replace_a_target_value() {
        let vaults = VaultPairs::default();
        let source = map(&[("A", "a"), ("B", "b")]);
        let target = map(&[("A", "real")]);
        let merged = merge(
            &source,
            &target,
            &rules(Mode::Template, OnConflict::Overwrite, &vaults),
        );
        assert_eq!(merged.map, map(&[("A", "real"), ("B", PLACEHOLDER)]));
        assert_eq!(
            merged.planned(&target),
            PlannedAction::Overwrite {
                differs: vec![Difference::Value]
            }
        );
        // Run again: nothing to write.
        let again = merge(
            &source,
            &merged.map,
            &rules(Mode::Template, OnConflict::Overwrite, &vaults),
        );
        assert_eq!(again.planned(&merged.map), PlannedAction::Identical);
    }

    #[test]
    fn differing_values_follow_on_conflict() {
        let vaults = VaultPairs::default();
        let source = map(&[("A", "new"), ("B", "b")]);
        let target = map(&[("A", "old")]);
        let overwrite = merge(
            &source,
            &target,
            &rules(Mode::Replication, OnConflict::Overwrite, &vaults),
        );
        assert_eq!(overwrite.map, map(&[("A", "new"), ("B", "b")]));
        assert_eq!(overwrite.describe(), "1 created, 1 changed");
        let skip = merge(
            &source,
            &target,
            &rules(Mode::Replication, OnConflict::Skip, &vaults),
        );
        assert_eq!(skip.map, map(&[("A", "old"), ("B", "b")]));
        assert!(
            skip.skipped[0].contains("app setting `A` exists in the target and differs"),
            "{:?}",
            skip.skipped
        );
        // Nothing else to write: the map is reported skipped, not identical.
        let skip_only = merge(
            &source,
            &skip.map,
            &rules(Mode::Replication, OnConflict::Skip, &vaults),
        );
        assert!(
            matches!(skip_only.planned(&skip.map), PlannedAction::Skip { reason } if reason.contains("(--on-conflict skip)")),
            "{:?}",
            skip_only.planned(&skip.map)
        );
        let newer = merge(
            &source,
            &target,
            &rules(Mode::Replication, OnConflict::IfSourceNewer, &vaults),
        );
        assert_eq!(newer.map["A"].expose(), "old");
        let fail = merge(
            &source,
            &target,
            &rules(Mode::Replication, OnConflict::Fail, &vaults),
        );
        assert!(
            matches!(fail.planned(&target), PlannedAction::Fail { reason } if reason.contains("`A`"))
        );
    }

    #[test]
    fn connection_strings_keep_their_type() {
        let vaults = VaultPairs::default();
        let string = |value: &str, kind: &str| ConnectionString {
            value: Sensitive::new(value),
            kind: kind.into(),
        };
        let source = BTreeMap::from([("db".to_owned(), string("Server=s", "SQLAzure"))]);
        let target = BTreeMap::from([("db".to_owned(), string("Server=s", "Custom"))]);
        let merged = merge(
            &source,
            &target,
            &Rules {
                what: "connection string",
                infrastructure: false,
                ..rules(Mode::Replication, OnConflict::Overwrite, &vaults)
            },
        );
        assert_eq!(merged.map["db"].kind, "SQLAzure");
        assert_eq!(merged.changed, 1);
        let template = merge(
            &source,
            &BTreeMap::new(),
            &Rules {
                what: "connection string",
                infrastructure: false,
                ..rules(Mode::Template, OnConflict::Overwrite, &vaults)
            },
        );
        assert_eq!(template.map["db"], string(PLACEHOLDER, "SQLAzure"));
    }
}
