//! The per-item apply loop every plugin uses.

use futures::StreamExt;

use super::super::{
    Interrupted, ItemOutcome, ItemStatus, Job, PlannedAction, PlannedItem, PluginContext, EXTRA,
};

/// An item of a typed plan: what the report shows of it, and the plugin's own plan of it.
#[derive(Clone, Debug)]
pub struct Typed<D> {
    pub item: PlannedItem,
    pub detail: D,
}

impl<D> Typed<D> {
    /// The item with the fingerprint of what its decision was made from (see
    /// [`super::fingerprint`]).
    #[must_use]
    pub fn decided_from(mut self, fingerprint: String) -> Self {
        self.item.fingerprint = Some(fingerprint);
        self
    }
}

impl<D> AsRef<PlannedItem> for Typed<D> {
    fn as_ref(&self) -> &PlannedItem {
        &self.item
    }
}

impl AsRef<PlannedItem> for PlannedItem {
    fn as_ref(&self) -> &PlannedItem {
        self
    }
}

/// Applies planned items `concurrency` at a time, each reported once through `ctx.reporter`
/// with its duration; an item not started before a cancellation is reported skipped, one
/// started runs to its end (the work never races the cancellation: see
/// [`PluginContext::in_item_slot`](super::super::PluginContext::in_item_slot) for the bound on its writes).
/// `apply` returns the item's status and its notes (the plan's notes, possibly extended).
pub async fn apply_each<I, F, Fut>(
    ctx: &PluginContext,
    job: &Job,
    items: Vec<I>,
    concurrency: usize,
    apply: F,
) where
    I: AsRef<PlannedItem>,
    F: Fn(I) -> Fut,
    Fut: std::future::Future<Output = (ItemStatus, Vec<String>)>,
{
    futures::stream::iter(items)
        .for_each_concurrent(concurrency.max(1), |item| {
            let planned = item.as_ref();
            let kind = planned.kind;
            let name = planned.name.clone();
            let notes = planned.notes.clone();
            let started = std::time::Instant::now();
            let work = (!ctx.cancel.is_cancelled()).then(|| apply(item));
            async move {
                let (status, notes) = match work {
                    Some(work) => work.await,
                    None => (Interrupted::BeforeStart.into(), notes),
                };
                ctx.reporter.item(
                    job.id,
                    ItemOutcome {
                        kind,
                        name,
                        status,
                        notes,
                        duration_ms: u64::try_from(started.elapsed().as_millis())
                            .unwrap_or(u64::MAX),
                    },
                );
            }
        })
        .await;
}

/// Runs an item's work in an item slot ([`PluginContext::in_item_slot`]): its status (one
/// cancelled before it ended reported so) with the plan's `notes`, as [`apply_each`] takes it.
pub async fn in_slot(
    ctx: &PluginContext,
    notes: Vec<String>,
    work: impl std::future::Future<Output = ItemStatus>,
) -> (ItemStatus, Vec<String>) {
    let status = ctx
        .in_item_slot(Box::pin(work))
        .await
        .unwrap_or_else(ItemStatus::from);
    (status, notes)
}

/// The outcome of an item the plan already decided: identical, skipped or failed (an item only
/// in the target is never written: skipped).
pub fn settled(action: &PlannedAction) -> Option<ItemStatus> {
    match action {
        PlannedAction::Identical => Some(ItemStatus::Identical),
        PlannedAction::Extra => Some(ItemStatus::Skipped {
            reason: EXTRA.to_owned(),
        }),
        PlannedAction::Skip { reason } => Some(ItemStatus::Skipped {
            reason: reason.clone(),
        }),
        PlannedAction::Fail { reason } => Some(ItemStatus::Failed {
            error: reason.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_writes_are_left_unsettled_and_an_extra_is_never_written() {
        assert!(matches!(
            settled(&PlannedAction::Extra),
            Some(ItemStatus::Skipped { reason }) if reason == EXTRA
        ));
        assert!(settled(&PlannedAction::Create).is_none());
        assert!(matches!(
            settled(&PlannedAction::Identical),
            Some(ItemStatus::Identical)
        ));
    }
}
