//! Certificates: replication imports the backing PFX/PEM when the key is exportable; otherwise
//! (and in template mode) a certificate whose issuer is `Self`, or `Unknown` (it was imported),
//! is created self-signed from the source policy; certificates from a CA are skipped (atg
//! places no orders). A certificate owns the secret and the key of its name: it is never
//! written over a plain secret or key of that name in the target.

use std::collections::HashSet;

use std::future::Future;
use std::time::Duration;

use azure_core::http::Url;
use azure_security_keyvault_certificates::models::{
    Certificate, CertificateAttributes, CertificateOperation, CertificatePolicy,
    CertificateProperties, CreateCertificateParameters, ImportCertificateParameters,
    IssuerParameters,
};
use azure_security_keyvault_certificates::CertificateClient;
use azure_security_keyvault_secrets::models::SecretClientGetSecretOptions;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::super::kit::{self, Decision, PollError, Progress, Schedule};
use super::super::{
    Difference, ItemStatus, Job, Mode, OnConflict, PlannedAction, PlannedItem, PluginContext,
    PluginError,
};
use super::clients::{absent_on_404, failed, name_of, write_outcome, Listings, Vaults};
use super::deleted::{
    kept_changing, write_handling_deleted, DeletedNames, DeletedTrail, WriteResult, WRITE_ROUNDS,
};
use super::{decided, fingerprint, on_differs, CERTIFICATE};
use crate::azure::{AzureError, AzureErrorKind, Sensitive};

/// The certificate listings of both vaults.
pub(super) async fn listings(
    vaults: &Vaults,
) -> Result<Listings<CertificateProperties>, PluginError> {
    Listings::read(
        CERTIFICATE,
        vaults.source.certificates.list_certificate_properties(None),
        vaults.target.certificates.list_certificate_properties(None),
    )
    .await
}

/// `atg verify`: the target's certificates the source lacks.
pub(super) fn extras_in_target(listings: &Listings<CertificateProperties>) -> Vec<String> {
    listings.extras(|certificate| name_of(certificate.id.as_ref()), |_| true)
}

/// Plans every source certificate against the target's of the same name. `plain_secrets` and
/// `plain_keys` are the target's secrets and keys that are not certificate-backed (lowercase
/// names): a certificate is never written over them.
pub(super) async fn plan(
    job: &Job,
    vaults: &Vaults,
    listings: &Listings<CertificateProperties>,
    deleted: &DeletedNames,
    plain_secrets: &HashSet<String>,
    plain_keys: &HashSet<String>,
) -> Result<Vec<PlannedItem>, PluginError> {
    let paired = listings.paired(
        CERTIFICATE,
        |certificate| name_of(certificate.id.as_ref()),
        |certificate| certificate.id.as_ref(),
    )?;
    let mut items = Vec::with_capacity(paired.len());
    for (name, source, target) in paired {
        let lowercase = name.to_ascii_lowercase();
        let collision = match (
            plain_secrets.contains(&lowercase),
            plain_keys.contains(&lowercase),
        ) {
            (true, true) => Some("a secret and a key"),
            (true, false) => Some("a secret"),
            (false, true) => Some("a key"),
            (false, false) => None,
        };
        let action = if let Some(taken) = collision {
            name_taken(job.on_conflict, &name, taken).planned(true, Vec::new())
        } else if target.is_some() {
            CertificateCopy::plan_existing(vaults, job, &name).await
        } else {
            deleted.plan(CERTIFICATE, &name, job.on_deleted)
        };
        let fingerprint = fingerprint(
            source,
            target,
            |item: &CertificateProperties| item.attributes.as_ref().and_then(|a| a.updated),
            deleted.contains(CERTIFICATE, &name),
        );
        items.push(PlannedItem {
            kind: CERTIFICATE,
            name,
            action,
            notes: Vec::new(),
            fingerprint: Some(fingerprint),
        });
    }
    Ok(items)
}

/// A certificate `name` would take over the target's `taken` (a secret and/or a key of that
/// name that are not certificate-backed): Key Vault stores a certificate's key pair and value
/// as a key and a secret of its own name. Writing would replace the user's secret value (and
/// key) with the certificate's, so it is never done: skipped with `--on-conflict skip`, failed
/// otherwise (overwrite and if-source-newer included), with what to do.
fn name_taken(policy: OnConflict, name: &str, taken: &str) -> Decision {
    let reason = format!(
        "the target has {taken} named `{name}` that is not certificate-backed: a certificate of that name would replace it with its own; rename or delete it in the target, then run again"
    );
    match policy {
        OnConflict::Skip => Decision::Skip(format!("{reason} (--on-conflict skip)")),
        OnConflict::Fail | OnConflict::Overwrite | OnConflict::IfSourceNewer => {
            Decision::Fail(reason)
        }
    }
}

async fn get_certificate(
    client: &CertificateClient,
    name: &str,
) -> Result<Option<Certificate>, AzureError> {
    match absent_on_404(client.get_certificate(name, None).await)? {
        Some(response) => response.into_model().map(Some).map_err(AzureError::from),
        None => Ok(None),
    }
}

/// The source policy as it can be sent to another vault (no ids, no read-only fields).
fn portable_policy(policy: &CertificatePolicy) -> CertificatePolicy {
    let mut portable = policy.clone();
    portable.id = None;
    if let Some(attributes) = portable.attributes.as_mut() {
        attributes.created = None;
        attributes.updated = None;
        attributes.recoverable_days = None;
        attributes.recovery_level = None;
    }
    portable
}

/// The policy with its issuer set to `Self` (and nothing a CA would take), for a certificate
/// created self-signed where the source's was imported.
fn self_signed(policy: &CertificatePolicy) -> CertificatePolicy {
    let mut policy = policy.clone();
    let mut issuer = IssuerParameters::default();
    issuer.name = Some("Self".into());
    policy.issuer_parameters = Some(issuer);
    policy
}

fn certificate_attributes(source: &Certificate) -> CertificateAttributes {
    let mut attributes = CertificateAttributes::default();
    if let Some(a) = source.attributes.as_ref() {
        attributes.enabled = a.enabled;
    }
    attributes
}

fn policy_fingerprint(policy: Option<&CertificatePolicy>) -> String {
    let Some(policy) = policy else {
        return String::new();
    };
    let subject = policy
        .x509_certificate_properties
        .as_ref()
        .and_then(|x| x.subject.clone())
        .unwrap_or_default();
    let issuer = policy
        .issuer_parameters
        .as_ref()
        .and_then(|i| i.name.clone())
        .unwrap_or_default();
    let key = policy
        .key_properties
        .as_ref()
        .map(|k| {
            format!(
                "{:?}/{:?}/{:?}",
                k.key_type.as_ref().map(ToString::to_string),
                k.key_size,
                k.curve.as_ref().map(ToString::to_string)
            )
        })
        .unwrap_or_default();
    format!("{subject}|{issuer}|{key}")
}

/// How a source certificate is copied: imported with its key, or created self-signed from its
/// policy. Planning and applying decide it the same way.
struct CertificateCopy {
    source: Certificate,
    /// The policy the target certificate gets.
    policy: CertificatePolicy,
    /// Replication of an exportable certificate: imported with its private key.
    import: bool,
    /// An imported certificate (issuer `Unknown`) that is not imported as it is: created
    /// self-signed from its policy, like a `Self` one; never ordered.
    self_signed_from_import: bool,
}

impl CertificateCopy {
    /// Reads the source certificate and its policy; `Err` is the item's outcome when it cannot
    /// be copied (gone, unreadable, issued by a CA atg does not order from).
    async fn read(client: &CertificateClient, mode: Mode, name: &str) -> Result<Self, ItemStatus> {
        let source = match get_certificate(client, name).await {
            Ok(Some(certificate)) => certificate,
            Ok(None) => {
                return Err(ItemStatus::Skipped {
                    reason: "deleted from the source after discovery".into(),
                })
            }
            Err(error) => return Err(failed("read source certificate", &error)),
        };
        let policy = match source.policy.clone() {
            Some(policy) => policy,
            None => match client
                .get_certificate_policy(name, None)
                .await
                .and_then(azure_core::http::Response::into_model)
            {
                Ok(policy) => policy,
                Err(error) => return Err(failed("read source certificate policy", &error.into())),
            },
        };
        let issuer = policy
            .issuer_parameters
            .as_ref()
            .and_then(|i| i.name.clone())
            .unwrap_or_default();
        let exportable = policy
            .key_properties
            .as_ref()
            .and_then(|k| k.exportable)
            .unwrap_or(false);
        let import = mode == Mode::Replication && exportable;
        let self_signed_from_import = !import && issuer.eq_ignore_ascii_case("Unknown");
        let policy = if self_signed_from_import {
            self_signed(&policy)
        } else {
            policy
        };
        if !import && !self_signed_from_import && !issuer.eq_ignore_ascii_case("Self") {
            return Err(ItemStatus::Skipped {
                reason: format!(
                    "issued by `{issuer}`{}: atg places no certificate orders; request it in the target from the same policy",
                    if mode == Mode::Replication { " with a non-exportable key" } else { "" }
                ),
            });
        }
        Ok(CertificateCopy {
            source,
            policy,
            import,
            self_signed_from_import,
        })
    }

    /// Whether the target's certificate already is what the copy would make: the same
    /// certificate (imported), or one from the same policy (created).
    fn matches(&self, existing: &Certificate) -> bool {
        if self.import {
            existing.x509_thumbprint.is_some()
                && existing.x509_thumbprint == self.source.x509_thumbprint
        } else {
            policy_fingerprint(existing.policy.as_ref()) == policy_fingerprint(Some(&self.policy))
        }
    }

    /// The plan for a certificate the target holds under the same name.
    async fn plan_existing(vaults: &Vaults, job: &Job, name: &str) -> PlannedAction {
        let copy = match CertificateCopy::read(&vaults.source.certificates, job.mode, name).await {
            Ok(copy) => copy,
            Err(ItemStatus::Skipped { reason }) => return PlannedAction::Skip { reason },
            Err(ItemStatus::Failed { error }) => return PlannedAction::Fail { reason: error },
            Err(_) => return PlannedAction::Compare,
        };
        let existing = match get_certificate(&vaults.target.certificates, name).await {
            Ok(Some(existing)) => existing,
            Ok(None) => return PlannedAction::Create,
            Err(error) => {
                return PlannedAction::Fail {
                    reason: format!("read target certificate: {error}"),
                }
            }
        };
        if copy.matches(&existing) {
            return PlannedAction::Identical;
        }
        match decided(
            job.on_conflict,
            CERTIFICATE,
            PlannedAction::compared(vec![Difference::Certificate]),
        ) {
            // As apply: a made-up self-signed certificate never replaces a real one.
            PlannedAction::Overwrite { .. } if !copy.import => PlannedAction::Skip {
                reason: NO_SELF_SIGNED_OVER_EXISTING.into(),
            },
            planned => planned,
        }
    }
}

const NO_SELF_SIGNED_OVER_EXISTING: &str = "exists in the target and differs: a new self-signed certificate is never created over an existing one";

pub(super) async fn copy_certificate(
    ctx: &PluginContext,
    job: &Job,
    vaults: &Vaults,
    trail: &DeletedTrail,
    name: &str,
) -> ItemStatus {
    let copy = match CertificateCopy::read(&vaults.source.certificates, job.mode, name).await {
        Ok(copy) => copy,
        Err(status) => return status,
    };
    let CertificateCopy {
        source,
        policy,
        import,
        self_signed_from_import,
    } = &copy;
    let (import, self_signed_from_import) = (*import, *self_signed_from_import);
    let created = if self_signed_from_import {
        "new self-signed certificate from the source policy (the source was imported, issuer `Unknown`: issuer set to `Self`, no order placed)"
    } else {
        "new self-signed certificate from the source policy"
    };
    let written = || {
        if import {
            ItemStatus::Created {
                action: "imported with its private key".into(),
            }
        } else if job.mode == Mode::Replication {
            ItemStatus::Partial {
                action: created.into(),
                reason:
                    "the source key is not exportable: the target certificate has a new key pair"
                        .into(),
            }
        } else {
            ItemStatus::Created {
                action: created.into(),
            }
        }
    };
    let mut unconfirmed = false;
    let mut lost = None;
    for _ in 0..WRITE_ROUNDS {
        match get_certificate(&vaults.target.certificates, name).await {
            Ok(Some(existing)) => {
                if copy.matches(&existing) {
                    if unconfirmed {
                        return written();
                    }
                    return ItemStatus::Identical;
                }
                if let Some(status) = on_differs(job.on_conflict, CERTIFICATE) {
                    return status;
                }
                // Importing the source's own certificate over it copies real data (the previous
                // version is kept); a made-up self-signed one would replace a real certificate.
                if !import {
                    return ItemStatus::Skipped {
                        reason: NO_SELF_SIGNED_OVER_EXISTING.into(),
                    };
                }
            }
            Ok(None) => {}
            Err(error) => return failed("read target certificate", &error),
        }
        let result = if import {
            let Some(secret_id) = source.sid.clone() else {
                return ItemStatus::Failed {
                    error: "the source certificate has no backing secret id".into(),
                };
            };
            let version = Url::parse(&secret_id).ok().and_then(|u| {
                u.path_segments()
                    .and_then(|mut s| s.nth(2).map(str::to_owned))
            });
            let mut options = SecretClientGetSecretOptions::default();
            options.secret_version = version.filter(|v| !v.is_empty());
            let backing = match vaults
                .source
                .secrets
                .get_secret(name, Some(options))
                .await
                .and_then(azure_core::http::Response::into_model)
            {
                Ok(secret) => secret,
                Err(error) => {
                    return failed("read the certificate's backing secret", &error.into())
                }
            };
            let Some(value) = backing.value.map(Sensitive::new) else {
                return ItemStatus::Failed {
                    error: "the certificate's backing secret has no value".into(),
                };
            };
            let write = || import_certificate(vaults, name, &value, policy, source);
            write_handling_deleted(ctx, job, CERTIFICATE, name, vaults, trail, write).await
        } else {
            let write = || create_certificate(ctx, vaults, name, policy, source);
            write_handling_deleted(ctx, job, CERTIFICATE, name, vaults, trail, write).await
        };
        match result {
            Ok(WriteResult::Written | WriteResult::WrittenAfterPurge) => return written(),
            Ok(WriteResult::Recovered) => {}
            Ok(WriteResult::Unconfirmed(error)) => {
                unconfirmed = true;
                lost = Some(error);
            }
            Err(status) => return status,
        }
    }
    kept_changing("certificate", lost.as_ref())
}

async fn import_certificate(
    vaults: &Vaults,
    name: &str,
    value: &Sensitive,
    policy: &CertificatePolicy,
    source: &Certificate,
) -> Result<(), AzureError> {
    let mut parameters = ImportCertificateParameters::default();
    parameters.base64_encoded_certificate = Some(value.expose().to_owned());
    parameters.certificate_policy = Some(portable_policy(policy));
    parameters.certificate_attributes = Some(certificate_attributes(source));
    parameters.tags = source.tags.clone();
    let content = parameters.try_into().map_err(AzureError::from)?;
    write_outcome(
        vaults
            .target
            .certificates
            .import_certificate(name, content, None)
            .await,
    )
}

/// Asks the target to make a certificate from the policy, then waits for the creation to
/// complete (Key Vault makes it asynchronously), until `ctx.settle_timeout` or a cancellation.
async fn create_certificate(
    ctx: &PluginContext,
    vaults: &Vaults,
    name: &str,
    policy: &CertificatePolicy,
    source: &Certificate,
) -> Result<(), AzureError> {
    let mut parameters = CreateCertificateParameters::default();
    parameters.certificate_policy = Some(portable_policy(policy));
    parameters.certificate_attributes = Some(certificate_attributes(source));
    parameters.tags = source.tags.clone();
    let content = parameters.try_into().map_err(AzureError::from)?;
    let client = &vaults.target.certificates;
    // The poller's first item is the creation request's answer; the wait is ours (below).
    let requested = client
        .begin_create_certificate(name, content, None)
        .map_err(AzureError::from)?
        .next()
        .await
        .ok_or_else(|| {
            AzureError::new(
                AzureErrorKind::Other,
                "the certificate's creation request had no answer",
            )
        })?
        .and_then(azure_core::http::Response::into_model)
        .map_err(AzureError::from)?;
    let mut first = Some(requested);
    until_created(
        &ctx.cancel,
        Schedule::new(ctx.settle_timeout).pauses(Duration::from_secs(1), Duration::from_secs(5)),
        || {
            let answered = first.take();
            async move {
                match answered {
                    Some(operation) => Ok(operation),
                    None => client
                        .get_certificate_operation(name, None)
                        .await
                        .and_then(azure_core::http::Response::into_model)
                        .map_err(AzureError::from),
                }
            }
        },
    )
    .await
}

/// Looks at a certificate's creation operation (`look` reads it once) until it completes, fails,
/// the schedule's deadline passes or the run is cancelled. A look that fails transiently is
/// repeated.
async fn until_created<F, Fut>(
    cancel: &CancellationToken,
    schedule: Schedule,
    mut look: F,
) -> Result<(), AzureError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<CertificateOperation, AzureError>>,
{
    let creation = |what: String| AzureError::new(AzureErrorKind::Other, what);
    let waited = kit::poll_until(cancel, schedule, || {
        let looked = look();
        async move {
            let operation = match looked.await {
                Ok(operation) => operation,
                Err(error) if error.is_retryable() => {
                    return Ok(Progress::Pending { retry_after: None })
                }
                Err(error) => return Err(error),
            };
            match (operation.status.as_deref(), &operation.error) {
                (Some("completed"), _) => Ok(Progress::Done(())),
                (Some("cancelled"), _) => Err(creation(
                    "the certificate's creation was cancelled in the target".into(),
                )),
                (_, Some(error)) => Err(creation(format!(
                    "the certificate's creation failed in the target ({})",
                    error.code.as_deref().unwrap_or("no error code")
                ))),
                _ => Ok(Progress::Pending { retry_after: None }),
            }
        }
    })
    .await;
    match waited {
        Ok(()) => Ok(()),
        Err(PollError::Failed(error)) => Err(error),
        Err(PollError::TimedOut(waited)) => Err(creation(format!(
            "the certificate's creation was accepted and still in progress after {}s: the target may complete it; run again to compare",
            waited.as_secs()
        ))),
        Err(PollError::Cancelled) => Err(creation(
            "the certificate's creation was accepted, then the run was cancelled before it completed: run again to compare".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(deadline: Duration) -> Schedule {
        Schedule::new(deadline).pauses(Duration::from_millis(1), Duration::from_millis(5))
    }

    fn operation(status: &str) -> CertificateOperation {
        let mut operation = CertificateOperation::default();
        operation.status = Some(status.into());
        operation
    }

    #[tokio::test]
    async fn a_certificate_creation_is_waited_for_until_it_completes() {
        let mut looks = 0;
        let created = until_created(
            &CancellationToken::new(),
            fast(Duration::from_secs(60)),
            || {
                looks += 1;
                let look = looks;
                async move {
                    match look {
                        1 => Ok(operation("inProgress")),
                        2 => Err(AzureError::from_response(503, None, b"")),
                        _ => Ok(operation("completed")),
                    }
                }
            },
        )
        .await;
        assert!(created.is_ok(), "{created:?}");
        let mut failed = operation("failed");
        failed.error =
            Some(azure_security_keyvault_certificates::models::KeyVaultErrorError::default());
        let refused = until_created(
            &CancellationToken::new(),
            fast(Duration::from_secs(60)),
            || {
                let failed = failed.clone();
                async move { Ok(failed) }
            },
        )
        .await
        .unwrap_err();
        assert!(refused.to_string().contains("creation failed"), "{refused}");
    }

    #[tokio::test]
    async fn a_certificate_creation_wait_ends_at_its_deadline_or_a_cancellation() {
        let pending = || async { Ok(operation("inProgress")) };
        let cancel = CancellationToken::new();
        let late = tokio::time::timeout(
            Duration::from_secs(10),
            until_created(&cancel, fast(Duration::from_millis(30)), pending),
        )
        .await
        .expect("the wait outlived its deadline")
        .unwrap_err();
        assert!(late.to_string().contains("still in progress"), "{late}");
        cancel.cancel();
        let cancelled = tokio::time::timeout(
            Duration::from_secs(10),
            until_created(&cancel, fast(Duration::from_secs(60)), pending),
        )
        .await
        .expect("the wait outlived the cancellation")
        .unwrap_err();
        assert!(cancelled.to_string().contains("cancelled"), "{cancelled}");
    }
}
