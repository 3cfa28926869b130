//! Certificates: create as a long-running operation (202 + `pending` polled until `completed`;
//! only issuer `Self` completes, any other issuer stays `inProgress`), import of PFX or PEM, get,
//! policy, list, versions, update, soft-delete / recover / purge. A completed certificate also
//! appears as a managed key and a managed backing secret with the same version id, whose value is
//! the PKCS#12 (base64) or PEM encoding the policy's `secret_props.contentType` asks for.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::collection::{
    self, conflict_if_deleted, object_not_found, restore_conflict, Change, Collection, Kind,
};
use super::crypto::{self, KeyMaterial, CONTENT_TYPE_PEM, CONTENT_TYPE_PKCS12};
use super::keys::KeyData;
use super::policy::{get_policy, normalize_policy, policy_json, update_policy};
use super::secrets::SecretData;
use super::{
    backup_blob, bad_parameter, invalid_name, keys, ok, restore_blob, secrets, valid_name,
    Attributes, Context, Object, Vault, Version,
};
use crate::http::{new_version, ApiResponse};

/// A self-signed request completes on the second poll, or after this long without polls.
const COMPLETE_AFTER: Duration = Duration::from_secs(2);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct CertificateData {
    pub cer: Vec<u8>,
    pub x5t: String,
    /// The policy without its `id` (rendered per request host).
    pub policy: Value,
}

pub(crate) struct PendingCertificate {
    name: String,
    request_id: String,
    issuer: String,
    csr: Vec<u8>,
    pub(super) policy: Value,
    attributes: Value,
    tags: Option<Value>,
    key: KeyMaterial,
    polls: u32,
    started: Instant,
    completed: bool,
    error: Option<String>,
}

fn operation_json(base: &str, pending: &PendingCertificate) -> Value {
    let mut out = json!({
        "id": format!("{base}/certificates/{}/pending", pending.name),
        "issuer": { "name": pending.issuer },
        "csr": STANDARD.encode(&pending.csr),
        "cancellation_requested": false,
        "request_id": pending.request_id,
    });
    if let Some(message) = &pending.error {
        out["status"] = json!("failed");
        out["error"] = json!({ "code": "CertificateCreationFailed", "message": message });
    } else if pending.completed {
        out["status"] = json!("completed");
        out["target"] = json!(format!("{base}/certificates/{}", pending.name));
    } else {
        out["status"] = json!("inProgress");
        out["status_details"] = json!(
            "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."
        );
    }
    out
}

fn attributes_json(attributes: &Attributes) -> Value {
    attributes.to_json()
}

/// A certificate bundle. `pending` names the certificate's creation operation, which Key Vault
/// keeps (and links from the bundle) for certificates made by `create`, not for imported ones.
fn bundle(
    base: &str,
    object: &Object<CertificateData>,
    version: &Version<CertificateData>,
    pending: bool,
) -> Value {
    let mut out = json!({
        "id": format!("{base}/certificates/{}/{}", object.name, version.id),
        "kid": format!("{base}/keys/{}/{}", object.name, version.id),
        "sid": format!("{base}/secrets/{}/{}", object.name, version.id),
        "x5t": version.data.x5t,
        "cer": STANDARD.encode(&version.data.cer),
        "attributes": attributes_json(&version.attributes),
        "policy": policy_json(base, &object.name, &version.data.policy),
    });
    if let Some(tags) = &version.tags {
        out["tags"] = tags.clone();
    }
    if pending {
        out["pending"] = json!({ "id": format!("{base}/certificates/{}/pending", object.name) });
    }
    out
}

pub(super) fn has_pending(vault: &Vault, name: &str) -> bool {
    vault.pending.contains_key(&name.to_ascii_lowercase())
}

fn item(
    base: &str,
    object: &Object<CertificateData>,
    version: &Version<CertificateData>,
    versioned: bool,
) -> Value {
    let id = if versioned {
        format!("{base}/certificates/{}/{}", object.name, version.id)
    } else {
        format!("{base}/certificates/{}", object.name)
    };
    // List items carry no recovery members in their attributes, and an always-empty `subject`.
    let mut attributes = attributes_json(&version.attributes);
    if let Some(members) = attributes.as_object_mut() {
        members.remove("recoveryLevel");
        members.remove("recoverableDays");
    }
    let mut out = json!({
        "id": id,
        "x5t": version.data.x5t,
        "attributes": attributes,
        "subject": "",
    });
    if let Some(tags) = &version.tags {
        out["tags"] = tags.clone();
    }
    out
}

impl Kind for CertificateData {
    const KIND: &'static str = "certificate";
    const TITLE: &'static str = "Certificate";
    const DELETED_PATH: &'static str = "deletedcertificates";

    fn collection(vault: &Vault) -> &Collection<Self> {
        &vault.certificates
    }

    fn collection_mut(vault: &mut Vault) -> &mut Collection<Self> {
        &mut vault.certificates
    }

    fn bundle(
        vault: &Vault,
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
    ) -> Value {
        bundle(
            &context.base,
            object,
            version,
            has_pending(vault, &object.name),
        )
    }

    fn item(
        context: &Context<'_>,
        object: &Object<Self>,
        version: &Version<Self>,
        versioned: bool,
    ) -> Value {
        item(&context.base, object, version, versioned)
    }

    /// The backing key and secret go with the certificate. The creation operation stays with
    /// a deleted certificate (recover brings it back); purge removes it.
    fn cascade(vault: &mut Vault, name: &str, change: Change) {
        match change {
            Change::Delete => {
                vault.keys.delete(name);
                vault.secrets.delete(name);
            }
            Change::Recover => {
                vault.keys.recover(name);
                vault.secrets.recover(name);
            }
            Change::Purge => {
                vault.pending.remove(&name.to_ascii_lowercase());
                vault.keys.purge(name);
                vault.secrets.purge(name);
            }
        }
    }
}

pub(super) fn route(vault: &mut Vault, context: &Context<'_>, segments: &[&str]) -> ApiResponse {
    let deleted = segments[0].eq_ignore_ascii_case("deletedcertificates");
    match (deleted, &segments[1..], context.request.method.as_str()) {
        (false, ["issuers"], "GET") => ok(&json!({ "value": [], "nextLink": null })),
        (false, ["contacts"], "GET") => ApiResponse::error(
            StatusCode::NOT_FOUND,
            "ContactsNotFound",
            "Contacts not found",
            None,
        ),
        (false, ["restore"], "POST") => restore(vault, context),
        (false, [name, "backup"], "POST") => backup(vault, name),
        (false, [name, "create"], "POST") => create(vault, context, name),
        (false, [name, "import"], "POST") => import(vault, context, name),
        (false, [name, "pending"], "GET") => pending(vault, context, name),
        (false, [name, "policy"], "GET") => get_policy(vault, context, name),
        (false, [name, "policy"], "PATCH") => update_policy(vault, context, name),
        (_, rest, _) => collection::route::<CertificateData>(vault, context, deleted, rest),
    }
}

pub(super) fn certificate_not_found(name: &str) -> ApiResponse {
    object_not_found::<CertificateData>(name)
}

fn create(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if !valid_name(name) {
        return invalid_name("Certificate", name);
    }
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(requested) = body.get("policy").filter(|policy| policy.is_object()) else {
        return bad_parameter("The request body must contain the property 'policy'.");
    };
    if let Some(conflict) = conflict_if_deleted::<CertificateData>(vault, name) {
        return conflict;
    }
    let policy = normalize_policy(requested, None, None);
    if policy["x509_props"]["subject"]
        .as_str()
        .is_none_or(str::is_empty)
        && requested["x509_props"].get("sans").is_none()
    {
        return bad_parameter("Policy must specify a subject or a subject alternative name.");
    }
    let key_props = &policy["key_props"];
    let key = match crypto::generate_key(
        key_props["kty"].as_str().unwrap_or("RSA"),
        key_props["key_size"].as_u64(),
        key_props["crv"].as_str(),
    ) {
        Ok(key) => key,
        Err(message) => return bad_parameter(&message),
    };
    let csr = match crypto::csr(&policy, &key) {
        Ok(csr) => csr,
        Err(message) => return bad_parameter(&message),
    };
    let pending = PendingCertificate {
        name: name.to_owned(),
        request_id: new_version(),
        issuer: policy["issuer"]["name"]
            .as_str()
            .unwrap_or("Unknown")
            .to_owned(),
        csr,
        policy,
        attributes: body["attributes"].clone(),
        tags: body.get("tags").filter(|tags| tags.is_object()).cloned(),
        key,
        polls: 0,
        started: Instant::now(),
        completed: false,
        error: None,
    };
    let operation = operation_json(&context.base, &pending);
    let location = format!(
        "{}/certificates/{name}/pending?api-version={}&request_id={}",
        context.base,
        context
            .request
            .query_param("api-version")
            .unwrap_or_default(),
        pending.request_id
    );
    vault.pending.insert(name.to_ascii_lowercase(), pending);
    ApiResponse::json(StatusCode::ACCEPTED, &operation)
        .with_header("location", location)
        .with_header("retry-after", "1")
}

/// Completes self-signed requests that have been polled once or are old enough.
pub(super) fn advance_pending(vault: &mut Vault) {
    let ready: Vec<String> = vault
        .pending
        .iter()
        .filter(|(_, p)| {
            !p.completed
                && p.error.is_none()
                && p.issuer.eq_ignore_ascii_case("Self")
                && !vault.certificates.is_deleted(&p.name)
                && (p.polls >= 1 || p.started.elapsed() >= COMPLETE_AFTER)
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in ready {
        let Some(pending) = vault.pending.get(&key) else {
            continue;
        };
        let result = crypto::self_signed(&pending.policy, &pending.key);
        let (name, policy, attributes, tags, key_material) = (
            pending.name.clone(),
            pending.policy.clone(),
            pending.attributes.clone(),
            pending.tags.clone(),
            pending.key.clone(),
        );
        match result {
            Ok(der) => {
                let stored = store_certificate(
                    vault,
                    &name,
                    &policy,
                    &attributes,
                    tags,
                    &[der],
                    Some(&key_material.pkcs8),
                    None,
                    None,
                );
                if let Some(pending) = vault.pending.get_mut(&key) {
                    match stored {
                        Ok(()) => pending.completed = true,
                        Err(message) => pending.error = Some(message),
                    }
                }
            }
            Err(message) => {
                if let Some(pending) = vault.pending.get_mut(&key) {
                    pending.error = Some(message);
                }
            }
        }
    }
}

/// Writes a certificate version plus its backing key and secret under one version id.
#[allow(clippy::too_many_arguments)]
fn store_certificate(
    vault: &mut Vault,
    name: &str,
    policy: &Value,
    attributes_request: &Value,
    tags: Option<Value>,
    chain: &[Vec<u8>],
    key_pkcs8: Option<&[u8]>,
    opaque_key_pem: Option<&str>,
    original_pfx: Option<&str>,
) -> Result<(), String> {
    let leaf = chain
        .first()
        .ok_or("The certificate content contains no certificate.")?;
    let info = crypto::inspect_certificate(leaf)?;
    let version_id = new_version();
    let mut attributes = Attributes::new();
    attributes.nbf = Some(info.not_before);
    attributes.exp = Some(info.not_after);
    attributes.apply(attributes_request);
    let content_type = policy["secret_props"]["contentType"]
        .as_str()
        .unwrap_or(CONTENT_TYPE_PKCS12)
        .to_owned();
    let value = if content_type == CONTENT_TYPE_PEM {
        let key_pem = key_pkcs8
            .map(crypto::pkcs8_pem)
            .or_else(|| opaque_key_pem.map(str::to_owned));
        crypto::pem_bundle(key_pem, chain)
    } else if let Some(pkcs8) = key_pkcs8 {
        STANDARD.encode(crypto::pkcs12(pkcs8, chain)?)
    } else {
        // Without a readable key the original upload is the best available PFX.
        original_pfx.unwrap_or_default().to_owned()
    };
    let base_kid = format!("/keys/{name}/{version_id}");
    vault.certificates.push(
        name,
        Version {
            id: version_id.clone(),
            attributes: attributes.clone(),
            tags: tags.clone(),
            data: CertificateData {
                cer: leaf.clone(),
                x5t: crypto::thumbprint(leaf),
                policy: policy.clone(),
            },
        },
    );
    keys::put_backing(
        vault,
        name,
        keys::backing_version(&version_id, policy, info.jwk, attributes.clone()),
    );
    secrets::put_backing(
        vault,
        name,
        Version {
            id: version_id,
            attributes,
            tags,
            data: SecretData {
                value,
                content_type: Some(content_type),
                managed: true,
                // Rendered relative; the bundle turns it into an absolute kid on output.
                kid: Some(base_kid),
            },
        },
    );
    Ok(())
}

fn import(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    if !valid_name(name) {
        return invalid_name("Certificate", name);
    }
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Some(value) = body["value"].as_str() else {
        return bad_parameter("The request body must contain the property 'value'.");
    };
    if let Some(conflict) = conflict_if_deleted::<CertificateData>(vault, name) {
        return conflict;
    }
    let material = match crypto::parse_import(value, body["pwd"].as_str()) {
        Ok(material) => material,
        Err(message) => return bad_parameter(&message),
    };
    let Some(leaf) = material.certificates.first() else {
        return bad_parameter("The specified certificate content contains no X.509 certificate.");
    };
    let info = match crypto::inspect_certificate(leaf) {
        Ok(info) => info,
        Err(message) => return bad_parameter(&message),
    };
    let detected = if material.was_pem {
        CONTENT_TYPE_PEM
    } else {
        CONTENT_TYPE_PKCS12
    };
    let policy = normalize_policy(&body["policy"], Some(&info), Some(detected));
    let original_pfx = (!material.was_pem).then_some(value);
    if let Err(message) = store_certificate(
        vault,
        name,
        &policy,
        &body["attributes"],
        body.get("tags").filter(|tags| tags.is_object()).cloned(),
        &material.certificates,
        material.key_pkcs8.as_deref(),
        material.opaque_key_pem.as_deref(),
        original_pfx,
    ) {
        return bad_parameter(&message);
    }
    collection::render::<CertificateData>(vault, context, name, None)
}

fn pending(vault: &mut Vault, context: &Context<'_>, name: &str) -> ApiResponse {
    let deleted = vault.certificates.is_deleted(name);
    match vault
        .pending
        .get_mut(&name.to_ascii_lowercase())
        .filter(|_| !deleted)
    {
        Some(pending) => {
            pending.polls += 1;
            ok(&operation_json(&context.base, pending))
        }
        None => ApiResponse::error(
            StatusCode::NOT_FOUND,
            "PendingCertificateNotFound",
            &format!("Pending certificate not found: {name}"),
            None,
        ),
    }
}

/// What a certificate backup holds: every version of the certificate and of its backing key and
/// secret, so a restore brings all three back under the same version ids.
#[derive(Serialize, Deserialize)]
struct CertificateBackup {
    certificate: Object<CertificateData>,
    key: Option<Object<KeyData>>,
    secret: Option<Object<SecretData>>,
}

fn backup(vault: &Vault, name: &str) -> ApiResponse {
    let Some(certificate) = vault.certificates.get(name) else {
        return certificate_not_found(name);
    };
    backup_blob(
        "certificate",
        &CertificateBackup {
            certificate: certificate.clone(),
            key: vault.keys.get(name).cloned(),
            secret: vault.secrets.get(name).cloned(),
        },
    )
}

fn restore(vault: &mut Vault, context: &Context<'_>) -> ApiResponse {
    let body = match context.body() {
        Ok(body) => body,
        Err(response) => return response,
    };
    let backup: CertificateBackup = match restore_blob("certificate", &body) {
        Ok(backup) => backup,
        Err(response) => return response,
    };
    let name = backup.certificate.name.clone();
    if let Some(conflict) = restore_conflict::<CertificateData>(vault, &name) {
        return conflict;
    }
    let key = name.to_ascii_lowercase();
    if let Some(backing) = backup.key {
        vault.keys.active.insert(key.clone(), backing);
    }
    if let Some(backing) = backup.secret {
        vault.secrets.active.insert(key.clone(), backing);
    }
    let out = backup
        .certificate
        .latest()
        .map(|latest| bundle(&context.base, &backup.certificate, latest, false));
    vault.certificates.active.insert(key, backup.certificate);
    out.map_or_else(|| certificate_not_found(&name), |out| ok(&out))
}
