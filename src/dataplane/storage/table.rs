//! Tables: planned with their stored access policies and their entities counted; applied by
//! creating the table or updating its policies, then (in replication) copying its entities
//! ([`super::entity`]).

use futures::TryStreamExt;

use super::access::{note_unwritable_policies, policies_with_key, set_with_key, Clients};
use super::entity::{self, copy_entities};
use super::planning;
use super::{
    failed, list_error, planned, settings_conflict, ItemPlan, ENTITY, SOURCE_POLICIES_UNREAD, TABLE,
};
use crate::azure::storage::SignedIdentifier;
use crate::dataplane::kit::{paged, Typed};
use crate::dataplane::{
    Difference, Discovery, ItemStatus, Job, Mode, PlannedAction, PluginContext, PluginError,
};

/// A table as planning found it on both sides.
#[derive(Debug)]
pub(super) struct TablePlan {
    /// `None` when the policies could not be read.
    source: Option<Vec<SignedIdentifier>>,
    target_exists: bool,
    /// `None` when the table is absent or its policies could not be read.
    target: Option<Vec<SignedIdentifier>>,
}

/// Plans every table of the source, counting its entities page by page.
pub(super) async fn plan(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    discovery: &mut Discovery,
    items: &mut Vec<Typed<ItemPlan>>,
) -> Result<(), PluginError> {
    let (mut tables, mut total_entities) = (0u64, 0u64);
    let mut listing = std::pin::pin!(paged(|next: Option<String>| async move {
        let (names, next) = clients.source_table.list_tables(next.as_deref()).await?;
        Ok(Some((names, next)))
    }));
    while let Some(name) = listing
        .try_next()
        .await
        .map_err(|e| list_error("source tables", e))?
    {
        tables += 1;
        let read_error =
            |side: &str, e| PluginError::azure(format!("read {side} table `{name}`"), e);
        let mut policy_notes = Vec::new();
        let mut source = clients
            .source_table
            .table_access_policies(&name)
            .await
            .map_err(|e| read_error("source", e))?
            .flatten();
        if source.is_none() {
            let keyed = &clients.source_keyed;
            let read =
                policies_with_key(ctx, keyed, &mut policy_notes, |k| k.table.table_acl(&name));
            source = read.await.map_err(|e| read_error("source", e))?;
        }
        let mut target = clients
            .target_table
            .table_access_policies(&name)
            .await
            .map_err(|e| read_error("target", e))?;
        if matches!(target, Some(None)) {
            let keyed = &clients.target_keyed;
            let read =
                policies_with_key(ctx, keyed, &mut policy_notes, |k| k.table.table_acl(&name));
            target = Some(read.await.map_err(|e| read_error("target", e))?);
        }
        let needed = source.as_ref().is_some_and(|p| !p.is_empty()) && target.is_none();
        note_unwritable_policies(ctx, clients, needed, &mut policy_notes).await;
        // Entities are data: template mode neither copies nor reads them (its declared source
        // permissions have no entities/read).
        let mut notes = Vec::new();
        let mut decided = None;
        if job.mode == Mode::Template {
            notes.push("entities are not read or copied in template mode".into());
        } else if ctx.dry_run() || job.verify || job.from_plan {
            // Entity by entity when the plan is the point (a dry run, verify, a plan file).
            let walk = planning::plan_entities(ctx, job, clients, &name).await?;
            total_entities += walk.items;
            notes.push(format!("{} entit(ies)", walk.items));
            notes.push(format!("entities: {}", walk.summary()));
            decided = Some(walk.fingerprint);
        } else {
            let mut entities = 0u64;
            let mut listing = std::pin::pin!(entity::listing(&clients.source_table, &name));
            while listing
                .try_next()
                .await
                .map_err(|e| list_error(&format!("entities of `{name}`"), e))?
                .is_some()
            {
                entities += 1;
            }
            total_entities += entities;
            notes.push(format!("{entities} entit(ies)"));
        }
        notes.extend(policy_notes);
        let target_exists = target.is_some();
        let plan = TablePlan {
            source,
            target_exists,
            target: target.flatten(),
        };
        let mut item = planned(TABLE, name, target_exists, notes, ItemPlan::Table(plan));
        // The table's own settings (stored access policies) decide its plan when its entities
        // are decided beside it, or not copied at all (template mode).
        let settings_decide = decided.is_some() || job.mode == Mode::Template;
        if let (true, ItemPlan::Table(plan)) = (settings_decide, &item.detail) {
            if plan.target_exists {
                let differs =
                    plan.source.is_some() && plan.target.is_some() && plan.source != plan.target;
                item.item.action = PlannedAction::compared(if differs {
                    vec![Difference::Attributes]
                } else {
                    Vec::new()
                });
            }
        }
        item.item.fingerprint = decided;
        items.push(item);
    }
    let facts = &mut discovery.facts;
    facts.insert("tables".into(), tables.into());
    if job.mode == Mode::Replication {
        facts.insert("entities".into(), total_entities.into());
        discovery.nested.insert(ENTITY, total_entities);
    }
    Ok(())
}

/// Creates the table or updates its policies, then (in replication) copies its entities.
pub(super) async fn apply(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    name: &str,
    plan: &TablePlan,
    notes: &mut Vec<String>,
) -> ItemStatus {
    let target = &clients.target_table;
    let source_policies = plan.source.clone().unwrap_or_default();
    let existing_target = plan.target_exists.then_some(&plan.target);
    // Settings kept by --on-conflict skip: said so on the item, entities still copied.
    let mut kept_settings: Option<ItemStatus> = None;
    let (action, set_policies) = match existing_target {
        None => {
            if let Err(error) = target.create_table(name).await {
                return failed("create table", &error);
            }
            ("table created", !source_policies.is_empty())
        }
        Some(existing) => {
            // Set Table ACL replaces every policy: only when both sides are known.
            let same = match (&plan.source, existing) {
                (Some(source), Some(existing)) => source == existing,
                _ => true,
            };
            if same {
                ("", false)
            } else {
                match settings_conflict(job.on_conflict, "table") {
                    Some(status) => {
                        if job.mode == Mode::Template || matches!(status, ItemStatus::Failed { .. })
                        {
                            return status;
                        }
                        kept_settings = Some(status);
                        ("", false)
                    }
                    None => ("table access policies updated", true),
                }
            }
        }
    };
    let unknown_target_policies =
        plan.target_exists && plan.target.is_none() && !source_policies.is_empty();
    let mut status = if let Some(kept) = kept_settings {
        kept
    } else if plan.source.is_none() {
        ItemStatus::Partial {
            action: if action.is_empty() {
                "table kept".into()
            } else {
                action.into()
            },
            reason: SOURCE_POLICIES_UNREAD.into(),
        }
    } else if action.is_empty() && unknown_target_policies {
        ItemStatus::Partial {
            action: "table kept".into(),
            reason: "stored access policies not copied: the target's could not be read, and setting them replaces them all".into(),
        }
    } else if action.is_empty() {
        ItemStatus::Identical
    } else {
        ItemStatus::written(plan.target_exists, action)
    };
    if set_policies {
        let set = set_with_key(ctx, &clients.target_keyed, |k| {
            k.table.set_table_access_policies(name, &source_policies)
        })
        .await;
        match set {
            Ok(None) => {}
            Ok(Some(reason)) => {
                status = ItemStatus::Partial {
                    action: if action.is_empty() {
                        "table kept".into()
                    } else {
                        action.into()
                    },
                    reason,
                };
            }
            Err(error) => return failed("set table access policies", &error),
        }
    }
    if job.mode == Mode::Template {
        return status;
    }
    let tally = copy_entities(ctx, job, clients, name).await;
    notes.push(format!(
        "entities: {} copied, {} identical, {} skipped, {} failed",
        tally.copied, tally.identical, tally.skipped, tally.failed
    ));
    match tally.listing_error {
        Some(error) => ItemStatus::Failed { error },
        None => status,
    }
}
