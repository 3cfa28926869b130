//! Key Vault (`Microsoft.KeyVault/vaults`): secrets, keys and certificates, through the official
//! `azure_security_keyvault_*` 1.x clients.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::http::poller::PollerOptions;
use azure_core::http::Url;
use azure_security_keyvault_certificates::models::{
    Certificate, CertificateAttributes, CertificateClientCreateCertificateOptions,
    CertificatePolicy, CreateCertificateParameters, ImportCertificateParameters, IssuerParameters,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, Key, KeyAttributes, KeyClientGetKeyOptions, KeyType,
    UpdateKeyPropertiesParameters,
};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::models::{
    Secret, SecretAttributes, SecretClientGetSecretOptions, SecretProperties, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    apply_each, ApplyPlan, Capability, DataPlanePlugin, Difference, Discovery, ItemKindInfo,
    ItemStatus, Job, Limit, Mode, OnConflict, OnDeleted, PermissionInfo, Plan, PlannedAction,
    PlannedItem, PluginContext, PluginError, PluginInfo, Side, EXTRA,
};
use crate::azure::{AzureError, AzureHttp, Cloud, WriteAccess};
use crate::inventory::Resource;

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

/// The metadata of a secret that atg compares and copies (never the value).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SecretMeta {
    content_type: Option<String>,
    tags: BTreeMap<String, String>,
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
}

impl SecretMeta {
    fn from_parts(
        content_type: Option<&String>,
        tags: Option<&HashMap<String, String>>,
        attributes: Option<&SecretAttributes>,
    ) -> Self {
        SecretMeta {
            content_type: content_type.cloned(),
            tags: tags
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
            not_before: attributes
                .and_then(|a| a.not_before)
                .map(time::OffsetDateTime::unix_timestamp),
            expires: attributes
                .and_then(|a| a.expires)
                .map(time::OffsetDateTime::unix_timestamp),
        }
    }

    fn of_properties(p: &SecretProperties) -> Self {
        Self::from_parts(
            p.content_type.as_ref(),
            p.tags.as_ref(),
            p.attributes.as_ref(),
        )
    }

    fn of_secret(s: &Secret) -> Self {
        Self::from_parts(
            s.content_type.as_ref(),
            s.tags.as_ref(),
            s.attributes.as_ref(),
        )
    }

    fn attributes(&self) -> SecretAttributes {
        let mut attributes = SecretAttributes::default();
        attributes.enabled = Some(self.enabled);
        attributes.not_before = self
            .not_before
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
        attributes.expires = self
            .expires
            .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
        attributes
    }

    /// What of the metadata differs from `other` (what apply would write).
    fn differences(&self, other: &SecretMeta) -> Vec<Difference> {
        let mut differs = Vec::new();
        if self.content_type != other.content_type {
            differs.push(Difference::ContentType);
        }
        if self.tags != other.tags {
            differs.push(Difference::Tags);
        }
        if (self.enabled, self.not_before, self.expires)
            != (other.enabled, other.not_before, other.expires)
        {
            differs.push(Difference::Attributes);
        }
        differs
    }

    fn tags(&self) -> Option<HashMap<String, String>> {
        if self.tags.is_empty() {
            None
        } else {
            Some(self.tags.clone().into_iter().collect())
        }
    }
}

/// What discovery carries to apply for a secret.
#[derive(Debug, Serialize, Deserialize)]
struct SecretDetail {
    source: SecretMeta,
    target: Option<SecretMeta>,
}

/// The clients of one vault.
struct VaultClients {
    secrets: SecretClient,
    keys: KeyClient,
    certificates: CertificateClient,
}

impl VaultClients {
    fn new(
        url: &Url,
        http: &AzureHttp,
        credential: &Arc<dyn TokenCredential>,
        access: WriteAccess,
    ) -> Result<Self, PluginError> {
        let endpoint = url.as_str();
        let options = || http.client_options(url, access);
        let secrets = SecretClient::new(
            endpoint,
            credential.clone(),
            Some(SecretClientOptions {
                client_options: options(),
                ..SecretClientOptions::default()
            }),
        )
        .map_err(|e| PluginError::azure("create secret client", e))?;
        let keys = KeyClient::new(
            endpoint,
            credential.clone(),
            Some(KeyClientOptions {
                client_options: options(),
                ..KeyClientOptions::default()
            }),
        )
        .map_err(|e| PluginError::azure("create key client", e))?;
        let certificates = CertificateClient::new(
            endpoint,
            credential.clone(),
            Some(CertificateClientOptions {
                client_options: options(),
                ..CertificateClientOptions::default()
            }),
        )
        .map_err(|e| PluginError::azure("create certificate client", e))?;
        Ok(VaultClients {
            secrets,
            keys,
            certificates,
        })
    }
}

/// The vault's data-plane URL: `properties.vaultUri` when present, else derived from the name.
/// Refused unless it is an https URL on the selected cloud's Key Vault suffix.
pub fn vault_url(resource: &Resource, cloud: Cloud) -> Result<Url, PluginError> {
    let uri = resource
        .properties
        .get_str("vaultUri")
        .unwrap_or_else(|| cloud.vault_uri(&resource.name));
    let url = Url::parse(&uri)
        .map_err(|e| PluginError::Invalid(format!("vault URI `{uri}` is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let suffix = cloud.key_vault_suffix();
    let label = host.strip_suffix(suffix).unwrap_or_default();
    if url.scheme() != "https"
        || label.is_empty()
        || label.contains('.')
        || url.port().is_some_and(|p| p != 443)
    {
        return Err(PluginError::Invalid(format!(
            "vault URI `{}://{host}` is not a {cloud} Key Vault (https://<name>{suffix}/): refusing to send credentials there",
            url.scheme()
        )));
    }
    Url::parse(&format!("https://{host}/"))
        .map_err(|e| PluginError::Invalid(format!("vault URI `{uri}`: {e}")))
}

fn name_of(id: Option<&String>) -> Option<String> {
    let id = id?;
    let url = Url::parse(id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    segments.get(1).map(|s| (*s).to_owned())
}

fn secret_name(properties: &SecretProperties) -> Option<String> {
    properties
        .resource_id()
        .ok()
        .map(|id| id.name)
        .or_else(|| name_of(properties.id.as_ref()))
}

/// Answers `None` for 404 (absent), the error otherwise.
fn absent_on_404<T>(result: azure_core::Result<T>) -> Result<Option<T>, AzureError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) => {
            let error = AzureError::from(error);
            if error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

fn is_deleted_conflict(error: &AzureError) -> bool {
    error.status == Some(409)
        && (error.has_code("ObjectIsDeletedButRecoverable")
            || error.message.contains("deleted but recoverable"))
}

/// An answer lost after the write may have taken effect (reset, 5xx, timeout): the retry
/// policy does not resend writes that add a version. 429 is never carried out.
fn is_lost_answer(error: &AzureError) -> bool {
    error.is_retryable() && error.status() != Some(429)
}

fn is_being_recovered_or_purged(error: &AzureError) -> bool {
    error.status == Some(409)
}

fn failed(operation: &str, error: &AzureError) -> ItemStatus {
    ItemStatus::Failed {
        error: format!("{operation}: {error}"),
    }
}

async fn list_all<T, P>(
    pager: azure_core::Result<azure_core::http::Pager<P>>,
    operation: &str,
) -> Result<Vec<T>, PluginError>
where
    P: azure_core::http::pager::Page<Item = T> + serde::de::DeserializeOwned + Send + 'static,
    T: Send + 'static,
{
    let pager = pager.map_err(|e| PluginError::azure(operation, e))?;
    pager
        .try_collect()
        .await
        .map_err(|e| PluginError::azure(operation, e))
}

/// Names soft-deleted in the target, by kind (lowercase), so a dry run can plan what
/// `--on-deleted` will do with them.
#[derive(Default)]
struct DeletedNames {
    secrets: HashSet<String>,
    keys: HashSet<String>,
    certificates: HashSet<String>,
    /// Why the deleted items could not be listed (then they are found when written, as before).
    unlisted: Option<String>,
}

impl DeletedNames {
    async fn list(target: &VaultClients) -> Result<Self, PluginError> {
        fn names<'a>(ids: impl Iterator<Item = Option<&'a String>>) -> HashSet<String> {
            ids.filter_map(name_of)
                .map(|n| n.to_ascii_lowercase())
                .collect()
        }
        let listed = async {
            let secrets = list_all(
                target.secrets.list_deleted_secret_properties(None),
                "list the target's deleted secrets",
            )
            .await?;
            let keys = list_all(
                target.keys.list_deleted_key_properties(None),
                "list the target's deleted keys",
            )
            .await?;
            let certificates = list_all(
                target
                    .certificates
                    .list_deleted_certificate_properties(None),
                "list the target's deleted certificates",
            )
            .await?;
            Ok::<_, PluginError>(DeletedNames {
                secrets: names(secrets.iter().map(|s| s.id.as_ref())),
                keys: names(keys.iter().map(|k| k.kid.as_ref())),
                certificates: names(certificates.iter().map(|c| c.id.as_ref())),
                unlisted: None,
            })
        };
        match listed.await {
            Ok(names) => Ok(names),
            // Listing deleted items needs its own permission (`list` on deleted objects); without
            // it, a deleted name is still found and handled when it is written.
            Err(PluginError::Azure { operation, source }) if source.status == Some(403) => {
                Ok(DeletedNames {
                    unlisted: Some(format!(
                        "{operation}: forbidden; names soft-deleted in the target are planned `create` and handled per --on-deleted when written"
                    )),
                    ..DeletedNames::default()
                })
            }
            Err(error) => Err(error),
        }
    }

    /// The plan for a name absent from the target: created, or `--on-deleted`'s action when
    /// the name is soft-deleted there.
    fn plan(&self, kind: &str, name: &str, policy: OnDeleted) -> PlannedAction {
        let names = match kind {
            SECRET => &self.secrets,
            KEY => &self.keys,
            _ => &self.certificates,
        };
        if !names.contains(&name.to_ascii_lowercase()) {
            return PlannedAction::Create;
        }
        match policy {
            OnDeleted::Recover => PlannedAction::Recover,
            OnDeleted::Purge => PlannedAction::Purge,
            OnDeleted::Fail => PlannedAction::Fail {
                reason: deleted_refused(kind),
            },
        }
    }
}

/// Replication: compares the values of the secrets both vaults hold (in memory, never printed
/// or kept), so a plan says `overwrite` with `value` among what differs, or `identical`. A
/// value that cannot be read leaves the item `compare` with a note saying why.
async fn plan_secret_values(
    ctx: &PluginContext,
    source: &VaultClients,
    target: &VaultClients,
    items: &mut [PlannedItem],
) {
    let to_read: Vec<(usize, String, SecretDetail)> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            matches!(
                item.action,
                PlannedAction::Identical | PlannedAction::Overwrite { .. }
            )
        })
        .filter_map(|(index, item)| Some((index, item.name.clone(), item.plan().ok()?)))
        .collect();
    let slots = ctx.item_slots.clone();
    let compared: Vec<(usize, Result<bool, AzureError>)> =
        futures::stream::iter(to_read.into_iter().map(|(index, name, detail)| {
            let slots = slots.clone();
            async move {
                let _permit = slots.acquire().await;
                // A disabled source secret's value cannot be read: apply compares metadata only.
                if !detail.source.enabled {
                    return (index, Ok(true));
                }
                let same = async {
                    let source_value = read_value(&source.secrets, &name).await?;
                    let target_value = read_value(&target.secrets, &name).await?;
                    let value = |secret: Option<Secret>| {
                        secret
                            .and_then(|s| s.value)
                            .map(crate::azure::Sensitive::new)
                    };
                    Ok(match (value(source_value), value(target_value)) {
                        (Some(a), Some(b)) => a == b,
                        (None, _) => true,
                        (Some(_), None) => false,
                    })
                };
                (index, same.await)
            }
        }))
        .buffer_unordered(ctx.item_slots.available_permits().max(1))
        .collect()
        .await;
    for (index, same) in compared {
        let item = &mut items[index];
        let mut differs = match &item.action {
            PlannedAction::Overwrite { differs } => differs.clone(),
            _ => Vec::new(),
        };
        match same {
            Ok(true) => {}
            Ok(false) => differs.push(Difference::Value),
            Err(error) => {
                item.action = PlannedAction::Compare;
                item.notes
                    .push(format!("value not compared in the plan: {error}"));
                continue;
            }
        }
        item.action = PlannedAction::compared(differs);
    }
}

const TEMPLATE_KEEPS_KEY_MATERIAL: &str =
    "exists in the target with a different type or size: template mode never replaces key material";

/// The plan for a key both vaults hold: what differs between the two current versions.
async fn plan_existing_key(
    source: &VaultClients,
    target: &VaultClients,
    name: &str,
) -> Result<PlannedAction, PluginError> {
    let read = |client, side| async move {
        get_key(client, name)
            .await
            .map_err(|error| PluginError::azure(format!("read {side} key"), error))
    };
    let source_shape = read(&source.keys, "source")
        .await?
        .as_ref()
        .and_then(KeyShape::of);
    let target_shape = read(&target.keys, "target")
        .await?
        .as_ref()
        .and_then(KeyShape::of);
    let (Some(source_shape), Some(target_shape)) = (source_shape, target_shape) else {
        // Gone since the listing, or without a public key: decided when applied.
        return Ok(PlannedAction::Compare);
    };
    let mut differs = Vec::new();
    if !source_shape.same_kind(&target_shape) {
        differs.push(Difference::KeyType);
    }
    if source_shape.operations != target_shape.operations {
        differs.push(Difference::Operations);
    }
    if source_shape.tags != target_shape.tags {
        differs.push(Difference::Tags);
    }
    if (
        source_shape.enabled,
        source_shape.not_before,
        source_shape.expires,
    ) != (
        target_shape.enabled,
        target_shape.not_before,
        target_shape.expires,
    ) {
        differs.push(Difference::Attributes);
    }
    Ok(PlannedAction::compared(differs))
}

/// An `overwrite` as `--on-conflict` will carry it out: written, skipped or failed (the same
/// words apply uses), with what differs.
fn with_conflict_policy(policy: OnConflict, what: &str, planned: PlannedAction) -> PlannedAction {
    let PlannedAction::Overwrite { differs } = &planned else {
        return planned;
    };
    let differs = Difference::describe(differs);
    match conflict(policy, what) {
        Some(ItemStatus::Failed { error }) => PlannedAction::Fail {
            reason: format!("{error}: {differs}"),
        },
        Some(ItemStatus::Skipped { reason }) => PlannedAction::Skip {
            reason: format!("{reason}: {differs}"),
        },
        _ => planned,
    }
}

/// Names as Key Vault compares them (case-insensitively).
fn lowercase_names(names: impl Iterator<Item = String>) -> HashSet<String> {
    names.map(|name| name.to_ascii_lowercase()).collect()
}

/// `atg verify`: the target's items of `kind` the source lacks, planned [`PlannedAction::Extra`].
fn push_extras(
    discovery: &mut Discovery,
    kind: &'static str,
    source_names: &HashSet<String>,
    target_names: impl Iterator<Item = String>,
) {
    discovery.items.extend(
        target_names
            .filter(|name| !source_names.contains(&name.to_ascii_lowercase()))
            .map(|name| PlannedItem {
                kind,
                name,
                action: PlannedAction::Extra,
                notes: Vec::new(),
                detail: Value::Null,
            }),
    );
}

fn deleted_refused(kind: &str) -> String {
    format!("the {kind} name is deleted but recoverable in the target (--on-deleted fail)")
}

/// A certificate `name` would take over the target's `taken` (a secret and/or a key of that
/// name that are not certificate-backed): Key Vault stores a certificate's key pair and value
/// as a key and a secret of its own name. Writing would replace the user's secret value (and
/// key) with the certificate's, so it is never done: skipped with `--on-conflict skip`, failed
/// otherwise (overwrite and if-source-newer included), with what to do.
fn name_taken(policy: OnConflict, name: &str, taken: &str) -> PlannedAction {
    let reason = format!(
        "the target has {taken} named `{name}` that is not certificate-backed: a certificate of that name would replace it with its own; rename or delete it in the target, then run again"
    );
    match policy {
        OnConflict::Skip => PlannedAction::Skip {
            reason: format!("{reason} (--on-conflict skip)"),
        },
        OnConflict::Fail | OnConflict::Overwrite | OnConflict::IfSourceNewer => {
            PlannedAction::Fail { reason }
        }
    }
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

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let discovery = discover(ctx, job).await?;
        Ok(Plan {
            discovery: discovery.clone(),
            apply: Box::new(VaultPlan { discovery }),
        })
    }
}

/// Reads both sides and plans every item.
async fn discover(ctx: &PluginContext, job: &Job) -> Result<Discovery, PluginError> {
    let cloud = ctx.http.cloud;
    let source_url = vault_url(&job.pair.source, cloud)?;
    let target_url = vault_url(&job.pair.target, cloud)?;
    let source = VaultClients::new(
        &source_url,
        &ctx.http,
        &ctx.source.credential,
        WriteAccess::ReadOnly,
    )?;
    let target = VaultClients::new(
        &target_url,
        &ctx.http,
        &ctx.target.credential,
        WriteAccess::ReadOnly,
    )?;

    let mut discovery = Discovery::default();
    discovery
        .facts
        .insert("source_vault".into(), Value::String(source_url.to_string()));
    discovery
        .facts
        .insert("target_vault".into(), Value::String(target_url.to_string()));

    // Secrets.
    let source_secrets: Vec<SecretProperties> = list_all(
        source.secrets.list_secret_properties(None),
        "list source secrets",
    )
    .await?;
    let target_secrets: Vec<SecretProperties> = list_all(
        target.secrets.list_secret_properties(None),
        "list target secrets",
    )
    .await?;
    let target_by_name: HashMap<String, SecretMeta> = target_secrets
        .iter()
        .filter_map(|p| {
            Some((
                secret_name(p)?.to_ascii_lowercase(),
                SecretMeta::of_properties(p),
            ))
        })
        .collect();

    // Names a certificate would take over: secrets and keys that are not its own.
    let target_plain_secrets: HashSet<String> = target_secrets
        .iter()
        .filter(|p| p.managed != Some(true))
        .filter_map(secret_name)
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let deleted = DeletedNames::list(&target).await?;
    if let Some(note) = &deleted.unlisted {
        discovery
            .facts
            .insert("target_deleted_items".into(), Value::String(note.clone()));
    }

    let mut secret_items = Vec::with_capacity(source_secrets.len());
    for properties in &source_secrets {
        let Some(name) = secret_name(properties) else {
            return Err(PluginError::Invalid(format!(
                "the source vault listed a secret without a usable id ({:?})",
                properties.id
            )));
        };
        let meta = SecretMeta::of_properties(properties);
        let target_meta = target_by_name.get(&name.to_ascii_lowercase()).cloned();
        let action = if properties.managed == Some(true) {
            PlannedAction::Skip {
                reason: "certificate-backed secret: copied with its certificate".into(),
            }
        } else if let Some(target_meta) = &target_meta {
            // Metadata from the listings; the value (replication) is compared below.
            PlannedAction::compared(meta.differences(target_meta))
        } else {
            deleted.plan(SECRET, &name, job.on_deleted)
        };
        let detail = serde_json::to_value(SecretDetail {
            source: meta,
            target: target_meta,
        })
        .unwrap_or(Value::Null);
        secret_items.push(PlannedItem {
            kind: SECRET,
            name,
            action,
            notes: Vec::new(),
            detail,
        });
    }
    // Count older versions (only the current one is copied), a bounded number at a time.
    let slots = ctx.item_slots.clone();
    let to_count: Vec<(usize, String)> = secret_items
        .iter()
        .enumerate()
        .filter(|(_, item)| {
            !matches!(
                item.action,
                PlannedAction::Skip { .. } | PlannedAction::Fail { .. }
            )
        })
        .map(|(index, item)| (index, item.name.clone()))
        .collect();
    let client = &source.secrets;
    let counted: Vec<(usize, Result<usize, PluginError>)> =
        futures::stream::iter(to_count.into_iter().map(|(index, name)| {
            let slots = slots.clone();
            async move {
                let _permit = slots.acquire().await;
                let versions: Result<Vec<SecretProperties>, PluginError> = list_all(
                    client.list_secret_properties_versions(&name, None),
                    "list source secret versions",
                )
                .await;
                (index, versions.map(|v| v.len()))
            }
        }))
        .buffer_unordered(ctx.item_slots.available_permits().max(1))
        .collect()
        .await;
    if job.mode == Mode::Replication {
        plan_secret_values(ctx, &source, &target, &mut secret_items).await;
    }
    for item in &mut secret_items {
        item.action = with_conflict_policy(job.on_conflict, SECRET, item.action.clone());
    }
    for (index, versions) in counted {
        let versions = versions?;
        if versions > 1 {
            secret_items[index].notes.push(format!(
                "{} older version(s) not copied (only the current version is)",
                versions - 1
            ));
        }
    }
    discovery.items.extend(secret_items);
    if job.verify {
        let source_names = lowercase_names(source_secrets.iter().filter_map(secret_name));
        push_extras(
            &mut discovery,
            SECRET,
            &source_names,
            target_secrets
                .iter()
                .filter(|p| p.managed != Some(true))
                .filter_map(secret_name),
        );
    }

    // Keys.
    let source_keys: Vec<azure_security_keyvault_keys::models::KeyProperties> =
        list_all(source.keys.list_key_properties(None), "list source keys").await?;
    let target_keys: Vec<azure_security_keyvault_keys::models::KeyProperties> =
        list_all(target.keys.list_key_properties(None), "list target keys").await?;
    let target_key_names: Vec<String> = target_keys
        .iter()
        .filter_map(|k| name_of(k.kid.as_ref()))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let target_plain_keys: HashSet<String> = target_keys
        .iter()
        .filter(|k| k.managed != Some(true))
        .filter_map(|k| name_of(k.kid.as_ref()))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    for key in &source_keys {
        let Some(name) = name_of(key.kid.as_ref()) else {
            return Err(PluginError::Invalid(format!(
                "the source vault listed a key without a usable id ({:?})",
                key.kid
            )));
        };
        let action = if key.managed == Some(true) {
            PlannedAction::Skip {
                reason: "certificate-backed key: copied with its certificate".into(),
            }
        } else if target_key_names.contains(&name.to_ascii_lowercase()) {
            let planned = plan_existing_key(&source, &target, &name).await?;
            match with_conflict_policy(job.on_conflict, KEY, planned) {
                // As apply: past --on-conflict, template mode never makes key material.
                PlannedAction::Overwrite { differs }
                    if job.mode == Mode::Template && differs.contains(&Difference::KeyType) =>
                {
                    PlannedAction::Skip {
                        reason: TEMPLATE_KEEPS_KEY_MATERIAL.into(),
                    }
                }
                planned => planned,
            }
        } else {
            deleted.plan(KEY, &name, job.on_deleted)
        };
        let mut notes = Vec::new();
        let new_material = match &action {
            PlannedAction::Create | PlannedAction::Recover | PlannedAction::Purge => true,
            PlannedAction::Overwrite { differs } => differs.contains(&Difference::KeyType),
            _ => false,
        };
        if new_material {
            notes.push("new key material: data encrypted, wrapped or signed with the source key cannot be decrypted, unwrapped or verified with the target key".into());
        }
        discovery.items.push(PlannedItem {
            kind: KEY,
            name,
            action,
            notes,
            detail: Value::Null,
        });
    }

    if job.verify {
        let source_names =
            lowercase_names(source_keys.iter().filter_map(|k| name_of(k.kid.as_ref())));
        push_extras(
            &mut discovery,
            KEY,
            &source_names,
            target_keys
                .iter()
                .filter(|k| k.managed != Some(true))
                .filter_map(|k| name_of(k.kid.as_ref())),
        );
    }

    // Certificates.
    let source_certificates: Vec<
        azure_security_keyvault_certificates::models::CertificateProperties,
    > = list_all(
        source.certificates.list_certificate_properties(None),
        "list source certificates",
    )
    .await?;
    let target_certificates: Vec<
        azure_security_keyvault_certificates::models::CertificateProperties,
    > = list_all(
        target.certificates.list_certificate_properties(None),
        "list target certificates",
    )
    .await?;
    let target_certificate_names: Vec<String> = target_certificates
        .iter()
        .filter_map(|c| name_of(c.id.as_ref()))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    for certificate in &source_certificates {
        let Some(name) = name_of(certificate.id.as_ref()) else {
            return Err(PluginError::Invalid(format!(
                "the source vault listed a certificate without a usable id ({:?})",
                certificate.id
            )));
        };
        let lowercase = name.to_ascii_lowercase();
        let collision = match (
            target_plain_secrets.contains(&lowercase),
            target_plain_keys.contains(&lowercase),
        ) {
            (true, true) => Some("a secret and a key"),
            (true, false) => Some("a secret"),
            (false, true) => Some("a key"),
            (false, false) => None,
        };
        let action = if let Some(taken) = collision {
            name_taken(job.on_conflict, &name, taken)
        } else if target_certificate_names.contains(&lowercase) {
            CertificateCopy::plan_existing(&source, &target, job, &name).await
        } else {
            deleted.plan(CERTIFICATE, &name, job.on_deleted)
        };
        discovery.items.push(PlannedItem {
            kind: CERTIFICATE,
            name,
            action,
            notes: Vec::new(),
            detail: Value::Null,
        });
    }

    if job.verify {
        let source_names = lowercase_names(
            source_certificates
                .iter()
                .filter_map(|c| name_of(c.id.as_ref())),
        );
        push_extras(
            &mut discovery,
            CERTIFICATE,
            &source_names,
            target_certificates
                .iter()
                .filter_map(|c| name_of(c.id.as_ref())),
        );
    }

    discovery
        .facts
        .insert("secrets".into(), Value::from(source_secrets.len()));
    discovery
        .facts
        .insert("keys".into(), Value::from(source_keys.len()));
    discovery.facts.insert(
        "certificates".into(),
        Value::from(source_certificates.len()),
    );
    Ok(discovery)
}

/// The plan of one resource, as discovery made it.
struct VaultPlan {
    discovery: Discovery,
}

#[async_trait]
impl ApplyPlan for VaultPlan {
    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let discovery = self.discovery;
        let cloud = ctx.http.cloud;
        let source_url = vault_url(&job.pair.source, cloud)?;
        let target_url = vault_url(&job.pair.target, cloud)?;
        let vaults = Arc::new(Vaults {
            source: VaultClients::new(
                &source_url,
                &ctx.http,
                &ctx.source.credential,
                WriteAccess::ReadOnly,
            )?,
            target: VaultClients::new(
                &target_url,
                &ctx.http,
                &ctx.target.credential,
                ctx.target.access,
            )?,
        });
        let concurrency = ctx.item_slots.available_permits().max(1);
        apply_each(ctx, job, discovery.items, concurrency, |item| {
            let vaults = vaults.clone();
            async move {
                let status = ctx
                    .in_item_slot(Box::pin(apply_item(ctx, job, &vaults, &item)))
                    .await
                    .unwrap_or_else(ItemStatus::from);
                (status, item.notes)
            }
        })
        .await;
        Ok(())
    }
}

struct Vaults {
    source: VaultClients,
    target: VaultClients,
}

async fn apply_item(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    item: &PlannedItem,
) -> ItemStatus {
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
    // target held is what discovery found.
    let existed = matches!(
        item.action,
        PlannedAction::Overwrite { .. } | PlannedAction::Identical | PlannedAction::Compare
    );
    let trail = DeletedTrail::default();
    let status = match item.kind {
        SECRET => match item.plan::<SecretDetail>() {
            Ok(detail) => match job.mode {
                Mode::Template => {
                    template_secret(ctx, job, vaults, &trail, &item.name, detail).await
                }
                Mode::Replication => {
                    replicate_secret(ctx, job, vaults, &trail, &item.name, detail).await
                }
            },
            Err(status) => status,
        },
        KEY => copy_key(ctx, job, vaults, &trail, &item.name).await,
        CERTIFICATE => copy_certificate(ctx, job, vaults, &trail, &item.name).await,
        other => ItemStatus::Failed {
            error: format!("internal: unknown item kind `{other}`"),
        },
    };
    match trail.outcome(status) {
        ItemStatus::Created { action } => ItemStatus::written(existed, action),
        other => other,
    }
}

/// What `--on-deleted` did to an item's name in the target on the way, so the item's one
/// outcome says so.
#[derive(Default)]
struct DeletedTrail {
    recovered: AtomicBool,
    purged: AtomicBool,
}

impl DeletedTrail {
    fn outcome(&self, status: ItemStatus) -> ItemStatus {
        if self.recovered.load(Ordering::Relaxed) {
            match status {
                ItemStatus::Skipped { reason } => ItemStatus::Recovered {
                    action: format!("recovered, then left as it was: {reason}"),
                },
                ItemStatus::Identical => ItemStatus::Recovered {
                    action: "recovered, then left as it was: identical in the target".into(),
                },
                ItemStatus::Created { action } | ItemStatus::Overwritten { action } => {
                    ItemStatus::Recovered {
                        action: format!("recovered, then overwritten: {action}"),
                    }
                }
                ItemStatus::Partial { action, reason } => ItemStatus::Partial {
                    action: format!("recovered, then {action}"),
                    reason,
                },
                ItemStatus::Failed { error } => ItemStatus::Failed {
                    error: format!("recovered, then failed: {error}"),
                },
                other => other,
            }
        } else if self.purged.load(Ordering::Relaxed) {
            match status {
                ItemStatus::Created { action } => ItemStatus::Created {
                    action: format!("the deleted item purged, then {action}"),
                },
                ItemStatus::Partial { action, reason } => ItemStatus::Partial {
                    action: format!("the deleted item purged, then {action}"),
                    reason,
                },
                other => other,
            }
        } else {
            status
        }
    }
}

/// What happened when the name turned out to be soft-deleted in the target.
enum DeletedOutcome {
    /// Recovered: the item exists again and must be compared before writing.
    Recovered,
    /// Purged: the name is free, write again.
    Purged,
}

/// Applies `--on-deleted` to a name that is deleted but recoverable in the target.
async fn resolve_deleted(
    ctx: &PluginContext,
    policy: OnDeleted,
    kind: &str,
    name: &str,
    vaults: &Vaults,
) -> Result<DeletedOutcome, ItemStatus> {
    let target = &vaults.target;
    match policy {
        OnDeleted::Fail => Err(ItemStatus::Failed {
            error: deleted_refused(kind),
        }),
        OnDeleted::Recover => {
            let result = match kind {
                SECRET => target
                    .secrets
                    .recover_deleted_secret(name, None)
                    .await
                    .map(|_| ()),
                KEY => target
                    .keys
                    .recover_deleted_key(name, None)
                    .await
                    .map(|_| ()),
                _ => target
                    .certificates
                    .recover_deleted_certificate(name, None)
                    .await
                    .map(|_| ()),
            };
            // The retry policy resends a recovery whose answer was lost; when the first one took
            // effect the resend finds nothing deleted (404) or the name busy (409). Whether the
            // item is back is what the read-back below tells.
            let unanswered = match result {
                Ok(()) => None,
                Err(error) => {
                    let error = AzureError::from(error);
                    if !(error.is_not_found()
                        || error.status == Some(409)
                        || is_lost_answer(&error))
                    {
                        return Err(failed("recover the deleted item in the target", &error));
                    }
                    Some(error)
                }
            };
            // Recovery is eventually consistent: wait until the item reads back.
            let deadline = Instant::now() + ctx.settle_timeout;
            let mut wait = Duration::from_millis(200);
            loop {
                let present = match kind {
                    SECRET => absent_on_404(target.secrets.get_secret(name, None).await)
                        .map(|o| o.is_some()),
                    KEY => {
                        absent_on_404(target.keys.get_key(name, None).await).map(|o| o.is_some())
                    }
                    _ => absent_on_404(target.certificates.get_certificate(name, None).await)
                        .map(|o| o.is_some()),
                };
                match present {
                    Ok(true) => return Ok(DeletedOutcome::Recovered),
                    // A recovered but disabled secret answers 403 on get: it is back.
                    Err(error) if error.status == Some(403) => {
                        return Ok(DeletedOutcome::Recovered)
                    }
                    Ok(false) => {}
                    Err(error) if error.is_retryable() => {}
                    Err(error) => return Err(failed("read the recovered item", &error)),
                }
                if Instant::now() > deadline {
                    return Err(match &unanswered {
                        Some(error) => failed("recover the deleted item in the target", error),
                        None => ItemStatus::Failed {
                            error: "recovered item did not become readable in time".into(),
                        },
                    });
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
        OnDeleted::Purge => {
            let result = match kind {
                SECRET => target
                    .secrets
                    .purge_deleted_secret(name, None)
                    .await
                    .map(|_| ()),
                KEY => target.keys.purge_deleted_key(name, None).await.map(|_| ()),
                _ => target
                    .certificates
                    .purge_deleted_certificate(name, None)
                    .await
                    .map(|_| ()),
            };
            match result.map_err(AzureError::from) {
                Ok(()) => Ok(DeletedOutcome::Purged),
                // A resent purge whose first answer was lost after it took effect.
                Err(error) if error.is_not_found() => Ok(DeletedOutcome::Purged),
                Err(error) => Err(failed("purge the deleted item in the target", &error)),
            }
        }
    }
}

/// Runs a write, handling a soft-deleted name per policy. `write` is retried after a purge
/// while the service still reports the name in use (it settles within seconds).
async fn write_handling_deleted<F, Fut>(
    ctx: &PluginContext,
    job: &Job,
    kind: &str,
    name: &str,
    vaults: &Vaults,
    trail: &DeletedTrail,
    write: F,
) -> Result<WriteResult, ItemStatus>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), AzureError>>,
{
    match write().await {
        Ok(()) => Ok(WriteResult::Written),
        Err(error) if is_deleted_conflict(&error) => {
            match resolve_deleted(ctx, job.on_deleted, kind, name, vaults).await? {
                DeletedOutcome::Recovered => {
                    trail.recovered.store(true, Ordering::Relaxed);
                    Ok(WriteResult::Recovered)
                }
                DeletedOutcome::Purged => {
                    trail.purged.store(true, Ordering::Relaxed);
                    let deadline = Instant::now() + ctx.settle_timeout;
                    let mut wait = Duration::from_millis(250);
                    loop {
                        match write().await {
                            Ok(()) => return Ok(WriteResult::WrittenAfterPurge),
                            Err(error)
                                if is_being_recovered_or_purged(&error)
                                    && Instant::now() < deadline =>
                            {
                                tokio::time::sleep(wait).await;
                                wait = (wait * 2).min(Duration::from_secs(5));
                            }
                            // A lost answer, as below: the caller compares again.
                            Err(error) if is_lost_answer(&error) => {
                                tokio::time::sleep(LOST_ANSWER_PAUSE).await;
                                return Ok(WriteResult::Unconfirmed(error));
                            }
                            Err(error) => return Err(failed("write after purge", &error)),
                        }
                    }
                }
            }
        }
        // The answer was lost (reset, 5xx, timeout): the write may have taken effect, and the
        // retry policy does not resend writes that add a version. The caller compares again.
        Err(error) if is_lost_answer(&error) => {
            tokio::time::sleep(LOST_ANSWER_PAUSE).await;
            Ok(WriteResult::Unconfirmed(error))
        }
        Err(error) => Err(failed(&format!("write {kind}"), &error)),
    }
}

/// How often an item is compared and written: a recovery or a lost answer each cost a round.
const WRITE_ROUNDS: usize = 5;
const LOST_ANSWER_PAUSE: Duration = Duration::from_millis(500);

enum WriteResult {
    Written,
    WrittenAfterPurge,
    /// The name was recovered instead of written; the caller compares again.
    Recovered,
    /// The write's answer was lost (the error that lost it); the caller compares again and,
    /// when the target now holds what was written, reports it written rather than writing a
    /// second version.
    Unconfirmed(AzureError),
}

/// The failure when `WRITE_ROUNDS` ran out, with the last lost answer's error (its status) if
/// a round lost one.
fn kept_changing(what: &str, lost: Option<&AzureError>) -> ItemStatus {
    let error = match lost {
        Some(error) => format!(
            "the {what} kept changing state in the target (the last write's answer was lost: {error})"
        ),
        None => format!("the {what} kept changing state in the target"),
    };
    ItemStatus::Failed { error }
}

fn conflict(policy: OnConflict, what: &str) -> Option<ItemStatus> {
    match policy {
        OnConflict::Overwrite => None,
        OnConflict::Skip => Some(ItemStatus::Skipped {
            reason: format!("{what} exists in the target and differs (--on-conflict skip)"),
        }),
        OnConflict::Fail => Some(ItemStatus::Failed {
            error: format!("{what} exists in the target and differs (--on-conflict fail)"),
        }),
        // A written secret's `updated` is the time atg wrote it, not the source's, so "newer"
        // cannot be judged across vaults: the safe reading is to leave the target alone.
        OnConflict::IfSourceNewer => Some(ItemStatus::Skipped {
            reason: format!(
                "{what} exists in the target and differs; key vault has no comparable modification time (--on-conflict if-source-newer acts as skip)"
            ),
        }),
    }
}

async fn set_secret(
    vaults: &Vaults,
    name: &str,
    value: &str,
    meta: &SecretMeta,
) -> Result<(), AzureError> {
    let mut parameters = SetSecretParameters::default();
    parameters.value = Some(value.to_owned());
    parameters.content_type.clone_from(&meta.content_type);
    parameters.tags = meta.tags();
    parameters.secret_attributes = Some(meta.attributes());
    let content = parameters
        .try_into()
        .map_err(|e: azure_core::Error| AzureError::from(e))?;
    vaults
        .target
        .secrets
        .set_secret(name, content, None)
        .await
        .map(|_| ())
        .map_err(AzureError::from)
}

/// Sets content type, tags and attributes of the target's current version; never the value.
async fn update_secret_metadata(
    vaults: &Vaults,
    name: &str,
    meta: &SecretMeta,
) -> Result<(), AzureError> {
    let mut parameters = UpdateSecretPropertiesParameters::default();
    parameters.content_type.clone_from(&meta.content_type);
    parameters.tags = Some(meta.tags().unwrap_or_default());
    parameters.secret_attributes = Some(meta.attributes());
    let content = parameters.try_into().map_err(AzureError::from)?;
    vaults
        .target
        .secrets
        .update_secret_properties(name, content, None)
        .await
        .map(|_| ())
        .map_err(AzureError::from)
}

/// Template: placeholder values, metadata compared from the listings; no value read or written
/// over an existing one.
async fn template_secret(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
    detail: SecretDetail,
) -> ItemStatus {
    let mut target = detail.target;
    let mut unconfirmed = false;
    let mut lost = None;
    let written = || ItemStatus::Created {
        action: "placeholder value".into(),
    };
    for _ in 0..WRITE_ROUNDS {
        if let Some(existing) = &target {
            if *existing == detail.source {
                if unconfirmed {
                    return written();
                }
                return ItemStatus::Identical;
            }
            if let Some(status) = conflict(job.on_conflict, "secret") {
                return status;
            }
            // Update the metadata only: template mode never replaces a value with a placeholder.
            return match update_secret_metadata(vaults, name, &detail.source).await {
                Ok(()) => ItemStatus::Created {
                    action: "metadata updated; existing value kept".into(),
                },
                Err(error) => failed("update secret metadata", &error),
            };
        }
        let write = || set_secret(vaults, name, ctx.placeholder, &detail.source);
        match write_handling_deleted(ctx, job, SECRET, name, vaults, trail, write).await {
            Ok(WriteResult::Written | WriteResult::WrittenAfterPurge) => return written(),
            Ok(result @ (WriteResult::Recovered | WriteResult::Unconfirmed(_))) => {
                if let WriteResult::Unconfirmed(error) = result {
                    unconfirmed = true;
                    lost = Some(error);
                }
                // Compare the recovered (or possibly written) secret's metadata, never its value.
                target = match read_secret_meta(&vaults.target.secrets, name).await {
                    Ok(meta) => meta,
                    Err(error) => return failed("read the recovered secret's properties", &error),
                };
            }
            Err(status) => return status,
        }
    }
    kept_changing("secret", lost.as_ref())
}

/// Reads a secret's metadata (its current version's properties) from the vault's listing,
/// never its value: what template mode and a disabled secret allow. `Ok(None)` when absent.
async fn read_secret_meta(
    client: &SecretClient,
    name: &str,
) -> Result<Option<SecretMeta>, AzureError> {
    let listed: Vec<SecretProperties> = client
        .list_secret_properties(None)
        .map_err(AzureError::from)?
        .try_collect()
        .await
        .map_err(AzureError::from)?;
    Ok(listed
        .iter()
        .find(|p| secret_name(p).is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(SecretMeta::of_properties))
}

/// Reads a secret's current value. `Ok(None)` when the secret is disabled (403 `SecretDisabled`).
async fn read_value(client: &SecretClient, name: &str) -> Result<Option<Secret>, AzureError> {
    match client
        .get_secret(name, None::<SecretClientGetSecretOptions<'_>>)
        .await
    {
        Ok(response) => response.into_model().map(Some).map_err(AzureError::from),
        Err(error) => {
            let error = AzureError::from(error);
            if error.status == Some(403) && error.has_code("SecretDisabled") {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

async fn replicate_secret(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
    detail: SecretDetail,
) -> ItemStatus {
    // A disabled secret's value cannot be read; don't try.
    let source = if detail.source.enabled {
        match read_value(&vaults.source.secrets, name).await {
            Ok(secret) => secret,
            Err(error) if error.is_not_found() => {
                return ItemStatus::Skipped {
                    reason: "deleted from the source after discovery".into(),
                }
            }
            Err(error) => return failed("read source secret", &error),
        }
    } else {
        None
    };
    let (value, meta) = match &source {
        Some(secret) => match &secret.value {
            Some(value) => (
                Some(crate::azure::Sensitive::new(value.clone())),
                SecretMeta::of_secret(secret),
            ),
            None => (None, SecretMeta::of_secret(secret)),
        },
        None => (
            None,
            SecretMeta {
                enabled: false,
                ..detail.source.clone()
            },
        ),
    };
    let mut check_target = detail.target.is_some();
    // Whether a write round (a recovery or a lost answer) has passed since discovery.
    let mut rewritten = false;
    let mut unconfirmed = false;
    let mut lost = None;
    let written = || {
        if value.is_some() {
            ItemStatus::Created {
                action: "value copied".into(),
            }
        } else {
            ItemStatus::Partial {
                action: "written disabled with a placeholder value".into(),
                reason: "disabled in the source: its value cannot be read".into(),
            }
        }
    };
    for _ in 0..WRITE_ROUNDS {
        if check_target {
            let existing = match read_value(&vaults.target.secrets, name).await {
                Ok(Some(secret)) => Some((
                    secret.value.clone().map(crate::azure::Sensitive::new),
                    SecretMeta::of_secret(&secret),
                )),
                // Disabled in the target: its value cannot be compared. After a write round the
                // discovery's metadata is stale (or absent for a new secret): read it again.
                Ok(None) if rewritten => match read_secret_meta(&vaults.target.secrets, name).await
                {
                    Ok(meta) => Some((None, meta.unwrap_or_default())),
                    Err(error) => return failed("read the target secret's properties", &error),
                },
                Ok(None) => Some((None, detail.target.clone().unwrap_or_default())),
                Err(error) if error.is_not_found() => None,
                Err(error) => return failed("read target secret", &error),
            };
            if let Some((target_value, target_meta)) = existing {
                let same_value = match (&value, &target_value) {
                    (Some(a), Some(b)) => a == b,
                    (None, _) => true, // source unreadable: only metadata can be compared
                    (Some(_), None) => false,
                };
                if same_value && target_meta == meta {
                    if unconfirmed {
                        return written();
                    }
                    return ItemStatus::Identical;
                }
                if let Some(status) = conflict(job.on_conflict, "secret") {
                    return status;
                }
                if value.is_none() {
                    // The source value is unreadable: bring the metadata (disabled) across and
                    // keep the target's value rather than writing a placeholder over it.
                    return match update_secret_metadata(vaults, name, &meta).await {
                        Ok(()) => ItemStatus::Partial {
                            action: "metadata updated; the target's value kept".into(),
                            reason: "disabled in the source: its value cannot be read".into(),
                        },
                        Err(error) => failed("update secret metadata", &error),
                    };
                }
            }
        }
        let written_value = value
            .as_ref()
            .map_or(ctx.placeholder, crate::azure::Sensitive::expose);
        let write = || set_secret(vaults, name, written_value, &meta);
        match write_handling_deleted(ctx, job, SECRET, name, vaults, trail, write).await {
            Ok(WriteResult::Written | WriteResult::WrittenAfterPurge) => return written(),
            Ok(WriteResult::Recovered) => {
                check_target = true;
                rewritten = true;
            }
            Ok(WriteResult::Unconfirmed(error)) => {
                check_target = true;
                rewritten = true;
                unconfirmed = true;
                lost = Some(error);
            }
            Err(status) => return status,
        }
    }
    kept_changing("secret", lost.as_ref())
}

/// The shape of a key: what atg compares and recreates.
#[derive(Debug, PartialEq, Eq)]
struct KeyShape {
    kty: String,
    size: Option<i32>,
    curve: Option<String>,
    operations: Vec<String>,
    tags: BTreeMap<String, String>,
    enabled: bool,
    not_before: Option<i64>,
    expires: Option<i64>,
    exportable: bool,
}

impl KeyShape {
    /// Same type, size, curve and exportability: what cannot change without new key material.
    fn same_kind(&self, other: &KeyShape) -> bool {
        self.kty == other.kty
            && self.size == other.size
            && self.curve == other.curve
            && self.exportable == other.exportable
    }

    fn of(key: &Key) -> Option<KeyShape> {
        let jwk = key.key.as_ref()?;
        let kty = jwk.kty.as_ref()?.to_string();
        let size = jwk
            .n
            .as_ref()
            .map(|n| {
                let bytes = n.iter().skip_while(|b| **b == 0).count();
                i32::try_from(bytes * 8).unwrap_or(i32::MAX)
            })
            .filter(|_| kty.starts_with("RSA"));
        let mut operations: Vec<String> = jwk
            .key_ops
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        operations.sort();
        let attributes = key.attributes.as_ref();
        Some(KeyShape {
            kty,
            size,
            curve: jwk.crv.as_ref().map(ToString::to_string),
            operations,
            tags: key
                .tags
                .as_ref()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
            not_before: attributes
                .and_then(|a| a.not_before)
                .map(time::OffsetDateTime::unix_timestamp),
            expires: attributes
                .and_then(|a| a.expires)
                .map(time::OffsetDateTime::unix_timestamp),
            exportable: attributes.and_then(|a| a.exportable).unwrap_or(false),
        })
    }
}

async fn get_key(client: &KeyClient, name: &str) -> Result<Option<Key>, AzureError> {
    match absent_on_404(
        client
            .get_key(name, None::<KeyClientGetKeyOptions<'_>>)
            .await,
    )? {
        Some(response) => response.into_model().map(Some).map_err(AzureError::from),
        None => Ok(None),
    }
}

async fn create_key(vaults: &Vaults, name: &str, source: &Key) -> Result<(), AzureError> {
    let jwk = source.key.as_ref().ok_or_else(|| {
        AzureError::new(
            crate::azure::AzureErrorKind::Other,
            "the source key has no public key",
        )
    })?;
    let mut parameters = CreateKeyParameters::default();
    parameters.kty = jwk.kty.clone();
    if matches!(jwk.kty, Some(KeyType::Rsa | KeyType::RsaHsm)) {
        parameters.key_size = KeyShape::of(source).and_then(|s| s.size);
    }
    parameters.curve = jwk.crv.clone();
    parameters.key_ops = jwk
        .key_ops
        .as_ref()
        .map(|ops| ops.iter().filter_map(|op| op.parse().ok()).collect());
    parameters.tags = source.tags.clone();
    let mut attributes = KeyAttributes::default();
    if let Some(a) = source.attributes.as_ref() {
        attributes.enabled = a.enabled;
        attributes.not_before = a.not_before;
        attributes.expires = a.expires;
        attributes.exportable = a.exportable;
    }
    parameters.key_attributes = Some(attributes);
    if source.attributes.as_ref().and_then(|a| a.exportable) == Some(true) {
        parameters.release_policy = source.release_policy.clone();
    }
    let content = parameters.try_into().map_err(AzureError::from)?;
    vaults
        .target
        .keys
        .create_key(name, content, None)
        .await
        .map(|_| ())
        .map_err(AzureError::from)
}

/// Operations, attributes and tags of the target key's current version; never its material.
async fn update_key_properties(
    vaults: &Vaults,
    name: &str,
    source: &Key,
) -> Result<(), AzureError> {
    let mut parameters = UpdateKeyPropertiesParameters::default();
    parameters.key_ops = source
        .key
        .as_ref()
        .and_then(|jwk| jwk.key_ops.as_ref())
        .map(|ops| ops.iter().filter_map(|op| op.parse().ok()).collect());
    parameters.tags = Some(source.tags.clone().unwrap_or_default());
    let mut attributes = KeyAttributes::default();
    if let Some(a) = source.attributes.as_ref() {
        attributes.enabled = a.enabled;
        attributes.not_before = a.not_before;
        attributes.expires = a.expires;
    }
    parameters.key_attributes = Some(attributes);
    let content = parameters.try_into().map_err(AzureError::from)?;
    vaults
        .target
        .keys
        .update_key_properties(name, content, None)
        .await
        .map(|_| ())
        .map_err(AzureError::from)
}

async fn copy_key(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
) -> ItemStatus {
    let source = match get_key(&vaults.source.keys, name).await {
        Ok(Some(key)) => key,
        Ok(None) => {
            return ItemStatus::Skipped {
                reason: "deleted from the source after discovery".into(),
            }
        }
        Err(error) => return failed("read source key", &error),
    };
    let Some(shape) = KeyShape::of(&source) else {
        return ItemStatus::Failed {
            error: "the source key has no public key to take its type from".into(),
        };
    };
    let mut unconfirmed = false;
    let mut lost = None;
    for _ in 0..WRITE_ROUNDS {
        let mut over_existing = false;
        match get_key(&vaults.target.keys, name).await {
            Ok(Some(existing)) => {
                let existing_shape = KeyShape::of(&existing);
                if existing_shape.as_ref() == Some(&shape) {
                    if unconfirmed {
                        return ItemStatus::Created {
                            action: "new key material with the source key's shape".into(),
                        };
                    }
                    return ItemStatus::Identical;
                }
                if let Some(status) = conflict(job.on_conflict, "key") {
                    return status;
                }
                // Same kind of key: only its properties differ. Update them and keep the
                // target's key material (data may already be protected with it).
                if existing_shape.is_some_and(|e| e.same_kind(&shape)) {
                    return match update_key_properties(vaults, name, &source).await {
                        Ok(()) => ItemStatus::Created {
                            action: "properties updated; the target's key material kept".into(),
                        },
                        Err(error) => failed("update key properties", &error),
                    };
                }
                if job.mode == Mode::Template {
                    return ItemStatus::Skipped {
                        reason: TEMPLATE_KEEPS_KEY_MATERIAL.into(),
                    };
                }
                over_existing = true;
            }
            Ok(None) => {}
            Err(error) => return failed("read target key", &error),
        }
        let write = || create_key(vaults, name, &source);
        match write_handling_deleted(ctx, job, KEY, name, vaults, trail, write).await {
            Ok(WriteResult::Written | WriteResult::WrittenAfterPurge) => {
                return ItemStatus::Created {
                    action: if over_existing {
                        "new key version with the source key's shape over a different key (its previous version kept)".into()
                    } else {
                        "new key material with the source key's shape".into()
                    },
                };
            }
            Ok(WriteResult::Recovered) => {}
            Ok(WriteResult::Unconfirmed(error)) => {
                unconfirmed = true;
                lost = Some(error);
            }
            Err(status) => return status,
        }
    }
    kept_changing("key", lost.as_ref())
}

async fn get_certificate(
    client: &CertificateClient,
    name: &str,
) -> Result<Option<Certificate>, AzureError> {
    match absent_on_404(client.get_certificate(name, None).await)? {
        Some(response) => response.into_model().map(Some).map_err(AzureError::from),
        None => Ok(None),
    }
}

/// The source policy as it can be sent to another vault (no ids, no read-only fields).
fn portable_policy(policy: &CertificatePolicy) -> CertificatePolicy {
    let mut portable = policy.clone();
    portable.id = None;
    if let Some(attributes) = portable.attributes.as_mut() {
        attributes.created = None;
        attributes.updated = None;
        attributes.recoverable_days = None;
        attributes.recovery_level = None;
    }
    portable
}

/// The policy with its issuer set to `Self` (and nothing a CA would take), for a certificate
/// created self-signed where the source's was imported.
fn self_signed(policy: &CertificatePolicy) -> CertificatePolicy {
    let mut policy = policy.clone();
    let mut issuer = IssuerParameters::default();
    issuer.name = Some("Self".into());
    policy.issuer_parameters = Some(issuer);
    policy
}

fn certificate_attributes(source: &Certificate) -> CertificateAttributes {
    let mut attributes = CertificateAttributes::default();
    if let Some(a) = source.attributes.as_ref() {
        attributes.enabled = a.enabled;
    }
    attributes
}

fn policy_fingerprint(policy: Option<&CertificatePolicy>) -> String {
    let Some(policy) = policy else {
        return String::new();
    };
    let subject = policy
        .x509_certificate_properties
        .as_ref()
        .and_then(|x| x.subject.clone())
        .unwrap_or_default();
    let issuer = policy
        .issuer_parameters
        .as_ref()
        .and_then(|i| i.name.clone())
        .unwrap_or_default();
    let key = policy
        .key_properties
        .as_ref()
        .map(|k| {
            format!(
                "{:?}/{:?}/{:?}",
                k.key_type.as_ref().map(ToString::to_string),
                k.key_size,
                k.curve.as_ref().map(ToString::to_string)
            )
        })
        .unwrap_or_default();
    format!("{subject}|{issuer}|{key}")
}

/// How a source certificate is copied: imported with its key, or created self-signed from its
/// policy. Planning and applying decide it the same way.
struct CertificateCopy {
    source: Certificate,
    /// The policy the target certificate gets.
    policy: CertificatePolicy,
    /// Replication of an exportable certificate: imported with its private key.
    import: bool,
    /// An imported certificate (issuer `Unknown`) that is not imported as it is: created
    /// self-signed from its policy, like a `Self` one; never ordered.
    self_signed_from_import: bool,
}

impl CertificateCopy {
    /// Reads the source certificate and its policy; `Err` is the item's outcome when it cannot
    /// be copied (gone, unreadable, issued by a CA atg does not order from).
    async fn read(client: &CertificateClient, mode: Mode, name: &str) -> Result<Self, ItemStatus> {
        let source = match get_certificate(client, name).await {
            Ok(Some(certificate)) => certificate,
            Ok(None) => {
                return Err(ItemStatus::Skipped {
                    reason: "deleted from the source after discovery".into(),
                })
            }
            Err(error) => return Err(failed("read source certificate", &error)),
        };
        let policy = match source.policy.clone() {
            Some(policy) => policy,
            None => match client
                .get_certificate_policy(name, None)
                .await
                .and_then(azure_core::http::Response::into_model)
            {
                Ok(policy) => policy,
                Err(error) => return Err(failed("read source certificate policy", &error.into())),
            },
        };
        let issuer = policy
            .issuer_parameters
            .as_ref()
            .and_then(|i| i.name.clone())
            .unwrap_or_default();
        let exportable = policy
            .key_properties
            .as_ref()
            .and_then(|k| k.exportable)
            .unwrap_or(false);
        let import = mode == Mode::Replication && exportable;
        let self_signed_from_import = !import && issuer.eq_ignore_ascii_case("Unknown");
        let policy = if self_signed_from_import {
            self_signed(&policy)
        } else {
            policy
        };
        if !import && !self_signed_from_import && !issuer.eq_ignore_ascii_case("Self") {
            return Err(ItemStatus::Skipped {
                reason: format!(
                    "issued by `{issuer}`{}: atg places no certificate orders; request it in the target from the same policy",
                    if mode == Mode::Replication { " with a non-exportable key" } else { "" }
                ),
            });
        }
        Ok(CertificateCopy {
            source,
            policy,
            import,
            self_signed_from_import,
        })
    }

    /// Whether the target's certificate already is what the copy would make: the same
    /// certificate (imported), or one from the same policy (created).
    fn matches(&self, existing: &Certificate) -> bool {
        if self.import {
            existing.x509_thumbprint.is_some()
                && existing.x509_thumbprint == self.source.x509_thumbprint
        } else {
            policy_fingerprint(existing.policy.as_ref()) == policy_fingerprint(Some(&self.policy))
        }
    }

    /// The plan for a certificate the target holds under the same name.
    async fn plan_existing(
        source: &VaultClients,
        target: &VaultClients,
        job: &Job,
        name: &str,
    ) -> PlannedAction {
        let copy = match CertificateCopy::read(&source.certificates, job.mode, name).await {
            Ok(copy) => copy,
            Err(ItemStatus::Skipped { reason }) => return PlannedAction::Skip { reason },
            Err(ItemStatus::Failed { error }) => return PlannedAction::Fail { reason: error },
            Err(_) => return PlannedAction::Compare,
        };
        let existing = match get_certificate(&target.certificates, name).await {
            Ok(Some(existing)) => existing,
            Ok(None) => return PlannedAction::Create,
            Err(error) => {
                return PlannedAction::Fail {
                    reason: format!("read target certificate: {error}"),
                }
            }
        };
        if copy.matches(&existing) {
            return PlannedAction::Identical;
        }
        match with_conflict_policy(
            job.on_conflict,
            CERTIFICATE,
            PlannedAction::compared(vec![Difference::Certificate]),
        ) {
            // As apply: a made-up self-signed certificate never replaces a real one.
            PlannedAction::Overwrite { .. } if !copy.import => PlannedAction::Skip {
                reason: NO_SELF_SIGNED_OVER_EXISTING.into(),
            },
            planned => planned,
        }
    }
}

const NO_SELF_SIGNED_OVER_EXISTING: &str = "exists in the target and differs: a new self-signed certificate is never created over an existing one";

async fn copy_certificate(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
) -> ItemStatus {
    let copy = match CertificateCopy::read(&vaults.source.certificates, job.mode, name).await {
        Ok(copy) => copy,
        Err(status) => return status,
    };
    let CertificateCopy {
        source,
        policy,
        import,
        self_signed_from_import,
    } = &copy;
    let (import, self_signed_from_import) = (*import, *self_signed_from_import);
    let created = if self_signed_from_import {
        "new self-signed certificate from the source policy (the source was imported, issuer `Unknown`: issuer set to `Self`, no order placed)"
    } else {
        "new self-signed certificate from the source policy"
    };
    let written = || {
        if import {
            ItemStatus::Created {
                action: "imported with its private key".into(),
            }
        } else if job.mode == Mode::Replication {
            ItemStatus::Partial {
                action: created.into(),
                reason:
                    "the source key is not exportable: the target certificate has a new key pair"
                        .into(),
            }
        } else {
            ItemStatus::Created {
                action: created.into(),
            }
        }
    };
    let mut unconfirmed = false;
    let mut lost = None;
    for _ in 0..WRITE_ROUNDS {
        match get_certificate(&vaults.target.certificates, name).await {
            Ok(Some(existing)) => {
                if copy.matches(&existing) {
                    if unconfirmed {
                        return written();
                    }
                    return ItemStatus::Identical;
                }
                if let Some(status) = conflict(job.on_conflict, "certificate") {
                    return status;
                }
                // Importing the source's own certificate over it copies real data (the previous
                // version is kept); a made-up self-signed one would replace a real certificate.
                if !import {
                    return ItemStatus::Skipped {
                        reason: NO_SELF_SIGNED_OVER_EXISTING.into(),
                    };
                }
            }
            Ok(None) => {}
            Err(error) => return failed("read target certificate", &error),
        }
        let result = if import {
            let Some(secret_id) = source.sid.clone() else {
                return ItemStatus::Failed {
                    error: "the source certificate has no backing secret id".into(),
                };
            };
            let version = Url::parse(&secret_id).ok().and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.nth(2).map(str::to_owned))
            });
            let mut options = SecretClientGetSecretOptions::default();
            options.secret_version = version.filter(|v| !v.is_empty());
            let backing = match vaults
                .source
                .secrets
                .get_secret(name, Some(options))
                .await
                .and_then(azure_core::http::Response::into_model)
            {
                Ok(secret) => secret,
                Err(error) => {
                    return failed("read the certificate's backing secret", &error.into())
                }
            };
            let Some(value) = backing.value.map(crate::azure::Sensitive::new) else {
                return ItemStatus::Failed {
                    error: "the certificate's backing secret has no value".into(),
                };
            };
            let write = || import_certificate(vaults, name, &value, policy, source);
            write_handling_deleted(ctx, job, CERTIFICATE, name, vaults, trail, write).await
        } else {
            let write = || create_certificate(vaults, name, policy, source);
            write_handling_deleted(ctx, job, CERTIFICATE, name, vaults, trail, write).await
        };
        match result {
            Ok(WriteResult::Written | WriteResult::WrittenAfterPurge) => return written(),
            Ok(WriteResult::Recovered) => {}
            Ok(WriteResult::Unconfirmed(error)) => {
                unconfirmed = true;
                lost = Some(error);
            }
            Err(status) => return status,
        }
    }
    kept_changing("certificate", lost.as_ref())
}

async fn import_certificate(
    vaults: &Vaults,
    name: &str,
    value: &crate::azure::Sensitive,
    policy: &CertificatePolicy,
    source: &Certificate,
) -> Result<(), AzureError> {
    let mut parameters = ImportCertificateParameters::default();
    parameters.base64_encoded_certificate = Some(value.expose().to_owned());
    parameters.certificate_policy = Some(portable_policy(policy));
    parameters.certificate_attributes = Some(certificate_attributes(source));
    parameters.tags = source.tags.clone();
    let content = parameters.try_into().map_err(AzureError::from)?;
    vaults
        .target
        .certificates
        .import_certificate(name, content, None)
        .await
        .map(|_| ())
        .map_err(AzureError::from)
}

async fn create_certificate(
    vaults: &Vaults,
    name: &str,
    policy: &CertificatePolicy,
    source: &Certificate,
) -> Result<(), AzureError> {
    let mut parameters = CreateCertificateParameters::default();
    parameters.certificate_policy = Some(portable_policy(policy));
    parameters.certificate_attributes = Some(certificate_attributes(source));
    parameters.tags = source.tags.clone();
    let content = parameters.try_into().map_err(AzureError::from)?;
    let options = CertificateClientCreateCertificateOptions {
        method_options: PollerOptions {
            frequency: time::Duration::seconds(1),
            ..PollerOptions::default()
        },
    };
    let operation = vaults
        .target
        .certificates
        .begin_create_certificate(name, content, Some(options))
        .map_err(AzureError::from)?
        .await
        .map_err(AzureError::from)?;
    let _ = operation;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Properties;

    #[test]
    fn running_out_of_write_rounds_reports_the_last_lost_answer() {
        let lost = AzureError::from_response(503, None, b"");
        let ItemStatus::Failed { error } = kept_changing("secret", Some(&lost)) else {
            panic!("not a failure");
        };
        assert!(error.starts_with("the secret kept changing state in the target"));
        assert!(error.contains("503"), "{error}");
        let ItemStatus::Failed { error } = kept_changing("key", None) else {
            panic!("not a failure");
        };
        assert_eq!(error, "the key kept changing state in the target");
    }

    fn vault(name: &str, uri: Option<&str>) -> Resource {
        Resource {
            id: format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}"
            ),
            resource_type: "Microsoft.KeyVault/vaults".into(),
            name: name.into(),
            subscription_id: Some("s".into()),
            resource_group: Some("rg".into()),
            properties: match uri {
                Some(uri) => {
                    Properties::from_value(Some(&serde_json::json!({ "vaultUri": uri }))).unwrap()
                }
                None => Properties::Missing,
            },
            options: serde_json::Map::new(),
        }
    }

    #[test]
    fn vault_urls_come_from_properties_or_the_name() {
        let url = vault_url(&vault("kv1", None), Cloud::AzureCloud).unwrap();
        assert_eq!(url.as_str(), "https://kv1.vault.azure.net/");
        let url = vault_url(&vault("kv1", None), Cloud::AzureChinaCloud).unwrap();
        assert_eq!(url.as_str(), "https://kv1.vault.azure.cn/");
        let url = vault_url(
            &vault("kv1", Some("https://KV1.vault.azure.net")),
            Cloud::AzureCloud,
        )
        .unwrap();
        assert_eq!(url.as_str(), "https://kv1.vault.azure.net/");
    }

    #[test]
    fn vault_urls_outside_the_cloud_are_refused() {
        for uri in [
            "https://kv1.vault.azure.net.evil.example/",
            "http://kv1.vault.azure.net/",
            "https://kv1.vault.azure.cn/",
            "https://a.b.vault.azure.net/",
            "https://kv1.vault.azure.net:8443/",
            "https://management.azure.com/",
        ] {
            let error = vault_url(&vault("kv1", Some(uri)), Cloud::AzureCloud).unwrap_err();
            assert!(
                error.to_string().contains("refusing to send credentials"),
                "{uri}: {error}"
            );
        }
    }

    #[test]
    fn a_recovered_item_has_one_outcome_that_says_what_followed() {
        let recovered = DeletedTrail::default();
        recovered.recovered.store(true, Ordering::Relaxed);
        let outcome = |status| recovered.outcome(status);
        assert_eq!(
            outcome(ItemStatus::Identical),
            ItemStatus::Recovered {
                action: "recovered, then left as it was: identical in the target".into()
            }
        );
        assert_eq!(
            outcome(ItemStatus::Created {
                action: "value copied".into()
            }),
            ItemStatus::Recovered {
                action: "recovered, then overwritten: value copied".into()
            }
        );
        // What could not be copied stays visible: partial, and failed, keep their status.
        assert!(matches!(
            outcome(ItemStatus::Partial { action: "metadata updated".into(), reason: "disabled".into() }),
            ItemStatus::Partial { action, reason } if action == "recovered, then metadata updated" && reason == "disabled"
        ));
        assert!(matches!(
            outcome(ItemStatus::Failed { error: "write secret: 500".into() }),
            ItemStatus::Failed { error } if error == "recovered, then failed: write secret: 500"
        ));
        let untouched = DeletedTrail::default();
        assert_eq!(
            untouched.outcome(ItemStatus::Identical),
            ItemStatus::Identical
        );
    }

    #[test]
    fn secret_metadata_compares_what_is_copied() {
        let mut attributes = SecretAttributes::default();
        attributes.enabled = Some(true);
        let tags: HashMap<String, String> = [("env".to_string(), "prod".to_string())].into();
        let a = SecretMeta::from_parts(
            Some(&"text/plain".to_string()),
            Some(&tags),
            Some(&attributes),
        );
        let b = SecretMeta::from_parts(Some(&"text/plain".to_string()), Some(&tags), None);
        assert_eq!(a, b, "enabled defaults to true");
        let c = SecretMeta::from_parts(None, Some(&tags), Some(&attributes));
        assert_ne!(a, c);
    }
}
