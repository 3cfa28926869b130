//! Secrets: set (new version each time), get latest or a version, list and versions (no values),
//! update attributes, soft-delete / recover / purge, backup / restore. Certificate backing secrets
//! live here too (`managed: true`, `kid` set) but are written only by `certificates`.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    backup_blob, bad_parameter, deleted_conflict, invalid_name, method_not_allowed, not_found,
    not_found_path, ok, ordinal_key, page, restore_blob, valid_name, Attributes, Context, Object,
    Vault, Version,
};
use crate::http::{new_version, ApiResponse};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SecretData {
    pub value: String,
    pub content_type: Option<String>,
    pub managed: bool,
    pub kid: Option<String>,
}

fn bundle(
    base: &str,
    object: &Object<SecretData>,
    version: &Version<SecretData>,
    with_value: bool,
) -> Value {
    let mut out = json!({});
    if with_value {
        out["value"] = json!(version.data.value);
    }
    if let Some(content_type) = &version.data.content_type {
        out["contentType"] = json!(content_type);
    }
    out["id"] = json!(format!("{base}/secrets/{}/{}", object.name, version.id));
    if version.data.managed {
        out["managed"] = json!(true);
    }
    if let Some(kid) = &version.data.kid {
        // Backing secrets store the kid relative to the vault so it follows the request host.
        let kid = if kid.starts_with('/') {
            format!("{base}{kid}")
        } else {
            kid.clone()
        };
        out["kid"] = json!(kid);
    }
    out["attributes"] = version.attributes.to_json();
    if let Some(tags) = &version.tags {
        out["tags"] = tags.clone();
    }
    out
}

/// A list item: no value; `versioned` decides whether the id carries the version.
fn item(
    base: &str,
    object: &Object<SecretData>,
    version: &Version<SecretData>,
    versioned: bool,
) -> Value {
    let mut out = bundle(base, object, version, false);
    if !versioned {
        out["id"] = json!(format!("{base}/secrets/{}", object.name));
    }
    out.as_object_mut().map(|map| map.remove("kid"));
    out
}

pub(super) fn route(vault: &mut Vault, context: &Context<'_>, segments: &[&str]) -> ApiResponse {
    let method = context.request.method.as_str();
    let deleted = segments[0].eq_ignore_ascii_case("deletedsecrets");
    match (deleted, &segments[1..], method) {
        (false, [], "GET") => list(vault, context),
        (false, ["restore"], "POST") => restore(vault, context),
        (false, [name], "PUT") => set(vault, context, name),
        (false, [name], "GET") => get(vault, context, name, None),
        (false, [name], "PATCH") => update(vault, context, name, None),
        (false, [name], "DELETE") => delete(vault, context, name),
        (false, [name, "versions"], "GET") => versions(vault, context, name),
        (false, [name, "backup"], "POST") => backup(vault, name),
        (false, [name, version], "GET") => get(vault, context, name, Some(version)),
        (false, [name, version], "PATCH") => update(vault, context, name, Some(version)),
        (true, [], "GET") => list_deleted(vault, context),
        (true, [name], "GET") => get_deleted(vault, context, name),
        (true, [name], "DELETE") => purge(vault, name),
        (true, [name, "recover"], "POST") => recover(vault, context, name),
        (_, [] | [_] | [_, _], _) => method_not_allowed(),
        _ => not_found_path(),
    }
}

fn secret_not_found(name: &str) -> ApiResponse {
    not_found("SecretNotFound", "secret", name)
}

fn deleted_not_found(name: &str) -> ApiResponse {
    ApiResponse::error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!("Deleted Secret not found: {name}"),
        None,
    )
}

fn set(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if !valid_name(name) {
        return invalid_name("Secret", name);
    }
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(value) = body.get("value").and_then(Value::as_str) else {
        return bad_parameter("The request body must contain a string property 'value'.");
    };
    if vault.secrets.is_deleted(name) {
        return deleted_conflict("Secret", "secret", name);
    }
    let mut attributes = Attributes::new();
    attributes.apply(&body["attributes"]);
    let version = Version {
        id: new_version(),
        attributes,
        tags: body.get("tags").filter(|tags| tags.is_object()).cloned(),
        data: SecretData {
            value: value.to_owned(),
            content_type: body["contentType"].as_str().map(str::to_owned),
            managed: false,
            kid: None,
        },
    };
    vault.secrets.push(name, version);
    match vault.secrets.get(name) {
        Some(object) => match object.latest() {
            Some(latest) => ok(&bundle(&context.base, object, latest, true)),
            None => secret_not_found(name),
        },
        None => secret_not_found(name),
    }
}

/// Stores a certificate's backing secret version (same version id as the certificate).
pub(super) fn put_backing(vault: &mut Vault, name: &str, version: Version<SecretData>) {
    vault.secrets.push(name, version);
}

fn get(vault: &Vault, context: &Context<'_>, name: &str, version: Option<&str>) -> ApiResponse {
    let Some(object) = vault.secrets.get(name) else {
        return secret_not_found(name);
    };
    let Some(found) = object.version(version) else {
        return secret_not_found(&format!("{name}/{}", version.unwrap_or_default()));
    };
    if !found.attributes.enabled {
        return ApiResponse::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Operation get is not allowed on a disabled secret.",
            Some("SecretDisabled"),
        );
    }
    ok(&bundle(&context.base, object, found, true))
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
    let Some(object) = vault.secrets.get_mut(name) else {
        return secret_not_found(name);
    };
    let Some(found) = object.version_mut(version) else {
        return secret_not_found(&format!("{name}/{}", version.unwrap_or_default()));
    };
    found.attributes.apply(&body["attributes"]);
    found.attributes.updated = crate::http::now_unix();
    if let Some(content_type) = body.get("contentType").and_then(Value::as_str) {
        found.data.content_type = Some(content_type.to_owned());
    }
    if let Some(tags) = body.get("tags").filter(|tags| tags.is_object()) {
        found.tags = Some(tags.clone());
    }
    let found = found.clone();
    let object = object.clone();
    ok(&bundle(&context.base, &object, &found, false))
}

fn list(vault: &Vault, context: &Context<'_>) -> ApiResponse {
    let items = vault
        .secrets
        .active
        .iter()
        .filter_map(|(key, object)| {
            object
                .latest()
                .map(|latest| (key.clone(), item(&context.base, object, latest, false)))
        })
        .collect();
    page(context, items)
}

fn versions(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    let Some(object) = vault.secrets.get(name) else {
        return secret_not_found(name);
    };
    let items = object
        .versions
        .iter()
        .enumerate()
        .map(|(index, version)| {
            (
                ordinal_key(index),
                item(&context.base, object, version, true),
            )
        })
        .collect();
    page(context, items)
}

fn deleted_bundle(context: &Context<'_>, deleted: &super::Deleted<SecretData>) -> Option<Value> {
    let latest = deleted.object.latest()?;
    let mut out = bundle(&context.base, &deleted.object, latest, false);
    deleted.decorate(&context.base, "deletedsecrets", &mut out);
    Some(out)
}

fn delete(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    match vault
        .secrets
        .delete(name)
        .and_then(|deleted| deleted_bundle(context, deleted))
    {
        Some(out) => ok(&out),
        None => secret_not_found(name),
    }
}

fn list_deleted(vault: &Vault, context: &Context<'_>) -> ApiResponse {
    let items = vault
        .secrets
        .deleted
        .iter()
        // Backing secrets of deleted certificates are reached through the certificate.
        .filter(|(_, deleted)| !deleted.object.latest().is_some_and(|v| v.data.managed))
        .filter_map(|(key, deleted)| {
            let mut out = deleted_bundle(context, deleted)?;
            out["id"] = json!(format!("{}/secrets/{}", context.base, deleted.object.name));
            out.as_object_mut().map(|map| map.remove("kid"));
            Some((key.clone(), out))
        })
        .collect();
    page(context, items)
}

fn get_deleted(vault: &Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    vault
        .secrets
        .deleted
        .get(&name.to_ascii_lowercase())
        .and_then(|deleted| deleted_bundle(context, deleted))
        .map_or_else(|| deleted_not_found(name), |out| ok(&out))
}

fn recover(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    match vault.secrets.recover(name) {
        Some(object) => match object.latest() {
            Some(latest) => ok(&bundle(&context.base, object, latest, false)),
            None => deleted_not_found(name),
        },
        None => deleted_not_found(name),
    }
}

fn purge(vault: &mut Vault, name: &str) -> ApiResponse {
    if vault.secrets.purge(name) {
        ApiResponse::empty(StatusCode::NO_CONTENT)
    } else {
        deleted_not_found(name)
    }
}

fn backup(vault: &Vault, name: &str) -> ApiResponse {
    match vault.secrets.get(name) {
        Some(object) => backup_blob("secret", object),
        None => secret_not_found(name),
    }
}

fn restore(vault: &mut Vault, context: &Context<'_>) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let object: Object<SecretData> = match restore_blob("secret", &body) {
        Ok(object) => object,
        Err(response) => return response,
    };
    if vault.secrets.is_deleted(&object.name) {
        return deleted_conflict("Secret", "secret", &object.name);
    }
    if vault.secrets.get(&object.name).is_some() {
        return ApiResponse::error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("Secret {} already exists in this vault.", object.name),
            None,
        );
    }
    let key = object.name.to_ascii_lowercase();
    vault.secrets.active.insert(key, object.clone());
    match object.latest() {
        Some(latest) => ok(&bundle(&context.base, &object, latest, false)),
        None => secret_not_found(&object.name),
    }
}
