//! Entities (queues, topics, subscriptions, rules, event hubs, consumer groups): the settable
//! properties of the source's, compared with the target's. A property fixed at creation that
//! differs in the target is reported (`partial` when the rest is written, `skipped` when nothing
//! else differs), never forced: changing it means recreating the entity, which would drop its
//! messages. A child the service creates with its parent (`$Default`) is matched, not duplicated.

use serde_json::{Map, Value};

use super::namespace::{item, Adjust, Adjusted, EntityKind, Item, Work, Write};
use crate::azure::arm::servicebus::Child;
use crate::dataplane::kit::{fingerprint, Decision, Existing, Merged, Newer};
use crate::dataplane::{Difference, Job, PlannedAction, EXTRA};

/// Why `--on-conflict if-source-newer` cannot compare entities.
pub(super) const NO_TIME: &str =
    "an entity's updatedAt changes with every write to the target, so it says nothing of which side is newer";

/// One planned entity, and whether the target will hold it for its children (`None`: an
/// extra of the target, which has no children to plan).
pub(super) struct Planned {
    pub item: Item,
    pub in_target: Option<bool>,
}

/// The settable properties of `properties` (nulls left out).
fn settable(kind: &EntityKind, properties: &Map<String, Value>) -> Map<String, Value> {
    kind.settable
        .iter()
        .filter_map(|key| {
            properties
                .get(*key)
                .filter(|value| !value.is_null())
                .map(|value| ((*key).to_owned(), value.clone()))
        })
        .collect()
}

/// One side of an entity for a plan's fingerprint: its settable properties (none is a secret)
/// and when the service last changed it.
fn fingerprint_side(kind: &EntityKind, entity: &Child) -> String {
    let shape = Value::Object(settable(kind, &entity.properties));
    fingerprint::side(&shape, updated_at(entity))
}

/// When the service last changed an entity or a rule (`updatedAt`), where it says.
pub(super) fn updated_at(child: &Child) -> Option<&str> {
    child.properties.get("updatedAt").and_then(Value::as_str)
}

/// The settable properties whose values differ between `desired` and `held` (absent and null
/// are the same).
pub(super) fn differing<'k>(
    keys: &'k [&'k str],
    desired: &Map<String, Value>,
    held: &Map<String, Value>,
) -> Vec<&'k str> {
    let value =
        |map: &Map<String, Value>, key: &str| map.get(key).filter(|v| !v.is_null()).cloned();
    keys.iter()
        .copied()
        .filter(|key| value(desired, key) != value(held, key))
        .collect()
}

/// The children the service creates with every parent (`$Default`) that the source's parent
/// lacks (deleted there, its own rules filter instead). In a parent this run creates, the
/// service's child is no one's data: deleted once the source's children are written (a `$Default`
/// rule would let every message through). In a parent the target held before, it is reported
/// skipped: atg never deletes what may be the target's own.
pub(super) fn removed_defaults(
    kind: &EntityKind,
    collection: &str,
    (source, target): (&[Child], &[Child]),
    parent_in_target: bool,
) -> Vec<Item> {
    let holds = |children: &[Child], name: &str| {
        children
            .iter()
            .any(|child| child.name.eq_ignore_ascii_case(name))
    };
    let parent = collection.rsplit_once('/').map_or("", |(parent, _)| parent);
    kind.auto_created
        .iter()
        .filter(|name| !holds(source, name) && (!parent_in_target || holds(target, name)))
        .map(|name| {
            let relative = format!("{collection}/{name}");
            if parent_in_target {
                let reason = format!(
                    "the source has no {} {name} here (it was deleted); the target has one, and atg never deletes what it did not create: delete it there if the difference matters",
                    kind.kind
                );
                return item(
                    kind.kind,
                    &relative,
                    PlannedAction::Skip { reason },
                    Vec::new(),
                    Work::Settled,
                );
            }
            let note = format!(
                "the source has no {0} {name} here (it was deleted); the service makes one with the parent this run creates: deleted after the source's {0}s are written",
                kind.kind
            );
            let mut planned = item(
                kind.kind,
                &relative,
                PlannedAction::Overwrite {
                    differs: Vec::new(),
                },
                vec![note],
                Work::Delete {
                    relative: relative.clone(),
                },
            );
            planned.after.push(parent.to_owned());
            planned.after.extend(
                source
                    .iter()
                    .map(|child| format!("{collection}/{}", child.name)),
            );
            planned
        })
        .collect()
}

/// Plans the source's entity of `merged` in the collection at `collection` (relative path), or
/// lists the target's extra in `atg verify`.
pub(super) fn plan(
    kind: &'static EntityKind,
    collection: &str,
    merged: Merged<Child, Child>,
    parent_in_target: bool,
    job: &Job,
    adjust: Adjust<'_>,
) -> Option<Planned> {
    let (source, target) = match merged {
        Merged::TargetOnly(target) => {
            return job.verify.then(|| Planned {
                item: item(
                    kind.kind,
                    &format!("{collection}/{}", target.name),
                    PlannedAction::Extra,
                    vec![EXTRA.to_owned()],
                    Work::Settled,
                ),
                in_target: None,
            });
        }
        other => other.into_source_pair()?,
    };
    let relative = format!("{collection}/{}", source.name);
    let decided_from = fingerprint::pair(
        &fingerprint_side(kind, &source),
        target
            .as_ref()
            .map(|target| fingerprint_side(kind, target))
            .as_deref(),
    );
    let mut desired = settable(kind, &source.properties);
    let adjusted = adjust(kind, &mut desired);
    for key in &adjusted.left_out {
        desired.remove(*key);
    }
    let auto_created = kind
        .auto_created
        .iter()
        .any(|name| name.eq_ignore_ascii_case(&source.name));
    let write = |properties: Map<String, Value>, partial: Option<String>, action: &str| {
        Work::Write(Write {
            relative: relative.clone(),
            properties: Some(properties),
            keys: None,
            compare_first: None,
            partial,
            action: action.to_owned(),
        })
    };
    let exists = target.is_some();
    let mut planned = match target {
        None if auto_created && !parent_in_target && !job.verify => {
            // The service creates it with the parent this run creates: compared once it exists.
            let note = "created by the service with its parent: compared once the parent exists, written only if it differs".to_owned();
            let work = Work::Write(Write {
                relative: relative.clone(),
                properties: Some(desired),
                keys: None,
                compare_first: Some(kind.settable),
                partial: None,
                action: "properties written over the service's default".to_owned(),
            });
            item(
                kind.kind,
                &relative,
                PlannedAction::Compare,
                vec![note],
                work,
            )
        }
        None => item(
            kind.kind,
            &relative,
            PlannedAction::Create,
            adjusted.notes,
            write(
                desired,
                adjusted.partial,
                "created with the source's properties",
            ),
        ),
        Some(target) => compare(
            kind,
            &relative,
            desired,
            &target.properties,
            job,
            write,
            adjusted,
        ),
    };
    planned.typed.item.fingerprint = Some(decided_from);
    for property in kind.forwarding {
        if let Some(name) = source.properties.get(*property).and_then(Value::as_str) {
            planned.after.push(format!("queues/{name}"));
            planned.after.push(format!("topics/{name}"));
        }
    }
    Some(Planned {
        item: planned,
        in_target: Some(parent_in_target && exists),
    })
}

/// Plans an entity the target holds.
fn compare(
    kind: &'static EntityKind,
    relative: &str,
    desired: Map<String, Value>,
    held: &Map<String, Value>,
    job: &Job,
    write: impl Fn(Map<String, Value>, Option<String>, &str) -> Work,
    adjusted: Adjusted,
) -> Item {
    let compared: Vec<&str> = kind
        .settable
        .iter()
        .copied()
        .filter(|key| !adjusted.left_out.contains(key))
        .collect();
    let differs = differing(&compared, &desired, held);
    let (fixed, mutable): (Vec<&str>, Vec<&str>) =
        differs.iter().partition(|key| kind.immutable.contains(key));
    let fixed_reason = (!fixed.is_empty()).then(|| {
        let described: Vec<String> = fixed
            .iter()
            .map(|key| {
                let show = |map: &Map<String, Value>| {
                    map.get(*key).map_or("unset".to_owned(), Value::to_string)
                };
                format!("{key} ({} in the source, {} in the target)", show(&desired), show(held))
            })
            .collect();
        format!(
            "{} cannot change after creation: left as the target has it (recreate the {} in the target to change it; that drops its messages)",
            described.join(", "),
            kind.kind
        )
    });
    let reasons: Vec<String> = fixed_reason.into_iter().chain(adjusted.partial).collect();
    let reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    if mutable.is_empty() {
        let action = match reason {
            None => PlannedAction::Identical,
            Some(reason) => PlannedAction::Skip { reason },
        };
        return item(kind.kind, relative, action, adjusted.notes, Work::Settled);
    }
    let what = format!("{} {relative}", kind.kind);
    let decision = Decision::new(
        job.on_conflict,
        &what,
        Existing::Differs(Newer::Unknown(NO_TIME)),
    );
    let mut properties = desired;
    for key in &fixed {
        match held.get(*key) {
            Some(value) => properties.insert((*key).to_owned(), value.clone()),
            None => properties.remove(*key),
        };
    }
    let notes: Vec<String> = reason.iter().cloned().chain(adjusted.notes).collect();
    let work = match decision {
        Decision::Write => write(
            properties,
            reason,
            &format!("properties written: {}", mutable.join(", ")),
        ),
        _ => Work::Settled,
    };
    let action = decision.planned(true, vec![Difference::Attributes]);
    item(kind.kind, relative, action, notes, work)
}
