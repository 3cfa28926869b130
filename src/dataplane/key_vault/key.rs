//! Keys: private key material never leaves a vault, so a target key is new material with the
//! source key's type, size or curve, operations, attributes and tags. A target key of the same
//! kind only gets its properties updated (its material kept); a different one gets a new
//! version only in replication.

use std::collections::{BTreeMap, HashSet};

use azure_security_keyvault_keys::models::{
    CreateKeyParameters, Key, KeyAttributes, KeyClientGetKeyOptions, KeyProperties, KeyType,
    UpdateKeyPropertiesParameters,
};
use azure_security_keyvault_keys::KeyClient;

use super::super::{
    Difference, ItemStatus, Job, Mode, PlannedAction, PlannedItem, PluginContext, PluginError,
};
use super::clients::{absent_on_404, failed, name_of, write_outcome, Listings, Vaults};
use super::deleted::{
    kept_changing, write_handling_deleted, DeletedNames, DeletedTrail, WriteResult, WRITE_ROUNDS,
};
use super::{decided, fingerprint, on_differs, KEY};
use crate::azure::AzureError;

const TEMPLATE_KEEPS_KEY_MATERIAL: &str =
    "exists in the target with a different type or size: template mode never replaces key material";

/// The key listings of both vaults.
pub(super) async fn listings(vaults: &Vaults) -> Result<Listings<KeyProperties>, PluginError> {
    Listings::read(
        KEY,
        vaults.source.keys.list_key_properties(None),
        vaults.target.keys.list_key_properties(None),
    )
    .await
}

/// The target's keys that are not certificate-backed (lowercase names): a certificate of that
/// name would take them over.
pub(super) fn plain_in_target(listings: &Listings<KeyProperties>) -> HashSet<String> {
    listings.target_names(
        |key| name_of(key.kid.as_ref()),
        |key| key.managed != Some(true),
    )
}

/// `atg verify`: the target's keys the source lacks (not certificate-backed ones: they go with
/// their certificate).
pub(super) fn extras_in_target(listings: &Listings<KeyProperties>) -> Vec<String> {
    listings.extras(
        |key| name_of(key.kid.as_ref()),
        |key| key.managed != Some(true),
    )
}

/// Plans every source key against the target's of the same name.
pub(super) async fn plan(
    job: &Job,
    vaults: &Vaults,
    listings: &Listings<KeyProperties>,
    deleted: &DeletedNames,
) -> Result<Vec<PlannedItem>, PluginError> {
    let paired = listings.paired(KEY, |key| name_of(key.kid.as_ref()), |key| key.kid.as_ref())?;
    let mut items = Vec::with_capacity(paired.len());
    for (name, key, target) in paired {
        let action = if key.managed == Some(true) {
            PlannedAction::Skip {
                reason: "certificate-backed key: copied with its certificate".into(),
            }
        } else if target.is_some() {
            let planned = plan_existing_key(vaults, &name).await?;
            match decided(job.on_conflict, KEY, planned) {
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
        let fingerprint = fingerprint(
            key,
            target,
            |item: &KeyProperties| item.attributes.as_ref().and_then(|a| a.updated),
            deleted.contains(KEY, &name),
        );
        items.push(PlannedItem {
            kind: KEY,
            name,
            action,
            notes,
            fingerprint: Some(fingerprint),
        });
    }
    Ok(items)
}

/// The plan for a key both vaults hold: what differs between the two current versions.
async fn plan_existing_key(vaults: &Vaults, name: &str) -> Result<PlannedAction, PluginError> {
    let read = |client, side| async move {
        get_key(client, name)
            .await
            .map_err(|error| PluginError::azure(format!("read {side} key"), error))
    };
    let source_shape = read(&vaults.source.keys, "source")
        .await?
        .as_ref()
        .and_then(KeyShape::of);
    let target_shape = read(&vaults.target.keys, "target")
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
    write_outcome(vaults.target.keys.create_key(name, content, None).await)
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
    write_outcome(
        vaults
            .target
            .keys
            .update_key_properties(name, content, None)
            .await,
    )
}

pub(super) async fn copy_key(
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
                if let Some(status) = on_differs(job.on_conflict, KEY) {
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
