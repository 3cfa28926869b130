//! The control API under `/_emulator/` on any host, without authentication: the request log and the
//! runtime configuration. It lets out-of-process peers (Python, the demo script) drive the emulator
//! the way Rust tests drive it through [`crate::Emulator`]. Its own requests are not logged.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{ApiRequest, ApiResponse};
use crate::options::EmulatorOptions;
use crate::server::{lock, Shared};

pub(crate) fn handle(shared: &Shared, request: &ApiRequest) -> ApiResponse {
    match (&request.method, request.path.trim_end_matches('/')) {
        (&Method::GET, "/_emulator/requests") => {
            let log = lock(&shared.log).clone();
            ApiResponse::json(StatusCode::OK, &json!(log))
        }
        (&Method::DELETE, "/_emulator/requests") => {
            lock(&shared.log).clear();
            ApiResponse::empty(StatusCode::NO_CONTENT)
        }
        (&Method::GET, "/_emulator/config") => {
            ApiResponse::json(StatusCode::OK, &json!(shared.options()))
        }
        (&Method::PUT | &Method::PATCH, "/_emulator/config") => update_config(shared, request),
        (&Method::GET, "/_emulator/health") => {
            ApiResponse::json(StatusCode::OK, &json!({"status": "ok"}))
        }
        _ => ApiResponse::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "unknown control endpoint; use /_emulator/requests or /_emulator/config",
            None,
        ),
    }
}

/// Merges the top-level members of the body into the current options, so a peer can change one
/// knob without restating (or knowing) the others, e.g. `{"latency_ms": 20}`.
fn update_config(shared: &Shared, request: &ApiRequest) -> ApiResponse {
    let patch = match request.json_body() {
        Ok(Value::Object(patch)) => patch,
        Ok(_) => {
            return ApiResponse::error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "config must be a json object",
                None,
            )
        }
        Err(message) => {
            return ApiResponse::error(StatusCode::BAD_REQUEST, "BadParameter", &message, None)
        }
    };
    let mut options = lock(&shared.options);
    let current_principals = options.principals.clone();
    let mut merged = json!(*options);
    for (key, value) in &patch {
        merged[key] = value.clone();
    }
    // Principals serialize without secrets; keep the stored ones unless the patch replaces them.
    match serde_json::from_value::<EmulatorOptions>(merged) {
        Ok(mut updated) => {
            if !patch.contains_key("principals") {
                updated.principals = current_principals;
            }
            updated.port = options.port;
            *options = updated;
            ApiResponse::json(StatusCode::OK, &json!(*options))
        }
        Err(error) => ApiResponse::error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            &format!("invalid config: {error}"),
            None,
        ),
    }
}
