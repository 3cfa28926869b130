//! Snapshots of what people read: `--help`, `atg plugins` and a run's human summary, so a change
//! to them shows up in review. Durations are filtered out. Update with `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test --test it snapshots`).

use std::collections::BTreeMap;

use serde_json::json;

use crate::common::*;

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"in \d+\.\ds", "in [duration]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

#[tokio::test]
async fn help_and_plugins() {
    let help = atg(&["deploy".into(), "--help".into()], &[]).await;
    let plugins = atg(&["plugins".into()], &[]).await;
    settings().bind(|| {
        insta::assert_snapshot!(
            "deploy_help",
            format!("exit {}\n{}", help.code, help.stdout)
        );
        insta::assert_snapshot!(
            "plugins",
            format!("exit {}\n{}", plugins.code, plugins.stdout)
        );
    });
}

#[tokio::test]
async fn a_replication_summary() {
    let stack = Stack::start().await;
    let source = stack.vault("src-kv");
    source
        .set_secret("plain", "v", None, None, true)
        .await
        .unwrap();
    source
        .set_secret("off", "v", None, None, false)
        .await
        .unwrap();
    stack
        .vault("dst-kv")
        .set_secret("plain", "v", None, None, true)
        .await
        .unwrap();
    let inventory = stack.write_json(
        "inventory.json",
        &json!({ "resources": [
            { "source": kv_resource("s", "src-kv", None), "target": kv_resource("t", "dst-kv", None) },
            { "source": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet", "type": "Microsoft.Network/virtualNetworks", "name": "vnet"},
              "target": {"id": "/subscriptions/t/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet", "type": "Microsoft.Network/virtualNetworks", "name": "vnet"} }
        ]}),
    );
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--no-progress"],
        )
        .await;
    settings().bind(|| {
        insta::assert_snapshot!(
            "replication_summary",
            format!(
                "exit {}\n--- stdout\n{}--- stderr\n{}",
                run.code, run.stdout, run.stderr
            )
        );
    });
}

/// The report's schema: one report holding every outcome and every plan, and the exit-2 error
/// document, serialised as `--output json` writes them. Any change of shape shows here.
#[test]
fn report_schema() {
    use atg::dataplane::{Difference, ItemOutcome, ItemStatus, Mode, PlannedAction, Verdict};
    use atg::inventory::{Evidence, MatchRule};
    use atg::orchestrator::report::{
        Credentials, ErrorReport, ItemCounts, Report, ResourceReport, ResourceStatus, Totals,
        REPORT_VERSION,
    };
    let outcome = |name: &str, status| ItemOutcome {
        kind: "secret",
        name: name.into(),
        status,
        notes: vec!["a note".into()],
        duration_ms: 1,
    };
    let action = || "value copied".to_owned();
    let items = vec![
        outcome("created", ItemStatus::Created { action: action() }),
        outcome("overwritten", ItemStatus::Overwritten { action: action() }),
        outcome(
            "partial",
            ItemStatus::Partial {
                action: action(),
                reason: "why".into(),
            },
        ),
        outcome(
            "recovered",
            ItemStatus::Recovered {
                action: "recovered, then overwritten: value copied".into(),
            },
        ),
        outcome("identical", ItemStatus::Identical),
        outcome(
            "skipped",
            ItemStatus::Skipped {
                reason: "why".into(),
            },
        ),
        outcome(
            "failed",
            ItemStatus::Failed {
                error: "what".into(),
            },
        ),
    ];
    let plans = vec![
        PlannedAction::Create,
        PlannedAction::Overwrite {
            differs: vec![
                Difference::Value,
                Difference::ContentType,
                Difference::Tags,
                Difference::Attributes,
                Difference::KeyType,
                Difference::Operations,
                Difference::Certificate,
                Difference::Metadata,
                Difference::Tier,
            ],
        },
        PlannedAction::Identical,
        PlannedAction::Compare,
        PlannedAction::Skip {
            reason: "why".into(),
        },
        PlannedAction::Recover,
        PlannedAction::Purge,
        PlannedAction::Fail {
            reason: "why".into(),
        },
        PlannedAction::Extra,
    ];
    let verdicts = vec![
        Verdict::Identical,
        Verdict::Missing,
        Verdict::Different {
            differs: vec![Difference::Value, Difference::Tags],
        },
        Verdict::Extra,
        Verdict::Skipped {
            reason: "why".into(),
        },
        Verdict::Unverified {
            reason: "why".into(),
        },
    ];
    let resource = |items: Vec<ItemOutcome>| {
        let mut counts = ItemCounts::default();
        for item in &items {
            counts.add(&item.status);
        }
        ResourceReport {
            source_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/src"
                .into(),
            target_id: "/subscriptions/t/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/dst"
                .into(),
            resource_type: "Microsoft.KeyVault/vaults".into(),
            match_rule: MatchRule::Inventory,
            evidence: Evidence::default(),
            plugin: Some("key-vault"),
            mode: Mode::Replication,
            status: ResourceStatus::Succeeded,
            error: None,
            reason: None,
            facts: serde_json::Map::new(),
            counts,
            counts_by_kind: BTreeMap::from([("secret".to_owned(), counts)]),
            fidelity: None,
            plan: Vec::new(),
            items,
            duration_ms: 1,
        }
    };
    let planned = plans
        .into_iter()
        .enumerate()
        .map(|(index, plan)| outcome(&format!("plan-{index}"), ItemStatus::Planned { plan }))
        .collect();
    let verified = verdicts
        .into_iter()
        .enumerate()
        .map(|(index, verdict)| {
            outcome(
                &format!("verdict-{index}"),
                ItemStatus::Verified { verdict },
            )
        })
        .collect();
    let mut verified = resource(verified);
    verified.fidelity = Some(verified.counts.fidelity());
    let mut report = Report {
        report_version: REPORT_VERSION,
        atg_version: "[version]",
        mode: Mode::Replication,
        dry_run: false,
        verify: false,
        cloud: "AzureCloud".into(),
        inventory: "inventory.json".into(),
        started_at: "[time]".into(),
        duration_ms: 1,
        cancelled: false,
        credentials: Credentials {
            source: Some("environment"),
            target: Some("environment"),
        },
        totals: Totals::default(),
        retries: atg::azure::policies::RetryCounts::default(),
        refused_writes: 0,
        resources: vec![resource(items), resource(planned), verified],
        unmatched: Vec::new(),
        filtered_pairs: 0,
        inventory_warnings: Vec::new(),
    };
    report.compute_totals();
    let error = ErrorReport::new("what went wrong", &["what to do".to_owned()], 2);
    settings().bind(|| {
        insta::assert_snapshot!(
            "report_schema",
            format!(
                "{}\n--- exit 2 with --output json\n{}",
                serde_json::to_string_pretty(&report).unwrap(),
                serde_json::to_string_pretty(&error).unwrap()
            )
        );
    });
}
