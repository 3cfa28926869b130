//! Event Hubs (`Microsoft.EventHub/namespaces`): event hubs, consumer groups and authorization
//! rules at namespace and event hub scope, copied through ARM. An Event Hubs namespace has the
//! shapes of a Service Bus one: the walk, the comparison of entities and the rules' keys are
//! Service Bus's (`super::service_bus::namespace`); this module holds what Event Hubs has.
//! Events are not copied (the report says so).
//!
//! An event hub's capture destination names a storage account (and maybe a user-assigned
//! identity) of the source's tenant: pointed at the one paired with it in this run, else the
//! event hub is written without capture and reported `partial`. With a `retentionDescription`,
//! `messageRetentionInDays` is neither written nor compared: the service derives it, and answers
//! a value beyond int64 when the cleanup policy is `Compact` (azure-rest-api-specs#36018).

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::kit::Paired;
use super::service_bus::namespace::{self, Adjusted, EntityKind, Schema, AUTHORIZATION_RULE};
use super::{
    Capability, DataPlanePlugin, ItemKindInfo, Job, Limit, Mode, PermissionInfo, Plan,
    PluginContext, PluginError, PluginInfo, Side,
};
use crate::azure::arm::eventhub::EVENT_HUBS;

const EVENT_HUB: &str = "event-hub";
const CONSUMER_GROUP: &str = "consumer-group";

static SCHEMA: Schema = Schema {
    api: &EVENT_HUBS,
    entities: &[
        EntityKind {
            kind: EVENT_HUB,
            collection: "eventhubs",
            parent: None,
            settable: &[
                "messageRetentionInDays",
                "retentionDescription",
                "partitionCount",
                "status",
                "captureDescription",
            ],
            immutable: &["partitionCount"],
            forwarding: &[],
            auto_created: &[],
        },
        EntityKind {
            kind: CONSUMER_GROUP,
            collection: "consumergroups",
            parent: Some("eventhubs"),
            settable: &["userMetadata"],
            immutable: &[],
            forwarding: &[],
            auto_created: &["$Default"],
        },
    ],
    rule_holders: &["eventhubs"],
};

const FACTS: &[(&str, &str)] = &[(
    "events",
    "not copied: events are data in flight, kept for the retention period only; replay them from their producers or the capture destination",
)];

static INFO: PluginInfo = PluginInfo {
    name: "event-hubs",
    resource_types: &["Microsoft.EventHub/namespaces"],
    modes: &[Mode::Template, Mode::Replication],
    item_kinds: &[
        ItemKindInfo {
            name: EVENT_HUB,
            template: "created or updated with retention, status and capture settings; a partition count that differs in the target is reported, never forced",
            replication: "as template",
        },
        ItemKindInfo {
            name: CONSUMER_GROUP,
            template: "created with its user metadata; the $Default group the service creates is matched, not duplicated",
            replication: "as template",
        },
        ItemKindInfo {
            name: AUTHORIZATION_RULE,
            template: "namespace and event hub rules with their rights; a created rule gets new keys from the service; no key is read",
            replication: "rights, and both keys set to the source's (regenerateKeys with the key), so connection strings keep working",
        },
    ],
    permissions: &[
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Source,
            data_actions: &[
                "Microsoft.EventHub/namespaces/read",
                "Microsoft.EventHub/namespaces/eventhubs/read",
                "Microsoft.EventHub/namespaces/eventhubs/consumergroups/read",
                "Microsoft.EventHub/namespaces/authorizationRules/read",
                "Microsoft.EventHub/namespaces/eventhubs/authorizationRules/read",
            ],
            roles: &["Reader"],
        },
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Target,
            data_actions: &[
                "Microsoft.EventHub/namespaces/read",
                "Microsoft.EventHub/namespaces/eventhubs/write",
                "Microsoft.EventHub/namespaces/eventhubs/consumergroups/write",
                "Microsoft.EventHub/namespaces/authorizationRules/write",
                "Microsoft.EventHub/namespaces/eventhubs/authorizationRules/write",
            ],
            roles: &["Contributor"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Source,
            data_actions: &[
                "Microsoft.EventHub/namespaces/*/read",
                "Microsoft.EventHub/namespaces/authorizationRules/listKeys/action",
                "Microsoft.EventHub/namespaces/eventhubs/authorizationRules/listKeys/action",
            ],
            roles: &["Contributor (listKeys: Reader cannot read keys)"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Target,
            data_actions: &[
                "Microsoft.EventHub/namespaces/*/read",
                "Microsoft.EventHub/namespaces/*/write",
                "Microsoft.EventHub/namespaces/authorizationRules/listKeys/action",
                "Microsoft.EventHub/namespaces/authorizationRules/regenerateKeys/action",
                "Microsoft.EventHub/namespaces/eventhubs/authorizationRules/listKeys/action",
                "Microsoft.EventHub/namespaces/eventhubs/authorizationRules/regenerateKeys/action",
            ],
            roles: &["Contributor"],
        },
    ],
    limits: &[Limit {
        capability: Capability::IfSourceNewer,
        kinds: &[],
        reason: "Event Hubs entities carry no modification time comparable across namespaces (updatedAt changes with every write to the target): --on-conflict if-source-newer acts as skip",
    }],
    notes: &[
        "everything goes through ARM (Microsoft.EventHub api-version 2024-01-01); no event is read or sent",
        "events are not copied: they are data in flight, kept for the retention period only; replay them from their producers or the capture destination",
        "a partition count that differs in the target is reported, never forced (fixed at creation on Standard; on Premium and Dedicated it can only grow)",
        "a capture destination is pointed at the storage account (and user-assigned identity) paired in this run with the source's; when one is not paired, the event hub is written without capture and reported partial",
        "with a retentionDescription, messageRetentionInDays is neither written nor compared (the service derives it from the description)",
    ],
};

pub struct EventHubsPlugin;

#[async_trait]
impl DataPlanePlugin for EventHubsPlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let references = CaptureReferences {
            storage: Paired::ids(&ctx.pairs, STORAGE_ACCOUNT),
            identities: Paired::ids(&ctx.pairs, USER_ASSIGNED_IDENTITY),
        };
        let adjust = |kind: &EntityKind, properties: &mut Map<String, Value>| {
            if kind.kind == EVENT_HUB {
                references.adjust(properties)
            } else {
                Adjusted::default()
            }
        };
        namespace::plan(&SCHEMA, ctx, job, FACTS, &adjust).await
    }
}

const STORAGE_ACCOUNT: &str = "Microsoft.Storage/storageAccounts";
const USER_ASSIGNED_IDENTITY: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

/// The resources of this run a capture destination may name.
struct CaptureReferences {
    storage: Paired<String>,
    identities: Paired<String>,
}

impl CaptureReferences {
    /// An event hub's properties as the target takes them.
    fn adjust(&self, properties: &mut Map<String, Value>) -> Adjusted {
        let mut adjusted = Adjusted::default();
        if properties.contains_key("retentionDescription") {
            adjusted.left_out.push("messageRetentionInDays");
        }
        let Some(capture) = properties.get_mut("captureDescription") else {
            return adjusted;
        };
        let Some(destination) = capture.get_mut("destination").filter(|d| !d.is_null()) else {
            return adjusted;
        };
        let references = [
            (
                "/properties/storageAccountResourceId",
                &self.storage,
                "storage account",
            ),
            (
                "/identity/userAssignedIdentity",
                &self.identities,
                "user-assigned identity",
            ),
        ];
        let mut unpaired = Vec::new();
        let mut rewritten = Vec::new();
        for (pointer, paired, what) in references {
            let Some(named) = destination.pointer_mut(pointer) else {
                continue;
            };
            let Some(source) = named.as_str().filter(|id| !id.is_empty()) else {
                continue;
            };
            let name = source
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            match paired.target_id(source) {
                Some(target) => {
                    let target_name = target.rsplit('/').next().unwrap_or_default();
                    rewritten.push(format!("{what} {name} → {target_name}"));
                    *named = Value::from(target);
                }
                None => unpaired.push(format!("{what} {name}")),
            }
        }
        // A destination atg cannot point anywhere (Data Lake, an unknown kind) names the
        // source's tenant too.
        let pairable = destination
            .pointer("/properties/storageAccountResourceId")
            .is_some_and(Value::is_string);
        if !pairable && unpaired.is_empty() {
            let kind = destination["name"].as_str().unwrap_or("unnamed");
            unpaired.push(format!(
                "destination {kind} (not a storage account atg can pair)"
            ));
        }
        if unpaired.is_empty() {
            adjusted.notes.push(format!(
                "capture destination pointed at this run's target: {}",
                rewritten.join(", ")
            ));
        } else {
            adjusted.left_out.push("captureDescription");
            adjusted.partial = Some(format!(
                "capture not copied: its {} is not paired in this run, and the target cannot capture into the source's tenant; the event hub is written without capture (pair it in the inventory and run again, or set capture in the target)",
                unpaired.join(" and ")
            ));
        }
        adjusted
    }
}
