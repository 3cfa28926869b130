//! Lost answers: the target vault carries out atg's writes but the answer never arrives (a reset,
//! a 500/503 or a timeout after the write took effect). Replication must still converge to exactly
//! the source's items, without duplicates, and a re-run must write nothing.

use atg_testkit::{LostAnswerKind, LostAnswerOptions};
use serde_json::json;

use crate::common::*;

/// A certificate's backing PFX as real Key Vault exported it (password-less, keyed with the
/// empty byte string): the source certificate is imported from it, so atg replicates a
/// certificate whose PFX came from Azure, not from the emulator.
const REAL_PFX: &str =
    include_str!("../../crates/atg-testkit/tests/fixtures/real-key-vault-export.pfx.b64");

/// The Key Vault tests' source (secrets of every kind, RSA and EC keys, a self-signed
/// certificate) plus a certificate imported from Key Vault's own PFX.
async fn seed_source(stack: &Stack) {
    crate::key_vault::seed_source(stack, "src-kv").await;
    let source = stack.vault("src-kv");
    let imported = source
        .raw(
            reqwest::Method::POST,
            "/certificates/azure-cert/import",
            Some(&json!({
                "value": REAL_PFX.trim(),
                "policy": { "key_props": { "exportable": true }, "secret_props": { "contentType": "application/x-pkcs12" } }
            })),
        )
        .await
        .unwrap();
    assert_eq!(imported.status, 200, "{:?}", imported.body);
}

/// Replicates `src-kv` into `dst-kv` while half of the target's write answers are lost.
async fn replicate_losing_answers() -> (Stack, std::path::PathBuf) {
    let stack = Stack::start().await;
    seed_source(&stack).await;
    stack.emulator.set_options(|options| {
        options.lost_answers = Some(LostAnswerOptions {
            rate: 0.5,
            kinds: LostAnswerKind::ALL.to_vec(),
            operations: Vec::new(),
            seed: 11,
            timeout_ms: 300,
        });
    });
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    stack
        .emulator
        .set_options(|options| options.lost_answers = None);
    let lost = stack
        .requests()
        .iter()
        .filter(|r| r.lost_answer.is_some())
        .count();
    assert!(lost > 0, "no answer was lost");
    assert_eq!(run.code, 0, "{run}");
    (stack, inventory)
}

async fn sorted_names(
    client: &atg_testkit::kv_rest::VaultRestClient,
    collection: &str,
) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all(&format!("/{collection}"))
        .await
        .unwrap()
        .iter()
        .map(name_of)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn replication_converges_when_answers_to_writes_are_lost() {
    let (stack, inventory) = replicate_losing_answers().await;

    // Exactly the source's items, read back with the plain REST client.
    let source = stack.vault("src-kv");
    let target = stack.vault("dst-kv");
    for collection in ["secrets", "keys", "certificates"] {
        assert_eq!(
            sorted_names(&target, collection).await,
            sorted_names(&source, collection).await,
            "{collection}"
        );
    }
    for name in ["plain", "typed", "versioned"] {
        let s = source.get_secret(name).await.unwrap().unwrap();
        let t = target.get_secret(name).await.unwrap().unwrap();
        assert_eq!(s["value"], t["value"], "{name}");
        assert_eq!(s["tags"], t["tags"], "{name}");
        assert_eq!(s["contentType"], t["contentType"], "{name}");
    }
    for name in ["self-cert", "azure-cert"] {
        let s = source.get_certificate(name).await.unwrap().unwrap();
        let t = target.get_certificate(name).await.unwrap().unwrap();
        assert_eq!(s["x5t"], t["x5t"], "{name}");
    }

    // A re-run finds everything in place and writes nothing.
    stack.emulator.clear_requests();
    let rerun = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(rerun.code, 0, "{rerun}");
    let writes: Vec<String> = stack
        .vault_writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(writes.is_empty(), "the re-run wrote: {writes:?}");
}

/// One version per key and certificate (a second key version is new key material, a second
/// certificate version a second import) and one per secret (the source's current value, once).
#[tokio::test]
async fn no_item_is_written_twice_when_answers_are_lost() {
    let (stack, _) = replicate_losing_answers().await;
    let target = stack.vault("dst-kv");
    let mut duplicated = Vec::new();
    for (collection, names) in [
        ("keys", &["rsa-key", "ec-key"][..]),
        ("certificates", &["self-cert", "azure-cert"][..]),
        ("secrets", &["plain", "typed", "versioned"][..]),
    ] {
        for name in names {
            let versions = target
                .list_all(&format!("/{collection}/{name}/versions"))
                .await
                .unwrap();
            if versions.len() != 1 {
                duplicated.push(format!("{collection}/{name}: {} versions", versions.len()));
            }
        }
    }
    assert!(
        duplicated.is_empty(),
        "written more than once: {duplicated:?}"
    );
}

/// Loses the answer of every write matching `operations` (as a 500) on the target vault.
fn lose_every_answer(stack: &Stack, operations: &[&str]) {
    stack.emulator.set_options(|options| {
        options.lost_answers = Some(LostAnswerOptions {
            rate: 1.0,
            kinds: vec![LostAnswerKind::InternalServerError],
            operations: operations.iter().map(|o| (*o).to_owned()).collect(),
            seed: 3,
            timeout_ms: 300,
        });
    });
}

/// A confirmed write needs no metadata update (PATCH) after it.
fn assert_no_metadata_writes(stack: &Stack) {
    let patches: Vec<_> = stack
        .vault_writes()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path)
        .collect();
    assert!(patches.is_empty(), "extra metadata writes: {patches:?}");
}

/// A source with an enabled secret and a disabled one with metadata (content type and tags).
async fn seed_enabled_and_disabled(stack: &Stack) {
    let source = stack.vault("src-kv");
    source
        .set_secret("on", "value-on", None, None, true)
        .await
        .unwrap();
    source
        .set_secret(
            "off",
            "value-off",
            Some("text/plain"),
            Some(&tags(&[("env", "prod")])),
            false,
        )
        .await
        .unwrap();
}

/// Runs `mode` from `src-kv` (an enabled and a disabled secret) to an empty `dst-kv` whose every
/// secret write loses its answer; the run must succeed.
async fn run_losing_every_secret_write(mode: &str) -> (Stack, Run) {
    let stack = Stack::start().await;
    seed_enabled_and_disabled(&stack).await;
    lose_every_answer(&stack, &["PUT secrets"]);
    stack.emulator.clear_requests();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(&inventory, &crate::key_vault::json_run(mode, &[], false))
        .await;
    assert_eq!(run.code, 0, "{run}");
    (stack, run)
}

/// Template mode reads no secret value, also when it checks whether a write with a lost answer
/// landed: its declared target permissions have no get-secret.
#[tokio::test]
async fn template_confirms_a_lost_write_from_metadata_alone() {
    let (stack, run) = run_losing_every_secret_write("template").await;
    assert!(stack.requests().iter().any(|r| r.lost_answer.is_some()));
    let value_reads = crate::key_vault::secret_value_reads(&stack, "dst-kv");
    assert!(
        value_reads.is_empty(),
        "template read target values: {value_reads:?}"
    );
    let report = run.report();
    for name in ["on", "off"] {
        let item = crate::key_vault::item(&report, name);
        assert_eq!(item["outcome"], "created", "{item}");
        assert_eq!(item["action"], "placeholder value", "{item}");
    }
    let target = stack.vault("dst-kv");
    assert_no_metadata_writes(&stack);
    let off = target.secret_versions("off").await.unwrap();
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0]["attributes"]["enabled"], false);
    assert_eq!(off[0]["contentType"], "text/plain");
}

/// A disabled source secret is written disabled; when that write's answer is lost its landing is
/// confirmed from the target's properties, not from what discovery saw (nothing).
#[tokio::test]
async fn replication_confirms_a_lost_disabled_write_from_its_properties() {
    let (stack, run) = run_losing_every_secret_write("replication").await;
    let report = run.report();
    let off = crate::key_vault::item(&report, "off");
    assert_eq!(off["outcome"], "partial", "{off}");
    assert_eq!(
        off["action"], "written disabled with a placeholder value",
        "{off}"
    );
    assert_no_metadata_writes(&stack);
    let versions = stack.vault("dst-kv").secret_versions("off").await.unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
}

/// A recovery or purge whose answer is lost is resent and finds its work done (404): the item
/// is recovered or purged all the same.
#[tokio::test]
async fn a_lost_answer_to_recover_or_purge_is_not_a_failure() {
    for (policy, operation, outcome) in [
        ("recover", "POST deletedsecrets", "recovered"),
        ("purge", "DELETE deletedsecrets", "created"),
    ] {
        let stack = Stack::start().await;
        crate::key_vault::seed_deleted_in_target(&stack).await;
        lose_every_answer(&stack, &[operation]);
        let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
        let run = stack
            .deploy(
                &inventory,
                &crate::key_vault::json_run("replication", &["--on-deleted", policy], false),
            )
            .await;
        assert_eq!(run.code, 0, "{policy}: {run}");
        assert!(
            stack.requests().iter().any(|r| r.lost_answer.is_some()),
            "{policy}: no answer was lost"
        );
        let report = run.report();
        let s1 = crate::key_vault::item(&report, "s1");
        assert_eq!(s1["outcome"], outcome, "{policy}: {s1}");
        let now = stack.vault("dst-kv").get_secret("s1").await.unwrap();
        assert_eq!(now.unwrap()["value"], "new-value", "{policy}");
    }
}

/// The write after a purge may lose its answer like any write: it is compared again, not
/// reported failed.
#[tokio::test]
async fn a_lost_answer_to_the_write_after_a_purge_is_confirmed() {
    let stack = Stack::start().await;
    crate::key_vault::seed_deleted_in_target(&stack).await;
    lose_every_answer(&stack, &["PUT secrets"]);
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy(
            &inventory,
            &crate::key_vault::json_run("replication", &["--on-deleted", "purge"], false),
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    let s1 = crate::key_vault::item(&report, "s1");
    assert_eq!(s1["outcome"], "created", "{s1}");
    assert!(s1["action"].as_str().unwrap().contains("purged"), "{s1}");
    let target = stack.vault("dst-kv");
    assert_eq!(target.secret_versions("s1").await.unwrap().len(), 1);
    assert_eq!(
        target.get_secret("s1").await.unwrap().unwrap()["value"],
        "new-value"
    );
}
