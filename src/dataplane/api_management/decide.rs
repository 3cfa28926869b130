//! How one source entity is decided against the target's: what differs, the secrets read (or
//! not, in template mode), and what is written.

use azure_core::http::Method;
use serde_json::{Map, Value};

use super::entities::{self, Entity, BACKEND, NAMED_VALUE, SUBSCRIPTION};
use super::{backend, fingerprint, item, Item, Sides, Work, NO_TIME};
use crate::azure::arm::apim;
use crate::azure::{AzureError, Sensitive};
use crate::dataplane::app_service::key_vault_refs::{self, Rewrite, VaultPairs};
use crate::dataplane::kit::{Decision, Existing};
use crate::dataplane::{Difference, Job, Mode, PlannedAction, PluginContext, PluginError};

/// The plan of one source entity against the target's of the same path.
pub(super) async fn plan_entity(
    ctx: &PluginContext,
    job: &Job,
    sides: &Sides,
    vaults: &VaultPairs,
    mut source: Entity,
    target: Option<Entity>,
) -> Result<Item, PluginError> {
    let name = source.name();
    let mut notes = Vec::new();
    if source.kind == NAMED_VALUE {
        notes.extend(point_at_target_vault(&mut source.properties, vaults));
    }
    if source.kind == BACKEND && job.mode == Mode::Template {
        notes.extend(backend::template_credentials(
            &mut source.properties,
            target.as_ref().map(|target| &target.properties),
            ctx.placeholder,
        ));
    }
    let what = format!("{} {name}", source.kind);
    let decided_from = fingerprint::decided_from(&source, target.as_ref());
    if source.built_in {
        let action = match target {
            Some(_) => PlannedAction::Identical,
            None => PlannedAction::Skip {
                reason: format!("{what} is built into the source service and absent from the target's (another tier?)"),
            },
        };
        let mut planned =
            item(source.kind, name, action, Work::settled()).decided_from(decided_from);
        planned.item.notes.push(
            source
                .matched
                .unwrap_or_else(|| "built in: matched, not written".into()),
        );
        return Ok(planned);
    }
    let mut work = Work {
        path: source.path.clone(),
        stage: entities::of(source.kind).stage,
        method: Method::Put,
        properties: source.properties.clone(),
        secrets: Vec::new(),
        seen: target.as_ref().map(|target| target.properties.clone()),
    };
    let mut differs = Vec::new();
    if target.as_ref().is_some_and(|t| source.differs_from(t)) {
        differs.push(Difference::Attributes);
    }
    // A secret that cannot be read fails its item, not the whole service.
    let unreadable = |what: &str, error: AzureError| {
        let reason = format!("cannot read {what} of {name}: {error}");
        item(
            source.kind,
            name.clone(),
            PlannedAction::Fail { reason },
            Work::settled(),
        )
    };
    let id = source
        .path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match source.kind {
        NAMED_VALUE
            if source
                .properties
                .get("keyVault")
                .is_some_and(|kv| !kv.is_null()) =>
        {
            // Its value stays in the vault: nothing to read (see point_at_target_vault).
        }
        NAMED_VALUE if source.properties.get("secret") == Some(&Value::Bool(true)) => {
            match job.mode {
                Mode::Replication => {
                    let value = match apim::named_value(&sides.source, &sides.source_service, &id)
                        .await
                    {
                        Ok(value) => value,
                        Err(error) => return Ok(unreadable("the source's secret value", error)),
                    };
                    if target.is_some() {
                        let theirs = match apim::named_value(
                            &sides.target,
                            &sides.target_service,
                            &id,
                        )
                        .await
                        {
                            Ok(value) => value,
                            Err(error) => {
                                return Ok(unreadable("the target's secret value", error))
                            }
                        };
                        if theirs != value {
                            differs.push(Difference::Value);
                        }
                    }
                    work.secrets.push(("value", value));
                }
                Mode::Template if target.is_some() => {
                    // The target's value stays: PATCH leaves it.
                    work.method = Method::Patch;
                    notes.push("secret value not written (template): the target's is kept".into());
                }
                Mode::Template => {
                    work.secrets
                        .push(("value", Sensitive::new(ctx.placeholder)));
                    notes.push("secret value written as a placeholder (template)".into());
                }
            }
        }
        SUBSCRIPTION => match job.mode {
            Mode::Replication => {
                let keys = match apim::subscription_keys(&sides.source, &sides.source_service, &id)
                    .await
                {
                    Ok(keys) => keys,
                    Err(error) => return Ok(unreadable("the source's keys", error)),
                };
                if target.is_some() {
                    let theirs =
                        match apim::subscription_keys(&sides.target, &sides.target_service, &id)
                            .await
                        {
                            Ok(keys) => keys,
                            Err(error) => return Ok(unreadable("the target's keys", error)),
                        };
                    if theirs != keys {
                        differs.push(Difference::Value);
                    }
                }
                work.secrets.push(("primaryKey", keys.primary_key));
                work.secrets.push(("secondaryKey", keys.secondary_key));
            }
            Mode::Template if target.is_some() => {
                // The target's keys stay: PATCH sends none (a PUT without keys may make new ones).
                work.method = Method::Patch;
                notes.push("keys not written (template): the target's are kept".into());
            }
            Mode::Template => {
                notes.push("keys not copied (template): the service makes new ones".into());
            }
        },
        _ => {}
    }
    let existing = match (&target, differs.is_empty()) {
        (None, _) => Existing::Absent,
        (Some(_), true) => Existing::Identical,
        (Some(_), false) => Existing::Differs(NO_TIME),
    };
    let action = Decision::new(job.on_conflict, &what, existing).planned(target.is_some(), differs);
    let mut planned = item(source.kind, name, action, work).decided_from(decided_from);
    planned.item.notes = notes;
    Ok(planned)
}

/// Points a Key Vault-backed named value at the target vault paired in this run with the vault
/// it names (its value is never read); answers the note that says what became of it.
fn point_at_target_vault(
    properties: &mut Map<String, Value>,
    vaults: &VaultPairs,
) -> Option<String> {
    let identity = match properties.get("keyVault")?.get("identityClientId") {
        Some(Value::String(client_id)) => format!(
            "; it reads the vault as the user-assigned identity {client_id}: the target service needs one of that client id (or clear identityClientId for its system identity)"
        ),
        _ => String::new(),
    };
    let identifier = properties
        .get_mut("keyVault")?
        .get_mut("secretIdentifier")?;
    let uri = identifier.as_str()?.to_owned();
    let note = match key_vault_refs::target_secret_uri(&uri, vaults) {
        Rewrite::Rewritten { value, vault, dropped_version } => {
            *identifier = Value::String(value);
            let version = if dropped_version { " (version dropped: the target's secret has its own)" } else { "" };
            format!("Key Vault-backed: pointed at the paired target vault {vault}{version}; grant the target service's identity access to it")
        }
        Rewrite::Kept { vault } if !vault.is_empty() => format!(
            "Key Vault-backed: vault {vault} is not paired in this run: the reference is kept; grant the target service's identity access to it"
        ),
        _ => "Key Vault-backed: the reference is kept as it is".to_owned(),
    };
    Some(note + &identity)
}
