//! The orchestrator with fake plugins: failures, dry runs, unsupported types, cancellation.

use super::*;
use crate::azure::credential::{ChainCredential, ChainLink};
use crate::azure::HttpSettings;
use crate::dataplane::{Counted, Discovery, PlannedItem};
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
                    fingerprint: Some(format!("{name}@1")),
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
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        self.discovery
            .items
            .retain(|item| keep(item.kind, &item.name));
    }

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
        approved: None,
        journal: None,
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
