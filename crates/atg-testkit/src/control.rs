//! The control API under `/_emulator/` on any host, without authentication: the request log, the
//! runtime configuration, and seeding of ARM resources (`PUT /_emulator/arm/{resource id}`). It lets out-of-process peers (Python, the demo script) drive the emulator
//! the way Rust tests drive it through [`crate::Emulator`]. Its own requests are not logged.

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::http::{ApiRequest, ApiResponse};
use crate::options::EmulatorOptions;
use crate::server::{lock, Shared};
use bytes::Bytes;

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
        (&Method::PUT, path) if path.starts_with("/_emulator/arm/") => {
            let id = &path["/_emulator/arm".len()..];
            let body = request.json_body().unwrap_or(Value::Null);
            match crate::arm::seed(&mut lock(&shared.arm), id, body) {
                Ok(()) => ApiResponse::empty(StatusCode::NO_CONTENT),
                Err(message) => {
                    ApiResponse::error(StatusCode::BAD_REQUEST, "BadParameter", &message, None)
                }
            }
        }
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

/// Applies the knobs that make a service misbehave ([`EmulatorOptions::follow_up_origin`],
/// [`EmulatorOptions::error_message_echo`]) to an answer, whichever service produced it.
pub(crate) fn misbehave(
    options: &EmulatorOptions,
    request: &ApiRequest,
    mut response: ApiResponse,
) -> ApiResponse {
    if let Some(origin) = &options.follow_up_origin {
        for (name, value) in &mut response.headers {
            if name.eq_ignore_ascii_case("azure-asyncoperation")
                || name.eq_ignore_ascii_case("location")
            {
                if let Some(moved) = move_to(origin, value) {
                    *value = moved;
                }
            }
        }
    }
    if options.follow_up_origin.is_none() && options.error_message_echo.is_none() {
        return response;
    }
    let Ok(mut body) = serde_json::from_slice::<Value>(&response.body) else {
        return response;
    };
    let mut changed = false;
    if let Some(origin) = &options.follow_up_origin {
        if let Some(moved) = body["nextLink"]
            .as_str()
            .and_then(|link| move_to(origin, link))
        {
            body["nextLink"] = json!(moved);
            changed = true;
        }
    }
    if let Some(echo) = &options.error_message_echo {
        if response.status.as_u16() >= 400 {
            if let Some(message) = body["error"]["message"].as_str() {
                let authorization = request
                    .headers
                    .get(hyper::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                let echoed = echo.replace("{authorization}", authorization);
                body["error"]["message"] = json!(format!("{message} {echoed}"));
                changed = true;
            }
        }
    }
    if changed {
        response.body = Bytes::from(body.to_string());
    }
    response
}

/// `link` with `origin` in place of its own scheme, host and port.
fn move_to(origin: &str, link: &str) -> Option<String> {
    let link = url::Url::parse(link).ok()?;
    let query = link.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!(
        "{}{}{query}",
        origin.trim_end_matches('/'),
        link.path()
    ))
}
