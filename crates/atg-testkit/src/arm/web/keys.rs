//! Function App keys: the host's (`masterKey`, `functionKeys`, `systemKeys`) and each function's,
//! kept as write-only secrets of `host/default` and of the function, read by `listkeys`.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::arm::store::{not_found, object_body};
use crate::arm::{arm_error, ArmRequest, ArmState, ResourcePath};
use crate::http::ApiResponse;

/// A fresh function or host key, in the recorded shape (56 base64url characters and `==`).
pub(super) fn new_key() -> String {
    use base64::Engine as _;
    let bytes: [u8; 40] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// PUT or DELETE of one key kept in `holder`'s secrets under `member` (a map, or the master
/// key). PUT answers 201 when new, 200 when replaced, with the recorded shape (the value
/// included); DELETE answers 204.
pub(super) fn write_key(
    state: &mut ArmState,
    request: &ArmRequest<'_>,
    holder: &ResourcePath,
    member: &str,
    key_name: &str,
    method: &Method,
) -> ApiResponse {
    let body = if *method == Method::PUT {
        match object_body(request.http) {
            Ok(body) => Some(body),
            Err(answer) => return answer,
        }
    } else {
        None
    };
    let Some(resource) = state.get_mut(&holder.key()) else {
        return not_found(holder);
    };
    let location = resource.body["location"].clone();
    match (method, body) {
        (&Method::PUT, Some(body)) => {
            let value = body["properties"]["value"]
                .as_str()
                .filter(|value| !value.is_empty())
                .map_or_else(new_key, str::to_owned);
            let created = if member == "masterKey" {
                resource.secrets["masterKey"] = json!(value);
                false
            } else {
                if !resource.secrets[member].is_object() {
                    resource.secrets[member] = json!({});
                }
                let existed = resource.secrets[member].get(key_name).is_some();
                resource.secrets[member][key_name] = json!(value);
                !existed
            };
            let kind = format!("{}/{member}", holder.kind());
            ApiResponse::json(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &json!({
                    "id": request.path.id(),
                    "name": key_name,
                    "type": kind,
                    "location": location,
                    "properties": { "name": key_name, "value": value },
                }),
            )
        }
        (&Method::DELETE, _) => {
            let removed = resource.secrets[member]
                .as_object_mut()
                .and_then(|keys| keys.remove(key_name));
            if removed.is_some() {
                ApiResponse::empty(StatusCode::NO_CONTENT)
            } else {
                not_found(&request.path)
            }
        }
        _ => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The method is not allowed on this resource.",
        ),
    }
}
