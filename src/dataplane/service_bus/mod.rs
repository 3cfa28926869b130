//! Service Bus (`Microsoft.ServiceBus/namespaces`): queues, topics, subscriptions, rules (SQL
//! and correlation filters, actions) and authorization rules at namespace, queue and topic
//! scope, copied through ARM (every call goes to the ARM host).
//!
//! One file per item kind: `entities` (queues, topics, subscriptions and rules: their
//! settable properties, the immutable ones reported, `$Default` matched) and
//! `authorization_rules` (rights, and the keys in replication); `namespace` walks a
//! namespace and applies in dependency order, for this plugin and for Event Hubs, whose
//! namespaces have the same shapes. Messages are not copied (the report says so).

mod authorization_rules;
mod entities;
pub(crate) mod namespace;

use async_trait::async_trait;

use super::{
    Capability, DataPlanePlugin, ItemKindInfo, Job, Limit, Mode, PermissionInfo, Plan,
    PluginContext, PluginError, PluginInfo, Side,
};
use crate::azure::arm::servicebus::SERVICE_BUS;
use namespace::{EntityKind, Schema, AUTHORIZATION_RULE};

const QUEUE: &str = "queue";
const TOPIC: &str = "topic";
const SUBSCRIPTION: &str = "subscription";
const RULE: &str = "rule";

/// Whether a message lands twice, and where it goes next: the properties both queues and
/// subscriptions have.
const FORWARDING: &[&str] = &["forwardTo", "forwardDeadLetteredMessagesTo"];

static SCHEMA: Schema = Schema {
    api: &SERVICE_BUS,
    entities: &[
        EntityKind {
            kind: TOPIC,
            collection: "topics",
            parent: None,
            settable: &[
                "defaultMessageTimeToLive",
                "maxSizeInMegabytes",
                "maxMessageSizeInKilobytes",
                "requiresDuplicateDetection",
                "duplicateDetectionHistoryTimeWindow",
                "enableBatchedOperations",
                "status",
                "supportOrdering",
                "autoDeleteOnIdle",
                "enablePartitioning",
                "enableExpress",
            ],
            immutable: &["requiresDuplicateDetection", "enablePartitioning"],
            forwarding: &[],
            auto_created: &[],
        },
        EntityKind {
            kind: QUEUE,
            collection: "queues",
            parent: None,
            settable: &[
                "lockDuration",
                "maxSizeInMegabytes",
                "maxMessageSizeInKilobytes",
                "requiresDuplicateDetection",
                "requiresSession",
                "defaultMessageTimeToLive",
                "deadLetteringOnMessageExpiration",
                "duplicateDetectionHistoryTimeWindow",
                "maxDeliveryCount",
                "status",
                "enableBatchedOperations",
                "autoDeleteOnIdle",
                "enablePartitioning",
                "enableExpress",
                "forwardTo",
                "forwardDeadLetteredMessagesTo",
            ],
            immutable: &[
                "requiresSession",
                "requiresDuplicateDetection",
                "enablePartitioning",
            ],
            forwarding: FORWARDING,
            auto_created: &[],
        },
        EntityKind {
            kind: SUBSCRIPTION,
            collection: "subscriptions",
            parent: Some("topics"),
            settable: &[
                "lockDuration",
                "requiresSession",
                "defaultMessageTimeToLive",
                "deadLetteringOnFilterEvaluationExceptions",
                "deadLetteringOnMessageExpiration",
                "maxDeliveryCount",
                "status",
                "enableBatchedOperations",
                "autoDeleteOnIdle",
                "isClientAffine",
                "clientAffineProperties",
                "forwardTo",
                "forwardDeadLetteredMessagesTo",
            ],
            immutable: &["requiresSession"],
            forwarding: FORWARDING,
            auto_created: &[],
        },
        EntityKind {
            kind: RULE,
            collection: "rules",
            parent: Some("subscriptions"),
            settable: &["action", "filterType", "sqlFilter", "correlationFilter"],
            immutable: &[],
            forwarding: &[],
            auto_created: &["$Default"],
        },
    ],
    rule_holders: &["queues", "topics"],
};

/// Facts every report of a namespace carries.
const FACTS: &[(&str, &str)] = &[(
    "messages",
    "not copied: a message is data in flight, consumed once; drain or replay it with the application (or Service Bus Explorer)",
)];

const READS: &[&str] = &[
    "Microsoft.ServiceBus/namespaces/read",
    "Microsoft.ServiceBus/namespaces/queues/read",
    "Microsoft.ServiceBus/namespaces/topics/read",
    "Microsoft.ServiceBus/namespaces/topics/subscriptions/read",
    "Microsoft.ServiceBus/namespaces/topics/subscriptions/rules/read",
    "Microsoft.ServiceBus/namespaces/authorizationRules/read",
    "Microsoft.ServiceBus/namespaces/queues/authorizationRules/read",
    "Microsoft.ServiceBus/namespaces/topics/authorizationRules/read",
];

static INFO: PluginInfo = PluginInfo {
    name: "service-bus",
    resource_types: &["Microsoft.ServiceBus/namespaces"],
    modes: &[Mode::Template, Mode::Replication],
    item_kinds: &[
        ItemKindInfo {
            name: TOPIC,
            template: "created or updated with every settable property (TTLs, sizes, duplicate detection, ordering, partitioning, status)",
            replication: "as template",
        },
        ItemKindInfo {
            name: QUEUE,
            template: "created or updated with every settable property (lock duration, TTLs, max delivery count, sessions, duplicate detection, dead-lettering, partitioning, forwarding); forwarding targets first; properties fixed at creation that differ in the target are reported, never forced",
            replication: "as template",
        },
        ItemKindInfo {
            name: SUBSCRIPTION,
            template: "as queues, under their topic",
            replication: "as template",
        },
        ItemKindInfo {
            name: RULE,
            template: "SQL and correlation filters with their actions; the $Default rule the service creates is matched, not duplicated; when the source deleted its $Default, the one the service makes in a subscription atg creates is deleted after the source's rules are written (one the target held before is reported, never deleted)",
            replication: "as template",
        },
        ItemKindInfo {
            name: AUTHORIZATION_RULE,
            template: "namespace, queue and topic rules with their rights; a created rule gets new keys from the service; no key is read",
            replication: "rights, and both keys set to the source's (regenerateKeys with the key), so connection strings keep working",
        },
    ],
    permissions: &[
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Source,
            data_actions: READS,
            roles: &["Reader"],
        },
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Target,
            data_actions: &[
                "Microsoft.ServiceBus/namespaces/read",
                "Microsoft.ServiceBus/namespaces/queues/write",
                "Microsoft.ServiceBus/namespaces/topics/write",
                "Microsoft.ServiceBus/namespaces/topics/subscriptions/write",
                "Microsoft.ServiceBus/namespaces/topics/subscriptions/rules/write",
                "Microsoft.ServiceBus/namespaces/authorizationRules/write",
                "Microsoft.ServiceBus/namespaces/queues/authorizationRules/write",
                "Microsoft.ServiceBus/namespaces/topics/authorizationRules/write",
            ],
            roles: &["Contributor"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Source,
            data_actions: &[
                "Microsoft.ServiceBus/namespaces/*/read",
                "Microsoft.ServiceBus/namespaces/authorizationRules/listKeys/action",
                "Microsoft.ServiceBus/namespaces/queues/authorizationRules/listKeys/action",
                "Microsoft.ServiceBus/namespaces/topics/authorizationRules/listKeys/action",
            ],
            roles: &["Contributor (listKeys: Reader cannot read keys)"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Target,
            data_actions: &[
                "Microsoft.ServiceBus/namespaces/*/read",
                "Microsoft.ServiceBus/namespaces/*/write",
                "Microsoft.ServiceBus/namespaces/authorizationRules/listKeys/action",
                "Microsoft.ServiceBus/namespaces/authorizationRules/regenerateKeys/action",
                "Microsoft.ServiceBus/namespaces/queues/authorizationRules/listKeys/action",
                "Microsoft.ServiceBus/namespaces/queues/authorizationRules/regenerateKeys/action",
                "Microsoft.ServiceBus/namespaces/topics/authorizationRules/listKeys/action",
                "Microsoft.ServiceBus/namespaces/topics/authorizationRules/regenerateKeys/action",
            ],
            roles: &["Contributor"],
        },
    ],
    limits: &[Limit {
        capability: Capability::IfSourceNewer,
        kinds: &[],
        reason: "Service Bus entities carry no modification time comparable across namespaces (updatedAt changes with every write to the target): --on-conflict if-source-newer acts as skip",
    }],
    notes: &[
        "everything goes through ARM (Microsoft.ServiceBus api-version 2024-01-01); no message is read or sent",
        "messages are not copied: they are data in flight, consumed once; drain or replay them with the application",
        "order: topics, then queues and subscriptions after the entities they forward to, rules after their subscription, authorization rules after their entity",
        "a write the service refuses with 409 SubCode=40901 (another write to a related entity in progress) is sent again with a backoff, up to 6 times",
        "properties fixed at creation (requiresSession, requiresDuplicateDetection, enablePartitioning) that differ in the target are reported, never forced: recreating the entity would drop its messages",
    ],
};

pub struct ServiceBusPlugin;

#[async_trait]
impl DataPlanePlugin for ServiceBusPlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        namespace::plan(&SCHEMA, ctx, job, FACTS, &namespace::unchanged).await
    }
}
