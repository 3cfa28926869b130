//! Runs a deployment: inventory → plan → jobs, with the mode's semantics, bounded concurrency,
//! cancellation and the report.
//!
//! One failing resource never stops the others. Dry-run stops after each plugin's discovery, and
//! its target clients are read-only besides (the write guard in the pipeline), so a dry run
//! makes zero write requests by construction. Ctrl-C cancels: no resource or item starts after
//! it, items already started finish (bounded by `dataplane::CANCEL_GRACE`) and are reported as
//! what they did, items not started are reported skipped, and the report is still produced.
//! Only discovery, which reads, is dropped at the cancellation.

mod collector;
pub mod filter;
pub mod plan_file;
pub mod report;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::azure::{AzureHttp, Cloud, WriteAccess};
use crate::dataplane::{
    registry, DataPlanePlugin, ItemOutcome, ItemStatus, Job, JobId, Mode, OnConflict, OnDeleted,
    Plan, PlannedAction, PluginContext, PluginError, PluginInfo, Side, SideContext,
};
use crate::inventory::{escape_controls, Inventory, ResourcePair};
use collector::Collector;
use report::{Credentials, ItemCounts, Report, ResourceReport, ResourceStatus};

/// What the user chose for the run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub mode: Mode,
    pub dry_run: bool,
    /// `atg verify`: a dry run that plans item by item, lists the target's extra items and
    /// reports verdicts instead of plans.
    pub verify: bool,
    pub on_conflict: OnConflict,
    pub on_deleted: OnDeleted,
    /// Item operations in flight across the run.
    pub concurrency: usize,
    /// Resources worked on at once.
    pub resource_concurrency: usize,
    pub settle_timeout: Duration,
    /// `--plan FILE`: only what the plan approved is carried out, and what runs of it applied
    /// is recorded in its journal (and not done again).
    pub approved: Option<Arc<plan_file::Approved>>,
    pub journal: Option<Arc<plan_file::Journal>>,
}

/// Progress events for the UI. The orchestrator does not print.
pub trait ProgressSink: Send + Sync {
    /// A job started: `name` is what to show for it (the source's resource id).
    fn resource_started(&self, job: JobId, name: &str, plugin: &str);
    fn resource_discovered(&self, job: JobId, items: u64);
    fn item_finished(&self, job: JobId, outcome: &ItemOutcome);
    /// Items finished without being listed (see `Reporter::count`).
    fn items_counted(&self, job: JobId, count: u64);
    /// A job ended (possibly without starting: unsupported, cancelled before it started).
    fn resource_finished(&self, job: JobId, name: &str, status: ResourceStatus);
}

/// The identities and transport of a run.
pub struct Connections {
    pub http: AzureHttp,
    pub source: Arc<crate::azure::credential::ChainCredential>,
    pub target: Arc<crate::azure::credential::ChainCredential>,
}

/// Checks every pair with its plugin before any request: its options, and that every endpoint
/// it would send credentials to belongs to `cloud`. One line per problem, naming the pair;
/// empty when the run may start. Pairs without a plugin are left to the run (reported
/// unsupported).
pub fn check_pairs(inventory: &Inventory, cloud: Cloud) -> Vec<String> {
    check_pairs_with_plugins(registry::PLUGINS, inventory, cloud)
}

pub fn check_pairs_with_plugins(
    plugins: &[&'static dyn DataPlanePlugin],
    inventory: &Inventory,
    cloud: Cloud,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, pair) in inventory.pairs.iter().enumerate() {
        let Some(plugin) = plugin_for(plugins, &pair.source.resource_type) else {
            continue;
        };
        let checks = [
            plugin.validate_options(pair),
            plugin.validate_endpoints(pair, cloud),
        ];
        for problem in checks.into_iter().filter_map(Result::err) {
            problems.push(format!(
                "{}: {}",
                pair.label(index),
                escape_controls(&problem)
            ));
        }
    }
    problems
}

fn plugin_for(
    plugins: &[&'static dyn DataPlanePlugin],
    resource_type: &str,
) -> Option<&'static dyn DataPlanePlugin> {
    plugins
        .iter()
        .copied()
        .find(|plugin| plugin.info().handles(resource_type))
}

/// Runs with the plugins of the registry.
pub async fn run(
    inventory: Inventory,
    settings: &RunSettings,
    connections: &Connections,
    progress: Arc<dyn ProgressSink>,
    cancel: CancellationToken,
) -> Report {
    run_with_plugins(
        registry::PLUGINS,
        inventory,
        settings,
        connections,
        progress,
        cancel,
    )
    .await
}

/// Runs with the given plugins (tests inject fakes here).
pub async fn run_with_plugins(
    plugins: &[&'static dyn DataPlanePlugin],
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
    let collector = Arc::new(Collector::new(
        progress.clone(),
        settings.verify,
        settings.journal.clone(),
    ));
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
        pairs: inventory.pairs.clone().into(),
    };

    let resources: Vec<ResourceReport> = futures::stream::iter(inventory.pairs)
        .enumerate()
        .map(|(index, pair)| {
            run_resource(
                plugins,
                index,
                pair,
                settings,
                &ctx,
                &collector,
                progress.as_ref(),
            )
        })
        .buffered(settings.resource_concurrency.max(1))
        .collect()
        .await;

    let mut report = Report {
        report_version: report::REPORT_VERSION,
        atg_version: env!("CARGO_PKG_VERSION"),
        mode: settings.mode,
        dry_run: settings.dry_run,
        verify: settings.verify,
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
        filtered_pairs: 0,
        inventory_warnings: inventory.warnings,
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
    plugins: &[&'static dyn DataPlanePlugin],
    index: usize,
    pair: ResourcePair,
    settings: &RunSettings,
    ctx: &PluginContext,
    collector: &Collector,
    progress: &dyn ProgressSink,
) -> ResourceReport {
    let started = Instant::now();
    let job_id = JobId(index);
    let label = pair.source.id.clone();
    let mut report = ResourceReport {
        source_id: pair.source.id.clone(),
        target_id: pair.target.id.clone(),
        resource_type: pair.source.resource_type.clone(),
        match_rule: pair.match_rule,
        evidence: pair.evidence.clone(),
        plugin: None,
        mode: settings.mode,
        status: ResourceStatus::Succeeded,
        error: None,
        reason: None,
        facts: serde_json::Map::new(),
        counts: ItemCounts::default(),
        counts_by_kind: BTreeMap::new(),
        items: Vec::new(),
        fidelity: None,
        plan: Vec::new(),
        duration_ms: 0,
    };
    let Some(plugin) = plugin_for(plugins, &pair.source.resource_type) else {
        report.status = ResourceStatus::Unsupported;
        report.reason = Some(format!(
            "no data-plane plugin for {} (see `atg plugins`)",
            pair.source.resource_type
        ));
        progress.resource_finished(job_id, &label, report.status);
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
        progress.resource_finished(job_id, &label, report.status);
        return report;
    }
    if ctx.cancel.is_cancelled() {
        report.status = ResourceStatus::Cancelled;
        report.reason = Some("cancelled before it started".into());
        progress.resource_finished(job_id, &label, report.status);
        return report;
    }
    if let Some(approved) = &settings.approved {
        let (done, all) = approved.progress(&report.source_id, &report.target_id);
        let reason = if approved
            .items(&report.source_id, &report.target_id)
            .is_none()
        {
            Some("not in the plan: not contacted".to_owned())
        } else if all {
            report.counts.already_applied = done as u64;
            Some(format!(
                "already applied by an earlier run of this plan ({done} item(s)): not contacted"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            report.reason = Some(reason);
            progress.resource_finished(job_id, &label, report.status);
            return report;
        }
    }
    if let Ok(mut pairs) = collector.pairs.lock() {
        pairs.insert(job_id, (report.source_id.clone(), report.target_id.clone()));
    }
    progress.resource_started(job_id, &label, info.name);
    tracing::debug!(job = index, resource = %label, plugin = info.name, mode = %settings.mode, dry_run = settings.dry_run, "resource started");
    let job = Job {
        id: job_id,
        pair,
        mode: settings.mode,
        on_conflict: settings.on_conflict,
        on_deleted: settings.on_deleted,
        verify: settings.verify,
        from_plan: settings.approved.is_some(),
    };
    let outcome: Result<(), PluginError> = async {
        let Plan {
            mut discovery,
            mut apply,
        } = tokio::select! {
            plan = plugin.plan(ctx, &job) => plan?,
            () = ctx.cancel.cancelled() => return Err(PluginError::Cancelled),
        };
        report.facts.clone_from(&discovery.facts);
        let mut discovered = discovery.nested.clone();
        for item in &discovery.items {
            *discovered.entry(item.kind).or_default() += 1;
        }
        collector.set_discovered(job_id, &discovered);
        ctx.reporter.discovered(job_id, discovered.values().sum());
        if settings.dry_run {
            report.plan = discovery
                .items
                .iter()
                .filter(|item| item.action != PlannedAction::Extra)
                .map(plan_file::PlanEntry::of)
                .collect();
            for item in discovery.items {
                ctx.reporter.item(
                    job_id,
                    ItemOutcome {
                        kind: item.kind,
                        name: item.name,
                        status: ItemStatus::Planned { plan: item.action },
                        notes: item.notes,
                        duration_ms: 0,
                    },
                );
            }
            return Ok(());
        }
        if let Some(approved) = &settings.approved {
            plan_file::admit_approved(approved, info, &job, &mut discovery, ctx, collector);
            let keep: std::collections::HashSet<(&str, &str)> = discovery
                .items
                .iter()
                .map(|item| (item.kind, item.name.as_str()))
                .collect();
            apply.retain(&|kind, name| keep.contains(&(kind, name)));
        }
        apply.apply(ctx, &job).await
    }
    .await;

    let tally = collector.take(job_id);
    report.items = tally.outcomes;
    report
        .items
        .sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    for counts in tally.by_kind.values() {
        report.counts.merge(counts);
    }
    report.counts_by_kind = tally
        .by_kind
        .into_iter()
        .map(|(kind, counts)| (kind.to_owned(), counts))
        .collect();
    match outcome {
        Ok(()) if ctx.cancel.is_cancelled() => {
            report.status = ResourceStatus::Cancelled;
        }
        Ok(()) => {
            report.status = if report.counts.failed > 0 || report.counts.verify_gaps() > 0 {
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
            let remedy = match &error {
                PluginError::Azure { source, .. } if source.is_forbidden() => {
                    forbidden_remedy(info, settings.mode)
                }
                _ => String::new(),
            };
            report.error = Some(format!("{error}{remedy}"));
        }
    }
    if settings.verify {
        report.fidelity = Some(report.counts.fidelity());
    }
    report.duration_ms = millis(started.elapsed());
    progress.resource_finished(job_id, &label, report.status);
    report
}

/// The `hint:` line of a resource refused with 401/403: the roles the plugin declares for the
/// mode, per side (which side refused is in the error's operation).
fn forbidden_remedy(info: &PluginInfo, mode: Mode) -> String {
    let roles = |side: Side| {
        info.permissions
            .iter()
            .filter(|p| p.mode == mode && p.side == side)
            .flat_map(|p| p.roles.iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "\nhint: for {mode} the source identity needs {} and the target identity {} on the resource (`atg plugins` lists the data actions)",
        roles(Side::Source),
        roles(Side::Target)
    )
}

#[cfg(test)]
mod tests;
