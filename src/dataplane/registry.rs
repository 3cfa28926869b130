//! The one list of plugins, in a deliberate order (the order of `atg plugins` and the docs).
//! Adding a plugin means adding it here; tests walk this slice to check every plugin's claims.

use super::api_management::ApiManagementPlugin;
use super::app_service::AppServicePlugin;
use super::event_hubs::EventHubsPlugin;
use super::key_vault::KeyVaultPlugin;
use super::service_bus::ServiceBusPlugin;
use super::storage::StorageAccountPlugin;
use super::DataPlanePlugin;

pub static PLUGINS: &[&dyn DataPlanePlugin] = &[
    &KeyVaultPlugin,
    &StorageAccountPlugin,
    &AppServicePlugin,
    &ServiceBusPlugin,
    &EventHubsPlugin,
    &ApiManagementPlugin,
];

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
    use crate::dataplane::Capability;
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
    fn every_declared_limit_names_kinds_of_its_plugin_and_a_reason() {
        for plugin in PLUGINS {
            let info = plugin.info();
            for limit in info.limits {
                assert!(
                    !limit.reason.is_empty(),
                    "{}: a limit without a reason",
                    info.name
                );
                for kind in limit.kinds {
                    assert!(
                        info.item_kinds.iter().any(|k| k.name == *kind),
                        "{}: {} limit names an unknown kind {kind}",
                        info.name,
                        limit.capability
                    );
                }
            }
        }
        let key_vault = find("Microsoft.KeyVault/vaults").unwrap().info();
        assert!(!key_vault.can(Capability::CopyValue, "key"));
        assert!(key_vault.can(Capability::CopyValue, "secret"));
        assert!(!key_vault.can(Capability::IfSourceNewer, "secret"));
    }

    #[test]
    fn lookup_ignores_case() {
        assert!(find("microsoft.keyvault/VAULTS").is_some());
        assert!(find("microsoft.web/SITES").is_some());
        assert!(find("Microsoft.Sql/servers/databases").is_none());
    }
}
