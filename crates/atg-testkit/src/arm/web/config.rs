//! Microsoft.Web site configuration: `config/{appsettings|connectionstrings|azurestorageaccounts}`
//! (read by `POST .../list`, replaced whole by `PUT`), `config/slotConfigNames` and `config/web`.

use hyper::StatusCode;
use serde_json::{json, Value};

use super::{app_names, bad_request, config_web_template, fill};
use crate::arm::store::{self, merge, not_found, object_body, Resource};
use crate::arm::{ArmRequest, ArmState, ResourcePath};
use crate::http::ApiResponse;

/// Connection string types App Service accepts.
const CONNECTION_STRING_TYPES: &[&str] = &[
    "MySql",
    "SQLServer",
    "SQLAzure",
    "Custom",
    "NotificationHub",
    "ServiceBus",
    "EventHub",
    "ApiHub",
    "DocDb",
    "RedisCache",
    "PostgreSQL",
];

/// A configuration as the service answers it: `config/appsettings` and its kin by their name,
/// `config/web` named after the site, `config/slotConfigNames` with a null id.
pub(super) fn render_config(config: &Resource) -> Value {
    let names = app_names(&config.id);
    let (id, name, kind) = match config.name.to_ascii_lowercase().as_str() {
        "slotconfignames" => (Value::Null, json!(names.site), json!("Microsoft.Web/sites")),
        "web" => (
            json!(config.id),
            json!(names.site),
            json!("Microsoft.Web/sites/config"),
        ),
        _ => (
            json!(config.id),
            json!(config.name),
            json!("Microsoft.Web/sites/config"),
        ),
    };
    json!({
        "id": id,
        "name": name,
        "type": kind,
        "location": config.body["location"],
        "properties": config.body["properties"],
    })
}

pub(super) fn config_at<'a>(
    state: &'a ArmState,
    request: &ArmRequest<'_>,
) -> Result<&'a Resource, ApiResponse> {
    state
        .get(&request.path.resource().key())
        .ok_or_else(|| not_found(&request.path.resource()))
}

pub(super) fn read_config(state: &ArmState, request: &ArmRequest<'_>) -> ApiResponse {
    match config_at(state, request) {
        Ok(config) => ApiResponse::json(StatusCode::OK, &render_config(config))
            .with_header("etag", config.etag.clone()),
        Err(answer) => answer,
    }
}

/// Replaces the whole map (what the service does: a setting left out is deleted).
pub(super) fn put_map_config(
    state: &mut ArmState,
    request: &ArmRequest<'_>,
    name: &str,
) -> ApiResponse {
    let body = match object_body(request.http) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let Some(properties) = body["properties"].as_object().cloned() else {
        return bad_request("The parameter properties has an invalid value.");
    };
    for (key, value) in &properties {
        let valid = match name {
            "appsettings" => value.is_string(),
            "connectionstrings" => {
                value["value"].is_string()
                    && value["type"].as_str().is_some_and(|kind| {
                        CONNECTION_STRING_TYPES
                            .iter()
                            .any(|t| t.eq_ignore_ascii_case(kind))
                    })
            }
            _ => value.is_object(),
        };
        if !valid {
            return bad_request(&format!(
                "The parameter properties.{key} has an invalid value."
            ));
        }
    }
    write_properties(state, request, Value::Object(properties))
}

pub(super) fn write_properties(
    state: &mut ArmState,
    request: &ArmRequest<'_>,
    properties: Value,
) -> ApiResponse {
    let key = request.path.key();
    if let Err(answer) = state.check_preconditions(request.http, &key) {
        return answer;
    }
    let Some(config) = state.get_mut(&key) else {
        return not_found(&request.path);
    };
    config.body["properties"] = properties;
    config.etag = store::new_etag();
    let config = config.clone();
    ApiResponse::json(StatusCode::OK, &render_config(&config)).with_header("etag", config.etag)
}

/// PUT `config/slotConfigNames`: all three lists replaced, a missing one becomes empty.
pub(super) fn put_slot_config_names(state: &mut ArmState, request: &ArmRequest<'_>) -> ApiResponse {
    let body = match object_body(request.http) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let mut properties = json!({});
    for list in [
        "connectionStringNames",
        "appSettingNames",
        "azureStorageConfigNames",
    ] {
        let names = &body["properties"][list];
        if !(names.is_null()
            || names
                .as_array()
                .is_some_and(|names| names.iter().all(Value::is_string)))
        {
            return bad_request(&format!(
                "The parameter properties.{list} has an invalid value."
            ));
        }
        properties[list] = if names.is_null() {
            json!([])
        } else {
            names.clone()
        };
    }
    write_properties(state, request, properties)
}

/// PUT or PATCH `config/web`; the answer names the site (or slot), as recorded.
pub(super) fn write_config_web(
    state: &mut ArmState,
    request: &ArmRequest<'_>,
    app: &ResourcePath,
    patch: bool,
) -> ApiResponse {
    let body = match object_body(request.http) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let key = request.path.key();
    if let Err(answer) = state.check_preconditions(request.http, &key) {
        return answer;
    }
    let Some(config) = state.get_mut(&key) else {
        return not_found(&request.path);
    };
    let mut written = body["properties"].clone();
    // The service completes each virtual application with its `virtualDirectories`.
    for application in written["virtualApplications"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if application.get("virtualDirectories").is_none() {
            application["virtualDirectories"] = Value::Null;
        }
    }
    if patch {
        merge(&mut config.body["properties"], &written);
    } else {
        let mut properties = config_web_template();
        fill(&mut properties, &app_names(&config.id));
        merge(&mut properties, &written);
        config.body["properties"] = properties;
    }
    config.etag = store::new_etag();
    let names = app_names(&app.id());
    let kind = if names.slot.is_some() {
        "Microsoft.Web/sites/slots"
    } else {
        "Microsoft.Web/sites"
    };
    ApiResponse::json(
        StatusCode::OK,
        &json!({
            "id": names.id,
            "name": names.qualified,
            "type": kind,
            "location": config.body["location"],
            "properties": config.body["properties"],
        }),
    )
    .with_header("etag", config.etag.clone())
}
