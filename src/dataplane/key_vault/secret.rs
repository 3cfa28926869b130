//! Secrets: planning (metadata from the listings; values compared in replication, in memory,
//! never printed) and writing (template: a placeholder value, never over an existing one;
//! replication: the current value). Older versions are counted, not copied.

use std::collections::{BTreeMap, HashMap, HashSet};

use azure_security_keyvault_secrets::models::{
    Secret, SecretAttributes, SecretClientGetSecretOptions, SecretProperties, SetSecretParameters,
    UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::SecretClient;
use futures::{StreamExt, TryStreamExt};

use super::super::kit::Typed;
use super::super::{
    Difference, ItemStatus, Job, Mode, PlannedAction, PlannedItem, PluginContext, PluginError,
};
use super::clients::{failed, list_all, secret_name, write_outcome, Listings, Vaults};
use super::deleted::{
    kept_changing, write_handling_deleted, DeletedNames, DeletedTrail, WriteResult, WRITE_ROUNDS,
};
use super::{decided, fingerprint, on_differs, SECRET};
use crate::azure::{AzureError, Sensitive};

/// The metadata of a secret that atg compares and copies (never the value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// What planning carries to apply for a secret: its metadata on both sides, never a value.
#[derive(Clone, Debug)]
pub(super) struct SecretPlan {
    source: SecretMeta,
    target: Option<SecretMeta>,
}

/// The secret listings of both vaults (properties, no values).
pub(super) async fn listings(vaults: &Vaults) -> Result<Listings<SecretProperties>, PluginError> {
    Listings::read(
        SECRET,
        vaults.source.secrets.list_secret_properties(None),
        vaults.target.secrets.list_secret_properties(None),
    )
    .await
}

/// The target's secrets that are not certificate-backed (lowercase names): a certificate of
/// that name would take them over.
pub(super) fn plain_in_target(listings: &Listings<SecretProperties>) -> HashSet<String> {
    listings.target_names(secret_name, |properties| properties.managed != Some(true))
}

/// `atg verify`: the target's secrets the source lacks (not certificate-backed ones: they go
/// with their certificate).
pub(super) fn extras_in_target(listings: &Listings<SecretProperties>) -> Vec<String> {
    listings.extras(secret_name, |properties| properties.managed != Some(true))
}

/// Plans every source secret against the target's of the same name.
pub(super) async fn plan(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    listings: &Listings<SecretProperties>,
    deleted: &DeletedNames,
) -> Result<Vec<Typed<SecretPlan>>, PluginError> {
    let paired = listings.paired(SECRET, secret_name, |properties| properties.id.as_ref())?;
    let mut items: Vec<Typed<SecretPlan>> = paired
        .into_iter()
        .map(|(name, properties, target)| {
            let meta = SecretMeta::of_properties(properties);
            let target_meta = target.map(SecretMeta::of_properties);
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
            let fingerprint = fingerprint(
                properties,
                target,
                |item: &SecretProperties| item.attributes.as_ref().and_then(|a| a.updated),
                deleted.contains(SECRET, &name),
            );
            Typed {
                item: PlannedItem {
                    kind: SECRET,
                    name,
                    action,
                    notes: Vec::new(),
                    fingerprint: Some(fingerprint),
                },
                detail: SecretPlan {
                    source: meta,
                    target: target_meta,
                },
            }
        })
        .collect();
    let counted = count_versions(ctx, vaults, &items).await;
    if job.mode == Mode::Replication {
        plan_values(ctx, vaults, &mut items).await;
    }
    for typed in &mut items {
        let item = &mut typed.item;
        item.action = decided(job.on_conflict, SECRET, item.action.clone());
    }
    for (index, versions) in counted {
        let versions = versions?;
        if versions > 1 {
            items[index].item.notes.push(format!(
                "{} older version(s) not copied (only the current version is)",
                versions - 1
            ));
        }
    }
    Ok(items)
}

/// Counts the versions of the source secrets to be copied (only the current one is), a bounded
/// number at a time.
async fn count_versions(
    ctx: &PluginContext,
    vaults: &Vaults,
    items: &[Typed<SecretPlan>],
) -> Vec<(usize, Result<usize, PluginError>)> {
    let to_count: Vec<(usize, String)> = items
        .iter()
        .enumerate()
        .filter(|(_, typed)| {
            !matches!(
                typed.item.action,
                PlannedAction::Skip { .. } | PlannedAction::Fail { .. }
            )
        })
        .map(|(index, typed)| (index, typed.item.name.clone()))
        .collect();
    let slots = &ctx.item_slots;
    let client = &vaults.source.secrets;
    futures::stream::iter(to_count.into_iter().map(|(index, name)| async move {
        let _permit = slots.acquire().await;
        let versions: Result<Vec<SecretProperties>, PluginError> = list_all(
            client.list_secret_properties_versions(&name, None),
            "list source secret versions",
        )
        .await;
        (index, versions.map(|v| v.len()))
    }))
    .buffer_unordered(ctx.item_slots.available_permits().max(1))
    .collect()
    .await
}

/// Replication: compares the values of the secrets both vaults hold (in memory, never printed
/// or kept), so a plan says `overwrite` with `value` among what differs, or `identical`. A
/// value that cannot be read leaves the item `compare` with a note saying why.
async fn plan_values(ctx: &PluginContext, vaults: &Vaults, items: &mut [Typed<SecretPlan>]) {
    let to_read: Vec<(usize, String, bool)> = items
        .iter()
        .enumerate()
        .filter(|(_, typed)| {
            matches!(
                typed.item.action,
                PlannedAction::Identical | PlannedAction::Overwrite { .. }
            )
        })
        .map(|(index, typed)| (index, typed.item.name.clone(), typed.detail.source.enabled))
        .collect();
    let slots = &ctx.item_slots;
    let compared: Vec<(usize, Result<bool, AzureError>)> = futures::stream::iter(
        to_read
            .into_iter()
            .map(|(index, name, enabled)| async move {
                let _permit = slots.acquire().await;
                // A disabled source secret's value cannot be read: apply compares metadata only.
                if !enabled {
                    return (index, Ok(true));
                }
                let same = async {
                    let source_value = read_value(&vaults.source.secrets, &name).await?;
                    let target_value = read_value(&vaults.target.secrets, &name).await?;
                    let value =
                        |secret: Option<Secret>| secret.and_then(|s| s.value).map(Sensitive::new);
                    Ok(match (value(source_value), value(target_value)) {
                        (Some(a), Some(b)) => a == b,
                        (None, _) => true,
                        (Some(_), None) => false,
                    })
                };
                (index, same.await)
            }),
    )
    .buffer_unordered(ctx.item_slots.available_permits().max(1))
    .collect()
    .await;
    for (index, same) in compared {
        let item = &mut items[index].item;
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

/// Writes the secret as planned, in the run's mode.
pub(super) async fn apply(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
    plan: SecretPlan,
) -> ItemStatus {
    match job.mode {
        Mode::Template => template_secret(ctx, job, vaults, trail, name, plan).await,
        Mode::Replication => replicate_secret(ctx, job, vaults, trail, name, plan).await,
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
    write_outcome(vaults.target.secrets.set_secret(name, content, None).await)
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
    write_outcome(
        vaults
            .target
            .secrets
            .update_secret_properties(name, content, None)
            .await,
    )
}

/// Template: placeholder values, metadata compared from the listings; no value read or written
/// over an existing one.
async fn template_secret(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
    detail: SecretPlan,
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
            if let Some(status) = on_differs(job.on_conflict, SECRET) {
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
    detail: SecretPlan,
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
                Some(Sensitive::new(value.clone())),
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
                    secret.value.clone().map(Sensitive::new),
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
                if let Some(status) = on_differs(job.on_conflict, SECRET) {
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
        let written_value = value.as_ref().map_or(ctx.placeholder, Sensitive::expose);
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

#[cfg(test)]
mod tests {
    use super::*;

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
