//! The one list of plugins, in a deliberate order (the order of `atg plugins` and the docs).
//! Adding a plugin means adding it here; tests walk this slice to check every plugin's claims.

use super::app_service::AppServicePlugin;
use super::key_vault::KeyVaultPlugin;
use super::storage_account::StorageAccountPlugin;
use super::DataPlanePlugin;

pub static PLUGINS: &[&dyn DataPlanePlugin] =
    &[&KeyVaultPlugin, &StorageAccountPlugin, &AppServicePlugin];

/// The plugin that handles an ARM resource type (compared case-insensitively).
pub fn find(resource_type: &str) -> Option<&'static dyn DataPlanePlugin> {
    PLUGINS
        .iter()
        .copied()
        .find(|plugin| plugin.info().handles(resource_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_resource_type_is_claimed_once() {
        let mut seen = HashSet::new();
        for plugin in PLUGINS {
            for resource_type in plugin.info().resource_types {
                assert!(
                    seen.insert(resource_type.to_ascii_lowercase()),
                    "{resource_type} claimed twice"
                );
            }
        }
    }

    #[test]
    fn every_plugin_supports_a_mode_and_declares_kinds_and_permissions() {
        let mut names = HashSet::new();
        for plugin in PLUGINS {
            let info = plugin.info();
            assert!(names.insert(info.name), "plugin name {} twice", info.name);
            assert!(!info.modes.is_empty(), "{} supports no mode", info.name);
            let kinds: HashSet<_> = info.item_kinds.iter().map(|k| k.name).collect();
            assert_eq!(
                kinds.len(),
                info.item_kinds.len(),
                "{} repeats an item kind",
                info.name
            );
            for mode in info.modes {
                assert!(
                    info.permissions.iter().any(|p| p.mode == *mode),
                    "{} declares no permissions for {mode}",
                    info.name
                );
            }
        }
    }

    #[test]
    fn lookup_ignores_case() {
        assert!(find("microsoft.keyvault/VAULTS").is_some());
        assert!(find("microsoft.web/SITES").is_some());
        assert!(find("Microsoft.Sql/servers/databases").is_none());
    }
}
