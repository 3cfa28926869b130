//! The report's contract: outcomes and plans with one fixed shape each, a dry run honest about
//! overwrites (Key Vault), `--detailed-exitcode`, and exit-2 errors as JSON on stdout.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::*;
use crate::key_vault::{item, json_run};

const SECRET_VALUE: &str = "sentinel-report-Jw4q-never-print-me";

fn plans(report: &Value) -> BTreeMap<String, Value> {
    report["resources"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            assert_eq!(item["outcome"], "planned", "{item}");
            (item["name"].as_str().unwrap().to_owned(), item.clone())
        })
        .collect()
}

#[tokio::test]
async fn a_dry_run_plans_overwrite_or_identical_and_its_exit_code_says_whether_anything_would_change(
) {
    let stack = Stack::start().await;
    let source = stack.vault("src-kv");
    source
        .set_secret("s1", SECRET_VALUE, Some("text/plain"), None, true)
        .await
        .unwrap();
    source
        .set_secret("s2", "same", None, Some(&tags(&[("env", "prod")])), true)
        .await
        .unwrap();
    source
        .create_key("k1", "EC", None, Some("P-256"))
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let dry = |extra: &'static [&'static str]| json_run("replication", extra, true);
    let replicate = || json_run("replication", &[], false);
    let detailed: &[&str] = &["--detailed-exitcode"];

    // An empty target: everything would be created.
    let plan = stack
        .deploy(&inventory, &dry(&["--detailed-exitcode"]))
        .await;
    assert_eq!(plan.code, 3, "{plan}");
    for (name, planned) in plans(&plan.report()) {
        assert_eq!(planned["planned"], "create", "{name}: {planned}");
    }

    // Replicated: each item says it was created; `replicated` stays their sum.
    let run = stack.deploy(&inventory, &replicate()).await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    assert_eq!(report["report_version"], 2);
    for name in ["s1", "s2", "k1"] {
        assert_eq!(item(&report, name)["outcome"], "created", "{report}");
    }
    let totals = &report["totals"]["items"];
    assert_eq!(totals["created"], 3, "{totals}");
    assert_eq!(totals["overwritten"], 0, "{totals}");
    assert_eq!(totals["replicated"], 3, "{totals}");

    // The same on both sides: every item identical, nothing would change.
    let plan = stack.deploy(&inventory, &dry(detailed)).await;
    assert_eq!(plan.code, 0, "{plan}");
    for (name, planned) in plans(&plan.report()) {
        assert_eq!(planned["planned"], "identical", "{name}: {planned}");
    }

    // The target changes: a value, the tags, the key's type.
    let target = stack.vault("dst-kv");
    target
        .set_secret(
            "s1",
            "changed-in-the-target",
            Some("text/plain"),
            None,
            true,
        )
        .await
        .unwrap();
    target
        .set_secret("s2", "same", None, Some(&tags(&[("env", "test")])), true)
        .await
        .unwrap();
    target
        .create_key("k1", "RSA", Some(2048), None)
        .await
        .unwrap();
    stack.emulator.clear_requests();
    let plan = stack.deploy(&inventory, &dry(detailed)).await;
    assert_eq!(plan.code, 3, "{plan}");
    assert!(
        stack.vault_writes().is_empty(),
        "{:?}",
        stack.vault_writes()
    );
    assert!(
        !plan.stdout.contains(SECRET_VALUE) && !plan.stderr.contains(SECRET_VALUE),
        "a compared value was printed"
    );
    let planned = plans(&plan.report());
    assert_eq!(planned["s1"]["planned"], "overwrite", "{:?}", planned["s1"]);
    assert_eq!(planned["s1"]["differs"], serde_json::json!(["value"]));
    assert_eq!(planned["s2"]["differs"], serde_json::json!(["tags"]));
    assert_eq!(
        planned["k1"]["differs"][0], "key_type",
        "{:?}",
        planned["k1"]
    );
    // Without the flag, the same dry run succeeds with 0.
    let without_flag = stack.deploy(&inventory, &dry(&[])).await;
    assert_eq!(without_flag.code, 0, "{without_flag}");
    // With --on-conflict skip nothing would change; with fail the run would fail.
    let skip = stack
        .deploy(
            &inventory,
            &dry(&["--detailed-exitcode", "--on-conflict", "skip"]),
        )
        .await;
    assert_eq!(skip.code, 0, "{skip}");
    let skipped = plans(&skip.report());
    assert_eq!(skipped["s1"]["planned"], "skip", "{:?}", skipped["s1"]);
    assert!(
        skipped["s1"]["reason"]
            .as_str()
            .unwrap()
            .ends_with("(--on-conflict skip): value"),
        "{:?}",
        skipped["s1"]
    );
    let fail = stack
        .deploy(
            &inventory,
            &dry(&["--detailed-exitcode", "--on-conflict", "fail"]),
        )
        .await;
    assert_eq!(fail.code, 1, "{fail}");

    // Applied: what the target held is overwritten, and says so.
    let run = stack.deploy(&inventory, &replicate()).await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    for name in ["s1", "s2", "k1"] {
        assert_eq!(item(&report, name)["outcome"], "overwritten", "{report}");
    }
    assert_eq!(report["totals"]["items"]["overwritten"], 3);
    assert_eq!(report["totals"]["items"]["replicated"], 3);
    assert_eq!(
        target.get_secret("s1").await.unwrap().unwrap()["value"],
        SECRET_VALUE
    );
}

#[tokio::test]
async fn a_dry_run_of_a_resource_that_cannot_be_read_exits_1() {
    let stack = Stack::start_with(|options| {
        options.forbidden_vaults.insert("dst-kv".into());
    })
    .await;
    stack
        .vault("src-kv")
        .set_secret("s1", "v", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let args = json_run("replication", &["--detailed-exitcode"], true);
    let plan = stack.deploy(&inventory, &args).await;
    assert_eq!(plan.code, 1, "{plan}");
}

#[tokio::test]
async fn detailed_exitcode_needs_a_dry_run_and_errors_are_json_on_stdout() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &[
                "--detailed-exitcode",
                "--output",
                "json",
                "--dataplane-mode",
                "template",
            ],
        )
        .await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("error: --detailed-exitcode needs --dry-run"),
        "{run}"
    );
    assert!(stack.requests().is_empty(), "a request before refusing");
    let document = run.report();
    assert_eq!(document["report_version"], 2, "{document}");
    assert_eq!(document["exit_code"], 2, "{document}");
    assert_eq!(
        document["error"]["message"],
        "--detailed-exitcode needs --dry-run"
    );
    assert!(
        document["error"]["hints"][0]
            .as_str()
            .unwrap()
            .starts_with("add --dry-run"),
        "{document}"
    );

    // Human output keeps stdout empty.
    let human = stack
        .deploy(
            &inventory,
            &["--detailed-exitcode", "--dataplane-mode", "template"],
        )
        .await;
    assert_eq!(human.code, 2, "{human}");
    assert!(human.stdout.is_empty(), "{human}");

    // A flag clap refuses is a JSON document too, without echoing what was typed.
    let unknown = atg(
        &[
            "deploy".into(),
            "--output".into(),
            "json".into(),
            "--no-such-flag=secret-looking-text".into(),
        ],
        &[],
    )
    .await;
    assert_eq!(unknown.code, 2, "{unknown}");
    let document = unknown.report();
    assert_eq!(document["exit_code"], 2, "{document}");
    assert!(!unknown.stdout.contains("secret-looking-text"), "{unknown}");
}
