//! The walk of a namespace that Service Bus and Event Hubs share (one resource provider codebase
//! on Azure): each plugin describes its entity kinds in a [`Schema`], and this module reads both
//! sides kind by kind (parents before children), plans one item per source entity and
//! authorization rule, and applies them in dependency order.
//!
//! Order: an item is applied after its parent (a subscription after its topic, a rule after its
//! subscription, a rule's keys after the rule) and after every entity it forwards to
//! (`forwardTo`, `forwardDeadLetteredMessagesTo`): a topological order in levels, each level
//! written before the next starts. A forwarding cycle (A to B, B to A) cannot be ordered: its
//! entities land in the last levels and the service refuses what it refuses, item by item.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::authorization_rules::{self, RuleSides};
use super::entities;
use crate::azure::arm::servicebus::{AccessKeys, Child, KeyType, Messaging};
use crate::azure::arm::ArmClient;
use crate::azure::{AzureError, WriteAccess};
use crate::dataplane::kit::{apply_each, pair_by_key, Typed};
use crate::dataplane::{
    ApplyPlan, Discovery, ItemStatus, Job, Mode, Plan, PlannedAction, PlannedItem, PluginContext,
    PluginError, SideContext,
};

/// The report's kind of an authorization rule, at any scope.
pub(crate) const AUTHORIZATION_RULE: &str = "authorization-rule";

/// What a service's namespace holds.
#[derive(Debug)]
pub(crate) struct Schema {
    pub api: &'static Messaging,
    /// Entity kinds, parents before their children.
    pub entities: &'static [EntityKind],
    /// Collections whose entities hold authorization rules (the namespace always does).
    pub rule_holders: &'static [&'static str],
}

/// One kind of entity under a namespace.
#[derive(Debug)]
pub(crate) struct EntityKind {
    /// The report's kind (`queue`).
    pub kind: &'static str,
    /// The ARM collection (`queues`).
    pub collection: &'static str,
    /// The collection of the parent entity; `None`: the namespace.
    pub parent: Option<&'static str>,
    /// Every property atg copies.
    pub settable: &'static [&'static str],
    /// Fixed at creation: a differing target is reported, never forced.
    pub immutable: &'static [&'static str],
    /// Properties naming a queue or topic of the namespace, which must exist first.
    pub forwarding: &'static [&'static str],
    /// Names the service creates with the parent (`$Default`): matched, never duplicated.
    pub auto_created: &'static [&'static str],
}

/// What a plugin changes in the settable properties of a source's entity before they are
/// compared and written (a reference to another resource of the source tenant, a property the
/// service answers but refuses back).
#[derive(Debug, Default)]
pub(crate) struct Adjusted {
    /// Properties neither written nor compared.
    pub left_out: Vec<&'static str>,
    /// Why the entity is only partly copied: reported `partial`, with the remedy.
    pub partial: Option<String>,
    pub notes: Vec<String>,
}

/// A plugin's [`Adjusted`] for one entity of a kind: it may rewrite the properties in place.
pub(crate) type Adjust<'a> = &'a (dyn Fn(&EntityKind, &mut Map<String, Value>) -> Adjusted + Sync);

/// What no plugin changes.
pub(crate) fn unchanged(_: &EntityKind, _: &mut Map<String, Value>) -> Adjusted {
    Adjusted::default()
}

/// Both sides' clients and namespace ids.
pub(super) struct Sides {
    pub source: ArmClient,
    pub target: ArmClient,
    pub source_namespace: String,
    pub target_namespace: String,
}

impl Sides {
    pub fn source_id(&self, relative: &str) -> String {
        join(&self.source_namespace, relative)
    }

    pub fn target_id(&self, relative: &str) -> String {
        join(&self.target_namespace, relative)
    }
}

fn join(namespace: &str, relative: &str) -> String {
    if relative.is_empty() {
        namespace.to_owned()
    } else {
        format!("{namespace}/{relative}")
    }
}

/// What applying one item writes.
pub(super) enum Work {
    /// Nothing: the plan settled it.
    Settled,
    Write(Write),
    /// Deletes the target's child the service created with a parent this run created, which
    /// the source's parent lacks (`$Default`).
    Delete {
        relative: String,
    },
}

/// One item's writes.
pub(super) struct Write {
    /// Below the namespace: `queues/q1`, `topics/t1/authorizationRules/send`.
    pub relative: String,
    /// The properties to PUT; `None`: the resource is left as it is (only its keys are set).
    pub properties: Option<Map<String, Value>>,
    /// Keys to set afterwards (replication of an authorization rule).
    pub keys: Option<AccessKeys>,
    /// Created by the service with a parent this run creates (`$Default`): read after the
    /// parent exists and written only if it differs, on these settable properties.
    pub compare_first: Option<&'static [&'static str]>,
    /// Why the item is only partly written (an immutable property differs).
    pub partial: Option<String>,
    pub action: String,
}

pub(super) struct Item {
    pub typed: Typed<Work>,
    /// The item's parent and the entities it forwards to, by relative path.
    pub after: Vec<String>,
}

pub(super) fn item(
    kind: &'static str,
    relative: &str,
    action: PlannedAction,
    notes: Vec<String>,
    work: Work,
) -> Item {
    Item {
        typed: Typed {
            item: PlannedItem {
                kind,
                name: relative.to_owned(),
                action,
                notes,
                // Set by the planner of a source entity or rule (see `kit::fingerprint`).
                fingerprint: None,
            },
            detail: work,
        },
        after: Vec::new(),
    }
}

/// A place that holds children: the namespace (`""`) or an entity.
struct Scope {
    collection: &'static str,
    relative: String,
    in_target: bool,
}

/// Reads both sides of `job`'s namespaces and plans every item.
pub(crate) async fn plan(
    schema: &'static Schema,
    ctx: &PluginContext,
    job: &Job,
    notes: &'static [(&'static str, &'static str)],
    adjust: Adjust<'_>,
) -> Result<Plan, PluginError> {
    let client = |side: &SideContext, access| {
        ArmClient::new(&ctx.http, side.credential.clone(), access).map_err(|e| e.to_string())
    };
    let invalid = |e: String| PluginError::Invalid(format!("cannot create the ARM client: {e}"));
    let sides = Sides {
        source: client(&ctx.source, WriteAccess::ReadOnly).map_err(invalid)?,
        target: client(&ctx.target, ctx.target.access).map_err(invalid)?,
        source_namespace: job.pair.source.id.trim_end_matches('/').to_owned(),
        target_namespace: job.pair.target.id.trim_end_matches('/').to_owned(),
    };
    let mut items = Vec::new();
    let mut scopes = vec![Scope {
        collection: "",
        relative: String::new(),
        in_target: true,
    }];
    for kind in schema.entities {
        let parents: Vec<(String, bool)> = scopes
            .iter()
            .filter(|scope| scope.collection == kind.parent.unwrap_or_default())
            .map(|scope| (scope.relative.clone(), scope.in_target))
            .collect();
        for (parent, parent_in_target) in parents {
            let relative = join_relative(&parent, kind.collection);
            let (source, target) =
                listings(schema, &sides, &relative, parent_in_target, kind.kind).await?;
            if !job.verify {
                items.extend(entities::removed_defaults(
                    kind,
                    &relative,
                    (&source, &target),
                    parent_in_target,
                ));
            }
            for merged in pair_by_key(source, target, |c| c.name.clone(), |c| c.name.clone()) {
                let Some(planned) =
                    entities::plan(kind, &relative, merged, parent_in_target, job, adjust)
                else {
                    continue;
                };
                if let Some(in_target) = planned.in_target {
                    scopes.push(Scope {
                        collection: kind.collection,
                        relative: planned.item.typed.item.name.clone(),
                        in_target,
                    });
                }
                let mut planned_item = planned.item;
                if !parent.is_empty() {
                    planned_item.after.push(parent.clone());
                }
                items.push(planned_item);
            }
        }
    }
    let rule_sides = RuleSides {
        api: schema.api,
        sides: &sides,
        mode: job.mode,
        on_conflict: job.on_conflict,
        verify: job.verify,
    };
    for scope in scopes.iter().filter(|scope| {
        scope.collection.is_empty() || schema.rule_holders.contains(&scope.collection)
    }) {
        let relative = join_relative(&scope.relative, "authorizationRules");
        let (source, target) = listings(
            schema,
            &sides,
            &relative,
            scope.in_target,
            AUTHORIZATION_RULE,
        )
        .await?;
        for merged in pair_by_key(source, target, |c| c.name.clone(), |c| c.name.clone()) {
            if let Some(mut planned) =
                authorization_rules::plan(&rule_sides, &relative, merged).await
            {
                if !scope.relative.is_empty() {
                    planned.after.push(scope.relative.clone());
                }
                items.push(planned);
            }
        }
    }
    let mut facts = Map::new();
    for (fact, text) in notes {
        facts.insert((*fact).to_owned(), Value::from(*text));
    }
    let levels = levels(&items);
    let discovery = Discovery {
        items: items.iter().map(|item| item.typed.item.clone()).collect(),
        nested: BTreeMap::new(),
        facts,
    };
    let mut by_level: BTreeMap<usize, Vec<Typed<Work>>> = BTreeMap::new();
    for (item, level) in items.into_iter().zip(levels) {
        by_level.entry(level).or_default().push(item.typed);
    }
    Ok(Plan {
        discovery,
        apply: Box::new(NamespacePlan {
            api: schema.api,
            sides,
            levels: by_level.into_values().collect(),
        }),
    })
}

fn join_relative(parent: &str, collection: &str) -> String {
    if parent.is_empty() {
        collection.to_owned()
    } else {
        format!("{parent}/{collection}")
    }
}

/// Both sides' children at `relative` (a collection path); the target's is empty without a
/// request when its parent is yet to be created.
async fn listings(
    schema: &Schema,
    sides: &Sides,
    relative: &str,
    in_target: bool,
    what: &str,
) -> Result<(Vec<Child>, Vec<Child>), PluginError> {
    let (parent, collection) = relative.rsplit_once('/').unwrap_or(("", relative));
    let failed = |side: &str| {
        let operation = format!("list the {side} {what}s at {relative}");
        move |error: AzureError| PluginError::azure(operation, error)
    };
    let source = schema
        .api
        .children(&sides.source, &sides.source_id(parent), collection)
        .await
        .map_err(failed("source"))?;
    let target = if in_target {
        schema
            .api
            .children(&sides.target, &sides.target_id(parent), collection)
            .await
            .map_err(failed("target"))?
    } else {
        Vec::new()
    };
    Ok((source, target))
}

/// Each item's level: one more than the highest of its parent and the entities it forwards to
/// (those the run plans), so a level only needs what the levels before it wrote.
fn levels(items: &[Item]) -> Vec<usize> {
    let index: BTreeMap<String, usize> = items
        .iter()
        .enumerate()
        .map(|(position, item)| (item.typed.item.name.to_ascii_lowercase(), position))
        .collect();
    let mut levels = vec![0; items.len()];
    // At most one pass per item: a cycle stops growing there.
    for _ in 0..items.len() {
        let mut changed = false;
        for (position, item) in items.iter().enumerate() {
            let needed = item
                .after
                .iter()
                .filter_map(|name| index.get(&name.to_ascii_lowercase()))
                .map(|before| levels[*before] + 1)
                .max()
                .unwrap_or(0);
            if needed > levels[position] {
                levels[position] = needed;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    levels
}

/// The typed plan of one namespace: its clients and its items, level by level.
struct NamespacePlan {
    api: &'static Messaging,
    sides: Sides,
    levels: Vec<Vec<Typed<Work>>>,
}

#[async_trait]
impl ApplyPlan for NamespacePlan {
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        for level in &mut self.levels {
            level.retain(|typed| keep(typed.item.kind, &typed.item.name));
        }
    }

    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let NamespacePlan { api, sides, levels } = *self;
        let sides = &sides;
        let run = |item: Typed<Work>| async move {
            let notes = item.item.notes.clone();
            let status = ctx
                .in_item_slot(Box::pin(apply_item(api, sides, item)))
                .await
                .unwrap_or_else(ItemStatus::from);
            (status, notes)
        };
        let concurrency = ctx.item_slots.available_permits().max(1);
        for level in levels {
            apply_each(ctx, job, level, concurrency, run).await;
        }
        Ok(())
    }
}

/// Carries out one item's plan.
async fn apply_item(api: &Messaging, sides: &Sides, item: Typed<Work>) -> ItemStatus {
    let action = item.item.action.clone();
    let write = match item.detail {
        Work::Settled => {
            return match action {
                PlannedAction::Skip { reason } => ItemStatus::Skipped { reason },
                PlannedAction::Fail { reason } => ItemStatus::Failed { error: reason },
                _ => ItemStatus::Identical,
            }
        }
        Work::Write(write) => write,
        Work::Delete { relative } => return delete_default(api, sides, &relative).await,
    };
    let id = sides.target_id(&write.relative);
    let mut existed = !matches!(action, PlannedAction::Create);
    if let (Some(settable), Some(desired)) = (write.compare_first, &write.properties) {
        match api.properties(&sides.target, &id).await {
            Ok(Some(held)) if entities::differing(settable, desired, &held).is_empty() => {
                return ItemStatus::Identical;
            }
            Ok(held) => existed = held.is_some(),
            Err(error) => return failed(&error),
        }
    }
    if let Some(properties) = &write.properties {
        if let Err(error) = api.put(&sides.target, &id, properties).await {
            return failed(&error);
        }
    }
    if let Some(keys) = &write.keys {
        for (key_type, key) in [
            (KeyType::Primary, &keys.primary_key),
            (KeyType::Secondary, &keys.secondary_key),
        ] {
            if let Err(error) = api.set_key(&sides.target, &id, key_type, key).await {
                return failed(&error);
            }
        }
    }
    match write.partial {
        Some(reason) => ItemStatus::Partial {
            action: write.action,
            reason,
        },
        None => ItemStatus::written(existed, write.action),
    }
}

/// Deletes the child the service made in the target (`$Default`) that the source lacks.
async fn delete_default(api: &Messaging, sides: &Sides, relative: &str) -> ItemStatus {
    match api.delete(&sides.target, &sides.target_id(relative)).await {
        Ok(true) => ItemStatus::Overwritten {
            action: "deleted: the service made it with the parent atg created, and the source has none (it would let every message through)".to_owned(),
        },
        Ok(false) => ItemStatus::Skipped {
            reason: "the target holds none: nothing to delete".to_owned(),
        },
        Err(error) => failed(&error),
    }
}

fn failed(error: &AzureError) -> ItemStatus {
    ItemStatus::Failed {
        error: error.to_string(),
    }
}

/// Whether a mode reads and writes keys.
pub(super) fn copies_keys(mode: Mode) -> bool {
    mode == Mode::Replication
}
