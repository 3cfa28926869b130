//! Storage accounts in the conformance suite: Azurite behind the testkit's gateway, read back
//! with Microsoft's Python SDKs (`storage_clients.py`), not with atg's code.

use std::path::{Path, PathBuf};

use atg_testkit::FaultOptions;
use serde_json::{json, Value};

use super::{Fixture, Item, Items, Target, World};
use crate::common::{Run, TARGET_SECRET};
use crate::storage::{lost_after_write, source_spec, StorageStack};

const SOURCE: &str = "confsrc";
const TARGETS: [(Target, &str); 6] = [
    (Target::Template, "conftemplate"),
    (Target::Replica, "confreplica"),
    (Target::Faults, "conffaults"),
    (Target::LostAnswers, "conflost"),
    (Target::Forbidden, "confforbidden"),
    (Target::Beside, "confbeside"),
];
/// The blob the conflicts check changes in the target.
const CHANGED: (&str, &str) = ("docs", "plain.txt");

pub struct StorageFixture;

pub struct StorageWorld {
    storage: StorageStack,
}

impl Fixture for StorageFixture {
    type World = StorageWorld;
    const PLUGIN: &'static str = "storage-account";

    async fn start(&self) -> StorageWorld {
        let targets: Vec<&str> = TARGETS.iter().map(|(_, name)| *name).collect();
        StorageWorld {
            storage: StorageStack::start_accounts(SOURCE, &targets, None, true).await,
        }
    }
}

#[tokio::test]
async fn conformance() {
    super::run(&StorageFixture).await;
}

/// The changed blob as seeded in the source.
fn changed_blob() -> Value {
    json!({ "name": CHANGED.1, "size": 50 })
}

/// The Storage tests' source without its archived blob (skipped with the remedy, tested in
/// `storage.rs`), plus the blob the conflicts check changes and enough small blobs that 10%
/// faults hit many requests.
fn spec() -> Value {
    let mut spec = source_spec();
    let docs = spec["containers"][0]["blobs"].as_array_mut().unwrap();
    docs.retain(|b| b["tier"] != "Archive");
    docs.push(changed_blob());
    let many: Vec<Value> = (0..40)
        .map(|i| json!({ "name": format!("f/{i:03}"), "size": 100 + i }))
        .collect();
    spec["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "many", "blobs": many }));
    spec
}

/// A Python dump of an account as items keyed like the report: containers, blobs (`container/
/// name`), queues, tables and entities (`table/partition/row`).
fn items(dump: &Value) -> Items {
    let mut items = Items::new();
    let once = |shape: Value, value: Option<Value>| Item {
        shape,
        value,
        writes: 1,
    };
    for (name, container) in dump["containers"].as_object().unwrap() {
        let mut shape = container.clone();
        let blobs = shape.as_object_mut().unwrap().remove("blobs").unwrap();
        items.insert(format!("container {name}"), once(shape, None));
        for (blob, properties) in blobs.as_object().unwrap() {
            let mut shape = properties.clone();
            let sha256 = shape.as_object_mut().unwrap().remove("sha256");
            items.insert(format!("blob {name}/{blob}"), once(shape, sha256));
        }
    }
    for (name, queue) in dump["queues"].as_object().unwrap() {
        let shape = json!({ "metadata": queue["metadata"], "policies": queue["policies"] });
        // The messages are the queue's value: their count shows one sent twice.
        let value = (queue["messages"] != 0)
            .then(|| json!({ "messages": queue["messages"], "peeked": queue["peeked"] }));
        items.insert(format!("queue {name}"), once(shape, value));
    }
    for (name, table) in dump["tables"].as_object().unwrap() {
        items.insert(
            format!("table {name}"),
            once(json!({ "policies": table["policies"] }), None),
        );
        for entity in table["entities"].as_array().unwrap() {
            let key = format!(
                "entity {name}/{}/{}",
                entity["PartitionKey"][1].as_str().unwrap_or_default(),
                entity["RowKey"][1].as_str().unwrap_or_default()
            );
            items.insert(key, once(json!({}), Some(entity.clone())));
        }
    }
    items
}

impl StorageWorld {
    fn account(&self, target: Target) -> &'static str {
        TARGETS
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, name)| *name)
            .unwrap()
    }

    fn put_blob(&self, account: &str, container: &str, blob: &Value) {
        let conn = self.storage.azurite.connection_string(account);
        let ca = self.storage.azurite.ca_path.display().to_string();
        self.storage
            .python(&["put-blob", &conn, &ca, container, &blob.to_string()]);
    }
}

impl World for StorageWorld {
    async fn seed_source(&self) {
        self.storage.seed(SOURCE, &spec());
    }

    fn target_name(&self, target: Target) -> String {
        self.account(target).to_owned()
    }

    fn inventory(&self, targets: &[Target]) -> PathBuf {
        let pairs: Vec<(&str, &str)> = targets.iter().map(|t| (SOURCE, self.account(*t))).collect();
        // Queue messages are copied only when a pair opts in.
        self.storage
            .inventory_of(&pairs, &json!({ "queue_messages": "peek" }), &json!({}))
    }

    async fn deploy(&self, inventory: &Path, args: &[&str]) -> Run {
        self.storage.deploy(inventory, args).await
    }

    fn path(&self, name: &str) -> PathBuf {
        self.storage.stack.path(name)
    }

    async fn read_source(&self) -> Items {
        items(&self.storage.dump(SOURCE))
    }

    async fn read_target(&self, target: Target) -> Items {
        items(&self.storage.dump(self.account(target)))
    }

    fn writes(&self, target: Target) -> Vec<String> {
        self.storage
            .writes_to(self.account(target))
            .into_iter()
            .map(|r| format!("{} {}{}", r.method, r.host, r.path))
            .collect()
    }

    fn source_value_reads(&self) -> Vec<String> {
        let prefix = format!("{SOURCE}.");
        self.storage
            .gateway
            .requests()
            .into_iter()
            .filter(|r| r.host.starts_with(&prefix) && r.method == "GET")
            .filter(|r| {
                let segments = r.path.trim_matches('/').split('/').count();
                // Blob data, queue messages, table entities.
                (r.host.contains(".blob.") && segments >= 2 && r.comp.is_none())
                    || (r.host.contains(".queue.") && r.path.ends_with("/messages"))
                    || (r.host.contains(".table.")
                        && r.comp.is_none()
                        && !r.path.starts_with("/Tables"))
            })
            .map(|r| format!("{} {}{}", r.method, r.host, r.path))
            .collect()
    }

    fn clear_requests(&self) {
        self.storage.gateway.clear_requests();
    }

    fn set_faults(&self, on: bool) {
        self.storage.gateway.set_faults(on.then(|| FaultOptions {
            rate: 0.1,
            kinds: Vec::new(),
            seed: 7,
        }));
    }

    fn set_lost_answers(&self, on: bool) {
        self.storage
            .gateway
            .set_lost_answers(on.then(|| lost_after_write(&["*"])));
    }

    fn injected(&self) -> (usize, usize) {
        let requests = self.storage.gateway.requests();
        (
            requests.iter().filter(|r| r.fault.is_some()).count(),
            requests.iter().filter(|r| r.lost).count(),
        )
    }

    fn forbid(&self, target: Target) {
        self.storage
            .gateway
            .set_forbidden_accounts(&[self.account(target)]);
    }

    async fn damage(&self, target: Target) -> String {
        self.put_blob(
            self.account(target),
            CHANGED.0,
            &json!({ "name": CHANGED.1, "size": 77 }),
        );
        format!("blob {}/{}", CHANGED.0, CHANGED.1)
    }

    async fn touch_source(&self, key: &str) {
        assert_eq!(key, format!("blob {}/{}", CHANGED.0, CHANGED.1));
        self.put_blob(SOURCE, CHANGED.0, &changed_blob());
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = std::iter::once(SOURCE)
            .chain(TARGETS.iter().map(|(_, name)| *name))
            .map(|account| self.storage.azurite.account(account).unwrap().key.clone())
            .collect();
        // A SAS signature, a token's header, the principal's secret.
        secrets.extend(["sig=".into(), "eyJ".into(), TARGET_SECRET.into()]);
        secrets
    }
}
