//! Secrets: set (new version each time), get latest or a version, list and versions (no values),
//! update attributes, soft-delete / recover / purge, backup / restore. Certificate backing secrets
//! live here too (`managed: true`, `kid` set) but are written only by `certificates`.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::collection::{self, conflict_if_deleted, object_not_found, Collection, Kind};
use super::{
    bad_parameter, invalid_name, ok, valid_name, Attributes, Context, Object, Vault, Version,
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

impl Kind for SecretData {
    const KIND: &'static str = "secret";
    const TITLE: &'static str = "Secret";
    const DELETED_PATH: &'static str = "deletedsecrets";

    fn collection(vault: &Vault) -> &Collection<Self> {
        &vault.secrets
    }

    fn collection_mut(vault: &mut Vault) -> &mut Collection<Self> {
        &mut vault.secrets
    }

    fn bundle(
        _vault: &Vault,
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
    ) -> Value {
        bundle(&context.base, object, version, false)
    }

    fn item(
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
        versioned: bool,
    ) -> Value {
        item(&context.base, object, version, versioned)
    }

    fn update(version: &mut Version<Self>, body: &Value) {
        if let Some(content_type) = body.get("contentType").and_then(Value::as_str) {
            version.data.content_type = Some(content_type.to_owned());
        }
    }

    fn unlisted_when_deleted(data: &Self) -> bool {
        // Backing secrets of deleted certificates are reached through the certificate.
        data.managed
    }
}

pub(super) fn route(vault: &mut Vault, context: &Context<'_>, segments: &[&str]) -> ApiResponse {
    let deleted = segments[0].eq_ignore_ascii_case("deletedsecrets");
    match (deleted, &segments[1..], context.request.method.as_str()) {
        (false, [name], "PUT") => set(vault, context, name),
        // A value is only read from a current, enabled version.
        (false, [name], "GET") => get(vault, context, name, None),
        (false, [name, version], "GET") if *version != "versions" => {
            get(vault, context, name, Some(version))
        }
        (_, rest, _) => collection::route::<SecretData>(vault, context, deleted, rest),
    }
}

fn secret_not_found(name: &str) -> ApiResponse {
    object_not_found::<SecretData>(name)
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
    if let Some(conflict) = conflict_if_deleted::<SecretData>(vault, name) {
        return conflict;
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
