//! Planning a container's blobs and a table's entities one by one (dry run, `atg verify`,
//! `--plan FILE`): both listings walked together a page at a time, each item decided as applying
//! would decide it. Items to create or overwrite and identical ones are counted; skipped and
//! failed ones are listed with their reasons (and, for `atg verify`, the first
//! [`VERDICTS_LISTED`] missing, different or extra items of each container or table), so memory
//! stays flat whatever the number of items. The walk also fingerprints what it saw (each item's
//! name and both sides' versions), so a plan applied later can tell that a container or table
//! changed.

use futures::TryStreamExt;
use md5::{Digest, Md5};

use super::access::Clients;
use super::blob::{decide, listing};
use super::{entity, listing_failure, BLOB, ENTITY};
use crate::azure::storage::blob::BlobItem;
use crate::azure::storage::table::Entity;
use crate::dataplane::kit::{merge_sorted, Decision, Merged};
use crate::dataplane::{
    Counted, Difference, ItemOutcome, ItemStatus, Job, PlannedAction, PluginContext, PluginError,
};

/// How many missing, different or extra items `atg verify` lists per container or table; the
/// rest are counted.
pub(super) const VERDICTS_LISTED: u64 = 100;

/// What planning a container's blobs or a table's entities found.
#[derive(Debug, Default)]
pub(super) struct ItemsPlan {
    /// Source items; for blobs, their bytes and how many are archived.
    pub items: u64,
    pub bytes: u64,
    pub archived: u64,
    pub create: u64,
    pub overwrite: u64,
    pub identical: u64,
    pub skip: u64,
    pub fail: u64,
    /// Only in the target (counted for `atg verify`).
    pub extra: u64,
    /// Bytes the planned copies would move server-side.
    pub bytes_to_copy: u64,
    /// A digest of every item's name and both sides' versions (entity tags, timestamps), in key
    /// order.
    pub fingerprint: String,
}

impl ItemsPlan {
    /// The container's or table's note: `3 to create, 1 to overwrite (2.0 MiB to copy server-side),
    /// 5 identical`.
    pub fn summary(&self) -> String {
        let mut parts = vec![
            format!("{} to create", self.create),
            format!(
                "{} to overwrite ({} to copy server-side)",
                self.overwrite,
                super::human_bytes(self.bytes_to_copy)
            ),
            format!("{} identical", self.identical),
        ];
        if self.skip > 0 {
            parts.push(format!("{} to skip", self.skip));
        }
        if self.fail > 0 {
            parts.push(format!("{} to fail", self.fail));
        }
        if self.extra > 0 {
            parts.push(format!("{} only in the target", self.extra));
        }
        parts.join(", ")
    }
}

/// What differs between two blobs of the same name, in the words of [`Difference`].
pub(super) fn differences(source: &BlobItem, target: &BlobItem) -> Vec<Difference> {
    let mut differs = Vec::new();
    if source.size != target.size
        || source.content_md5 != target.content_md5
        || !source.blob_type.eq_ignore_ascii_case(&target.blob_type)
    {
        differs.push(Difference::Value);
    }
    if source.content_type != target.content_type
        || source.content_encoding != target.content_encoding
        || source.content_language != target.content_language
        || source.content_disposition != target.content_disposition
        || source.cache_control != target.cache_control
    {
        differs.push(Difference::ContentType);
    }
    if source.metadata != target.metadata {
        differs.push(Difference::Metadata);
    }
    if source.tags != target.tags {
        differs.push(Difference::Tags);
    }
    if source.explicit_tier().is_some() && source.access_tier != target.access_tier {
        differs.push(Difference::Tier);
    }
    if differs.is_empty() {
        // Same size and headers, no hashes, and the target older than the source.
        differs.push(Difference::Value);
    }
    differs
}

/// One listing pair walked and decided: the counts every kind shares.
struct Walk<'a> {
    ctx: &'a PluginContext,
    job: &'a Job,
    kind: &'static str,
    plan: ItemsPlan,
    digest: Md5,
    listed: u64,
}

impl Walk<'_> {
    fn report(&self, name: String, plan: PlannedAction) {
        self.ctx.reporter.item(
            self.job.id,
            ItemOutcome {
                kind: self.kind,
                name,
                status: ItemStatus::Planned { plan },
                notes: Vec::new(),
                duration_ms: 0,
            },
        );
    }

    /// A missing, different or extra item: listed for `atg verify` up to its cap, else counted.
    fn gap(&mut self, name: String, plan: PlannedAction, counted: Counted) {
        if self.job.verify && self.listed < VERDICTS_LISTED {
            self.listed += 1;
            self.report(name, plan);
        } else {
            self.ctx.reporter.count(self.job.id, self.kind, counted, 1);
        }
    }

    /// Records one key of the merge, named `name`: `tags` identify each side's version (entity
    /// tag, timestamp; the target's `None` when it lacks the key), `decision` is the source
    /// item's (`None` for an item only the target has). Returns whether the source item is to
    /// be written.
    fn step(
        &mut self,
        name: String,
        tags: (Option<&str>, Option<&str>),
        decision: Option<Decision>,
        differs: impl FnOnce() -> Vec<Difference>,
    ) -> bool {
        self.digest
            .update(format!("{name}\0{:?}\0{:?}\n", tags.0, tags.1));
        let Some(decision) = decision else {
            // Only in the target.
            if self.job.verify {
                self.plan.extra += 1;
                self.gap(name, PlannedAction::Extra, Counted::Extra);
            }
            return false;
        };
        self.plan.items += 1;
        match decision {
            Decision::Identical => {
                self.plan.identical += 1;
                self.ctx
                    .reporter
                    .count(self.job.id, self.kind, Counted::Identical, 1);
                false
            }
            Decision::Write if tags.1.is_none() => {
                self.plan.create += 1;
                self.gap(name, PlannedAction::Create, Counted::PlannedCreate);
                true
            }
            Decision::Write => {
                self.plan.overwrite += 1;
                let action = PlannedAction::compared(differs());
                self.gap(name, action, Counted::PlannedOverwrite);
                true
            }
            Decision::Skip(reason) => {
                self.plan.skip += 1;
                self.report(name, PlannedAction::Skip { reason });
                false
            }
            Decision::Fail(reason) => {
                self.plan.fail += 1;
                self.report(name, PlannedAction::Fail { reason });
                false
            }
        }
    }

    fn finish(mut self) -> ItemsPlan {
        self.plan.fingerprint = format!("{}s md5 {:x}", self.kind, self.digest.finalize());
        self.plan
    }
}

/// Decides every blob of `container` against the target's, reporting as it goes.
pub(super) async fn plan_blobs(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    container: &str,
) -> Result<ItemsPlan, PluginError> {
    let name = |blob: &BlobItem| blob.name.clone();
    let mut merge = merge_sorted(
        listing(&clients.source_blob, container),
        listing(&clients.target_blob, container),
        name,
        name,
    );
    let mut walk = Walk {
        ctx,
        job,
        kind: BLOB,
        plan: ItemsPlan::default(),
        digest: Md5::new(),
        listed: 0,
    };
    while let Some(merged) = merge
        .try_next()
        .await
        .map_err(|e| PluginError::Invalid(listing_failure(&format!("blobs of `{container}`"), e)))?
    {
        let (source, target) = match merged {
            Merged::TargetOnly(target) => {
                let name = format!("{container}/{}", target.name);
                walk.step(name, (None, target.etag.as_deref()), None, Vec::new);
                continue;
            }
            Merged::SourceOnly(source) => (source, None),
            Merged::Both(source, target) => (source, Some(target)),
        };
        walk.plan.bytes += source.size;
        walk.plan.archived += u64::from(source.is_archived());
        let decision = decide(&source, target.as_ref(), job.on_conflict);
        let tags = (
            source.etag.as_deref(),
            target.as_ref().map(|t| t.etag.as_deref().unwrap_or("")),
        );
        let name = format!("{container}/{}", source.name);
        let differs = || {
            target
                .as_ref()
                .map(|t| differences(&source, t))
                .unwrap_or_default()
        };
        if walk.step(name, tags, Some(decision), differs) {
            walk.plan.bytes_to_copy += source.size;
        }
    }
    Ok(walk.finish())
}

/// Decides every entity of `table` against the target's, reporting as it goes.
pub(super) async fn plan_entities(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    table: &str,
) -> Result<ItemsPlan, PluginError> {
    let keys = |entity: &Entity| (entity.partition_key.clone(), entity.row_key.clone());
    let mut merge = merge_sorted(
        entity::listing(&clients.source_table, table),
        entity::listing(&clients.target_table, table),
        keys,
        keys,
    );
    let mut walk = Walk {
        ctx,
        job,
        kind: ENTITY,
        plan: ItemsPlan::default(),
        digest: Md5::new(),
        listed: 0,
    };
    let name = |entity: &Entity| format!("{table}/{}/{}", entity.partition_key, entity.row_key);
    while let Some(merged) = merge
        .try_next()
        .await
        .map_err(|e| PluginError::Invalid(listing_failure(&format!("entities of `{table}`"), e)))?
    {
        let (source, target) = match merged {
            Merged::TargetOnly(target) => {
                walk.step(
                    name(&target),
                    (None, target.timestamp.as_deref()),
                    None,
                    Vec::new,
                );
                continue;
            }
            Merged::SourceOnly(source) => (source, None),
            Merged::Both(source, target) => (source, Some(target)),
        };
        let decision = entity::decide(&source, target.as_ref(), job.on_conflict);
        let tags = (
            source.timestamp.as_deref(),
            target
                .as_ref()
                .map(|t| t.timestamp.as_deref().unwrap_or("")),
        );
        // Entities differ by their properties (values and types).
        walk.step(name(&source), tags, Some(decision), || {
            vec![Difference::Value]
        });
    }
    Ok(walk.finish())
}

#[cfg(test)]
mod tests {
    use super::super::blob::tests::blob;
    use super::*;

    #[test]
    fn differences_name_what_differs_never_the_content() {
        let source = blob("a");
        let mut target = blob("a");
        target.content_md5 = Some("other=".into());
        target.metadata.insert("k".into(), "v".into());
        assert_eq!(
            differences(&source, &target),
            vec![Difference::Value, Difference::Metadata]
        );
        let mut target = blob("a");
        target.content_type = Some("text/plain".into());
        assert_eq!(differences(&source, &target), vec![Difference::ContentType]);
    }
}
