//! How the storage plugin reaches both accounts: the source's authorisation (Entra ID with a
//! user-delegation SAS for copy sources, else an account SAS from ARM listKeys or the pair's
//! connection string), the Shared Key clients stored access policies need, and the clients of
//! one pair, built once when planning and owned by the plan. No SAS or key is ever printed.

use std::sync::atomic::AtomicBool;

use super::options::{SourceAuthChoice, StorageOptions};
use crate::azure::arm::{self, ArmClient};
use crate::azure::error::AzureErrorKind;
use crate::azure::storage::sas::{self, UserDelegationKey};
use crate::azure::storage::SignedIdentifier;
use crate::azure::storage::{StorageAuth, StorageClient, StorageEndpoints, StorageService};
use crate::azure::{AzureError, Sensitive, WriteAccess};
use crate::dataplane::{Job, PluginContext, PluginError, SideContext};
use crate::inventory::{Properties, Resource};

/// How the source is read, and how the target service is allowed to read copy sources.
pub(super) struct SourceAccess {
    pub method: String,
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
    pub(super) fn container_sas(
        &self,
        account: &str,
        container: &str,
    ) -> Result<Sensitive, AzureError> {
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
pub(super) fn endpoints(
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
/// side's identity. A POST that only reads: `arm::storage` declares it so, and the write guard
/// lets it through for the source and in dry-run.
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
pub(super) struct KeyedClients {
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

pub(super) struct KeyedServices {
    pub blob: StorageClient,
    pub queue: StorageClient,
    pub table: StorageClient,
}

impl KeyedClients {
    /// The keyed clients, or why there are none (said on the items it affects).
    pub(super) async fn get(&self, ctx: &PluginContext) -> Result<&KeyedServices, String> {
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
pub(super) async fn set_with_key<'a, F, Fut>(
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
pub(super) async fn policies_with_key<'a, F, Fut>(
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
pub(super) async fn note_unwritable_policies(
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

pub(super) fn is_denied(error: &AzureError) -> bool {
    matches!(error.status, Some(401 | 403))
}

/// The clients of one pair, built once when planning and owned by the plan: the source's
/// authorisation is resolved once per run.
pub(super) struct Clients {
    pub source_account: String,
    pub source_blob: StorageClient,
    pub source_queue: StorageClient,
    pub source_table: StorageClient,
    pub target_blob: StorageClient,
    pub target_queue: StorageClient,
    pub target_table: StorageClient,
    /// Shared Key clients for stored access policies, made on first need.
    pub source_keyed: KeyedClients,
    pub target_keyed: KeyedClients,
    pub access: SourceAccess,
    pub target_allows_public_access: bool,
    pub sync_copy_max: u64,
    pub block_size: Option<u64>,
    pub copy_queue_messages: bool,
    /// How long an async Copy Blob is polled.
    pub copy_timeout: std::time::Duration,
    /// Set when the target service answered that a call is not implemented.
    pub sync_copy_unsupported: AtomicBool,
    pub block_copy_unsupported: AtomicBool,
    pub page_copy_unsupported: AtomicBool,
    pub append_copy_unsupported: AtomicBool,
}

/// The pair's clients: the source's authorisation resolved, the target's with the run's write
/// access (read-only in a dry run).
pub(super) async fn clients(ctx: &PluginContext, job: &Job) -> Result<Clients, PluginError> {
    let target_access = ctx.target.access;
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
        copy_timeout: options.copy_timeout,
        block_size: options.block_size,
        sync_copy_unsupported: AtomicBool::new(false),
        block_copy_unsupported: AtomicBool::new(false),
        page_copy_unsupported: AtomicBool::new(false),
        append_copy_unsupported: AtomicBool::new(false),
        access,
    })
}
