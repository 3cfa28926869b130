//! Blobs: whether each source blob is copied ([`decide`], through the kit's conflict
//! decision), and the walk of a container's source and target listings together, a page at a
//! time on each side, copying blobs server-side ([`super::copy`]) in the run's item slots.
//! Only blobs that fail or are skipped for a reason are reported one by one; the others are
//! counted, so memory stays flat whatever the number of blobs.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::{Stream, StreamExt};

use super::access::Clients;
use super::copy::copy_blob;
use super::{listing_failure, Tally, BLOB, BLOB_PAGE};
use crate::azure::storage::blob::{BlobItem, Destination, INCOMPLETE_MARKER};
use crate::azure::storage::StorageClient;
use crate::azure::AzureError;
use crate::dataplane::kit::{merge_sorted, paged, Decision, Existing, Newer};
use crate::dataplane::{
    Counted, Interrupted, ItemOutcome, ItemStatus, Job, OnConflict, PluginContext,
};

/// How one blob's copy ended.
pub(super) enum BlobResult {
    /// Internal: Put Block From URL was answered by something else that wrote the destination.
    Misrouted(Option<String>),
    Copied(CopyMethod, u64),
    Skipped(String),
    Failed(String),
}

#[derive(Clone, Copy)]
pub(super) enum CopyMethod {
    Sync,
    Blocks,
    /// Put Page From URL or Append Block From URL.
    Ranges,
    Async,
}

/// Whether two blobs hold the same thing. With a Content-MD5 on both sides the hash decides;
/// without one, same size and a target written after the source changed (as rclone and
/// `AzCopy`'s sync do without hashes).
pub(super) fn identical(source: &BlobItem, target: &BlobItem) -> bool {
    let same_content = match (&source.content_md5, &target.content_md5) {
        (Some(a), Some(b)) => a == b,
        (None, None) => match (source.last_modified, target.last_modified) {
            (Some(s), Some(t)) => t >= s,
            _ => false,
        },
        _ => false,
    };
    let same_tier = source.explicit_tier().is_none_or(|tier| {
        target
            .access_tier
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(tier))
    });
    same_content
        && source.size == target.size
        && source.blob_type.eq_ignore_ascii_case(&target.blob_type)
        && source.content_type == target.content_type
        && source.content_encoding == target.content_encoding
        && source.content_language == target.content_language
        && source.content_disposition == target.content_disposition
        && source.cache_control == target.cache_control
        && source.metadata == target.metadata
        && source.tags == target.tags
        && same_tier
}

const REHYDRATE: &str = "archived in the source: its data is offline; rehydrate it (set its tier to Hot or Cool, e.g. `az storage blob set-tier --tier Hot --rehydrate-priority Standard`), wait for it to finish, then run again";

/// What to do with one source blob, given the target's blob of the same name: the kit's
/// conflict decision, after what only blobs have (names URLs cannot address, atg's own
/// unfinished copies, archived blobs).
pub(super) fn decide(source: &BlobItem, target: Option<&BlobItem>, policy: OnConflict) -> Decision {
    // URLs resolve `.` and `..` path segments, even percent-encoded (`a/../b` is requested as
    // `b`): such a blob cannot be addressed, and any request would touch another blob.
    if source
        .name
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Decision::Skip(
            "the name has a `.` or `..` path segment, which URLs resolve to another blob: not copied (rename it in the source, or copy it with a tool that sends paths verbatim)".into(),
        );
    }
    if let Some(target) = target {
        // atg's own unfinished copy (interrupted page/append ranges): always replaced.
        if target.metadata.contains_key(INCOMPLETE_MARKER) {
            return Decision::Write;
        }
        if identical(source, target) {
            return Decision::Identical;
        }
    }
    if source.is_archived() {
        return Decision::Skip(REHYDRATE.into());
    }
    if let Some(status) = &source.archive_status {
        return Decision::Skip(format!(
            "being rehydrated in the source ({status}): run again when it is done"
        ));
    }
    let existing = match target {
        None => Existing::Absent,
        Some(target) => Existing::Differs(match (source.last_modified, target.last_modified) {
            (Some(source), Some(target)) if source > target => Newer::Source,
            _ => Newer::Target,
        }),
    };
    Decision::new(policy, "blob", existing)
}

/// Where a blob is written: a new blob, or over exactly the target's blob that was compared.
fn destination(target: Option<&BlobItem>) -> Destination {
    match target {
        None => Destination::Absent,
        Some(target) => Destination::Unchanged(target.etag.clone().unwrap_or_default()),
    }
}

/// A container's blobs in name order, a page at a time.
pub(super) fn listing<'a>(
    client: &'a StorageClient,
    container: &'a str,
) -> impl Stream<Item = Result<BlobItem, AzureError>> + Send + 'a {
    paged(move |marker: Option<String>| async move {
        let page = client
            .list_blobs(container, marker.as_deref(), BLOB_PAGE)
            .await?;
        Ok(page.map(|page| (page.items, page.next_marker)))
    })
}

/// Copies every blob of `container` the target lacks or holds differently, a page of each
/// listing at a time, as many at once as the run's item slots allow.
pub(super) async fn copy_blobs(
    ctx: &PluginContext,
    job: &Job,
    clients: &Arc<Clients>,
    container: &str,
) -> Tally {
    let mut tally = Tally::default();
    let sas = match clients
        .access
        .container_sas(&clients.source_account, container)
    {
        Ok(sas) => Arc::new(sas),
        Err(error) => {
            tally.listing_error = Some(format!("sign the copy-source SAS: {error}"));
            return tally;
        }
    };
    let limit = ctx.item_slots.available_permits().max(1);
    let name = |blob: &BlobItem| blob.name.clone();
    let mut merge = merge_sorted(
        listing(&clients.source_blob, container),
        listing(&clients.target_blob, container),
        name,
        name,
    );
    let mut running = FuturesUnordered::new();
    let record = |tally: &mut Tally,
                  (name, existed, result): (String, bool, BlobResult),
                  started: Instant| {
        let status = match result {
            BlobResult::Copied(method, bytes) => {
                tally.copied += 1;
                ctx.reporter.count(
                    job.id,
                    BLOB,
                    if existed {
                        Counted::Overwritten
                    } else {
                        Counted::Created
                    },
                    1,
                );
                tally.bytes += bytes;
                match method {
                    CopyMethod::Sync => tally.sync += 1,
                    CopyMethod::Blocks => tally.blocks += 1,
                    CopyMethod::Ranges => tally.ranges += 1,
                    CopyMethod::Async => tally.asynchronous += 1,
                }
                return;
            }
            BlobResult::Misrouted(_) => {
                tally.failed += 1;
                ItemStatus::Failed {
                    error: "internal: unexpected copy answer".into(),
                }
            }
            BlobResult::Skipped(reason) => {
                tally.skipped += 1;
                ItemStatus::Skipped { reason }
            }
            BlobResult::Failed(error) => {
                tally.failed += 1;
                ItemStatus::Failed { error }
            }
        };
        ctx.reporter.item(
            job.id,
            ItemOutcome {
                kind: BLOB,
                name: format!("{container}/{name}"),
                status,
                notes: Vec::new(),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
        );
    };
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        while running.len() >= limit {
            if let Some((outcome, started)) = running.next().await {
                record(&mut tally, outcome, started);
            }
        }
        let next = tokio::select! {
            next = merge.next() => next,
            () = ctx.cancel.cancelled() => break,
        };
        let (source, target) = match next {
            None => break,
            Some(Ok(merged)) => match merged.into_source_pair() {
                Some(pair) => pair,
                // Only in the target: never deleted.
                None => continue,
            },
            Some(Err(error)) => {
                tally.listing_error = Some(listing_failure("blobs", error));
                break;
            }
        };
        let existed = target.is_some();
        match decide(&source, target.as_ref(), job.on_conflict) {
            Decision::Write => {}
            Decision::Identical => {
                tally.identical += 1;
                ctx.reporter.count(job.id, BLOB, Counted::Identical, 1);
                continue;
            }
            Decision::Skip(reason) => {
                let outcome = (source.name, existed, BlobResult::Skipped(reason));
                record(&mut tally, outcome, Instant::now());
                continue;
            }
            Decision::Fail(error) => {
                let outcome = (source.name, existed, BlobResult::Failed(error));
                record(&mut tally, outcome, Instant::now());
                continue;
            }
        }
        let destination = destination(target.as_ref());
        let clients = clients.clone();
        let sas = sas.clone();
        running.push(async move {
            let started = Instant::now();
            let name = source.name.clone();
            let copied = ctx.in_item_slot(copy_blob(
                &clients,
                container,
                &source,
                destination,
                &sas,
                &ctx.cancel,
            ));
            let result = match copied.await {
                Ok(result) => result,
                Err(interrupted @ Interrupted::BeforeStart) => {
                    BlobResult::Skipped(interrupted.to_string())
                }
                Err(interrupted @ Interrupted::Unconfirmed) => {
                    BlobResult::Failed(interrupted.to_string())
                }
            };
            ((name, existed, result), started)
        });
    }
    while let Some((outcome, started)) = running.next().await {
        record(&mut tally, outcome, started);
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(name: &str) -> BlobItem {
        BlobItem {
            name: name.into(),
            size: 10,
            blob_type: "BlockBlob".into(),
            content_md5: Some("md5=".into()),
            access_tier: Some("Hot".into()),
            access_tier_inferred: true,
            last_modified: Some(time::macros::datetime!(2024-01-01 00:00 UTC)),
            etag: Some("0x1".into()),
            ..BlobItem::default()
        }
    }

    #[test]
    fn identical_blobs_are_skipped_whatever_the_policy() {
        let source = blob("a");
        let mut target = blob("a");
        target.etag = Some("0x2".into());
        target.last_modified = Some(time::macros::datetime!(2025-01-01 00:00 UTC));
        for policy in [
            OnConflict::Overwrite,
            OnConflict::Skip,
            OnConflict::Fail,
            OnConflict::IfSourceNewer,
        ] {
            assert_eq!(decide(&source, Some(&target), policy), Decision::Identical);
        }
    }

    #[test]
    fn names_with_dot_segments_are_skipped_not_sent_to_another_blob() {
        for name in ["a/../b", "./x", "x/.", ".."] {
            match decide(&blob(name), None, OnConflict::Overwrite) {
                Decision::Skip(reason) => assert!(reason.contains("path segment"), "{reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        for name in ["a.b", "..x", "x..", "a/.hidden", "a//b"] {
            assert_eq!(
                decide(&blob(name), None, OnConflict::Overwrite),
                Decision::Write,
                "{name}"
            );
        }
    }

    #[test]
    fn archived_blobs_are_skipped_with_the_remedy() {
        let mut source = blob("cold");
        source.access_tier = Some("Archive".into());
        source.access_tier_inferred = false;
        match decide(&source, None, OnConflict::Overwrite) {
            Decision::Skip(reason) => assert!(reason.contains("rehydrate"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let mut pending = blob("warming");
        pending.archive_status = Some("rehydrate-pending-to-hot".into());
        assert!(matches!(
            decide(&pending, None, OnConflict::Overwrite),
            Decision::Skip(_)
        ));
    }

    #[test]
    fn differing_blobs_follow_the_policy() {
        let source = blob("a");
        let mut target = blob("a");
        target.content_md5 = Some("other=".into());
        assert_eq!(
            decide(&source, Some(&target), OnConflict::Overwrite),
            Decision::Write
        );
        assert!(matches!(
            destination(Some(&target)),
            Destination::Unchanged(etag) if etag == "0x1"
        ));
        assert_eq!(
            decide(&source, Some(&target), OnConflict::Skip),
            Decision::Skip("blob exists in the target and differs (--on-conflict skip)".into())
        );
        assert_eq!(
            decide(&source, Some(&target), OnConflict::Fail),
            Decision::Fail("blob exists in the target and differs (--on-conflict fail)".into())
        );
        // if-source-newer: the target is as new → skip; older → copy.
        assert!(matches!(
            decide(&source, Some(&target), OnConflict::IfSourceNewer),
            Decision::Skip(reason) if reason.contains("not older than the source")
        ));
        target.last_modified = Some(time::macros::datetime!(2023-01-01 00:00 UTC));
        assert_eq!(
            decide(&source, Some(&target), OnConflict::IfSourceNewer),
            Decision::Write
        );
        assert_eq!(decide(&source, None, OnConflict::Fail), Decision::Write);
        assert!(matches!(destination(None), Destination::Absent));
        // atg's own unfinished copy is replaced even where a finished one would be kept.
        target
            .metadata
            .insert(INCOMPLETE_MARKER.into(), "true".into());
        assert_eq!(
            decide(&source, Some(&target), OnConflict::Skip),
            Decision::Write
        );
    }

    #[test]
    fn metadata_tags_and_explicit_tier_count_for_identity() {
        let source = blob("a");
        let mut target = blob("a");
        target.tags.insert("env".into(), "prod".into());
        assert!(!identical(&source, &target));
        let mut cool = blob("a");
        cool.access_tier = Some("Cool".into());
        cool.access_tier_inferred = false;
        assert!(!identical(&cool, &blob("a")));
        assert!(
            identical(&blob("a"), &cool),
            "an inferred source tier is not compared"
        );
    }
}
