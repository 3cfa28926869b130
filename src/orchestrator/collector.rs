//! The collector: where plugins report (the orchestrator's [`Reporter`]), per job, forwarding
//! each event to the progress display, recording settled items in a plan's journal and turning
//! plans into verdicts for `atg verify`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::plan_file;
use super::report::ItemCounts;
use super::ProgressSink;
use crate::dataplane::{Counted, ItemOutcome, ItemStatus, JobId, Reporter};

/// What a resource's items came to: the listed outcomes and the counts per kind (which also
/// cover items counted without being listed).
#[derive(Default)]
pub(super) struct ResourceTally {
    pub(super) outcomes: Vec<ItemOutcome>,
    pub(super) by_kind: BTreeMap<&'static str, ItemCounts>,
}

/// Collects item outcomes per resource and forwards them to the UI.
pub(super) struct Collector {
    resources: Mutex<HashMap<JobId, ResourceTally>>,
    progress: Arc<dyn ProgressSink>,
    /// `atg verify`: plans are reported as verdicts.
    verify: bool,
    /// `--plan FILE`: where settled items are recorded, with each job's pair.
    journal: Option<Arc<plan_file::Journal>>,
    pub(super) pairs: Mutex<HashMap<JobId, (String, String)>>,
}

impl Reporter for Collector {
    fn discovered(&self, job: JobId, items: u64) {
        self.progress.resource_discovered(job, items);
    }

    fn item(&self, job: JobId, mut outcome: ItemOutcome) {
        if let Some(journal) = &self.journal {
            let pair = self.pairs.lock().ok().and_then(|p| p.get(&job).cloned());
            if let Some((source_id, target_id)) = pair {
                journal.record(
                    &source_id,
                    &target_id,
                    outcome.kind,
                    &outcome.name,
                    &outcome.status,
                );
            }
        }
        if self.verify {
            if let ItemStatus::Planned { plan } = outcome.status {
                outcome.status = ItemStatus::Verified {
                    verdict: plan.into(),
                };
            }
        }
        // Names, kinds and statuses only: an outcome never holds a value.
        tracing::debug!(job = job.0, kind = outcome.kind, item = %outcome.name, status = ?outcome.status, "item finished");
        self.progress.item_finished(job, &outcome);
        if let Ok(mut resources) = self.resources.lock() {
            let tally = resources.entry(job).or_default();
            tally
                .by_kind
                .entry(outcome.kind)
                .or_default()
                .add(&outcome.status);
            tally.outcomes.push(outcome);
        }
    }

    fn count(&self, job: JobId, kind: &'static str, status: Counted, count: u64) {
        self.progress.items_counted(job, count);
        if let Ok(mut resources) = self.resources.lock() {
            let counts = resources
                .entry(job)
                .or_default()
                .by_kind
                .entry(kind)
                .or_default();
            match status {
                Counted::Created => counts.add_written(false, count),
                Counted::Overwritten => counts.add_written(true, count),
                Counted::Identical => counts.identical += count,
                Counted::PlannedCreate if self.verify => counts.missing += count,
                Counted::PlannedOverwrite if self.verify => counts.different += count,
                Counted::PlannedCreate | Counted::PlannedOverwrite => {
                    counts.planned += count;
                    counts.planned_changes += count;
                }
                Counted::Extra => counts.extra += count,
            }
        }
    }
}

impl Collector {
    pub(super) fn new(
        progress: Arc<dyn ProgressSink>,
        verify: bool,
        journal: Option<Arc<plan_file::Journal>>,
    ) -> Self {
        Collector {
            resources: Mutex::new(HashMap::new()),
            progress,
            verify,
            journal,
            pairs: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn set_discovered(&self, job: JobId, discovered: &BTreeMap<&'static str, u64>) {
        if let Ok(mut resources) = self.resources.lock() {
            let tally = resources.entry(job).or_default();
            for (kind, count) in discovered {
                tally.by_kind.entry(kind).or_default().discovered += count;
            }
        }
    }

    pub(super) fn already_applied(&self, job: JobId, kind: &'static str, count: u64) {
        if let Ok(mut resources) = self.resources.lock() {
            let tally = resources.entry(job).or_default();
            tally.by_kind.entry(kind).or_default().already_applied += count;
        }
    }

    pub(super) fn take(&self, job: JobId) -> ResourceTally {
        self.resources
            .lock()
            .ok()
            .and_then(|mut resources| resources.remove(&job))
            .unwrap_or_default()
    }
}
