//! Key Vault end to end: the atg binary against the emulator, results read back with the
//! testkit's plain REST client (not atg's SDK clients).

use serde_json::{json, Value};

use crate::common::*;

pub(crate) const SENTINEL: &str = "sentinel-Zq8vX1-never-print-me";

/// A source vault with the cases that matter: plain, typed+tagged, several versions, disabled,
/// an RSA key, an EC key and an exportable self-signed certificate.
pub(crate) async fn seed_source(stack: &Stack, vault: &str) {
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
    seed_keys_and_certificate(&source).await;
}

/// An RSA key, an EC key and an exportable self-signed certificate.
pub(crate) async fn seed_keys_and_certificate(source: &atg_testkit::kv_rest::VaultRestClient) {
    source
        .create_key("rsa-key", "RSA", Some(2048), None)
        .await
        .unwrap();
    source
        .create_key("ec-key", "EC", None, Some("P-256"))
        .await
        .unwrap();
    source
        .create_certificate("self-cert", &self_signed_policy("CN=atg-test"))
        .await
        .unwrap();
}

/// An exportable RSA certificate policy with issuer `Self`.
fn self_signed_policy(subject: &str) -> Value {
    json!({
        "key_props": { "exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false },
        "secret_props": { "contentType": "application/x-pkcs12" },
        "x509_props": { "subject": subject, "validity_months": 12 },
        "issuer": { "name": "Self" }
    })
}

fn counts(report: &Value) -> &Value {
    &report["totals"]["items"]
}

/// Key Vault's own replication cases (the rest is the conformance suite's): only a secret's
/// current version is copied and the report says how many were left; a disabled secret is
/// written disabled with a placeholder and reported partial.
#[tokio::test]
async fn replication_copies_the_current_version_and_writes_disabled_secrets_disabled() {
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
    let target = stack.vault("dst-kv");
    assert_eq!(
        target.get_secret("versioned").await.unwrap().unwrap()["value"],
        "v3"
    );
    assert_eq!(target.secret_versions("versioned").await.unwrap().len(), 1);
    let report = run.report();
    let versioned = item(&report, "versioned");
    assert!(
        versioned["notes"][0]
            .as_str()
            .unwrap()
            .contains("2 older version(s) not copied"),
        "{versioned}"
    );
    let disabled = target
        .list_secrets()
        .await
        .unwrap()
        .into_iter()
        .find(|s| name_of(s) == "disabled")
        .unwrap();
    assert_eq!(disabled["attributes"]["enabled"], json!(false));
    let outcome = item(&report, "disabled");
    assert_eq!(outcome["outcome"], "partial", "{outcome}");
    assert_eq!(counts(&report)["failed"], 0, "{report}");
}

/// The secret values a run read from `vault` (`GET /secrets/{name}[/{version}]`; lists aside).
pub(crate) fn secret_value_reads(stack: &Stack, vault: &str) -> Vec<String> {
    stack
        .requests()
        .into_iter()
        .filter(|r| {
            r.vault.as_deref() == Some(vault)
                && r.method == "GET"
                && r.path.starts_with("/secrets/")
                && !r.path.ends_with("/versions")
        })
        .map(|r| r.path)
        .collect()
}

/// `--dataplane-mode MODE --output json`, then `extra`, then `--dry-run` when asked.
pub(crate) fn json_run<'a>(mode: &'a str, extra: &[&'a str], dry_run: bool) -> Vec<&'a str> {
    let mut args = vec!["--dataplane-mode", mode, "--output", "json"];
    args.extend_from_slice(extra);
    if dry_run {
        args.push("--dry-run");
    }
    args
}

/// The report's item `name` of the first resource.
pub(crate) fn item<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["resources"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no item `{name}` in {report}"))
}

#[tokio::test]
async fn soft_deleted_names_are_recovered_purged_or_refused_as_asked() {
    for (policy, expected_code) in [("recover", 0), ("purge", 0), ("fail", 1)] {
        let stack = Stack::start().await;
        let source = stack.vault("src-kv");
        source
            .set_secret("s1", "new-value", None, None, true)
            .await
            .unwrap();
        source
            .create_key("k1", "RSA", Some(2048), None)
            .await
            .unwrap();
        let target = stack.vault("dst-kv");
        target
            .set_secret("s1", "old-value", None, None, true)
            .await
            .unwrap();
        target.delete_secret("s1").await.unwrap();
        // A key of the same shape: once recovered it is left as it is.
        target
            .create_key("k1", "RSA", Some(2048), None)
            .await
            .unwrap();
        let deleted = target
            .raw(reqwest::Method::DELETE, "/keys/k1", None)
            .await
            .unwrap();
        assert!(deleted.status.is_success(), "{:?}", deleted.status);
        let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
        let args = |dry_run| json_run("replication", &["--on-deleted", policy], dry_run);

        // The plan says what --on-deleted will do, before anything is written.
        stack.emulator.clear_requests();
        let plan = stack.deploy(&inventory, &args(true)).await;
        assert_eq!(plan.code, 0, "{policy}: {plan}");
        assert!(stack.vault_writes().is_empty(), "{policy}: dry run wrote");
        let planned = plan.report();
        for name in ["s1", "k1"] {
            let planned_item = item(&planned, name);
            assert_eq!(planned_item["outcome"], "planned", "{name}: {planned_item}");
            match policy {
                "fail" => {
                    assert_eq!(planned_item["planned"], "fail", "{name}: {planned_item}");
                    assert!(
                        planned_item["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains("--on-deleted fail")),
                        "{name}: {planned_item}"
                    );
                }
                _ => assert_eq!(planned_item["planned"], policy, "{name}: {planned}"),
            }
        }

        let run = stack.deploy(&inventory, &args(false)).await;
        assert_eq!(run.code, expected_code, "{policy}: {run}");
        let report = run.report();
        let (s1, k1) = (item(&report, "s1"), item(&report, "k1"));
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
                // One outcome per item: recovered, saying what followed.
                assert_eq!(s1["outcome"], "recovered", "{s1}");
                assert!(
                    s1["action"]
                        .as_str()
                        .unwrap()
                        .starts_with("recovered, then overwritten"),
                    "{s1}"
                );
                assert_eq!(k1["outcome"], "recovered", "{k1}");
                assert!(
                    k1["action"]
                        .as_str()
                        .unwrap()
                        .starts_with("recovered, then left as it was"),
                    "{k1}"
                );
                assert_eq!(counts(&report)["recovered"], 2, "{report}");
                assert_eq!(counts(&report)["skipped"], 0, "{report}");
                assert_eq!(report["resources"][0]["counts"]["recovered"], 2);
                assert!(
                    run.stderr.contains(", 2 recovered,"),
                    "the summary counts recovered items: {}",
                    run.stderr
                );
            }
            "purge" => {
                assert_eq!(now.unwrap()["value"], "new-value");
                assert_eq!(
                    target.secret_versions("s1").await.unwrap().len(),
                    1,
                    "{policy}"
                );
                for item in [s1, k1] {
                    // The name was deleted: the write after the purge creates it.
                    assert_eq!(item["outcome"], "created", "{item}");
                    assert!(
                        item["action"].as_str().unwrap().contains("purged"),
                        "{item}"
                    );
                }
                assert_eq!(counts(&report)["recovered"], 0, "{report}");
            }
            _ => {
                assert!(now.is_none(), "fail must not touch the deleted secret");
                assert!(target.get_key("k1").await.unwrap().is_none());
                for item in [s1, k1] {
                    assert_eq!(item["outcome"], "failed", "{item}");
                }
            }
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
    // Refused with the inventory, before any request (not even a token).
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(
            "resources[0] (source `src-kv`): source: vault URI `https://src-kv.vault.azure.net.evil.example` is not a AzureCloud Key Vault"
        ) && run.stderr.contains("refusing to send credentials"),
        "{run}"
    );
    assert!(stack.requests().is_empty(), "{:?}", stack.requests());
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
        .create_certificate("self-cert", &self_signed_policy("CN=the-real-one"))
        .await
        .unwrap();
    let key_before = target.get_key("rsa-key").await.unwrap().unwrap();
    let cert_before = target.get_certificate("self-cert").await.unwrap().unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    // The plan says the key is kept, as the run then does (with --on-conflict fail it would
    // fail: the policy comes first, as when applied).
    for (policy, planned) in [("overwrite", "skip"), ("fail", "fail")] {
        let plan = stack
            .deploy(
                &inventory,
                &json_run("template", &["--on-conflict", policy], true),
            )
            .await;
        let key = item(&plan.report(), "rsa-key").clone();
        assert_eq!(key["planned"], planned, "{policy}: {key}");
    }
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
        assert_eq!(item["outcome"], "skipped", "{item}");
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
    assert_eq!(item["outcome"], "partial", "{item}");
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

#[tokio::test]
async fn a_certificate_never_takes_over_a_plain_secret_or_key_of_its_name() {
    // (mode, --on-conflict, expected status)
    for (mode, policy, expected) in [
        ("template", "overwrite", "failed"),
        ("template", "skip", "skipped"),
        ("template", "fail", "failed"),
        ("template", "if-source-newer", "failed"),
        ("replication", "overwrite", "failed"),
    ] {
        let stack = Stack::start().await;
        let source = stack.vault("src-kv");
        for name in ["taken-secret", "taken-key"] {
            source
                .create_certificate(name, &self_signed_policy("CN=atg-collision"))
                .await
                .unwrap();
        }
        let target = stack.vault("dst-kv");
        target
            .set_secret("taken-secret", "the-user's-own-value", None, None, true)
            .await
            .unwrap();
        let key_before = target
            .create_key("taken-key", "EC", None, Some("P-256"))
            .await
            .unwrap();
        let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
        let args = |dry_run| json_run(mode, &["--on-conflict", policy], dry_run);

        // The dry run plans the same decision.
        let plan = stack.deploy(&inventory, &args(true)).await.report();
        let run = stack.deploy(&inventory, &args(false)).await;
        let report = run.report();
        assert_eq!(
            run.code,
            i32::from(expected == "failed"),
            "{mode} {policy}: {run}"
        );
        for (name, what) in [("taken-secret", "a secret"), ("taken-key", "a key")] {
            let planned = item(&plan, name);
            let outcome = item(&report, name);
            assert_eq!(outcome["outcome"], expected, "{mode} {policy}: {outcome}");
            let reason = outcome["error"]
                .as_str()
                .or(outcome["reason"].as_str())
                .unwrap();
            assert!(
                reason.contains(&format!("the target has {what} named `{name}`"))
                    && reason.contains("rename or delete it"),
                "{mode} {policy}: {reason}"
            );
            let planned_as = if expected == "failed" { "fail" } else { "skip" };
            assert_eq!(planned["planned"], planned_as, "{planned}");
            assert_eq!(planned["reason"].as_str(), Some(reason), "{planned}");
        }
        // The target's own secret and key are untouched; no certificate took their names.
        let versions = target.secret_versions("taken-secret").await.unwrap();
        assert_eq!(versions.len(), 1, "{mode} {policy}: {versions:?}");
        assert_eq!(
            target.get_secret("taken-secret").await.unwrap().unwrap()["value"],
            "the-user's-own-value"
        );
        assert!(target
            .list_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| name_of(k) != "taken-secret"));
        assert_eq!(
            target.get_key("taken-key").await.unwrap().unwrap()["key"]["kid"],
            key_before["key"]["kid"]
        );
        assert!(target.list_certificates().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn template_creates_an_imported_certificate_self_signed_from_its_policy() {
    let stack = Stack::start().await;
    // A PFX to import: the backing secret of a certificate made in a scratch vault.
    let scratch = stack.vault("scratch-kv");
    scratch
        .create_certificate("made", &self_signed_policy("CN=imported.example"))
        .await
        .unwrap();
    let pfx = scratch.get_secret("made").await.unwrap().unwrap()["value"].clone();
    let sans = json!({ "dns_names": ["imported.example", "www.imported.example"] });
    let source = stack.vault("src-kv");
    let imported = source
        .raw(
            reqwest::Method::POST,
            "/certificates/imported/import",
            Some(&json!({
                "value": pfx,
                "policy": {
                    "key_props": { "exportable": false },
                    "secret_props": { "contentType": "application/x-pkcs12" },
                    "x509_props": { "sans": sans }
                }
            })),
        )
        .await
        .unwrap();
    assert!(imported.status.is_success(), "{:?}", imported.body);
    let source_cert = source.get_certificate("imported").await.unwrap().unwrap();
    assert_eq!(source_cert["policy"]["issuer"]["name"], "Unknown");

    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(&inventory, &json_run("template", &[], false))
        .await;
    assert_eq!(run.code, 0, "{run}");
    let target = stack.vault("dst-kv");
    let cert = target
        .get_certificate("imported")
        .await
        .unwrap()
        .expect("created in the target");
    let policy = &cert["policy"];
    assert_eq!(policy["issuer"]["name"], "Self", "{policy}");
    assert_eq!(policy["x509_props"]["subject"], "CN=imported.example");
    assert_eq!(policy["x509_props"]["sans"], sans);
    assert_ne!(
        cert["x5t"], source_cert["x5t"],
        "a new self-signed certificate"
    );
    let report = run.report();
    let outcome = item(&report, "imported");
    assert_eq!(outcome["outcome"], "created", "{outcome}");
    assert!(
        outcome["action"]
            .as_str()
            .unwrap()
            .contains("issuer `Unknown`"),
        "{outcome}"
    );
    // Nothing but that certificate was written (no order with a CA: the only certificate
    // request is for it, self-signed).
    let writes: Vec<String> = stack
        .vault_writes()
        .into_iter()
        .filter(|r| r.vault.as_deref() == Some("dst-kv"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(writes, ["POST /certificates/imported/create"], "{writes:?}");
    // A re-run finds it the same.
    stack.emulator.clear_requests();
    let again = stack
        .deploy(&inventory, &json_run("template", &[], false))
        .await;
    assert_eq!(again.code, 0, "{again}");
    assert!(
        stack.vault_writes().is_empty(),
        "{:?}",
        stack.vault_writes()
    );
}

/// A source secret `s1` and the same secret deleted (recoverable) in the target.
pub(crate) async fn seed_deleted_in_target(stack: &Stack) {
    stack
        .vault("src-kv")
        .set_secret("s1", "new-value", None, None, true)
        .await
        .unwrap();
    let target = stack.vault("dst-kv");
    target
        .set_secret("s1", "new-value", None, None, true)
        .await
        .unwrap();
    target.delete_secret("s1").await.unwrap();
}

#[tokio::test]
async fn a_forbidden_listing_of_deleted_items_still_plans_and_recovers() {
    let stack = Stack::start_with(|options| {
        options.forbidden_paths.insert("/deletedsecrets".into());
    })
    .await;
    seed_deleted_in_target(&stack).await;
    let target = stack.vault("dst-kv");
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let plan = stack
        .deploy(&inventory, &json_run("replication", &[], true))
        .await;
    assert_eq!(plan.code, 0, "{plan}");
    let planned = plan.report();
    assert_eq!(item(&planned, "s1")["planned"], "create", "{planned}");
    let fact = planned["resources"][0]["facts"]["target_deleted_items"]
        .as_str()
        .unwrap_or_default();
    assert!(
        fact.contains("deleted secrets: forbidden"),
        "the plan says why: {planned}"
    );
    let run = stack
        .deploy(&inventory, &json_run("replication", &[], false))
        .await;
    assert_eq!(run.code, 0, "{run}");
    let outcome = item(&run.report(), "s1").clone();
    assert_eq!(outcome["outcome"], "recovered", "{outcome}");
    assert!(
        outcome["action"]
            .as_str()
            .unwrap()
            .starts_with("recovered, then left as it was: identical"),
        "{outcome}"
    );
    assert_eq!(target.secret_versions("s1").await.unwrap().len(), 1);
}
