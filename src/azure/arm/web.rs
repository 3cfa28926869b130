//! Microsoft.Web through ARM (App Service and Function Apps): the calls the app-service plugin
//! makes and their models, at the api-version atg pins. Config writes answer at once (200);
//! only a slot's creation may run as an operation.
//!
//! 2024-11-01: a stable version (the shared recordings use 2022-03-01 and 2023-01-01, the
//! specification's examples 2025-03-01; the routes and shapes used here are the same in all).
//!
//! A `scope` is a site id or a slot id (`{site}/slots/{slot}`): every config call has both.
//! The `config/*/list`, `host/default/listkeys` and `functions/{name}/listkeys` POSTs only read,
//! and say so. Settings, connection strings and keys are secrets: they live in [`Sensitive`],
//! and a document that does not parse is reported without serde's message (which can quote a
//! value).

use std::collections::BTreeMap;

use azure_core::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::ArmClient;
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

/// Microsoft.Web api-version.
pub const API_VERSION: &str = "2024-11-01";

/// A connection string and its type (`SQLAzure`, `Custom`, `RedisCache` ...).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ConnectionString {
    pub value: Sensitive,
    #[serde(rename = "type")]
    pub kind: String,
}

/// Setting and connection-string names that stay with their slot on a swap (site level only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlotConfigNames {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub app_setting_names: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub connection_string_names: Vec<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub azure_storage_config_names: Vec<String>,
}

/// What atg reads of a site or slot.
#[derive(Clone, Debug, Default)]
pub struct SiteInfo {
    pub location: String,
    /// `app`, `app,linux`, `functionapp`, `functionapp,linux` ...
    pub kind: String,
    pub server_farm_id: Option<String>,
}

impl SiteInfo {
    pub fn is_function_app(&self) -> bool {
        self.kind.to_ascii_lowercase().contains("functionapp")
    }
}

/// A Function App's host keys (`host/default/listkeys`). The master key is not held: atg never
/// copies it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostKeys {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub function_keys: BTreeMap<String, Sensitive>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub system_keys: BTreeMap<String, Sensitive>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn url(scope: &str, rest: &str) -> String {
    format!(
        "{}{rest}?api-version={API_VERSION}",
        scope.trim_end_matches('/')
    )
}

/// Reads `body` as `T`; on failure names `what`, never serde's message.
fn parse<T: serde::de::DeserializeOwned>(body: Value, what: &str) -> Result<T, AzureError> {
    serde_json::from_value(body).map_err(|_| {
        AzureError::new(
            AzureErrorKind::Other,
            format!("{what} answered an unexpected document"),
        )
    })
}

fn properties(body: Value) -> Value {
    match body {
        Value::Object(mut object) => object.remove("properties").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The scope's app settings (`POST config/appsettings/list`).
pub async fn app_settings(
    arm: &ArmClient,
    scope: &str,
) -> Result<BTreeMap<String, Sensitive>, AzureError> {
    let body = arm
        .post_read(&url(scope, "/config/appsettings/list"))
        .await?;
    Ok(parse::<Option<_>>(properties(body), "config/appsettings/list")?.unwrap_or_default())
}

/// Replaces the scope's app settings with `settings` (the whole map: a name left out is deleted).
pub async fn put_app_settings(
    arm: &ArmClient,
    scope: &str,
    settings: &BTreeMap<String, Sensitive>,
) -> Result<(), AzureError> {
    let map: Map<String, Value> = settings
        .iter()
        .map(|(name, value)| (name.clone(), Value::String(value.expose().to_owned())))
        .collect();
    arm.call(
        Method::Put,
        &url(scope, "/config/appsettings"),
        Some(&json!({ "properties": map })),
    )
    .await
    .map(drop)
}

/// The scope's connection strings with their types (`POST config/connectionstrings/list`).
pub async fn connection_strings(
    arm: &ArmClient,
    scope: &str,
) -> Result<BTreeMap<String, ConnectionString>, AzureError> {
    let body = arm
        .post_read(&url(scope, "/config/connectionstrings/list"))
        .await?;
    Ok(parse::<Option<_>>(properties(body), "config/connectionstrings/list")?.unwrap_or_default())
}

/// Replaces the scope's connection strings with `strings` (the whole map).
pub async fn put_connection_strings(
    arm: &ArmClient,
    scope: &str,
    strings: &BTreeMap<String, ConnectionString>,
) -> Result<(), AzureError> {
    let map: Map<String, Value> = strings
        .iter()
        .map(|(name, string)| {
            (
                name.clone(),
                json!({ "value": string.value.expose(), "type": string.kind }),
            )
        })
        .collect();
    arm.call(
        Method::Put,
        &url(scope, "/config/connectionstrings"),
        Some(&json!({ "properties": map })),
    )
    .await
    .map(drop)
}

/// The site's sticky names (`GET config/slotConfigNames`).
pub async fn slot_config_names(arm: &ArmClient, site: &str) -> Result<SlotConfigNames, AzureError> {
    let body = arm.get(&url(site, "/config/slotConfigNames")).await?;
    Ok(parse::<Option<_>>(properties(body), "config/slotConfigNames")?.unwrap_or_default())
}

pub async fn put_slot_config_names(
    arm: &ArmClient,
    site: &str,
    names: &SlotConfigNames,
) -> Result<(), AzureError> {
    arm.call(
        Method::Put,
        &url(site, "/config/slotConfigNames"),
        Some(&json!({ "properties": names })),
    )
    .await
    .map(drop)
}

/// The scope's site configuration (`GET config/web`), its `properties`.
pub async fn site_config(arm: &ArmClient, scope: &str) -> Result<Map<String, Value>, AzureError> {
    let body = arm.get(&url(scope, "/config/web")).await?;
    Ok(parse::<Option<_>>(properties(body), "config/web")?.unwrap_or_default())
}

/// Changes the given fields of the scope's site configuration (`PATCH config/web`).
pub async fn patch_site_config(
    arm: &ArmClient,
    scope: &str,
    fields: &Map<String, Value>,
) -> Result<(), AzureError> {
    arm.call(
        Method::Patch,
        &url(scope, "/config/web"),
        Some(&json!({ "properties": fields })),
    )
    .await
    .map(drop)
}

/// Location, kind and plan of a site or slot.
pub async fn site(arm: &ArmClient, scope: &str) -> Result<SiteInfo, AzureError> {
    let body = arm.get(&url(scope, "")).await?;
    Ok(SiteInfo {
        location: body
            .get("location")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        kind: body
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        server_farm_id: body
            .pointer("/properties/serverFarmId")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The last segment of a child's `name` (`site/staging` → `staging`).
fn short_name(item: &Value) -> Option<String> {
    item.get("name")
        .and_then(Value::as_str)
        .and_then(|name| name.rsplit('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// Names of the children listed at `rest` (`/slots`, `/functions`), every page.
async fn child_names(arm: &ArmClient, scope: &str, rest: &str) -> Result<Vec<String>, AzureError> {
    let mut names = Vec::new();
    arm.list_pages(&url(scope, rest), |items| {
        names.extend(items.iter().filter_map(short_name));
        Ok(())
    })
    .await?;
    names.sort();
    Ok(names)
}

/// The site's deployment slots, by short name.
pub async fn slots(arm: &ArmClient, site: &str) -> Result<Vec<String>, AzureError> {
    child_names(arm, site, "/slots").await
}

/// Creates slot `slot` of `site` on the site's plan, in its location, without content.
pub async fn create_slot(
    arm: &ArmClient,
    site: &str,
    slot: &str,
    on: &SiteInfo,
) -> Result<(), AzureError> {
    let mut properties = Map::new();
    if let Some(plan) = &on.server_farm_id {
        properties.insert("serverFarmId".into(), Value::String(plan.clone()));
    }
    arm.call_and_wait(
        Method::Put,
        &url(site, &format!("/slots/{slot}")),
        Some(&json!({ "location": on.location, "kind": on.kind, "properties": properties })),
    )
    .await
    .map(drop)
}

/// A Function App's functions, by name.
pub async fn functions(arm: &ArmClient, site: &str) -> Result<Vec<String>, AzureError> {
    child_names(arm, site, "/functions").await
}

/// A Function App's host keys (`POST host/default/listkeys`).
pub async fn host_keys(arm: &ArmClient, site: &str) -> Result<HostKeys, AzureError> {
    let body = arm.post_read(&url(site, "/host/default/listkeys")).await?;
    parse(body, "host/default/listkeys")
}

/// One function's keys (`POST functions/{function}/listkeys`).
pub async fn function_keys(
    arm: &ArmClient,
    site: &str,
    function: &str,
) -> Result<BTreeMap<String, Sensitive>, AzureError> {
    let body = arm
        .post_read(&url(site, &format!("/functions/{function}/listkeys")))
        .await?;
    // The answer is the map itself, or (newer versions) the map in `properties`.
    let map = match properties(body.clone()) {
        Value::Null => body,
        inner => inner,
    };
    parse::<Option<_>>(map, "functions/listkeys").map(Option::unwrap_or_default)
}

/// Which key a [`put_key`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOwner<'a> {
    /// A host key: `functionKeys` or `systemKeys`.
    Host(&'a str),
    Function(&'a str),
}

/// Writes one key (`PUT host/default/{kind}/{name}` or `PUT functions/{fn}/keys/{name}`).
pub async fn put_key(
    arm: &ArmClient,
    site: &str,
    owner: KeyOwner<'_>,
    name: &str,
    value: &Sensitive,
) -> Result<(), AzureError> {
    let rest = match owner {
        KeyOwner::Host(kind) => format!("/host/default/{kind}/{name}"),
        KeyOwner::Function(function) => format!("/functions/{function}/keys/{name}"),
    };
    arm.call(
        Method::Put,
        &url(site, &rest),
        Some(&json!({ "properties": { "name": name, "value": value.expose() } })),
    )
    .await
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_documents_read_into_the_models() {
        // test_webapp_slot.yaml #10 and #52, test_functionapp_keys_delete.yaml #13.
        let names: SlotConfigNames = parse(
            properties(json!({"id":null,"properties":{"connectionStringNames":null,"appSettingNames":["s2"],"azureStorageConfigNames":null}})),
            "x",
        )
        .unwrap();
        assert_eq!(names.app_setting_names, ["s2"]);
        assert!(names.connection_string_names.is_empty());
        let keys: HostKeys = parse(
            json!({"masterKey":"m","functionKeys":{"default":"k1"},"systemKeys":{}}),
            "x",
        )
        .unwrap();
        assert_eq!(keys.function_keys["default"].expose(), "k1");
        let strings: BTreeMap<String, ConnectionString> = parse(
            properties(json!({"properties":{"db":{"value":"Server=x","type":"SQLAzure"}}})),
            "x",
        )
        .unwrap();
        assert_eq!(strings["db"].kind, "SQLAzure");
        assert_eq!(
            short_name(&json!({"name":"site/staging"})).as_deref(),
            Some("staging")
        );
    }

    #[test]
    fn an_unexpected_document_never_quotes_its_values() {
        let error = parse::<BTreeMap<String, ConnectionString>>(
            json!({"db":{"value":"s3cr3t-value"}}),
            "config/connectionstrings/list",
        )
        .unwrap_err();
        assert!(!error.to_string().contains("s3cr3t"), "{error}");
    }
}
