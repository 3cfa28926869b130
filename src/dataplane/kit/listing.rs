//! Walking the source's and the target's listings together.
//!
//! [`pair_by_key`] pairs two listings held in memory ("create if missing, else compare");
//! [`merge_sorted`] walks two paged listings that the service returns in key order (blobs by
//! name, entities by partition and row key) a page at a time, so a container of millions of
//! blobs is compared in bounded memory; [`paged`] turns a paged listing into the stream it
//! takes.

use std::collections::BTreeMap;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};

use super::super::Side;

/// One key of the two listings.
#[derive(Debug, PartialEq, Eq)]
pub enum Merged<S, T> {
    /// Only the source has it: create.
    SourceOnly(S),
    /// Both have it: compare.
    Both(S, T),
    /// Only the target has it (extra in the target: never deleted, counted by verify).
    TargetOnly(T),
}

impl<S, T> Merged<S, T> {
    /// The source's item and the target's of the same key, or `None` for an item only the
    /// target has.
    pub fn into_source_pair(self) -> Option<(S, Option<T>)> {
        match self {
            Merged::SourceOnly(source) => Some((source, None)),
            Merged::Both(source, target) => Some((source, Some(target))),
            Merged::TargetOnly(_) => None,
        }
    }
}

/// A paged listing as a stream of its items, read a page at a time as the stream is consumed
/// (what [`merge_sorted`] takes). `page(token)` answers one page's items and the next page's
/// token (`None` on the last page), or `None` when there is nothing to list (an absent
/// container lists no blobs); the first call gets `None`.
pub fn paged<'a, T, N, E, F, Fut>(page: F) -> impl Stream<Item = Result<T, E>> + Send + 'a
where
    F: FnMut(Option<N>) -> Fut + Send + 'a,
    Fut: std::future::Future<Output = Result<Option<(Vec<T>, Option<N>)>, E>> + Send + 'a,
    T: Send + 'a,
    N: Send + 'a,
    E: Send + 'a,
{
    // `Some(token)` while a page is due (`Some(None)`: the first), `None` after the last.
    futures::stream::try_unfold((page, Some(None)), |(mut page, due)| async move {
        let Some(token) = due else {
            return Ok(None);
        };
        Ok(page(token).await?.map(|(items, next)| {
            let items = futures::stream::iter(items.into_iter().map(Ok));
            (items, (page, next.map(Some)))
        }))
    })
    .try_flatten()
}

/// Pairs each source item with the target's item of the same key, in key order; target items
/// the source lacks come last, as [`Merged::TargetOnly`]. A key listed twice on one side keeps
/// its first item (listings name each item once; a service that repeats one is not trusted
/// for the repeat).
pub fn pair_by_key<S, T, K: Ord>(
    source: impl IntoIterator<Item = S>,
    target: impl IntoIterator<Item = T>,
    source_key: impl Fn(&S) -> K,
    target_key: impl Fn(&T) -> K,
) -> Vec<Merged<S, T>> {
    let mut targets = BTreeMap::new();
    for item in target {
        targets.entry(target_key(&item)).or_insert(item);
    }
    let mut sources = BTreeMap::new();
    for item in source {
        sources.entry(source_key(&item)).or_insert(item);
    }
    let mut paired: Vec<Merged<S, T>> = sources
        .into_iter()
        .map(|(key, source)| match targets.remove(&key) {
            Some(target) => Merged::Both(source, target),
            None => Merged::SourceOnly(source),
        })
        .collect();
    paired.extend(targets.into_values().map(Merged::TargetOnly));
    paired
}

/// Why a merge of two listings stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum MergeError<E> {
    /// A side's listing failed.
    Listing(Side, E),
    /// A side's listing was not in key order (or named a key twice): comparing it page by page
    /// would report items missing that are not.
    OutOfOrder(Side),
}

impl<E: std::fmt::Display> std::fmt::Display for MergeError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MergeError::Listing(side, error) => {
                write!(f, "listing the {}: {error}", side_name(*side))
            }
            MergeError::OutOfOrder(side) => write!(
                f,
                "the {} listing is not in name order: it cannot be compared page by page",
                side_name(*side)
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for MergeError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MergeError::Listing(_, error) => Some(error),
            MergeError::OutOfOrder(_) => None,
        }
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Source => "source",
        Side::Target => "target",
    }
}

/// Walks two listings sorted by `key` together, yielding each key once. Each side is read as
/// the merge goes (one item of lookahead each), so memory stays bounded by the pages the
/// listings hold. A side out of order ends the merge with [`MergeError::OutOfOrder`].
pub fn merge_sorted<'a, S, T, E, K>(
    source: impl Stream<Item = Result<S, E>> + Send + 'a,
    target: impl Stream<Item = Result<T, E>> + Send + 'a,
    source_key: impl Fn(&S) -> K + Send + 'a,
    target_key: impl Fn(&T) -> K + Send + 'a,
) -> BoxStream<'a, Result<Merged<S, T>, MergeError<E>>>
where
    S: Send + 'a,
    T: Send + 'a,
    E: Send + 'a,
    K: Ord + Send + 'a,
{
    struct State<'a, S, T, E, K> {
        source: Lookahead<'a, S, E, K>,
        target: Lookahead<'a, T, E, K>,
        done: bool,
    }
    let state = State {
        source: Lookahead::new(source.boxed(), Box::new(source_key), Side::Source),
        target: Lookahead::new(target.boxed(), Box::new(target_key), Side::Target),
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let next = async {
            state.source.fill().await?;
            state.target.fill().await?;
            let merged = match (&state.source.next, &state.target.next) {
                (None, None) => return Ok(None),
                (Some(_), None) => Merged::SourceOnly(state.source.take()),
                (None, Some(_)) => Merged::TargetOnly(state.target.take()),
                (Some((source, _)), Some((target, _))) => match source.cmp(target) {
                    std::cmp::Ordering::Less => Merged::SourceOnly(state.source.take()),
                    std::cmp::Ordering::Greater => Merged::TargetOnly(state.target.take()),
                    std::cmp::Ordering::Equal => {
                        Merged::Both(state.source.take(), state.target.take())
                    }
                },
            };
            Ok(Some(merged))
        }
        .await;
        match next {
            Ok(Some(merged)) => Some((Ok(merged), state)),
            Ok(None) => None,
            Err(error) => {
                state.done = true;
                Some((Err(error), state))
            }
        }
    })
    .boxed()
}

/// One side of a merge with its next item read ahead.
struct Lookahead<'a, I, E, K> {
    stream: BoxStream<'a, Result<I, E>>,
    key: Box<dyn Fn(&I) -> K + Send + 'a>,
    side: Side,
    /// The next item and its key.
    next: Option<(K, I)>,
    /// The key of the item last taken, to check the order.
    last: Option<K>,
    ended: bool,
}

impl<'a, I, E, K: Ord> Lookahead<'a, I, E, K> {
    fn new(
        stream: BoxStream<'a, Result<I, E>>,
        key: Box<dyn Fn(&I) -> K + Send + 'a>,
        side: Side,
    ) -> Self {
        Lookahead {
            stream,
            key,
            side,
            next: None,
            last: None,
            ended: false,
        }
    }

    async fn fill(&mut self) -> Result<(), MergeError<E>> {
        if self.next.is_some() || self.ended {
            return Ok(());
        }
        match self.stream.next().await {
            None => self.ended = true,
            Some(Err(error)) => return Err(MergeError::Listing(self.side, error)),
            Some(Ok(item)) => {
                let key = (self.key)(&item);
                if self.last.as_ref().is_some_and(|last| *last >= key) {
                    return Err(MergeError::OutOfOrder(self.side));
                }
                self.next = Some((key, item));
            }
        }
        Ok(())
    }

    /// Takes the item read ahead; only called when there is one.
    fn take(&mut self) -> I {
        let (key, item) = self
            .next
            .take()
            .unwrap_or_else(|| unreachable!("take() is only called after a lookahead"));
        self.last = Some(key);
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn listing(names: &[&'static str]) -> impl Stream<Item = Result<&'static str, String>> {
        futures::stream::iter(names.iter().map(|name| Ok(*name)).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn sorted_listings_merge_key_by_key() {
        let merged: Vec<_> = merge_sorted(
            listing(&["a", "b", "d", "e"]),
            listing(&["b", "c", "e", "f"]),
            |s| *s,
            |t| *t,
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(
            merged,
            vec![
                Merged::SourceOnly("a"),
                Merged::Both("b", "b"),
                Merged::TargetOnly("c"),
                Merged::SourceOnly("d"),
                Merged::Both("e", "e"),
                Merged::TargetOnly("f"),
            ]
        );
    }

    #[tokio::test]
    async fn a_listing_out_of_order_stops_the_merge_instead_of_reporting_false_gaps() {
        let merged: Vec<_> = merge_sorted(
            listing(&["a", "c", "b"]),
            listing(&["a", "b", "c"]),
            |s| *s,
            |t| *t,
        )
        .collect()
        .await;
        assert_eq!(
            merged.last(),
            Some(&Err(MergeError::OutOfOrder(Side::Source)))
        );
        let repeated: Vec<_> = merge_sorted(listing(&["a"]), listing(&["a", "a"]), |s| *s, |t| *t)
            .collect()
            .await;
        assert_eq!(
            repeated.last(),
            Some(&Err(MergeError::OutOfOrder(Side::Target)))
        );
    }

    #[tokio::test]
    async fn a_failing_listing_ends_the_merge_with_its_side() {
        let failing = futures::stream::iter(vec![Ok("a"), Err("403".to_owned())]);
        let merged: Vec<_> = merge_sorted(listing(&["a", "b"]), failing, |s| *s, |t| *t)
            .collect()
            .await;
        assert_eq!(
            merged,
            vec![
                Ok(Merged::Both("a", "a")),
                Err(MergeError::Listing(Side::Target, "403".to_owned()))
            ]
        );
    }

    #[tokio::test]
    async fn a_paged_listing_streams_its_pages_in_order_and_stops_at_the_last() {
        let mut asked = Vec::new();
        let items: Vec<u32> = paged(|token: Option<u32>| {
            asked.push(token);
            async move {
                Ok::<_, String>(match token {
                    None => Some((vec![1, 2], Some(1))),
                    Some(1) => Some((Vec::new(), Some(2))),
                    Some(_) => Some((vec![3], None)),
                })
            }
        })
        .try_collect()
        .await
        .unwrap();
        assert_eq!(items, vec![1, 2, 3]);
        assert_eq!(asked, vec![None, Some(1), Some(2)]);
        let absent: Vec<u32> =
            paged(|_: Option<u32>| async { Ok::<Option<(Vec<u32>, Option<u32>)>, String>(None) })
                .try_collect()
                .await
                .unwrap();
        assert!(absent.is_empty());
        let failing: Vec<Result<u32, String>> = paged(|token: Option<u32>| async move {
            match token {
                None => Ok(Some((vec![1], Some(1)))),
                Some(_) => Err("503".to_owned()),
            }
        })
        .collect()
        .await;
        assert_eq!(failing, vec![Ok(1), Err("503".to_owned())]);
    }

    #[test]
    fn listings_in_memory_pair_by_key_with_the_target_extras_last() {
        let paired = pair_by_key(["b", "a"], ["c", "a"], |s| *s, |t| *t);
        assert_eq!(
            paired,
            vec![
                Merged::Both("a", "a"),
                Merged::SourceOnly("b"),
                Merged::TargetOnly("c")
            ]
        );
        assert_eq!(
            paired
                .into_iter()
                .filter_map(Merged::into_source_pair)
                .collect::<Vec<_>>(),
            vec![("a", Some("a")), ("b", None)]
        );
    }
}
