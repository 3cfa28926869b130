//! Authorization rules (shared access policies) at namespace and entity scope: their rights in
//! both modes; in replication also their keys, set to the source's with `regenerateKeys` and
//! the key (primary and secondary), so the applications' connection strings keep working after
//! the move. Template mode creates a missing rule, which the service gives new keys, and never
//! reads or writes a key. Keys are compared in memory and never printed.

use serde_json::{Map, Value};

use super::entities::{updated_at, NO_TIME};
use super::namespace::{copies_keys, item, Item, Sides, Work, Write, AUTHORIZATION_RULE};
use crate::azure::arm::servicebus::{Child, Messaging};
use crate::azure::AzureError;
use crate::dataplane::kit::{fingerprint, Decision, Existing, Merged, Newer};
use crate::dataplane::{Difference, Mode, OnConflict, PlannedAction, EXTRA};

/// What planning a rule needs.
pub(super) struct RuleSides<'a> {
    pub api: &'static Messaging,
    pub sides: &'a Sides,
    pub mode: Mode,
    pub on_conflict: OnConflict,
    pub verify: bool,
}

fn rights(rule: &Child) -> Vec<String> {
    let mut rights: Vec<String> = rule
        .properties
        .get("rights")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|right| right.as_str().map(str::to_owned))
        .collect();
    rights.sort();
    rights
}

/// One side of a rule for a plan's fingerprint: its rights and when the service last changed
/// it. Its keys never enter a fingerprint, not even hashed: a change of keys alone is seen when
/// the plan is applied, by deciding the rule again.
fn fingerprint_side(rule: &Child) -> String {
    fingerprint::side(&Value::from(rights(rule)), updated_at(rule))
}

/// Plans the source's rule of `merged` in the collection at `collection`, or lists the
/// target's extra in `atg verify`.
pub(super) async fn plan(
    rules: &RuleSides<'_>,
    collection: &str,
    merged: Merged<Child, Child>,
) -> Option<Item> {
    let (source, target) = match merged {
        Merged::TargetOnly(target) => {
            return rules.verify.then(|| {
                let relative = format!("{collection}/{}", target.name);
                item(
                    AUTHORIZATION_RULE,
                    &relative,
                    PlannedAction::Extra,
                    vec![EXTRA.to_owned()],
                    Work::Settled,
                )
            });
        }
        other => other.into_source_pair()?,
    };
    let relative = format!("{collection}/{}", source.name);
    let decided_from = fingerprint::pair(
        &fingerprint_side(&source),
        target.as_ref().map(fingerprint_side).as_deref(),
    );
    let unreadable = |side: &str, error: &AzureError| {
        let reason = format!("cannot read the {side} keys: {error}");
        item(
            AUTHORIZATION_RULE,
            &relative,
            PlannedAction::Fail { reason },
            Vec::new(),
            Work::Settled,
        )
    };
    let (source_keys, target_keys) = if copies_keys(rules.mode) {
        let api = rules.api;
        let sides = rules.sides;
        let source_keys = match api
            .list_keys(&sides.source, &sides.source_id(&relative))
            .await
        {
            Ok(keys) => keys,
            Err(error) => return Some(unreadable("source", &error)),
        };
        let target_keys = match &target {
            Some(_) => match api
                .list_keys(&sides.target, &sides.target_id(&relative))
                .await
            {
                Ok(keys) => Some(keys),
                Err(error) => return Some(unreadable("target", &error)),
            },
            None => None,
        };
        (Some(source_keys), target_keys)
    } else {
        (None, None)
    };
    let rights_differ = target
        .as_ref()
        .is_some_and(|target| rights(target) != rights(&source));
    let keys_differ = source_keys.is_some() && source_keys != target_keys;
    let mut differs = Vec::new();
    if rights_differ {
        differs.push(Difference::Attributes);
    }
    if keys_differ {
        differs.push(Difference::Value);
    }
    let existing = match (&target, differs.is_empty()) {
        (None, _) => Existing::Absent,
        (Some(_), true) => Existing::Identical,
        (Some(_), false) => Existing::Differs(Newer::Unknown(NO_TIME)),
    };
    let what = format!("{AUTHORIZATION_RULE} {relative}");
    let decision = Decision::new(rules.on_conflict, &what, existing);
    let work = match decision {
        Decision::Write => {
            let mut properties = Map::new();
            properties.insert("rights".into(), Value::from(rights(&source)));
            let action = match (&source_keys, target.is_none() || rights_differ) {
                (Some(_), true) => "rights and the source's keys written",
                (Some(_), false) => "the source's keys written",
                (None, _) => "rights written (the service made new keys)",
            };
            Work::Write(Write {
                relative: relative.clone(),
                properties: (target.is_none() || rights_differ).then_some(properties),
                keys: source_keys.filter(|_| keys_differ),
                compare_first: None,
                partial: None,
                action: action.to_owned(),
            })
        }
        _ => Work::Settled,
    };
    let action = decision.planned(target.is_some(), differs);
    let mut planned = item(AUTHORIZATION_RULE, &relative, action, Vec::new(), work);
    planned.typed.item.fingerprint = Some(decided_from);
    Some(planned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_keys_never_reach_its_fingerprint() {
        let rule = |properties: serde_json::Value| Child {
            name: "r".into(),
            properties: properties.as_object().cloned().unwrap_or_default(),
        };
        let with_keys = |key: &str| {
            rule(serde_json::json!({
                "rights": ["Listen"], "primaryKey": key, "secondaryKey": key,
                "primaryConnectionString": format!("Endpoint=sb://n/;SharedAccessKey={key}"),
            }))
        };
        assert_eq!(
            fingerprint_side(&with_keys("k-1")),
            fingerprint_side(&with_keys("k-2")),
            "a key reached the fingerprint"
        );
        assert_eq!(
            fingerprint_side(&with_keys("k-1")),
            fingerprint_side(&rule(serde_json::json!({ "rights": ["Listen"] })))
        );
        assert_ne!(
            fingerprint_side(&with_keys("k-1")),
            fingerprint_side(&rule(serde_json::json!({ "rights": ["Send"] })))
        );
    }

    #[test]
    fn rights_compare_in_any_order() {
        let rule = |rights: &[&str]| Child {
            name: "r".into(),
            properties: serde_json::json!({ "rights": rights })
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert_eq!(
            rights(&rule(&["Send", "Listen"])),
            rights(&rule(&["Listen", "Send"]))
        );
    }
}
