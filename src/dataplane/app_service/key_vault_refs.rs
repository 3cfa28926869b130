//! Key Vault references in app settings and connection strings
//! (`@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/s/ver)` and
//! `@Microsoft.KeyVault(VaultName=v;SecretName=s;SecretVersion=ver)`), rewritten to the target
//! vault paired in this run with the vault they name. A reference to a vault outside the run's
//! pairs is kept as it is and reported. A version is dropped: the target vault's secrets have
//! versions of their own.

use crate::azure::Cloud;
use crate::dataplane::key_vault::vault_url;
use crate::dataplane::kit::Paired;
use crate::inventory::ResourcePair;

const PREFIX: &str = "@Microsoft.KeyVault(";
const VAULT_TYPE: &str = "Microsoft.KeyVault/vaults";

/// Source vault host (`src.vault.azure.net`) → target vault (host, name), from the run's pairs.
#[derive(Debug, Default)]
pub struct VaultPairs {
    by_host: Paired<(String, String)>,
}

impl VaultPairs {
    pub fn new(pairs: &[ResourcePair], cloud: Cloud) -> Self {
        let by_host = Paired::new(pairs, VAULT_TYPE, |pair| {
            let source = vault_url(&pair.source, cloud).ok()?;
            let target = vault_url(&pair.target, cloud).ok()?;
            Some((
                source.host_str()?.to_owned(),
                (target.host_str()?.to_owned(), pair.target.name.clone()),
            ))
        });
        VaultPairs { by_host }
    }

    /// The target (host, name) of the vault named by `host` or by `name` in `cloud`.
    fn target(&self, host: &str) -> Option<&(String, String)> {
        self.by_host.target(host)
    }
}

/// What became of one value.
#[derive(Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Not a Key Vault reference.
    NotAReference,
    /// Rewritten to the paired target vault; `dropped_version` when a version was removed.
    Rewritten {
        value: String,
        vault: String,
        dropped_version: bool,
    },
    /// A reference to a vault not paired in this run (or one atg cannot read): kept.
    Kept { vault: String },
}

/// Rewrites `value` if it is a Key Vault reference (`cloud` gives the vault host suffix).
pub fn rewrite(value: &str, vaults: &VaultPairs, cloud: Cloud) -> Rewrite {
    let Some(inner) = value
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return Rewrite::NotAReference;
    };
    let parts: Vec<(String, String)> = inner
        .split(';')
        .filter(|part| !part.trim().is_empty())
        .filter_map(|part| {
            let (key, value) = part.split_once('=')?;
            Some((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let get = |name: &str| {
        parts
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    if let Some(uri) = get("SecretUri") {
        return rewrite_uri(uri, vaults);
    }
    let Some(vault) = get("VaultName") else {
        return Rewrite::Kept {
            vault: "(unrecognised reference)".into(),
        };
    };
    let host = format!("{}{}", vault.to_ascii_lowercase(), cloud.key_vault_suffix());
    let Some((_, target_name)) = vaults.target(&host) else {
        return Rewrite::Kept {
            vault: vault.to_owned(),
        };
    };
    let mut dropped_version = false;
    let rewritten: Vec<String> = parts
        .iter()
        .filter(|(key, _)| {
            let version = key.eq_ignore_ascii_case("SecretVersion");
            dropped_version |= version;
            !version
        })
        .map(|(key, value)| {
            if key.eq_ignore_ascii_case("VaultName") {
                format!("{key}={target_name}")
            } else {
                format!("{key}={value}")
            }
        })
        .collect();
    Rewrite::Rewritten {
        value: format!("{PREFIX}{})", rewritten.join(";")),
        vault: target_name.clone(),
        dropped_version,
    }
}

fn rewrite_uri(uri: &str, vaults: &VaultPairs) -> Rewrite {
    match target_secret_uri(uri, vaults) {
        Rewrite::Rewritten {
            value,
            vault,
            dropped_version,
        } => Rewrite::Rewritten {
            value: format!("{PREFIX}SecretUri={value}/)"),
            vault,
            dropped_version,
        },
        other => other,
    }
}

/// A secret URI (`https://v.vault.azure.net/secrets/s[/version]`) pointed at the target vault
/// paired with the vault it names, without a version (API Management's Key Vault-backed named
/// values hold one).
pub fn target_secret_uri(uri: &str, vaults: &VaultPairs) -> Rewrite {
    let Ok(url) = url::Url::parse(uri) else {
        return Rewrite::Kept { vault: uri.into() };
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let Some((target_host, target_name)) = vaults.target(&host) else {
        let vault = host.split('.').next().unwrap_or_default().to_owned();
        return Rewrite::Kept { vault };
    };
    // `/secrets/{name}[/{version}]`
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let (name, dropped_version) = match segments.as_slice() {
        ["secrets", name] => (*name, false),
        ["secrets", name, _version] => (*name, true),
        _ => {
            return Rewrite::Kept {
                vault: host.split('.').next().unwrap_or_default().to_owned(),
            }
        }
    };
    Rewrite::Rewritten {
        value: format!("https://{target_host}/secrets/{name}"),
        vault: target_name.clone(),
        dropped_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Evidence, MatchRule, Properties, Resource};

    fn vault(name: &str) -> Resource {
        Resource {
            id: format!(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/{name}"
            ),
            resource_type: VAULT_TYPE.into(),
            name: name.into(),
            subscription_id: Some("s".into()),
            resource_group: Some("g".into()),
            properties: Properties::default(),
            options: serde_json::Map::new(),
        }
    }

    fn vaults() -> VaultPairs {
        VaultPairs::new(
            &[ResourcePair {
                source: vault("src-kv"),
                target: vault("tgt-kv"),
                match_rule: MatchRule::Inventory,
                evidence: Evidence::default(),
            }],
            Cloud::AzureCloud,
        )
    }

    #[test]
    fn references_to_a_paired_vault_point_at_its_target() {
        let vaults = vaults();
        assert_eq!(
            rewrite(
                "@Microsoft.KeyVault(SecretUri=https://src-kv.vault.azure.net/secrets/db/0123abcd)",
                &vaults,
                Cloud::AzureCloud
            ),
            Rewrite::Rewritten {
                value: "@Microsoft.KeyVault(SecretUri=https://tgt-kv.vault.azure.net/secrets/db/)"
                    .into(),
                vault: "tgt-kv".into(),
                dropped_version: true,
            }
        );
        assert_eq!(
            rewrite(
                "@Microsoft.KeyVault(VaultName=SRC-KV;SecretName=db)",
                &vaults,
                Cloud::AzureCloud
            ),
            Rewrite::Rewritten {
                value: "@Microsoft.KeyVault(VaultName=tgt-kv;SecretName=db)".into(),
                vault: "tgt-kv".into(),
                dropped_version: false,
            }
        );
        assert!(matches!(
            rewrite(
                "@Microsoft.KeyVault(VaultName=src-kv;SecretName=db;SecretVersion=1)",
                &vaults,
                Cloud::AzureCloud
            ),
            Rewrite::Rewritten { value, dropped_version: true, .. }
                if value == "@Microsoft.KeyVault(VaultName=tgt-kv;SecretName=db)"
        ));
    }

    #[test]
    fn references_to_other_vaults_and_plain_values_are_kept() {
        let vaults = vaults();
        assert_eq!(
            rewrite(
                "@Microsoft.KeyVault(SecretUri=https://elsewhere.vault.azure.net/secrets/db/)",
                &vaults,
                Cloud::AzureCloud
            ),
            Rewrite::Kept {
                vault: "elsewhere".into()
            }
        );
        assert_eq!(
            rewrite(
                "@Microsoft.KeyVault(VaultName=other;SecretName=db)",
                &vaults,
                Cloud::AzureCloud
            ),
            Rewrite::Kept {
                vault: "other".into()
            }
        );
        assert_eq!(
            rewrite("Server=tcp:x;Password=p", &vaults, Cloud::AzureCloud),
            Rewrite::NotAReference
        );
    }
}
