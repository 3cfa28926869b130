//! The Azure clouds atg can talk to: their hosts, token audiences and DNS suffixes.
//!
//! This module owns every cloud-specific string. Nothing else in atg may hard-code a host name,
//! so that choosing `--cloud AzureChinaCloud` moves every request (and every bearer token) together.

use std::fmt;
use std::str::FromStr;

use azure_core::cloud::CloudConfiguration;

/// One of the Azure clouds, as named by the Azure CLI (`az cloud list`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cloud {
    #[default]
    AzureCloud,
    AzureChinaCloud,
    AzureUsGovernment,
}

impl Cloud {
    pub const ALL: [Cloud; 3] = [
        Cloud::AzureCloud,
        Cloud::AzureChinaCloud,
        Cloud::AzureUsGovernment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "AzureCloud",
            Cloud::AzureChinaCloud => "AzureChinaCloud",
            Cloud::AzureUsGovernment => "AzureUSGovernment",
        }
    }

    /// Entra ID authority host (no trailing slash).
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "https://login.microsoftonline.com",
            Cloud::AzureChinaCloud => "https://login.chinacloudapi.cn",
            Cloud::AzureUsGovernment => "https://login.microsoftonline.us",
        }
    }

    /// Azure Resource Manager endpoint (no trailing slash).
    pub fn resource_manager(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "https://management.azure.com",
            Cloud::AzureChinaCloud => "https://management.chinacloudapi.cn",
            Cloud::AzureUsGovernment => "https://management.usgovcloudapi.net",
        }
    }

    /// Token scope for ARM.
    pub fn resource_manager_scope(self) -> String {
        format!("{}/.default", self.resource_manager())
    }

    /// DNS suffix of Key Vault hosts, with its leading dot.
    pub fn key_vault_suffix(self) -> &'static str {
        match self {
            Cloud::AzureCloud => ".vault.azure.net",
            Cloud::AzureChinaCloud => ".vault.azure.cn",
            Cloud::AzureUsGovernment => ".vault.usgovcloudapi.net",
        }
    }

    /// Storage endpoint suffix (`<account>.blob.<suffix>`).
    pub fn storage_suffix(self) -> &'static str {
        match self {
            Cloud::AzureCloud => "core.windows.net",
            Cloud::AzureChinaCloud => "core.chinacloudapi.cn",
            Cloud::AzureUsGovernment => "core.usgovcloudapi.net",
        }
    }

    /// The vault URI Azure gives a vault of this name in this cloud.
    pub fn vault_uri(self, vault_name: &str) -> String {
        format!("https://{vault_name}{}/", self.key_vault_suffix())
    }

    /// Host suffixes that may receive this cloud's bearer tokens. A host must equal one of
    /// these (without its leading dot) or end with it.
    pub fn token_host_suffixes(self) -> Vec<String> {
        let host = |url: &str| url.trim_start_matches("https://").to_owned();
        let storage = self.storage_suffix();
        vec![
            host(self.authority_host()),
            host(self.resource_manager()),
            self.key_vault_suffix().to_owned(),
            format!(".blob.{storage}"),
            format!(".queue.{storage}"),
            format!(".table.{storage}"),
            format!(".file.{storage}"),
            format!(".dfs.{storage}"),
        ]
    }

    /// Whether a host belongs to this cloud, so tokens may be sent to it.
    pub fn allows_host(self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.token_host_suffixes().iter().any(|suffix| {
            if let Some(bare) = suffix.strip_prefix('.') {
                host.ends_with(suffix.as_str()) && host.len() > bare.len() + 1
            } else {
                host == *suffix
            }
        })
    }

    /// The `azure_core` cloud configuration, which selects the authority host of `azure_identity`.
    pub fn configuration(self) -> CloudConfiguration {
        match self {
            Cloud::AzureCloud => CloudConfiguration::AzurePublic,
            Cloud::AzureChinaCloud => CloudConfiguration::AzureChina,
            Cloud::AzureUsGovernment => CloudConfiguration::AzureGovernment,
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cloud {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Cloud::ALL
            .into_iter()
            .find(|cloud| cloud.name().eq_ignore_ascii_case(value))
            .ok_or_else(|| {
                format!("unknown cloud `{value}`: expected AzureCloud, AzureChinaCloud or AzureUSGovernment")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_hosts_are_allowed_only_in_their_own_cloud() {
        assert!(Cloud::AzureCloud.allows_host("myvault.vault.azure.net"));
        assert!(Cloud::AzureCloud.allows_host("MyVault.Vault.Azure.Net"));
        assert!(!Cloud::AzureCloud.allows_host("myvault.vault.azure.cn"));
        assert!(Cloud::AzureChinaCloud.allows_host("myvault.vault.azure.cn"));
        assert!(Cloud::AzureUsGovernment.allows_host("v.vault.usgovcloudapi.net"));
    }

    #[test]
    fn look_alike_hosts_are_refused() {
        let cloud = Cloud::AzureCloud;
        assert!(!cloud.allows_host("vault.azure.net.evil.example"));
        assert!(!cloud.allows_host("evilvault.azure.net"));
        assert!(!cloud.allows_host(".vault.azure.net"));
        assert!(!cloud.allows_host("management.azure.com.evil.example"));
        assert!(cloud.allows_host("management.azure.com"));
        assert!(cloud.allows_host("acct.blob.core.windows.net"));
    }

    #[test]
    fn cloud_names_parse_case_insensitively() {
        assert_eq!("azureusgovernment".parse(), Ok(Cloud::AzureUsGovernment));
        assert!("AzureGermanCloud".parse::<Cloud>().is_err());
    }
}
