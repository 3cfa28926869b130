//! App Service and Function Apps end to end: the real binary against the emulator's
//! Microsoft.Web provider, sites seeded and read back with Microsoft's official management
//! client (`web_clients.py`, azure-mgmt-web), not with atg's code.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::common::*;
use crate::conformance::messaging::ArmRest;
use crate::plan::{apply_a_fresh_plan, apply_plan, assert_not_written, assert_stale, make_plan};

const SOURCE_SUB: &str = "11111111-aaaa-4aaa-8aaa-000000000001";
const TARGET_SUB: &str = "22222222-bbbb-4bbb-8bbb-000000000002";
/// A value that must never appear in atg's output.
const CANARY: &str = "canary-9f8e7d-app-setting-value";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/web_clients.py")
}

fn site_id(subscription: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Web/sites/{name}")
}

fn farm(subscription: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Web/serverfarms/plan"
    )
}

/// Runs `web_clients.py` against the emulator with a token it accepts. Asynchronously: the
/// emulator answers on this test's runtime.
async fn python(stack: &Stack, args: &[&str]) -> String {
    let token = atg_testkit::mint_token(
        TARGET_TENANT,
        "python-web-client",
        "https://management.azure.com",
    );
    let output = tokio::process::Command::new("python3")
        .arg(script())
        .args(args)
        .env("ATG_EMULATOR_ADDR", stack.emulator.addr().to_string())
        .env("ATG_EMULATOR_CA", &stack.ca)
        .env("ATG_EMULATOR_TOKEN", token)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "web_clients.py {} failed:\n{}\nhint: run scripts/setup.sh (azure-mgmt-web)",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn seed(stack: &Stack, spec: &Value) {
    let path = stack.write_json("web-seed.json", spec);
    python(stack, &["seed", path.to_str().unwrap()]).await;
}

async fn dump(stack: &Stack, site: &str) -> Value {
    serde_json::from_str(&python(stack, &["dump", site]).await).expect("dump is JSON")
}

/// A function exists only once code is deployed: the emulator seeds it (with a `default` key).
fn seed_function(stack: &Stack, site: &str, function: &str) {
    stack
        .emulator
        .seed_arm_resource(
            &format!("{site}/functions/{function}"),
            json!({ "properties": {} }),
        )
        .unwrap();
}

fn web_pair(source: &str, target: &str, options: Value) -> Value {
    let resource = |id: &str| json!({ "id": id, "type": "Microsoft.Web/sites", "name": id.rsplit('/').next().unwrap() });
    json!({ "source": resource(source), "target": resource(target), "options": options })
}

fn inventory(stack: &Stack, pairs: Vec<Value>) -> PathBuf {
    stack.write_json(
        "inventory.json",
        &json!({ "version": 1, "resources": pairs }),
    )
}

/// ARM requests that change something (every method but GET, and POSTs but list actions).
fn arm_writes(stack: &Stack) -> Vec<String> {
    stack
        .requests()
        .into_iter()
        .filter(|r| r.host == "management.azure.com" && r.method != "GET")
        .filter(|r| {
            let path = r.path.to_ascii_lowercase();
            !(r.method == "POST" && (path.ends_with("/list") || path.ends_with("/listkeys")))
        })
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn items<'a>(report: &'a Value, site: &str) -> Vec<&'a Value> {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["source"].as_str().unwrap_or_default().ends_with(site) || r.to_string().contains(site)
        })
        .flat_map(|r| r["items"].as_array().unwrap())
        .collect()
}

fn item<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["items"].as_array().unwrap())
        .find(|i| i["kind"] == kind && i["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {report:#}"))
}

async fn run(stack: &Stack, inventory: &Path, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["--output", "json"];
    all.extend(args);
    let run = stack.deploy(inventory, &all).await;
    let report = run.report();
    (run, report)
}

#[tokio::test]
async fn replication_merges_into_the_target_and_a_rerun_writes_nothing() {
    let stack = Stack::start().await;
    let source = site_id(SOURCE_SUB, "src-func");
    let target = site_id(TARGET_SUB, "tgt-func");
    seed(
        &stack,
        &json!({ "sites": [
            {
                "id": source, "kind": "functionapp", "location": "westeurope",
                "server_farm_id": farm(SOURCE_SUB),
                "app_settings": {
                    "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=src;AccountKey=c3JjLWtleQ==",
                    "FUNCTIONS_WORKER_RUNTIME": "node",
                    "Greeting": "hello",
                    "Canary": CANARY,
                    "DbPassword": "@Microsoft.KeyVault(SecretUri=https://src-kv.vault.azure.net/secrets/db/0123456789abcdef)",
                    "ByName": "@Microsoft.KeyVault(VaultName=src-kv;SecretName=api)",
                    "Elsewhere": "@Microsoft.KeyVault(VaultName=unpaired-kv;SecretName=x)",
                },
                "connection_strings": {
                    "db": { "value": format!("Server=tcp:src.database.windows.net;Password={CANARY}"), "type": "SQLAzure" },
                    "cache": { "value": "src.redis.cache.windows.net:6380", "type": "RedisCache" },
                },
                "site_config": { "always_on": true, "default_documents": ["home.html"], "cors": ["https://app.example"] },
                "slots": { "staging": {
                    "app_settings": { "Greeting": "hello from staging", "SlotOnly": "s" },
                    "connection_strings": { "db": { "value": "Server=tcp:staging", "type": "SQLServer" } },
                } },
                "sticky": { "app_setting_names": ["SlotOnly"], "connection_string_names": ["db"] },
            },
            {
                "id": target, "kind": "functionapp", "location": "northeurope",
                "server_farm_id": farm(TARGET_SUB),
                "app_settings": {
                    "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=tgt;AccountKey=dGd0LWtleQ==",
                    "FUNCTIONS_WORKER_RUNTIME": "dotnet",
                    "Greeting": "old",
                    "OnlyInTarget": "mine",
                },
                "sticky": { "app_setting_names": ["TargetSticky"] },
            },
        ] }),
    )
    .await;
    for function in ["HttpTrigger", "OnlyInSource"] {
        seed_function(&stack, &source, function);
    }
    seed_function(&stack, &target, "HttpTrigger");
    seed(
        &stack,
        &json!({ "sites": [], "keys": [{
            "site": source,
            "host": { "functionKeys": { "deploy": "host-key-value" } },
            "functions": { "HttpTrigger": { "caller": "function-key-value" } },
        }] }),
    )
    .await;
    let source_before = dump(&stack, &source).await;
    let mut pairs = vec![web_pair(&source, &target, json!({}))];
    pairs.push(json!({
        "source": kv_resource("source-sub", "src-kv", None),
        "target": kv_resource("target-sub", "tgt-kv", Some("https://tgt-kv.vault.azure.net/".into())),
    }));
    let inventory = inventory(&stack, pairs);

    let (first, report) = run(
        &stack,
        &inventory,
        &["--dataplane-mode", "replication", "-vv"],
    )
    .await;
    assert_eq!(first.code, 0, "{first}");
    assert!(
        !first.stdout.contains(CANARY) && !first.stderr.contains(CANARY),
        "a setting's value reached atg's output"
    );
    let after = dump(&stack, &target).await;
    let settings = &after["app_settings"];
    // The target's infrastructure and its own settings are kept; the rest merged in.
    assert_eq!(
        settings["AzureWebJobsStorage"],
        "DefaultEndpointsProtocol=https;AccountName=tgt;AccountKey=dGd0LWtleQ=="
    );
    assert_eq!(settings["FUNCTIONS_WORKER_RUNTIME"], "dotnet");
    assert_eq!(settings["OnlyInTarget"], "mine");
    assert_eq!(settings["Greeting"], "hello");
    assert_eq!(settings["Canary"], CANARY);
    // Key Vault references point at the paired target vault (latest version); others are kept.
    assert_eq!(
        settings["DbPassword"],
        "@Microsoft.KeyVault(SecretUri=https://tgt-kv.vault.azure.net/secrets/db/)"
    );
    assert_eq!(
        settings["ByName"],
        "@Microsoft.KeyVault(VaultName=tgt-kv;SecretName=api)"
    );
    assert_eq!(
        settings["Elsewhere"],
        "@Microsoft.KeyVault(VaultName=unpaired-kv;SecretName=x)"
    );
    // Connection strings keep their types.
    assert_eq!(
        after["connection_strings"],
        source_before["connection_strings"]
    );
    assert_eq!(after["connection_strings"]["cache"]["type"], "RedisCache");
    // The slot was created and filled; sticky names added to the target's own.
    assert_eq!(
        after["slots"]["staging"]["app_settings"],
        source_before["slots"]["staging"]["app_settings"]
    );
    assert_eq!(
        after["slots"]["staging"]["connection_strings"]["db"]["type"],
        "SQLServer"
    );
    assert_eq!(
        after["sticky"]["app_setting_names"],
        json!(["TargetSticky", "SlotOnly"])
    );
    assert_eq!(after["sticky"]["connection_string_names"], json!(["db"]));
    assert_eq!(after["site_config"], source_before["site_config"]);
    // Keys: the host key and the present function's keys copied; the absent function reported.
    assert_eq!(
        after["host_keys"]["function_keys"]["deploy"],
        source_before["host_keys"]["function_keys"]["deploy"]
    );
    assert_eq!(
        after["function_keys"]["HttpTrigger"],
        source_before["function_keys"]["HttpTrigger"]
    );
    assert_eq!(
        after["function_keys"]["HttpTrigger"]
            .as_object()
            .unwrap()
            .len(),
        2,
        "default and caller: {after}"
    );
    let absent = item(&report, "function-key", "OnlyInSource/default");
    assert_eq!(absent["outcome"], "skipped", "{absent}");
    assert!(
        absent["reason"]
            .as_str()
            .unwrap()
            .contains("does not exist in the target"),
        "{absent}"
    );
    // What was left is reported, by name only.
    let production = item(&report, "app-settings", "production");
    assert_eq!(production["outcome"], "overwritten", "{production}");
    let notes = production["notes"].to_string();
    assert!(
        notes.contains("`AzureWebJobsStorage`: the target's own infrastructure setting kept"),
        "{notes}"
    );
    assert!(
        notes.contains("`Elsewhere`: Key Vault reference to `unpaired-kv` kept"),
        "{notes}"
    );
    assert_eq!(item(&report, "slot", "staging")["outcome"], "created");

    // Run again: everything identical (or reported as before), not one write.
    stack.emulator.clear_requests();
    let (second, report) = run(&stack, &inventory, &["--dataplane-mode", "replication"]).await;
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(arm_writes(&stack), Vec::<String>::new(), "{report:#}");
    for item in items(&report, "tgt-func") {
        assert!(
            item["outcome"] == "identical" || item["name"] == "OnlyInSource/default",
            "{item}"
        );
    }
    assert_eq!(dump(&stack, &target).await, after);
}

#[tokio::test]
async fn template_writes_names_with_placeholders_never_over_real_values() {
    let stack = Stack::start().await;
    let source = site_id(SOURCE_SUB, "src-web");
    let target = site_id(TARGET_SUB, "tgt-web");
    seed(
        &stack,
        &json!({ "sites": [
            {
                "id": source, "kind": "app,linux", "location": "westeurope",
                "server_farm_id": farm(SOURCE_SUB),
                "app_settings": { "Shared": CANARY, "SourceOnly": CANARY },
                "connection_strings": { "db": { "value": CANARY, "type": "PostgreSQL" } },
                "slots": { "blue": { "app_settings": { "Colour": CANARY } } },
            },
            {
                "id": target, "kind": "app,linux", "location": "westeurope",
                "server_farm_id": farm(TARGET_SUB),
                "app_settings": { "Shared": "the target's real value" },
            },
        ] }),
    )
    .await;
    let inventory = inventory(&stack, vec![web_pair(&source, &target, json!({}))]);
    let before = dump(&stack, &target).await;

    // A dry run plans and writes nothing.
    stack.emulator.clear_requests();
    let (dry, report) = run(&stack, &inventory, &["--dry-run"]).await;
    assert_eq!(dry.code, 0, "{dry}");
    assert_eq!(arm_writes(&stack), Vec::<String>::new());
    assert_eq!(item(&report, "slot", "blue")["planned"], "create");
    assert_eq!(dump(&stack, &target).await, before);

    let (first, _) = run(&stack, &inventory, &[]).await;
    assert_eq!(first.code, 0, "{first}");
    let after = dump(&stack, &target).await;
    assert_eq!(after["app_settings"]["Shared"], "the target's real value");
    let placeholder = after["app_settings"]["SourceOnly"].as_str().unwrap();
    assert!(
        placeholder.starts_with("atg-template-placeholder"),
        "{placeholder}"
    );
    assert_eq!(after["connection_strings"]["db"]["type"], "PostgreSQL");
    assert_eq!(after["connection_strings"]["db"]["value"], placeholder);
    assert_eq!(
        after["slots"]["blue"]["app_settings"]["Colour"],
        placeholder
    );
    assert!(
        !after.to_string().contains(CANARY),
        "template mode copied a value"
    );

    stack.emulator.clear_requests();
    let (second, _) = run(&stack, &inventory, &[]).await;
    assert_eq!(second.code, 0, "{second}");
    assert_eq!(arm_writes(&stack), Vec::<String>::new());
}

#[tokio::test]
async fn infrastructure_settings_are_copied_only_when_a_pair_names_them() {
    let stack = Stack::start().await;
    let source = site_id(SOURCE_SUB, "src-pkg");
    let target = site_id(TARGET_SUB, "tgt-pkg");
    seed(
        &stack,
        &json!({ "sites": [
            {
                "id": source, "kind": "app", "location": "westeurope", "server_farm_id": farm(SOURCE_SUB),
                "app_settings": { "WEBSITE_RUN_FROM_PACKAGE": "1", "APPINSIGHTS_INSTRUMENTATIONKEY": "src" },
            },
            { "id": target, "kind": "app", "location": "westeurope", "server_farm_id": farm(TARGET_SUB) },
        ] }),
    )
    .await;
    // A name that is not an infrastructure setting is refused before any request.
    let refused = inventory(
        &stack,
        vec![web_pair(
            &source,
            &target,
            json!({ "copy_infrastructure_settings": ["Greeting"] }),
        )],
    );
    stack.emulator.clear_requests();
    let run_refused = stack
        .deploy(&refused, &["--dataplane-mode", "replication"])
        .await;
    assert_eq!(run_refused.code, 2, "{run_refused}");
    assert!(
        run_refused
            .stderr
            .contains("`Greeting` is not an infrastructure setting"),
        "{run_refused}"
    );
    assert!(stack.requests().is_empty(), "a request was sent");

    let asked = inventory(
        &stack,
        vec![web_pair(
            &source,
            &target,
            json!({ "copy_infrastructure_settings": ["website_run_from_package"] }),
        )],
    );
    let (copied, _) = run(&stack, &asked, &["--dataplane-mode", "replication"]).await;
    assert_eq!(copied.code, 0, "{copied}");
    let settings = &dump(&stack, &target).await["app_settings"];
    assert_eq!(settings["WEBSITE_RUN_FROM_PACKAGE"], "1");
    assert!(
        settings.get("APPINSIGHTS_INSTRUMENTATIONKEY").is_none(),
        "{settings}"
    );
}

#[tokio::test]
async fn a_forbidden_target_fails_its_pair_with_the_roles_and_the_other_pair_runs() {
    let stack = Stack::start().await;
    let source = site_id(SOURCE_SUB, "src-ok");
    let allowed = site_id(TARGET_SUB, "tgt-allowed");
    let forbidden = site_id(TARGET_SUB, "tgt-forbidden");
    let site = |id: &str, settings: Value| {
        json!({
            "id": id, "kind": "app", "location": "westeurope",
            "server_farm_id": farm(id.split('/').nth(2).unwrap()), "app_settings": settings,
        })
    };
    seed(
        &stack,
        &json!({ "sites": [
            site(&source, json!({ "Greeting": "hello" })),
            site(&allowed, json!({})),
            site(&forbidden, json!({})),
        ] }),
    )
    .await;
    stack.emulator.set_options(|options| {
        options
            .forbidden_arm_scopes
            .insert(forbidden.to_ascii_lowercase());
    });
    let inventory = inventory(
        &stack,
        vec![
            web_pair(&source, &allowed, json!({})),
            web_pair(&source, &forbidden, json!({})),
        ],
    );
    let (run, report) = run(&stack, &inventory, &["--dataplane-mode", "replication"]).await;
    assert_eq!(run.code, 1, "{run}");
    let refused = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target_id"] == forbidden.as_str())
        .unwrap();
    assert_eq!(refused["status"], "failed", "{refused}");
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("read the target site") && error.contains("403"),
        "{error}"
    );
    assert!(
        error.contains("hint:") && error.contains("Website Contributor"),
        "{error}"
    );
    stack
        .emulator
        .set_options(|options| options.forbidden_arm_scopes.clear());
    assert_eq!(
        dump(&stack, &allowed).await["app_settings"]["Greeting"],
        "hello"
    );
    assert_eq!(
        dump(&stack, &forbidden).await["app_settings"],
        json!({}),
        "nothing was written to the forbidden target"
    );
}

#[tokio::test]
async fn a_plan_refuses_a_site_configuration_changed_since_and_applies_the_rest() {
    let stack = Stack::start().await;
    let source = site_id(SOURCE_SUB, "src-web");
    let target = site_id(TARGET_SUB, "tgt-web");
    seed(
        &stack,
        &json!({ "sites": [
            {
                "id": source, "kind": "app", "location": "westeurope", "server_farm_id": farm(SOURCE_SUB),
                "app_settings": { "Greeting": "hello", "Canary": CANARY },
                "site_config": { "always_on": true, "default_documents": ["home.html"] },
            },
            {
                "id": target, "kind": "app", "location": "westeurope", "server_farm_id": farm(TARGET_SUB),
                "app_settings": { "Greeting": "old" },
            },
        ] }),
    )
    .await;
    let inventory = inventory(&stack, vec![web_pair(&source, &target, json!({}))]);
    let plan = stack.path("plan.json");
    make_plan(&stack, &inventory, &plan).await;
    let text = std::fs::read_to_string(&plan).unwrap();
    assert!(!text.contains(CANARY), "a value in the plan");

    // After the review, the source's default documents change: the site configuration is still
    // to be overwritten, from another state.
    let arm = ArmRest::at(&stack, "2024-11-01");
    let (status, answer) = arm
        .send(
            reqwest::Method::PATCH,
            &format!("{source}/config/web"),
            Some(&json!({ "properties": { "defaultDocuments": ["index.php"] } })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let before = dump(&stack, &target).await;
    stack.emulator.clear_requests();
    let (apply, report) = apply_plan(&stack, &inventory, &plan).await;
    assert_eq!(apply.code, 1, "{apply}");
    assert_stale(item(&report, "site-config", "production"));
    assert_eq!(
        item(&report, "app-settings", "production")["outcome"],
        "overwritten",
        "{report:#}"
    );
    assert_not_written(&arm_writes(&stack), "/config/web");
    let written = dump(&stack, &target).await;
    assert_eq!(written["app_settings"]["Greeting"], "hello");
    assert_eq!(written["site_config"], before["site_config"]);

    // A plan made now, and not changed since, is carried out whole.
    let report = apply_a_fresh_plan(&stack, &inventory).await;
    assert_eq!(
        item(&report, "site-config", "production")["outcome"],
        "overwritten"
    );
    let written = dump(&stack, &target).await;
    assert_eq!(
        written["site_config"]["default_documents"],
        json!(["index.php"])
    );
}
