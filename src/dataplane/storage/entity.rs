//! Table entities: the source's and the target's entities walked together in key order, a
//! page at a time on each side, each decided through the kit's conflict decision and written
//! with its property types in transactions of at most 100 per partition. Only entities that
//! fail or are skipped are reported one by one; the others are counted.

use futures::{Stream, StreamExt};

use super::access::Clients;
use super::{listing_failure, Tally, ENTITY};
use crate::azure::storage::table::{BatchFailure, Entity, EntityWrite, MAX_BATCH, MAX_BATCH_BYTES};
use crate::azure::storage::StorageClient;
use crate::azure::AzureError;
use crate::dataplane::kit::{merge_sorted, paged, Decision, Existing, Newer};
use crate::dataplane::{Counted, ItemOutcome, ItemStatus, Job, OnConflict, PluginContext};

/// What to do with one source entity, given the target's entity of the same keys.
fn decide(source: &Entity, target: Option<&Entity>, policy: OnConflict) -> Decision {
    let existing = match target {
        None => Existing::Absent,
        Some(target) if target.same_properties(source) => Existing::Identical,
        Some(target) => Existing::Differs(match (&source.timestamp, &target.timestamp) {
            (Some(source), Some(target)) if source > target => Newer::Source,
            _ => Newer::Target,
        }),
    };
    Decision::new(policy, "entity", existing)
}

/// A table's entities in key order, a page at a time.
pub(super) fn listing<'a>(
    client: &'a StorageClient,
    table: &'a str,
) -> impl Stream<Item = Result<Entity, AzureError>> + Send + 'a {
    paged(move |next: Option<(String, String)>| async move {
        let page = client.query_entities(table, next.as_ref()).await?;
        Ok(page.map(|page| (page.entities, page.next)))
    })
}

/// Copies every entity of `table` the target lacks or holds differently.
pub(super) async fn copy_entities(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    table: &str,
) -> Tally {
    let mut tally = Tally::default();
    let keys = |entity: &Entity| (entity.partition_key.clone(), entity.row_key.clone());
    let mut merge = merge_sorted(
        listing(&clients.source_table, table),
        listing(&clients.target_table, table),
        keys,
        keys,
    );
    let mut batch: Vec<EntityWrite> = Vec::new();
    let mut batch_bytes = 0usize;
    let report = |tally: &mut Tally, entity: &Entity, status: ItemStatus| {
        match status {
            ItemStatus::Failed { .. } => tally.failed += 1,
            _ => tally.skipped += 1,
        }
        ctx.reporter.item(
            job.id,
            ItemOutcome {
                kind: ENTITY,
                name: format!("{table}/{}/{}", entity.partition_key, entity.row_key),
                status,
                notes: Vec::new(),
                duration_ms: 0,
            },
        );
    };
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        let (entity, matched) = match merge.next().await {
            None => break,
            Some(Ok(merged)) => match merged.into_source_pair() {
                Some(pair) => pair,
                // Only in the target: never deleted.
                None => continue,
            },
            Some(Err(error)) => {
                tally.listing_error = Some(listing_failure("entities", error));
                break;
            }
        };
        let write = match decide(&entity, matched.as_ref(), job.on_conflict) {
            Decision::Write if matched.is_some() => EntityWrite::Replace(entity),
            Decision::Write => EntityWrite::Insert(entity),
            Decision::Identical => {
                tally.identical += 1;
                ctx.reporter.count(job.id, ENTITY, Counted::Identical, 1);
                continue;
            }
            Decision::Skip(reason) => {
                report(&mut tally, &entity, ItemStatus::Skipped { reason });
                continue;
            }
            Decision::Fail(error) => {
                report(&mut tally, &entity, ItemStatus::Failed { error });
                continue;
            }
        };
        let size = serde_json::to_string(&write.entity().properties).map_or(0, |s| s.len()) + 512;
        let other_partition = batch
            .first()
            .is_some_and(|first| first.entity().partition_key != write.entity().partition_key);
        if other_partition || batch.len() >= MAX_BATCH || batch_bytes + size > MAX_BATCH_BYTES {
            flush(ctx, job, clients, table, &mut batch, &mut tally, &report).await;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(write);
    }
    flush(ctx, job, clients, table, &mut batch, &mut tally, &report).await;
    tally
}

async fn flush(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    table: &str,
    batch: &mut Vec<EntityWrite>,
    tally: &mut Tally,
    report: &impl Fn(&mut Tally, &Entity, ItemStatus),
) {
    if batch.is_empty() {
        return;
    }
    let writes = std::mem::take(batch);
    let _permit = ctx.item_slots.acquire().await;
    let outcome = flat(clients.target_table.write_batch(table, &writes).await);
    if outcome.is_ok() {
        tally.copied += writes.len() as u64;
        let replaced = writes
            .iter()
            .filter(|write| matches!(write, EntityWrite::Replace(_)))
            .count() as u64;
        ctx.reporter
            .count(job.id, ENTITY, Counted::Overwritten, replaced);
        ctx.reporter.count(
            job.id,
            ENTITY,
            Counted::Created,
            writes.len() as u64 - replaced,
        );
        return;
    }
    // Find the culprit(s), or the writes that landed on an earlier try whose answer was lost:
    // one transaction per entity (a lone write's answer is already known).
    let mut known = (writes.len() == 1).then_some(outcome);
    for write in writes {
        let outcome = match known.take() {
            Some(outcome) => outcome,
            None => flat(
                clients
                    .target_table
                    .write_batch(table, std::slice::from_ref(&write))
                    .await,
            ),
        };
        let status = match outcome {
            Ok(()) => None,
            Err(error) if error.has_code("EntityAlreadyExists") => {
                already_there(clients, table, write.entity()).await
            }
            Err(error) => Some(ItemStatus::Failed {
                error: format!("write entity: {error}"),
            }),
        };
        match status {
            None => {
                tally.copied += 1;
                let counted = if matches!(write, EntityWrite::Replace(_)) {
                    Counted::Overwritten
                } else {
                    Counted::Created
                };
                ctx.reporter.count(job.id, ENTITY, counted, 1);
            }
            Some(status) => report(tally, write.entity(), status),
        }
    }
}

/// A transaction's answer: refused by the service or not answered at all.
fn flat(outcome: Result<Result<(), BatchFailure>, AzureError>) -> Result<(), AzureError> {
    outcome.and_then(|answer| answer.map_err(|failure| failure.error))
}

/// An Insert refused because the entity exists: `None` (copied) when the target holds exactly
/// the source's entity, which is what an earlier try whose answer was lost leaves; otherwise
/// it appeared during the run and is left as it is.
async fn already_there(clients: &Clients, table: &str, source: &Entity) -> Option<ItemStatus> {
    match clients.target_table.get_entity(table, source.key()).await {
        Ok(Some(target)) if target.same_properties(source) => None,
        Ok(_) => Some(ItemStatus::Skipped {
            reason: "appeared in the target during the run; left as it is (run again to compare)"
                .into(),
        }),
        Err(error) => Some(ItemStatus::Failed {
            error: format!("read entity: {error}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(name: &str, timestamp: &str) -> Entity {
        let mut properties = serde_json::Map::new();
        properties.insert("Name".into(), name.into());
        Entity {
            partition_key: "p".into(),
            row_key: "r".into(),
            timestamp: Some(timestamp.into()),
            properties,
        }
    }

    #[test]
    fn entities_are_decided_by_the_kit_with_their_modification_times() {
        let source = entity("ada", "2024-01-02T00:00:00Z");
        let older = entity("grace", "2024-01-01T00:00:00Z");
        let newer = entity("grace", "2024-01-03T00:00:00Z");
        assert_eq!(decide(&source, None, OnConflict::Fail), Decision::Write);
        assert_eq!(
            decide(
                &source,
                Some(&entity("ada", "2030-01-01T00:00:00Z")),
                OnConflict::Fail
            ),
            Decision::Identical
        );
        assert_eq!(
            decide(&source, Some(&older), OnConflict::Skip),
            Decision::Skip("entity exists in the target and differs (--on-conflict skip)".into())
        );
        assert_eq!(
            decide(&source, Some(&older), OnConflict::IfSourceNewer),
            Decision::Write
        );
        assert!(matches!(
            decide(&source, Some(&newer), OnConflict::IfSourceNewer),
            Decision::Skip(reason) if reason.contains("not older than the source")
        ));
        assert_eq!(
            decide(&source, Some(&newer), OnConflict::Fail),
            Decision::Fail("entity exists in the target and differs (--on-conflict fail)".into())
        );
    }
}
