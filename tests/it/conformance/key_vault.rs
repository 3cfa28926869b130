//! Key Vault in the conformance suite: the testkit's emulator, read back with its plain REST
//! client (not atg's SDK clients).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::{Fixture, Item, Items, Target, World};
use crate::common::{name_of, tags, Run, Stack, SOURCE_SECRET, TARGET_SECRET};

/// A certificate's backing PFX as real Key Vault exported it (password-less): the source holds a
/// certificate imported from it, so a certificate whose PFX came from Azure is replicated.
const REAL_PFX: &str =
    include_str!("../../../crates/atg-testkit/tests/fixtures/real-key-vault-export.pfx.b64");

const SOURCE: &str = "src-kv";
/// Secret values: each one a string no output may hold.
const PLAIN_VALUE: &str = "kv-plain-value-Ht4wQ9-never-print";
const TYPED_VALUE: &str = "kv-typed-value-Zq8vX1-never-print";
/// Enough secrets that 10% faults hit some of the requests.
const BULK: usize = 20;

pub struct KeyVaultFixture;

pub struct KeyVaultWorld {
    stack: Stack,
}

impl Fixture for KeyVaultFixture {
    type World = KeyVaultWorld;
    const PLUGIN: &'static str = "key-vault";

    async fn start(&self) -> KeyVaultWorld {
        KeyVaultWorld {
            stack: Stack::start().await,
        }
    }
}

#[tokio::test]
async fn conformance() {
    super::run(&KeyVaultFixture).await;
}

fn bulk_value(index: usize) -> String {
    format!("kv-bulk-value-{index:02}-Rk2mP7")
}

/// (collection, kind) of what the suite compares; certificate-backed secrets and keys come with
/// their certificate.
const COLLECTIONS: [(&str, &str); 3] = [
    ("secrets", "secret"),
    ("keys", "key"),
    ("certificates", "certificate"),
];

impl KeyVaultWorld {
    async fn read(&self, vault: &str) -> Items {
        let client = self.stack.vault(vault);
        let mut items = Items::new();
        for (collection, kind) in COLLECTIONS {
            for listed in client.list_all(&format!("/{collection}")).await.unwrap() {
                if listed["managed"] == true {
                    continue;
                }
                let name = name_of(&listed);
                let writes = client
                    .list_all(&format!("/{collection}/{name}/versions"))
                    .await
                    .unwrap()
                    .len() as u64;
                let item = match kind {
                    "secret" => {
                        let secret = client.get_secret(&name).await.unwrap().unwrap();
                        Item {
                            shape: json!({
                                "content_type": secret["contentType"],
                                "tags": secret["tags"],
                                "enabled": secret["attributes"]["enabled"],
                            }),
                            value: Some(secret["value"].clone()),
                            writes,
                        }
                    }
                    "key" => {
                        let key = client.get_key(&name).await.unwrap().unwrap();
                        let material = key["key"]["n"]
                            .as_str()
                            .or(key["key"]["x"].as_str())
                            .unwrap_or_default();
                        let mut operations: Vec<String> = key["key"]["key_ops"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|o| o.as_str().map(str::to_owned))
                            .collect();
                        operations.sort();
                        Item {
                            shape: json!({
                                "kty": key["key"]["kty"],
                                "crv": key["key"]["crv"],
                                "material_length": material.len(),
                                "operations": operations,
                                "tags": key["tags"],
                                "enabled": key["attributes"]["enabled"],
                            }),
                            value: Some(json!(material)),
                            writes,
                        }
                    }
                    _ => {
                        let certificate = client.get_certificate(&name).await.unwrap().unwrap();
                        Item {
                            shape: json!({
                                "subject": certificate["policy"]["x509_props"]["subject"],
                                "tags": certificate["tags"],
                                "enabled": certificate["attributes"]["enabled"],
                            }),
                            value: Some(certificate["x5t"].clone()),
                            writes,
                        }
                    }
                };
                items.insert(format!("{kind} {name}"), item);
            }
        }
        items
    }
}

impl World for KeyVaultWorld {
    async fn seed_source(&self) {
        let source = self.stack.vault(SOURCE);
        source
            .set_secret("plain", PLAIN_VALUE, None, None, true)
            .await
            .unwrap();
        source
            .set_secret(
                "typed",
                TYPED_VALUE,
                Some("text/plain"),
                Some(&tags(&[("env", "prod")])),
                true,
            )
            .await
            .unwrap();
        for index in 0..BULK {
            source
                .set_secret(
                    &format!("bulk-{index:02}"),
                    &bulk_value(index),
                    None,
                    None,
                    true,
                )
                .await
                .unwrap();
        }
        crate::key_vault::seed_keys_and_certificate(&source).await;
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

    fn target_name(&self, target: Target) -> String {
        target.name().to_owned()
    }

    fn inventory(&self, targets: &[Target]) -> PathBuf {
        let names: Vec<String> = targets.iter().map(|t| self.target_name(*t)).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|n| (SOURCE, n.as_str())).collect();
        self.stack.kv_inventory(&pairs)
    }

    async fn deploy(&self, inventory: &Path, args: &[&str]) -> Run {
        self.stack.deploy(inventory, args).await
    }

    fn path(&self, name: &str) -> PathBuf {
        self.stack.path(name)
    }

    async fn read_source(&self) -> Items {
        self.read(SOURCE).await
    }

    async fn read_target(&self, target: Target) -> Items {
        self.read(&self.target_name(target)).await
    }

    fn writes(&self, target: Target) -> Vec<String> {
        let vault = self.target_name(target);
        self.stack
            .vault_writes()
            .into_iter()
            .filter(|r| r.vault.as_deref() == Some(vault.as_str()))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    fn source_value_reads(&self) -> Vec<String> {
        crate::key_vault::secret_value_reads(&self.stack, SOURCE)
    }

    fn clear_requests(&self) {
        self.stack.emulator.clear_requests();
    }

    fn set_faults(&self, on: bool) {
        self.stack.emulator.set_options(|options| {
            options.faults = super::emulator_faults(on);
        });
    }

    fn set_lost_answers(&self, on: bool) {
        self.stack.emulator.set_options(|options| {
            options.lost_answers = super::emulator_lost_answers(on);
        });
    }

    fn injected(&self) -> (usize, usize) {
        super::emulator_injected(&self.stack.requests())
    }

    fn forbid(&self, target: Target) {
        let vault = self.target_name(target);
        self.stack.emulator.set_options(|options| {
            options.forbidden_vaults.insert(vault);
        });
    }

    async fn damage(&self, target: Target) -> String {
        self.stack
            .vault(&self.target_name(target))
            .set_secret("plain", "changed-in-the-target", None, None, true)
            .await
            .unwrap();
        "secret plain".into()
    }

    async fn touch_source(&self, key: &str) {
        assert_eq!(key, "secret plain");
        self.stack
            .vault(SOURCE)
            .set_secret("plain", PLAIN_VALUE, None, None, true)
            .await
            .unwrap();
    }

    fn secrets(&self) -> Vec<String> {
        let pfx = REAL_PFX.trim();
        let mut secrets: Vec<String> = vec![
            PLAIN_VALUE.into(),
            TYPED_VALUE.into(),
            TARGET_SECRET.into(),
            SOURCE_SECRET.into(),
            // A token's header.
            "eyJ".into(),
            // A stretch of the imported certificate's PFX.
            pfx[pfx.len() / 2..pfx.len() / 2 + 48].into(),
        ];
        secrets.extend((0..BULK).map(bulk_value));
        secrets
    }
}
