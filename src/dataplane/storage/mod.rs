//! Storage accounts (`Microsoft.Storage/storageAccounts`): blob containers and blobs, queues,
//! tables and their entities.
//!
//! - Discovery lists the source one page at a time and keeps only counts: the plan has one item
//!   per container, queue and table, with blob counts and bytes in its notes and the facts.
//! - Template creates containers, queues and tables empty, with the source's metadata and stored
//!   access policies; public access only where the target account allows it.
//! - Replication copies blobs server-side (the bytes never pass through atg): Copy Blob From
//!   URL up to 256 MiB, Put Block From URL + Put Block List above (`AzCopy`'s way), Put Page From
//!   URL over the valid ranges of page blobs, Append Block From URL (conditional on the append
//!   position, so a retry never appends twice) for append blobs, and async Copy Blob, polled
//!   until it is done or `options.copy_timeout_secs` has passed, whenever the service answers
//!   that a call is not implemented. Metadata, content headers, tags and tier are preserved.
//!   Entities are copied with their property types in transactions of ≤ 100 per partition.
//!   Queue messages are copied only when the pair opts in (`options.queue_messages = "peek"`).
//! - Blob and entity outcomes are counted per container/table; only the blobs and entities that
//!   fail or are skipped for a reason are reported one by one, so memory stays flat whatever
//!   the number of blobs.
//!
//! The source is read with Entra ID when it can be (bearer, and a user-delegation SAS for copy
//! sources), else with an account SAS signed from ARM's listKeys, or from the connection string
//! given in the inventory pair's options. The report says which; no SAS is ever printed.
//!
//! Stored access policies are the one thing the services take only with Shared Key: those calls
//! (Get/Set Container, Queue and Table ACL) are signed with the account key of that side, from
//! ARM's listKeys or the pair's connection strings, fetched the first time a policy needs it.
//!
//! Planning builds the pair's clients once (the source's authorisation resolved once) and
//! returns a typed plan that owns them; applying carries that plan out. One file per item
//! kind: `container`, `blob` and `copy`, `queue` and `messages`, `table` and `entity`;
//! `access` for the authorisation and the clients, `options` for the pair's options.

mod access;
mod blob;
mod blob_plan;
mod container;
mod copy;
mod entity;
mod messages;
mod options;
mod queue;
mod table;

use std::sync::Arc;

use async_trait::async_trait;

use self::access::Clients;
use self::options::StorageOptions;
use super::kit::{apply_each, Decision, Existing, MergeError, Newer, Typed};
use super::{
    ApplyPlan, Capability, DataPlanePlugin, Discovery, ItemKindInfo, ItemStatus, Job, Limit, Mode,
    OnConflict, PermissionInfo, Plan, PlannedAction, PlannedItem, PluginContext, PluginError,
    PluginInfo, Side,
};
use crate::azure::storage::StorageEndpoints;
use crate::azure::AzureError;

pub struct StorageAccountPlugin;

/// Blobs per listing page. The service allows 5,000; a page is held whole (body, parsed
/// document, entries) on each side of the merge, so a smaller page keeps memory flat from a
/// thousand blobs to millions, for a few more list calls.
const BLOB_PAGE: u32 = 1000;

const CONTAINER: &str = "container";
const BLOB: &str = "blob";
const QUEUE: &str = "queue";
const TABLE: &str = "table";
const ENTITY: &str = "entity";

const MIB: u64 = 1024 * 1024;

static INFO: PluginInfo = PluginInfo {
    name: "storage-account",
    resource_types: &["Microsoft.Storage/storageAccounts"],
    modes: &[Mode::Template, Mode::Replication],
    item_kinds: &[
        ItemKindInfo {
            name: CONTAINER,
            template: "created empty with the same metadata, public access (where the target allows it) and stored access policies (signed with the account key: Shared Key is all the service takes)",
            replication: "as template, then every blob copied server-side",
        },
        ItemKindInfo {
            name: BLOB,
            template: "not copied (counted in the plan)",
            replication: "copied server-side with metadata, content headers, tags and tier; identical blobs skipped; archived blobs skipped with the remedy",
        },
        ItemKindInfo {
            name: QUEUE,
            template: "created with the same metadata and stored access policies (signed with the account key)",
            replication: "as template; messages copied only with options.queue_messages = peek (at most the 32 Peek Messages shows; the source is never dequeued)",
        },
        ItemKindInfo {
            name: TABLE,
            template: "created empty with the same stored access policies (signed with the account key)",
            replication: "as template, then every entity copied",
        },
        ItemKindInfo {
            name: ENTITY,
            template: "not copied",
            replication: "copied with its property types, ≤ 100 per transaction per partition",
        },
    ],
    permissions: &[
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Source,
            data_actions: &[
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
                "Microsoft.Storage/storageAccounts/queueServices/queues/read",
                "Microsoft.Storage/storageAccounts/tableServices/tables/read",
                "or Microsoft.Storage/storageAccounts/listkeys/action (account-key SAS)",
            ],
            roles: &[
                "Storage Blob Data Reader",
                "Storage Queue Data Reader",
                "Storage Table Data Reader",
                "or Storage Account Key Operator Service Role",
            ],
        },
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Target,
            data_actions: &[
                "Microsoft.Storage/storageAccounts/blobServices/containers/write",
                "Microsoft.Storage/storageAccounts/queueServices/queues/write",
                "Microsoft.Storage/storageAccounts/tableServices/tables/write",
            ],
            roles: &[
                "Storage Blob Data Contributor",
                "Storage Queue Data Contributor",
                "Storage Table Data Contributor",
                "and, for stored access policies, Storage Account Key Operator Service Role (listKeys)",
            ],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Source,
            data_actions: &[
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
                "Microsoft.Storage/storageAccounts/tableServices/tables/entities/read",
                "or Microsoft.Storage/storageAccounts/listkeys/action (account-key SAS)",
            ],
            roles: &[
                "Storage Blob Data Reader",
                "Storage Queue Data Reader",
                "Storage Table Data Reader",
                "or Storage Account Key Operator Service Role",
            ],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Target,
            data_actions: &[
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
                "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write",
                "Microsoft.Storage/storageAccounts/tableServices/tables/entities/write",
                "Microsoft.Storage/storageAccounts/queueServices/queues/write",
            ],
            roles: &[
                "Storage Blob Data Contributor",
                "Storage Queue Data Contributor",
                "Storage Table Data Contributor",
                "and, for stored access policies, Storage Account Key Operator Service Role (listKeys)",
            ],
        },
    ],
    notes: &[
        "blobs are copied server-side: Copy Blob From URL (≤ 256 MiB), Put Block From URL + Put Block List (larger block blobs), Put Page From URL (the valid ranges of page blobs) and Append Block From URL (append blobs, each block conditional on its position), async Copy Blob when the service does not implement those (waited for up to options.copy_timeout_secs, a day by default, then reported failed)",
        "the source is read with Entra ID (user-delegation SAS for copy sources) when possible, else with an account SAS from ARM listKeys or options.source_connection_string",
        "stored access policies take Shared Key: atg signs those few calls with the account key (listKeys on each side, or options.source_connection_string / options.target_connection_string), fetched only when there are policies to read or write; without a key they are reported, not copied",
        "archived blobs are skipped: rehydrate them (set tier Hot or Cool) and run again",
        "queue messages are copied only with options.queue_messages = \"peek\": at most the 32 that Peek Messages shows, never dequeued from the source",
        "Azure Files shares are not copied",
    ],
    limits: &[
        Limit {
            capability: Capability::Template,
            kinds: &[BLOB, ENTITY],
            reason: "template mode creates the structure only: blobs and table entities are data, copied in replication",
        },
        Limit {
            capability: Capability::IfSourceNewer,
            kinds: &[CONTAINER, QUEUE, TABLE],
            reason: "container, queue and table settings carry no modification time of their own: --on-conflict if-source-newer acts as skip for them (blobs and entities are compared by time)",
        },
    ],
};

#[async_trait]
impl DataPlanePlugin for StorageAccountPlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    fn validate_options(&self, pair: &crate::inventory::ResourcePair) -> Result<(), String> {
        StorageOptions::parse(&pair.target).map(drop)
    }

    fn validate_endpoints(
        &self,
        pair: &crate::inventory::ResourcePair,
        cloud: crate::azure::Cloud,
    ) -> Result<(), String> {
        for (side, resource) in [("source", &pair.source), ("target", &pair.target)] {
            // A name no account can have fails its own resource when the run reaches it, before
            // any request to it; what is refused here, for the whole run, is an endpoint given
            // elsewhere than the cloud's host for that name.
            if StorageEndpoints::resolve(&resource.name, None, cloud).is_err() {
                continue;
            }
            access::endpoints(resource, cloud).map_err(|error| format!("{side}: {error}"))?;
        }
        Ok(())
    }

    /// Builds the pair's clients (the source's authorisation resolved, once), reads both sides
    /// and plans every container, queue and table. The plan owns the clients.
    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let clients = access::clients(ctx, job).await?;
        let mut discovery = Discovery::default();
        let facts = &mut discovery.facts;
        facts.insert(
            "source_authorisation".into(),
            clients.access.method.clone().into(),
        );
        facts.insert(
            "source_blob_endpoint".into(),
            clients.source_blob.base().as_str().into(),
        );
        facts.insert(
            "target_blob_endpoint".into(),
            clients.target_blob.base().as_str().into(),
        );
        let mut items = Vec::new();
        container::plan(ctx, job, &clients, &mut discovery, &mut items).await?;
        queue::plan(ctx, job, &clients, &mut discovery, &mut items).await?;
        table::plan(ctx, job, &clients, &mut discovery, &mut items).await?;
        discovery.items = items.iter().map(|typed| typed.item.clone()).collect();
        Ok(Plan {
            discovery,
            apply: Box::new(AccountPlan {
                items,
                clients: Arc::new(clients),
            }),
        })
    }
}

/// The plugin's own plan of one item.
#[derive(Debug)]
enum ItemPlan {
    Container(container::ContainerPlan),
    Queue(queue::QueuePlan),
    Table(table::TablePlan),
}

/// A planned container, queue or table: created when the target lacks it, else compared when
/// applied (its blobs or entities are compared then).
fn planned(
    kind: &'static str,
    name: String,
    exists: bool,
    notes: Vec<String>,
    plan: ItemPlan,
) -> Typed<ItemPlan> {
    Typed {
        item: PlannedItem {
            kind,
            name,
            action: if exists {
                PlannedAction::Compare
            } else {
                PlannedAction::Create
            },
            notes,
            // Approved as a whole: blobs, entities and messages are compared when applied.
            fingerprint: None,
        },
        detail: plan,
    }
}

/// The plan of one pair: its items and the clients planning built.
struct AccountPlan {
    items: Vec<Typed<ItemPlan>>,
    clients: Arc<Clients>,
}

#[async_trait]
impl ApplyPlan for AccountPlan {
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        self.items
            .retain(|typed| keep(typed.item.kind, &typed.item.name));
    }

    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let clients = self.clients;
        // Four containers, queues or tables at a time; their blobs and entities share the run's
        // item slots.
        apply_each(ctx, job, self.items, 4, |Typed { item, detail }| {
            let clients = clients.clone();
            async move {
                let mut notes = item.notes;
                let name = &item.name;
                let status = match &detail {
                    ItemPlan::Container(plan) => {
                        container::apply(ctx, job, &clients, name, plan, &mut notes).await
                    }
                    ItemPlan::Queue(plan) => {
                        queue::apply(ctx, job, &clients, name, plan, &mut notes).await
                    }
                    ItemPlan::Table(plan) => {
                        table::apply(ctx, job, &clients, name, plan, &mut notes).await
                    }
                };
                (status, notes)
            }
        })
        .await;
        Ok(())
    }
}

/// Counts of one container's blobs or one table's entities.
#[derive(Debug, Default)]
struct Tally {
    copied: u64,
    bytes: u64,
    sync: u64,
    blocks: u64,
    ranges: u64,
    asynchronous: u64,
    identical: u64,
    skipped: u64,
    failed: u64,
    listing_error: Option<String>,
}

impl Tally {
    fn summary(&self) -> String {
        format!(
            "blobs: {} copied ({}; {} copy-from-url, {} put-block-from-url, {} page/append-from-url, {} async copy), {} identical, {} skipped, {} failed",
            self.copied,
            human_bytes(self.bytes),
            self.sync,
            self.blocks,
            self.ranges,
            self.asynchronous,
            self.identical,
            self.skipped,
            self.failed
        )
    }
}

#[allow(clippy::cast_precision_loss)] // a rounded size for people to read
fn human_bytes(bytes: u64) -> String {
    let value = bytes as f64;
    if bytes >= 1024 * MIB {
        format!("{:.1} GiB", value / (1024.0 * MIB as f64))
    } else if bytes >= MIB {
        format!("{:.1} MiB", value / MIB as f64)
    } else if bytes >= 1024 {
        format!("{:.1} KiB", value / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn failed(operation: &str, error: &AzureError) -> ItemStatus {
    ItemStatus::Failed {
        error: format!("{operation}: {error}"),
    }
}

fn list_error(what: &str, error: AzureError) -> PluginError {
    PluginError::azure(format!("list {what}"), error)
}

/// Why walking the two listings of a container or table stopped: `list source blobs: ...`.
fn listing_failure(what: &str, error: MergeError<AzureError>) -> String {
    match error {
        MergeError::Listing(Side::Source, error) => format!("list source {what}: {error}"),
        MergeError::Listing(Side::Target, error) => format!("list target {what}: {error}"),
        out_of_order @ MergeError::OutOfOrder(_) => out_of_order.to_string(),
    }
}

/// What `--on-conflict` does with a container, queue or table whose settings (metadata,
/// policies) differ in the target: `None` to write them. Settings carry no modification time,
/// so `if-source-newer` acts as `skip`.
fn settings_conflict(policy: OnConflict, what: &str) -> Option<ItemStatus> {
    Decision::new(
        policy,
        what,
        Existing::Differs(Newer::Unknown(
            "settings carry no comparable modification time",
        )),
    )
    .settled()
}

const SOURCE_POLICIES_UNREAD: &str =
    "stored access policies not copied: the source's could not be read (see notes)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_differ_follow_the_kit_decision_and_if_source_newer_acts_as_skip() {
        assert_eq!(settings_conflict(OnConflict::Overwrite, "queue"), None);
        assert_eq!(
            settings_conflict(OnConflict::Skip, "container"),
            Some(ItemStatus::Skipped {
                reason: "container exists in the target and differs (--on-conflict skip)".into()
            })
        );
        assert_eq!(
            settings_conflict(OnConflict::Fail, "table"),
            Some(ItemStatus::Failed {
                error: "table exists in the target and differs (--on-conflict fail)".into()
            })
        );
        assert!(matches!(
            settings_conflict(OnConflict::IfSourceNewer, "queue"),
            Some(ItemStatus::Skipped { reason })
                if reason.contains("settings carry no comparable modification time")
                    && reason.contains("acts as skip")
        ));
    }
}
