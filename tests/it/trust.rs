//! What atg trusts from the network: follow-up URLs stay on the client's own endpoint, messages
//! from servers are sanitized before they are shown, certificate and sign-in failures end at
//! once with their cause, and `-vv` traces each request without a secret.

use std::time::{Duration, Instant};

use atg_testkit::{Emulator, EmulatorOptions};
use serde_json::Value;

use crate::common::*;

/// Removes ANSI colour sequences (the log formatter styles field names).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch == '\u{1b}' {
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

async fn seed_secrets(stack: &Stack, vault: &str, count: usize) {
    let client = stack.vault(vault);
    for index in 0..count {
        client
            .set_secret(&format!("s{index:02}"), "value", None, None, true)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn next_links_off_the_vault_get_no_request_and_fail_the_listing() {
    let stack = Stack::start().await;
    // 30 secrets: the emulator (as Key Vault) pages at 25, so the listing has a nextLink.
    seed_secrets(&stack, "src-kv", 30).await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    for (origin, host) in [
        (
            "https://other-kv.vault.azure.net:443",
            "other-kv.vault.azure.net",
        ),
        (
            "https://src-kv.vault.azure.net:8443",
            "src-kv.vault.azure.net:8443",
        ),
        (
            "http://src-kv.vault.azure.net:443",
            "http://src-kv.vault.azure.net",
        ),
    ] {
        stack.emulator.clear_requests();
        stack
            .emulator
            .set_options(|options| options.follow_up_origin = Some(origin.into()));
        let run = stack
            .deploy(&inventory, &["--dry-run", "--output", "json"])
            .await;
        assert_eq!(run.code, 1, "{origin}: {run}");
        let report = run.report();
        let resource = &report["resources"][0];
        assert_eq!(resource["status"], "failed", "{origin}: {resource}");
        let error = resource["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(host) && error.contains("refused"),
            "{origin}: the error does not name the host: {error}"
        );
        assert!(!error.contains("skiptoken"), "{origin}: {error}");
        // Nothing of the listing was taken in: the resource has no items at all.
        let items = resource["items"].as_array().map_or(0, Vec::len);
        assert_eq!(items, 0, "{origin}: {resource}");
        let requests = stack.requests();
        assert!(
            requests.iter().all(|r| !r.query.contains("skiptoken")),
            "{origin}: the second page was requested: {requests:#?}"
        );
        assert!(
            requests.iter().all(|r| !r.bearer
                || r.host == "src-kv.vault.azure.net"
                || r.host == "dst-kv.vault.azure.net"),
            "{origin}: a token went elsewhere: {requests:#?}"
        );
    }
}

const ECHO: &str = "echo Authorization: {authorization}; copy https://acct.blob.core.windows.net/c/b?sv=2024-01-01&sig=SIGSENTINEL123; DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=ACCOUNTKEYSENTINEL==; client_secret=CLIENTSECRETSENTINEL";

#[tokio::test]
async fn credentials_echoed_in_server_errors_are_never_shown() {
    let stack = Stack::start_with(|options| {
        options.forbidden_vaults.insert("src-kv".into());
        options.error_message_echo = Some(ECHO.into());
    })
    .await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let (run, report_file) = stack
        .deploy_with_report(&inventory, &["-vv", "--output", "json"])
        .await;
    assert_eq!(run.code, 1, "{run}");
    assert!(
        stack
            .requests()
            .iter()
            .any(|r| r.status == Some(403) && r.bearer),
        "the emulator never answered the authorized request with 403"
    );
    for (place, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("report", &report_file),
    ] {
        for secret in [
            "eyJ",
            "SIGSENTINEL123",
            "ACCOUNTKEYSENTINEL",
            "CLIENTSECRETSENTINEL",
            TARGET_SECRET,
        ] {
            assert!(
                !text.contains(secret),
                "{secret} leaked into {place}:\n{text}"
            );
        }
        // The rest of the message is still there to act on.
        assert!(
            text.contains("Caller is not authorized") && text.contains("AccountName=acct"),
            "the service's message is missing from {place}:\n{text}"
        );
    }
}

/// Runs atg on one vault pair with the emulator as ARM, `vault_rule` as the vaults'
/// `--connect-to` and sign-in at `login_addr`; answers the run and how long it took.
async fn timed_run(
    stack: &Stack,
    pair: (&str, &str),
    vault_rule: String,
    login_addr: String,
) -> (Run, Duration) {
    let inventory = stack.kv_inventory(&[pair]);
    let args: Vec<String> = [
        "deploy",
        "--dataplane",
        "--inventory",
        inventory.to_str().unwrap(),
        "--ca-cert",
        stack.ca.to_str().unwrap(),
        "--connect-to",
        &vault_rule,
        "--connect-to",
        &format!("login.microsoftonline.com={login_addr}"),
        "--connect-to",
        &format!("management.azure.com={}", stack.emulator.addr()),
        "--output",
        "json",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let started = Instant::now();
    let run = atg(&args, &TARGET_PRINCIPAL).await;
    (run, started.elapsed())
}

/// The run failed, within a generous bound (retrying took 50 to 120 s), naming its cause in the
/// report or on stderr. The duration goes to the test output (seen with --nocapture).
#[allow(clippy::print_stderr)]
fn assert_failed_fast(case: &str, run: &Run, took: Duration, expected: &[&str]) {
    eprintln!("{case}: atg ended after {took:?}");
    assert_ne!(run.code, 0, "{run}");
    let report: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    let errors = format!("{}\n{}", report["resources"], run.stderr);
    assert!(
        expected.iter().all(|part| errors.contains(part)),
        "{case}: the cause is not named: {errors}"
    );
    assert!(
        took < Duration::from_secs(30),
        "{case}: took {took:?}, the failure was retried"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_fast_with_its_cause() {
    let stack = Stack::start().await;
    // Another TLS server whose certificate comes from a CA atg was not given.
    let stranger = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let (run, took) = timed_run(
        &stack,
        ("src-kv", "dst-kv"),
        format!("vault.azure.net={}", stranger.addr()),
        stack.emulator.addr().to_string(),
    )
    .await;
    assert_failed_fast(
        "untrusted certificate",
        &run,
        took,
        &["src-kv.vault.azure.net", "is not trusted", "--ca-cert"],
    );
}

#[tokio::test]
async fn an_unreachable_sign_in_host_fails_fast_with_its_cause() {
    let stack = Stack::start().await;
    // A port nothing listens on: connections are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let (run, took) = timed_run(
        &stack,
        ("src-kv", "dst-kv"),
        format!("vault.azure.net={}", stack.emulator.addr()),
        closed_addr.to_string(),
    )
    .await;
    assert_failed_fast(
        "refused sign-in host",
        &run,
        took,
        &["login.microsoftonline.com", "refused the connection"],
    );
}

#[tokio::test]
async fn a_vault_name_that_does_not_resolve_fails_fast_with_its_cause() {
    let stack = Stack::start().await;
    // No --connect-to covers these vaults, so their names go to DNS: none in the test's network
    // namespace, and no such vault in Azure either.
    let (run, took) = timed_run(
        &stack,
        ("atg-nx-src-9f3k2", "atg-nx-dst-9f3k2"),
        format!("unused.vault.azure.net={}", stack.emulator.addr()),
        stack.emulator.addr().to_string(),
    )
    .await;
    assert_failed_fast(
        "unresolvable vault name",
        &run,
        took,
        &["atg-nx-src-9f3k2.vault.azure.net", "could not be resolved"],
    );
}

#[tokio::test]
async fn trace_shows_each_request_without_query_headers_or_bodies() {
    let stack = Stack::start().await;
    stack
        .vault("src-kv")
        .set_secret("traced", "trace-sentinel-value", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(&inventory, &["--dataplane-mode", "replication", "-vv"])
        .await;
    assert_eq!(run.code, 0, "{run}");
    let stderr = plain(&run.stderr);
    let requests: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("http request"))
        .collect();
    for expected in [
        "method=GET host=src-kv.vault.azure.net path=/secrets status=200",
        "method=PUT host=dst-kv.vault.azure.net path=/secrets/traced status=200",
        "method=POST host=login.microsoftonline.com",
        "status=401",
    ] {
        assert!(
            requests.iter().any(|line| line.contains(expected)),
            "no trace line with `{expected}`:\n{stderr}"
        );
    }
    assert!(
        requests
            .iter()
            .all(|line| line.contains("duration_ms=") && line.contains("attempt=")),
        "{stderr}"
    );
    for secret in [
        "eyJ",
        "api-version",
        "?",
        "trace-sentinel-value",
        TARGET_SECRET,
        "Bearer",
    ] {
        assert!(
            !requests.iter().any(|line| line.contains(secret)),
            "`{secret}` in a trace line:\n{stderr}"
        );
    }
}
