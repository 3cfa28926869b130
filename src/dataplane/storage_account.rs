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
//!   position, so a retry never appends twice) for append blobs, and async Copy Blob, polled to
//!   completion, whenever the service answers that a call is not implemented. Metadata, content headers, tags and tier are preserved.
//!   Entities are copied with their property types in transactions of ≤ 100 per partition.
//!   Queue messages are never copied (structure only).
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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    apply_each, ApplyPlan, Capability, Counted, DataPlanePlugin, Discovery, Interrupted,
    ItemKindInfo, ItemOutcome, ItemStatus, Job, JobId, Limit, Mode, OnConflict, PermissionInfo,
    Plan, PlannedAction, PlannedItem, PluginContext, PluginError, PluginInfo, Side, SideContext,
};
use crate::azure::arm::{self, ArmClient};
use crate::azure::error::AzureErrorKind;
use crate::azure::storage::blob::{
    BlobItem, ContainerSettings, CopyAnswer, CopyState, Destination, INCOMPLETE_MARKER,
};
use crate::azure::storage::queue::QueueSettings;
use crate::azure::storage::sas::{self, UserDelegationKey};
use crate::azure::storage::table::{BatchFailure, Entity, EntityWrite, MAX_BATCH, MAX_BATCH_BYTES};
use crate::azure::storage::SignedIdentifier;
use crate::azure::storage::{StorageAuth, StorageClient, StorageEndpoints, StorageService};
use crate::azure::{AzureError, Sensitive, WriteAccess};
use crate::inventory::{Properties, Resource};

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

/// Largest blob Copy Blob From URL takes.
const SYNC_COPY_MAX: u64 = 256 * 1024 * 1024;
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
        "blobs are copied server-side: Copy Blob From URL (≤ 256 MiB), Put Block From URL + Put Block List (larger block blobs), Put Page From URL (the valid ranges of page blobs) and Append Block From URL (append blobs, each block conditional on its position), async Copy Blob when the service does not implement those",
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

/// Per-pair knobs from the inventory's `options`, resolved: what the plugin works with.
#[derive(Debug)]
struct StorageOptions {
    connection_string: Option<(Sensitive, String)>,
    /// The target's connection string: its account key signs what only Shared Key may do
    /// (stored access policies).
    target_connection_string: Option<(Sensitive, String)>,
    source_auth: SourceAuthChoice,
    sync_copy_max: u64,
    block_size: Option<u64>,
    /// `queue_messages: "peek"`: copy the (at most 32) messages Peek Messages shows.
    copy_queue_messages: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SourceAuthChoice {
    #[default]
    Auto,
    Entra,
    AccountKey,
}

/// The inventory's `options` of a storage pair as written: every key known, every value in
/// range, so that a bad option is refused before any request (the orchestrator calls
/// [`StorageOptions::parse`] through `validate_options`) and the run uses the same parse.
/// Each field reads through a function that names the key in its message: serde's own
/// messages name neither the key nor the valid values, and would echo a misplaced secret.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageOptionsInput {
    #[serde(default, deserialize_with = "source_connection_string")]
    source_connection_string: Option<Sensitive>,
    #[serde(default, deserialize_with = "source_connection_string_env")]
    source_connection_string_env: Option<String>,
    #[serde(default, deserialize_with = "target_connection_string")]
    target_connection_string: Option<Sensitive>,
    #[serde(default, deserialize_with = "target_connection_string_env")]
    target_connection_string_env: Option<String>,
    #[serde(default, deserialize_with = "source_auth")]
    source_auth: Option<SourceAuthChoice>,
    #[serde(default, deserialize_with = "sync_copy_max_mib")]
    sync_copy_max_mib: Option<u64>,
    #[serde(default, deserialize_with = "block_size_mib")]
    block_size_mib: Option<u64>,
    #[serde(default, deserialize_with = "queue_messages")]
    queue_messages: Option<bool>,
}

/// One option: absent or null is `None`; otherwise `read` must accept it, or the error says
/// `options.<key> <expected>` (never the value, which may be a secret in the wrong place).
fn option<'de, D, T>(
    deserializer: D,
    key: &str,
    expected: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => read(&value).map(Some).ok_or_else(|| {
            <D::Error as serde::de::Error>::custom(format!("options.{key} {expected}"))
        }),
    }
}

fn text_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    key: &str,
) -> Result<Option<String>, D::Error> {
    option(deserializer, key, "must be a string", |value| {
        value.as_str().map(str::to_owned)
    })
}

fn mebibytes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    key: &str,
    max: u64,
) -> Result<Option<u64>, D::Error> {
    option(
        deserializer,
        key,
        &format!("must be a whole number from 1 to {max}"),
        |value| {
            value
                .as_u64()
                .filter(|n| (1..=max).contains(n))
                .map(|n| n * MIB)
        },
    )
}

fn source_connection_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Sensitive>, D::Error> {
    Ok(text_option(deserializer, "source_connection_string")?.map(Sensitive::new))
}

fn source_connection_string_env<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text_option(deserializer, "source_connection_string_env")
}

fn target_connection_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Sensitive>, D::Error> {
    Ok(text_option(deserializer, "target_connection_string")?.map(Sensitive::new))
}

fn target_connection_string_env<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    text_option(deserializer, "target_connection_string_env")
}

fn source_auth<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SourceAuthChoice>, D::Error> {
    option(
        deserializer,
        "source_auth",
        "must be auto, entra or account-key",
        |value| match value.as_str()? {
            "auto" => Some(SourceAuthChoice::Auto),
            "entra" => Some(SourceAuthChoice::Entra),
            "account-key" => Some(SourceAuthChoice::AccountKey),
            _ => None,
        },
    )
}

fn sync_copy_max_mib<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    mebibytes(deserializer, "sync_copy_max_mib", 256)
}

fn block_size_mib<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    mebibytes(deserializer, "block_size_mib", 4000)
}

fn queue_messages<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    option(
        deserializer,
        "queue_messages",
        "must be none or peek",
        |value| match value.as_str()? {
            "none" => Some(false),
            "peek" => Some(true),
            _ => None,
        },
    )
}

impl StorageOptions {
    fn parse(resource: &Resource) -> Result<Self, String> {
        let input: StorageOptionsInput =
            serde_json::from_value(Value::Object(resource.options.clone())).map_err(|error| {
                // serde's message for an unknown key ("unknown field `x`, expected one of ...")
                // comes without the `options.` our own messages carry.
                let message = error.to_string();
                if message.starts_with("options.") {
                    message
                } else {
                    format!("options: {}", crate::inventory::escape_controls(&message))
                }
            })?;
        let connection_string = |value: Option<Sensitive>,
                                 key: &'static str,
                                 variable: Option<String>,
                                 env_key: &'static str| {
            if let Some(value) = value {
                return Ok(Some((value, format!("options.{key}"))));
            }
            if let Some(variable) = variable {
                let value = std::env::var(&variable).map_err(|_| {
                    format!(
                        "options.{env_key} names `{}`, which is not set",
                        crate::inventory::escape_controls(&variable)
                    )
                })?;
                return Ok(Some((Sensitive::new(value), format!("options.{env_key}"))));
            }
            Ok::<_, String>(None)
        };
        Ok(StorageOptions {
            connection_string: connection_string(
                input.source_connection_string,
                "source_connection_string",
                input.source_connection_string_env,
                "source_connection_string_env",
            )?,
            target_connection_string: connection_string(
                input.target_connection_string,
                "target_connection_string",
                input.target_connection_string_env,
                "target_connection_string_env",
            )?,
            source_auth: input.source_auth.unwrap_or_default(),
            sync_copy_max: input.sync_copy_max_mib.unwrap_or(SYNC_COPY_MAX),
            block_size: input.block_size_mib,
            copy_queue_messages: input.queue_messages.unwrap_or(false),
        })
    }
}

/// How the source is read, and how the target service is allowed to read copy sources.
struct SourceAccess {
    method: String,
    auth: StorageAuth,
    copy: CopySource,
    /// The account key, when the authorisation came from one.
    key: Option<Sensitive>,
}

enum CopySource {
    /// One SAS for every container (account SAS, or the connection string's SAS).
    Sas(Sensitive),
    /// A container SAS signed per container with this key.
    UserDelegation(UserDelegationKey),
}

impl SourceAccess {
    fn container_sas(&self, account: &str, container: &str) -> Result<Sensitive, AzureError> {
        match &self.copy {
            CopySource::Sas(sas) => Ok(sas.clone()),
            CopySource::UserDelegation(key) => {
                let now = time::OffsetDateTime::now_utc();
                let expiry =
                    parse_iso(&key.signed_expiry).unwrap_or(now + time::Duration::hours(12));
                sas::user_delegation_container_sas(
                    account,
                    container,
                    key,
                    "r",
                    now - time::Duration::minutes(15),
                    expiry,
                )
            }
        }
    }
}

fn parse_iso(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

#[allow(clippy::result_large_err)] // PluginError is the trait's error type
fn endpoints(
    resource: &Resource,
    cloud: crate::azure::Cloud,
) -> Result<StorageEndpoints, PluginError> {
    let primary = match &resource.properties {
        Properties::Object(map) => map.get("primaryEndpoints"),
        _ => None,
    };
    StorageEndpoints::resolve(&resource.name, primary, cloud).map_err(PluginError::Invalid)
}

fn auth_error(message: String) -> PluginError {
    PluginError::Invalid(message)
}

async fn resolve_source(
    ctx: &PluginContext,
    job: &Job,
    endpoints: &StorageEndpoints,
    options: &StorageOptions,
) -> Result<SourceAccess, PluginError> {
    let account = &endpoints.account;
    let now = time::OffsetDateTime::now_utc();
    let start = now - time::Duration::minutes(15);
    let expiry = now + time::Duration::hours(48);
    if let Some((text, origin)) = &options.connection_string {
        let parsed = sas::parse_connection_string(text).map_err(|problem| {
            auth_error(format!(
                "the connection string in {origin} is malformed: {problem}\nhint: copy it from the portal (Access keys) or `az storage account show-connection-string`"
            ))
        })?;
        if let Some(name) = &parsed.account_name {
            if !name.eq_ignore_ascii_case(account) {
                return Err(auth_error(format!(
                    "the connection string in {origin} is for account `{name}`, not the source `{account}`"
                )));
            }
        }
        let key = parsed.account_key.clone();
        let (sas, method) = match (parsed.account_key, parsed.sas) {
            (Some(key), _) => (
                sas::account_sas(account, &key, "bqt", "sco", "rlt", start, expiry)
                    .map_err(|e| auth_error(format!("cannot sign with the key in {origin}: {e}")))?,
                format!("account-key SAS from {origin}"),
            ),
            (None, Some(sas)) => (sas, format!("SAS from {origin}")),
            (None, None) => {
                return Err(auth_error(format!(
                    "the connection string in {origin} has neither AccountKey nor SharedAccessSignature"
                )))
            }
        };
        return Ok(SourceAccess {
            method,
            auth: StorageAuth::Sas(sas.clone()),
            copy: CopySource::Sas(sas),
            key,
        });
    }
    let mut entra_problem = None;
    if options.source_auth != SourceAuthChoice::AccountKey {
        let bearer = StorageAuth::Bearer(ctx.source.credential.clone());
        let client = StorageClient::new(
            &ctx.http,
            endpoints,
            StorageService::Blob,
            &bearer,
            WriteAccess::ReadOnly,
        );
        match client
            .user_delegation_key(start, now + time::Duration::days(6))
            .await
        {
            Ok(key) => {
                return Ok(SourceAccess {
                    method: "entra id (bearer; user-delegation SAS for copy sources)".into(),
                    auth: bearer,
                    copy: CopySource::UserDelegation(key),
                    key: None,
                })
            }
            Err(error) if options.source_auth == SourceAuthChoice::Entra => {
                return Err(auth_error(format!(
                    "cannot get a user delegation key from the source account `{account}`: {error}\nhint: grant the source identity `Storage Blob Data Reader` on the account, or set options.source_auth to `auto`"
                )));
            }
            Err(error) => entra_problem = Some(error),
        }
    }
    let key = match list_keys(ctx, &ctx.source, &job.pair.source.id).await {
        Ok(key) => key,
        Err(error) => {
            let entra = entra_problem
                .map(|e| format!("user delegation key refused ({e}); "))
                .unwrap_or_default();
            let hint = if error.is_not_found() {
                "hint: check the source resource id in the inventory: ARM does not know this storage account"
            } else {
                "hint: grant the source identity `Storage Blob Data Reader` (Entra ID) or `Storage Account Key Operator Service Role` (listKeys), or set options.source_connection_string"
            };
            return Err(auth_error(format!(
                "cannot authorise reading the source account `{account}`: {entra}listKeys failed: {error}\n{hint}"
            )));
        }
    };
    let sas = sas::account_sas(account, &key, "bqt", "sco", "rlt", start, expiry)
        .map_err(|e| auth_error(format!("cannot sign with the key from listKeys: {e}")))?;
    let method = match entra_problem {
        Some(problem) => format!(
            "account-key SAS from ARM listKeys (Entra ID unavailable: {})",
            problem.code.as_deref().unwrap_or(&problem.message)
        ),
        None => "account-key SAS from ARM listKeys".into(),
    };
    Ok(SourceAccess {
        method,
        auth: StorageAuth::Sas(sas.clone()),
        copy: CopySource::Sas(sas),
        key: Some(key),
    })
}

/// The first key ARM's listKeys gives for a storage account (`resource_id`), asked with that
/// side's identity. A POST, but a read: the write guard lets it through in dry-run.
async fn list_keys(
    ctx: &PluginContext,
    side: &SideContext,
    resource_id: &str,
) -> Result<Sensitive, AzureError> {
    let arm =
        ArmClient::new(&ctx.http, side.credential.clone(), WriteAccess::ReadOnly).map_err(|e| {
            AzureError::new(
                AzureErrorKind::Other,
                format!("cannot create the ARM client: {e}"),
            )
        })?;
    arm::storage::first_account_key(&arm, resource_id).await
}

/// One side's clients signing with the account key, for what only Shared Key may do (stored
/// access policies). Made on first need: most accounts have no policies, and listKeys is a
/// privilege atg does not ask for otherwise.
struct KeyedClients {
    side: &'static str,
    endpoints: StorageEndpoints,
    access: WriteAccess,
    /// How to get the key: already known, from ARM, or a reason there is none.
    origin: KeyOrigin,
    made: tokio::sync::OnceCell<Result<KeyedServices, String>>,
}

enum KeyOrigin {
    Known(Sensitive),
    ListKeys {
        side: SideContext,
        resource_id: String,
        hint: &'static str,
    },
    Unavailable(String),
}

struct KeyedServices {
    blob: StorageClient,
    queue: StorageClient,
    table: StorageClient,
}

impl KeyedClients {
    /// The keyed clients, or why there are none (said on the items it affects).
    async fn get(&self, ctx: &PluginContext) -> Result<&KeyedServices, String> {
        // A refusal is kept for the run; a passing failure (throttling, an outage that outlived
        // the retries) is not, so the next item asks again.
        let made = self
            .made
            .get_or_try_init(|| async {
                let key = match &self.origin {
                    KeyOrigin::Known(key) => key.clone(),
                    KeyOrigin::Unavailable(reason) => return Ok(Err(reason.clone())),
                    KeyOrigin::ListKeys {
                        side,
                        resource_id,
                        hint,
                    } => match list_keys(ctx, side, resource_id).await {
                        Ok(key) => key,
                        Err(error) => {
                            let reason = format!(
                                "the {} account key is unavailable (listKeys: {error}); {hint}",
                                self.side
                            );
                            return if matches!(error.status, Some(401 | 403 | 404)) {
                                Ok(Err(reason))
                            } else {
                                Err(reason)
                            };
                        }
                    },
                };
                let auth = StorageAuth::SharedKey(key);
                let client = |service| {
                    StorageClient::new(&ctx.http, &self.endpoints, service, &auth, self.access)
                };
                Ok(Ok(KeyedServices {
                    blob: client(StorageService::Blob),
                    queue: client(StorageService::Queue),
                    table: client(StorageService::Table),
                }))
            })
            .await?;
        made.as_ref().map_err(Clone::clone)
    }
}

/// Writes stored access policies with the target's account key (Set Container/Queue/Table ACL
/// take nothing else). `Ok(Some(reason))` when they could not be written.
async fn set_with_key<'a, F, Fut>(
    ctx: &'a PluginContext,
    keyed: &'a KeyedClients,
    set: F,
) -> Result<Option<String>, AzureError>
where
    F: FnOnce(&'a KeyedServices) -> Fut,
    Fut: std::future::Future<Output = Result<(), AzureError>>,
{
    match keyed.get(ctx).await {
        Err(reason) => Ok(Some(format!("stored access policies not copied: {reason}"))),
        Ok(services) => match set(services).await {
            Ok(()) => Ok(None),
            Err(error) if is_denied(&error) => Ok(Some(format!(
                "stored access policies not copied: the {} account key was refused ({})",
                keyed.side,
                error.code.as_deref().unwrap_or("denied")
            ))),
            Err(error) => Err(error),
        },
    }
}

/// Stored access policies read with that side's account key, after the plain client was
/// refused. `None`, with a note saying why, when they stay unknown.
async fn policies_with_key<'a, F, Fut>(
    ctx: &'a PluginContext,
    keyed: &'a KeyedClients,
    notes: &mut Vec<String>,
    read: F,
) -> Result<Option<Vec<SignedIdentifier>>, AzureError>
where
    F: FnOnce(&'a KeyedServices) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Vec<SignedIdentifier>>, AzureError>>,
{
    let reason = match keyed.get(ctx).await {
        Err(reason) => reason,
        Ok(services) => match read(services).await? {
            Some(policies) => return Ok(Some(policies)),
            None => format!("the {} account key was refused", keyed.side),
        },
    };
    let consequence = if keyed.side == "source" {
        "so they are not copied"
    } else {
        "so they are not replaced"
    };
    notes.push(format!(
        "the {}'s stored access policies could not be read, {consequence}: {reason}",
        keyed.side
    ));
    Ok(None)
}

/// Says in the plan when a new container, queue or table will not get its policies.
async fn note_unwritable_policies(
    ctx: &PluginContext,
    clients: &Clients,
    needed: bool,
    notes: &mut Vec<String>,
) {
    if needed {
        if let Err(reason) = clients.target_keyed.get(ctx).await {
            notes.push(format!(
                "stored access policies will not be copied: {reason}"
            ));
        }
    }
}

/// The clients of one run over one pair.
struct Clients {
    source_account: String,
    source_blob: StorageClient,
    source_queue: StorageClient,
    source_table: StorageClient,
    target_blob: StorageClient,
    target_queue: StorageClient,
    target_table: StorageClient,
    /// Shared Key clients for stored access policies, made on first need.
    source_keyed: KeyedClients,
    target_keyed: KeyedClients,
    access: SourceAccess,
    target_allows_public_access: bool,
    sync_copy_max: u64,
    block_size: Option<u64>,
    copy_queue_messages: bool,
    /// Set when the target service answered that a call is not implemented.
    sync_copy_unsupported: AtomicBool,
    block_copy_unsupported: AtomicBool,
    page_copy_unsupported: AtomicBool,
    append_copy_unsupported: AtomicBool,
}

async fn clients(
    ctx: &PluginContext,
    job: &Job,
    target_access: WriteAccess,
) -> Result<Clients, PluginError> {
    let cloud = ctx.http.cloud;
    let source_endpoints = endpoints(&job.pair.source, cloud)?;
    let target_endpoints = endpoints(&job.pair.target, cloud)?;
    let options = StorageOptions::parse(&job.pair.target).map_err(PluginError::Invalid)?;
    let access = resolve_source(ctx, job, &source_endpoints, &options).await?;
    let target_auth = StorageAuth::Bearer(ctx.target.credential.clone());
    let source = |service| {
        StorageClient::new(
            &ctx.http,
            &source_endpoints,
            service,
            &access.auth,
            WriteAccess::ReadOnly,
        )
    };
    let target = |service| {
        StorageClient::new(
            &ctx.http,
            &target_endpoints,
            service,
            &target_auth,
            target_access,
        )
    };
    let source_origin = match (&access.key, &options.connection_string) {
        (Some(key), _) => KeyOrigin::Known(key.clone()),
        (None, Some((_, origin))) => KeyOrigin::Unavailable(format!(
            "the connection string in {origin} has no AccountKey, and stored access policies take Shared Key"
        )),
        (None, None) if options.source_auth == SourceAuthChoice::Entra => KeyOrigin::Unavailable(
            "options.source_auth is `entra`, and stored access policies take Shared Key (an account key)".into(),
        ),
        (None, None) => KeyOrigin::ListKeys {
            side: ctx.source.clone(),
            resource_id: job.pair.source.id.clone(),
            hint: "stored access policies take Shared Key: grant the source identity `Storage Account Key Operator Service Role`, or set options.source_connection_string",
        },
    };
    let target_origin = match &options.target_connection_string {
        Some((text, origin)) => match sas::parse_connection_string(text) {
            Err(problem) => {
                return Err(auth_error(format!(
                    "the connection string in {origin} is malformed: {problem}"
                )))
            }
            Ok(parsed) => match (parsed.account_name, parsed.account_key) {
                (Some(name), _) if !name.eq_ignore_ascii_case(&target_endpoints.account) => {
                    return Err(auth_error(format!(
                        "the connection string in {origin} is for account `{name}`, not the target `{}`",
                        target_endpoints.account
                    )))
                }
                (_, Some(key)) => KeyOrigin::Known(key),
                (_, None) => {
                    return Err(auth_error(format!(
                        "the connection string in {origin} has no AccountKey: it is used only to sign stored access policies, which take Shared Key"
                    )))
                }
            },
        },
        None => KeyOrigin::ListKeys {
            side: ctx.target.clone(),
            resource_id: job.pair.target.id.clone(),
            hint: "stored access policies take Shared Key: grant the target identity `Storage Account Key Operator Service Role`, or set options.target_connection_string",
        },
    };
    Ok(Clients {
        source_keyed: KeyedClients {
            side: "source",
            endpoints: source_endpoints.clone(),
            access: WriteAccess::ReadOnly,
            origin: source_origin,
            made: tokio::sync::OnceCell::new(),
        },
        target_keyed: KeyedClients {
            side: "target",
            endpoints: target_endpoints.clone(),
            access: target_access,
            origin: target_origin,
            made: tokio::sync::OnceCell::new(),
        },
        source_account: source_endpoints.account.clone(),
        source_blob: source(StorageService::Blob),
        source_queue: source(StorageService::Queue),
        source_table: source(StorageService::Table),
        target_blob: target(StorageService::Blob),
        target_queue: target(StorageService::Queue),
        target_table: target(StorageService::Table),
        target_allows_public_access: job
            .pair
            .target
            .properties
            .get_bool("allowBlobPublicAccess")
            .unwrap_or(true),
        sync_copy_max: options.sync_copy_max,
        copy_queue_messages: options.copy_queue_messages,
        block_size: options.block_size,
        sync_copy_unsupported: AtomicBool::new(false),
        block_copy_unsupported: AtomicBool::new(false),
        page_copy_unsupported: AtomicBool::new(false),
        append_copy_unsupported: AtomicBool::new(false),
        access,
    })
}

fn list_error(what: &str, error: AzureError) -> PluginError {
    PluginError::azure(format!("list {what}"), error)
}

#[derive(Debug, Serialize, Deserialize)]
struct ContainerPlan {
    source: ContainerSettings,
    target: Option<ContainerSettings>,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueuePlan {
    source: QueueSettings,
    target: Option<QueueSettings>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TablePlan {
    /// `None` when the policies could not be read.
    source: Option<Vec<crate::azure::storage::SignedIdentifier>>,
    target_exists: bool,
    /// `None` when the table is absent or its policies could not be read.
    target: Option<Vec<crate::azure::storage::SignedIdentifier>>,
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
            endpoints(resource, cloud).map_err(|error| format!("{side}: {error}"))?;
        }
        Ok(())
    }

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let discovery = discover(ctx, job).await?;
        Ok(Plan {
            discovery: discovery.clone(),
            apply: Box::new(AccountPlan { discovery }),
        })
    }
}

/// Reads both sides and plans every item.
async fn discover(ctx: &PluginContext, job: &Job) -> Result<Discovery, PluginError> {
    let clients = clients(ctx, job, WriteAccess::ReadOnly).await?;
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

    // Containers and their blobs (counted page by page, never held).
    let (mut total_blobs, mut total_bytes, mut total_archived) = (0u64, 0u64, 0u64);
    let mut marker: Option<String> = None;
    let mut containers = Vec::new();
    loop {
        let page = clients
            .source_blob
            .list_containers(marker.as_deref())
            .await
            .map_err(|e| list_error("source containers", e))?;
        containers.extend(page.items);
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    for container in &containers {
        let name = container.name.as_str();
        let read_error =
            |side: &str, e| PluginError::azure(format!("read {side} container `{name}`"), e);
        let mut policy_notes = Vec::new();
        let mut source = clients
            .source_blob
            .container_settings(name)
            .await
            .map_err(|e| read_error("source", e))?
            .unwrap_or_default();
        if !source.policies_readable {
            let keyed = &clients.source_keyed;
            let read = policies_with_key(ctx, keyed, &mut policy_notes, |k| {
                k.blob.container_acl(name)
            });
            if let Some(policies) = read.await.map_err(|e| read_error("source", e))? {
                source.access_policies = policies;
                source.policies_readable = true;
            }
        }
        let mut target = clients
            .target_blob
            .container_settings(name)
            .await
            .map_err(|e| read_error("target", e))?;
        if let Some(existing) = target.as_mut().filter(|t| !t.policies_readable) {
            let keyed = &clients.target_keyed;
            let read = policies_with_key(ctx, keyed, &mut policy_notes, |k| {
                k.blob.container_acl(name)
            });
            if let Some(policies) = read.await.map_err(|e| read_error("target", e))? {
                existing.access_policies = policies;
                existing.policies_readable = true;
            }
        }
        let needed =
            source.policies_readable && !source.access_policies.is_empty() && target.is_none();
        note_unwritable_policies(ctx, &clients, needed, &mut policy_notes).await;
        let (mut blobs, mut bytes, mut archived) = (0u64, 0u64, 0u64);
        let mut marker: Option<String> = None;
        loop {
            let Some(page) = clients
                .source_blob
                .list_blobs(&container.name, marker.as_deref(), BLOB_PAGE)
                .await
                .map_err(|e| list_error(&format!("blobs of `{}`", container.name), e))?
            else {
                break;
            };
            for blob in &page.items {
                blobs += 1;
                bytes += blob.size;
                archived += u64::from(blob.is_archived());
            }
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        total_blobs += blobs;
        total_bytes += bytes;
        total_archived += archived;
        let mut notes = vec![format!("{blobs} blob(s), {}", human_bytes(bytes))];
        notes.extend(policy_notes);
        if archived > 0 {
            notes.push(format!(
                "{archived} archived blob(s) will be skipped: rehydrate them first"
            ));
        }
        if job.mode == Mode::Template && blobs > 0 {
            notes.push("blobs are not copied in template mode".into());
        }
        discovery.items.push(PlannedItem {
            kind: CONTAINER,
            name: container.name.clone(),
            action: if target.is_some() {
                PlannedAction::Compare
            } else {
                PlannedAction::Create
            },
            notes,
            detail: serde_json::to_value(ContainerPlan { source, target }).unwrap_or(Value::Null),
        });
    }
    facts.insert("containers".into(), containers.len().into());
    facts.insert("blobs".into(), total_blobs.into());
    discovery.nested.insert(BLOB, total_blobs);
    facts.insert("bytes".into(), total_bytes.into());
    facts.insert("archived_blobs".into(), total_archived.into());

    // Queues.
    let mut marker: Option<String> = None;
    let mut queues = 0u64;
    loop {
        let page = clients
            .source_queue
            .list_queues(marker.as_deref())
            .await
            .map_err(|e| list_error("source queues", e))?;
        for queue in page.items {
            queues += 1;
            let name = queue.name.as_str();
            let read_error =
                |side: &str, e| PluginError::azure(format!("read {side} queue `{name}`"), e);
            let mut notes = Vec::new();
            let (mut source, messages) = clients
                .source_queue
                .queue_settings(name)
                .await
                .map_err(|e| read_error("source", e))?
                .unwrap_or_default();
            if source.policies_unreadable {
                let keyed = &clients.source_keyed;
                let read = policies_with_key(ctx, keyed, &mut notes, |k| k.queue.queue_acl(name));
                if let Some(policies) = read.await.map_err(|e| read_error("source", e))? {
                    source.access_policies = policies;
                    source.policies_unreadable = false;
                }
            }
            let mut target = clients
                .target_queue
                .queue_settings(name)
                .await
                .map_err(|e| read_error("target", e))?
                .map(|(settings, _)| settings);
            if let Some(existing) = target.as_mut().filter(|t| t.policies_unreadable) {
                let keyed = &clients.target_keyed;
                let read = policies_with_key(ctx, keyed, &mut notes, |k| k.queue.queue_acl(name));
                if let Some(policies) = read.await.map_err(|e| read_error("target", e))? {
                    existing.access_policies = policies;
                    existing.policies_unreadable = false;
                }
            }
            let needed = !source.policies_unreadable
                && !source.access_policies.is_empty()
                && target.is_none();
            note_unwritable_policies(ctx, &clients, needed, &mut notes).await;
            notes.push(match (job.mode, clients.copy_queue_messages) {
                    (Mode::Template, _) => format!(
                        "messages are not copied in template mode (about {messages} in the source)"
                    ),
                    (Mode::Replication, false) => format!(
                        "messages are not copied (about {messages} in the source): the pair does not opt in with options.queue_messages = \"peek\""
                    ),
                    (Mode::Replication, true) => format!(
                        "about {messages} message(s) in the source: those Peek Messages shows (at most 32) are compared with the target's"
                    ),
                });
            discovery.items.push(PlannedItem {
                kind: QUEUE,
                name: queue.name,
                action: if target.is_some() {
                    PlannedAction::Compare
                } else {
                    PlannedAction::Create
                },
                notes,
                detail: serde_json::to_value(QueuePlan { source, target }).unwrap_or(Value::Null),
            });
        }
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    facts.insert("queues".into(), queues.into());

    // Tables and their entities (counted).
    let mut next: Option<String> = None;
    let (mut tables, mut total_entities) = (0u64, 0u64);
    loop {
        let (names, continuation) = clients
            .source_table
            .list_tables(next.as_deref())
            .await
            .map_err(|e| list_error("source tables", e))?;
        for name in names {
            tables += 1;
            let read_error =
                |side: &str, e| PluginError::azure(format!("read {side} table `{name}`"), e);
            let mut policy_notes = Vec::new();
            let mut source = clients
                .source_table
                .table_access_policies(&name)
                .await
                .map_err(|e| read_error("source", e))?
                .flatten();
            if source.is_none() {
                let keyed = &clients.source_keyed;
                let read =
                    policies_with_key(ctx, keyed, &mut policy_notes, |k| k.table.table_acl(&name));
                source = read.await.map_err(|e| read_error("source", e))?;
            }
            let mut target = clients
                .target_table
                .table_access_policies(&name)
                .await
                .map_err(|e| read_error("target", e))?;
            if matches!(target, Some(None)) {
                let keyed = &clients.target_keyed;
                let read =
                    policies_with_key(ctx, keyed, &mut policy_notes, |k| k.table.table_acl(&name));
                target = Some(read.await.map_err(|e| read_error("target", e))?);
            }
            let needed = source.as_ref().is_some_and(|p| !p.is_empty()) && target.is_none();
            note_unwritable_policies(ctx, &clients, needed, &mut policy_notes).await;
            // Entities are data: template mode neither copies nor reads them (its declared
            // source permissions have no entities/read).
            let mut notes = Vec::new();
            if job.mode == Mode::Template {
                notes.push("entities are not read or copied in template mode".into());
            } else {
                let entities = count_entities(&clients.source_table, &name).await?;
                total_entities += entities;
                notes.push(format!("{entities} entit(ies)"));
            }
            notes.extend(policy_notes);
            discovery.items.push(PlannedItem {
                kind: TABLE,
                name,
                action: if target.is_some() {
                    PlannedAction::Compare
                } else {
                    PlannedAction::Create
                },
                notes,
                detail: serde_json::to_value(TablePlan {
                    source,
                    target_exists: target.is_some(),
                    target: target.flatten(),
                })
                .unwrap_or(Value::Null),
            });
        }
        next = continuation;
        if next.is_none() {
            break;
        }
    }
    facts.insert("tables".into(), tables.into());
    if job.mode == Mode::Replication {
        facts.insert("entities".into(), total_entities.into());
        discovery.nested.insert(ENTITY, total_entities);
    }
    Ok(discovery)
}

/// The plan of one resource, as discovery made it.
struct AccountPlan {
    discovery: Discovery,
}

#[async_trait]
impl ApplyPlan for AccountPlan {
    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let discovery = self.discovery;
        let clients = Arc::new(clients(ctx, job, ctx.target.access).await?);
        let resource = job.id;
        // Four containers, queues or tables at a time; their blobs and entities share the run's
        // item slots.
        apply_each(ctx, job, discovery.items, 4, |item| {
            let clients = clients.clone();
            async move {
                let mut notes = item.notes.clone();
                let status = match item.kind {
                    CONTAINER => {
                        apply_container(ctx, job, &clients, resource, &item, &mut notes).await
                    }
                    QUEUE => apply_queue(ctx, job, &clients, &item, &mut notes).await,
                    TABLE => apply_table(ctx, job, &clients, resource, &item, &mut notes).await,
                    other => ItemStatus::Failed {
                        error: format!("internal: unknown item kind `{other}`"),
                    },
                };
                (status, notes)
            }
        })
        .await;
        Ok(())
    }
}

fn failed(operation: &str, error: &AzureError) -> ItemStatus {
    ItemStatus::Failed {
        error: format!("{operation}: {error}"),
    }
}

/// What to do with settings (metadata, policies) that differ in the target.
fn settings_conflict(policy: OnConflict, what: &str) -> Option<ItemStatus> {
    match policy {
        OnConflict::Overwrite => None,
        OnConflict::Skip | OnConflict::IfSourceNewer => Some(ItemStatus::Skipped {
            reason: format!(
                "{what} exists in the target with other settings; kept (--on-conflict {})",
                if policy == OnConflict::Skip {
                    "skip"
                } else {
                    "if-source-newer: settings carry no comparable time"
                }
            ),
        }),
        OnConflict::Fail => Some(ItemStatus::Failed {
            error: format!("{what} exists in the target with other settings (--on-conflict fail)"),
        }),
    }
}

/// How many entities the source table `name` holds (read page by page: the whole table).
async fn count_entities(source: &StorageClient, name: &str) -> Result<u64, PluginError> {
    let mut entities = 0u64;
    let mut continuation: Option<(String, String)> = None;
    loop {
        let Some(page) = source
            .query_entities(name, continuation.as_ref())
            .await
            .map_err(|e| list_error(&format!("entities of `{name}`"), e))?
        else {
            return Ok(entities);
        };
        entities += page.entities.len() as u64;
        continuation = page.next;
        if continuation.is_none() {
            return Ok(entities);
        }
    }
}

const SOURCE_POLICIES_UNREAD: &str =
    "stored access policies not copied: the source's could not be read (see notes)";

fn is_denied(error: &AzureError) -> bool {
    matches!(error.status, Some(401 | 403))
}

/// Creates or updates the container's settings. Returns the status of the structure and
/// whether blobs may be copied into it.
async fn ensure_container(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    name: &str,
    plan: &ContainerPlan,
    notes: &mut Vec<String>,
) -> (ItemStatus, bool) {
    let source = &plan.source;
    let target = &clients.target_blob;
    let mut partial: Vec<String> = Vec::new();
    let mut access = source.public_access.as_deref();
    if access.is_some() && !clients.target_allows_public_access {
        partial.push(format!(
            "public access `{}` not set: the target account disallows public access (allowBlobPublicAccess=false)",
            access.unwrap_or_default()
        ));
        access = None;
    }
    let copy_policies = source.policies_readable && !source.access_policies.is_empty();
    // Policies that stay unknown make the item partial, never "same" or "replicated".
    let mut policy_gap = (!source.policies_readable).then(|| SOURCE_POLICIES_UNREAD.to_owned());
    if copy_policies && plan.target.as_ref().is_some_and(|t| !t.policies_readable) {
        policy_gap = Some(
            "stored access policies not compared: the target's could not be read (see notes)"
                .to_owned(),
        );
    }
    let action = match &plan.target {
        None => {
            let mut created = target
                .create_container(name, &source.metadata, access)
                .await;
            if let Err(error) = &created {
                if access.is_some() && error.status == Some(409) {
                    partial.push(format!(
                        "public access `{}` not set: the target refused it ({})",
                        access.unwrap_or_default(),
                        error.code.as_deref().unwrap_or("conflict")
                    ));
                    access = None;
                    created = target.create_container(name, &source.metadata, None).await;
                }
            }
            if let Err(error) = created {
                return (failed("create container", &error), false);
            }
            if copy_policies {
                let set = set_with_key(ctx, &clients.target_keyed, |k| {
                    k.blob
                        .set_container_acl(name, access, &source.access_policies)
                })
                .await;
                match set {
                    Ok(None) => {}
                    Ok(Some(reason)) => partial.push(reason),
                    Err(error) => return (failed("set container access policies", &error), true),
                }
            }
            "container created with its metadata".to_owned()
        }
        Some(existing) => {
            let compare_policies = source.policies_readable && existing.policies_readable;
            let same_policies =
                !compare_policies || existing.access_policies == source.access_policies;
            let same_access = existing.public_access.as_deref() == access;
            if existing.metadata == source.metadata && same_access && same_policies {
                if let Some(gap) = policy_gap {
                    partial.insert(0, gap);
                    return (
                        ItemStatus::Partial {
                            action: "container kept (same metadata and public access)".into(),
                            reason: partial.join("; "),
                        },
                        true,
                    );
                }
                if !partial.is_empty() {
                    // Identical as far as the target allows; the notes say what it does not.
                    notes.extend(partial);
                }
                return (ItemStatus::Identical, true);
            }
            if let Some(status) = settings_conflict(job.on_conflict, "container") {
                return (status, true);
            }
            if existing.metadata != source.metadata {
                if let Err(error) = target.set_container_metadata(name, &source.metadata).await {
                    return (failed("set container metadata", &error), true);
                }
            }
            if (!same_access || !same_policies) && !existing.policies_readable {
                // Set Container ACL replaces public access and policies together: with the
                // target's policies unknown, sending it could wipe them.
                partial.push(
                    "public access not updated: the target's stored access policies could not be read, and setting one would replace the other".into(),
                );
            } else if !same_access || !same_policies {
                let policies = if compare_policies {
                    &source.access_policies
                } else {
                    &existing.access_policies
                };
                let set = set_with_key(ctx, &clients.target_keyed, |k| {
                    k.blob.set_container_acl(name, access, policies)
                })
                .await;
                match set {
                    Ok(None) => {}
                    Ok(Some(reason)) => partial.push(format!(
                        "public access not updated either (Set Container ACL sets both): {reason}"
                    )),
                    Err(error) => return (failed("set container access policies", &error), true),
                }
            }
            "container settings updated".to_owned()
        }
    };
    if let Some(gap) = policy_gap {
        partial.insert(0, gap);
    }
    if partial.is_empty() {
        (ItemStatus::written(plan.target.is_some(), action), true)
    } else {
        (
            ItemStatus::Partial {
                action,
                reason: partial.join("; "),
            },
            true,
        )
    }
}

async fn apply_container(
    ctx: &PluginContext,
    job: &Job,
    clients: &Arc<Clients>,
    resource: JobId,
    item: &PlannedItem,
    notes: &mut Vec<String>,
) -> ItemStatus {
    let plan: ContainerPlan = match item.plan() {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let (status, usable) = ensure_container(ctx, job, clients, &item.name, &plan, notes).await;
    if job.mode == Mode::Template || !usable {
        return status;
    }
    let tally = copy_blobs(ctx, job, clients, resource, &item.name).await;
    notes.push(tally.summary());
    if let Some(error) = tally.listing_error {
        return ItemStatus::Failed { error };
    }
    status
}

/// Counts of one container's blobs.
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

/// What to do with one source blob, given the target's blob of the same name.
#[derive(Debug, PartialEq, Eq)]
enum BlobDecision {
    Copy(Destination2),
    Identical,
    Skip(String),
    Fail(String),
}

#[derive(Debug, PartialEq, Eq)]
enum Destination2 {
    Absent,
    Replace(String),
}

/// Whether two blobs hold the same thing. With a Content-MD5 on both sides the hash decides;
/// without one, same size and a target written after the source changed (as rclone and
/// `AzCopy`'s sync do without hashes).
fn identical(source: &BlobItem, target: &BlobItem) -> bool {
    let same_content = match (&source.content_md5, &target.content_md5) {
        (Some(a), Some(b)) => a == b,
        (None, None) => match (source.last_modified, target.last_modified) {
            (Some(s), Some(t)) => t >= s,
            _ => false,
        },
        _ => false,
    };
    let same_tier = source.explicit_tier().is_none_or(|tier| {
        target
            .access_tier
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(tier))
    });
    same_content
        && source.size == target.size
        && source.blob_type.eq_ignore_ascii_case(&target.blob_type)
        && source.content_type == target.content_type
        && source.content_encoding == target.content_encoding
        && source.content_language == target.content_language
        && source.content_disposition == target.content_disposition
        && source.cache_control == target.cache_control
        && source.metadata == target.metadata
        && source.tags == target.tags
        && same_tier
}

const REHYDRATE: &str = "archived in the source: its data is offline; rehydrate it (set its tier to Hot or Cool, e.g. `az storage blob set-tier --tier Hot --rehydrate-priority Standard`), wait for it to finish, then run again";

fn decide(source: &BlobItem, target: Option<&BlobItem>, policy: OnConflict) -> BlobDecision {
    // URLs resolve `.` and `..` path segments, even percent-encoded (`a/../b` is requested as
    // `b`): such a blob cannot be addressed, and any request would touch another blob.
    if source
        .name
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return BlobDecision::Skip(
            "the name has a `.` or `..` path segment, which URLs resolve to another blob: not copied (rename it in the source, or copy it with a tool that sends paths verbatim)".into(),
        );
    }
    if let Some(target) = target {
        // atg's own unfinished copy (interrupted page/append ranges): always replaced.
        if target.metadata.contains_key(INCOMPLETE_MARKER) {
            return BlobDecision::Copy(Destination2::Replace(
                target.etag.clone().unwrap_or_default(),
            ));
        }
        if identical(source, target) {
            return BlobDecision::Identical;
        }
    }
    if source.is_archived() {
        return BlobDecision::Skip(REHYDRATE.into());
    }
    if let Some(status) = &source.archive_status {
        return BlobDecision::Skip(format!(
            "being rehydrated in the source ({status}): run again when it is done"
        ));
    }
    let Some(target) = target else {
        return BlobDecision::Copy(Destination2::Absent);
    };
    let replace = || {
        BlobDecision::Copy(Destination2::Replace(
            target.etag.clone().unwrap_or_default(),
        ))
    };
    match policy {
        OnConflict::Overwrite => replace(),
        OnConflict::Skip => BlobDecision::Skip("exists in the target and differs (--on-conflict skip)".into()),
        OnConflict::Fail => BlobDecision::Fail("exists in the target and differs (--on-conflict fail)".into()),
        OnConflict::IfSourceNewer => match (source.last_modified, target.last_modified) {
            (Some(s), Some(t)) if s > t => replace(),
            _ => BlobDecision::Skip(
                "exists in the target, differs, and is not older than the source (--on-conflict if-source-newer)".into(),
            ),
        },
    }
}

/// The source and target listings of a container walked together in name order, a page at a
/// time on each side.
struct BlobMerge<'a> {
    source: &'a StorageClient,
    target: &'a StorageClient,
    container: &'a str,
    source_page: VecDeque<BlobItem>,
    source_marker: Option<String>,
    source_done: bool,
    target_page: VecDeque<BlobItem>,
    target_marker: Option<String>,
    target_done: bool,
}

impl<'a> BlobMerge<'a> {
    fn new(source: &'a StorageClient, target: &'a StorageClient, container: &'a str) -> Self {
        BlobMerge {
            source,
            target,
            container,
            source_page: VecDeque::new(),
            source_marker: None,
            source_done: false,
            target_page: VecDeque::new(),
            target_marker: None,
            target_done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<(BlobItem, Option<BlobItem>)>, String> {
        if self.source_page.is_empty() {
            if self.source_done {
                return Ok(None);
            }
            let page = self
                .source
                .list_blobs(self.container, self.source_marker.as_deref(), BLOB_PAGE)
                .await
                .map_err(|e| format!("list source blobs: {e}"))?;
            let Some(page) = page else {
                self.source_done = true;
                return Ok(None);
            };
            self.source_page = page.items.into();
            self.source_marker = page.next_marker;
            self.source_done = self.source_marker.is_none();
            if self.source_page.is_empty() {
                return Box::pin(self.next()).await;
            }
        }
        let Some(source) = self.source_page.pop_front() else {
            return Ok(None);
        };
        loop {
            if self.target_page.is_empty() && !self.target_done {
                let page = self
                    .target
                    .list_blobs(self.container, self.target_marker.as_deref(), BLOB_PAGE)
                    .await
                    .map_err(|e| format!("list target blobs: {e}"))?;
                match page {
                    Some(page) => {
                        self.target_page = page.items.into();
                        self.target_marker = page.next_marker;
                        self.target_done = self.target_marker.is_none();
                    }
                    None => self.target_done = true,
                }
                if self.target_page.is_empty() && !self.target_done {
                    continue;
                }
            }
            match self.target_page.front() {
                Some(front) if front.name.as_bytes() < source.name.as_bytes() => {
                    self.target_page.pop_front();
                }
                Some(front) if front.name == source.name => {
                    let target = self.target_page.pop_front();
                    return Ok(Some((source, target)));
                }
                _ => return Ok(Some((source, None))),
            }
        }
    }
}

enum BlobResult {
    /// Internal: Put Block From URL was answered by something else that wrote the destination.
    Misrouted(Option<String>),
    Copied(CopyMethod, u64),
    Identical,
    Skipped(String),
    Failed(String),
}

#[derive(Clone, Copy)]
enum CopyMethod {
    Sync,
    Blocks,
    /// Put Page From URL or Append Block From URL.
    Ranges,
    Async,
}

async fn copy_blobs(
    ctx: &PluginContext,
    job: &Job,
    clients: &Arc<Clients>,
    resource: JobId,
    container: &str,
) -> Tally {
    let mut tally = Tally::default();
    let sas = match clients
        .access
        .container_sas(&clients.source_account, container)
    {
        Ok(sas) => Arc::new(sas),
        Err(error) => {
            tally.listing_error = Some(format!("sign the copy-source SAS: {error}"));
            return tally;
        }
    };
    let limit = ctx.item_slots.available_permits().max(1);
    let mut merge = BlobMerge::new(&clients.source_blob, &clients.target_blob, container);
    let mut running = FuturesUnordered::new();
    let record = |tally: &mut Tally,
                  (name, existed, result): (String, bool, BlobResult),
                  started: Instant| {
        let status = match result {
            BlobResult::Copied(method, bytes) => {
                tally.copied += 1;
                ctx.reporter.count(
                    resource,
                    BLOB,
                    if existed {
                        Counted::Overwritten
                    } else {
                        Counted::Created
                    },
                    1,
                );
                tally.bytes += bytes;
                match method {
                    CopyMethod::Sync => tally.sync += 1,
                    CopyMethod::Blocks => tally.blocks += 1,
                    CopyMethod::Ranges => tally.ranges += 1,
                    CopyMethod::Async => tally.asynchronous += 1,
                }
                return;
            }
            BlobResult::Identical => {
                tally.identical += 1;
                ctx.reporter.count(resource, BLOB, Counted::Identical, 1);
                return;
            }
            BlobResult::Misrouted(_) => {
                tally.failed += 1;
                ItemStatus::Failed {
                    error: "internal: unexpected copy answer".into(),
                }
            }
            BlobResult::Skipped(reason) => {
                tally.skipped += 1;
                ItemStatus::Skipped { reason }
            }
            BlobResult::Failed(error) => {
                tally.failed += 1;
                ItemStatus::Failed { error }
            }
        };
        ctx.reporter.item(
            resource,
            ItemOutcome {
                kind: BLOB,
                name: format!("{container}/{name}"),
                status,
                notes: Vec::new(),
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
        );
    };
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        while running.len() >= limit {
            if let Some((outcome, started)) = running.next().await {
                record(&mut tally, outcome, started);
            }
        }
        let next = tokio::select! {
            next = merge.next() => next,
            () = ctx.cancel.cancelled() => break,
        };
        let (source, target) = match next {
            Ok(Some(pair)) => pair,
            Ok(None) => break,
            Err(error) => {
                tally.listing_error = Some(error);
                break;
            }
        };
        let decision = decide(&source, target.as_ref(), job.on_conflict);
        let existed = target.is_some();
        let clients = clients.clone();
        let sas = sas.clone();
        running.push(async move {
            let started = Instant::now();
            let name = source.name.clone();
            let result = match decision {
                BlobDecision::Identical => BlobResult::Identical,
                BlobDecision::Skip(reason) => BlobResult::Skipped(reason),
                BlobDecision::Fail(error) => BlobResult::Failed(error),
                BlobDecision::Copy(destination) => match ctx
                    .in_item_slot(copy_blob(
                        &clients,
                        container,
                        &source,
                        destination,
                        &sas,
                        &ctx.cancel,
                    ))
                    .await
                {
                    Ok(result) => result,
                    Err(interrupted @ Interrupted::BeforeStart) => {
                        BlobResult::Skipped(interrupted.to_string())
                    }
                    Err(interrupted @ Interrupted::Unconfirmed) => {
                        BlobResult::Failed(interrupted.to_string())
                    }
                },
            };
            ((name, existed, result), started)
        });
    }
    while let Some((outcome, started)) = running.next().await {
        record(&mut tally, outcome, started);
    }
    tally
}

fn copy_failed(operation: &str, error: &AzureError) -> BlobResult {
    BlobResult::Failed(format!("{operation}: {error}"))
}

const CHANGED: &str =
    "the target blob appeared or changed during the run; left as it is (run again to compare)";
const COPY_NOT_CONFIRMED: &str =
    "cancelled while the service was copying it: copy started, not confirmed (the service may still finish it; run again to compare)";
const SOURCE_CHANGED: &str =
    "the source blob changed during the copy; nothing of it was committed (run again to copy the new version)";
const SOURCE_CHANGED_RANGES: &str =
    "the source blob changed during the copy; the target holds atg's unfinished copy (marked, replaced by the next run)";

async fn copy_blob(
    clients: &Clients,
    container: &str,
    source: &BlobItem,
    destination: Destination2,
    sas: &Sensitive,
    cancel: &CancellationToken,
) -> BlobResult {
    let mut destination = match destination {
        Destination2::Absent => Destination::Absent,
        Destination2::Replace(etag) => Destination::Unchanged(etag),
    };
    let source_url = clients.source_blob.blob_url(container, &source.name);
    let source_url = Sensitive::new(format!("{source_url}?{}", sas.expose()));
    let target = &clients.target_blob;
    let name = source.name.as_str();
    if source.is_block_blob() {
        if source.size <= clients.sync_copy_max
            && !clients.sync_copy_unsupported.load(Ordering::Relaxed)
        {
            match target
                .copy_from_url_sync(container, name, &source_url, source, &destination)
                .await
            {
                Ok(CopyAnswer::Done) => return BlobResult::Copied(CopyMethod::Sync, source.size),
                Ok(CopyAnswer::ConditionFailed) if landed(clients, container, source).await => {
                    return BlobResult::Copied(CopyMethod::Sync, source.size)
                }
                Ok(CopyAnswer::ConditionFailed | CopyAnswer::SourceChanged) => {
                    return BlobResult::Skipped(CHANGED.into())
                }
                Ok(CopyAnswer::Unsupported) => {
                    clients.sync_copy_unsupported.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "the target does not implement copy blob from url; using async copy"
                    );
                }
                Ok(CopyAnswer::Pending(_)) => {
                    return wait_for_copy(target, container, name, source.size, cancel).await;
                }
                Ok(CopyAnswer::Misrouted(_)) => {
                    return BlobResult::Failed("copy blob from url: unexpected answer".into())
                }
                Err(error) => return copy_failed("copy blob from url", &error),
            }
        } else if source.size > clients.sync_copy_max
            && !clients.block_copy_unsupported.load(Ordering::Relaxed)
        {
            match copy_in_blocks(clients, container, source, &source_url, &destination).await {
                Ok(Some(BlobResult::Misrouted(etag))) => {
                    clients
                        .block_copy_unsupported
                        .store(true, Ordering::Relaxed);
                    tracing::info!("the target answered put block from url with a whole copy; using async copy");
                    // Replace exactly what that answer wrote, nothing else.
                    destination = match etag {
                        Some(etag) => Destination::Unchanged(etag),
                        None => return BlobResult::Failed(
                            "put block from url was answered with an unexpected write and no etag"
                                .into(),
                        ),
                    };
                }
                Ok(Some(result)) | Err(result) => return result,
                Ok(None) => {
                    clients
                        .block_copy_unsupported
                        .store(true, Ordering::Relaxed);
                    tracing::info!(
                        "the target does not implement put block from url; using async copy"
                    );
                }
            }
        }
    }
    let unsupported = if source.is_page_blob() {
        Some(&clients.page_copy_unsupported)
    } else if source.is_append_blob() {
        Some(&clients.append_copy_unsupported)
    } else {
        None
    };
    if let Some(unsupported) = unsupported.filter(|u| !u.load(Ordering::Relaxed)) {
        match copy_ranges(clients, container, source, &source_url, &destination).await {
            RangeCopy::Finished(result) => return result,
            RangeCopy::Unsupported(created) => {
                unsupported.store(true, Ordering::Relaxed);
                tracing::info!(
                    "the target does not implement put page / append block from url; using async copy"
                );
                // Replace exactly the empty blob that was created for the ranges.
                destination = Destination::Unchanged(created);
            }
        }
    }
    match target
        .start_copy(container, name, &source_url, source, &destination)
        .await
    {
        Ok(CopyAnswer::Done) => BlobResult::Copied(CopyMethod::Async, source.size),
        Ok(CopyAnswer::Pending(_)) => {
            wait_for_copy(target, container, name, source.size, cancel).await
        }
        Ok(CopyAnswer::ConditionFailed) if landed(clients, container, source).await => {
            BlobResult::Copied(CopyMethod::Async, source.size)
        }
        Ok(CopyAnswer::ConditionFailed | CopyAnswer::SourceChanged) => {
            BlobResult::Skipped(CHANGED.into())
        }
        Ok(CopyAnswer::Unsupported | CopyAnswer::Misrouted(_)) => {
            BlobResult::Failed("the target does not implement copy blob".into())
        }
        Err(error) => copy_failed("copy blob", &error),
    }
}

/// After a conditional write was refused: whether the target now holds exactly the source's
/// blob, which is what an earlier try whose answer was lost leaves behind.
async fn landed(clients: &Clients, container: &str, source: &BlobItem) -> bool {
    matches!(
        clients.target_blob.blob_item(container, &source.name).await,
        Ok(Some(target)) if identical(source, &target)
    )
}

/// Polls an async copy until it leaves `pending`. A cancellation stops the polling after one
/// last look: the copy is then reported as the service showed it (a pending copy goes on in
/// the service, unconfirmed).
async fn wait_for_copy(
    target: &StorageClient,
    container: &str,
    name: &str,
    size: u64,
    cancel: &CancellationToken,
) -> BlobResult {
    let mut wait = Duration::from_millis(100);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => {}
        }
        match target.copy_state(container, name).await {
            Ok(CopyState::Success) => return BlobResult::Copied(CopyMethod::Async, size),
            Ok(CopyState::Pending) if cancel.is_cancelled() => {
                return BlobResult::Failed(COPY_NOT_CONFIRMED.into())
            }
            Ok(CopyState::Pending) => {}
            Ok(CopyState::Failed(description)) => return BlobResult::Failed(description),
            Err(error) => return copy_failed("read the copy status", &error),
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// `AzCopy`'s block size: 8 MiB, doubled until the blob fits in 50,000 blocks.
fn block_size_for(size: u64, chosen: Option<u64>) -> u64 {
    if let Some(chosen) = chosen {
        return chosen.max(size.div_ceil(50_000));
    }
    let mut block = 8 * MIB;
    while size.div_ceil(block) > 50_000 && block < 4000 * MIB {
        block *= 2;
    }
    block
}

/// Put Block From URL for each range, then Put Block List. `Ok(None)` when the target does
/// not implement Put Block From URL (then nothing was committed).
async fn copy_in_blocks(
    clients: &Clients,
    container: &str,
    source: &BlobItem,
    source_url: &Sensitive,
    destination: &Destination,
) -> Result<Option<BlobResult>, BlobResult> {
    use base64::Engine as _;
    let target = &clients.target_blob;
    let block = block_size_for(source.size, clients.block_size);
    let count = source.size.div_ceil(block);
    let ids: Vec<String> = (0..count)
        .map(|i| base64::engine::general_purpose::STANDARD.encode(format!("atg-{i:06}")))
        .collect();
    // The first block tells whether the call exists at all.
    let stage = |index: u64| {
        let id = ids[usize::try_from(index).unwrap_or(0)].clone();
        let start = index * block;
        let end = (start + block).min(source.size) - 1;
        async move {
            target
                .put_block_from_url(
                    container,
                    &source.name,
                    &id,
                    (source_url, source),
                    (start, end),
                )
                .await
        }
    };
    match stage(0).await {
        Ok(CopyAnswer::Unsupported) => return Ok(None),
        Ok(CopyAnswer::SourceChanged) => {
            return Ok(Some(BlobResult::Skipped(SOURCE_CHANGED.into())))
        }
        Ok(CopyAnswer::Misrouted(etag)) => return Ok(Some(BlobResult::Misrouted(etag))),
        Ok(_) => {}
        Err(error) => return Err(copy_failed("put block from url", &error)),
    }
    let results: Vec<Result<CopyAnswer, AzureError>> = futures::stream::iter(1..count)
        .map(stage)
        .buffer_unordered(8)
        .collect()
        .await;
    for result in results {
        match result {
            Ok(CopyAnswer::SourceChanged) => {
                return Ok(Some(BlobResult::Skipped(SOURCE_CHANGED.into())));
            }
            Ok(CopyAnswer::Unsupported | CopyAnswer::Misrouted(_)) => {
                return Err(BlobResult::Failed(
                    "put block from url stopped being supported".into(),
                ))
            }
            Ok(_) => {}
            Err(error) => return Err(copy_failed("put block from url", &error)),
        }
    }
    match target
        .put_block_list(container, &source.name, &ids, source, destination)
        .await
    {
        Ok(CopyAnswer::ConditionFailed) if landed(clients, container, source).await => {
            Ok(Some(BlobResult::Copied(CopyMethod::Blocks, source.size)))
        }
        Ok(CopyAnswer::ConditionFailed) => Ok(Some(BlobResult::Skipped(CHANGED.into()))),
        Ok(_) => Ok(Some(BlobResult::Copied(CopyMethod::Blocks, source.size))),
        Err(error) => Err(copy_failed("put block list", &error)),
    }
}

/// How a page or append blob copy by ranges ended.
enum RangeCopy {
    Finished(BlobResult),
    /// The service does not implement the call; carries the `ETag` of the empty blob created for
    /// it, which the fallback replaces.
    Unsupported(String),
}

/// Largest range one Put Page From URL or Append Block From URL takes in every API version
/// (`AzCopy`'s page chunk).
const RANGE_CHUNK: u64 = 4 * MIB;

/// Splits inclusive `(start, end)` ranges into pieces of at most `chunk` bytes.
fn chunked(ranges: &[(u64, u64)], chunk: u64) -> Vec<(u64, u64)> {
    let mut pieces = Vec::new();
    for &(start, end) in ranges {
        let mut at = start;
        while at <= end {
            let last = (at + chunk - 1).min(end);
            pieces.push((at, last));
            at = last + 1;
        }
    }
    pieces
}

/// Copies a page blob (its valid ranges only, as `AzCopy` does, so sparse disks stay sparse) or
/// an append blob (in order, each block conditional on the append position) server-side into
/// a blob created for it. Every range is read from the listed version of the source. The new
/// blob carries [`INCOMPLETE_MARKER`] until the last range is in: an interrupted copy is
/// visibly unfinished, and the next run replaces it.
async fn copy_ranges(
    clients: &Clients,
    container: &str,
    source: &BlobItem,
    source_url: &Sensitive,
    destination: &Destination,
) -> RangeCopy {
    let target = &clients.target_blob;
    let name = source.name.as_str();
    let finished = |result| RangeCopy::Finished(result);
    // Page ranges first: nothing is created when the source cannot be read.
    let pieces = if source.is_page_blob() {
        let mut ranges = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            match clients
                .source_blob
                .page_ranges(container, name, marker.as_deref())
                .await
            {
                Ok(page) => {
                    ranges.extend(page.items);
                    marker = page.next_marker;
                }
                Err(error) => return finished(copy_failed("read the source page ranges", &error)),
            }
            if marker.is_none() {
                break;
            }
        }
        chunked(&ranges, RANGE_CHUNK)
    } else if source.size == 0 {
        Vec::new()
    } else {
        chunked(&[(0, source.size - 1)], RANGE_CHUNK)
    };
    let mut created = target
        .create_for_ranges(container, name, source, destination)
        .await;
    // Refused because it exists or changed: when what is there is atg's unfinished copy (a try
    // whose answer was lost created it, maybe this very replacement), it is replaced as a re-run
    // would.
    for _ in 0..3 {
        if !matches!(created, Ok(Err(_))) {
            break;
        }
        let Ok(Some(unfinished)) = target.blob_item(container, name).await else {
            break;
        };
        let Some(etag) = unfinished
            .etag
            .filter(|_| unfinished.metadata.contains_key(INCOMPLETE_MARKER))
        else {
            break;
        };
        created = target
            .create_for_ranges(container, name, source, &Destination::Unchanged(etag))
            .await;
    }
    let created = match created {
        Ok(Ok(etag)) => etag,
        Ok(Err(_)) => return finished(BlobResult::Skipped(CHANGED.into())),
        Err(error) => return finished(copy_failed("create the blob", &error)),
    };
    let source_changed = || finished(BlobResult::Skipped(SOURCE_CHANGED_RANGES.into()));
    if source.is_page_blob() {
        let write = |range| target.put_page_from_url(container, name, source_url, source, range);
        // The first write tells whether the call exists at all.
        if let Some(&first) = pieces.first() {
            match write(first).await {
                Ok(CopyAnswer::Unsupported) => return RangeCopy::Unsupported(created),
                Ok(CopyAnswer::SourceChanged) => return source_changed(),
                Ok(_) => {}
                Err(error) => return finished(copy_failed("put page from url", &error)),
            }
        }
        let results: Vec<_> = futures::stream::iter(pieces.into_iter().skip(1))
            .map(write)
            .buffer_unordered(8)
            .collect()
            .await;
        for result in results {
            match result {
                Ok(CopyAnswer::Done) => {}
                Ok(CopyAnswer::SourceChanged) => return source_changed(),
                Ok(_) => {
                    return finished(BlobResult::Failed(
                        "put page from url stopped being supported".into(),
                    ))
                }
                Err(error) => return finished(copy_failed("put page from url", &error)),
            }
        }
    } else {
        for (index, &(start, end)) in pieces.iter().enumerate() {
            match target
                .append_block_from_url(container, name, (source_url, source), (start, end), start)
                .await
            {
                Ok(CopyAnswer::Done) => {}
                Ok(CopyAnswer::Unsupported) if index == 0 => {
                    return RangeCopy::Unsupported(created)
                }
                Ok(CopyAnswer::SourceChanged) => return source_changed(),
                // A retry of a block that had been appended: fine when the length says so.
                Ok(CopyAnswer::ConditionFailed) => match target.blob_length(container, name).await {
                    Ok(length) if length == end + 1 => {}
                    Ok(length) => {
                        return finished(BlobResult::Failed(format!(
                            "append block from url: the target blob is {length} bytes long where {start} were expected (written by someone else?)"
                        )))
                    }
                    Err(error) => return finished(copy_failed("read the target blob length", &error)),
                },
                Ok(_) => {
                    return finished(BlobResult::Failed(
                        "append block from url stopped being supported".into(),
                    ))
                }
                Err(error) => return finished(copy_failed("append block from url", &error)),
            }
        }
    }
    if let Err(error) = target.finish_ranges(container, name, source).await {
        return finished(copy_failed("set the copied blob's properties", &error));
    }
    finished(BlobResult::Copied(CopyMethod::Ranges, source.size))
}

async fn apply_queue(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    item: &PlannedItem,
    notes: &mut Vec<String>,
) -> ItemStatus {
    let status = apply_queue_settings(ctx, job, clients, item).await;
    if job.mode != Mode::Replication || !clients.copy_queue_messages {
        return status;
    }
    if matches!(status, ItemStatus::Failed { .. }) {
        notes.push("messages not copied: the queue could not be set up".into());
        return status;
    }
    match copy_queue_messages(clients, &item.name).await {
        Err((copy, error)) => {
            notes.push(copy.note());
            failed("copy queue messages", &error)
        }
        Ok(copy) => {
            notes.push(copy.note());
            with_messages(status, &copy)
        }
    }
}

/// The most messages Peek Messages shows.
const PEEK_MAX: usize = 32;

const PEEK_LIMIT: &str = "Peek Messages shows at most 32 messages: any beyond them were not copied (reading them would dequeue, which changes the source)";

/// What copying one queue's messages did, and what it could not be sure of.
#[derive(Debug, Default)]
struct MessageCopy {
    copied: u64,
    /// Source messages the target already holds.
    present: u64,
    /// The source showed a full peek window: it may hold more.
    more_in_source: bool,
    /// Source messages not found among the (full) window of the target: they may be beyond it,
    /// so they were not sent.
    not_compared: u64,
    /// Messages whose Put Message answer was lost where the target holds more than a peek
    /// shows: not sent again, so each is there once or not at all.
    unconfirmed: u64,
}

impl MessageCopy {
    fn note(&self) -> String {
        format!(
            "messages: {} copied, {} already in the target (peeked, the source is never dequeued)",
            self.copied, self.present
        )
    }

    /// Why the queue's messages may not all be in the target.
    fn risks(&self) -> Vec<String> {
        let mut risks = Vec::new();
        if self.more_in_source {
            risks.push(PEEK_LIMIT.to_owned());
        }
        if self.not_compared > 0 {
            risks.push(format!(
                "{} source message(s) not copied: the target holds more messages than Peek Messages shows (32), so whether they are already there cannot be seen",
                self.not_compared
            ));
        }
        if self.unconfirmed > 0 {
            risks.push(format!(
                "{} message(s) may be missing: their Put Message answer was lost and, with more than 32 messages in the target, Peek Messages cannot show whether they landed (not sent again, which could duplicate them)",
                self.unconfirmed
            ));
        }
        risks
    }
}

/// The queue's status once its messages are copied.
fn with_messages(status: ItemStatus, copy: &MessageCopy) -> ItemStatus {
    let mut reasons = copy.risks();
    if copy.copied == 0 && reasons.is_empty() {
        return status;
    }
    // Messages copied into a queue that was there already overwrite it.
    let existed = !matches!(status, ItemStatus::Created { .. });
    let action = match status {
        ItemStatus::Created { action } | ItemStatus::Overwritten { action } => Some(action),
        ItemStatus::Partial { action, reason } => {
            reasons.insert(0, reason);
            Some(action)
        }
        _ => None,
    };
    let action = match (action, copy.copied) {
        (Some(action), 0) => action,
        (Some(action), copied) => format!("{action}; {copied} message(s) copied"),
        (None, 0) if copy.not_compared + copy.unconfirmed == 0 => {
            "queue kept; its peeked messages are already in the target".into()
        }
        (None, 0) => "queue kept".into(),
        (None, copied) => format!("{copied} message(s) copied"),
    };
    if reasons.is_empty() {
        ItemStatus::written(existed, action)
    } else {
        ItemStatus::Partial {
            action,
            reason: reasons.join("; "),
        }
    }
}

/// Copies the messages Peek Messages shows that the target does not already hold (compared by
/// text, as a multiset), so a re-run copies nothing. Put Message is not idempotent: it is sent
/// once, and when its answer is lost the target is peeked to see whether it landed before it
/// is sent again.
async fn copy_queue_messages(
    clients: &Clients,
    queue: &str,
) -> Result<MessageCopy, (MessageCopy, AzureError)> {
    let mut copy = MessageCopy::default();
    let peeked = async {
        let source = clients.source_queue.peek_messages(queue).await?;
        Ok((source, clients.target_queue.peek_messages(queue).await?))
    };
    let (source, target) = match peeked.await {
        Ok(both) => both,
        Err(error) => return Err((copy, error)),
    };
    copy.more_in_source = source.len() >= PEEK_MAX;
    let target_window_full = target.len() >= PEEK_MAX;
    // The target's messages by text: those no source message has matched yet, and all of them
    // (with atg's copies) as far as atg knows, every one in view while they are fewer than 32.
    let mut unmatched: HashMap<&str, usize> = HashMap::new();
    for text in &target {
        *unmatched.entry(text.expose()).or_default() += 1;
    }
    let mut held = unmatched.clone();
    let mut in_target = target.len();
    for text in &source {
        if let Some(count) = unmatched.get_mut(text.expose()).filter(|c| **c > 0) {
            *count -= 1;
            copy.present += 1;
            continue;
        }
        if target_window_full {
            copy.not_compared += 1;
            continue;
        }
        let already = held.get(text.expose()).copied().unwrap_or_default();
        match put_message_once(clients, queue, text, (already, in_target)).await {
            Ok(true) => {
                copy.copied += 1;
                in_target += 1;
                *held.entry(text.expose()).or_default() += 1;
            }
            Ok(false) => copy.unconfirmed += 1,
            Err(error) => return Err((copy, error)),
        }
    }
    Ok(copy)
}

/// Puts one message so that it lands once: after a failed try the target is peeked, and the
/// message is sent again only when the peek shows it did not land (the target held `already`
/// copies of this text among `in_target` messages). `Ok(false)` when that cannot be seen: the
/// target holds 32 messages or more, beyond what a peek shows.
async fn put_message_once(
    clients: &Clients,
    queue: &str,
    text: &Sensitive,
    (already, in_target): (usize, usize),
) -> Result<bool, AzureError> {
    const TRIES: u32 = 5;
    let target = &clients.target_queue;
    for attempt in 1..=TRIES {
        let error = match target.put_message(queue, text).await {
            Ok(()) => return Ok(true),
            // A refusal (403, 400, ...) took no effect and would refuse again.
            Err(error) if !error.is_retryable() => return Err(error),
            Err(error) => error,
        };
        if in_target >= PEEK_MAX {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        let now = target.peek_messages(queue).await?;
        let copies = now.iter().filter(|m| m.expose() == text.expose()).count();
        if copies > already {
            return Ok(true);
        }
        if attempt == TRIES {
            return Err(error);
        }
        tracing::debug!(queue, attempt, error = %error, "put message did not land: sending it again");
    }
    Ok(false)
}

/// The queue itself: created or updated with the source's metadata and policies.
async fn apply_queue_settings(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    item: &PlannedItem,
) -> ItemStatus {
    let plan: QueuePlan = match item.plan() {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let target = &clients.target_queue;
    let name = &item.name;
    let source = &plan.source;
    let mut partial = Vec::new();
    if source.policies_unreadable {
        partial.push(SOURCE_POLICIES_UNREAD.to_owned());
    }
    // Set Queue ACL replaces every policy: sent only when the source's are known, and the
    // target's are known too or the queue is new.
    let set_policies = !source.policies_unreadable
        && match &plan.target {
            None => !source.access_policies.is_empty(),
            Some(existing) if existing.policies_unreadable => {
                if !source.access_policies.is_empty() {
                    partial.push(
                        "stored access policies not copied: the target's could not be read, and setting them replaces them all"
                            .to_owned(),
                    );
                }
                false
            }
            Some(existing) => existing.access_policies != source.access_policies,
        };
    let action = match &plan.target {
        None => {
            if let Err(error) = target.create_queue(name, &source.metadata).await {
                return failed("create queue", &error);
            }
            "queue created with its metadata"
        }
        Some(existing) => {
            if existing.metadata == source.metadata && !set_policies {
                return if partial.is_empty() {
                    ItemStatus::Identical
                } else {
                    ItemStatus::Partial {
                        action: "queue kept".into(),
                        reason: partial.join("; "),
                    }
                };
            }
            if let Some(status) = settings_conflict(job.on_conflict, "queue") {
                return status;
            }
            if existing.metadata != source.metadata {
                if let Err(error) = target.set_queue_metadata(name, &source.metadata).await {
                    return failed("set queue metadata", &error);
                }
            }
            "queue settings updated"
        }
    };
    if set_policies {
        let set = set_with_key(ctx, &clients.target_keyed, |k| {
            k.queue.set_queue_acl(name, &source.access_policies)
        })
        .await;
        match set {
            Ok(None) => {}
            Ok(Some(reason)) => partial.push(reason),
            Err(error) => return failed("set queue access policies", &error),
        }
    }
    if partial.is_empty() {
        ItemStatus::written(plan.target.is_some(), action)
    } else {
        ItemStatus::Partial {
            action: action.into(),
            reason: partial.join("; "),
        }
    }
}

async fn apply_table(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    resource: JobId,
    item: &PlannedItem,
    notes: &mut Vec<String>,
) -> ItemStatus {
    let plan: TablePlan = match item.plan() {
        Ok(plan) => plan,
        Err(status) => return status,
    };
    let target = &clients.target_table;
    let name = &item.name;
    let source_policies = plan.source.clone().unwrap_or_default();
    let existing_target = plan.target_exists.then_some(&plan.target);
    // Settings kept by --on-conflict skip: said so on the item, entities still copied.
    let mut kept_settings: Option<ItemStatus> = None;
    let (action, set_policies) = match existing_target {
        None => {
            if let Err(error) = target.create_table(name).await {
                return failed("create table", &error);
            }
            ("table created", !source_policies.is_empty())
        }
        Some(existing) => {
            // Set Table ACL replaces every policy: only when both sides are known.
            let same = match (&plan.source, existing) {
                (Some(source), Some(existing)) => source == existing,
                _ => true,
            };
            if same {
                ("", false)
            } else {
                match settings_conflict(job.on_conflict, "table") {
                    Some(status) => {
                        if job.mode == Mode::Template || matches!(status, ItemStatus::Failed { .. })
                        {
                            return status;
                        }
                        kept_settings = Some(status);
                        ("", false)
                    }
                    None => ("table access policies updated", true),
                }
            }
        }
    };
    let unknown_target_policies =
        plan.target_exists && plan.target.is_none() && !source_policies.is_empty();
    let mut status = if let Some(kept) = kept_settings {
        kept
    } else if plan.source.is_none() {
        ItemStatus::Partial {
            action: if action.is_empty() {
                "table kept".into()
            } else {
                action.into()
            },
            reason: SOURCE_POLICIES_UNREAD.into(),
        }
    } else if action.is_empty() && unknown_target_policies {
        ItemStatus::Partial {
            action: "table kept".into(),
            reason: "stored access policies not copied: the target's could not be read, and setting them replaces them all".into(),
        }
    } else if action.is_empty() {
        ItemStatus::Identical
    } else {
        ItemStatus::written(plan.target_exists, action)
    };
    if set_policies {
        let set = set_with_key(ctx, &clients.target_keyed, |k| {
            k.table.set_table_access_policies(name, &source_policies)
        })
        .await;
        match set {
            Ok(None) => {}
            Ok(Some(reason)) => {
                status = ItemStatus::Partial {
                    action: if action.is_empty() {
                        "table kept".into()
                    } else {
                        action.into()
                    },
                    reason,
                };
            }
            Err(error) => return failed("set table access policies", &error),
        }
    }
    if job.mode == Mode::Template {
        return status;
    }
    let tally = copy_entities(ctx, job, clients, resource, name).await;
    notes.push(format!(
        "entities: {} copied, {} identical, {} skipped, {} failed",
        tally.copied, tally.identical, tally.skipped, tally.failed
    ));
    match tally.listing_error {
        Some(error) => ItemStatus::Failed { error },
        None => status,
    }
}

/// Walks a table's entities on both sides in key order.
struct EntityMerge<'a> {
    client: &'a StorageClient,
    table: &'a str,
    page: VecDeque<Entity>,
    next: Option<(String, String)>,
    done: bool,
}

impl<'a> EntityMerge<'a> {
    fn new(client: &'a StorageClient, table: &'a str) -> Self {
        EntityMerge {
            client,
            table,
            page: VecDeque::new(),
            next: None,
            done: false,
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        while self.page.is_empty() && !self.done {
            match self
                .client
                .query_entities(self.table, self.next.as_ref())
                .await
                .map_err(|e| format!("query entities: {e}"))?
            {
                Some(page) => {
                    self.page = page.entities.into();
                    self.next = page.next;
                    self.done = self.next.is_none();
                }
                None => self.done = true,
            }
        }
        Ok(())
    }
}

fn entity_decision(
    source: &Entity,
    target: Option<&Entity>,
    policy: OnConflict,
) -> Result<Option<EntityWrite>, Result<String, String>> {
    // Ok(Some(write)), Ok(None) = identical, Err(Ok(reason)) = skip, Err(Err(error)) = fail.
    let Some(target) = target else {
        return Ok(Some(EntityWrite::Insert(source.clone())));
    };
    if target.same_properties(source) {
        return Ok(None);
    }
    match policy {
        OnConflict::Overwrite => Ok(Some(EntityWrite::Replace(source.clone()))),
        OnConflict::Skip => Err(Ok("exists in the target and differs (--on-conflict skip)".into())),
        OnConflict::Fail => Err(Err("exists in the target and differs (--on-conflict fail)".into())),
        OnConflict::IfSourceNewer => match (&source.timestamp, &target.timestamp) {
            (Some(s), Some(t)) if s > t => Ok(Some(EntityWrite::Replace(source.clone()))),
            _ => Err(Ok("exists in the target, differs, and is not older than the source (--on-conflict if-source-newer)".into())),
        },
    }
}

async fn copy_entities(
    ctx: &PluginContext,
    job: &Job,
    clients: &Clients,
    resource: JobId,
    table: &str,
) -> Tally {
    let mut tally = Tally::default();
    let mut source = EntityMerge::new(&clients.source_table, table);
    let mut target = EntityMerge::new(&clients.target_table, table);
    let mut batch: Vec<EntityWrite> = Vec::new();
    let mut batch_bytes = 0usize;
    let report = |tally: &mut Tally, entity: &Entity, status: ItemStatus| {
        match status {
            ItemStatus::Failed { .. } => tally.failed += 1,
            _ => tally.skipped += 1,
        }
        ctx.reporter.item(
            resource,
            ItemOutcome {
                kind: ENTITY,
                name: format!("{table}/{}/{}", entity.partition_key, entity.row_key),
                status,
                notes: Vec::new(),
                duration_ms: 0,
            },
        );
    };
    loop {
        if ctx.cancel.is_cancelled() {
            break;
        }
        if let Err(error) = source.fill().await {
            tally.listing_error = Some(error);
            break;
        }
        let Some(entity) = source.page.pop_front() else {
            break;
        };
        let mut matched = None;
        loop {
            if let Err(error) = target.fill().await {
                tally.listing_error = Some(error);
                break;
            }
            match target.page.front() {
                Some(front) if front.key() < entity.key() => {
                    target.page.pop_front();
                }
                Some(front) if front.key() == entity.key() => {
                    matched = target.page.pop_front();
                    break;
                }
                _ => break,
            }
        }
        if tally.listing_error.is_some() {
            break;
        }
        let write = match entity_decision(&entity, matched.as_ref(), job.on_conflict) {
            Ok(Some(write)) => write,
            Ok(None) => {
                tally.identical += 1;
                ctx.reporter.count(resource, ENTITY, Counted::Identical, 1);
                continue;
            }
            Err(Ok(reason)) => {
                report(&mut tally, &entity, ItemStatus::Skipped { reason });
                continue;
            }
            Err(Err(error)) => {
                report(&mut tally, &entity, ItemStatus::Failed { error });
                continue;
            }
        };
        let size = serde_json::to_string(&write.entity().properties).map_or(0, |s| s.len()) + 512;
        let other_partition = batch
            .first()
            .is_some_and(|first| first.entity().partition_key != entity.partition_key);
        if other_partition || batch.len() >= MAX_BATCH || batch_bytes + size > MAX_BATCH_BYTES {
            flush(
                ctx, clients, resource, table, &mut batch, &mut tally, &report,
            )
            .await;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(write);
    }
    flush(
        ctx, clients, resource, table, &mut batch, &mut tally, &report,
    )
    .await;
    tally
}

async fn flush(
    ctx: &PluginContext,
    clients: &Clients,
    resource: JobId,
    table: &str,
    batch: &mut Vec<EntityWrite>,
    tally: &mut Tally,
    report: &impl Fn(&mut Tally, &Entity, ItemStatus),
) {
    if batch.is_empty() {
        return;
    }
    let writes = std::mem::take(batch);
    let _permit = ctx.item_slots.acquire().await;
    let outcome = flat(clients.target_table.write_batch(table, &writes).await);
    if outcome.is_ok() {
        tally.copied += writes.len() as u64;
        let replaced = writes
            .iter()
            .filter(|write| matches!(write, EntityWrite::Replace(_)))
            .count() as u64;
        ctx.reporter
            .count(resource, ENTITY, Counted::Overwritten, replaced);
        ctx.reporter.count(
            resource,
            ENTITY,
            Counted::Created,
            writes.len() as u64 - replaced,
        );
        return;
    }
    // Find the culprit(s), or the writes that landed on an earlier try whose answer was lost:
    // one transaction per entity (a lone write's answer is already known).
    let mut known = (writes.len() == 1).then_some(outcome);
    for write in writes {
        let outcome = match known.take() {
            Some(outcome) => outcome,
            None => flat(
                clients
                    .target_table
                    .write_batch(table, std::slice::from_ref(&write))
                    .await,
            ),
        };
        let status = match outcome {
            Ok(()) => None,
            Err(error) if error.has_code("EntityAlreadyExists") => {
                already_there(clients, table, write.entity()).await
            }
            Err(error) => Some(ItemStatus::Failed {
                error: format!("write entity: {error}"),
            }),
        };
        match status {
            None => {
                tally.copied += 1;
                let counted = if matches!(write, EntityWrite::Replace(_)) {
                    Counted::Overwritten
                } else {
                    Counted::Created
                };
                ctx.reporter.count(resource, ENTITY, counted, 1);
            }
            Some(status) => report(tally, write.entity(), status),
        }
    }
}

/// A transaction's answer: refused by the service or not answered at all.
fn flat(outcome: Result<Result<(), BatchFailure>, AzureError>) -> Result<(), AzureError> {
    outcome.and_then(|answer| answer.map_err(|failure| failure.error))
}

/// An Insert refused because the entity exists: `None` (copied) when the target holds exactly
/// the source's entity, which is what an earlier try whose answer was lost leaves; otherwise
/// it appeared during the run and is left as it is.
async fn already_there(clients: &Clients, table: &str, source: &Entity) -> Option<ItemStatus> {
    match clients.target_table.get_entity(table, source.key()).await {
        Ok(Some(target)) if target.same_properties(source) => None,
        Ok(_) => Some(ItemStatus::Skipped {
            reason: "appeared in the target during the run; left as it is (run again to compare)"
                .into(),
        }),
        Err(error) => Some(ItemStatus::Failed {
            error: format!("read entity: {error}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(name: &str) -> BlobItem {
        BlobItem {
            name: name.into(),
            size: 10,
            blob_type: "BlockBlob".into(),
            content_md5: Some("md5=".into()),
            access_tier: Some("Hot".into()),
            access_tier_inferred: true,
            last_modified: Some(time::macros::datetime!(2024-01-01 00:00 UTC)),
            etag: Some("0x1".into()),
            ..BlobItem::default()
        }
    }

    #[test]
    fn identical_blobs_are_skipped_whatever_the_policy() {
        let source = blob("a");
        let mut target = blob("a");
        target.etag = Some("0x2".into());
        target.last_modified = Some(time::macros::datetime!(2025-01-01 00:00 UTC));
        for policy in [
            OnConflict::Overwrite,
            OnConflict::Skip,
            OnConflict::Fail,
            OnConflict::IfSourceNewer,
        ] {
            assert_eq!(
                decide(&source, Some(&target), policy),
                BlobDecision::Identical
            );
        }
    }

    #[test]
    fn names_with_dot_segments_are_skipped_not_sent_to_another_blob() {
        for name in ["a/../b", "./x", "x/.", ".."] {
            match decide(&blob(name), None, OnConflict::Overwrite) {
                BlobDecision::Skip(reason) => assert!(reason.contains("path segment"), "{reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        for name in ["a.b", "..x", "x..", "a/.hidden", "a//b"] {
            assert!(
                matches!(
                    decide(&blob(name), None, OnConflict::Overwrite),
                    BlobDecision::Copy(_)
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn archived_blobs_are_skipped_with_the_remedy() {
        let mut source = blob("cold");
        source.access_tier = Some("Archive".into());
        source.access_tier_inferred = false;
        match decide(&source, None, OnConflict::Overwrite) {
            BlobDecision::Skip(reason) => assert!(reason.contains("rehydrate"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let mut pending = blob("warming");
        pending.archive_status = Some("rehydrate-pending-to-hot".into());
        assert!(matches!(
            decide(&pending, None, OnConflict::Overwrite),
            BlobDecision::Skip(_)
        ));
    }

    #[test]
    fn differing_blobs_follow_the_policy() {
        let source = blob("a");
        let mut target = blob("a");
        target.content_md5 = Some("other=".into());
        assert_eq!(
            decide(&source, Some(&target), OnConflict::Overwrite),
            BlobDecision::Copy(Destination2::Replace("0x1".into()))
        );
        assert!(matches!(
            decide(&source, Some(&target), OnConflict::Skip),
            BlobDecision::Skip(_)
        ));
        assert!(matches!(
            decide(&source, Some(&target), OnConflict::Fail),
            BlobDecision::Fail(_)
        ));
        // if-source-newer: the target is as new → skip; older → copy.
        assert!(matches!(
            decide(&source, Some(&target), OnConflict::IfSourceNewer),
            BlobDecision::Skip(_)
        ));
        target.last_modified = Some(time::macros::datetime!(2023-01-01 00:00 UTC));
        assert!(matches!(
            decide(&source, Some(&target), OnConflict::IfSourceNewer),
            BlobDecision::Copy(_)
        ));
        assert_eq!(
            decide(&source, None, OnConflict::Fail),
            BlobDecision::Copy(Destination2::Absent)
        );
    }

    #[test]
    fn metadata_tags_and_explicit_tier_count_for_identity() {
        let source = blob("a");
        let mut target = blob("a");
        target.tags.insert("env".into(), "prod".into());
        assert!(!identical(&source, &target));
        let mut cool = blob("a");
        cool.access_tier = Some("Cool".into());
        cool.access_tier_inferred = false;
        assert!(!identical(&cool, &blob("a")));
        assert!(
            identical(&blob("a"), &cool),
            "an inferred source tier is not compared"
        );
    }

    #[test]
    fn ranges_are_cut_into_pieces_the_calls_take() {
        assert_eq!(chunked(&[(0, 0)], RANGE_CHUNK), vec![(0, 0)]);
        assert_eq!(
            chunked(&[(0, 10 * MIB - 1)], 4 * MIB),
            vec![
                (0, 4 * MIB - 1),
                (4 * MIB, 8 * MIB - 1),
                (8 * MIB, 10 * MIB - 1)
            ]
        );
        // Sparse page ranges stay sparse: only the valid ranges, each cut on its own.
        assert_eq!(
            chunked(&[(512, 1023), (8 * MIB, 12 * MIB + 511)], 4 * MIB),
            vec![
                (512, 1023),
                (8 * MIB, 12 * MIB - 1),
                (12 * MIB, 12 * MIB + 511)
            ]
        );
        assert!(chunked(&[], RANGE_CHUNK).is_empty());
    }

    #[test]
    fn block_sizes_follow_azcopy() {
        assert_eq!(block_size_for(300 * MIB, None), 8 * MIB);
        assert_eq!(block_size_for(500_000 * MIB, None), 16 * MIB);
        assert_eq!(block_size_for(3 * MIB, Some(MIB)), MIB);
    }

    #[test]
    fn queue_status_says_what_was_copied_and_what_may_be_missing() {
        let replicated = || ItemStatus::Created {
            action: "queue created with its metadata".into(),
        };
        let copied = MessageCopy {
            copied: 2,
            ..MessageCopy::default()
        };
        let ItemStatus::Created { action } = with_messages(replicated(), &copied) else {
            panic!("not created")
        };
        assert_eq!(
            action,
            "queue created with its metadata; 2 message(s) copied"
        );
        let same = ItemStatus::Identical;
        assert!(matches!(
            with_messages(same.clone(), &MessageCopy::default()),
            ItemStatus::Identical
        ));
        let more = MessageCopy {
            copied: 1,
            ..MessageCopy::default()
        };
        assert!(matches!(
            with_messages(same.clone(), &more),
            ItemStatus::Overwritten { .. }
        ));
        let full = MessageCopy {
            more_in_source: true,
            ..MessageCopy::default()
        };
        let ItemStatus::Partial { reason, .. } = with_messages(same.clone(), &full) else {
            panic!("not partial")
        };
        assert_eq!(reason, PEEK_LIMIT);
        let hidden = MessageCopy {
            not_compared: 1,
            ..MessageCopy::default()
        };
        let ItemStatus::Partial { action, .. } = with_messages(same, &hidden) else {
            panic!("not partial")
        };
        assert_eq!(
            action, "queue kept",
            "not every message is known to be there"
        );
        let unsure = MessageCopy {
            copied: 1,
            not_compared: 2,
            unconfirmed: 1,
            ..MessageCopy::default()
        };
        let ItemStatus::Partial { reason, .. } = with_messages(replicated(), &unsure) else {
            panic!("not partial")
        };
        assert!(
            reason.contains("2 source message(s) not copied"),
            "{reason}"
        );
        assert!(reason.contains("1 message(s) may be missing"), "{reason}");
    }

    #[test]
    fn options_are_validated() {
        let mut resource = Resource {
            id: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a"
                .into(),
            resource_type: "Microsoft.Storage/storageAccounts".into(),
            name: "a".into(),
            subscription_id: None,
            resource_group: None,
            properties: Properties::Missing,
            options: serde_json::Map::new(),
        };
        let parsed = StorageOptions::parse(&resource).unwrap();
        assert_eq!(parsed.sync_copy_max, SYNC_COPY_MAX);
        assert_eq!(parsed.source_auth, SourceAuthChoice::Auto);
        resource
            .options
            .insert("sync_copy_max_mib".into(), 999.into());
        assert!(StorageOptions::parse(&resource)
            .unwrap_err()
            .contains("1 to 256"));
        resource.options.clear();
        resource
            .options
            .insert("source_auth".into(), "magic".into());
        assert!(StorageOptions::parse(&resource).is_err());
        for (options, expected) in [
            (
                serde_json::json!({ "blok_size_mib": 8 }),
                "options: unknown field `blok_size_mib`",
            ),
            (
                serde_json::json!({ "block_size_mib": 1e20 }),
                "options.block_size_mib must be a whole number from 1 to 4000",
            ),
            (
                serde_json::json!({ "queue_messages": "all" }),
                "options.queue_messages must be none or peek",
            ),
            // A secret in the wrong field is never echoed.
            (
                serde_json::json!({ "sync_copy_max_mib": "AccountKey=c2VjcmV0" }),
                "options.sync_copy_max_mib must be a whole number from 1 to 256",
            ),
        ] {
            resource.options = options.as_object().cloned().unwrap();
            let message = StorageOptions::parse(&resource).unwrap_err();
            assert!(message.starts_with(expected), "{message}");
            assert!(!message.contains("c2VjcmV0"), "{message}");
        }
        resource.options = serde_json::json!({ "block_size_mib": 8, "queue_messages": "peek" })
            .as_object()
            .cloned()
            .unwrap();
        let parsed = StorageOptions::parse(&resource).unwrap();
        assert_eq!(parsed.block_size, Some(8 * MIB));
        assert!(parsed.copy_queue_messages);
    }
}
