//! The clients of both vaults, built once when planning and owned by the plan, and what every
//! item kind shares to talk to them: the vault URL check, names from ids, listings, and the
//! classification of Key Vault's answers. Sends no request of its own.

use std::collections::HashSet;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::Url;
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::models::SecretProperties;
use azure_security_keyvault_secrets::{ResourceExt, SecretClient, SecretClientOptions};
use futures::TryStreamExt;

use super::super::kit;
use super::super::{ItemStatus, Job, PluginContext, PluginError};
use crate::azure::{AzureError, AzureHttp, Cloud, WriteAccess};
use crate::inventory::Resource;

/// The clients of one vault.
pub(super) struct VaultClients {
    pub secrets: SecretClient,
    pub keys: KeyClient,
    pub certificates: CertificateClient,
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

/// The clients of both vaults of a pair: the source's read only, the target's with the run's
/// access (read only in a dry run: the write guard refuses any write).
pub(super) struct Vaults {
    pub source: VaultClients,
    pub target: VaultClients,
    pub source_url: Url,
    pub target_url: Url,
}

impl Vaults {
    pub fn new(ctx: &PluginContext, job: &Job) -> Result<Self, PluginError> {
        let cloud = ctx.http.cloud;
        let source_url = vault_url(&job.pair.source, cloud)?;
        let target_url = vault_url(&job.pair.target, cloud)?;
        Ok(Vaults {
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
            source_url,
            target_url,
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

/// The name in an object id (`https://v.vault.azure.net/secrets/<name>[/<version>]`).
pub(super) fn name_of(id: Option<&String>) -> Option<String> {
    let id = id?;
    let url = Url::parse(id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    segments.get(1).map(|s| (*s).to_owned())
}

pub(super) fn secret_name(properties: &SecretProperties) -> Option<String> {
    properties
        .resource_id()
        .ok()
        .map(|id| id.name)
        .or_else(|| name_of(properties.id.as_ref()))
}

/// A source item's name, the item, and the target's item of that name if it has one.
pub(super) type Paired<'a, T> = (String, &'a T, Option<&'a T>);

/// The listings of one item kind in both vaults (properties only, never a value).
pub(super) struct Listings<T> {
    pub source: Vec<T>,
    pub target: Vec<T>,
}

impl<T: Send + 'static> Listings<T> {
    /// Reads both listings, every page; `kind` names them in errors (`list source secrets`).
    pub async fn read<P>(
        kind: &str,
        source: azure_core::Result<azure_core::http::Pager<P>>,
        target: azure_core::Result<azure_core::http::Pager<P>>,
    ) -> Result<Self, PluginError>
    where
        P: azure_core::http::pager::Page<Item = T> + serde::de::DeserializeOwned + Send + 'static,
    {
        let source = list_all(source, &format!("list source {kind}s")).await?;
        let target = list_all(target, &format!("list target {kind}s")).await?;
        Ok(Listings { source, target })
    }

    /// The lowercase names of the target's items that `keep` accepts.
    pub fn target_names(
        &self,
        name: impl Fn(&T) -> Option<String>,
        keep: impl Fn(&T) -> bool,
    ) -> HashSet<String> {
        self.target
            .iter()
            .filter(|item| keep(item))
            .filter_map(name)
            .map(|name| name.to_ascii_lowercase())
            .collect()
    }

    /// `atg verify`: the names of the target's items that `keep` accepts and the source
    /// lacks (names compared without case).
    pub fn extras(
        &self,
        name: impl Fn(&T) -> Option<String>,
        keep: impl Fn(&T) -> bool,
    ) -> Vec<String> {
        let source = self.source.iter().filter_map(&name);
        let target = self
            .target
            .iter()
            .filter(|item| keep(item))
            .filter_map(&name);
        let key = |name: &String| name.to_ascii_lowercase();
        kit::pair_by_key(source, target, key, key)
            .into_iter()
            .filter_map(|merged| match merged {
                kit::Merged::TargetOnly(name) => Some(name),
                kit::Merged::SourceOnly(_) | kit::Merged::Both(..) => None,
            })
            .collect()
    }

    /// Pairs each item the source lists with the target's item of the same name (names are
    /// case-insensitive in Key Vault), in name order. A source item without a usable id is
    /// refused (`kind` names it); a target item without one is left out.
    pub fn paired(
        &self,
        kind: &str,
        name: impl Fn(&T) -> Option<String>,
        id: impl Fn(&T) -> Option<&String>,
    ) -> Result<Vec<Paired<'_, T>>, PluginError> {
        let mut named = Vec::with_capacity(self.source.len());
        for item in &self.source {
            let Some(item_name) = name(item) else {
                return Err(PluginError::Invalid(format!(
                    "the source vault listed a {kind} without a usable id ({:?})",
                    id(item)
                )));
            };
            named.push((item_name, item));
        }
        let target = self
            .target
            .iter()
            .filter_map(|item| Some((name(item)?, item)));
        let key = |(item_name, _): &(String, &T)| item_name.to_ascii_lowercase();
        Ok(kit::pair_by_key(named, target, key, key)
            .into_iter()
            .filter_map(kit::Merged::into_source_pair)
            .map(|((item_name, source), target)| (item_name, source, target.map(|(_, t)| t)))
            .collect())
    }
}

/// The outcome of a write whose answer nothing reads: only whether it succeeded, the error
/// classified.
pub(super) fn write_outcome<T>(result: azure_core::Result<T>) -> Result<(), AzureError> {
    result.map(drop).map_err(AzureError::from)
}

/// Answers `None` for 404 (absent), the error otherwise.
pub(super) fn absent_on_404<T>(result: azure_core::Result<T>) -> Result<Option<T>, AzureError> {
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

pub(super) fn is_deleted_conflict(error: &AzureError) -> bool {
    error.status == Some(409)
        && (error.has_code("ObjectIsDeletedButRecoverable")
            || error.message.contains("deleted but recoverable"))
}

/// An answer lost after the write may have taken effect (reset, 5xx, timeout): the retry
/// policy does not resend writes that add a version. 429 is never carried out.
pub(super) fn is_lost_answer(error: &AzureError) -> bool {
    error.is_retryable() && error.status() != Some(429)
}

pub(super) fn is_being_recovered_or_purged(error: &AzureError) -> bool {
    error.status == Some(409)
}

pub(super) fn failed(operation: &str, error: &AzureError) -> ItemStatus {
    ItemStatus::Failed {
        error: format!("{operation}: {error}"),
    }
}

/// Every item of a listing, all pages.
pub(super) async fn list_all<T, P>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Properties;

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
    fn listings_pair_by_name_without_case_once_each_and_refuse_a_source_item_without_an_id() {
        let id = |name: &str| Some(format!("https://kv1.vault.azure.net/secrets/{name}"));
        let listings = Listings {
            // A service that names an item twice (here in two cases) gets one item planned.
            source: vec![id("b"), id("A"), id("a")],
            target: vec![id("B"), None, id("c")],
        };
        let paired = listings
            .paired("secret", |item| name_of(item.as_ref()), Option::as_ref)
            .unwrap();
        let names: Vec<(&str, Option<String>)> = paired
            .iter()
            .map(|(name, _, target)| (name.as_str(), target.and_then(|t| name_of(t.as_ref()))))
            .collect();
        assert_eq!(names, vec![("A", None), ("b", Some("B".to_owned()))]);
        let broken = Listings {
            source: vec![id("a"), Some("not a url".to_owned())],
            target: Vec::new(),
        };
        let refused = broken
            .paired("key", |item| name_of(item.as_ref()), Option::as_ref)
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("the source vault listed a key without a usable id"),
            "{refused}"
        );
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
}
