//! Storage accounts end to end: the atg binary against Azurite (behind the testkit's gateway,
//! which answers on production host names), results read back with Microsoft's Python SDKs
//! (`storage_clients.py`), not with atg's code.
//!
//! Needs Azurite (`scripts/azurite.sh install`) and the Python packages azure-storage-blob,
//! azure-storage-queue and azure-data-tables; a test fails with a hint when one is missing.

use std::path::PathBuf;

use atg_testkit::azurite::{Azurite, AzuriteAccount};
use atg_testkit::storage_gateway::{LostAnswer, LostAnswers, StorageGateway};
use atg_testkit::FaultOptions;
use serde_json::{json, Value};

use crate::common::*;

const SOURCE: &str = "srcacct";
const TARGET: &str = "dstacct";
const SENTINEL_KEY_MARKER: &str = "sig=";

pub struct StorageStack {
    pub stack: Stack,
    pub azurite: Azurite,
    pub gateway: StorageGateway,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/storage_clients.py")
}

impl StorageStack {
    pub async fn start() -> StorageStack {
        Self::start_with_faults(None).await
    }

    pub async fn start_with_faults(faults: Option<FaultOptions>) -> StorageStack {
        Self::start_with(faults, true).await
    }

    /// `target_keys`: whether ARM's listKeys answers for the target account (403 otherwise).
    pub async fn start_with(faults: Option<FaultOptions>, target_keys: bool) -> StorageStack {
        Self::start_accounts(SOURCE, &[TARGET], faults, target_keys).await
    }

    /// Azurite with the account `source` (ARM subscription `source-sub`) and `targets`
    /// (`target-sub`); `target_keys`: whether ARM's listKeys answers for the targets (403
    /// otherwise).
    pub async fn start_accounts(
        source: &str,
        targets: &[&str],
        faults: Option<FaultOptions>,
        target_keys: bool,
    ) -> StorageStack {
        let stack = Stack::start().await;
        let accounts: Vec<AzuriteAccount> = std::iter::once(source)
            .chain(targets.iter().copied())
            .map(AzuriteAccount::named)
            .collect();
        let azurite = Azurite::start(&stack.emulator, &accounts)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let gateway = StorageGateway::start(&stack.emulator, &azurite, faults)
            .await
            .expect("gateway starts");
        // ARM knows every account and lists its keys (none for the targets without
        // `target_keys`: listKeys then answers 403).
        let key = azurite.account(source).unwrap().key.clone();
        stack
            .emulator
            .seed_storage_keys("source-sub", "rg", source, vec![key]);
        for target in targets {
            let keys = if target_keys {
                vec![azurite.account(target).unwrap().key.clone()]
            } else {
                Vec::new()
            };
            stack
                .emulator
                .seed_storage_keys("target-sub", "rg", target, keys);
        }
        StorageStack {
            stack,
            azurite,
            gateway,
        }
    }

    pub fn python(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("python3")
            .arg(script())
            .args(args)
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "storage_clients.py {} failed:\n{}\nhint: pip install azure-storage-blob azure-storage-queue azure-data-tables",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn seed(&self, account: &str, spec: &Value) {
        let path = self.stack.write_json(&format!("seed-{account}.json"), spec);
        let conn = self.azurite.connection_string(account);
        let ca = self.azurite.ca_path.display().to_string();
        self.python(&["seed", &conn, &ca, &path.display().to_string()]);
    }

    pub fn dump(&self, account: &str) -> Value {
        let conn = self.azurite.connection_string(account);
        let ca = self.azurite.ca_path.display().to_string();
        serde_json::from_str(&self.python(&["dump", &conn, &ca])).expect("dump is JSON")
    }

    pub fn inventory(&self, options: Value) -> PathBuf {
        self.inventory_for(SOURCE, TARGET, options, json!({}))
    }

    pub fn inventory_for(
        &self,
        source: &str,
        target: &str,
        options: Value,
        target_properties: Value,
    ) -> PathBuf {
        self.inventory_of(&[(source, target)], &options, &target_properties)
    }

    /// An inventory of storage account pairs, each with `options` and the target's
    /// `target_properties`.
    pub fn inventory_of(
        &self,
        pairs: &[(&str, &str)],
        options: &Value,
        target_properties: &Value,
    ) -> PathBuf {
        let resource = |sub: &str, name: &str, properties: &Value| {
            json!({
                "id": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{name}"),
                "type": "Microsoft.Storage/storageAccounts",
                "name": name,
                "properties": properties.to_string(),
            })
        };
        let resources: Vec<Value> = pairs
            .iter()
            .map(|(source, target)| {
                json!({
                    "source": resource("source-sub", source, &json!({})),
                    "target": resource("target-sub", target, target_properties),
                    "options": options,
                })
            })
            .collect();
        self.stack.write_json(
            "storage-inventory.json",
            &json!({ "version": 1, "resources": resources }),
        )
    }

    pub async fn deploy(&self, inventory: &std::path::Path, args: &[&str]) -> Run {
        let mut all: Vec<String> = self.gateway.connect_to_args();
        all.extend(args.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.stack.deploy(inventory, &refs).await
    }

    /// The whole `atg deploy` command line [`Self::deploy`] runs, for a run the test drives itself.
    pub fn deploy_args(&self, inventory: &std::path::Path, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec![
            "deploy".into(),
            "--dataplane".into(),
            "--inventory".into(),
            inventory.display().to_string(),
        ];
        all.extend(self.stack.transport_args());
        all.extend(self.gateway.connect_to_args());
        all.extend(args.iter().map(|s| (*s).to_owned()));
        all
    }

    /// How many blobs a container holds, listed straight from Azurite with plain REST and a
    /// bearer token of our own: neither atg nor the gateway is involved. 0 when the container
    /// does not exist (yet).
    pub async fn count_blobs(&self, account: &str, container: &str) -> usize {
        let ca = std::fs::read(&self.azurite.ca_path).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let token =
            atg_testkit::mint_token(TARGET_TENANT, TARGET_CLIENT, "https://storage.azure.com");
        let (mut count, mut marker) = (0, String::new());
        loop {
            let mut url = url::Url::parse(&format!(
                "https://127.0.0.1:{}/{account}/{container}",
                self.azurite.blob.port()
            ))
            .unwrap();
            url.query_pairs_mut()
                .append_pair("restype", "container")
                .append_pair("comp", "list")
                .append_pair("maxresults", "5000")
                .append_pair("marker", &marker);
            let response = client
                .get(url)
                .bearer_auth(&token)
                .header("x-ms-version", "2021-08-06")
                .send()
                .await
                .unwrap();
            if response.status() == 404 {
                return 0;
            }
            assert!(response.status().is_success(), "list blobs: {response:?}");
            let body = response.text().await.unwrap();
            count += body.matches("<Blob>").count();
            marker = body
                .split_once("<NextMarker>")
                .and_then(|(_, rest)| rest.split_once("</NextMarker>"))
                .map(|(next, _)| next.to_owned())
                .unwrap_or_default();
            if marker.is_empty() {
                return count;
            }
        }
    }

    /// `atg deploy` in replication mode with the JSON report.
    pub async fn replicate(&self, inventory: &std::path::Path) -> Run {
        self.deploy(
            inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await
    }

    /// Runs a replication again and checks that it wrote nothing to the target.
    pub async fn rerun_writes_nothing(&self, inventory: &std::path::Path) -> Run {
        self.gateway.clear_requests();
        let again = self.replicate(inventory).await;
        assert_eq!(again.code, 0, "{again}");
        let writes = self.target_writes();
        assert!(writes.is_empty(), "a re-run wrote: {writes:#?}");
        again
    }

    /// Requests atg sent that change the target account.
    pub fn target_writes(&self) -> Vec<atg_testkit::storage_gateway::GatewayRequest> {
        self.writes_to(TARGET)
    }

    /// Requests atg sent that change `account`.
    pub fn writes_to(&self, account: &str) -> Vec<atg_testkit::storage_gateway::GatewayRequest> {
        self.gateway
            .requests()
            .into_iter()
            .filter(|r| {
                r.host.starts_with(&format!("{account}."))
                    && r.method != "GET"
                    && r.method != "HEAD"
            })
            .collect()
    }
}

/// A source with the cases that matter: typed blobs with metadata, tags and tiers, a page blob,
/// an append blob, an archived blob, a public container with a stored access policy, a queue
/// with messages, a table with typed entities over two partitions.
pub(crate) fn source_spec() -> Value {
    json!({
        "containers": [
            { "name": "docs", "metadata": { "owner": "team-a" }, "public_access": "blob",
              "policies": [{ "id": "readers", "permission": "rl" }, { "id": "writers", "permission": "racwdl" }],
              "blobs": [
                { "name": "readme.txt", "size": 1000, "content_type": "text/plain", "content_language": "en",
                  "cache_control": "max-age=60", "metadata": { "origin": "seed" }, "tags": { "env": "prod", "team": "a b" } },
                { "name": "dir/nested/data.bin", "size": 70000, "content_type": "application/octet-stream", "tier": "Cool" },
                { "name": "empty", "size": 0 },
                { "name": "name with spaces & ünïcode.txt", "size": 10 },
                { "name": "disk.vhd", "type": "PageBlob", "size": 4096 },
                { "name": "log.txt", "type": "AppendBlob", "size": 300 },
                { "name": "cold.dat", "size": 64, "tier": "Archive" }
              ]},
            { "name": "empty-container", "metadata": {}, "blobs": [] }
        ],
        "queues": [ { "name": "jobs", "metadata": { "purpose": "work" }, "policies": ["workers"], "messages": ["one", "two"] } ],
        "tables": [ { "name": "people", "policies": ["tablereaders"], "entities": [
            { "PartitionKey": "p1", "RowKey": "r1", "Name": "ada", "Age": ["Int32", 36], "Big": ["Int64", "9007199254740993"],
              "Score": ["Double", 1.5], "Active": true, "Born": ["DateTime", "1815-12-10T00:00:00+00:00"],
              "Id": ["Guid", "6f9619ff-8b86-d011-b42d-00c04fc964ff"], "Blob": ["Binary", "AAECAw=="] },
            { "PartitionKey": "p1", "RowKey": "r2", "Name": "grace" },
            { "PartitionKey": "p2", "RowKey": "r1", "Name": "linus", "Age": ["Int32", 54] }
        ]}]
    })
}

fn resource(report: &Value) -> &Value {
    &report["resources"][0]
}

fn item<'a>(report: &'a Value, kind: &str, name: &str) -> &'a Value {
    resource(report)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == kind && i["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {report:#}"))
}

/// The target must equal the source, except the archived blob (reported, not copied) and queue
/// messages (structure only).
fn assert_replicated(source: &Value, target: &Value) {
    let mut expected = source.clone();
    expected["containers"]["docs"]["blobs"]
        .as_object_mut()
        .unwrap()
        .remove("cold.dat");
    expected["queues"]["jobs"]["messages"] = json!(0);
    expected["queues"]["jobs"]["peeked"] = json!([]);
    assert_eq!(
        expected["containers"], target["containers"],
        "containers differ:\nsource {:#}\ntarget {:#}",
        expected["containers"], target["containers"]
    );
    assert_eq!(expected["queues"], target["queues"]);
    assert_eq!(expected["tables"], target["tables"]);
}

#[tokio::test]
async fn replication_copies_server_side_and_a_rerun_copies_nothing() {
    let storage = StorageStack::start().await;
    storage.seed(SOURCE, &source_spec());
    let inventory = storage.inventory(json!({}));
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json", "-vv"],
        )
        .await;
    let report = run.report();
    assert_eq!(
        resource(&report)["facts"]["source_authorisation"],
        "entra id (bearer; user-delegation SAS for copy sources)",
        "{run}"
    );
    // Only the archived blob is not copied, and it says what to do.
    let cold = item(&report, "blob", "docs/cold.dat");
    assert_eq!(cold["outcome"], "skipped", "{cold}");
    assert!(
        cold["reason"].as_str().unwrap().contains("rehydrate"),
        "{cold}"
    );
    assert_eq!(report["totals"]["items"]["failed"], 0, "{run}");
    assert_eq!(run.code, 0, "{run}");
    assert_replicated(&storage.dump(SOURCE), &storage.dump(TARGET));
    // Stored access policies were read and written with the account keys (Shared Key).
    let docs = item(&report, "container", "docs");
    assert_eq!(docs["outcome"], "created", "{docs}");
    // Azurite answers Put Page / Append Block From URL with 501: the page and append blobs went
    // by async Copy Blob over the empty blobs created for the ranges (compared above).
    assert!(
        docs["notes"].to_string().contains(
            "4 copy-from-url, 0 put-block-from-url, 0 page/append-from-url, 2 async copy"
        ),
        "{docs}"
    );
    let jobs = item(&report, "queue", "jobs");
    assert_eq!(jobs["outcome"], "created");
    // Notes are true for the item and the mode: messages are not copied without the opt-in.
    assert!(
        jobs["notes"]
            .to_string()
            .contains("messages are not copied (about 2 in the source): the pair does not opt in"),
        "{jobs}"
    );
    assert_eq!(item(&report, "table", "people")["outcome"], "created");
    for account in [SOURCE, TARGET] {
        let key = &storage.azurite.account(account).unwrap().key;
        assert!(
            !run.stdout.contains(key.as_str()) && !run.stderr.contains(key.as_str()),
            "the {account} key was printed"
        );
    }
    assert!(
        !run.stderr.contains("SharedKey ") && !run.stderr.contains("Bearer "),
        "an Authorization header was printed at -vv"
    );
    // Server-side: every blob arrived by a copy request, none by an upload.
    let writes = storage.target_writes();
    assert!(writes.iter().filter(|w| w.copy).count() >= 6, "{writes:#?}");
    // Every blob is in the counts, listed or not: what was copied, and the archived one skipped.
    let blobs = &resource(&report)["counts_by_kind"]["blob"];
    let discovered = blobs["discovered"].as_u64().unwrap();
    assert_eq!(
        discovered,
        resource(&report)["facts"]["blobs"].as_u64().unwrap(),
        "{blobs}"
    );
    assert_eq!(
        blobs["created"].as_u64().unwrap() + blobs["skipped"].as_u64().unwrap(),
        discovered,
        "{blobs}"
    );
    assert_eq!(blobs["replicated"], blobs["created"], "{blobs}");
    assert_eq!(blobs["overwritten"], 0, "{blobs}");
    assert_eq!(blobs["skipped"], 1, "only the archived blob: {blobs}");
    assert!(!run.stdout.contains(SENTINEL_KEY_MARKER) && !run.stderr.contains(SENTINEL_KEY_MARKER));

    // A second run finds everything identical and copies nothing.
    storage.gateway.clear_requests();
    let again = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(again.code, 0, "{again}");
    let copies: Vec<_> = storage.target_writes();
    assert!(copies.is_empty(), "a re-run wrote: {copies:#?}");
    let again_report = again.report();
    let blobs = &resource(&again_report)["counts_by_kind"]["blob"];
    assert_eq!(blobs["replicated"], 0, "{blobs}");
    assert_eq!(
        blobs["identical"].as_u64().unwrap() + blobs["skipped"].as_u64().unwrap(),
        blobs["discovered"].as_u64().unwrap(),
        "identical or archived: {blobs}"
    );
    assert_eq!(blobs["skipped"], 1, "only the archived blob: {blobs}");
    assert_eq!(
        item(&again_report, "container", "docs")["outcome"],
        "identical"
    );
    let docs = item(&again_report, "container", "docs");
    assert!(
        docs["notes"].to_string().contains("0 copied")
            && docs["notes"].to_string().contains("6 identical"),
        "{docs}"
    );
}

/// The seeded container, queue and table are each partial, and say why.
fn assert_policies_partial(report: &Value, says_why: impl Fn(&Value) -> bool) {
    for (kind, name) in [
        ("container", "docs"),
        ("queue", "jobs"),
        ("table", "people"),
    ] {
        let entry = item(report, kind, name);
        assert_eq!(entry["outcome"], "partial", "{entry}");
        assert!(says_why(entry), "{entry}");
    }
}

#[tokio::test]
async fn stored_access_policies_without_the_target_key_are_reported_then_copied_with_it() {
    let storage = StorageStack::start_with(None, false).await;
    storage.seed(SOURCE, &source_spec());
    let inventory = storage.inventory(json!({}));

    // Dry-run says ahead that the policies cannot be copied, and why.
    let dry = storage
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "template",
                "--dry-run",
                "--output",
                "json",
            ],
        )
        .await;
    assert_eq!(dry.code, 0, "{dry}");
    let report = dry.report();
    let notes = item(&report, "container", "docs")["notes"].to_string();
    assert!(
        notes.contains("stored access policies will not be copied")
            && notes.contains("Storage Account Key Operator Service Role"),
        "{notes}"
    );
    assert!(storage.target_writes().is_empty());

    // Template without the key: structure created, policies reported partial, nothing else lost.
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "partial is not a failure: {run}");
    assert_policies_partial(&run.report(), |entry| {
        let reason = entry["reason"].as_str().unwrap_or_default();
        reason.contains("stored access policies not copied")
            && reason.contains("listKeys")
            && reason.contains("options.target_connection_string")
    });
    let target = storage.dump(TARGET);
    assert_eq!(target["containers"]["docs"]["policies"], json!([]));
    assert_eq!(target["containers"]["docs"]["metadata"]["owner"], "team-a");

    // With the target's connection string the same pairs converge: the policies are copied
    // (read back by the Python SDK with its own Shared Key signing), the rest is unchanged.
    let inventory = storage.inventory(json!({
        "target_connection_string": storage.azurite.connection_string(TARGET),
    }));
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    assert_eq!(
        item(&report, "container", "docs")["outcome"],
        "overwritten",
        "{run}"
    );
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    for (kind, name) in [
        ("containers", "docs"),
        ("queues", "jobs"),
        ("tables", "people"),
    ] {
        assert_eq!(
            source[kind][name]["policies"], target[kind][name]["policies"],
            "{kind} {name}"
        );
        assert_ne!(source[kind][name]["policies"], json!([]), "{kind} {name}");
    }
    let key = &storage.azurite.account(TARGET).unwrap().key;
    assert!(!run.stdout.contains(key.as_str()) && !run.stderr.contains(key.as_str()));

    // A re-run finds the same policies and writes nothing.
    storage.gateway.clear_requests();
    let again = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(again.code, 0, "{again}");
    assert!(
        storage.target_writes().is_empty(),
        "{:#?}",
        storage.target_writes()
    );

    // With no source key (source_auth = entra), the source's policies stay unknown: every item
    // says so as partial, none claims the same settings.
    let inventory = storage.inventory(json!({
        "source_auth": "entra",
        "target_connection_string": storage.azurite.connection_string(TARGET),
    }));
    let unknown = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(unknown.code, 0, "{unknown}");
    assert_policies_partial(&unknown.report(), |entry| {
        entry["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("the source's could not be read")
            && entry["notes"]
                .to_string()
                .contains("options.source_auth is `entra`")
    });
}

#[tokio::test]
async fn page_and_append_blobs_are_copied_range_by_range_where_the_service_has_the_calls() {
    // Azurite answers Put Page From URL and Append Block From URL with 501; the gateway carries
    // them out as Azure would (reading the source range with the request's SAS), so atg's own
    // path runs. Every other test sees the 501 and atg's fallback to async Copy Blob.
    const MIB: u64 = 1024 * 1024;
    let storage = StorageStack::start().await;
    storage.gateway.set_range_copy_emulation(true);
    storage.seed(
        SOURCE,
        &json!({ "containers": [{ "name": "disks", "blobs": [
            // A sparse 12 MiB disk: two written ranges, the second longer than one call takes.
            { "name": "os.vhd", "type": "PageBlob", "size": 12 * MIB,
              "pages": [[0, 4096], [5 * MIB, 5 * MIB]],
              "content_type": "application/octet-stream", "metadata": { "disk": "os" } },
            { "name": "empty.vhd", "type": "PageBlob", "size": 4096, "pages": [] },
            // 9 MiB appended in 4 MiB blocks by the seeder; atg appends 4 + 4 + 1.
            { "name": "audit.log", "type": "AppendBlob", "size": 9 * MIB, "content_type": "text/plain",
              "metadata": { "kind": "audit" } },
            { "name": "short.log", "type": "AppendBlob", "size": 10 }
        ]}]}),
    );
    // One append block in three is carried out and its answer lost: the retry must not append
    // the same bytes twice.
    storage
        .gateway
        .set_lost_answers(Some(LostAnswers::new(&["appendblock"], 0.34)));
    let inventory = storage.inventory(json!({}));
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    let disks = item(&report, "container", "disks");
    assert!(
        disks["notes"]
            .to_string()
            .contains("4 page/append-from-url, 0 async copy"),
        "{disks}"
    );
    assert_eq!(
        storage.dump(SOURCE)["containers"],
        storage.dump(TARGET)["containers"]
    );

    let requests = storage.gateway.requests();
    let count = |comp: &str, blob: &str| {
        requests
            .iter()
            .filter(|r| {
                r.host.starts_with(&format!("{TARGET}."))
                    && r.comp.as_deref() == Some(comp)
                    && r.path.ends_with(blob)
                    && r.status.is_some()
            })
            .count()
    };
    // Only the written ranges of the sparse disk: [0, 4 KiB), and [5, 10 MiB) in two pieces
    // of at most 4 MiB; nothing for the empty one.
    assert_eq!(count("page", "/os.vhd"), 3, "{requests:#?}");
    assert_eq!(count("page", "/empty.vhd"), 0);
    let lost = requests.iter().filter(|r| r.lost).count();
    assert!(
        lost >= 1,
        "no answer was lost: the retry path was not exercised"
    );
    assert_eq!(
        count("appendblock", "/audit.log") + count("appendblock", "/short.log"),
        4 + lost
    );

    // A copy interrupted after its ranges (the last step, setting the metadata, keeps failing)
    // leaves a blob marked unfinished: the next run replaces it even with --on-conflict skip,
    // where a finished copy that differs would be kept.
    storage.gateway.set_lost_answers(None);
    storage.seed(
        SOURCE,
        &json!({ "containers": [{ "name": "more", "blobs": [
            { "name": "data.vhd", "type": "PageBlob", "size": 2 * MIB, "metadata": { "disk": "data" } },
            { "name": "app.log", "type": "AppendBlob", "size": 5 * MIB }
        ]}]}),
    );
    storage.gateway.set_failing(Some(("metadata", 403)));
    let broken = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(broken.code, 1, "{broken}");
    let target = storage.dump(TARGET);
    for blob in ["data.vhd", "app.log"] {
        assert_eq!(
            target["containers"]["more"]["blobs"][blob]["metadata"]["atg_incomplete_copy"], "true",
            "{blob}: {target:#}"
        );
    }
    storage.gateway.set_failing(None);
    let again = storage
        .deploy(
            &inventory,
            &[
                "--dataplane-mode",
                "replication",
                "--on-conflict",
                "skip",
                "--output",
                "json",
            ],
        )
        .await;
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(
        storage.dump(SOURCE)["containers"],
        storage.dump(TARGET)["containers"]
    );
    // The two unfinished copies were in the target: they are counted overwritten, not created.
    let again_report = again.report();
    let blobs = &resource(&again_report)["counts_by_kind"]["blob"];
    assert_eq!(blobs["overwritten"], 2, "{blobs}");
    assert_eq!(blobs["created"], 0, "{blobs}");
}

/// What a dry run and template say of Storage's own items (that they write nothing, and what
/// template creates, is the conformance suite's): the blob and entity counts of the plan, and
/// queue messages left in template mode.
#[tokio::test]
async fn a_dry_run_counts_blobs_and_entities_and_template_notes_messages_left() {
    let storage = StorageStack::start().await;
    storage.seed(SOURCE, &source_spec());
    let inventory = storage.inventory(json!({}));
    let dry = storage
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
    assert_eq!(dry.code, 0, "{dry}");
    let report = dry.report();
    assert_eq!(resource(&report)["facts"]["blobs"], 7, "{report:#}");
    assert_eq!(resource(&report)["facts"]["archived_blobs"], 1);
    assert_eq!(resource(&report)["facts"]["entities"], 3);
    let docs = item(&report, "container", "docs");
    assert_eq!(docs["planned"], "create", "{docs}");
    assert!(
        docs["notes"][0].as_str().unwrap().starts_with("7 blob(s)"),
        "{docs}"
    );

    let template = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(template.code, 0, "{template}");
    let report = template.report();
    let jobs = item(&report, "queue", "jobs");
    assert!(
        jobs["notes"]
            .to_string()
            .contains("messages are not copied in template mode (about 2 in the source)"),
        "{jobs}"
    );
    let people = item(&report, "table", "people");
    assert!(
        people["notes"]
            .to_string()
            .contains("entities are not read or copied in template mode"),
        "{people}"
    );
}

#[tokio::test]
async fn with_ten_percent_faults_every_blob_is_copied_exactly_once() {
    let storage = StorageStack::start().await;
    let blobs: Vec<Value> = (0..120)
        .map(|i| json!({ "name": format!("f/{i:04}"), "size": 100 + i }))
        .collect();
    storage.seed(
        SOURCE,
        &json!({ "containers": [{ "name": "many", "blobs": blobs }] }),
    );
    storage.gateway.set_faults(Some(FaultOptions {
        rate: 0.10,
        kinds: Vec::new(),
        seed: 7,
    }));
    let inventory = storage.inventory(json!({}));
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    storage.gateway.set_faults(None);
    assert_eq!(run.code, 0, "{run}");
    let requests = storage.gateway.requests();
    let faults = requests.iter().filter(|r| r.fault.is_some()).count();
    assert!(faults >= 10, "only {faults} faults injected");
    // Every blob: exactly one copy that reached Azurite and succeeded.
    let mut copies = std::collections::BTreeMap::<String, usize>::new();
    for r in requests.iter().filter(|r| r.copy && r.fault.is_none()) {
        assert!(r.status.is_some_and(|s| s < 300), "{r:?}");
        *copies.entry(r.path.clone()).or_default() += 1;
    }
    assert_eq!(copies.len(), 120, "{copies:?}");
    assert!(copies.values().all(|n| *n == 1), "{copies:?}");
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    assert_eq!(
        source["containers"]["many"]["blobs"],
        target["containers"]["many"]["blobs"]
    );
    assert!(run.report()["retries"]["throttled"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn large_blobs_fall_back_to_async_copy_when_put_block_from_url_is_not_implemented() {
    let storage = StorageStack::start().await;
    storage.seed(
        SOURCE,
        &json!({ "containers": [{ "name": "big", "blobs": [
            { "name": "large.bin", "size": 3 * 1024 * 1024 + 17, "metadata": { "k": "v" }, "tags": { "t": "1" } },
            { "name": "small.bin", "size": 1000 }
        ]}]}),
    );
    // Copy Blob From URL only up to 1 MiB: the large blob takes the Put Block From URL path,
    // which Azurite does not implement (it answers with a whole Copy Blob, 202, instead of a
    // staged block, 201), so atg must switch to async Copy Blob from that answer.
    let inventory = storage.inventory(json!({ "sync_copy_max_mib": 1, "block_size_mib": 1 }));
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let requests = storage.gateway.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.comp.as_deref() == Some("block") && r.status.is_some_and(|s| s != 201)),
        "put block from url was not tried: {requests:#?}"
    );
    let report = run.report();
    let big = item(&report, "container", "big");
    let notes = big["notes"].to_string();
    assert!(
        notes.contains("1 copy-from-url") && notes.contains("1 async copy"),
        "{big}"
    );
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    assert_eq!(
        source["containers"]["big"]["blobs"],
        target["containers"]["big"]["blobs"]
    );
}

#[tokio::test]
async fn source_authorisation_problems_are_clear_per_resource_errors() {
    let storage = StorageStack::start().await;
    storage.seed(
        SOURCE,
        &json!({ "containers": [{ "name": "ccc", "blobs": [{ "name": "a", "size": 5 }] }] }),
    );
    let secret_looking = "AccountName=srcacct;AccountKey=not-base64!!sentinel-Q7";
    let cases = [
        (
            json!({ "source_connection_string": secret_looking }),
            SOURCE,
            "malformed",
        ),
        // The target account has no keys in ARM: listKeys answers 403.
        (
            json!({ "source_auth": "account-key" }),
            TARGET,
            "listKeys failed",
        ),
        // An account ARM does not know: listKeys answers 404.
        (
            json!({ "source_auth": "account-key" }),
            "nosuchacct",
            "does not know",
        ),
    ];
    for (options, source, expected) in cases {
        let inventory = storage.inventory_for(source, TARGET, options, json!({}));
        let run = storage
            .deploy(
                &inventory,
                &["--dataplane-mode", "replication", "--output", "json"],
            )
            .await;
        assert_eq!(run.code, 1, "{run}");
        let report = run.report();
        let error = resource(&report)["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{expected}: {error}");
        assert!(!run.stdout.contains("sentinel-Q7") && !run.stderr.contains("sentinel-Q7"));
    }
    // A good connection string works and says so; the SAS it signs is never printed.
    let key = storage.azurite.account(SOURCE).unwrap().key.clone();
    let inventory = storage.inventory(json!({
        "source_connection_string": format!("DefaultEndpointsProtocol=https;AccountName={SOURCE};AccountKey={key};EndpointSuffix=core.windows.net")
    }));
    let run = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json", "-vv"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        resource(&run.report())["facts"]["source_authorisation"],
        "account-key SAS from options.source_connection_string"
    );
    for output in [&run.stdout, &run.stderr] {
        assert!(
            !output.contains(&key) && !output.contains("sig="),
            "a secret was printed"
        );
    }
    assert_eq!(
        storage.dump(TARGET)["containers"]["ccc"]["blobs"]["a"]["size"],
        5
    );
}

/// The `blobs: N copied (...), M identical, ...` note of a container item, as (copied, identical).
fn copied_and_identical(container: &Value) -> (u64, u64) {
    let notes = container["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|note| note.starts_with("blobs: "))
        .unwrap_or_else(|| panic!("no blob tally in {container}"));
    let number_before = |label: &str| -> u64 {
        let (head, _) = notes
            .split_once(label)
            .unwrap_or_else(|| panic!("no `{label}` in {notes}"));
        head.rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("no count before `{label}` in {notes}"))
    };
    (number_before(" copied"), number_before(" identical"))
}

#[tokio::test]
async fn a_run_killed_half_way_and_run_again_converges() {
    // Enough blobs that a run takes seconds, so the kill lands mid-copy.
    const BULK: usize = 1_000;
    const CONTAINER: &str = "many";
    let storage = StorageStack::start().await;
    // Blobs with everything a copy carries (metadata, content headers, tags, an explicit tier),
    // spread through the listing, so some are copied before the kill and some after.
    let carried: Vec<Value> = (0..BULK)
        .step_by(BULK / 8)
        .map(|i| {
            json!({ "name": format!("b/{i:07}.carried"), "size": 3_000 + i,
                    "content_type": "text/csv", "cache_control": "no-cache", "content_language": "de",
                    "metadata": { "index": i.to_string() }, "tags": { "part": (i % 3).to_string() },
                    "tier": "Cool" })
        })
        .collect();
    let total = BULK + carried.len();
    storage.seed(
        SOURCE,
        &json!({ "containers": [{ "name": CONTAINER, "metadata": { "kind": "bulk" }, "blobs": carried }] }),
    );
    let conn = storage.azurite.connection_string(SOURCE);
    let ca = storage.azurite.ca_path.display().to_string();
    let seeded: Value = serde_json::from_str(&storage.python(&[
        "bulk",
        &conn,
        &ca,
        CONTAINER,
        &BULK.to_string(),
        "512",
        "8192",
        "11",
    ]))
    .unwrap();
    assert_eq!(seeded["blobs"], BULK, "{seeded}");
    assert_eq!(storage.count_blobs(SOURCE, CONTAINER).await, total);
    let inventory = storage.inventory(json!({}));
    let args = storage.deploy_args(
        &inventory,
        &["--dataplane-mode", "replication", "--output", "json"],
    );
    let env = [
        ("AZURE_DATAPLANE_CLIENT_ID", TARGET_CLIENT),
        ("AZURE_DATAPLANE_CLIENT_SECRET", TARGET_SECRET),
        ("AZURE_DATAPLANE_TENANT_ID", TARGET_TENANT),
    ];

    // First run: SIGKILL once a tenth of the blobs are in the target (no chance to clean up).
    let stderr_path = storage.stack.path("killed-run.stderr");
    let mut child = atg_command(&args, &env)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("atg starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "atg finished ({status}) before a tenth of {total} blobs were seen in the target: raise BULK\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        if storage.count_blobs(TARGET, CONTAINER).await >= total / 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress within 120 s:\n{}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    let status = child.wait().await.unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    // Copies already accepted by Azurite finish without atg; let them land before counting.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let present = storage.count_blobs(TARGET, CONTAINER).await;
    assert!(
        present > 0 && present < total,
        "the kill did not land half way: {present} of {total} blobs in the target"
    );

    // Second run: to completion, no failures, copies only what is missing.
    let again = storage
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(again.code, 0, "{again}");
    let report = again.report();
    assert_eq!(report["totals"]["items"]["failed"], 0, "{again}");
    let container = item(&report, "container", CONTAINER);
    let (copied, identical) = copied_and_identical(container);
    assert_eq!(copied + identical, total as u64, "{container}");
    // What the killed run finished is whole: the second run finds it identical, copies the rest.
    assert!(
        identical >= present as u64,
        "{present} present, {container}"
    );
    assert!(copied > 0, "{container}");

    // The independent reader: names, sizes, SHA-256 of the bytes, Content-MD5, content
    // headers, metadata, tags and tier all equal.
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    let source_blobs = source["containers"][CONTAINER]["blobs"]
        .as_object()
        .unwrap();
    assert_eq!(source_blobs.len(), total);
    assert!(source_blobs
        .values()
        .all(|b| b["sha256"].is_string() && b["content_md5"].is_string()));
    assert_eq!(
        source["containers"], target["containers"],
        "the target differs from the source after the second run"
    );
}

#[tokio::test]
async fn queue_messages_are_copied_only_when_asked_and_never_drained() {
    let storage = StorageStack::start().await;
    storage.seed(SOURCE, &source_spec());
    let inventory = storage.inventory(json!({ "queue_messages": "peek" }));
    for run_number in 1..=2 {
        let run = storage
            .deploy(
                &inventory,
                &["--dataplane-mode", "replication", "--output", "json"],
            )
            .await;
        assert_eq!(run.code, 0, "run {run_number}: {run}");
        let report = run.report();
        let jobs = item(&report, "queue", "jobs");
        let expected = if run_number == 1 {
            "2 copied"
        } else {
            "0 copied, 2 already in the target"
        };
        assert!(
            jobs["notes"].to_string().contains(expected),
            "run {run_number}: {jobs}"
        );
        // Copied, and said so: no note claims they are not.
        assert!(
            !jobs["notes"].to_string().contains("not copied"),
            "run {run_number}: {jobs}"
        );
    }
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    assert_eq!(
        target["queues"]["jobs"]["peeked"],
        json!(["one", "two"]),
        "{target}"
    );
    assert_eq!(
        target["queues"]["jobs"]["messages"], 2,
        "a re-run adds no duplicates"
    );
    assert_eq!(
        source["queues"]["jobs"]["messages"], 2,
        "the source is never drained"
    );
    assert_eq!(source["queues"]["jobs"]["peeked"], json!(["one", "two"]));
}

/// Every EDM type the official SDK writes, and the doubles that lose their type or their last
/// bit when a copier guesses: whole numbers, the shortest round-trip texts, ±Infinity, NaN, the
/// extremes.
fn typed_entity(partition: &str, row: &str) -> Value {
    json!({
        "PartitionKey": partition, "RowKey": row,
        "Whole": ["Double", "2500"], "Answer": ["Double", "42.0"], "Zero": ["Double", "0"],
        "Precise": ["Double", "95.34441969555881"], "Tenth": ["Double", "0.1"],
        "PosInf": ["Double", "inf"], "NegInf": ["Double", "-inf"], "NotANumber": ["Double", "nan"],
        "Max": ["Double", "1.7976931348623157e308"], "Lowest": ["Double", "-1.7976931348623157e308"],
        "MinPositive": ["Double", "2.2250738585072014e-308"], "Subnormal": ["Double", "5e-324"],
        "Huge": ["Double", "1e21"],
        "Int": ["Int32", 2_147_483_647], "NegInt": ["Int32", -2_147_483_648], "Small": ["Int32", 7],
        "Long": ["Int64", "9223372036854775807"], "NegLong": ["Int64", "-9223372036854775808"],
        "SmallLong": ["Int64", "5"],
        "Flag": true, "When": ["DateTime", "2024-02-29T12:34:56.123456+00:00"],
        "Id": ["Guid", "6f9619ff-8b86-d011-b42d-00c04fc964ff"], "Bytes": ["Binary", "AAECAw=="],
        "Text": "2500.0", "Empty": ""
    })
}

#[tokio::test]
async fn table_entities_keep_their_exact_types_and_bits_and_a_rerun_writes_none() {
    let storage = StorageStack::start().await;
    storage.seed(
        SOURCE,
        &json!({ "tables": [{ "name": "typed", "entities": [
            typed_entity("p1", "r1"), typed_entity("p1", "r2"), typed_entity("p2", "r1")
        ]}]}),
    );
    // A target entity an older copier wrote: the whole-number double stored as an Int32.
    storage.seed(
        TARGET,
        &json!({ "tables": [{ "name": "typed", "entities": [
            { "PartitionKey": "p2", "RowKey": "r1", "Whole": ["Int32", 2500] }
        ]}]}),
    );
    let inventory = storage.inventory(json!({}));
    let run = storage.replicate(&inventory).await;
    assert_eq!(run.code, 0, "{run}");
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    // The Python SDK reads each type back; repr() of every double is compared, so one bit off
    // or a whole number turned Int32 shows.
    assert_eq!(
        source["tables"]["typed"], target["tables"]["typed"],
        "types or values changed"
    );
    let first = &target["tables"]["typed"]["entities"][0];
    assert_eq!(first["Whole"], json!(["float", "2500.0"]), "{first}");
    assert_eq!(first["Precise"], json!(["float", "95.34441969555881"]));
    assert_eq!(first["NotANumber"], json!(["float", "nan"]));
    assert_eq!(first["Huge"], json!(["float", "1e+21"]));
    assert_eq!(first["Int"], json!(["int", 2_147_483_647]));
    assert_eq!(
        first["Long"],
        json!(["EdmType.INT64", 9_223_372_036_854_775_807_i64])
    );
    let report = run.report();
    let typed = item(&report, "table", "typed");
    assert!(
        typed["notes"].to_string().contains("3 copied, 0 identical"),
        "{typed}"
    );

    // A re-run finds every entity identical and writes none.
    let again = storage.rerun_writes_nothing(&inventory).await;
    let report = again.report();
    let typed = item(&report, "table", "typed");
    assert!(
        typed["notes"].to_string().contains("0 copied, 3 identical"),
        "{typed}"
    );
}

/// Lost answers of every kind, after the write took effect: the 1st, 4th, 7th ... write of
/// each operation, so every operation loses one whatever order concurrent writes take.
pub(crate) fn lost_after_write(operations: &[&str]) -> LostAnswers {
    LostAnswers::every(operations, 3).answering(&[
        LostAnswer::Reset,
        LostAnswer::Status(500),
        LostAnswer::Status(503),
    ])
}

#[tokio::test]
async fn queue_messages_land_once_when_put_message_answers_are_lost() {
    let storage = StorageStack::start().await;
    let texts = ["a", "b", "a", "c", "d", "e", "f", "g", "a", "h"];
    storage.seed(
        SOURCE,
        &json!({ "queues": [
            { "name": "work", "messages": texts },
            { "name": "full", "messages": ["y"] }
        ]}),
    );
    // A target queue holding more than a peek shows: whether `y` is already there cannot be
    // seen, so it is not sent, and the item says so.
    let many: Vec<String> = (0..32).map(|i| format!("x{i}")).collect();
    storage.seed(
        TARGET,
        &json!({ "queues": [{ "name": "full", "messages": many }] }),
    );
    storage
        .gateway
        .set_lost_answers(Some(lost_after_write(&["message"])));
    let inventory = storage.inventory(json!({ "queue_messages": "peek" }));
    let run = storage.replicate(&inventory).await;
    storage.gateway.set_lost_answers(None);
    assert_eq!(run.code, 0, "{run}");
    let lost = storage.gateway.requests().iter().filter(|r| r.lost).count();
    assert!(lost >= 2, "only {lost} answers lost");
    let report = run.report();
    let work = item(&report, "queue", "work");
    assert_eq!(work["outcome"], "created", "{work}");
    assert!(
        work["notes"].to_string().contains("messages: 10 copied"),
        "{work}"
    );
    assert!(!work["notes"].to_string().contains("not copied"), "{work}");
    let full = item(&report, "queue", "full");
    assert_eq!(full["outcome"], "partial", "{full}");
    assert!(
        full["reason"]
            .as_str()
            .unwrap()
            .contains("1 source message(s) not copied: the target holds more messages than Peek Messages shows"),
        "{full}"
    );
    let target = storage.dump(TARGET);
    let mut expected: Vec<&str> = texts.to_vec();
    expected.sort_unstable();
    assert_eq!(target["queues"]["work"]["peeked"], json!(expected));
    assert_eq!(
        target["queues"]["work"]["messages"], 10,
        "a message whose answer was lost landed twice: {target}"
    );
    assert_eq!(target["queues"]["full"]["messages"], 32);

    let again = storage.rerun_writes_nothing(&inventory).await;
    let report = again.report();
    assert!(
        item(&report, "queue", "work")["notes"]
            .to_string()
            .contains("0 copied, 10 already in the target"),
        "{report:#}"
    );
}

#[tokio::test]
async fn with_answers_lost_after_writes_a_replication_converges_exactly_once() {
    const MIB: u64 = 1024 * 1024;
    let storage = StorageStack::start().await;
    storage.gateway.set_range_copy_emulation(true);
    let mut spec = source_spec();
    spec["containers"][0]["blobs"]
        .as_array_mut()
        .unwrap()
        .extend([
            json!({ "name": "audit.log", "type": "AppendBlob", "size": 9 * MIB, "metadata": { "kind": "audit" } }),
            json!({ "name": "large.bin", "size": 2 * MIB + 5, "metadata": { "k": "v" } }),
            json!({ "name": "sparse.vhd", "type": "PageBlob", "size": 6 * MIB, "pages": [[0, 4096], [MIB, 5 * MIB]] }),
        ]);
    spec["queues"][0]["messages"] = json!(["one", "two", "two", "three", "four"]);
    let entities: Vec<Value> = (0..150)
        .map(|i| json!({ "PartitionKey": "bulk", "RowKey": format!("{i:04}"), "Score": ["Double", format!("{i}.0")] }))
        .collect();
    spec["tables"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "bulk", "entities": entities }));
    storage.seed(SOURCE, &spec);
    storage
        .gateway
        .set_lost_answers(Some(lost_after_write(&["*"])));
    let inventory = storage.inventory(json!({ "queue_messages": "peek", "sync_copy_max_mib": 1 }));
    let run = storage.replicate(&inventory).await;
    storage.gateway.set_lost_answers(None);
    let requests = storage.gateway.requests();
    let lost: Vec<_> = requests.iter().filter(|r| r.lost).collect();
    let operations: std::collections::BTreeSet<_> =
        lost.iter().filter_map(|r| r.operation.clone()).collect();
    for operation in ["message", "batch", "appendblock", "copy", "container"] {
        assert!(
            operations.contains(operation),
            "no {operation} answer was lost: {operations:?}"
        );
    }
    assert_eq!(run.code, 0, "{run}");
    let report = run.report();
    assert_eq!(report["totals"]["items"]["failed"], 0, "{run}");
    let blobs = &resource(&report)["counts_by_kind"]["blob"];
    assert_eq!(blobs["skipped"], 1, "only the archived blob: {report:#}");
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    let mut expected = source.clone();
    expected["containers"]["docs"]["blobs"]
        .as_object_mut()
        .unwrap()
        .remove("cold.dat");
    // Exact: bytes (append blobs appended once), metadata, tags, entities, and every queue
    // message once.
    assert_eq!(expected["containers"], target["containers"]);
    assert_eq!(expected["queues"], target["queues"]);
    assert_eq!(expected["tables"], target["tables"]);
    let entities = &resource(&report)["counts_by_kind"]["entity"];
    assert_eq!(entities["replicated"], 153, "{entities}");
    assert_eq!(entities["created"], 153, "{entities}");

    let jobs = item(&report, "queue", "jobs");
    assert!(
        jobs["notes"].to_string().contains("messages: 5 copied"),
        "{jobs}"
    );
    let docs = item(&report, "container", "docs");
    assert_eq!(docs["outcome"], "created", "{docs}");

    storage.rerun_writes_nothing(&inventory).await;
}

#[tokio::test]
async fn metadata_names_keep_their_case_and_a_rerun_writes_nothing() {
    let storage = StorageStack::start().await;
    // Page and append blobs then go range by range: atg writes their metadata itself.
    storage.gateway.set_range_copy_emulation(true);
    let metadata = json!({ "Author": "ada", "CamelCase": "x", "lower": "y" });
    storage.seed(
        SOURCE,
        &json!({
            "containers": [
                { "name": "cased", "metadata": metadata, "blobs": [
                    { "name": "copied.txt", "size": 10, "metadata": metadata },
                    { "name": "log.txt", "type": "AppendBlob", "size": 100, "metadata": metadata },
                    { "name": "disk.vhd", "type": "PageBlob", "size": 4096, "metadata": metadata }
                ]},
                { "name": "older", "metadata": metadata }
            ],
            "queues": [
                { "name": "casedq", "metadata": metadata },
                { "name": "olderq", "metadata": metadata }
            ]
        }),
    );
    // What an older atg left: the same metadata with its names lowercased.
    let lowered = json!({ "author": "ada", "camelcase": "x", "lower": "y" });
    storage.seed(
        TARGET,
        &json!({
            "containers": [{ "name": "older", "metadata": lowered }],
            "queues": [{ "name": "olderq", "metadata": lowered }]
        }),
    );
    let inventory = storage.inventory(json!({}));
    let run = storage.replicate(&inventory).await;
    assert_eq!(run.code, 0, "{run}");
    // Read back with the Python SDK: names exactly as in the source.
    let source = storage.dump(SOURCE);
    let target = storage.dump(TARGET);
    assert_eq!(source["containers"], target["containers"]);
    assert_eq!(source["queues"], target["queues"]);
    for container in ["cased", "older"] {
        assert_eq!(target["containers"][container]["metadata"], metadata);
    }
    for blob in ["copied.txt", "log.txt", "disk.vhd"] {
        assert_eq!(
            target["containers"]["cased"]["blobs"][blob]["metadata"], metadata,
            "{blob}"
        );
    }
    for queue in ["casedq", "olderq"] {
        assert_eq!(target["queues"][queue]["metadata"], metadata, "{queue}");
    }
    storage.rerun_writes_nothing(&inventory).await;
}
