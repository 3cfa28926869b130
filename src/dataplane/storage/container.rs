//! Blob containers: planned with their settings (metadata, public access, stored access
//! policies) and their blobs counted; applied by creating or updating the container, then (in
//! replication) copying its blobs ([`super::blob`]).

use std::sync::Arc;

use futures::TryStreamExt;

use super::access::{note_unwritable_policies, policies_with_key, set_with_key, Clients};
use super::blob::{self, copy_blobs};
use super::planning;
use super::{
    failed, human_bytes, list_error, planned, settings_conflict, ItemPlan, BLOB, CONTAINER,
    SOURCE_POLICIES_UNREAD,
};
use crate::azure::storage::blob::{ContainerItem, ContainerSettings};
use crate::dataplane::kit::{paged, Typed};
use crate::dataplane::{
    Difference, Discovery, ItemStatus, Job, Mode, PlannedAction, PluginContext, PluginError,
};

/// A container as planning found it on both sides.
#[derive(Debug)]
pub(super) struct ContainerPlan {
    source: ContainerSettings,
    target: Option<ContainerSettings>,
}

impl ContainerPlan {
    /// What differs between the container's settings on both sides (`None` when the target
    /// has no such container): what applying compares before writing them.
    fn settings_differences(&self, target_allows_public_access: bool) -> Option<Vec<Difference>> {
        let target = self.target.as_ref()?;
        let source = &self.source;
        let access = source
            .public_access
            .as_deref()
            .filter(|_| target_allows_public_access);
        let mut differs = Vec::new();
        if target.metadata != source.metadata {
            differs.push(Difference::Metadata);
        }
        let compare_policies = source.policies_readable && target.policies_readable;
        if target.public_access.as_deref() != access
            || (compare_policies && target.access_policies != source.access_policies)
        {
            differs.push(Difference::Attributes);
        }
        Some(differs)
    }
}

/// Plans every container of the source, counting its blobs page by page (never held).
pub(super) async fn plan(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    discovery: &mut Discovery,
    items: &mut Vec<Typed<ItemPlan>>,
) -> Result<(), PluginError> {
    let (mut total_blobs, mut total_bytes, mut total_archived) = (0u64, 0u64, 0u64);
    let mut total_to_copy = 0u64;
    let containers: Vec<ContainerItem> = paged(|marker: Option<String>| async move {
        let page = clients
            .source_blob
            .list_containers(marker.as_deref())
            .await?;
        Ok(Some((page.items, page.next_marker)))
    })
    .try_collect()
    .await
    .map_err(|e| list_error("source containers", e))?;
    for container in &containers {
        let name = container.name.as_str();
        let read_error =
            |side: &str, e| PluginError::azure(format!("read {side} container `{name}`"), e);
        let mut policy_notes = Vec::new();
        let mut source = clients
            .source_blob
            .container_settings(name)
            .await
            .map_err(|e| read_error("source", e))?
            .unwrap_or_default();
        if !source.policies_readable {
            let keyed = &clients.source_keyed;
            let read = policies_with_key(ctx, keyed, &mut policy_notes, |k| {
                k.blob.container_acl(name)
            });
            if let Some(policies) = read.await.map_err(|e| read_error("source", e))? {
                source.access_policies = policies;
                source.policies_readable = true;
            }
        }
        let mut target = clients
            .target_blob
            .container_settings(name)
            .await
            .map_err(|e| read_error("target", e))?;
        if let Some(existing) = target.as_mut().filter(|t| !t.policies_readable) {
            let keyed = &clients.target_keyed;
            let read = policies_with_key(ctx, keyed, &mut policy_notes, |k| {
                k.blob.container_acl(name)
            });
            if let Some(policies) = read.await.map_err(|e| read_error("target", e))? {
                existing.access_policies = policies;
                existing.policies_readable = true;
            }
        }
        let needed =
            source.policies_readable && !source.access_policies.is_empty() && target.is_none();
        note_unwritable_policies(ctx, clients, needed, &mut policy_notes).await;
        // Blob by blob when the plan is the point (a dry run, verify, a plan file), in
        // replication (template copies no blob); otherwise only counted, and decided when
        // applied.
        let decided = (job.mode == Mode::Replication
            && (ctx.dry_run() || job.verify || job.from_plan))
            .then(|| planning::plan_blobs(ctx, job, clients, name));
        let (blobs, bytes, archived, decided) = if let Some(walk) = decided {
            let walk = walk.await?;
            (walk.items, walk.bytes, walk.archived, Some(walk))
        } else {
            let (mut blobs, mut bytes, mut archived) = (0u64, 0u64, 0u64);
            let mut listing = std::pin::pin!(blob::listing(&clients.source_blob, name));
            while let Some(blob) = listing
                .try_next()
                .await
                .map_err(|e| list_error(&format!("blobs of `{name}`"), e))?
            {
                blobs += 1;
                bytes += blob.size;
                archived += u64::from(blob.is_archived());
            }
            (blobs, bytes, archived, None)
        };
        total_blobs += blobs;
        total_bytes += bytes;
        total_archived += archived;
        let mut notes = vec![format!("{blobs} blob(s), {}", human_bytes(bytes))];
        if let Some(walk) = &decided {
            notes.push(format!("blobs: {}", walk.summary()));
            total_to_copy += walk.bytes_to_copy;
        }
        notes.extend(policy_notes);
        if archived > 0 {
            notes.push(format!(
                "{archived} archived blob(s) will be skipped: rehydrate them first"
            ));
        }
        if job.mode == Mode::Template && blobs > 0 {
            notes.push("blobs are not copied in template mode".into());
        }
        let exists = target.is_some();
        let plan = ContainerPlan { source, target };
        // The container's own settings decide its plan when its blobs are decided beside it,
        // or not copied at all (template mode).
        let settings_differ = (decided.is_some() || job.mode == Mode::Template)
            .then(|| plan.settings_differences(clients.target_allows_public_access))
            .flatten();
        let mut item = planned(
            CONTAINER,
            container.name.clone(),
            exists,
            notes,
            ItemPlan::Container(plan),
        );
        if let Some(differs) = settings_differ {
            item.item.action = PlannedAction::compared(differs);
        }
        if let Some(walk) = decided {
            item.item.fingerprint = Some(walk.fingerprint);
        }
        items.push(item);
    }
    let facts = &mut discovery.facts;
    facts.insert("containers".into(), containers.len().into());
    facts.insert("blobs".into(), total_blobs.into());
    discovery.nested.insert(BLOB, total_blobs);
    facts.insert("bytes".into(), total_bytes.into());
    facts.insert("archived_blobs".into(), total_archived.into());
    if ctx.dry_run() && job.mode == Mode::Replication {
        facts.insert("bytes_to_copy".into(), total_to_copy.into());
    }
    Ok(())
}

/// Creates or updates the container's settings. Returns the status of the structure and
/// whether blobs may be copied into it.
async fn ensure_container(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    name: &str,
    plan: &ContainerPlan,
    notes: &mut Vec<String>,
) -> (ItemStatus, bool) {
    let source = &plan.source;
    let target = &clients.target_blob;
    let mut partial: Vec<String> = Vec::new();
    let mut access = source.public_access.as_deref();
    if access.is_some() && !clients.target_allows_public_access {
        partial.push(format!(
            "public access `{}` not set: the target account disallows public access (allowBlobPublicAccess=false)",
            access.unwrap_or_default()
        ));
        access = None;
    }
    let copy_policies = source.policies_readable && !source.access_policies.is_empty();
    // Policies that stay unknown make the item partial, never "same" or "replicated".
    let mut policy_gap = (!source.policies_readable).then(|| SOURCE_POLICIES_UNREAD.to_owned());
    if copy_policies && plan.target.as_ref().is_some_and(|t| !t.policies_readable) {
        policy_gap = Some(
            "stored access policies not compared: the target's could not be read (see notes)"
                .to_owned(),
        );
    }
    let action = match &plan.target {
        None => {
            let mut created = target
                .create_container(name, &source.metadata, access)
                .await;
            if let Err(error) = &created {
                if access.is_some() && error.status == Some(409) {
                    partial.push(format!(
                        "public access `{}` not set: the target refused it ({})",
                        access.unwrap_or_default(),
                        error.code.as_deref().unwrap_or("conflict")
                    ));
                    access = None;
                    created = target.create_container(name, &source.metadata, None).await;
                }
            }
            if let Err(error) = created {
                return (failed("create container", &error), false);
            }
            if copy_policies {
                let set = set_with_key(ctx, &clients.target_keyed, |k| {
                    k.blob
                        .set_container_acl(name, access, &source.access_policies)
                })
                .await;
                match set {
                    Ok(None) => {}
                    Ok(Some(reason)) => partial.push(reason),
                    Err(error) => return (failed("set container access policies", &error), true),
                }
            }
            "container created with its metadata".to_owned()
        }
        Some(existing) => {
            let compare_policies = source.policies_readable && existing.policies_readable;
            let same_policies =
                !compare_policies || existing.access_policies == source.access_policies;
            let same_access = existing.public_access.as_deref() == access;
            if existing.metadata == source.metadata && same_access && same_policies {
                if let Some(gap) = policy_gap {
                    partial.insert(0, gap);
                    return (
                        ItemStatus::Partial {
                            action: "container kept (same metadata and public access)".into(),
                            reason: partial.join("; "),
                        },
                        true,
                    );
                }
                if !partial.is_empty() {
                    // Identical as far as the target allows; the notes say what it does not.
                    notes.extend(partial);
                }
                return (ItemStatus::Identical, true);
            }
            if let Some(status) = settings_conflict(job.on_conflict, "container") {
                return (status, true);
            }
            if existing.metadata != source.metadata {
                if let Err(error) = target.set_container_metadata(name, &source.metadata).await {
                    return (failed("set container metadata", &error), true);
                }
            }
            if (!same_access || !same_policies) && !existing.policies_readable {
                // Set Container ACL replaces public access and policies together: with the
                // target's policies unknown, sending it could wipe them.
                partial.push(
                    "public access not updated: the target's stored access policies could not be read, and setting one would replace the other".into(),
                );
            } else if !same_access || !same_policies {
                let policies = if compare_policies {
                    &source.access_policies
                } else {
                    &existing.access_policies
                };
                let set = set_with_key(ctx, &clients.target_keyed, |k| {
                    k.blob.set_container_acl(name, access, policies)
                })
                .await;
                match set {
                    Ok(None) => {}
                    Ok(Some(reason)) => partial.push(format!(
                        "public access not updated either (Set Container ACL sets both): {reason}"
                    )),
                    Err(error) => return (failed("set container access policies", &error), true),
                }
            }
            "container settings updated".to_owned()
        }
    };
    if let Some(gap) = policy_gap {
        partial.insert(0, gap);
    }
    if partial.is_empty() {
        (ItemStatus::written(plan.target.is_some(), action), true)
    } else {
        (
            ItemStatus::Partial {
                action,
                reason: partial.join("; "),
            },
            true,
        )
    }
}

/// Creates or updates the container, then (in replication) copies its blobs.
pub(super) async fn apply(
    ctx: &PluginContext,
    job: &Job,
    clients: &Arc<Clients>,
    name: &str,
    plan: &ContainerPlan,
    notes: &mut Vec<String>,
) -> ItemStatus {
    let (status, usable) = ensure_container(ctx, job, clients, name, plan, notes).await;
    if job.mode == Mode::Template || !usable {
        return status;
    }
    let tally = copy_blobs(ctx, job, clients, name).await;
    notes.push(tally.summary());
    if let Some(error) = tally.listing_error {
        return ItemStatus::Failed { error };
    }
    status
}
