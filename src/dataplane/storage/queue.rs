//! Queues: planned with their metadata and stored access policies; applied by creating or
//! updating the queue, then (in replication, when the pair opts in) copying the messages Peek
//! Messages shows ([`super::messages`]).

use futures::TryStreamExt;

use super::access::{note_unwritable_policies, policies_with_key, set_with_key, Clients};
use super::messages::{copy_queue_messages, with_messages};
use super::{
    failed, list_error, planned, settings_conflict, ItemPlan, QUEUE, SOURCE_POLICIES_UNREAD,
};
use crate::azure::storage::queue::QueueSettings;
use crate::dataplane::kit::{paged, Typed};
use crate::dataplane::{
    Difference, Discovery, ItemStatus, Job, Mode, PlannedAction, PluginContext, PluginError,
};

/// A queue as planning found it on both sides.
#[derive(Debug)]
pub(super) struct QueuePlan {
    source: QueueSettings,
    target: Option<QueueSettings>,
}

/// Plans every queue of the source.
pub(super) async fn plan(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    discovery: &mut Discovery,
    items: &mut Vec<Typed<ItemPlan>>,
) -> Result<(), PluginError> {
    let mut queues = 0u64;
    let mut listing = std::pin::pin!(paged(|marker: Option<String>| async move {
        let page = clients.source_queue.list_queues(marker.as_deref()).await?;
        Ok(Some((page.items, page.next_marker)))
    }));
    while let Some(queue) = listing
        .try_next()
        .await
        .map_err(|e| list_error("source queues", e))?
    {
        queues += 1;
        let name = queue.name.as_str();
        let read_error =
            |side: &str, e| PluginError::azure(format!("read {side} queue `{name}`"), e);
        let mut notes = Vec::new();
        let (mut source, messages) = clients
            .source_queue
            .queue_settings(name)
            .await
            .map_err(|e| read_error("source", e))?
            .unwrap_or_default();
        if source.policies_unreadable {
            let keyed = &clients.source_keyed;
            let read = policies_with_key(ctx, keyed, &mut notes, |k| k.queue.queue_acl(name));
            if let Some(policies) = read.await.map_err(|e| read_error("source", e))? {
                source.access_policies = policies;
                source.policies_unreadable = false;
            }
        }
        let mut target = clients
            .target_queue
            .queue_settings(name)
            .await
            .map_err(|e| read_error("target", e))?
            .map(|(settings, _)| settings);
        if let Some(existing) = target.as_mut().filter(|t| t.policies_unreadable) {
            let keyed = &clients.target_keyed;
            let read = policies_with_key(ctx, keyed, &mut notes, |k| k.queue.queue_acl(name));
            if let Some(policies) = read.await.map_err(|e| read_error("target", e))? {
                existing.access_policies = policies;
                existing.policies_unreadable = false;
            }
        }
        let needed =
            !source.policies_unreadable && !source.access_policies.is_empty() && target.is_none();
        note_unwritable_policies(ctx, clients, needed, &mut notes).await;
        notes.push(match (job.mode, clients.copy_queue_messages) {
                (Mode::Template, _) => format!(
                    "messages are not copied in template mode (about {messages} in the source)"
                ),
                (Mode::Replication, false) => format!(
                    "messages are not copied (about {messages} in the source): the pair does not opt in with options.queue_messages = \"peek\""
                ),
                (Mode::Replication, true) => format!(
                    "about {messages} message(s) in the source: those Peek Messages shows (at most 32) are compared with the target's"
                ),
            });
        let exists = target.is_some();
        let plan = QueuePlan { source, target };
        // Without messages to compare, the queue's settings decide its plan.
        let settings_differ = (!(job.mode == Mode::Replication && clients.copy_queue_messages))
            .then(|| plan.settings_differences());
        let mut item = planned(QUEUE, queue.name, exists, notes, ItemPlan::Queue(plan));
        if let Some(Some(differs)) = settings_differ {
            item.item.action = PlannedAction::compared(differs);
        }
        items.push(item);
    }
    discovery.facts.insert("queues".into(), queues.into());
    Ok(())
}

/// Creates or updates the queue, then (in replication, when the pair opts in) copies its
/// messages.
pub(super) async fn apply(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    name: &str,
    plan: &QueuePlan,
    notes: &mut Vec<String>,
) -> ItemStatus {
    let status = apply_settings(ctx, job, clients, name, plan).await;
    if job.mode != Mode::Replication || !clients.copy_queue_messages {
        return status;
    }
    if matches!(status, ItemStatus::Failed { .. }) {
        notes.push("messages not copied: the queue could not be set up".into());
        return status;
    }
    match copy_queue_messages(clients, name).await {
        Err((copy, error)) => {
            notes.push(copy.note());
            failed("copy queue messages", &error)
        }
        Ok(copy) => {
            notes.push(copy.note());
            with_messages(status, &copy)
        }
    }
}

impl QueuePlan {
    /// What differs between the queue's settings on both sides (`None` when the target has no
    /// such queue): its metadata, and its stored access policies when both could be read.
    fn settings_differences(&self) -> Option<Vec<Difference>> {
        let target = self.target.as_ref()?;
        let mut differs = Vec::new();
        if target.metadata != self.source.metadata {
            differs.push(Difference::Metadata);
        }
        let compare_policies = !self.source.policies_unreadable && !target.policies_unreadable;
        if compare_policies && target.access_policies != self.source.access_policies {
            differs.push(Difference::Attributes);
        }
        Some(differs)
    }
}

/// The queue itself: created or updated with the source's metadata and policies.
async fn apply_settings(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    name: &str,
    plan: &QueuePlan,
) -> ItemStatus {
    let target = &clients.target_queue;
    let source = &plan.source;
    let mut partial = Vec::new();
    if source.policies_unreadable {
        partial.push(SOURCE_POLICIES_UNREAD.to_owned());
    }
    // Set Queue ACL replaces every policy: sent only when the source's are known, and the
    // target's are known too or the queue is new.
    let set_policies = !source.policies_unreadable
        && match &plan.target {
            None => !source.access_policies.is_empty(),
            Some(existing) if existing.policies_unreadable => {
                if !source.access_policies.is_empty() {
                    partial.push(
                        "stored access policies not copied: the target's could not be read, and setting them replaces them all"
                            .to_owned(),
                    );
                }
                false
            }
            Some(existing) => existing.access_policies != source.access_policies,
        };
    let action = match &plan.target {
        None => {
            if let Err(error) = target.create_queue(name, &source.metadata).await {
                return failed("create queue", &error);
            }
            "queue created with its metadata"
        }
        Some(existing) => {
            if existing.metadata == source.metadata && !set_policies {
                return if partial.is_empty() {
                    ItemStatus::Identical
                } else {
                    ItemStatus::Partial {
                        action: "queue kept".into(),
                        reason: partial.join("; "),
                    }
                };
            }
            if let Some(status) = settings_conflict(job.on_conflict, "queue") {
                return status;
            }
            if existing.metadata != source.metadata {
                if let Err(error) = target.set_queue_metadata(name, &source.metadata).await {
                    return failed("set queue metadata", &error);
                }
            }
            "queue settings updated"
        }
    };
    if set_policies {
        let set = set_with_key(ctx, &clients.target_keyed, |k| {
            k.queue.set_queue_acl(name, &source.access_policies)
        })
        .await;
        match set {
            Ok(None) => {}
            Ok(Some(reason)) => partial.push(reason),
            Err(error) => return failed("set queue access policies", &error),
        }
    }
    if partial.is_empty() {
        ItemStatus::written(plan.target.is_some(), action)
    } else {
        ItemStatus::Partial {
            action: action.into(),
            reason: partial.join("; "),
        }
    }
}
