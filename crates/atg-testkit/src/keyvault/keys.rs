//! Keys: create (real RSA / EC key pairs, public JWK only ever returned), import of a JWK, get,
//! list, versions, update, soft-delete / recover / purge, backup / restore. Cryptographic
//! operations (sign, decrypt, ...) are not emulated and answer 501.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::collection::{self, conflict_if_deleted, object_not_found, Collection, Kind};
use super::crypto;
use super::{
    bad_parameter, invalid_name, ok, reports_key_platform, valid_name, Attributes, Context, Object,
    Vault, Version,
};
use crate::http::{new_version, ApiResponse};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyData {
    pub kty: String,
    pub key_ops: Vec<String>,
    /// Public members only (`n`,`e` or `crv`,`x`,`y`).
    pub jwk: Map<String, Value>,
    pub release_policy: Option<Value>,
    pub managed: bool,
}

fn default_ops(kty: &str) -> Vec<String> {
    let ops: &[&str] = if kty.starts_with("EC") {
        &["sign", "verify"]
    } else {
        &[
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ]
    };
    ops.iter().map(|op| (*op).to_owned()).collect()
}

/// Key attributes as the request's api-version shows them: `exportable` and `hsmPlatform` are
/// 7.5 members; older versions show `exportable` only for a key created exportable (which needs a
/// release policy), never for a certificate's backing key.
fn attributes_json(context: &Context<'_>, version: &Version<KeyData>) -> Value {
    let mut out = version.attributes.to_json();
    if !reports_key_platform(context.request) {
        if let Some(attributes) = out.as_object_mut() {
            attributes.remove("hsmPlatform");
            let exportable = version.attributes.exportable == Some(true) && !version.data.managed;
            if !exportable {
                attributes.remove("exportable");
            }
        }
    }
    out
}

fn bundle(context: &Context<'_>, object: &Object<KeyData>, version: &Version<KeyData>) -> Value {
    let base = &context.base;
    let mut key = json!({
        "kid": format!("{base}/keys/{}/{}", object.name, version.id),
        "kty": version.data.kty,
        "key_ops": version.data.key_ops,
    });
    for (member, value) in &version.data.jwk {
        key[member] = value.clone();
    }
    let mut out = json!({ "key": key, "attributes": attributes_json(context, version) });
    if let Some(tags) = &version.tags {
        out["tags"] = tags.clone();
    }
    if version.data.managed {
        out["managed"] = json!(true);
    }
    if let Some(policy) = &version.data.release_policy {
        out["release_policy"] = policy.clone();
    }
    out
}

fn item(
    context: &Context<'_>,
    object: &Object<KeyData>,
    version: &Version<KeyData>,
    versioned: bool,
) -> Value {
    let base = &context.base;
    let kid = if versioned {
        format!("{base}/keys/{}/{}", object.name, version.id)
    } else {
        format!("{base}/keys/{}", object.name)
    };
    let mut out = json!({ "kid": kid, "attributes": attributes_json(context, version) });
    if let Some(tags) = &version.tags {
        out["tags"] = tags.clone();
    }
    if version.data.managed {
        out["managed"] = json!(true);
    }
    out
}

impl Kind for KeyData {
    const KIND: &'static str = "key";
    const TITLE: &'static str = "Key";
    const DELETED_PATH: &'static str = "deletedkeys";

    fn collection(vault: &Vault) -> &Collection<Self> {
        &vault.keys
    }

    fn collection_mut(vault: &mut Vault) -> &mut Collection<Self> {
        &mut vault.keys
    }

    fn bundle(
        _vault: &Vault,
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
    ) -> Value {
        bundle(context, object, version)
    }

    fn item(
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
        versioned: bool,
    ) -> Value {
        item(context, object, version, versioned)
    }

    fn update(version: &mut Version<Self>, body: &Value) {
        if let Some(ops) = string_list(&body["key_ops"]) {
            version.data.key_ops = ops;
        }
        if let Some(policy) = body.get("release_policy").filter(|p| p.is_object()) {
            version.data.release_policy = Some(policy.clone());
        }
    }

    fn unlisted_when_deleted(data: &Self) -> bool {
        data.managed
    }
}

pub(super) fn route(vault: &mut Vault, context: &Context<'_>, segments: &[&str]) -> ApiResponse {
    let deleted = segments[0].eq_ignore_ascii_case("deletedkeys");
    match (deleted, &segments[1..], context.request.method.as_str()) {
        (false, [name], "PUT") => import(vault, context, name),
        (false, [name, "create"], "POST") => create(vault, context, name),
        (false, [_, _, operation], "POST") => ApiResponse::error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!("The key operation '{operation}' is not emulated."),
            None,
        ),
        (_, rest, _) => collection::route::<KeyData>(vault, context, deleted, rest),
    }
}

fn string_list(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn store_and_render(
    vault: &mut Vault,
    context: &Context<'_>,
    name: &str,
    version: Version<KeyData>,
) -> ApiResponse {
    vault.keys.push(name, version);
    match vault
        .keys
        .get(name)
        .and_then(|object| object.latest().map(|v| bundle(context, object, v)))
    {
        Some(out) => ok(&out),
        None => object_not_found::<KeyData>(name),
    }
}

fn create(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if !valid_name(name) {
        return invalid_name("Key", name);
    }
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(kty) = body["kty"].as_str() else {
        return bad_parameter("The request body must contain the property 'kty'.");
    };
    if let Some(conflict) = conflict_if_deleted::<KeyData>(vault, name) {
        return conflict;
    }
    let material = match crypto::generate_key(kty, body["key_size"].as_u64(), body["crv"].as_str())
    {
        Ok(material) => material,
        Err(message) => return bad_parameter(&message),
    };
    let jwk = match crypto::public_jwk(&material.spki) {
        Ok(jwk) => jwk,
        Err(message) => return bad_parameter(&message),
    };
    let key_ops = string_list(&body["key_ops"]).unwrap_or_else(|| default_ops(kty));
    let mut attributes = Attributes::new();
    attributes.exportable = Some(false);
    if kty.ends_with("-HSM") {
        attributes.hsm_platform = Some("1".to_owned());
    }
    if key_ops == ["import"] {
        // A BYOK key-exchange key expires two days after creation, as in Key Vault.
        attributes.exp = Some(attributes.created + 2 * 86_400);
    }
    attributes.apply(&body["attributes"]);
    let version = Version {
        id: new_version(),
        attributes,
        tags: body.get("tags").filter(|tags| tags.is_object()).cloned(),
        data: KeyData {
            kty: kty.to_owned(),
            key_ops,
            jwk,
            release_policy: body
                .get("release_policy")
                .filter(|p| p.is_object())
                .cloned(),
            managed: false,
        },
    };
    store_and_render(vault, context, name, version)
}

fn import(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if !valid_name(name) {
        return invalid_name("Key", name);
    }
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let key = &body["key"];
    let Some(kty) = key["kty"].as_str() else {
        return bad_parameter("The request body must contain a JSON web key 'key' with 'kty'.");
    };
    let members: &[&str] = match kty {
        "RSA" | "RSA-HSM" => &["n", "e"],
        "EC" | "EC-HSM" => &["crv", "x", "y"],
        other => {
            return bad_parameter(&format!(
                "The key type {other} is not supported by the emulator."
            ))
        }
    };
    let mut jwk = Map::new();
    for member in members {
        match key[*member].as_str() {
            Some(value) => {
                jwk.insert((*member).to_owned(), json!(value));
            }
            None => return bad_parameter(&format!("The JSON web key is missing '{member}'.")),
        }
    }
    if let Some(conflict) = conflict_if_deleted::<KeyData>(vault, name) {
        return conflict;
    }
    let hsm = body["Hsm"].as_bool().unwrap_or(false) || kty.ends_with("-HSM");
    let family = kty.trim_end_matches("-HSM");
    let kty = if hsm {
        format!("{family}-HSM")
    } else {
        family.to_owned()
    };
    let mut attributes = Attributes::new();
    attributes.exportable = Some(false);
    attributes.apply(&body["attributes"]);
    let version = Version {
        id: new_version(),
        attributes,
        tags: body.get("tags").filter(|tags| tags.is_object()).cloned(),
        data: KeyData {
            key_ops: string_list(&key["key_ops"]).unwrap_or_else(|| default_ops(&kty)),
            kty,
            jwk,
            release_policy: body
                .get("release_policy")
                .filter(|p| p.is_object())
                .cloned(),
            managed: false,
        },
    };
    store_and_render(vault, context, name, version)
}

/// Stores a certificate's backing key version (same version id as the certificate).
pub(super) fn put_backing(vault: &mut Vault, name: &str, version: Version<KeyData>) {
    vault.keys.push(name, version);
}

pub(super) fn backing_version(
    id: &str,
    policy: &Value,
    jwk: Map<String, Value>,
    attributes: Attributes,
) -> Version<KeyData> {
    let kty = policy["key_props"]["kty"]
        .as_str()
        .map_or_else(|| crypto::jwk_family(&jwk).to_owned(), str::to_owned);
    let mut attributes = attributes;
    attributes.exportable = Some(policy["key_props"]["exportable"].as_bool().unwrap_or(false));
    Version {
        id: id.to_owned(),
        attributes,
        tags: None,
        data: KeyData {
            key_ops: if kty.starts_with("EC") {
                default_ops(&kty)
            } else {
                vec![
                    "sign".into(),
                    "verify".into(),
                    "wrapKey".into(),
                    "unwrapKey".into(),
                    "encrypt".into(),
                    "decrypt".into(),
                ]
            },
            kty,
            jwk,
            release_policy: None,
            managed: true,
        },
    }
}
