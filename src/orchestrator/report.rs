//! The run report: what `--output json` prints and what the human summary is made from.
//! Names, counts, reasons and errors only; no value ever enters it.

use serde::Serialize;

use crate::azure::policies::RetryCounts;
use crate::dataplane::{ItemOutcome, ItemStatus, Mode, PlannedAction, Verdict};
use crate::inventory::{Evidence, MatchRule, Unmatched};

/// The version of the report's shape; docs/report.md says what changed in each.
pub const REPORT_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ItemCounts {
    pub discovered: u64,
    /// Absent in the target and written.
    pub created: u64,
    /// Present in the target, different, and written over.
    pub overwritten: u64,
    /// `created` + `overwritten` (the version 1 figure, kept for continuity).
    pub replicated: u64,
    pub partial: u64,
    /// Soft-deleted in the target and recovered (then left or overwritten).
    pub recovered: u64,
    /// Present in the target and the same.
    pub identical: u64,
    pub skipped: u64,
    pub failed: u64,
    /// Dry-run: items planned, whatever the plan.
    pub planned: u64,
    /// Dry-run: items counted but not listed (blobs, entities) that would be written.
    pub planned_changes: u64,
    /// `atg verify`: absent in the target.
    pub missing: u64,
    /// `atg verify`: present in the target and different.
    pub different: u64,
    /// `atg verify`: only in the target.
    pub extra: u64,
    /// `atg verify`: not compared item by item, or a run would fail them.
    pub unverified: u64,
    /// `--plan FILE`: applied by an earlier run of the same plan, so not done again.
    pub already_applied: u64,
}

impl ItemCounts {
    pub fn add(&mut self, status: &ItemStatus) {
        match status {
            ItemStatus::Created { .. } => self.add_written(false, 1),
            ItemStatus::Overwritten { .. } => self.add_written(true, 1),
            ItemStatus::Partial { .. } => self.partial += 1,
            ItemStatus::Recovered { .. } => self.recovered += 1,
            ItemStatus::Identical => self.identical += 1,
            ItemStatus::Skipped { .. } => self.skipped += 1,
            ItemStatus::Planned { .. } => self.planned += 1,
            ItemStatus::Failed { .. } => self.failed += 1,
            ItemStatus::Verified { verdict } => match verdict {
                Verdict::Identical => self.identical += 1,
                Verdict::Missing => self.missing += 1,
                Verdict::Different { .. } => self.different += 1,
                Verdict::Extra => self.extra += 1,
                Verdict::Skipped { .. } => self.skipped += 1,
                Verdict::Unverified { .. } => self.unverified += 1,
            },
        }
    }

    /// `count` items written: over an item the target held (`existed`) or not.
    pub fn add_written(&mut self, existed: bool, count: u64) {
        if existed {
            self.overwritten += count;
        } else {
            self.created += count;
        }
        self.replicated += count;
    }

    pub fn merge(&mut self, other: &ItemCounts) {
        self.discovered += other.discovered;
        self.created += other.created;
        self.overwritten += other.overwritten;
        self.replicated += other.replicated;
        self.partial += other.partial;
        self.recovered += other.recovered;
        self.identical += other.identical;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.planned += other.planned;
        self.planned_changes += other.planned_changes;
        self.missing += other.missing;
        self.different += other.different;
        self.extra += other.extra;
        self.unverified += other.unverified;
        self.already_applied += other.already_applied;
    }

    /// `atg verify`: the items the mode promises that the target holds exactly, as a fraction
    /// of those promised (identical, missing, different, unverified); 1 when none are.
    pub fn fidelity(&self) -> f64 {
        let promised = self.identical + self.missing + self.different + self.unverified;
        if promised == 0 {
            1.0
        } else {
            // Counts stay far below 2^52: exact as f64.
            #[allow(clippy::cast_precision_loss)]
            let fidelity = self.identical as f64 / promised as f64;
            fidelity
        }
    }

    /// `atg verify`: whether something promised is missing, different or unverified.
    pub fn verify_gaps(&self) -> u64 {
        self.missing + self.different + self.unverified
    }
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResourceStatus {
    /// Every item replicated, skipped with a reason, or planned (dry-run).
    Succeeded,
    /// The resource could not be worked on, or an item failed.
    Failed,
    /// No plugin handles the type, or the plugin lacks the mode: nothing was done.
    Unsupported,
    /// Not started or not finished because the run was cancelled.
    Cancelled,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceReport {
    pub source_id: String,
    pub target_id: String,
    pub resource_type: String,
    /// How the inventory paired source and target (`inventory`, `exact_name`, `atg_naming`, ...).
    pub match_rule: MatchRule,
    /// What the rule found: the `name_mappings.json` entry, the planned name, the suffix...
    #[serde(skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
    pub plugin: Option<&'static str>,
    /// The mode this resource runs (or would run, in a dry run) in.
    pub mode: Mode,
    pub status: ResourceStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub facts: serde_json::Map<String, serde_json::Value>,
    /// All items of the resource, listed or only counted.
    pub counts: ItemCounts,
    /// The same, per item kind (secret, key, blob, entity, ...).
    pub counts_by_kind: std::collections::BTreeMap<String, ItemCounts>,
    /// Items listed one by one: every Key Vault item; for Storage, containers, queues, tables
    /// and the blobs and entities that failed or were skipped for a reason.
    pub items: Vec<ItemOutcome>,
    /// `atg verify`: [`ItemCounts::fidelity`] of this resource; null otherwise.
    pub fidelity: Option<f64>,
    /// A dry run's decisions, for `--plan-out` (not part of the report).
    #[serde(skip)]
    pub plan: Vec<super::plan_file::PlanEntry>,
    pub duration_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub resources: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub unsupported: u64,
    pub cancelled: u64,
    pub items: ItemCounts,
    /// `atg verify`: [`ItemCounts::fidelity`] over every resource; null otherwise.
    pub fidelity: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Credentials {
    pub source: Option<&'static str>,
    pub target: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub report_version: u32,
    pub atg_version: &'static str,
    pub mode: Mode,
    pub dry_run: bool,
    /// `atg verify` (read both sides, wrote nothing) rather than `atg deploy`.
    pub verify: bool,
    pub cloud: String,
    pub inventory: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub cancelled: bool,
    pub credentials: Credentials,
    pub totals: Totals,
    pub retries: RetryCounts,
    /// Writes the write guard refused. Always 0 unless a plugin tried to write in dry-run.
    pub refused_writes: u64,
    pub resources: Vec<ResourceReport>,
    pub unmatched: Vec<Unmatched>,
    /// Pairs of the inventory left out by --include-type, --exclude-type or --resource (never
    /// contacted).
    pub filtered_pairs: usize,
    /// What the inventory reader noticed but could not act on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inventory_warnings: Vec<String>,
}

impl Report {
    pub fn compute_totals(&mut self) {
        let mut totals = Totals::default();
        for resource in &self.resources {
            totals.resources += 1;
            match resource.status {
                ResourceStatus::Succeeded => totals.succeeded += 1,
                ResourceStatus::Failed => totals.failed += 1,
                ResourceStatus::Unsupported => totals.unsupported += 1,
                ResourceStatus::Cancelled => totals.cancelled += 1,
            }
            totals.items.merge(&resource.counts);
        }
        totals.fidelity = self.verify.then(|| totals.items.fidelity());
        self.totals = totals;
    }

    /// Dry-run: whether applying the plan would (or may) change a target: an item planned
    /// `create`, `overwrite`, `compare`, `recover` or `purge` (`--detailed-exitcode` exits 3).
    pub fn changes_pending(&self) -> bool {
        self.resources.iter().any(|resource| {
            resource.counts.planned_changes > 0
                || resource.items.iter().any(
                    |item| matches!(&item.status, ItemStatus::Planned { plan } if plan.changes()),
                )
        })
    }

    /// Dry-run: whether an item is planned `fail` (the run would fail it).
    pub fn failures_planned(&self) -> bool {
        self.resources.iter().any(|resource| {
            resource.items.iter().any(|item| {
                matches!(
                    &item.status,
                    ItemStatus::Planned {
                        plan: PlannedAction::Fail { .. }
                    }
                )
            })
        })
    }

    /// Whether everything that was asked for was done (exit code 0).
    pub fn succeeded(&self) -> bool {
        !self.cancelled
            && self.refused_writes == 0
            && self.resources.iter().all(|r| {
                matches!(
                    r.status,
                    ResourceStatus::Succeeded | ResourceStatus::Unsupported
                )
            })
    }
}

/// What `--output json` prints when the run could not start (exit 2): the message and hints the
/// user sees on stderr, which never hold a secret.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorReport {
    pub report_version: u32,
    pub error: ErrorBody,
    pub exit_code: u8,
}

#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    pub message: String,
    pub hints: Vec<String>,
}

impl ErrorReport {
    pub fn new(message: &str, hints: &[String], exit_code: u8) -> Self {
        ErrorReport {
            report_version: REPORT_VERSION,
            error: ErrorBody {
                message: message.to_owned(),
                hints: hints.to_vec(),
            },
            exit_code,
        }
    }
}
