//! Microsoft.ApiManagement through ARM: a service's entities, listed, read with their `ETag`,
//! and written (PUT over an existing entity only with `If-Match`; the service's 202 +
//! `Location`/`asyncId` answers polled through [`ArmClient::call_and_wait_with`]).
//!
//! 2024-05-01: the newest stable api-version (the shared recordings use 2019-12-01 to 2022-08-01;
//! the routes and shapes used here are the same). `listValue` (a secret named value) and
//! `listSecrets` (a subscription's keys) are POSTs that only read, and say so; what they answer
//! lives in [`Sensitive`], and a document that does not parse is reported without serde's
//! message (which can quote a value).

use azure_core::http::Method;
use serde::Deserialize;
use serde_json::Value;

use super::{ArmClient, CallOptions};
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

/// Microsoft.ApiManagement api-version.
pub const API_VERSION: &str = "2024-05-01";

/// `{service}/{relative}?api-version=...`.
pub fn url(service: &str, relative: &str) -> String {
    format!(
        "{}/{}?api-version={API_VERSION}",
        service.trim_end_matches('/'),
        relative.trim_matches('/')
    )
}

/// Every entity of a collection (`namedValues`, `apis/{a}/operations`, ...) of the service.
pub async fn list(
    arm: &ArmClient,
    service: &str,
    collection: &str,
) -> Result<Vec<Value>, AzureError> {
    let mut items = Vec::new();
    arm.list_pages(&url(service, collection), |page| {
        items.extend(page);
        Ok(())
    })
    .await?;
    Ok(items)
}

/// An entity as the service has it now.
pub struct Current {
    pub document: Value,
    /// `*` when the service gave none.
    pub etag: String,
}

/// The entity's current document and `ETag`, or `None` when it does not exist.
pub async fn current(
    arm: &ArmClient,
    service: &str,
    relative: &str,
) -> Result<Option<Current>, AzureError> {
    let response = arm
        .send(
            Method::Get,
            &url(service, relative),
            None,
            &CallOptions::default(),
        )
        .await?;
    match response.status {
        404 => Ok(None),
        200..=299 => Ok(Some(Current {
            etag: response.etag.unwrap_or_else(|| "*".to_owned()),
            document: response.body,
        })),
        _ => Err(AzureError::from_response(
            response.status,
            None,
            &serde_json::to_vec(&response.body).unwrap_or_default(),
        )),
    }
}

/// How a conditional write ended.
#[derive(Debug)]
pub enum Written {
    Done,
    /// 412: the entity changed since `etag` was read.
    Stale,
}

/// PUT (or PATCH) `body` at the entity, only over the version `if_match` when given (an update);
/// waits for the service's operation. A 412 is answered as [`Written::Stale`].
pub async fn write(
    arm: &ArmClient,
    method: Method,
    service: &str,
    relative: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Written, AzureError> {
    let options = match if_match {
        Some(etag) => CallOptions::default().if_match(etag),
        None => CallOptions::default(),
    };
    match arm
        .call_and_wait_with(method, &url(service, relative), Some(body), &options)
        .await
    {
        Ok(_) => Ok(Written::Done),
        Err(error) if error.status == Some(412) => Ok(Written::Stale),
        Err(error) => Err(error),
    }
}

#[derive(Deserialize)]
struct NamedValueSecret {
    value: Option<Sensitive>,
}

/// A secret named value's value (`POST .../namedValues/{id}/listValue`, a read).
pub async fn named_value(
    arm: &ArmClient,
    service: &str,
    id: &str,
) -> Result<Sensitive, AzureError> {
    let body = arm
        .post_read(&url(service, &format!("namedValues/{id}/listValue")))
        .await?;
    let secret: NamedValueSecret =
        serde_json::from_value(body).map_err(|_| unexpected("listValue"))?;
    secret.value.ok_or_else(|| unexpected("listValue"))
}

/// A subscription's keys.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionKeys {
    pub primary_key: Sensitive,
    pub secondary_key: Sensitive,
}

/// A subscription's keys (`POST .../subscriptions/{sid}/listSecrets`, a read).
pub async fn subscription_keys(
    arm: &ArmClient,
    service: &str,
    id: &str,
) -> Result<SubscriptionKeys, AzureError> {
    let body = arm
        .post_read(&url(service, &format!("subscriptions/{id}/listSecrets")))
        .await?;
    serde_json::from_value(body).map_err(|_| unexpected("listSecrets"))
}

fn unexpected(action: &str) -> AzureError {
    AzureError::new(
        AzureErrorKind::Other,
        format!("{action} answered an unexpected document"),
    )
}
