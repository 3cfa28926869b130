//! `atg plugins`: the supported resource types, generated from the registry.

use serde::Serialize;

use super::ExitStatus;
use crate::cli::{OutputFormat, PluginsArgs};
use crate::dataplane::{registry, Capability, Mode, Side};
use crate::ui::Printer;

#[derive(Serialize)]
struct PluginView {
    name: &'static str,
    resource_types: &'static [&'static str],
    modes: Vec<Mode>,
    item_kinds: Vec<KindView>,
    permissions: Vec<PermissionView>,
    notes: &'static [&'static str],
    limits: Vec<LimitView>,
}

#[derive(Serialize)]
struct LimitView {
    capability: Capability,
    /// Empty: every kind of the plugin.
    kinds: &'static [&'static str],
    reason: &'static str,
}

#[derive(Serialize)]
struct KindView {
    name: &'static str,
    template: &'static str,
    replication: &'static str,
}

#[derive(Serialize)]
struct PermissionView {
    mode: Mode,
    side: Side,
    roles: &'static [&'static str],
    data_actions: &'static [&'static str],
}

pub fn run(args: &PluginsArgs, printer: Printer) -> ExitStatus {
    match args.output {
        OutputFormat::Human => {
            printer.plugins();
            ExitStatus::Success
        }
        OutputFormat::Json => {
            let views: Vec<PluginView> = registry::PLUGINS
                .iter()
                .map(|plugin| {
                    let info = plugin.info();
                    PluginView {
                        name: info.name,
                        resource_types: info.resource_types,
                        modes: info.modes.to_vec(),
                        item_kinds: info
                            .item_kinds
                            .iter()
                            .map(|k| KindView {
                                name: k.name,
                                template: k.template,
                                replication: k.replication,
                            })
                            .collect(),
                        permissions: info
                            .permissions
                            .iter()
                            .map(|p| PermissionView {
                                mode: p.mode,
                                side: p.side,
                                roles: p.roles,
                                data_actions: p.data_actions,
                            })
                            .collect(),
                        notes: info.notes,
                        limits: info
                            .limits
                            .iter()
                            .map(|l| LimitView {
                                capability: l.capability,
                                kinds: l.kinds,
                                reason: l.reason,
                            })
                            .collect(),
                    }
                })
                .collect();
            match printer.json(&views) {
                Ok(()) => ExitStatus::Success,
                Err(error) => {
                    printer.error(&format!("cannot write to stdout: {error}"), &[]);
                    ExitStatus::Error
                }
            }
        }
    }
}
