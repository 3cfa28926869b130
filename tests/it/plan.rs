//! Plan files: `--dry-run --plan-out FILE`, then `--plan FILE` carrying out exactly what was
//! planned, refusing what changed since, and resuming from its journal. Read back with the
//! testkit's plain REST client.

use serde_json::Value;

use crate::common::*;
use crate::key_vault::SENTINEL;

/// `atg deploy --dry-run --plan-out plan` in replication mode.
pub(crate) async fn make_plan(stack: &Stack, inventory: &std::path::Path, plan: &std::path::Path) {
    let dry = stack
        .deploy(
            inventory,
            &[
                "--dry-run",
                "--dataplane-mode",
                "replication",
                "--plan-out",
                plan.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(dry.code, 0, "{dry}");
}

/// `atg deploy --plan plan --output json`: the run and its report.
pub(crate) async fn apply_plan(
    stack: &Stack,
    inventory: &std::path::Path,
    plan: &std::path::Path,
) -> (Run, Value) {
    let run = stack
        .deploy(
            inventory,
            &["--plan", plan.to_str().unwrap(), "--output", "json"],
        )
        .await;
    let report = run.report();
    (run, report)
}

/// Asserts that `item` (of a report) was refused because its source or target changed since
/// the plan: decided the same way, from another state.
pub(crate) fn assert_stale(item: &Value) {
    assert_eq!(item["outcome"], "failed", "{item}");
    assert!(
        item["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("stale: the source or the target changed since the plan"),
        "{item}"
    );
}

/// Makes a new plan (`plan-2.json`) and applies it at once: nothing changed in between, so it
/// is carried out whole (exit 0). Answers the report.
pub(crate) async fn apply_a_fresh_plan(stack: &Stack, inventory: &std::path::Path) -> Value {
    let plan = stack.path("plan-2.json");
    make_plan(stack, inventory, &plan).await;
    let (apply, report) = apply_plan(stack, inventory, &plan).await;
    assert_eq!(apply.code, 0, "{apply}");
    report
}

/// Asserts that none of `writes` (requests that changed something) touched `path`.
pub(crate) fn assert_not_written(writes: &[String], path: &str) {
    assert!(
        writes.iter().all(|w| !w.contains(path)),
        "{path}: {writes:?}"
    );
}

/// A source with three plain secrets, one holding the sentinel.
async fn seed(stack: &Stack) {
    let source = stack.vault("src-kv");
    for (name, value) in [("alpha", "a-1"), ("beta", "b-1"), ("gamma", SENTINEL)] {
        source
            .set_secret(name, value, None, None, true)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_plan_applies_what_it_decided_and_refuses_what_changed_since() {
    let stack = Stack::start().await;
    seed(&stack).await;
    let seeded = stack.vault_writes().len();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let plan = stack.path("plan.json");
    let plan_arg = plan.to_str().unwrap();
    make_plan(&stack, &inventory, &plan).await;
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(!text.contains(SENTINEL), "a value in the plan");
    let written: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(written["plan_version"], 1);
    assert_eq!(written["mode"], "replication");
    let items = written["resources"][0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{written}");
    assert!(items
        .iter()
        .all(|i| i["planned"] == "create" && i["fingerprint"].is_string()));
    assert_eq!(stack.vault_writes().len(), seeded);

    // Between plan and apply: the target gets `alpha` of its own, the source changes `beta`,
    // and a new source secret appears.
    let target = stack.vault("dst-kv");
    target
        .set_secret("alpha", "targets-own", None, None, true)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let source = stack.vault("src-kv");
    source
        .set_secret("beta", "b-2", None, None, true)
        .await
        .unwrap();
    source
        .set_secret("delta", "d-1", None, None, true)
        .await
        .unwrap();

    // The mode comes from the plan; nothing but `gamma` is written.
    let apply = stack
        .deploy(&inventory, &["--plan", plan_arg, "--output", "json"])
        .await;
    assert_eq!(apply.code, 1, "{apply}");
    let report = apply.report();
    assert_eq!(report["mode"], "replication");
    assert_eq!(
        report_item(&report, "secret", "gamma")["outcome"],
        "created"
    );
    let alpha = report_item(&report, "secret", "alpha");
    assert_eq!(alpha["outcome"], "failed", "{alpha}");
    assert!(
        alpha["error"]
            .as_str()
            .unwrap()
            .contains("planned `create`, now `overwrite`"),
        "{alpha}"
    );
    let beta = report_item(&report, "secret", "beta");
    assert!(
        beta["error"].as_str().unwrap().starts_with("stale: "),
        "{beta}"
    );
    let delta = report_item(&report, "secret", "delta");
    assert_eq!(delta["outcome"], "skipped", "{delta}");
    assert!(delta["reason"]
        .as_str()
        .unwrap()
        .starts_with("not in the plan"));
    assert_eq!(
        target.get_secret("alpha").await.unwrap().unwrap()["value"],
        "targets-own"
    );
    assert!(target.get_secret("beta").await.unwrap().is_none());
    assert!(target.get_secret("delta").await.unwrap().is_none());
    assert_eq!(
        target.get_secret("gamma").await.unwrap().unwrap()["value"],
        SENTINEL
    );
    assert!(!apply.stdout.contains(SENTINEL) && !apply.stderr.contains(SENTINEL));

    // Run again: `gamma` is recorded as applied and not done again; the stale ones stay refused.
    let again = stack
        .deploy(&inventory, &["--plan", plan_arg, "--output", "json"])
        .await;
    assert_eq!(again.code, 1, "{again}");
    let report = again.report();
    assert_eq!(report["totals"]["items"]["already_applied"], 1, "{report}");
    assert_eq!(report["totals"]["items"]["created"], 0, "{report}");
}

#[tokio::test]
async fn an_applied_plan_run_again_contacts_nothing_and_an_interrupted_one_resumes() {
    let stack = Stack::start().await;
    seed(&stack).await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let plan = stack.path("plan.json");
    let plan_arg = plan.to_str().unwrap();
    make_plan(&stack, &inventory, &plan).await;
    let apply = stack.deploy(&inventory, &["--plan", plan_arg]).await;
    assert_eq!(apply.code, 0, "{apply}");
    let journal = stack.path("plan.json.applied");
    let lines = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");

    // Everything applied: the vaults are not contacted at all.
    let before = stack.requests().len();
    let done = stack
        .deploy(&inventory, &["--plan", plan_arg, "--output", "json"])
        .await;
    assert_eq!(done.code, 0, "{done}");
    let report = done.report();
    assert_eq!(report["totals"]["items"]["already_applied"], 3, "{report}");
    let vault_requests = stack.requests()[before..]
        .iter()
        .filter(|r| r.host.contains("vault"))
        .count();
    assert_eq!(vault_requests, 0);

    // As if interrupted after the first item: only the others are looked at and written.
    let first = lines.lines().next().unwrap();
    std::fs::write(&journal, format!("{first}\n")).unwrap();
    let resumed = stack
        .deploy(&inventory, &["--plan", plan_arg, "--output", "json"])
        .await;
    assert_eq!(resumed.code, 0, "{resumed}");
    let report = resumed.report();
    assert_eq!(report["totals"]["items"]["already_applied"], 1, "{report}");
    assert_eq!(report["totals"]["items"]["identical"], 2, "{report}");
}

#[tokio::test]
async fn plan_flags_that_cannot_work_are_refused_before_any_request() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let plan = stack.path("plan.json");
    let plan_arg = plan.to_str().unwrap();
    let without_dry_run = stack.deploy(&inventory, &["--plan-out", plan_arg]).await;
    assert_eq!(without_dry_run.code, 2, "{without_dry_run}");
    assert!(without_dry_run
        .stderr
        .contains("--plan-out needs --dry-run"));
    std::fs::write(&plan, r#"{"plan_version": 7}"#).unwrap();
    let other_version = stack.deploy(&inventory, &["--plan", plan_arg]).await;
    assert_eq!(other_version.code, 2, "{other_version}");
    assert!(
        other_version.stderr.contains("plan version 7"),
        "{other_version}"
    );
    let both = stack
        .deploy(&inventory, &["--plan", plan_arg, "--dry-run"])
        .await;
    assert_eq!(both.code, 2, "{both}");
    assert!(stack.requests().is_empty());
}
