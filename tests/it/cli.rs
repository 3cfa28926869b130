//! The binary's contract without Azure: flags, inventories, credentials → exit codes and messages.

use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn malformed_inventories_exit_2_naming_the_problem() {
    let stack = Stack::start().await;
    let cases = [
        ("not-json.json", "{\"resources\": [", "is not valid JSON"),
        ("no-resources.json", "{}", "missing `resources` array"),
        ("bad-id.json", r#"{"resources":[{"source":{"id":"kv","type":"Microsoft.KeyVault/vaults","name":"kv"},"target":{"id":"kv","type":"Microsoft.KeyVault/vaults","name":"kv"}}]}"#, "resources[0] (source `kv`): source.id"),
        ("type-mismatch.json", &json!({"resources":[{"source": kv_resource("s","a",None), "target": {"id":"/subscriptions/t/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/b","type":"Microsoft.Storage/storageAccounts","name":"b"}}]}).to_string(), "differ"),
    ];
    for (file, text, expected) in cases {
        let path = stack.path(file);
        std::fs::write(&path, text).unwrap();
        let run = stack.deploy(&path, &["--dataplane-mode", "template"]).await;
        assert_eq!(run.code, 2, "{file}: {run}");
        assert!(
            run.stderr.contains(expected),
            "{file}: expected `{expected}` in:\n{}",
            run.stderr
        );
        assert!(
            run.stdout.is_empty(),
            "{file}: nothing on stdout when the run cannot start"
        );
    }
    let missing = stack.deploy(&stack.path("absent.json"), &[]).await;
    assert_eq!(missing.code, 2, "{missing}");
    assert!(
        missing.stderr.contains("cannot read inventory"),
        "{missing}"
    );
}

#[tokio::test]
async fn bad_flags_exit_2() {
    for args in [
        vec!["deploy", "--dataplane-mode", "everything"],
        vec![
            "deploy",
            "--cloud",
            "AzureGermanCloud",
            "--inventory",
            "x.json",
        ],
        vec!["deploy", "--concurrency", "0", "--inventory", "x.json"],
        vec![
            "deploy",
            "--connect-to",
            "nonsense",
            "--inventory",
            "x.json",
        ],
        vec![
            "deploy",
            "--inventory",
            "x.json",
            "--sp-client-id",
            "only-this",
        ],
    ] {
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let run = atg(&args, &[]).await;
        assert_eq!(run.code, 2, "{args:?}: {run}");
        assert!(run.stderr.contains("error"), "{args:?}: {run}");
    }
}

#[tokio::test]
async fn a_wrong_client_secret_exits_2_without_falling_through() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy_with_env(
            &inventory,
            &["--dataplane-mode", "template"],
            &[
                ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
                ("AZURE_DATAPLANE_CLIENT_SECRET", "wrong-secret-value"),
                ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
            ],
        )
        .await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("explicit service principal"), "{run}");
    assert!(
        !run.stderr.contains("wrong-secret-value"),
        "the secret leaked:\n{}",
        run.stderr
    );
    assert!(
        stack.requests().iter().all(|r| r.vault.is_none()),
        "no vault request without a credential"
    );
}

#[tokio::test]
async fn no_credential_at_all_lists_every_source_tried() {
    let stack = Stack::start().await;
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = stack
        .deploy_with_env(&inventory, &["--dataplane-mode", "template"], &[])
        .await;
    assert_eq!(run.code, 2, "{run}");
    for expected in [
        "explicit service principal",
        "environment service principal",
        "workload identity",
        "managed identity",
        "Azure CLI",
        "hint:",
    ] {
        assert!(
            run.stderr.contains(expected),
            "missing `{expected}` in:\n{}",
            run.stderr
        );
    }
}

#[tokio::test]
async fn plugins_lists_types_modes_and_roles_from_the_registry() {
    let run = atg(&["plugins".into()], &[]).await;
    assert_eq!(run.code, 0, "{run}");
    for expected in [
        "Microsoft.KeyVault/vaults",
        "template",
        "replication",
        "Key Vault Secrets User",
        "secrets/getSecret/action",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing `{expected}`:\n{}",
            run.stdout
        );
    }
    let run = atg(&["plugins".into(), "--output".into(), "json".into()], &[]).await;
    let plugins: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plugins[0]["resource_types"][0], "Microsoft.KeyVault/vaults");
}

#[tokio::test]
async fn colour_only_on_a_terminal_unless_asked() {
    let stack = Stack::start().await;
    stack
        .vault("src-kv")
        .set_secret("s1", "v", None, None, true)
        .await
        .unwrap();
    let inventory = stack.kv_inventory(&[("src-kv", "dst-kv")]);
    let run = |extra: &'static [&'static str], no_color: bool| {
        let inventory = inventory.clone();
        let stack = &stack;
        async move {
            let mut args = vec!["-v", "--no-progress"];
            args.extend_from_slice(extra);
            let mut env = TARGET_PRINCIPAL.to_vec();
            if no_color {
                env.push(("NO_COLOR", "1"));
            }
            let run = stack.deploy_with_env(&inventory, &args, &env).await;
            assert_eq!(run.code, 0, "{run}");
            // -v logs are there to be coloured or not.
            assert!(run.stderr.contains("DEBUG"), "{run}");
            run
        }
    };
    // stderr is a pipe here, as when redirected to a file.
    let piped = run(&[], false).await;
    assert!(!piped.stderr.contains('\x1b'), "{piped}");
    let always = run(&["--color", "always"], false).await;
    assert!(always.stderr.contains("\x1b["), "{always}");
    let no_color = run(&["--color", "auto"], true).await;
    assert!(!no_color.stderr.contains('\x1b'), "{no_color}");
    let never = run(&["--color", "never"], false).await;
    assert!(!never.stderr.contains('\x1b'), "{never}");
}
