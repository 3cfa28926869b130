//! Key Vault (`Microsoft.KeyVault/vaults`): secrets, keys and certificates, through the official
//! `azure_security_keyvault_*` 1.x clients. This module holds the plugin's claims, its plan (typed
//! per item kind, owning the clients of both vaults) and its apply; one module per item kind
//! (`secret`, `key`, `certificate`), soft-delete in `deleted`, the clients in `clients`.
//!
//! What can and cannot be copied, and what atg does instead:
//! - Secrets: template writes a placeholder value with the source's content type, tags and
//!   attributes and never reads a value; replication copies the current value. A disabled secret's
//!   value cannot be read, so it is written disabled with a placeholder and reported partial.
//!   Certificate-backed secrets go with their certificate. Older versions are counted, not copied.
//! - Keys: private key material never leaves a vault, so a key with the same type, size or curve,
//!   operations, attributes and tags is created: new key material, reported as such.
//! - Certificates: replication imports the backing PFX/PEM when the key is exportable; otherwise
//!   (and in template mode) a certificate whose issuer is `Self`, or `Unknown` (it was imported),
//!   is created self-signed from the source policy; certificates from a CA are skipped (atg
//!   places no orders). A certificate owns the secret and the key of its name: when the target
//!   has a plain secret or key of that name, the certificate is never written over it (skipped
//!   with `--on-conflict skip`, failed otherwise, the reason naming what to rename or delete).
//! - A name that is soft-deleted in the target is recovered or purged per `--on-deleted`; the
//!   plan lists the target's deleted items to say so, and a recovered item's outcome is
//!   `recovered` (what followed in its action).

// The SDK's models are `#[non_exhaustive]`: they can only be built from `Default` and then
// assigned field by field.
#![allow(clippy::field_reassign_with_default, clippy::assigning_clones)]
// Item flows return the final `ItemStatus` early through `Err`; it is not an error type.
#![allow(clippy::result_large_err)]

mod certificate;
mod clients;
mod deleted;
mod key;
mod secret;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::kit::{self, Decision, Existing, Newer, Typed};
use super::{
    ApplyPlan, Capability, DataPlanePlugin, Discovery, ItemKindInfo, ItemStatus, Job, Limit, Mode,
    OnConflict, PermissionInfo, Plan, PlannedAction, PlannedItem, PluginContext, PluginError,
    PluginInfo, Side, EXTRA,
};
use crate::azure::Cloud;
use clients::Vaults;
use deleted::{DeletedNames, DeletedTrail};

pub use clients::vault_url;

pub struct KeyVaultPlugin;

const SECRET: &str = "secret";
const KEY: &str = "key";
const CERTIFICATE: &str = "certificate";

static INFO: PluginInfo = PluginInfo {
    name: "key-vault",
    resource_types: &["Microsoft.KeyVault/vaults"],
    modes: &[Mode::Template, Mode::Replication],
    item_kinds: &[
        ItemKindInfo {
            name: SECRET,
            template: "same name, content type, tags and attributes; placeholder value; no value read",
            replication: "current value and metadata; older versions counted, not copied; disabled secrets written disabled with a placeholder",
        },
        ItemKindInfo {
            name: KEY,
            template: "new key with the same type, size/curve, operations, attributes and tags",
            replication: "same as template: key material never leaves a vault, so the target key is new material",
        },
        ItemKindInfo {
            name: CERTIFICATE,
            template: "created self-signed from the source policy when the issuer is Self or Unknown (imported); CA-issued ones skipped",
            replication: "imported with its private key when exportable; otherwise as template",
        },
    ],
    permissions: &[
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Source,
            data_actions: &[
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/certificates/read",
            ],
            roles: &["Key Vault Reader"],
        },
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Target,
            data_actions: &[
                "Microsoft.KeyVault/vaults/secrets/setSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                "Microsoft.KeyVault/vaults/keys/create/action",
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/certificates/create/action",
                "Microsoft.KeyVault/vaults/certificates/read",
                "Microsoft.KeyVault/vaults/deletedSecrets/recover/action (with --on-deleted recover)",
            ],
            roles: &[
                "Key Vault Secrets Officer",
                "Key Vault Crypto Officer",
                "Key Vault Certificates Officer",
            ],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Source,
            data_actions: &[
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/certificates/read",
            ],
            roles: &["Key Vault Secrets User", "Key Vault Reader"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Target,
            data_actions: &[
                "Microsoft.KeyVault/vaults/secrets/setSecret/action",
                "Microsoft.KeyVault/vaults/secrets/getSecret/action (to skip identical values)",
                "Microsoft.KeyVault/vaults/keys/create/action",
                "Microsoft.KeyVault/vaults/certificates/import/action",
                "Microsoft.KeyVault/vaults/certificates/create/action",
            ],
            roles: &[
                "Key Vault Secrets Officer",
                "Key Vault Crypto Officer",
                "Key Vault Certificates Officer",
            ],
        },
    ],
    notes: &[
        "only the current version of each secret is copied; older versions are counted in the report",
        "key material is never exported: target keys are new keys with the same shape",
        "no certificate is ordered from a CA",
    ],
    limits: &[
        Limit {
            capability: Capability::CopyValue,
            kinds: &[KEY],
            reason: "key material never leaves a vault: the target key is new material with the source key's shape",
        },
        Limit {
            capability: Capability::IfSourceNewer,
            kinds: &[],
            reason: "a vault item's modification time is when it was written to that vault, not comparable across vaults: --on-conflict if-source-newer acts as skip",
        },
    ],
};

/// Key Vault keeps no modification time comparable across vaults: a written item's `updated`
/// is when atg wrote it, not the source's, so "newer" cannot be judged (it acts as `skip`).
const NO_COMPARABLE_TIME: Newer = Newer::Unknown("key vault has no comparable modification time");

/// A compared plan (`identical`, or `overwrite` with what differs) as `--on-conflict` will
/// carry it out: written, skipped or failed, with what differs. Other plans pass unchanged.
fn decided(policy: OnConflict, what: &str, planned: PlannedAction) -> PlannedAction {
    match planned {
        PlannedAction::Identical => {
            Decision::new(policy, what, Existing::Identical).planned(true, Vec::new())
        }
        PlannedAction::Overwrite { differs } => {
            Decision::new(policy, what, Existing::Differs(NO_COMPARABLE_TIME))
                .planned(true, differs)
        }
        other => other,
    }
}

/// A modification time as a fingerprint part (`?` when the service gave none).
fn stamp(updated: Option<time::OffsetDateTime>) -> String {
    updated.map_or_else(|| "?".to_owned(), |t| t.unix_timestamp().to_string())
}

/// What a plan's decision on an item was made from: when each side last changed (`updated`
/// reads it; a new version or new metadata changes it), and whether the target's name is
/// soft-deleted when the target lacks the item. Never a value.
fn fingerprint<T>(
    source: &T,
    target: Option<&T>,
    updated: impl Fn(&T) -> Option<time::OffsetDateTime>,
    deleted_in_target: bool,
) -> String {
    let target = match target {
        Some(target) => stamp(updated(target)),
        None if deleted_in_target => "deleted".to_owned(),
        None => "absent".to_owned(),
    };
    format!("source {}, target {target}", stamp(updated(source)))
}

/// What `--on-conflict` does with an item the target holds and that differs: `None` to write
/// over it, else its outcome.
fn on_differs(policy: OnConflict, what: &str) -> Option<ItemStatus> {
    Decision::new(policy, what, Existing::Differs(NO_COMPARABLE_TIME)).settled()
}

#[async_trait]
impl DataPlanePlugin for KeyVaultPlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    fn validate_endpoints(
        &self,
        pair: &crate::inventory::ResourcePair,
        cloud: Cloud,
    ) -> Result<(), String> {
        for (side, resource) in [("source", &pair.source), ("target", &pair.target)] {
            vault_url(resource, cloud).map_err(|error| format!("{side}: {error}"))?;
        }
        Ok(())
    }

    /// Reads both vaults and plans every item; the plan keeps the clients for apply.
    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let vaults = Vaults::new(ctx, job)?;
        let mut discovery = Discovery::default();
        for (fact, url) in [
            ("source_vault", &vaults.source_url),
            ("target_vault", &vaults.target_url),
        ] {
            discovery
                .facts
                .insert(fact.into(), Value::String(url.to_string()));
        }
        let secret_listings = secret::listings(&vaults).await?;
        let deleted = DeletedNames::list(&vaults.target).await?;
        if let Some(note) = &deleted.unlisted {
            discovery
                .facts
                .insert("target_deleted_items".into(), Value::String(note.clone()));
        }
        let secrets = secret::plan(ctx, job, &vaults, &secret_listings, &deleted).await?;
        let key_listings = key::listings(&vaults).await?;
        let keys = key::plan(job, &vaults, &key_listings, &deleted).await?;
        let certificate_listings = certificate::listings(&vaults).await?;
        let certificates = certificate::plan(
            job,
            &vaults,
            &certificate_listings,
            &deleted,
            &secret::plain_in_target(&secret_listings),
            &key::plain_in_target(&key_listings),
        )
        .await?;
        for (fact, count) in [
            ("secrets", secret_listings.source.len()),
            ("keys", key_listings.source.len()),
            ("certificates", certificate_listings.source.len()),
        ] {
            discovery.facts.insert(fact.into(), Value::from(count));
        }
        // `atg verify` lists, after each kind, the target's items the source lacks (a
        // certificate's own secret and key go with the certificate).
        let extras = |kind, names: Vec<String>| {
            names
                .into_iter()
                .filter(|_| job.verify)
                .map(move |name| Typed {
                    item: PlannedItem {
                        kind,
                        name,
                        action: PlannedAction::Extra,
                        notes: Vec::new(),
                        fingerprint: None,
                    },
                    detail: ItemPlan::Extra,
                })
        };
        let mut items: Vec<Typed<ItemPlan>> = secrets
            .into_iter()
            .map(|typed| Typed {
                item: typed.item,
                detail: ItemPlan::Secret(typed.detail),
            })
            .collect();
        items.extend(extras(SECRET, secret::extras_in_target(&secret_listings)));
        items.extend(keys.into_iter().map(|item| Typed {
            item,
            detail: ItemPlan::Key,
        }));
        items.extend(extras(KEY, key::extras_in_target(&key_listings)));
        items.extend(certificates.into_iter().map(|item| Typed {
            item,
            detail: ItemPlan::Certificate,
        }));
        items.extend(extras(
            CERTIFICATE,
            certificate::extras_in_target(&certificate_listings),
        ));
        discovery.items = items.iter().map(|typed| typed.item.clone()).collect();
        Ok(Plan {
            discovery,
            apply: Box::new(VaultPlan {
                items,
                vaults: Arc::new(vaults),
            }),
        })
    }
}

/// The plugin's own plan of one item, by kind.
#[derive(Clone, Debug)]
enum ItemPlan {
    /// The secret's metadata on both sides, as the listings showed it.
    Secret(secret::SecretPlan),
    /// Keys and certificates are read again when applied: their comparison needs the full
    /// item (public key, policy), which the listings do not carry.
    Key,
    Certificate,
    /// Only in the target (`atg verify`): never written.
    Extra,
}

/// The plan of one vault pair: every item, and the clients of both vaults planning built.
struct VaultPlan {
    items: Vec<Typed<ItemPlan>>,
    vaults: Arc<Vaults>,
}

#[async_trait]
impl ApplyPlan for VaultPlan {
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        self.items
            .retain(|typed| keep(typed.item.kind, &typed.item.name));
    }

    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let VaultPlan { items, vaults } = *self;
        let concurrency = ctx.item_slots.available_permits().max(1);
        kit::apply_each(ctx, job, items, concurrency, |typed| {
            let vaults = vaults.clone();
            async move {
                let status = ctx
                    .in_item_slot(Box::pin(apply_item(ctx, job, &vaults, &typed)))
                    .await
                    .unwrap_or_else(ItemStatus::from);
                (status, typed.item.notes)
            }
        })
        .await;
        Ok(())
    }
}

async fn apply_item(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    typed: &Typed<ItemPlan>,
) -> ItemStatus {
    let item = &typed.item;
    match &item.action {
        PlannedAction::Skip { reason } => {
            return ItemStatus::Skipped {
                reason: reason.clone(),
            }
        }
        PlannedAction::Fail { reason } => {
            return ItemStatus::Failed {
                error: reason.clone(),
            }
        }
        PlannedAction::Extra => {
            return ItemStatus::Skipped {
                reason: EXTRA.into(),
            }
        }
        PlannedAction::Create
        | PlannedAction::Overwrite { .. }
        | PlannedAction::Identical
        | PlannedAction::Compare
        | PlannedAction::Recover
        | PlannedAction::Purge => {}
    }
    // The item flows below report a write as `created`; whether it went over an item the
    // target held is what planning found.
    let existed = matches!(
        item.action,
        PlannedAction::Overwrite { .. } | PlannedAction::Identical | PlannedAction::Compare
    );
    let trail = DeletedTrail::default();
    let name = &item.name;
    let status = match &typed.detail {
        ItemPlan::Secret(plan) => secret::apply(ctx, job, vaults, &trail, name, plan.clone()).await,
        ItemPlan::Key => key::copy_key(ctx, job, vaults, &trail, name).await,
        ItemPlan::Certificate => {
            certificate::copy_certificate(ctx, job, vaults, &trail, name).await
        }
        ItemPlan::Extra => ItemStatus::Skipped {
            reason: EXTRA.into(),
        },
    };
    match trail.outcome(status) {
        ItemStatus::Created { action } => ItemStatus::written(existed, action),
        other => other,
    }
}
