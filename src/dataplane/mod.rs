//! Data-plane plugins: one per Azure service, each filling a deployed target resource from its
//! source.
//!
//! A plugin declares what it can do ([`PluginInfo`]: resource types, modes, item kinds,
//! permissions per mode) so the orchestrator can refuse honestly instead of failing halfway.
//! It works in two steps: [`DataPlanePlugin::plan`] reads both sides and plans every item (this
//! is all a dry-run does), then [`ApplyPlan::apply`] carries that plan out with what planning
//! built (clients, the source's authorisation): nothing is resolved twice. The shared
//! machinery (conflict decisions, listings, waits, options, the apply loop) is in [`kit`].
//! Everything a plugin needs comes through [`PluginContext`]; plugins never import the
//! orchestrator, the CLI or the UI.

pub mod api_management;
pub mod app_service;
pub mod event_hubs;
pub mod key_vault;
pub mod kit;
mod outcome;
pub mod registry;
pub mod service_bus;
pub mod storage;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::azure::{AzureError, AzureHttp, Cloud, WriteAccess};
use crate::inventory::ResourcePair;

/// What a run copies.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Structure only: names, settings, containers, placeholder secret values. No secret value
    /// is read or written.
    Template,
    /// Full copy, values included.
    Replication,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Template => "template",
            Mode::Replication => "replication",
        })
    }
}

/// What to do when the target already has an item of that name and it differs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnConflict {
    /// Write the source's version over it (Key Vault keeps the previous one as an older version).
    #[default]
    Overwrite,
    /// Leave the target's item as it is; report it skipped.
    Skip,
    /// Leave it and report the item failed.
    Fail,
    /// Overwrite only when the source was modified after the target (like azcopy's ifSourceNewer);
    /// otherwise skip. Key Vault items carry no comparable modification time across vaults, so
    /// there it acts as `skip`.
    IfSourceNewer,
}

/// What to do when the target has the name soft-deleted (Key Vault's 409 `ObjectIsDeletedButRecoverable`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum OnDeleted {
    /// Recover the deleted item, then continue as if it had been there.
    #[default]
    Recover,
    /// Purge the deleted item for good, then write.
    Purge,
    /// Report the item failed.
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

/// A kind of item a plugin copies (secret, key, blob, ...).
#[derive(Debug)]
pub struct ItemKindInfo {
    pub name: &'static str,
    pub template: &'static str,
    pub replication: &'static str,
}

/// What a side needs to be granted for a mode.
#[derive(Debug)]
pub struct PermissionInfo {
    pub mode: Mode,
    pub side: Side,
    pub data_actions: &'static [&'static str],
    pub roles: &'static [&'static str],
}

/// Something a plugin's items can have done to them in general, which a plugin may declare it
/// cannot do (see [`Limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Template mode writes the item (with a placeholder where a value goes).
    Template,
    /// Replication copies the item's value as it is (not new material of the same shape).
    CopyValue,
    /// `--on-conflict if-source-newer` compares the source's and the target's modification
    /// times; without it the policy acts as `skip`.
    IfSourceNewer,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::Template => "template",
            Capability::CopyValue => "copy-value",
            Capability::IfSourceNewer => "if-source-newer",
        })
    }
}

/// A capability a plugin lacks for some of its item kinds, and why: declared up front (as
/// rclone's backends declare the features they lack) so `atg plugins` shows it and the
/// conformance suite checks the lack is reported instead of skipping a check silently.
#[derive(Debug)]
pub struct Limit {
    pub capability: Capability,
    /// The item kinds it applies to; empty means every kind of the plugin.
    pub kinds: &'static [&'static str],
    pub reason: &'static str,
}

impl Limit {
    pub fn applies_to(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }
}

#[derive(Debug)]
pub struct PluginInfo {
    /// Short name, e.g. `key-vault`.
    pub name: &'static str,
    /// ARM types it handles, e.g. `Microsoft.KeyVault/vaults`.
    pub resource_types: &'static [&'static str],
    pub modes: &'static [Mode],
    pub item_kinds: &'static [ItemKindInfo],
    pub permissions: &'static [PermissionInfo],
    /// Fast paths and limits worth knowing (server-side copy, what is never copied).
    pub notes: &'static [&'static str],
    /// What the plugin cannot do, by capability and item kind.
    pub limits: &'static [Limit],
}

impl PluginInfo {
    pub fn supports(&self, mode: Mode) -> bool {
        self.modes.contains(&mode)
    }

    /// Whether items of `kind` can have `capability` (no declared [`Limit`] says otherwise).
    pub fn can(&self, capability: Capability, kind: &str) -> bool {
        !self
            .limits
            .iter()
            .any(|limit| limit.capability == capability && limit.applies_to(kind))
    }

    pub fn handles(&self, resource_type: &str) -> bool {
        self.resource_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(resource_type))
    }
}

/// Identifies one job of a run (unique even when one source is paired with several targets):
/// a plugin reports its items through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub usize);

/// One resource pair to work on, with the run's policies.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    pub pair: ResourcePair,
    pub mode: Mode,
    pub on_conflict: OnConflict,
    pub on_deleted: OnDeleted,
    /// `atg verify`: plan every item the mode promises one by one (no container-level
    /// `compare`), and list the target's items the source lacks as [`PlannedAction::Extra`].
    pub verify: bool,
    /// `--plan FILE`: the plan's fingerprints are compared, so planning computes them as a dry
    /// run does (Storage walks both blob listings).
    pub from_plan: bool,
}

/// Where plugins report progress and item outcomes; the orchestrator implements it.
pub trait Reporter: Send + Sync {
    /// The number of items of a job became known.
    fn discovered(&self, job: JobId, items: u64);
    /// One item finished; it is listed in the report.
    fn item(&self, job: JobId, outcome: ItemOutcome);
    /// `count` items of `kind` finished unremarkably. Counted in the report's totals but not
    /// listed one by one: for services with millions of items (blobs, table entities), where
    /// failures and skips with reasons still go through [`Reporter::item`].
    fn count(&self, job: JobId, kind: &'static str, status: Counted, count: u64);
}

/// One side's identity and transport.
#[derive(Clone)]
pub struct SideContext {
    pub credential: Arc<dyn TokenCredential>,
    pub access: WriteAccess,
}

/// Everything a plugin may use.
#[derive(Clone)]
pub struct PluginContext {
    pub http: AzureHttp,
    pub source: SideContext,
    pub target: SideContext,
    pub reporter: Arc<dyn Reporter>,
    pub cancel: CancellationToken,
    /// Bounds item operations in flight across the whole run.
    pub item_slots: Arc<Semaphore>,
    /// Placeholder written in template mode where a value is required.
    pub placeholder: &'static str,
    /// How long to wait for eventually consistent service states (recovery, purge).
    pub settle_timeout: Duration,
    /// Every pair of the run, for references from one resource to another (an app setting's
    /// Key Vault reference is rewritten to the vault paired with the one it names).
    pub pairs: Arc<[ResourcePair]>,
}

impl PluginContext {
    pub fn dry_run(&self) -> bool {
        self.target.access == WriteAccess::ReadOnly
    }

    /// Runs one item's work in one of the run's item slots, as a cancellation allows: once the
    /// run is cancelled no item starts (not even one waiting for a slot); an item already
    /// started runs to its end, so what it wrote is reported as it is, unless it is still going
    /// [`CANCEL_GRACE`] after the cancellation.
    pub async fn in_item_slot<T>(
        &self,
        work: impl std::future::Future<Output = T>,
    ) -> Result<T, Interrupted> {
        run_in_slot(&self.cancel, &self.item_slots, CANCEL_GRACE, work).await
    }
}

/// How long items already started may go on after a cancellation (the first Ctrl-C) before
/// they are abandoned and reported unconfirmed. Documented in docs/report.md.
pub const CANCEL_GRACE: Duration = Duration::from_secs(30);

/// Why an item's work did not run to its end: the run was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Interrupted {
    /// Nothing of it was sent.
    #[error("cancelled before it started")]
    BeforeStart,
    /// Still going when the grace period ended: what it sent may or may not have landed.
    #[error("cancelled while writing and not finished within the {}s grace period: the target may or may not hold it (run again to compare)", CANCEL_GRACE.as_secs())]
    Unconfirmed,
}

impl From<Interrupted> for ItemStatus {
    fn from(interrupted: Interrupted) -> Self {
        match interrupted {
            Interrupted::BeforeStart => ItemStatus::Skipped {
                reason: interrupted.to_string(),
            },
            Interrupted::Unconfirmed => ItemStatus::Failed {
                error: interrupted.to_string(),
            },
        }
    }
}

/// [`PluginContext::in_item_slot`] with its grace period as a parameter.
async fn run_in_slot<T>(
    cancel: &CancellationToken,
    slots: &Semaphore,
    grace: Duration,
    work: impl std::future::Future<Output = T>,
) -> Result<T, Interrupted> {
    // The work never races the cancellation itself (that would drop writes already sent), only
    // the end of the grace period that follows it.
    let _permit = tokio::select! {
        biased;
        () = cancel.cancelled() => return Err(Interrupted::BeforeStart),
        permit = slots.acquire() => permit,
    };
    let deadline = async {
        cancel.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        biased;
        done = work => Ok(done),
        () = deadline => Err(Interrupted::Unconfirmed),
    }
}

/// A failure of a whole resource (as opposed to one item).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{operation}: {source}")]
    Azure {
        operation: String,
        #[source]
        source: AzureError,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
}

impl PluginError {
    pub fn azure(operation: impl Into<String>, source: impl Into<AzureError>) -> Self {
        PluginError::Azure {
            operation: operation.into(),
            source: source.into(),
        }
    }
}

pub use kit::apply_each;
pub use outcome::{
    Counted, Difference, Discovery, ItemOutcome, ItemStatus, PlannedAction, PlannedItem, Verdict,
    EXTRA,
};

#[async_trait]
pub trait DataPlanePlugin: Send + Sync {
    fn info(&self) -> &'static PluginInfo;

    /// Checks the pair's `options` (from the inventory) before any request, with the same
    /// parser the plugin uses later. By default a plugin takes no options, so any key is refused.
    fn validate_options(&self, pair: &ResourcePair) -> Result<(), String> {
        match pair.target.options.keys().next() {
            Some(key) => Err(format!(
                "unknown option `{}`: the {} plugin takes no options",
                crate::inventory::escape_controls(key),
                self.info().name
            )),
            None => Ok(()),
        }
    }

    /// Checks, before any request, that every endpoint the plugin would send credentials to
    /// (from the pair's properties, or derived from its names) belongs to `cloud`.
    fn validate_endpoints(&self, _pair: &ResourcePair, _cloud: Cloud) -> Result<(), String> {
        Ok(())
    }

    /// Reads the source and the target and plans every item. Writes nothing: a dry run stops
    /// here.
    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError>;
}

/// A resource's plan: what the report shows of it, and what carries it out.
pub struct Plan {
    pub discovery: Discovery,
    pub apply: Box<dyn ApplyPlan>,
}

/// A plugin's typed plan of one resource, owning what planning built (clients, the source's
/// authorisation).
#[async_trait]
pub trait ApplyPlan: Send {
    /// Carries the plan out, reporting each item through `ctx.reporter`. One item's failure is
    /// reported and does not stop the others.
    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError>;

    /// Keeps only the items `keep` accepts (by kind and name): applying a plan file carries out
    /// only what it approved.
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that takes `ms` milliseconds and says so.
    async fn slow(ms: u64) -> &'static str {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        "done"
    }

    #[tokio::test]
    async fn an_item_started_before_a_cancellation_runs_to_its_end() {
        let cancel = CancellationToken::new();
        let slots = Semaphore::new(1);
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            canceller.cancel();
        });
        let outcome = run_in_slot(&cancel, &slots, Duration::from_secs(10), slow(200)).await;
        assert_eq!(outcome, Ok("done"));
        assert!(cancel.is_cancelled());
    }

    #[tokio::test]
    async fn an_item_still_going_after_the_grace_period_is_unconfirmed() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let slots = Semaphore::new(1);
        let started = std::time::Instant::now();
        // Cancelled before: the item does not even start.
        assert_eq!(
            run_in_slot(&cancel, &slots, Duration::from_millis(50), slow(0)).await,
            Err(Interrupted::BeforeStart)
        );
        // Cancelled while running: abandoned when the grace period ends, not before.
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move { canceller.cancel() });
        let outcome = run_in_slot(&cancel, &slots, Duration::from_millis(50), slow(60_000)).await;
        assert_eq!(outcome, Err(Interrupted::Unconfirmed));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(matches!(
            ItemStatus::from(Interrupted::Unconfirmed),
            ItemStatus::Failed { error } if error.contains("may or may not")
        ));
    }

    #[tokio::test]
    async fn an_item_waiting_for_a_slot_does_not_start_after_a_cancellation() {
        let cancel = CancellationToken::new();
        let slots = Semaphore::new(1);
        let held = slots.try_acquire().unwrap();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            canceller.cancel();
        });
        let started = std::sync::atomic::AtomicBool::new(false);
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            run_in_slot(&cancel, &slots, Duration::from_secs(10), async {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
            }),
        )
        .await;
        assert_eq!(outcome, Ok(Err(Interrupted::BeforeStart)));
        assert!(!started.load(std::sync::atomic::Ordering::SeqCst));
        drop(held);
    }
}
