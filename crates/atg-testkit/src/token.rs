//! Unsigned test tokens and the Entra v2 client-credentials token endpoint.
//!
//! Tokens are JWTs with `alg: none` and an empty signature: the emulator (like Azurite's
//! `--oauth basic`) checks claims, never signatures, so tests can mint tokens without a key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::http::{now_unix, ApiRequest, ApiResponse};
use crate::options::EmulatorOptions;

/// Hosts that answer as the Entra token endpoint.
pub(crate) const LOGIN_HOSTS: [&str; 3] = [
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
];

/// Mints an unsigned token valid for one hour for `audience` (a resource such as
/// `https://vault.azure.net`; a trailing `/.default` is stripped).
#[must_use]
pub fn mint_token(tenant_id: &str, client_id: &str, audience: &str) -> String {
    mint_token_with_expiry(tenant_id, client_id, audience, now_unix() + 3600)
}

/// Like [`mint_token`] with an explicit `exp` (Unix seconds), e.g. to test expired tokens.
#[must_use]
pub fn mint_token_with_expiry(
    tenant_id: &str,
    client_id: &str,
    audience: &str,
    exp: i64,
) -> String {
    let now = now_unix();
    let audience = audience.strip_suffix("/.default").unwrap_or(audience);
    let header = json!({ "alg": "none", "typ": "JWT" });
    let claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant_id}/"),
        "tid": tenant_id,
        "oid": client_id,
        "appid": client_id,
        "sub": client_id,
        "iat": now - 60,
        "nbf": now - 60,
        "exp": exp,
    });
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The claims of a token, without checking any signature.
pub(crate) fn decode_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Why a bearer token was refused.
pub(crate) enum TokenProblem {
    Malformed,
    Expired,
    Audience(String),
    Tenant(String),
}

/// Checks claims: audience in `audiences`, not expired, and (when given) the tenant.
pub(crate) fn check_token(
    token: &str,
    audiences: &[&str],
    tenant: Option<&str>,
) -> Result<Value, TokenProblem> {
    let claims = decode_claims(token).ok_or(TokenProblem::Malformed)?;
    let aud = claims
        .get("aud")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !audiences
        .iter()
        .any(|accepted| accepted.trim_end_matches('/') == aud.trim_end_matches('/'))
    {
        return Err(TokenProblem::Audience(aud.to_owned()));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= now_unix() {
        return Err(TokenProblem::Expired);
    }
    if let Some(expected) = tenant {
        let tid = claims
            .get("tid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !tid.eq_ignore_ascii_case(expected) {
            return Err(TokenProblem::Tenant(tid.to_owned()));
        }
    }
    Ok(claims)
}

fn entra_error(status: StatusCode, error: &str, description: &str) -> ApiResponse {
    ApiResponse::json(
        status,
        &json!({
            "error": error,
            "error_description": description,
            "error_codes": [],
            "timestamp": "",
            "trace_id": crate::http::new_guid(),
            "correlation_id": crate::http::new_guid(),
        }),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token` with a client-credentials form.
pub(crate) fn handle(request: &ApiRequest, options: &EmulatorOptions) -> ApiResponse {
    let segments = request.segments();
    let tenant = match segments.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] if request.method == hyper::Method::POST => *tenant,
        _ => return entra_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "AADSTS900561: The endpoint only accepts POST requests to /{tenant}/oauth2/v2.0/token.",
        ),
    };
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type. Only client_credentials is emulated.",
        );
    }
    let (Some(client_id), Some(scope)) = (field("client_id"), field("scope")) else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameters: 'client_id' and 'scope'.",
        );
    };
    if !options.principals.is_empty() {
        let known = options.principals.iter().find(|principal| {
            principal.client_id.eq_ignore_ascii_case(client_id)
                && principal.tenant_id.eq_ignore_ascii_case(tenant)
        });
        let Some(principal) = known else {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                &format!("AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
            );
        };
        if field("client_secret") != Some(principal.client_secret.as_str()) {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            );
        }
    }
    let audience = scope
        .split_whitespace()
        .next()
        .unwrap_or(scope)
        .trim_end_matches("/.default");
    ApiResponse::json(
        StatusCode::OK,
        &json!({
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": mint_token(tenant, client_id, audience),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_token_round_trips_its_claims() {
        let token = mint_token("t1", "c1", "https://vault.azure.net/.default");
        assert_eq!(token.split('.').count(), 3);
        assert!(token.ends_with('.'));
        let claims = decode_claims(&token).expect("claims");
        assert_eq!(claims["aud"], "https://vault.azure.net");
        assert_eq!(claims["iss"], "https://sts.windows.net/t1/");
        assert!(check_token(&token, &["https://vault.azure.net"], Some("t1")).is_ok());
        assert!(check_token(&token, &["https://vault.azure.net"], Some("t2")).is_err());
        assert!(check_token(&token, &["https://management.azure.com"], None).is_err());
    }

    #[test]
    fn expired_token_is_refused() {
        let token = mint_token_with_expiry("t1", "c1", "https://vault.azure.net", 1);
        assert!(matches!(
            check_token(&token, &["https://vault.azure.net"], None),
            Err(TokenProblem::Expired)
        ));
    }
}
