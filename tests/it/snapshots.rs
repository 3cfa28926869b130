//! Snapshots of what people read: `--help`, `atg plugins` and a run's human summary, so a change
//! to them shows up in review. Durations are filtered out. Update with `cargo insta review` (or
//! `INSTA_UPDATE=always cargo test --test it snapshots`).

use serde_json::json;

use crate::common::*;

fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"in \d+\.\ds", "in [duration]");
    settings.set_prepend_module_to_snapshot(false);
    settings
}

#[tokio::test]
async fn help_and_plugins() {
    let help = atg(&["deploy".into(), "--help".into()], &[]).await;
    let plugins = atg(&["plugins".into()], &[]).await;
    settings().bind(|| {
        insta::assert_snapshot!(
            "deploy_help",
            format!("exit {}\n{}", help.code, help.stdout)
        );
        insta::assert_snapshot!(
            "plugins",
            format!("exit {}\n{}", plugins.code, plugins.stdout)
        );
    });
}

#[tokio::test]
async fn a_replication_summary() {
    let stack = Stack::start().await;
    let source = stack.vault("src-kv");
    source
        .set_secret("plain", "v", None, None, true)
        .await
        .unwrap();
    source
        .set_secret("off", "v", None, None, false)
        .await
        .unwrap();
    stack
        .vault("dst-kv")
        .set_secret("plain", "v", None, None, true)
        .await
        .unwrap();
    let inventory = stack.write_json(
        "inventory.json",
        &json!({ "resources": [
            { "source": kv_resource("s", "src-kv", None), "target": kv_resource("t", "dst-kv", None) },
            { "source": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet", "type": "Microsoft.Network/virtualNetworks", "name": "vnet"},
              "target": {"id": "/subscriptions/t/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet", "type": "Microsoft.Network/virtualNetworks", "name": "vnet"} }
        ]}),
    );
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--no-progress"],
        )
        .await;
    settings().bind(|| {
        insta::assert_snapshot!(
            "replication_summary",
            format!(
                "exit {}\n--- stdout\n{}--- stderr\n{}",
                run.code, run.stdout, run.stderr
            )
        );
    });
}
