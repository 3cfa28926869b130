//! Operations (issue 11): filters, the log file, periodic statistics, completions, man page.

use crate::common::*;

#[tokio::test]
async fn completions_for_every_shell_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = atg(&["completions".into(), shell.into()], &[]).await;
        assert_eq!(run.code, 0, "{shell}: {run}");
        for expected in ["deploy", "--dataplane-mode", "plugins"] {
            assert!(
                run.stdout.contains(expected),
                "{shell}: `{expected}` missing from the script"
            );
        }
    }
    let unknown = atg(&["completions".into(), "tcsh".into()], &[]).await;
    assert_eq!(unknown.code, 2, "{unknown}");
    assert!(unknown.stdout.is_empty(), "{unknown}");
}

#[tokio::test]
async fn the_man_page_is_roff_naming_every_flag_with_its_help() {
    let run = atg(&["man".into()], &[]).await;
    assert_eq!(run.code, 0, "{run}");
    // clap_mangen opens with the two lines defining the apostrophe string, then the title.
    let mut lines = run.stdout.lines();
    assert!(lines.next().unwrap().starts_with(".ie "), "{run}");
    assert!(lines.next().unwrap().starts_with(".el "), "{run}");
    assert!(lines.next().unwrap().starts_with(".TH atg 1"), "{run}");
    assert_eq!(
        run.stdout.matches("\n.TH ").count(),
        6,
        "atg, atg-deploy, atg-verify, atg-plugins, atg-completions, atg-man: one page each, not atg-help"
    );
    for expected in [
        "atg\\-deploy",
        "atg\\-verify",
        "\\-\\-dataplane\\-mode",
        "\\-\\-on\\-conflict",
        "\\-\\-concurrency",
        "Item operations in flight at once",
        "atg\\-plugins",
        "atg\\-completions",
    ] {
        assert!(
            run.stdout.contains(expected),
            "`{expected}` missing from the man page"
        );
    }
}

/// Three Key Vault pairs and one of a type no plugin handles.
fn filter_inventory(stack: &Stack) -> std::path::PathBuf {
    let mut resources: Vec<serde_json::Value> = ["one", "two", "three"]
        .iter()
        .map(|name| {
            let target = format!("dst-{name}");
            serde_json::json!({
                "source": kv_resource("source-sub", &format!("src-{name}"), None),
                "target": kv_resource("target-sub", &target, Some(format!("https://{target}.vault.azure.net/"))),
            })
        })
        .collect();
    let site = |sub: &str, name: &str| {
        serde_json::json!({
            "id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Cdn/profiles/{name}"),
            "type": "Microsoft.Cdn/profiles",
            "name": name,
        })
    };
    resources.push(serde_json::json!({"source": site("source-sub", "web-src"), "target": site("target-sub", "web-dst")}));
    stack.write_json(
        "inventory.json",
        &serde_json::json!({ "version": 1, "resources": resources }),
    )
}

#[tokio::test]
async fn filters_select_pairs_before_any_request_and_count_the_rest() {
    let stack = Stack::start().await;
    for name in ["one", "two", "three"] {
        stack
            .vault(&format!("src-{name}"))
            .set_secret("s", "v", None, None, true)
            .await
            .unwrap();
    }
    let inventory = filter_inventory(&stack);
    stack.emulator.clear_requests();
    // Types and names in any case; a target's full id selects its pair too.
    let run = stack
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "template",
                "--output",
                "json",
                "--include-type",
                "microsoft.keyvault/VAULTS",
                "--resource",
                "SRC-ONE",
                "--resource",
                "/subscriptions/target-sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/dst-three",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    let names: Vec<&str> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(report["filtered_pairs"], 2, "{run}");
    assert_eq!(report["resources"].as_array().unwrap().len(), 2, "{run}");
    assert!(
        run.stderr
            .contains("filtered: 2 pair(s) left out by filters"),
        "{run}"
    );
    let touched: std::collections::BTreeSet<String> = stack
        .requests()
        .into_iter()
        .filter_map(|r| r.vault)
        .collect();
    assert!(
        !touched.iter().any(|v| v.ends_with("-two")),
        "a filtered pair was contacted: {touched:?} ({names:?})"
    );
    assert!(
        touched.contains("dst-one") && touched.contains("dst-three"),
        "{touched:?}"
    );

    // --exclude-type leaves the unknown type out (and warns that no plugin handles it).
    let run = stack
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "template",
                "--output",
                "json",
                "--exclude-type",
                "Microsoft.Cdn/profiles",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.report()["filtered_pairs"], 1, "{run}");
    assert!(
        run.stderr
            .contains("--exclude-type `Microsoft.Cdn/profiles`: no plugin handles this type"),
        "{run}"
    );
}

#[tokio::test]
async fn a_filter_that_matches_nothing_exits_2_naming_it() {
    let stack = Stack::start().await;
    let inventory = filter_inventory(&stack);
    for (flag, value) in [
        ("--include-type", "Microsoft.Storage/storageAccounts"),
        ("--exclude-type", "Microsoft.KeyVault/vault"),
        ("--resource", "src-four"),
    ] {
        stack.emulator.clear_requests();
        let run = stack
            .deploy(&inventory, &["--dataplane-mode", "template", flag, value])
            .await;
        assert_eq!(run.code, 2, "{flag}: {run}");
        assert!(
            run.stderr.contains(&format!(
                "error: {flag} `{value}` matches no pair of inventory"
            )),
            "{run}"
        );
        assert!(
            run.stderr.contains(
                "hint: the pairs' types: Microsoft.Cdn/profiles, Microsoft.KeyVault/vaults"
            ),
            "{run}"
        );
        assert!(stack.requests().is_empty(), "{flag}: a request was sent");
    }
}

const LOG_SENTINEL: &str = "log-sentinel-Kp3wQ9-never-print-me";

#[tokio::test]
async fn the_log_file_holds_debug_and_the_request_trace_never_a_secret() {
    let stack = Stack::start().await;
    stack
        .vault("src-kv")
        .set_secret("s", LOG_SENTINEL, None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let log = stack.path("atg.log");
    // --quiet on the terminal: the file still gets everything.
    let run = stack
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "replication",
                "--quiet",
                "--log-file",
                log.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let text = std::fs::read_to_string(&log).unwrap();
    for expected in [
        "DEBUG atg::azure::credential: credential selected side=\"target\"",
        "TRACE atg::azure::policies: http request method=GET host=src-kv.vault.azure.net path=/secrets status=200",
        "method=PUT host=dst-kv.vault.azure.net path=/secrets/s status=200",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    assert!(!run.stderr.contains("http request"), "{run}");
    for secret in [LOG_SENTINEL, TARGET_SECRET, "Bearer", "eyJ", "\u{1b}["] {
        assert!(!text.contains(secret), "`{secret}` in the log file");
    }
}

#[tokio::test]
async fn a_log_file_that_cannot_be_written_exits_2_before_any_request() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let directory = stack.path("");
    let missing = stack.path("no-such-dir/atg.log");
    for (path, expected) in [
        (directory.to_str().unwrap(), "is a directory"),
        (missing.to_str().unwrap(), "cannot be written"),
    ] {
        stack.emulator.clear_requests();
        let run = stack
            .deploy(
                &inventory,
                &["--dataplane-mode", "template", "--log-file", path],
            )
            .await;
        assert_eq!(run.code, 2, "{run}");
        assert!(
            run.stderr
                .contains(&format!("error: --log-file `{path}` {expected}")),
            "{run}"
        );
        assert!(run.stderr.contains("hint: pass a file path"), "{run}");
        assert!(stack.requests().is_empty(), "a request was sent");
    }
}

#[tokio::test]
async fn a_non_terminal_gets_a_statistics_line_every_interval() {
    // 4 secrets at 200 ms an answer, one at a time: a run of several seconds.
    let stack = crate::cancel::slow_stack(4, 200).await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "replication",
                "--concurrency",
                "1",
                "--stats-interval",
                "1",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("atg: stats: "))
        .collect();
    assert!(lines.len() >= 2, "one line a second:\n{run}");
    for line in &lines {
        let rest = line.strip_prefix("atg: stats: ").unwrap();
        let (done, rest) = rest.split_once(" items done (").unwrap();
        let (rate, rest) = rest.split_once("/s), ").unwrap();
        done.parse::<u64>().unwrap();
        rate.parse::<f64>().unwrap();
        let (retries, resources) = rest.split_once(" retries, ").unwrap();
        assert_eq!(retries, "0", "{line}");
        assert!(
            ["0/1 resources", "1/1 resources"].contains(&resources),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|line| !line.starts_with("atg: stats: 0 items")),
        "the count moves: {lines:?}"
    );

    // 0 turns them off; --quiet too.
    for flags in [["--stats-interval", "0"], ["--stats-interval", "1"]] {
        let quiet = flags[1] == "1";
        let mut args = vec!["--dataplane-mode", "template", "--concurrency", "1"];
        args.extend(flags);
        if quiet {
            args.push("--quiet");
        }
        let run = stack.deploy(&inventory, &args).await;
        assert_eq!(run.code, 0, "{run}");
        assert!(!run.stderr.contains("atg: stats:"), "{run}");
    }
}
