//! Microsoft.ServiceBus through ARM, and what Microsoft.EventHub shares with it (the two
//! resource providers are one codebase on Azure: the same child-resource shapes, the same
//! authorization rules with `listKeys` and `regenerateKeys`). [`Messaging`] carries the
//! provider's api-version; [`SERVICE_BUS`] here, [`super::eventhub::EVENT_HUBS`] there.
//!
//! 2024-01-01: the newest stable version but one in the specification (the recordings use
//! 2022-01-01-preview to 2023-01-01-preview; the routes and shapes used here are the same).
//!
//! Writes answer at once (200), or 409 `Conflict` with `SubCode=40901` ("another conflicting
//! operation is in progress") while another write to a related entity (a subscription or a rule
//! of the same topic) is under way: that answer is transient, and every write here sends it
//! again with a jittered backoff, a bounded number of times ([`CONFLICT_RETRIES`]). Not in the
//! ARM client's retry policy: it classifies answers by status without reading bodies, and for
//! other providers a 409 is lasting (a name taken, a state that forbids the write).
//!
//! `listKeys` only reads, and says so; keys live in
//! [`Sensitive`], and a keys document that does not parse is reported without serde's message
//! (which can quote a key).

use std::future::Future;
use std::time::Duration;

use rand::Rng;
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

/// How many times a write refused with `SubCode=40901` is sent again.
pub const CONFLICT_RETRIES: u32 = 6;
/// The first wait before sending it again, doubled each time up to [`CONFLICT_MAX_WAIT`].
const CONFLICT_FIRST_WAIT: Duration = Duration::from_millis(250);
const CONFLICT_MAX_WAIT: Duration = Duration::from_secs(8);

/// Whether the service refused a write because another write to a related entity is in
/// progress (409 `Conflict`, `SubCode=40901`): it may succeed once that one is done.
pub fn is_conflicting_operation(error: &AzureError) -> bool {
    error.status == Some(409)
        && (error.message.contains("SubCode=40901")
            || error
                .message
                .to_ascii_lowercase()
                .contains("conflicting operation is in progress"))
}

/// Sends a write (`send` makes one attempt) again while the service answers
/// [`is_conflicting_operation`], at most [`CONFLICT_RETRIES`] times.
async fn retrying_conflicts<T, F, Fut>(what: &str, send: F) -> Result<T, AzureError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, AzureError>>,
{
    let mut wait = CONFLICT_FIRST_WAIT;
    for attempt in 1..=CONFLICT_RETRIES {
        match send().await {
            Err(error) if is_conflicting_operation(&error) => {
                // Jitter spreads the writers that collided, so they do not collide again.
                let pause = wait.mul_f64(rand::rng().random_range(0.5..=1.0));
                tracing::debug!(
                    "{what}: another write to a related entity is in progress (SubCode=40901); sending again in {} ms (retry {attempt} of {CONFLICT_RETRIES})",
                    pause.as_millis()
                );
                tokio::time::sleep(pause).await;
                wait = (wait * 2).min(CONFLICT_MAX_WAIT);
            }
            other => return other,
        }
    }
    send().await
}

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
        let url = self.url(id, "");
        let body = json!({ "properties": properties });
        retrying_conflicts("PUT", || {
            arm.call(azure_core::http::Method::Put, &url, Some(&body))
        })
        .await
        .map(drop)
    }

    /// Deletes the resource `id`; `false` when it did not exist.
    pub async fn delete(&self, arm: &ArmClient, id: &str) -> Result<bool, AzureError> {
        let url = self.url(id, "");
        let sent = retrying_conflicts("DELETE", || {
            arm.call(azure_core::http::Method::Delete, &url, None)
        });
        match sent.await {
            Ok(_) => Ok(true),
            Err(error) if error.is_not_found() => Ok(false),
            Err(error) => Err(error),
        }
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
        let url = self.url(rule, "/regenerateKeys");
        let body = json!({ "keyType": key_type, "key": key.expose() });
        retrying_conflicts("regenerateKeys", || arm.post(&url, Some(&body)))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_conflicting_operation_is_sent_again() {
        let answer =
            |status: u16, body: &str| AzureError::from_response(status, None, body.as_bytes());
        assert!(is_conflicting_operation(&answer(
            409,
            r#"{"error":{"code":"Conflict","message":"SubCode=40901. Another conflicting operation is in progress. To know more visit https://aka.ms/sbResourceMgrExceptions. TrackingId:1_G1, SystemTracker:ns:Topic:t, Timestamp:2024-01-01T00:00:00"}}"#
        )));
        // A lasting conflict (the name is taken), and 40901 under another status.
        assert!(!is_conflicting_operation(&answer(
            409,
            r#"{"error":{"code":"Conflict","message":"SubCode=40900. Conflict. The namespace name is not available."}}"#
        )));
        assert!(!is_conflicting_operation(&answer(
            400,
            r#"{"error":{"code":"BadRequest","message":"SubCode=40901."}}"#
        )));
    }
}
