//! Keys: create (real RSA / EC key pairs, public JWK only ever returned), import of a JWK, get,
//! list, versions, update, soft-delete / recover / purge, backup / restore. Cryptographic
//! operations (sign, decrypt, ...) are not emulated and answer 501.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::crypto;
use super::{
    backup_blob, bad_parameter, deleted_conflict, invalid_name, method_not_allowed, not_found,
    not_found_path, ok, ordinal_key, page, reports_key_platform, restore_blob, valid_name,
    Attributes, Context, Object, Vault, Version,
};
use crate::http::{new_version, now_unix, ApiResponse};

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

pub(super) fn route(vault: &mut Vault, context: &Context<'_>, segments: &[&str]) -> ApiResponse {
    let method = context.request.method.as_str();
    let deleted = segments[0].eq_ignore_ascii_case("deletedkeys");
    match (deleted, &segments[1..], method) {
        (false, [], "GET") => list(vault, context),
        (false, ["restore"], "POST") => restore(vault, context),
        (false, [name], "PUT") => import(vault, context, name),
        (false, [name], "GET") => get(vault, context, name, None),
        (false, [name], "PATCH") => update(vault, context, name, None),
        (false, [name], "DELETE") => delete(vault, context, name),
        (false, [name, "create"], "POST") => create(vault, context, name),
        (false, [name, "versions"], "GET") => versions(vault, context, name),
        (false, [name, "backup"], "POST") => backup(vault, name),
        (false, [name, version], "GET") => get(vault, context, name, Some(version)),
        (false, [name, version], "PATCH") => update(vault, context, name, Some(version)),
        (false, [_, _, operation], "POST") => ApiResponse::error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!("The key operation '{operation}' is not emulated."),
            None,
        ),
        (true, [], "GET") => list_deleted(vault, context),
        (true, [name], "GET") => get_deleted(vault, context, name),
        (true, [name], "DELETE") => purge(vault, name),
        (true, [name, "recover"], "POST") => recover(vault, context, name),
        (_, [] | [_] | [_, _], _) => method_not_allowed(),
        _ => not_found_path(),
    }
}

fn key_not_found(name: &str) -> ApiResponse {
    not_found("KeyNotFound", "key", name)
}

fn deleted_not_found(name: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::NOT_FOUND,
        "KeyNotFound",
        &format!("Deleted Key not found: {name}"),
        None,
    )
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
        None => key_not_found(name),
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
    if vault.keys.is_deleted(name) {
        return deleted_conflict("Key", "key", name);
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
    if vault.keys.is_deleted(name) {
        return deleted_conflict("Key", "key", name);
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

fn get(vault: &Vault, context: &Context<'_>, name: &str, version: Option<&str>) -> ApiResponse {
    let Some(object) = vault.keys.get(name) else {
        return key_not_found(name);
    };
    match object.version(version) {
        Some(found) => ok(&bundle(context, object, found)),
        None => key_not_found(&format!("{name}/{}", version.unwrap_or_default())),
    }
}

fn update(
    vault: &mut Vault,
    context: &Context<'_>,
    name: &str,
    version: Option<&str>,
) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(object) = vault.keys.get_mut(name) else {
        return key_not_found(name);
    };
    let Some(found) = object.version_mut(version) else {
        return key_not_found(&format!("{name}/{}", version.unwrap_or_default()));
    };
    found.attributes.apply(&body["attributes"]);
    found.attributes.updated = now_unix();
    if let Some(ops) = string_list(&body["key_ops"]) {
        found.data.key_ops = ops;
    }
    if let Some(tags) = body.get("tags").filter(|tags| tags.is_object()) {
        found.tags = Some(tags.clone());
    }
    if let Some(policy) = body.get("release_policy").filter(|p| p.is_object()) {
        found.data.release_policy = Some(policy.clone());
    }
    let found = found.clone();
    let object = object.clone();
    ok(&bundle(context, &object, &found))
}

fn list(vault: &Vault, context: &Context<'_>) -> ApiResponse {
    let items = vault
        .keys
        .active
        .iter()
        .filter_map(|(key, object)| {
            object
                .latest()
                .map(|v| (key.clone(), item(context, object, v, false)))
        })
        .collect();
    page(context, items)
}

fn versions(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    let Some(object) = vault.keys.get(name) else {
        return key_not_found(name);
    };
    let items = object
        .versions
        .iter()
        .enumerate()
        .map(|(index, version)| (ordinal_key(index), item(context, object, version, true)))
        .collect();
    page(context, items)
}

fn deleted_bundle(context: &Context<'_>, deleted: &super::Deleted<KeyData>) -> Option<Value> {
    let latest = deleted.object.latest()?;
    let mut out = bundle(context, &deleted.object, latest);
    deleted.decorate(&context.base, "deletedkeys", &mut out);
    Some(out)
}

fn delete(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    match vault
        .keys
        .delete(name)
        .and_then(|deleted| deleted_bundle(context, deleted))
    {
        Some(out) => ok(&out),
        None => key_not_found(name),
    }
}

fn list_deleted(vault: &Vault, context: &Context<'_>) -> ApiResponse {
    let items = vault
        .keys
        .deleted
        .iter()
        .filter(|(_, deleted)| !deleted.object.latest().is_some_and(|v| v.data.managed))
        .filter_map(|(key, deleted)| {
            let latest = deleted.object.latest()?;
            let mut out = item(context, &deleted.object, latest, false);
            deleted.decorate(&context.base, "deletedkeys", &mut out);
            Some((key.clone(), out))
        })
        .collect();
    page(context, items)
}

fn get_deleted(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    vault
        .keys
        .deleted
        .get(&name.to_ascii_lowercase())
        .and_then(|deleted| deleted_bundle(context, deleted))
        .map_or_else(|| deleted_not_found(name), |out| ok(&out))
}

fn recover(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    match vault
        .keys
        .recover(name)
        .and_then(|object| object.latest().map(|v| bundle(context, object, v)))
    {
        Some(out) => ok(&out),
        None => deleted_not_found(name),
    }
}

fn purge(vault: &mut Vault, name: &str) -> ApiResponse {
    if vault.keys.purge(name) {
        ApiResponse::empty(StatusCode::NO_CONTENT)
    } else {
        deleted_not_found(name)
    }
}

fn backup(vault: &Vault, name: &str) -> ApiResponse {
    match vault.keys.get(name) {
        Some(object) => backup_blob("key", object),
        None => key_not_found(name),
    }
}

fn restore(vault: &mut Vault, context: &Context<'_>) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let object: Object<KeyData> = match restore_blob("key", &body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    if vault.keys.is_deleted(&object.name) {
        return deleted_conflict("Key", "key", &object.name);
    }
    if vault.keys.get(&object.name).is_some() {
        return ApiResponse::error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("Key {} already exists in this vault.", object.name),
            None,
        );
    }
    vault
        .keys
        .active
        .insert(object.name.to_ascii_lowercase(), object.clone());
    match object.latest() {
        Some(latest) => ok(&bundle(context, &object, latest)),
        None => key_not_found(&object.name),
    }
}
