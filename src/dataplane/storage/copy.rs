//! One blob's server-side copy: Copy Blob From URL, Put Block From URL + Put Block List, Put
//! Page / Append Block From URL over ranges, or async Copy Blob polled (with a deadline) to
//! completion, each falling back to the next when the target service does not implement it.
//! The bytes never pass through atg.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;

use super::access::Clients;
use super::blob::{identical, BlobResult, CopyMethod};
use super::MIB;
use crate::azure::storage::blob::{
    BlobItem, CopyAnswer, CopyState, Destination, INCOMPLETE_MARKER,
};
use crate::azure::{AzureError, Sensitive};
use crate::dataplane::kit::{paged, poll_until, PollError, Progress, Schedule};

fn copy_failed(operation: &str, error: &AzureError) -> BlobResult {
    BlobResult::Failed(format!("{operation}: {error}"))
}

const CHANGED: &str =
    "the target blob appeared or changed during the run; left as it is (run again to compare)";
const COPY_NOT_CONFIRMED: &str =
    "cancelled while the service was copying it: copy started, not confirmed (the service may still finish it; run again to compare)";
const SOURCE_CHANGED: &str =
    "the source blob changed during the copy; nothing of it was committed (run again to copy the new version)";
const SOURCE_CHANGED_RANGES: &str =
    "the source blob changed during the copy; the target holds atg's unfinished copy (marked, replaced by the next run)";

/// Copies one blob server-side, over `destination` only as it was compared.
pub(super) async fn copy_blob(
    clients: &Clients,
    container: &str,
    source: &BlobItem,
    mut destination: Destination,
    sas: &Sensitive,
    cancel: &CancellationToken,
) -> BlobResult {
    let source_url = clients.source_blob.blob_url(container, &source.name);
    let source_url = Sensitive::new(format!("{source_url}?{}", sas.expose()));
    let target = &clients.target_blob;
    let name = source.name.as_str();
    if source.is_block_blob() {
        if source.size <= clients.sync_copy_max
            && !clients.sync_copy_unsupported.load(Ordering::Relaxed)
        {
            match target
                .copy_from_url_sync(container, name, &source_url, source, &destination)
                .await
            {
                Ok(CopyAnswer::Done) => return BlobResult::Copied(CopyMethod::Sync, source.size),
                Ok(CopyAnswer::ConditionFailed) if landed(clients, container, source).await => {
                    return BlobResult::Copied(CopyMethod::Sync, source.size)
                }
                Ok(CopyAnswer::ConditionFailed | CopyAnswer::SourceChanged) => {
                    return BlobResult::Skipped(CHANGED.into())
                }
                Ok(CopyAnswer::Unsupported) => {
                    clients.sync_copy_unsupported.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "the target does not implement copy blob from url; using async copy"
                    );
                }
                Ok(CopyAnswer::Pending(_)) => {
                    return wait_for_copy(clients, container, name, source.size, cancel).await;
                }
                Ok(CopyAnswer::Misrouted(_)) => {
                    return BlobResult::Failed("copy blob from url: unexpected answer".into())
                }
                Err(error) => return copy_failed("copy blob from url", &error),
            }
        } else if source.size > clients.sync_copy_max
            && !clients.block_copy_unsupported.load(Ordering::Relaxed)
        {
            match copy_in_blocks(clients, container, source, &source_url, &destination).await {
                Ok(Some(BlobResult::Misrouted(etag))) => {
                    clients
                        .block_copy_unsupported
                        .store(true, Ordering::Relaxed);
                    tracing::info!("the target answered put block from url with a whole copy; using async copy");
                    // Replace exactly what that answer wrote, nothing else.
                    destination = match etag {
                        Some(etag) => Destination::Unchanged(etag),
                        None => return BlobResult::Failed(
                            "put block from url was answered with an unexpected write and no etag"
                                .into(),
                        ),
                    };
                }
                Ok(Some(result)) | Err(result) => return result,
                Ok(None) => {
                    clients
                        .block_copy_unsupported
                        .store(true, Ordering::Relaxed);
                    tracing::info!(
                        "the target does not implement put block from url; using async copy"
                    );
                }
            }
        }
    }
    let unsupported = if source.is_page_blob() {
        Some(&clients.page_copy_unsupported)
    } else if source.is_append_blob() {
        Some(&clients.append_copy_unsupported)
    } else {
        None
    };
    if let Some(unsupported) = unsupported.filter(|u| !u.load(Ordering::Relaxed)) {
        match copy_ranges(clients, container, source, &source_url, &destination).await {
            RangeCopy::Finished(result) => return result,
            RangeCopy::Unsupported(created) => {
                unsupported.store(true, Ordering::Relaxed);
                tracing::info!(
                    "the target does not implement put page / append block from url; using async copy"
                );
                // Replace exactly the empty blob that was created for the ranges.
                destination = Destination::Unchanged(created);
            }
        }
    }
    match target
        .start_copy(container, name, &source_url, source, &destination)
        .await
    {
        Ok(CopyAnswer::Done) => BlobResult::Copied(CopyMethod::Async, source.size),
        Ok(CopyAnswer::Pending(_)) => {
            wait_for_copy(clients, container, name, source.size, cancel).await
        }
        Ok(CopyAnswer::ConditionFailed) if landed(clients, container, source).await => {
            BlobResult::Copied(CopyMethod::Async, source.size)
        }
        Ok(CopyAnswer::ConditionFailed | CopyAnswer::SourceChanged) => {
            BlobResult::Skipped(CHANGED.into())
        }
        Ok(CopyAnswer::Unsupported | CopyAnswer::Misrouted(_)) => {
            BlobResult::Failed("the target does not implement copy blob".into())
        }
        Err(error) => copy_failed("copy blob", &error),
    }
}

/// After a conditional write was refused: whether the target now holds exactly the source's
/// blob, which is what an earlier try whose answer was lost leaves behind.
async fn landed(clients: &Clients, container: &str, source: &BlobItem) -> bool {
    matches!(
        clients.target_blob.blob_item(container, &source.name).await,
        Ok(Some(target)) if identical(source, &target)
    )
}

/// Polls an async copy until it leaves `pending`, for at most the pair's copy timeout
/// (`options.copy_timeout_secs`): a copy still pending then is reported failed, not waited for
/// forever. A cancellation stops the polling after one last look: the copy is then reported as
/// the service showed it (a pending copy goes on in the service, unconfirmed).
async fn wait_for_copy(
    clients: &Clients,
    container: &str,
    name: &str,
    size: u64,
    cancel: &CancellationToken,
) -> BlobResult {
    let target = &clients.target_blob;
    let look = || async {
        Ok(match target.copy_state(container, name).await? {
            CopyState::Pending => Progress::Pending { retry_after: None },
            state => Progress::Done(state),
        })
    };
    let schedule = Schedule::new(clients.copy_timeout)
        .pauses(Duration::from_millis(100), Duration::from_secs(5));
    let state = match poll_until(cancel, schedule, look).await {
        Ok(state) => state,
        Err(PollError::Cancelled) => match target.copy_state(container, name).await {
            Ok(state) => state,
            Err(error) => return copy_failed("read the copy status", &error),
        },
        Err(PollError::TimedOut(waited)) => {
            return BlobResult::Failed(format!(
                "copy started, not finished after {}s: the service may still finish it (run again to compare; options.copy_timeout_secs sets how long to wait)",
                waited.as_secs()
            ))
        }
        Err(PollError::Failed(error)) => return copy_failed("read the copy status", &error),
    };
    match state {
        CopyState::Success => BlobResult::Copied(CopyMethod::Async, size),
        // Only after a cancellation: polling goes on while it is pending.
        CopyState::Pending => BlobResult::Failed(COPY_NOT_CONFIRMED.into()),
        CopyState::Failed(description) => BlobResult::Failed(description),
    }
}

/// `AzCopy`'s block size: 8 MiB, doubled until the blob fits in 50,000 blocks.
fn block_size_for(size: u64, chosen: Option<u64>) -> u64 {
    if let Some(chosen) = chosen {
        return chosen.max(size.div_ceil(50_000));
    }
    let mut block = 8 * MIB;
    while size.div_ceil(block) > 50_000 && block < 4000 * MIB {
        block *= 2;
    }
    block
}

/// Put Block From URL for each range, then Put Block List. `Ok(None)` when the target does
/// not implement Put Block From URL (then nothing was committed).
async fn copy_in_blocks(
    clients: &Clients,
    container: &str,
    source: &BlobItem,
    source_url: &Sensitive,
    destination: &Destination,
) -> Result<Option<BlobResult>, BlobResult> {
    use base64::Engine as _;
    let target = &clients.target_blob;
    let block = block_size_for(source.size, clients.block_size);
    let count = source.size.div_ceil(block);
    let ids: Vec<String> = (0..count)
        .map(|i| base64::engine::general_purpose::STANDARD.encode(format!("atg-{i:06}")))
        .collect();
    // The first block tells whether the call exists at all.
    let stage = |index: u64| {
        let id = ids[usize::try_from(index).unwrap_or(0)].clone();
        let start = index * block;
        let end = (start + block).min(source.size) - 1;
        async move {
            target
                .put_block_from_url(
                    container,
                    &source.name,
                    &id,
                    (source_url, source),
                    (start, end),
                )
                .await
        }
    };
    match stage(0).await {
        Ok(CopyAnswer::Unsupported) => return Ok(None),
        Ok(CopyAnswer::SourceChanged) => {
            return Ok(Some(BlobResult::Skipped(SOURCE_CHANGED.into())))
        }
        Ok(CopyAnswer::Misrouted(etag)) => return Ok(Some(BlobResult::Misrouted(etag))),
        Ok(_) => {}
        Err(error) => return Err(copy_failed("put block from url", &error)),
    }
    let results: Vec<Result<CopyAnswer, AzureError>> = futures::stream::iter(1..count)
        .map(stage)
        .buffer_unordered(8)
        .collect()
        .await;
    for result in results {
        match result {
            Ok(CopyAnswer::SourceChanged) => {
                return Ok(Some(BlobResult::Skipped(SOURCE_CHANGED.into())));
            }
            Ok(CopyAnswer::Unsupported | CopyAnswer::Misrouted(_)) => {
                return Err(BlobResult::Failed(
                    "put block from url stopped being supported".into(),
                ))
            }
            Ok(_) => {}
            Err(error) => return Err(copy_failed("put block from url", &error)),
        }
    }
    match target
        .put_block_list(container, &source.name, &ids, source, destination)
        .await
    {
        Ok(CopyAnswer::ConditionFailed) if landed(clients, container, source).await => {
            Ok(Some(BlobResult::Copied(CopyMethod::Blocks, source.size)))
        }
        Ok(CopyAnswer::ConditionFailed) => Ok(Some(BlobResult::Skipped(CHANGED.into()))),
        Ok(_) => Ok(Some(BlobResult::Copied(CopyMethod::Blocks, source.size))),
        Err(error) => Err(copy_failed("put block list", &error)),
    }
}

/// How a page or append blob copy by ranges ended.
enum RangeCopy {
    Finished(BlobResult),
    /// The service does not implement the call; carries the `ETag` of the empty blob created for
    /// it, which the fallback replaces.
    Unsupported(String),
}

/// Largest range one Put Page From URL or Append Block From URL takes in every API version
/// (`AzCopy`'s page chunk).
const RANGE_CHUNK: u64 = 4 * MIB;

/// Splits inclusive `(start, end)` ranges into pieces of at most `chunk` bytes.
fn chunked(ranges: &[(u64, u64)], chunk: u64) -> Vec<(u64, u64)> {
    let mut pieces = Vec::new();
    for &(start, end) in ranges {
        let mut at = start;
        while at <= end {
            let last = (at + chunk - 1).min(end);
            pieces.push((at, last));
            at = last + 1;
        }
    }
    pieces
}

/// Copies a page blob (its valid ranges only, as `AzCopy` does, so sparse disks stay sparse) or
/// an append blob (in order, each block conditional on the append position) server-side into
/// a blob created for it. Every range is read from the listed version of the source. The new
/// blob carries [`INCOMPLETE_MARKER`] until the last range is in: an interrupted copy is
/// visibly unfinished, and the next run replaces it.
async fn copy_ranges(
    clients: &Clients,
    container: &str,
    source: &BlobItem,
    source_url: &Sensitive,
    destination: &Destination,
) -> RangeCopy {
    let target = &clients.target_blob;
    let name = source.name.as_str();
    let finished = |result| RangeCopy::Finished(result);
    // Page ranges first: nothing is created when the source cannot be read.
    let pieces = if source.is_page_blob() {
        let ranges = paged(|marker: Option<String>| async move {
            let page = (clients.source_blob)
                .page_ranges(container, name, marker.as_deref())
                .await?;
            Ok(Some((page.items, page.next_marker)))
        });
        let ranges: Vec<(u64, u64)> = match ranges.try_collect().await {
            Ok(ranges) => ranges,
            Err(error) => return finished(copy_failed("read the source page ranges", &error)),
        };
        chunked(&ranges, RANGE_CHUNK)
    } else if source.size == 0 {
        Vec::new()
    } else {
        chunked(&[(0, source.size - 1)], RANGE_CHUNK)
    };
    let mut created = target
        .create_for_ranges(container, name, source, destination)
        .await;
    // Refused because it exists or changed: when what is there is atg's unfinished copy (a try
    // whose answer was lost created it, maybe this very replacement), it is replaced as a re-run
    // would.
    for _ in 0..3 {
        if !matches!(created, Ok(Err(_))) {
            break;
        }
        let Ok(Some(unfinished)) = target.blob_item(container, name).await else {
            break;
        };
        let Some(etag) = unfinished
            .etag
            .filter(|_| unfinished.metadata.contains_key(INCOMPLETE_MARKER))
        else {
            break;
        };
        created = target
            .create_for_ranges(container, name, source, &Destination::Unchanged(etag))
            .await;
    }
    let created = match created {
        Ok(Ok(etag)) => etag,
        Ok(Err(_)) => return finished(BlobResult::Skipped(CHANGED.into())),
        Err(error) => return finished(copy_failed("create the blob", &error)),
    };
    let source_changed = || finished(BlobResult::Skipped(SOURCE_CHANGED_RANGES.into()));
    if source.is_page_blob() {
        let write = |range| target.put_page_from_url(container, name, source_url, source, range);
        // The first write tells whether the call exists at all.
        if let Some(&first) = pieces.first() {
            match write(first).await {
                Ok(CopyAnswer::Unsupported) => return RangeCopy::Unsupported(created),
                Ok(CopyAnswer::SourceChanged) => return source_changed(),
                Ok(_) => {}
                Err(error) => return finished(copy_failed("put page from url", &error)),
            }
        }
        let results: Vec<_> = futures::stream::iter(pieces.into_iter().skip(1))
            .map(write)
            .buffer_unordered(8)
            .collect()
            .await;
        for result in results {
            match result {
                Ok(CopyAnswer::Done) => {}
                Ok(CopyAnswer::SourceChanged) => return source_changed(),
                Ok(_) => {
                    return finished(BlobResult::Failed(
                        "put page from url stopped being supported".into(),
                    ))
                }
                Err(error) => return finished(copy_failed("put page from url", &error)),
            }
        }
    } else {
        for (index, &(start, end)) in pieces.iter().enumerate() {
            match target
                .append_block_from_url(container, name, (source_url, source), (start, end), start)
                .await
            {
                Ok(CopyAnswer::Done) => {}
                Ok(CopyAnswer::Unsupported) if index == 0 => {
                    return RangeCopy::Unsupported(created)
                }
                Ok(CopyAnswer::SourceChanged) => return source_changed(),
                // A retry of a block that had been appended: fine when the length says so.
                Ok(CopyAnswer::ConditionFailed) => match target.blob_length(container, name).await {
                    Ok(length) if length == end + 1 => {}
                    Ok(length) => {
                        return finished(BlobResult::Failed(format!(
                            "append block from url: the target blob is {length} bytes long where {start} were expected (written by someone else?)"
                        )))
                    }
                    Err(error) => return finished(copy_failed("read the target blob length", &error)),
                },
                Ok(_) => {
                    return finished(BlobResult::Failed(
                        "append block from url stopped being supported".into(),
                    ))
                }
                Err(error) => return finished(copy_failed("append block from url", &error)),
            }
        }
    }
    if let Err(error) = target.finish_ranges(container, name, source).await {
        return finished(copy_failed("set the copied blob's properties", &error));
    }
    finished(BlobResult::Copied(CopyMethod::Ranges, source.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_cut_into_pieces_the_calls_take() {
        assert_eq!(chunked(&[(0, 0)], RANGE_CHUNK), vec![(0, 0)]);
        assert_eq!(
            chunked(&[(0, 10 * MIB - 1)], 4 * MIB),
            vec![
                (0, 4 * MIB - 1),
                (4 * MIB, 8 * MIB - 1),
                (8 * MIB, 10 * MIB - 1)
            ]
        );
        // Sparse page ranges stay sparse: only the valid ranges, each cut on its own.
        assert_eq!(
            chunked(&[(512, 1023), (8 * MIB, 12 * MIB + 511)], 4 * MIB),
            vec![
                (512, 1023),
                (8 * MIB, 12 * MIB - 1),
                (12 * MIB, 12 * MIB + 511)
            ]
        );
        assert!(chunked(&[], RANGE_CHUNK).is_empty());
    }

    #[test]
    fn block_sizes_follow_azcopy() {
        assert_eq!(block_size_for(300 * MIB, None), 8 * MIB);
        assert_eq!(block_size_for(500_000 * MIB, None), 16 * MIB);
        assert_eq!(block_size_for(3 * MIB, Some(MIB)), MIB);
    }
}
