//! Runs a deployment: inventory → plan → jobs, with the mode's semantics, bounded concurrency,
//! cancellation and the report.
//!
//! One failing resource never stops the others. Dry-run stops after each plugin's discovery, and
//! its target clients are read-only besides (the write guard in the pipeline), so a dry run
//! makes zero write requests by construction. Ctrl-C cancels: items not started are reported
//! skipped, and the report is still produced.

pub mod report;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::azure::{AzureHttp, WriteAccess};
use crate::dataplane::{
    registry, ItemOutcome, ItemStatus, Job, Mode, OnConflict, OnDeleted, PluginContext,
    PluginError, Reporter, SideContext,
};
use crate::inventory::{Inventory, ResourcePair};
use report::{Credentials, ItemCounts, Report, ResourceReport, ResourceStatus};

/// What the user chose for the run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub mode: Mode,
    pub dry_run: bool,
    pub on_conflict: OnConflict,
    pub on_deleted: OnDeleted,
    /// Item operations in flight across the run.
    pub concurrency: usize,
    /// Resources worked on at once.
    pub resource_concurrency: usize,
    pub settle_timeout: Duration,
}

/// Progress events for the UI. The orchestrator does not print.
pub trait ProgressSink: Send + Sync {
    fn resource_started(&self, resource: &str, plugin: &str);
    fn resource_discovered(&self, resource: &str, items: u64);
    fn item_finished(&self, resource: &str, outcome: &ItemOutcome);
    fn resource_finished(&self, resource: &str, status: ResourceStatus);
}

/// Collects item outcomes per resource and forwards them to the UI.
struct Collector {
    items: Mutex<HashMap<String, Vec<ItemOutcome>>>,
    progress: Arc<dyn ProgressSink>,
}

impl Reporter for Collector {
    fn discovered(&self, resource: &str, items: u64) {
        self.progress.resource_discovered(resource, items);
    }

    fn item(&self, resource: &str, outcome: ItemOutcome) {
        self.progress.item_finished(resource, &outcome);
        if let Ok(mut items) = self.items.lock() {
            items.entry(resource.to_owned()).or_default().push(outcome);
        }
    }
}

impl Collector {
    fn take(&self, resource: &str) -> Vec<ItemOutcome> {
        self.items
            .lock()
            .ok()
            .and_then(|mut items| items.remove(resource))
            .unwrap_or_default()
    }
}

/// The identities and transport of a run.
pub struct Connections {
    pub http: AzureHttp,
    pub source: Arc<crate::azure::credential::ChainCredential>,
    pub target: Arc<crate::azure::credential::ChainCredential>,
}

pub async fn run(
    inventory: Inventory,
    settings: &RunSettings,
    connections: &Connections,
    progress: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> Report {
    let started = Instant::now();
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let collector = Arc::new(Collector {
        items: Mutex::new(HashMap::new()),
        progress: progress.clone(),
    });
    let ctx = PluginContext {
        http: connections.http.clone(),
        source: SideContext {
            credential: connections.source.clone(),
            access: WriteAccess::ReadOnly,
        },
        target: SideContext {
            credential: connections.target.clone(),
            access: if settings.dry_run {
                WriteAccess::ReadOnly
            } else {
                WriteAccess::ReadWrite
            },
        },
        reporter: collector.clone(),
        cancel: cancel.clone(),
        item_slots: Arc::new(Semaphore::new(settings.concurrency.max(1))),
        placeholder: PLACEHOLDER,
        settle_timeout: settings.settle_timeout,
    };

    let resources: Vec<ResourceReport> = futures::stream::iter(inventory.pairs)
        .map(|pair| run_resource(pair, settings, &ctx, &collector, progress.as_ref()))
        .buffered(settings.resource_concurrency.max(1))
        .collect()
        .await;

    let mut report = Report {
        report_version: 1,
        atg_version: env!("CARGO_PKG_VERSION"),
        mode: settings.mode,
        dry_run: settings.dry_run,
        cloud: connections.http.cloud.to_string(),
        inventory: inventory.origin,
        started_at,
        duration_ms: millis(started.elapsed()),
        cancelled: cancel.is_cancelled(),
        credentials: Credentials {
            source: connections.source.chosen_label(),
            target: connections.target.chosen_label(),
        },
        totals: report::Totals::default(),
        retries: connections.http.retry_stats.snapshot(),
        refused_writes: connections
            .http
            .refused_writes
            .load(std::sync::atomic::Ordering::Relaxed),
        resources,
        unmatched: inventory.unmatched,
    };
    report.compute_totals();
    report
}

/// The placeholder value template mode writes where a value is required. Non-empty (Key Vault
/// rejects empty values) and self-explanatory to whoever finds it.
pub const PLACEHOLDER: &str = "atg-template-placeholder: set the real value";

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

async fn run_resource(
    pair: ResourcePair,
    settings: &RunSettings,
    ctx: &PluginContext,
    collector: &Collector,
    progress: &dyn ProgressSink,
) -> ResourceReport {
    let started = Instant::now();
    let label = pair.source.id.clone();
    let mut report = ResourceReport {
        source_id: pair.source.id.clone(),
        target_id: pair.target.id.clone(),
        resource_type: pair.source.resource_type.clone(),
        plugin: None,
        status: ResourceStatus::Succeeded,
        error: None,
        reason: None,
        facts: serde_json::Map::new(),
        counts: ItemCounts::default(),
        items: Vec::new(),
        duration_ms: 0,
    };
    let Some(plugin) = registry::find(&pair.source.resource_type) else {
        report.status = ResourceStatus::Unsupported;
        report.reason = Some(format!(
            "no data-plane plugin for {} (see `atg plugins`)",
            pair.source.resource_type
        ));
        progress.resource_finished(&label, report.status);
        return report;
    };
    let info = plugin.info();
    report.plugin = Some(info.name);
    if !info.supports(settings.mode) {
        report.status = ResourceStatus::Unsupported;
        report.reason = Some(format!(
            "the {} plugin has no {} mode",
            info.name, settings.mode
        ));
        progress.resource_finished(&label, report.status);
        return report;
    }
    if ctx.cancel.is_cancelled() {
        report.status = ResourceStatus::Cancelled;
        report.reason = Some("cancelled before it started".into());
        progress.resource_finished(&label, report.status);
        return report;
    }
    progress.resource_started(&label, info.name);
    let job = Job {
        pair,
        mode: settings.mode,
        on_conflict: settings.on_conflict,
        on_deleted: settings.on_deleted,
    };
    let outcome: Result<(), PluginError> = async {
        let discovery = tokio::select! {
            discovery = plugin.discover(ctx, &job) => discovery?,
            () = ctx.cancel.cancelled() => return Err(PluginError::Cancelled),
        };
        report.facts.clone_from(&discovery.facts);
        report.counts.discovered = discovery.items.len() as u64;
        ctx.reporter
            .discovered(&label, discovery.items.len() as u64);
        if settings.dry_run {
            for item in discovery.items {
                ctx.reporter.item(
                    &label,
                    ItemOutcome {
                        kind: item.kind,
                        name: item.name,
                        status: ItemStatus::Planned {
                            action: item.action,
                        },
                        notes: item.notes,
                        duration_ms: 0,
                    },
                );
            }
            return Ok(());
        }
        plugin.apply(ctx, &job, discovery).await
    }
    .await;

    report.items = collector.take(&label);
    report
        .items
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    let discovered = report.counts.discovered;
    report.counts = ItemCounts {
        discovered,
        ..ItemCounts::default()
    };
    for item in &report.items {
        report.counts.add(&item.status);
    }
    match outcome {
        Ok(()) if ctx.cancel.is_cancelled() => {
            report.status = ResourceStatus::Cancelled;
        }
        Ok(()) => {
            report.status = if report.counts.failed > 0 {
                ResourceStatus::Failed
            } else {
                ResourceStatus::Succeeded
            };
        }
        Err(PluginError::Cancelled) => {
            report.status = ResourceStatus::Cancelled;
            report.reason = Some("cancelled".into());
        }
        Err(error) => {
            report.status = ResourceStatus::Failed;
            report.error = Some(error.to_string());
        }
    }
    report.duration_ms = millis(started.elapsed());
    progress.resource_finished(&label, report.status);
    report
}
