//! Event Hubs (`Microsoft.EventHub/namespaces`): event hubs, consumer groups and authorization
//! rules at namespace and event hub scope, copied through ARM. An Event Hubs namespace has the
//! shapes of a Service Bus one: the walk, the comparison of entities and the rules' keys are
//! Service Bus's (`super::service_bus::namespace`); this module holds what Event Hubs has.
//! Events are not copied (the report says so).

use async_trait::async_trait;

use super::service_bus::namespace::{self, EntityKind, Schema, AUTHORIZATION_RULE};
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
        "capture settings are copied as they are: a capture destination names a storage account of the source's tenant unless it is rewritten by hand",
    ],
};

pub struct EventHubsPlugin;

#[async_trait]
impl DataPlanePlugin for EventHubsPlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        namespace::plan(&SCHEMA, ctx, job, FACTS).await
    }
}
