//! Soft-delete in the target: the names deleted there (so a plan can say what `--on-deleted`
//! will do), recovering or purging a name a write ran into, and the write rounds that follow
//! (a recovery or a lost answer makes the item be compared again). The waits for the service to
//! settle go through [`kit::poll_until`]: a deadline from `ctx.settle_timeout`, and cancellation.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::super::kit::{self, PollError, Progress, Schedule};
use super::super::{ItemStatus, Job, OnDeleted, PlannedAction, PluginContext, PluginError};
use super::clients::{
    absent_on_404, failed, is_being_recovered_or_purged, is_deleted_conflict, is_lost_answer,
    list_all, name_of, write_outcome, VaultClients, Vaults,
};
use super::{KEY, SECRET};
use crate::azure::AzureError;

/// Names soft-deleted in the target, by kind (lowercase), so a dry run can plan what
/// `--on-deleted` will do with them.
#[derive(Default)]
pub(super) struct DeletedNames {
    secrets: HashSet<String>,
    keys: HashSet<String>,
    certificates: HashSet<String>,
    /// Why the deleted items could not be listed (then they are found when written, as before).
    pub unlisted: Option<String>,
}

impl DeletedNames {
    pub async fn list(target: &VaultClients) -> Result<Self, PluginError> {
        fn names<'a>(ids: impl Iterator<Item = Option<&'a String>>) -> HashSet<String> {
            ids.filter_map(name_of)
                .map(|n| n.to_ascii_lowercase())
                .collect()
        }
        let listed = async {
            let secrets = list_all(
                target.secrets.list_deleted_secret_properties(None),
                "list the target's deleted secrets",
            )
            .await?;
            let keys = list_all(
                target.keys.list_deleted_key_properties(None),
                "list the target's deleted keys",
            )
            .await?;
            let certificates = list_all(
                target
                    .certificates
                    .list_deleted_certificate_properties(None),
                "list the target's deleted certificates",
            )
            .await?;
            Ok::<_, PluginError>(DeletedNames {
                secrets: names(secrets.iter().map(|s| s.id.as_ref())),
                keys: names(keys.iter().map(|k| k.kid.as_ref())),
                certificates: names(certificates.iter().map(|c| c.id.as_ref())),
                unlisted: None,
            })
        };
        match listed.await {
            Ok(names) => Ok(names),
            // Listing deleted items needs its own permission (`list` on deleted objects); without
            // it, a deleted name is still found and handled when it is written.
            Err(PluginError::Azure { operation, source }) if source.status == Some(403) => {
                Ok(DeletedNames {
                    unlisted: Some(format!(
                        "{operation}: forbidden; names soft-deleted in the target are planned `create` and handled per --on-deleted when written"
                    )),
                    ..DeletedNames::default()
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Whether the target holds `name` soft-deleted.
    pub fn contains(&self, kind: &str, name: &str) -> bool {
        let names = match kind {
            SECRET => &self.secrets,
            KEY => &self.keys,
            _ => &self.certificates,
        };
        names.contains(&name.to_ascii_lowercase())
    }

    /// The plan for a name absent from the target: created, or `--on-deleted`'s action when
    /// the name is soft-deleted there.
    pub fn plan(&self, kind: &str, name: &str, policy: OnDeleted) -> PlannedAction {
        if !self.contains(kind, name) {
            return PlannedAction::Create;
        }
        match policy {
            OnDeleted::Recover => PlannedAction::Recover,
            OnDeleted::Purge => PlannedAction::Purge,
            OnDeleted::Fail => PlannedAction::Fail {
                reason: deleted_refused(kind),
            },
        }
    }
}

pub(super) fn deleted_refused(kind: &str) -> String {
    format!("the {kind} name is deleted but recoverable in the target (--on-deleted fail)")
}

/// What `--on-deleted` did to an item's name in the target on the way, so the item's one
/// outcome says so.
#[derive(Default)]
pub(super) struct DeletedTrail {
    recovered: AtomicBool,
    purged: AtomicBool,
}

impl DeletedTrail {
    pub fn outcome(&self, status: ItemStatus) -> ItemStatus {
        if self.recovered.load(Ordering::Relaxed) {
            match status {
                ItemStatus::Skipped { reason } => ItemStatus::Recovered {
                    action: format!("recovered, then left as it was: {reason}"),
                },
                ItemStatus::Identical => ItemStatus::Recovered {
                    action: "recovered, then left as it was: identical in the target".into(),
                },
                ItemStatus::Created { action } | ItemStatus::Overwritten { action } => {
                    ItemStatus::Recovered {
                        action: format!("recovered, then overwritten: {action}"),
                    }
                }
                ItemStatus::Partial { action, reason } => ItemStatus::Partial {
                    action: format!("recovered, then {action}"),
                    reason,
                },
                ItemStatus::Failed { error } => ItemStatus::Failed {
                    error: format!("recovered, then failed: {error}"),
                },
                other => other,
            }
        } else if self.purged.load(Ordering::Relaxed) {
            match status {
                ItemStatus::Created { action } => ItemStatus::Created {
                    action: format!("the deleted item purged, then {action}"),
                },
                ItemStatus::Partial { action, reason } => ItemStatus::Partial {
                    action: format!("the deleted item purged, then {action}"),
                    reason,
                },
                other => other,
            }
        } else {
            status
        }
    }
}

/// What happened when the name turned out to be soft-deleted in the target.
enum DeletedOutcome {
    /// Recovered: the item exists again and must be compared before writing.
    Recovered,
    /// Purged: the name is free, write again.
    Purged,
}

/// The first pause and the longest between two looks at a recovery settling, and between two
/// writes while a purged name is still in use.
const RECOVERY_PAUSES: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));
const PURGE_PAUSES: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(5));

fn settle_schedule(deadline: Duration, (first, max): (Duration, Duration)) -> Schedule {
    Schedule::new(deadline).pauses(first, max)
}

/// Applies `--on-deleted` to a name that is deleted but recoverable in the target.
async fn resolve_deleted(
    ctx: &PluginContext,
    policy: OnDeleted,
    kind: &str,
    name: &str,
    vaults: &Vaults,
) -> Result<DeletedOutcome, ItemStatus> {
    let target = &vaults.target;
    match policy {
        OnDeleted::Fail => Err(ItemStatus::Failed {
            error: deleted_refused(kind),
        }),
        OnDeleted::Recover => {
            let result = match kind {
                SECRET => write_outcome(target.secrets.recover_deleted_secret(name, None).await),
                KEY => write_outcome(target.keys.recover_deleted_key(name, None).await),
                _ => write_outcome(
                    target
                        .certificates
                        .recover_deleted_certificate(name, None)
                        .await,
                ),
            };
            // The retry policy resends a recovery whose answer was lost; when the first one took
            // effect the resend finds nothing deleted (404) or the name busy (409). Whether the
            // item is back is what the read-back below tells.
            let unanswered = match result {
                Ok(()) => None,
                Err(error) => {
                    if !(error.is_not_found()
                        || error.status == Some(409)
                        || is_lost_answer(&error))
                    {
                        return Err(failed("recover the deleted item in the target", &error));
                    }
                    Some(error)
                }
            };
            let present = || async move {
                match kind {
                    SECRET => absent_on_404(target.secrets.get_secret(name, None).await)
                        .map(|o| o.is_some()),
                    KEY => {
                        absent_on_404(target.keys.get_key(name, None).await).map(|o| o.is_some())
                    }
                    _ => absent_on_404(target.certificates.get_certificate(name, None).await)
                        .map(|o| o.is_some()),
                }
            };
            until_recovered(
                &ctx.cancel,
                settle_schedule(ctx.settle_timeout, RECOVERY_PAUSES),
                unanswered.as_ref(),
                present,
            )
            .await
        }
        OnDeleted::Purge => {
            let result = match kind {
                SECRET => write_outcome(target.secrets.purge_deleted_secret(name, None).await),
                KEY => write_outcome(target.keys.purge_deleted_key(name, None).await),
                _ => write_outcome(
                    target
                        .certificates
                        .purge_deleted_certificate(name, None)
                        .await,
                ),
            };
            match result {
                Ok(()) => Ok(DeletedOutcome::Purged),
                // A resent purge whose first answer was lost after it took effect.
                Err(error) if error.is_not_found() => Ok(DeletedOutcome::Purged),
                Err(error) => Err(failed("purge the deleted item in the target", &error)),
            }
        }
    }
}

/// Recovery is eventually consistent: waits until the item reads back (`present` looks once),
/// until the schedule's deadline, or until the run is cancelled. `unanswered` is the
/// recovery's own error when its answer was lost or a resend found the work done.
async fn until_recovered<F, Fut>(
    cancel: &CancellationToken,
    schedule: Schedule,
    unanswered: Option<&AzureError>,
    mut present: F,
) -> Result<DeletedOutcome, ItemStatus>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, AzureError>>,
{
    let waited = kit::poll_until(cancel, schedule, || {
        let look = present();
        async move {
            match look.await {
                Ok(true) => Ok(Progress::Done(())),
                // A recovered but disabled secret answers 403 on get: it is back.
                Err(error) if error.status == Some(403) => Ok(Progress::Done(())),
                Ok(false) => Ok(Progress::Pending { retry_after: None }),
                Err(error) if error.is_retryable() => Ok(Progress::Pending { retry_after: None }),
                Err(error) => Err(error),
            }
        }
    })
    .await;
    match waited {
        Ok(()) => Ok(DeletedOutcome::Recovered),
        Err(PollError::Failed(error)) => Err(failed("read the recovered item", &error)),
        Err(PollError::TimedOut(_)) => Err(match unanswered {
            Some(error) => failed("recover the deleted item in the target", error),
            None => ItemStatus::Failed {
                error: "recovered item did not become readable in time".into(),
            },
        }),
        Err(PollError::Cancelled) => Err(ItemStatus::Failed {
            error: "the recovery was sent, then the run was cancelled before the item became readable: run again to compare".into(),
        }),
    }
}

/// Runs a write, handling a soft-deleted name per policy. `write` is retried after a purge
/// while the service still reports the name in use (it settles within seconds).
pub(super) async fn write_handling_deleted<F, Fut>(
    ctx: &PluginContext,
    job: &Job,
    kind: &str,
    name: &str,
    vaults: &Vaults,
    trail: &DeletedTrail,
    write: F,
) -> Result<WriteResult, ItemStatus>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), AzureError>>,
{
    match write().await {
        Ok(()) => Ok(WriteResult::Written),
        Err(error) if is_deleted_conflict(&error) => {
            match resolve_deleted(ctx, job.on_deleted, kind, name, vaults).await? {
                DeletedOutcome::Recovered => {
                    trail.recovered.store(true, Ordering::Relaxed);
                    Ok(WriteResult::Recovered)
                }
                DeletedOutcome::Purged => {
                    trail.purged.store(true, Ordering::Relaxed);
                    write_after_purge(
                        &ctx.cancel,
                        settle_schedule(ctx.settle_timeout, PURGE_PAUSES),
                        write,
                    )
                    .await
                }
            }
        }
        // The answer was lost (reset, 5xx, timeout): the write may have taken effect, and the
        // retry policy does not resend writes that add a version. The caller compares again.
        Err(error) if is_lost_answer(&error) => {
            tokio::time::sleep(LOST_ANSWER_PAUSE).await;
            Ok(WriteResult::Unconfirmed(error))
        }
        Err(error) => Err(failed(&format!("write {kind}"), &error)),
    }
}

/// Writes again after a purge while the service still has the name in use (409), until the
/// schedule's deadline or a cancellation.
async fn write_after_purge<F, Fut>(
    cancel: &CancellationToken,
    schedule: Schedule,
    write: F,
) -> Result<WriteResult, ItemStatus>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), AzureError>>,
{
    // The name's last refusal, for the failure when it is still in use at the deadline.
    let busy = Mutex::new(None);
    let written = kit::poll_until(cancel, schedule, || {
        let attempt = write();
        let busy = &busy;
        async move {
            match attempt.await {
                Ok(()) => Ok(Progress::Done(WriteResult::WrittenAfterPurge)),
                Err(error) if is_being_recovered_or_purged(&error) => {
                    *busy
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
                    Ok(Progress::Pending { retry_after: None })
                }
                // A lost answer, as for any write: the caller compares again.
                Err(error) if is_lost_answer(&error) => {
                    tokio::time::sleep(LOST_ANSWER_PAUSE).await;
                    Ok(Progress::Done(WriteResult::Unconfirmed(error)))
                }
                Err(error) => Err(error),
            }
        }
    })
    .await;
    match written {
        Ok(result) => Ok(result),
        Err(PollError::Failed(error)) => Err(failed("write after purge", &error)),
        Err(PollError::TimedOut(waited)) => Err(
            match busy
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
            {
                Some(error) => failed("write after purge", &error),
                None => ItemStatus::Failed {
                    error: format!(
                        "write after purge: the name was still in use after {}s",
                        waited.as_secs()
                    ),
                },
            },
        ),
        Err(PollError::Cancelled) => Err(ItemStatus::Failed {
            error: "the run was cancelled while the purged name was still in use: nothing written"
                .into(),
        }),
    }
}

/// How often an item is compared and written: a recovery or a lost answer each cost a round.
pub(super) const WRITE_ROUNDS: usize = 5;
const LOST_ANSWER_PAUSE: Duration = Duration::from_millis(500);

pub(super) enum WriteResult {
    Written,
    WrittenAfterPurge,
    /// The name was recovered instead of written; the caller compares again.
    Recovered,
    /// The write's answer was lost (the error that lost it); the caller compares again and,
    /// when the target now holds what was written, reports it written rather than writing a
    /// second version.
    Unconfirmed(AzureError),
}

/// The failure when `WRITE_ROUNDS` ran out, with the last lost answer's error (its status) if
/// a round lost one.
pub(super) fn kept_changing(what: &str, lost: Option<&AzureError>) -> ItemStatus {
    let error = match lost {
        Some(error) => format!(
            "the {what} kept changing state in the target (the last write's answer was lost: {error})"
        ),
        None => format!("the {what} kept changing state in the target"),
    };
    ItemStatus::Failed { error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_write_rounds_reports_the_last_lost_answer() {
        let lost = AzureError::from_response(503, None, b"");
        let ItemStatus::Failed { error } = kept_changing("secret", Some(&lost)) else {
            panic!("not a failure");
        };
        assert!(error.starts_with("the secret kept changing state in the target"));
        assert!(error.contains("503"), "{error}");
        let ItemStatus::Failed { error } = kept_changing("key", None) else {
            panic!("not a failure");
        };
        assert_eq!(error, "the key kept changing state in the target");
    }

    #[test]
    fn a_recovered_item_has_one_outcome_that_says_what_followed() {
        let recovered = DeletedTrail::default();
        recovered.recovered.store(true, Ordering::Relaxed);
        let outcome = |status| recovered.outcome(status);
        assert_eq!(
            outcome(ItemStatus::Identical),
            ItemStatus::Recovered {
                action: "recovered, then left as it was: identical in the target".into()
            }
        );
        assert_eq!(
            outcome(ItemStatus::Created {
                action: "value copied".into()
            }),
            ItemStatus::Recovered {
                action: "recovered, then overwritten: value copied".into()
            }
        );
        // What could not be copied stays visible: partial, and failed, keep their status.
        assert!(matches!(
            outcome(ItemStatus::Partial { action: "metadata updated".into(), reason: "disabled".into() }),
            ItemStatus::Partial { action, reason } if action == "recovered, then metadata updated" && reason == "disabled"
        ));
        assert!(matches!(
            outcome(ItemStatus::Failed { error: "write secret: 500".into() }),
            ItemStatus::Failed { error } if error == "recovered, then failed: write secret: 500"
        ));
        let untouched = DeletedTrail::default();
        assert_eq!(
            untouched.outcome(ItemStatus::Identical),
            ItemStatus::Identical
        );
    }

    fn fast(deadline: Duration) -> Schedule {
        Schedule::new(deadline).pauses(Duration::from_millis(1), Duration::from_millis(5))
    }

    fn error_text(result: Result<impl Sized, ItemStatus>) -> String {
        match result {
            Err(ItemStatus::Failed { error }) => error,
            Err(other) => panic!("expected a failure, got {other:?}"),
            Ok(_) => panic!("expected a failure, got a success"),
        }
    }

    #[tokio::test]
    async fn a_recovery_wait_ends_when_the_run_is_cancelled() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let started = std::time::Instant::now();
        let waited = tokio::time::timeout(
            Duration::from_secs(10),
            until_recovered(&cancel, fast(Duration::from_secs(60)), None, || async {
                Ok(false)
            }),
        )
        .await
        .expect("the wait outlived the cancellation");
        assert!(error_text(waited).contains("cancelled"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_recovery_wait_ends_at_its_deadline_naming_the_recovery_answer() {
        let cancel = CancellationToken::new();
        let absent = || async { Ok(false) };
        let waited = until_recovered(&cancel, fast(Duration::from_millis(30)), None, absent).await;
        assert_eq!(
            error_text(waited),
            "recovered item did not become readable in time"
        );
        let lost = AzureError::from_response(503, None, b"");
        let waited = until_recovered(
            &cancel,
            fast(Duration::from_millis(30)),
            Some(&lost),
            absent,
        )
        .await;
        let error = error_text(waited);
        assert!(
            error.starts_with("recover the deleted item in the target: ") && error.contains("503"),
            "{error}"
        );
        // Back, but disabled (403 on get), or back after a look that failed transiently.
        let mut looks = 0;
        let recovered = until_recovered(&cancel, fast(Duration::from_secs(60)), None, || {
            looks += 1;
            let look = looks;
            async move {
                Err(AzureError::from_response(
                    if look == 1 { 503 } else { 403 },
                    None,
                    b"",
                ))
            }
        })
        .await;
        assert!(matches!(recovered, Ok(DeletedOutcome::Recovered)));
    }

    #[tokio::test]
    async fn a_write_after_a_purge_waits_for_the_name_until_its_deadline_or_a_cancellation() {
        let busy = || async { Err(AzureError::from_response(409, None, b"")) };
        let cancel = CancellationToken::new();
        let written = write_after_purge(&cancel, fast(Duration::from_millis(30)), busy).await;
        let error = error_text(written);
        assert!(
            error.starts_with("write after purge: ") && error.contains("409"),
            "{error}"
        );
        cancel.cancel();
        let written = tokio::time::timeout(
            Duration::from_secs(10),
            write_after_purge(&cancel, fast(Duration::from_secs(60)), busy),
        )
        .await
        .expect("the wait outlived the cancellation");
        assert!(error_text(written).contains("cancelled"));
        let free = || async { Ok(()) };
        let written = write_after_purge(&cancel, fast(Duration::from_secs(60)), free).await;
        assert!(matches!(written, Ok(WriteResult::WrittenAfterPurge)));
    }
}
