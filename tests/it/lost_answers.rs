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
