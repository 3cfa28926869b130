//! Runs a deployment: inventory → plan → jobs, with the mode's semantics, bounded concurrency,
//! cancellation and the report.
//!
//! One failing resource never stops the others. Dry-run stops after each plugin's discovery, and
//! its target clients are read-only besides (the write guard in the pipeline), so a dry run
//! makes zero write requests by construction. Ctrl-C cancels: no resource or item starts after
//! it, items already started finish (bounded by `dataplane::CANCEL_GRACE`) and are reported as
//! what they did, items not started are reported skipped, and the report is still produced.
//! Only discovery, which reads, is dropped at the cancellation.

pub mod filter;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::azure::{AzureHttp, Cloud, WriteAccess};
use crate::dataplane::{
    registry, Counted, DataPlanePlugin, ItemOutcome, ItemStatus, Job, JobId, Mode, OnConflict,
    OnDeleted, Plan, PluginContext, PluginError, PluginInfo, Reporter, Side, SideContext,
};
use crate::inventory::{escape_controls, Inventory, ResourcePair};
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

/// What a resource's items came to: the listed outcomes and the counts per kind (which also
/// cover items counted without being listed).
#[derive(Default)]
struct ResourceTally {
    outcomes: Vec<ItemOutcome>,
    by_kind: BTreeMap<&'static str, ItemCounts>,
}

/// Collects item outcomes per resource and forwards them to the UI.
struct Collector {
    resources: Mutex<HashMap<JobId, ResourceTally>>,
    progress: Arc<dyn ProgressSink>,
    /// `atg verify`: plans are reported as verdicts.
    verify: bool,
}

impl Reporter for Collector {
    fn discovered(&self, job: JobId, items: u64) {
        self.progress.resource_discovered(job, items);
    }

    fn item(&self, job: JobId, mut outcome: ItemOutcome) {
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
            }
        }
    }
}

impl Collector {
    fn set_discovered(&self, job: JobId, discovered: &BTreeMap<&'static str, u64>) {
        if let Ok(mut resources) = self.resources.lock() {
            let tally = resources.entry(job).or_default();
            for (kind, count) in discovered {
                tally.by_kind.entry(kind).or_default().discovered += count;
            }
        }
    }

    fn take(&self, job: JobId) -> ResourceTally {
        self.resources
            .lock()
            .ok()
            .and_then(|mut resources| resources.remove(&job))
            .unwrap_or_default()
    }
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
    let collector = Arc::new(Collector {
        resources: Mutex::new(HashMap::new()),
        progress: progress.clone(),
        verify: settings.verify,
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
    progress.resource_started(job_id, &label, info.name);
    tracing::debug!(job = index, resource = %label, plugin = info.name, mode = %settings.mode, dry_run = settings.dry_run, "resource started");
    let job = Job {
        id: job_id,
        pair,
        mode: settings.mode,
        on_conflict: settings.on_conflict,
        on_deleted: settings.on_deleted,
        verify: settings.verify,
    };
    let outcome: Result<(), PluginError> = async {
        let Plan { discovery, apply } = tokio::select! {
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
mod tests {
    use super::*;
    use crate::azure::credential::{ChainCredential, ChainLink};
    use crate::azure::HttpSettings;
    use crate::dataplane::{Discovery, PlannedAction, PlannedItem, PluginInfo};
    use crate::inventory::{Properties, Resource};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A plugin that plans two items per resource and fails resources named `broken`.
    struct FakePlugin {
        applied: Arc<AtomicUsize>,
    }

    static FAKE_INFO: PluginInfo = PluginInfo {
        name: "fake",
        resource_types: &["Fake.Provider/things"],
        modes: &[Mode::Template],
        item_kinds: &[],
        permissions: &[],
        notes: &[],
        limits: &[],
    };

    #[async_trait]
    impl DataPlanePlugin for FakePlugin {
        fn info(&self) -> &'static PluginInfo {
            &FAKE_INFO
        }

        async fn plan(&self, _ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
            if job.pair.source.name == "broken" {
                return Err(PluginError::Invalid("broken on purpose".into()));
            }
            let discovery = Discovery {
                items: ["a", "b"]
                    .into_iter()
                    .map(|name| PlannedItem {
                        kind: "thing",
                        name: name.into(),
                        action: PlannedAction::Create,
                        notes: Vec::new(),
                        detail: serde_json::Value::Null,
                    })
                    .collect(),
                facts: serde_json::Map::new(),
                nested: BTreeMap::from([("part", 3)]),
            };
            Ok(Plan {
                discovery: discovery.clone(),
                apply: Box::new(FakeApply {
                    applied: self.applied.clone(),
                    discovery,
                }),
            })
        }
    }

    struct FakeApply {
        applied: Arc<AtomicUsize>,
        discovery: Discovery,
    }

    #[async_trait]
    impl crate::dataplane::ApplyPlan for FakeApply {
        async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
            self.applied.fetch_add(1, Ordering::SeqCst);
            ctx.reporter.count(job.id, "part", Counted::Created, 1);
            ctx.reporter.count(job.id, "part", Counted::Overwritten, 1);
            ctx.reporter.count(job.id, "part", Counted::Identical, 1);
            for item in self.discovery.items {
                ctx.reporter.item(
                    job.id,
                    ItemOutcome {
                        kind: item.kind,
                        name: item.name,
                        status: ItemStatus::Created {
                            action: "fake".into(),
                        },
                        notes: Vec::new(),
                        duration_ms: 0,
                    },
                );
            }
            Ok(())
        }
    }

    struct Quiet;
    impl ProgressSink for Quiet {
        fn resource_started(&self, _: JobId, _: &str, _: &str) {}
        fn resource_discovered(&self, _: JobId, _: u64) {}
        fn item_finished(&self, _: JobId, _: &ItemOutcome) {}
        fn items_counted(&self, _: JobId, _: u64) {}
        fn resource_finished(&self, _: JobId, _: &str, _: ResourceStatus) {}
    }

    fn resource(resource_type: &str, name: &str) -> Resource {
        Resource {
            id: format!("/subscriptions/s/resourceGroups/rg/providers/{resource_type}/{name}"),
            resource_type: resource_type.into(),
            name: name.into(),
            subscription_id: Some("s".into()),
            resource_group: Some("rg".into()),
            properties: Properties::Missing,
            options: serde_json::Map::new(),
        }
    }

    fn inventory(resources: &[(&str, &str)]) -> Inventory {
        Inventory {
            pairs: resources
                .iter()
                .map(|(t, n)| ResourcePair {
                    source: resource(t, n),
                    target: resource(t, &format!("{n}-target")),
                    match_rule: crate::inventory::MatchRule::Inventory,
                    evidence: crate::inventory::Evidence::default(),
                })
                .collect(),
            unmatched: Vec::new(),
            origin: "test".into(),
            warnings: Vec::new(),
        }
    }

    fn settings(mode: Mode, dry_run: bool) -> RunSettings {
        RunSettings {
            mode,
            dry_run,
            verify: false,
            on_conflict: OnConflict::Overwrite,
            on_deleted: OnDeleted::Recover,
            concurrency: 4,
            resource_concurrency: 2,
            settle_timeout: Duration::from_secs(1),
        }
    }

    fn connections() -> Connections {
        let http = AzureHttp::new(&HttpSettings::default()).unwrap();
        let none = || {
            Arc::new(ChainCredential::new(
                "test",
                vec![ChainLink {
                    label: "none",
                    configured: false,
                    credential: Err("none".into()),
                    timeout: None,
                }],
            ))
        };
        Connections {
            http,
            source: none(),
            target: none(),
        }
    }

    async fn run_fake(
        plugin: &'static FakePlugin,
        inventory: Inventory,
        settings: RunSettings,
        cancel: CancellationToken,
    ) -> Report {
        let plugins: Vec<&'static dyn DataPlanePlugin> = vec![plugin];
        run_with_plugins(
            &plugins,
            inventory,
            &settings,
            &connections(),
            Arc::new(Quiet),
            cancel,
        )
        .await
    }

    fn leak() -> &'static FakePlugin {
        Box::leak(Box::new(FakePlugin {
            applied: Arc::new(AtomicUsize::new(0)),
        }))
    }

    #[tokio::test]
    async fn one_failing_resource_does_not_stop_the_others() {
        let plugin = leak();
        let report = run_fake(
            plugin,
            inventory(&[
                ("Fake.Provider/things", "broken"),
                ("Fake.Provider/things", "fine"),
            ]),
            settings(Mode::Template, false),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(report.totals.failed, 1);
        assert_eq!(report.totals.succeeded, 1);
        // Two listed items and one counted part created, one overwritten, one identical;
        // `replicated` is their sum.
        assert_eq!(report.totals.items.created, 3);
        assert_eq!(report.totals.items.overwritten, 1);
        assert_eq!(report.totals.items.replicated, 4);
        assert_eq!(report.totals.items.identical, 1);
        assert_eq!(report.totals.items.skipped, 0);
        let fine = report
            .resources
            .iter()
            .find(|r| r.source_id.ends_with("fine"))
            .unwrap();
        assert_eq!(fine.counts.discovered, 5);
        assert_eq!(fine.counts_by_kind["part"].discovered, 3);
        assert_eq!(fine.counts_by_kind["part"].replicated, 2);
        assert_eq!(fine.items.len(), 2, "counted items are not listed");
        assert!(!report.succeeded());
        let broken = report
            .resources
            .iter()
            .find(|r| r.source_id.ends_with("broken"))
            .unwrap();
        assert_eq!(broken.error.as_deref(), Some("broken on purpose"));
    }

    #[test]
    fn a_plugin_without_options_refuses_any_and_unknown_types_are_left_to_the_run() {
        let plugin = leak();
        let plugins: Vec<&'static dyn DataPlanePlugin> = vec![plugin];
        let mut inventory = inventory(&[
            ("Fake.Provider/things", "x"),
            ("Microsoft.Network/virtualNetworks", "vnet"),
        ]);
        for pair in &mut inventory.pairs {
            pair.target
                .options
                .insert("colour\u{1b}".into(), serde_json::Value::Bool(true));
        }
        let problems = check_pairs_with_plugins(&plugins, &inventory, Cloud::AzureCloud);
        assert_eq!(
            problems,
            vec!["resources[0] (source `x`): unknown option `colour\\u{1b}`: the fake plugin takes no options"]
        );
        for pair in &mut inventory.pairs {
            pair.target.options.clear();
        }
        assert!(check_pairs_with_plugins(&plugins, &inventory, Cloud::AzureCloud).is_empty());
    }

    #[tokio::test]
    async fn dry_run_plans_and_never_applies() {
        let plugin = leak();
        let report = run_fake(
            plugin,
            inventory(&[("Fake.Provider/things", "x")]),
            settings(Mode::Template, true),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(plugin.applied.load(Ordering::SeqCst), 0);
        assert_eq!(report.totals.items.planned, 2);
        assert!(report.succeeded());
    }

    #[tokio::test]
    async fn unknown_types_and_modes_are_reported_unsupported_not_failed() {
        let plugin = leak();
        let report = run_fake(
            plugin,
            inventory(&[
                ("Microsoft.Network/virtualNetworks", "vnet"),
                ("Fake.Provider/things", "x"),
            ]),
            settings(Mode::Replication, false),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(report.totals.unsupported, 2);
        assert_eq!(plugin.applied.load(Ordering::SeqCst), 0);
        let reasons: Vec<_> = report
            .resources
            .iter()
            .filter_map(|r| r.reason.clone())
            .collect();
        assert!(
            reasons.iter().any(|r| r.contains("no data-plane plugin")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("has no replication mode")),
            "{reasons:?}"
        );
        assert!(report.succeeded(), "unsupported resources are not failures");
    }

    #[tokio::test]
    async fn a_cancelled_run_still_reports_and_does_not_succeed() {
        let plugin = leak();
        let cancel = CancellationToken::new();
        cancel.cancel();
        let report = run_fake(
            plugin,
            inventory(&[("Fake.Provider/things", "x")]),
            settings(Mode::Template, false),
            cancel,
        )
        .await;
        assert!(report.cancelled);
        assert_eq!(report.totals.cancelled, 1);
        assert!(!report.succeeded());
    }
}
