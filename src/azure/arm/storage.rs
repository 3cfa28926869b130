//! Microsoft.Storage through ARM: what the storage plugin asks of the resource provider (the
//! account keys), at the api-version atg was tested against.

use serde::Deserialize;

use super::ArmClient;
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

/// Microsoft.Storage api-version.
pub const API_VERSION: &str = "2023-05-01";

/// `listKeys`' answer: `{"keys":[{"keyName","value","permissions"}]}`.
#[derive(Deserialize)]
struct AccountKeys {
    #[serde(default)]
    keys: Vec<AccountKey>,
}

#[derive(Deserialize)]
struct AccountKey {
    value: Option<Sensitive>,
}

/// The first key of a storage account (`resource_id`). A POST, but a read: a read-only client
/// (the source, a dry run) makes it.
pub async fn first_account_key(
    arm: &ArmClient,
    resource_id: &str,
) -> Result<Sensitive, AzureError> {
    let body = arm
        .post_read(&format!(
            "{}/listKeys?api-version={API_VERSION}",
            resource_id.trim_end_matches('/')
        ))
        .await?;
    // serde's message can quote the value it choked on: a key. Never shown.
    let keys: AccountKeys = serde_json::from_value(body).map_err(|_| {
        AzureError::new(
            AzureErrorKind::Other,
            "listKeys answered an unexpected document",
        )
    })?;
    keys.keys
        .into_iter()
        .find_map(|key| key.value)
        .ok_or_else(|| AzureError::new(AzureErrorKind::Other, "listKeys returned no key"))
}
