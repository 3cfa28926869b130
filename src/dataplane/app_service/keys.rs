//! Function App keys (replication only): the host's function and system keys, and each
//! function's keys where the target has that function. A function exists only once its code
//! is deployed, which atg does not do: its keys are reported skipped with that remedy. The
//! master key is never copied (the target keeps its own admin credential).

use std::collections::BTreeMap;

use super::{by_name, item, Item, OwnedKeyOwner, Sides, Work, FUNCTION_KEY, HOST_KEY};
use crate::azure::arm::web;
use crate::azure::{AzureError, Sensitive};
use crate::dataplane::kit::{Decision, Existing, Newer};
use crate::dataplane::{Difference, OnConflict, PlannedAction, PluginError};

/// Host and function key items. A side whose keys cannot be read gives one failed item with the
/// cause, not a failed site: its settings are still copied.
pub(super) async fn plan(sides: &Sides, on_conflict: OnConflict) -> Result<Vec<Item>, PluginError> {
    let mut items = Vec::new();
    match host_keys(sides).await {
        Ok((source, target)) => {
            for (kind, source, target) in [
                ("functionKeys", &source.function_keys, &target.function_keys),
                ("systemKeys", &source.system_keys, &target.system_keys),
            ] {
                let owner = OwnedKeyOwner::Host(kind);
                items.extend(compare(HOST_KEY, kind, &owner, source, target, on_conflict));
            }
        }
        Err(error) => items.push(unreadable(HOST_KEY, "host", &error)),
    }
    let functions = match function_names(sides).await {
        Ok(functions) => functions,
        Err(error) => {
            items.push(unreadable(FUNCTION_KEY, "functions", &error));
            return Ok(items);
        }
    };
    let (source_functions, target_functions) = functions;
    for function in source_functions {
        let source = match web::function_keys(&sides.source, &sides.source_site, &function).await {
            Ok(keys) => keys,
            Err(error) => {
                items.push(unreadable(FUNCTION_KEY, &function, &error));
                continue;
            }
        };
        if !target_functions.contains(&function) {
            let reason = format!(
                "function `{function}` does not exist in the target: deploy the application code there (atg does not copy code), then run again"
            );
            items.extend(source.keys().map(|name| {
                let action = PlannedAction::Skip {
                    reason: reason.clone(),
                };
                item(
                    FUNCTION_KEY,
                    format!("{function}/{name}"),
                    action,
                    Vec::new(),
                    Work::Settled,
                )
                .decided_from(by_name(name, false))
            }));
            continue;
        }
        let target = match web::function_keys(&sides.target, &sides.target_site, &function).await {
            Ok(keys) => keys,
            Err(error) => {
                items.push(unreadable(FUNCTION_KEY, &function, &error));
                continue;
            }
        };
        let owner = OwnedKeyOwner::Function(function.clone());
        items.extend(compare(
            FUNCTION_KEY,
            &function,
            &owner,
            &source,
            &target,
            on_conflict,
        ));
    }
    Ok(items)
}

async fn host_keys(sides: &Sides) -> Result<(web::HostKeys, web::HostKeys), AzureError> {
    futures::try_join!(
        web::host_keys(&sides.source, &sides.source_site),
        web::host_keys(&sides.target, &sides.target_site),
    )
}

async fn function_names(sides: &Sides) -> Result<(Vec<String>, Vec<String>), AzureError> {
    futures::try_join!(
        web::functions(&sides.source, &sides.source_site),
        web::functions(&sides.target, &sides.target_site),
    )
}

/// One item per source key under `prefix`, decided against the target's key of that name.
fn compare(
    kind: &'static str,
    prefix: &str,
    owner: &OwnedKeyOwner,
    source: &BTreeMap<String, Sensitive>,
    target: &BTreeMap<String, Sensitive>,
    on_conflict: OnConflict,
) -> Vec<Item> {
    source
        .iter()
        .map(|(name, value)| {
            let existing = match target.get(name) {
                None => Existing::Absent,
                Some(held) if held == value => Existing::Identical,
                Some(_) => Existing::Differs(Newer::Unknown("keys carry no modification time")),
            };
            let what = format!("key `{prefix}/{name}`");
            let decision = Decision::new(on_conflict, &what, existing);
            let work = match decision {
                Decision::Write => Work::Key {
                    owner: owner.clone(),
                    name: name.clone(),
                    value: value.clone(),
                },
                _ => Work::Settled,
            };
            let action = decision.planned(target.contains_key(name), vec![Difference::Value]);
            item(kind, format!("{prefix}/{name}"), action, Vec::new(), work)
                .decided_from(by_name(name, target.contains_key(name)))
        })
        .collect()
}

/// A failed item for keys that could not be read.
fn unreadable(kind: &'static str, name: &str, error: &AzureError) -> Item {
    let action = PlannedAction::Fail {
        reason: format!("cannot read the keys: {error}"),
    };
    item(kind, name.to_owned(), action, Vec::new(), Work::Settled)
}
