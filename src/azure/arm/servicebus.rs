//! Microsoft.ServiceBus through ARM, and what Microsoft.EventHub shares with it (the two
//! resource providers are one codebase on Azure: the same child-resource shapes, the same
//! authorization rules with `listKeys` and `regenerateKeys`). [`Messaging`] carries the
//! provider's api-version; [`SERVICE_BUS`] here, [`super::eventhub::EVENT_HUBS`] there.
//!
//! 2024-01-01: the newest stable version but one in the specification (the recordings use
//! 2022-01-01-preview to 2023-01-01-preview; the routes and shapes used here are the same).
//!
//! Writes answer at once (200). `listKeys` only reads, and says so; keys live in
//! [`Sensitive`], and a keys document that does not parse is reported without serde's message
//! (which can quote a key).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ArmClient;
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

/// Microsoft.ServiceBus api-version.
pub const API_VERSION: &str = "2024-01-01";

/// One resource provider of the family, at its api-version.
#[derive(Debug)]
pub struct Messaging {
    pub api_version: &'static str,
}

pub static SERVICE_BUS: Messaging = Messaging {
    api_version: API_VERSION,
};

/// A child resource as its collection lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Child {
    pub name: String,
    pub properties: Map<String, Value>,
}

/// An authorization rule's two keys.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKeys {
    pub primary_key: Sensitive,
    pub secondary_key: Sensitive,
}

/// Which key `regenerateKeys` sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Primary,
    Secondary,
}

impl Messaging {
    fn url(&self, id: &str, rest: &str) -> String {
        format!(
            "{}{rest}?api-version={}",
            id.trim_end_matches('/'),
            self.api_version
        )
    }

    /// Every child of `parent` (a namespace or an entity id) in `collection` (`queues`,
    /// `authorizationRules` ...), every page.
    pub async fn children(
        &self,
        arm: &ArmClient,
        parent: &str,
        collection: &str,
    ) -> Result<Vec<Child>, AzureError> {
        let mut children = Vec::new();
        arm.list_pages(&self.url(parent, &format!("/{collection}")), |items| {
            for item in items {
                let name = item["name"].as_str().unwrap_or_default().to_owned();
                let properties = match &item["properties"] {
                    Value::Object(properties) => properties.clone(),
                    _ => Map::new(),
                };
                children.push(Child { name, properties });
            }
            Ok(())
        })
        .await?;
        Ok(children)
    }

    /// Creates or replaces the resource `id` with `properties`.
    pub async fn put(
        &self,
        arm: &ArmClient,
        id: &str,
        properties: &Map<String, Value>,
    ) -> Result<(), AzureError> {
        arm.call(
            azure_core::http::Method::Put,
            &self.url(id, ""),
            Some(&json!({ "properties": properties })),
        )
        .await
        .map(drop)
    }

    /// The resource's properties, or `None` when it does not exist.
    pub async fn properties(
        &self,
        arm: &ArmClient,
        id: &str,
    ) -> Result<Option<Map<String, Value>>, AzureError> {
        Ok(arm
            .get_optional(&self.url(id, ""))
            .await?
            .map(|body| match body {
                Value::Object(mut object) => match object.remove("properties") {
                    Some(Value::Object(properties)) => properties,
                    _ => Map::new(),
                },
                _ => Map::new(),
            }))
    }

    /// An authorization rule's keys (`POST listKeys`, a read).
    pub async fn list_keys(&self, arm: &ArmClient, rule: &str) -> Result<AccessKeys, AzureError> {
        let body = arm.post_read(&self.url(rule, "/listKeys")).await?;
        serde_json::from_value(body).map_err(|_| {
            AzureError::new(
                AzureErrorKind::Other,
                "listKeys answered an unexpected document",
            )
        })
    }

    /// Sets one key of an authorization rule to `key` (`POST regenerateKeys` with the key).
    pub async fn set_key(
        &self,
        arm: &ArmClient,
        rule: &str,
        key_type: KeyType,
        key: &Sensitive,
    ) -> Result<(), AzureError> {
        let key_type = match key_type {
            KeyType::Primary => "PrimaryKey",
            KeyType::Secondary => "SecondaryKey",
        };
        // The answer holds both keys and connection strings: dropped unread.
        arm.post(
            &self.url(rule, "/regenerateKeys"),
            Some(&json!({ "keyType": key_type, "key": key.expose() })),
        )
        .await
        .map(drop)
    }
}
