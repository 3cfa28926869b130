//! Microsoft.Storage: `POST .../storageAccounts/{account}/listKeys` answers the keys a test
//! seeded (never rendered in the account itself), 403 `AuthorizationFailed` when none were, as
//! for an identity without `listkeys/action`.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::store::{not_found, Resource};
use super::{arm_error, ArmRequest, ArmState, Provider, ResourcePath};
use crate::http::ApiResponse;

pub(crate) struct StorageProvider;

impl Provider for StorageProvider {
    fn namespace(&self) -> &'static str {
        "Microsoft.Storage"
    }

    fn handle(&self, state: &mut ArmState, request: &ArmRequest<'_>) -> Option<ApiResponse> {
        if !request.is_action(&Method::POST, "listKeys") {
            return None;
        }
        let path = &request.path;
        let Some(account) = state.get(&path.key()) else {
            return Some(not_found(path));
        };
        let keys: Vec<Value> = account.secrets["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Some(if keys.is_empty() {
            arm_error(
                StatusCode::FORBIDDEN,
                "AuthorizationFailed",
                &format!("The client does not have authorization to perform action 'Microsoft.Storage/storageAccounts/listKeys/action' over scope '{}'.", path.id()),
            )
        } else {
            ApiResponse::json(
                StatusCode::OK,
                &json!({ "keys": keys.iter().enumerate().map(|(index, value)| json!({
                    "keyName": format!("key{}", index + 1),
                    "value": value,
                    "permissions": "FULL",
                    "creationTime": "2024-01-01T00:00:00.0000000Z",
                })).collect::<Vec<_>>() }),
            )
        })
    }
}

impl ArmState {
    /// Creates the account if missing and sets the keys `listKeys` answers (none: 403).
    pub fn seed_storage_keys(
        &mut self,
        subscription: &str,
        resource_group: &str,
        account: &str,
        keys: Vec<String>,
    ) {
        let path = ResourcePath {
            subscription: subscription.to_owned(),
            group: resource_group.to_owned(),
            namespace: "Microsoft.Storage".to_owned(),
            pairs: vec![("storageAccounts".to_owned(), account.to_owned())],
            tail: None,
        };
        let mut resource = self.get(&path.key()).cloned().unwrap_or_else(|| {
            Resource::new(
                &path,
                json!({ "location": "westus", "tags": {}, "kind": "StorageV2", "properties": {} }),
            )
        });
        resource.secrets["keys"] = Value::from(keys);
        self.insert(resource);
    }
}
