//! The site configuration that is data rather than infrastructure (`config/web`): the fields
//! in [`FIELDS`], written with one PATCH of those that differ. Runtime stacks, plans, network
//! restrictions (subnet ids of the source) and identities are the infrastructure's, not atg's.

use serde_json::{Map, Value};

use super::{if_present, item, read_both, Item, Scope, Sides, Work, SITE_CONFIG};
use crate::azure::arm::web;
use crate::dataplane::kit::{fingerprint, Decision, Existing, Newer};
use crate::dataplane::{Difference, OnConflict, PluginError};

/// The fields copied, as ARM names them.
const FIELDS: &[&str] = &[
    "alwaysOn",
    "defaultDocuments",
    "handlerMappings",
    "cors",
    "http20Enabled",
    "webSocketsEnabled",
    "minTlsVersion",
    "ftpsState",
    "requestTracingEnabled",
    "httpLoggingEnabled",
    "detailedErrorLoggingEnabled",
    "healthCheckPath",
    "appCommandLine",
];

/// The site-config item of one scope. A slot the target lacks is compared with nothing.
pub(super) async fn plan(
    sides: &Sides,
    scope: &Scope,
    in_target: bool,
    on_conflict: OnConflict,
) -> Result<Item, PluginError> {
    let target_path = scope.path(&sides.target_site);
    let (source, target) = read_both(
        format!("site configuration of {}", scope.label),
        web::site_config(&sides.source, &scope.path(&sides.source_site)),
        if_present(in_target, web::site_config(&sides.target, &target_path)),
    )
    .await?;
    let decided_from = fingerprint::shapes(
        &compared(&source),
        in_target.then(|| compared(&target)).as_ref(),
    );
    let fields = differing(&source, &target);
    let existing = if fields.is_empty() {
        Existing::Identical
    } else if in_target {
        Existing::Differs(Newer::Unknown(
            "the site configuration carries no modification time",
        ))
    } else {
        Existing::Absent
    };
    let what = format!("the site configuration of {}", scope.label);
    let decision = Decision::new(on_conflict, &what, existing);
    let notes = if fields.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "differs: {}",
            fields.keys().cloned().collect::<Vec<_>>().join(", ")
        )]
    };
    let work = match decision {
        Decision::Write => Work::SiteConfig {
            scope: scope.clone(),
            fields,
        },
        _ => Work::Settled,
    };
    let action = decision.planned(in_target, vec![Difference::Attributes]);
    Ok(item(SITE_CONFIG, scope.label.clone(), action, notes, work).decided_from(decided_from))
}

/// The copied fields a side sets (not null): what the decision compares.
fn compared(config: &Map<String, Value>) -> Value {
    FIELDS
        .iter()
        .filter_map(|field| {
            let value = config.get(*field).filter(|value| !value.is_null())?;
            Some(((*field).to_owned(), value.clone()))
        })
        .collect::<Map<String, Value>>()
        .into()
}

/// The copied fields the source sets (not null) and the target holds otherwise.
fn differing(source: &Map<String, Value>, target: &Map<String, Value>) -> Map<String, Value> {
    FIELDS
        .iter()
        .filter_map(|field| {
            let value = source.get(*field).filter(|value| !value.is_null())?;
            (target.get(*field) != Some(value)).then(|| ((*field).to_owned(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_data_fields_that_differ_are_patched() {
        let source = json!({
            "alwaysOn": true, "defaultDocuments": ["index.html"], "cors": {"allowedOrigins": ["https://a"]},
            "linuxFxVersion": "NODE|20", "ipSecurityRestrictions": [{"vnetSubnetResourceId": "/subscriptions/src"}],
            "healthCheckPath": null, "http20Enabled": false,
        });
        let target =
            json!({"alwaysOn": false, "defaultDocuments": ["index.html"], "http20Enabled": false});
        let fields = differing(source.as_object().unwrap(), target.as_object().unwrap());
        assert_eq!(
            Value::Object(fields),
            json!({"alwaysOn": true, "cors": {"allowedOrigins": ["https://a"]}})
        );
    }
}
