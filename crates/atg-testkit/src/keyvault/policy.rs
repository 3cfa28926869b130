//! Certificate policies: the defaults Key Vault fills in (from the request, or from an imported
//! certificate), and the policy's own routes (get, and a PATCH that merges its parts).

use serde_json::{json, Value};

use super::certificates::certificate_not_found;
use super::crypto::{self, CONTENT_TYPE_PKCS12};
use super::{ok, Context, Vault};
use crate::http::{now_unix, ApiResponse};

pub(super) fn policy_json(base: &str, name: &str, policy: &Value) -> Value {
    let mut out = policy.clone();
    out["id"] = json!(format!("{base}/certificates/{name}/policy"));
    out
}

fn default_lifetime_actions() -> Value {
    json!([{ "trigger": { "lifetime_percentage": 80 }, "action": { "action_type": "AutoRenew" } }])
}

/// Fills the defaults Key Vault adds to a policy; `derived` comes from an imported certificate.
pub(super) fn normalize_policy(
    policy: &Value,
    derived: Option<&crypto::CertificateInfo>,
    detected_type: Option<&str>,
) -> Value {
    let now = now_unix();
    let requested_key = &policy["key_props"];
    let family = derived.map_or("RSA", |info| crypto::jwk_family(&info.jwk));
    let kty = requested_key["kty"].as_str().unwrap_or(family);
    let mut key_props = json!({
        "exportable": requested_key["exportable"].as_bool().unwrap_or(true),
        "kty": kty,
        "reuse_key": requested_key["reuse_key"].as_bool().unwrap_or(false),
    });
    if kty.starts_with("EC") {
        let crv = requested_key["crv"]
            .as_str()
            .or_else(|| {
                derived
                    .and_then(|info| info.jwk.get("crv"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("P-256");
        key_props["crv"] = json!(crv);
    } else {
        let size = requested_key["key_size"]
            .as_u64()
            .or_else(|| {
                derived
                    .and_then(|info| info.key_size)
                    .and_then(|size| u64::try_from(size).ok())
            })
            .unwrap_or(2048);
        key_props["key_size"] = json!(size);
    }
    let content_type = policy["secret_props"]["contentType"]
        .as_str()
        .or(detected_type)
        .unwrap_or(CONTENT_TYPE_PKCS12);
    let requested_x509 = &policy["x509_props"];
    let imported = derived.is_some();
    let mut x509 = json!({
        "subject": requested_x509["subject"]
            .as_str()
            .or_else(|| derived.map(|info| info.subject.as_str()))
            .unwrap_or_default(),
        "ekus": requested_x509.get("ekus").cloned().unwrap_or_else(|| if imported {
            json!([])
        } else {
            json!(["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"])
        }),
        "key_usage": requested_x509.get("key_usage").cloned().unwrap_or_else(|| if imported {
            json!([])
        } else {
            json!(["digitalSignature", "keyEncipherment"])
        }),
        "validity_months": requested_x509["validity_months"].as_i64().unwrap_or_else(|| {
            derived.map_or(12, |info| (info.not_after - info.not_before + 15 * 86_400) / (30 * 86_400) )
        }),
    });
    if let Some(sans) = requested_x509.get("sans").filter(|sans| sans.is_object()) {
        x509["sans"] = sans.clone();
    }
    x509["basic_constraints"] = json!({ "ca": derived.is_some_and(|info| info.is_ca) });
    let mut issuer = json!({ "name": policy["issuer"]["name"].as_str().unwrap_or("Unknown") });
    for member in ["cty", "cert_transparency"] {
        if let Some(value) = policy["issuer"].get(member) {
            issuer[member] = value.clone();
        }
    }
    json!({
        "key_props": key_props,
        "secret_props": { "contentType": content_type },
        "x509_props": x509,
        "lifetime_actions": policy.get("lifetime_actions").filter(|a| a.is_array()).cloned().unwrap_or_else(default_lifetime_actions),
        "issuer": issuer,
        "attributes": {
            "enabled": policy["attributes"]["enabled"].as_bool().unwrap_or(true),
            "created": now,
            "updated": now,
        },
    })
}

pub(super) fn get_policy(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    let policy = vault
        .certificates
        .get(name)
        .and_then(|object| object.latest().map(|latest| latest.data.policy.clone()))
        .or_else(|| {
            vault
                .pending
                .get(&name.to_ascii_lowercase())
                .map(|p| p.policy.clone())
        });
    match policy {
        Some(policy) => ok(&policy_json(&context.base, name, &policy)),
        None => certificate_not_found(name),
    }
}

pub(super) fn update_policy(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(latest) = vault
        .certificates
        .get_mut(name)
        .and_then(|object| object.versions.last_mut())
    else {
        return certificate_not_found(name);
    };
    if let (Some(policy), Some(patch)) = (latest.data.policy.as_object_mut(), body.as_object()) {
        // Key Vault merges the members of the policy's parts (`x509_props`, `key_props`, ...):
        // a PATCH of `x509_props.validity_months` keeps the subject, usages and SANs.
        for (member, value) in patch {
            if member == "id" {
                continue;
            }
            match (policy.get_mut(member), value) {
                (Some(Value::Object(current)), Value::Object(changes)) => {
                    for (inner, inner_value) in changes {
                        current.insert(inner.clone(), inner_value.clone());
                    }
                }
                _ => {
                    policy.insert(member.clone(), value.clone());
                }
            }
        }
        if let Some(attributes) = policy.get_mut("attributes") {
            attributes["updated"] = json!(now_unix());
        }
    }
    let policy = latest.data.policy.clone();
    ok(&policy_json(&context.base, name, &policy))
}
