//! Key Vault end to end: the atg binary against the emulator, results read back with the
//! testkit's plain REST client (not atg's SDK clients).

use atg_testkit::{FaultKind, FaultOptions};
use serde_json::{json, Value};

use crate::common::*;

const SENTINEL: &str = "sentinel-Zq8vX1-never-print-me";

/// A source vault with the cases that matter: plain, typed+tagged, several versions, disabled,
/// an RSA key, an EC key and an exportable self-signed certificate.
async fn seed_source(stack: &Stack, vault: &str) {
    let source = stack.vault(vault);
    source
        .set_secret("plain", "value-1", None, None, true)
        .await
        .unwrap();
    source
        .set_secret(
            "typed",
            SENTINEL,
            Some("text/plain"),
            Some(&tags(&[("env", "prod")])),
            true,
        )
        .await
        .unwrap();
    for value in ["v1", "v2", "v3"] {
        source
            .set_secret("versioned", value, None, None, true)
            .await
            .unwrap();
    }
    source
        .set_secret("disabled", "cannot-read-me", None, None, false)
        .await
        .unwrap();
    source
        .create_key("rsa-key", "RSA", Some(2048), None)
        .await
        .unwrap();
    source
        .create_key("ec-key", "EC", None, Some("P-256"))
        .await
        .unwrap();
    source
        .create_certificate(
            "self-cert",
            &json!({
                "key_props": { "exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false },
                "secret_props": { "contentType": "application/x-pkcs12" },
                "x509_props": { "subject": "CN=atg-test", "validity_months": 12 },
                "issuer": { "name": "Self" }
            }),
        )
        .await
        .unwrap();
}

fn counts(report: &Value) -> &Value {
    &report["totals"]["items"]
}

#[tokio::test]
async fn replication_copies_values_and_metadata() {
    let stack = Stack::start().await;
    seed_source(&stack, "src-kv").await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");

    let source = stack.vault("src-kv");
    let target = stack.vault("dst-kv");
    for name in ["plain", "typed", "versioned"] {
        let s = source.get_secret(name).await.unwrap().unwrap();
        let t = target
            .get_secret(name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name} missing in target"));
        assert_eq!(s["value"], t["value"], "{name}");
        assert_eq!(s["contentType"], t["contentType"], "{name}");
        assert_eq!(s["tags"], t["tags"], "{name}");
    }
    // Only the current version is copied, and the report says how many were left.
    assert_eq!(target.secret_versions("versioned").await.unwrap().len(), 1);
    let report = run.report();
    let items = report["resources"][0]["items"].as_array().unwrap();
    let versioned = items.iter().find(|i| i["name"] == "versioned").unwrap();
    assert!(
        versioned["notes"][0]
            .as_str()
            .unwrap()
            .contains("2 older version(s) not copied"),
        "{versioned}"
    );

    // A disabled secret: written disabled with a placeholder, reported partial.
    let disabled = target
        .list_secrets()
        .await
        .unwrap()
        .into_iter()
        .find(|s| name_of(s) == "disabled")
        .unwrap();
    assert_eq!(disabled["attributes"]["enabled"], json!(false));
    let item = items.iter().find(|i| i["name"] == "disabled").unwrap();
    assert_eq!(item["status"], "partial", "{item}");

    // Keys: same shape, new material.
    for (name, public_part) in [("rsa-key", "n"), ("ec-key", "x")] {
        let s = source.get_key(name).await.unwrap().unwrap();
        let t = target
            .get_key(name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(s["key"]["kty"], t["key"]["kty"]);
        assert_eq!(s["key"]["crv"], t["key"]["crv"]);
        let (s_part, t_part) = (
            s["key"][public_part].as_str().unwrap(),
            t["key"][public_part].as_str().unwrap(),
        );
        assert_eq!(s_part.len(), t_part.len(), "{name}: same size");
        assert_ne!(s_part, t_part, "{name}: key material is never copied");
    }
    // The exportable certificate is imported: same thumbprint.
    let s = source.get_certificate("self-cert").await.unwrap().unwrap();
    let t = target
        .get_certificate("self-cert")
        .await
        .unwrap()
        .expect("certificate imported");
    assert_eq!(s["x5t"], t["x5t"]);
    assert_eq!(counts(&report)["failed"], 0, "{report}");
    assert_eq!(report["mode"], "replication");
}

#[tokio::test]
async fn template_writes_placeholders_and_reads_no_value() {
    let stack = Stack::start().await;
    seed_source(&stack, "src-kv").await;
    stack.emulator.clear_requests();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");

    let target = stack.vault("dst-kv");
    let typed = target.get_secret("typed").await.unwrap().unwrap();
    assert!(
        typed["value"]
            .as_str()
            .unwrap()
            .starts_with("atg-template-placeholder"),
        "{typed}"
    );
    assert_eq!(typed["contentType"], "text/plain");
    assert_eq!(typed["tags"]["env"], "prod");
    // No secret value was read from the source: no GET of a secret (only lists).
    let value_reads: Vec<_> = stack
        .requests()
        .into_iter()
        .filter(|r| {
            r.vault.as_deref() == Some("src-kv")
                && r.method == "GET"
                && r.path.starts_with("/secrets/")
                && !r.path.ends_with("/versions")
        })
        .collect();
    assert!(
        value_reads.is_empty(),
        "template read secret values: {value_reads:?}"
    );
    assert!(!run.stdout.contains(SENTINEL) && !run.stderr.contains(SENTINEL));
    // The self-signed certificate is created from its policy (new key pair).
    assert!(target.get_certificate("self-cert").await.unwrap().is_some());
}

#[tokio::test]
async fn dry_run_writes_nothing_and_plans_everything() {
    let stack = Stack::start().await;
    seed_source(&stack, "src-kv").await;
    stack.emulator.clear_requests();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "replication",
                "--dry-run",
                "--output",
                "json",
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert!(
        stack.vault_writes().is_empty(),
        "dry run wrote: {:?}",
        stack.vault_writes()
    );
    let report = run.report();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["refused_writes"], 0);
    // 4 secrets + 2 keys + 1 certificate discovered (the certificate's backing secret and key are
    // skipped as certificate-backed).
    assert_eq!(counts(&report)["planned"], 9, "{report}");
    assert!(stack
        .vault("dst-kv")
        .list_secrets()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_rerun_writes_nothing() {
    let stack = Stack::start().await;
    seed_source(&stack, "src-kv").await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let first = stack
        .deploy(&inventory, &["--dataplane-mode", "replication"])
        .await;
    assert_eq!(first.code, 0, "{first}");
    stack.emulator.clear_requests();
    let second = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(second.code, 0, "{second}");
    assert!(
        stack.vault_writes().is_empty(),
        "re-run wrote: {:?}",
        stack.vault_writes()
    );
    let report = second.report();
    assert_eq!(counts(&report)["replicated"], 0, "{report}");
    assert_eq!(counts(&report)["failed"], 0, "{report}");
}

#[tokio::test]
async fn one_forbidden_vault_fails_alone() {
    let stack = Stack::start_with(|options| {
        options.forbidden_vaults.insert("dst-b".into());
    })
    .await;
    stack
        .vault("src-a")
        .set_secret("s1", "a", None, None, true)
        .await
        .unwrap();
    stack
        .vault("src-b")
        .set_secret("s1", "b", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-a", "dst-a"), ("src-b", "dst-b")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        stack
            .vault("dst-a")
            .get_secret("s1")
            .await
            .unwrap()
            .unwrap()["value"],
        "a"
    );
    let report = run.report();
    let failed: Vec<&Value> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0]["target_id"].as_str().unwrap().ends_with("dst-b"));
    assert!(
        failed[0]["error"].as_str().unwrap().contains("403"),
        "{}",
        failed[0]
    );
}

#[tokio::test]
async fn injected_faults_are_retried_and_every_item_lands_once() {
    let stack = Stack::start().await;
    let source = stack.vault("src-kv");
    for index in 0..40 {
        source
            .set_secret(
                &format!("secret-{index}"),
                &format!("value-{index}"),
                None,
                None,
                true,
            )
            .await
            .unwrap();
    }
    stack.emulator.set_options(|options| {
        options.faults = Some(FaultOptions {
            rate: 0.1,
            kinds: FaultKind::ALL.to_vec(),
            seed: 7,
        });
    });
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    stack.emulator.set_options(|options| options.faults = None);
    let faulted = stack
        .requests()
        .iter()
        .filter(|r| r.fault.is_some())
        .count();
    assert!(faulted > 0, "no fault was injected");
    let target = stack.vault("dst-kv");
    for index in 0..40 {
        let name = format!("secret-{index}");
        assert_eq!(
            target.get_secret(&name).await.unwrap().unwrap()["value"],
            format!("value-{index}")
        );
        assert_eq!(
            target.secret_versions(&name).await.unwrap().len(),
            1,
            "{name} written more than once"
        );
    }
    let retries = &run.report()["retries"];
    let total = retries["throttled"].as_u64().unwrap()
        + retries["server_busy"].as_u64().unwrap()
        + retries["transport"].as_u64().unwrap();
    assert!(total > 0, "{retries}");
}

#[tokio::test]
async fn soft_deleted_names_are_recovered_purged_or_refused_as_asked() {
    for (policy, expected_code) in [("recover", 0), ("purge", 0), ("fail", 1)] {
        let stack = Stack::start().await;
        stack
            .vault("src-kv")
            .set_secret("s1", "new-value", None, None, true)
            .await
            .unwrap();
        let target = stack.vault("dst-kv");
        target
            .set_secret("s1", "old-value", None, None, true)
            .await
            .unwrap();
        target.delete_secret("s1").await.unwrap();
        let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
        let run = stack
            .deploy(
                &inventory,
                &[
                    "--dataplane-mode",
                    "replication",
                    "--on-deleted",
                    policy,
                    "--output",
                    "json",
                ],
            )
            .await;
        assert_eq!(run.code, expected_code, "{policy}: {run}");
        let now = target.get_secret("s1").await.unwrap();
        match policy {
            "recover" => {
                assert_eq!(now.unwrap()["value"], "new-value");
                // Recovered, then the new value written over it as a new version.
                assert_eq!(
                    target.secret_versions("s1").await.unwrap().len(),
                    2,
                    "{policy}"
                );
            }
            "purge" => {
                assert_eq!(now.unwrap()["value"], "new-value");
                assert_eq!(
                    target.secret_versions("s1").await.unwrap().len(),
                    1,
                    "{policy}"
                );
            }
            _ => assert!(now.is_none(), "fail must not touch the deleted secret"),
        }
    }
}

#[tokio::test]
async fn a_vault_uri_outside_the_cloud_is_refused() {
    let stack = Stack::start().await;
    let inventory = stack.write_json(
        "inventory.json",
        &json!({ "resources": [{
            "source": kv_resource("s", "src-kv", Some("https://src-kv.vault.azure.net.evil.example/".into())),
            "target": kv_resource("t", "dst-kv", None),
        }]}),
    );
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 1, "{run}");
    let report = run.report();
    assert!(
        report["resources"][0]["error"]
            .as_str()
            .unwrap()
            .contains("refusing to send credentials"),
        "{report}"
    );
    assert!(stack.requests().iter().all(|r| !r.host.contains("evil")));
}

#[tokio::test]
async fn secret_values_never_reach_output_at_any_verbosity() {
    let stack = Stack::start().await;
    stack
        .vault("src-kv")
        .set_secret("canary", SENTINEL, None, None, true)
        .await
        .unwrap();
    stack
        .vault("dst-kv")
        .set_secret("canary", "different", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let report_path = stack.path("report.json");
    let run = stack
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "replication",
                "-vv",
                "--output",
                "json",
                "--report",
                report_path.to_str().unwrap(),
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        stack
            .vault("dst-kv")
            .get_secret("canary")
            .await
            .unwrap()
            .unwrap()["value"],
        SENTINEL
    );
    let report_file = std::fs::read_to_string(&report_path).unwrap();
    for (place, text) in [
        ("stdout", &run.stdout),
        ("stderr", &run.stderr),
        ("report", &report_file),
    ] {
        assert!(
            !text.contains(SENTINEL),
            "the secret value leaked into {place}"
        );
        assert!(
            !text.contains(TARGET_SECRET),
            "the client secret leaked into {place}"
        );
        assert!(!text.contains("eyJ"), "a token leaked into {place}");
    }
    assert!(
        run.stderr.contains("DEBUG") || run.stderr.contains("TRACE"),
        "-vv produced no debug logs:\n{}",
        run.stderr
    );
}

#[tokio::test]
async fn separate_identities_serve_separate_tenants() {
    let stack = Stack::start_with(|options| {
        options
            .vault_tenants
            .insert("src-kv".into(), SOURCE_TENANT.into());
    })
    .await;
    stack
        .vault("src-kv")
        .set_secret("s1", "from-source-tenant", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    // One identity for both sides cannot read the source tenant's vault.
    let single = stack
        .deploy(&inventory, &["--dataplane-mode", "replication"])
        .await;
    assert_eq!(single.code, 1, "{single}");
    // The source side with its own principal works.
    let run = stack
        .deploy_with_env(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
            &[
                ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
                ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
                ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
                ("AZURE_DATAPLANE_SOURCE_CLIENT_ID", SOURCE_CLIENT),
                ("AZURE_DATAPLANE_SOURCE_CLIENT_SECRET", SOURCE_SECRET),
                ("AZURE_DATAPLANE_SOURCE_TENANT_ID", SOURCE_TENANT),
            ],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        stack
            .vault("dst-kv")
            .get_secret("s1")
            .await
            .unwrap()
            .unwrap()["value"],
        "from-source-tenant"
    );
    let report = run.report();
    assert!(
        report["credentials"]["source"]
            .as_str()
            .unwrap()
            .starts_with("explicit"),
        "{report}"
    );
}

#[tokio::test]
async fn the_china_cloud_uses_its_own_hosts_and_audiences() {
    let stack = Stack::start().await;
    let addr = stack.emulator.addr();
    let source = atg_testkit::kv_rest::VaultRestClient::with_parts(
        stack.emulator.ca_pem(),
        addr,
        "src-kv.vault.azure.cn",
        &atg_testkit::mint_token(TARGET_TENANT, "seeder", "https://vault.azure.cn"),
    )
    .unwrap();
    source
        .set_secret("s1", "china-value", None, None, true)
        .await
        .unwrap();
    let inventory = stack.write_json(
        "inventory.json",
        &json!({ "resources": [{ "source": kv_resource("s", "src-kv", None), "target": kv_resource("t", "dst-kv", None) }] }),
    );
    let args: Vec<String> = vec![
        "deploy".into(),
        "--dataplane".into(),
        "--dataplane-mode".into(),
        "replication".into(),
        "--cloud".into(),
        "AzureChinaCloud".into(),
        "--inventory".into(),
        inventory.display().to_string(),
        "--ca-cert".into(),
        stack.ca.display().to_string(),
        "--connect-to".into(),
        format!("vault.azure.cn={addr}"),
        "--connect-to".into(),
        format!("login.chinacloudapi.cn={addr}"),
        "--connect-to".into(),
        format!("management.chinacloudapi.cn={addr}"),
    ];
    let run = atg(
        &args,
        &[
            ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
            ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
            ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run}");
    let target = atg_testkit::kv_rest::VaultRestClient::with_parts(
        stack.emulator.ca_pem(),
        addr,
        "dst-kv.vault.azure.cn",
        &atg_testkit::mint_token(TARGET_TENANT, "reader", "https://vault.azure.cn"),
    )
    .unwrap();
    assert_eq!(
        target.get_secret("s1").await.unwrap().unwrap()["value"],
        "china-value"
    );
    let hosts: std::collections::BTreeSet<String> =
        stack.requests().into_iter().map(|r| r.host).collect();
    assert!(
        hosts.iter().all(|h| h.ends_with(".cn")),
        "a request left the China cloud: {hosts:?}"
    );
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("redirect-src", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 1, "{run}");
    let report = run.report();
    assert!(
        report["resources"][0]["error"]
            .as_str()
            .unwrap()
            .contains("307"),
        "{report}"
    );
    let followed: Vec<_> = stack
        .requests()
        .into_iter()
        .filter(|r| r.host.starts_with("redirected-"))
        .collect();
    assert!(followed.is_empty(), "a redirect was followed: {followed:?}");
}

#[tokio::test]
async fn template_never_replaces_key_material_or_certificates_in_the_target() {
    let stack = Stack::start().await;
    seed_source(&stack, "src-kv").await;
    let target = stack.vault("dst-kv");
    // The target already has a different key and a certificate of its own under the same names.
    target
        .create_key("rsa-key", "EC", None, Some("P-256"))
        .await
        .unwrap();
    target
        .create_certificate(
            "self-cert",
            &json!({
                "key_props": { "exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false },
                "secret_props": { "contentType": "application/x-pkcs12" },
                "x509_props": { "subject": "CN=the-real-one", "validity_months": 12 },
                "issuer": { "name": "Self" }
            }),
        )
        .await
        .unwrap();
    let key_before = target.get_key("rsa-key").await.unwrap().unwrap();
    let cert_before = target.get_certificate("self-cert").await.unwrap().unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        target.get_key("rsa-key").await.unwrap().unwrap()["key"]["kid"],
        key_before["key"]["kid"]
    );
    assert_eq!(
        target.get_certificate("self-cert").await.unwrap().unwrap()["x5t"],
        cert_before["x5t"]
    );
    let report = run.report();
    let items = report["resources"][0]["items"].as_array().unwrap();
    for name in ["rsa-key", "self-cert"] {
        let item = items.iter().find(|i| i["name"] == name).unwrap();
        assert_eq!(item["status"], "skipped", "{item}");
    }
}

#[tokio::test]
async fn a_disabled_source_secret_never_puts_a_placeholder_over_a_real_value() {
    let stack = Stack::start().await;
    stack
        .vault("src-kv")
        .set_secret("s1", "source-value", None, None, false)
        .await
        .unwrap();
    let target = stack.vault("dst-kv");
    target
        .set_secret("s1", "real-target-value", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let versions = target.secret_versions("s1").await.unwrap();
    assert_eq!(
        versions.len(),
        1,
        "no new version was written: {versions:?}"
    );
    assert_eq!(
        versions[0]["attributes"]["enabled"], false,
        "the disabled state was copied"
    );
    let item = &run.report()["resources"][0]["items"][0];
    assert_eq!(item["status"], "partial", "{item}");
}

#[tokio::test]
async fn one_source_paired_with_two_targets_reports_each_pair_on_its_own() {
    let stack = Stack::start().await;
    let source = stack.vault("src-kv");
    for index in 0..3 {
        source
            .set_secret(&format!("s{index}"), "v", None, None, true)
            .await
            .unwrap();
    }
    stack
        .vault("dst-b")
        .set_secret("s0", "v", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-a"), ("src-kv", "dst-b")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    for resource in report["resources"].as_array().unwrap() {
        let counts = &resource["counts"];
        assert_eq!(counts["discovered"], 3, "{resource}");
        assert_eq!(resource["items"].as_array().unwrap().len(), 3, "{resource}");
        let expected_replicated = if resource["target_id"].as_str().unwrap().ends_with("dst-b") {
            2
        } else {
            3
        };
        assert_eq!(counts["replicated"], expected_replicated, "{resource}");
    }
}
