//! Lost answers, Key Vault's own cases: the target vault carries out atg's writes but the answer
//! never arrives. That a replication still converges to exactly the source's items, each written
//! once, is the conformance suite's check (`conformance/`); here are recover, purge, template and
//! disabled-secret writes whose answers are lost.

use atg_testkit::{LostAnswerKind, LostAnswerOptions};

use crate::common::*;

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
