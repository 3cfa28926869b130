//! Real key material for the Key Vault emulator: key generation (aws-lc-rs through rcgen), public
//! JWKs from `SubjectPublicKeyInfo`, self-signed certificates and CSRs from a certificate policy,
//! X.509 parsing for imports, and PKCS#12 / PEM encodings of a certificate's backing secret.
//! Errors are plain strings because they become `BadParameter` messages verbatim.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKeyChain};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, OtherNameValue, PublicKeyData as _, RsaKeySize, SanType, SignatureAlgorithm,
};
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::{json, Map, Value};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

pub(crate) const CONTENT_TYPE_PKCS12: &str = "application/x-pkcs12";
pub(crate) const CONTENT_TYPE_PEM: &str = "application/x-pem-file";

/// A generated key pair: private PKCS#8 (kept for certificate signing) and public SPKI.
#[derive(Clone)]
pub(crate) struct KeyMaterial {
    pub pkcs8: Vec<u8>,
    pub spki: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl KeyMaterial {
    fn key_pair(&self) -> Result<KeyPair, String> {
        KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(self.pkcs8.clone()),
            self.alg,
        )
        .map_err(|error| format!("key material is unusable: {error}"))
    }
}

/// Generates a key for `kty` (RSA, RSA-HSM, EC, EC-HSM), `key_size` (RSA) or `crv` (EC).
pub(crate) fn generate_key(
    kty: &str,
    key_size: Option<u64>,
    crv: Option<&str>,
) -> Result<KeyMaterial, String> {
    let (key_pair, alg) = match kty {
        "RSA" | "RSA-HSM" => {
            let size = match key_size.unwrap_or(2048) {
                2048 => RsaKeySize::_2048,
                3072 => RsaKeySize::_3072,
                4096 => RsaKeySize::_4096,
                other => {
                    return Err(format!(
                        "Invalid key size {other}; supported sizes are 2048, 3072 and 4096."
                    ))
                }
            };
            let alg = &rcgen::PKCS_RSA_SHA256;
            (KeyPair::generate_rsa_for(alg, size), alg)
        }
        "EC" | "EC-HSM" => {
            let alg = match crv.unwrap_or("P-256") {
                "P-256" => &rcgen::PKCS_ECDSA_P256_SHA256,
                "P-384" => &rcgen::PKCS_ECDSA_P384_SHA384,
                "P-521" => &rcgen::PKCS_ECDSA_P521_SHA512,
                other => {
                    return Err(format!(
                        "The curve {other} is not supported by the emulator."
                    ))
                }
            };
            (KeyPair::generate_for(alg), alg)
        }
        other => {
            return Err(format!(
                "The key type {other} is not supported by the emulator."
            ))
        }
    };
    let key_pair = key_pair.map_err(|error| format!("key generation failed: {error}"))?;
    Ok(KeyMaterial {
        pkcs8: key_pair.serialize_der(),
        spki: key_pair.subject_public_key_info(),
        alg,
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    &bytes[start..]
}

/// The public JWK members (`n`,`e` or `crv`,`x`,`y`) of a DER `SubjectPublicKeyInfo`.
pub(crate) fn public_jwk(spki_der: &[u8]) -> Result<Map<String, Value>, String> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|error| format!("invalid public key: {error}"))?;
    jwk_of(&spki)
}

fn jwk_of(spki: &SubjectPublicKeyInfo<'_>) -> Result<Map<String, Value>, String> {
    let mut jwk = Map::new();
    match spki
        .parsed()
        .map_err(|error| format!("unsupported public key: {error}"))?
    {
        PublicKey::RSA(rsa) => {
            jwk.insert(
                "n".into(),
                json!(URL_SAFE_NO_PAD.encode(strip_leading_zeros(rsa.modulus))),
            );
            jwk.insert(
                "e".into(),
                json!(URL_SAFE_NO_PAD.encode(strip_leading_zeros(rsa.exponent))),
            );
        }
        PublicKey::EC(point) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|parameters| parameters.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            let crv = match curve.as_str() {
                "1.2.840.10045.3.1.7" => "P-256",
                "1.3.132.0.34" => "P-384",
                "1.3.132.0.35" => "P-521",
                "1.3.132.0.10" => "P-256K",
                other => return Err(format!("unsupported curve {other}")),
            };
            let data = point.data();
            // Uncompressed point: 0x04 || x || y.
            let coordinates = data.get(1..).unwrap_or_default();
            let half = coordinates.len() / 2;
            jwk.insert("crv".into(), json!(crv));
            jwk.insert(
                "x".into(),
                json!(URL_SAFE_NO_PAD.encode(&coordinates[..half])),
            );
            jwk.insert(
                "y".into(),
                json!(URL_SAFE_NO_PAD.encode(&coordinates[half..])),
            );
        }
        _ => return Err("unsupported public key type".to_owned()),
    }
    Ok(jwk)
}

/// `kty` family (RSA or EC) of a public JWK.
pub(crate) fn jwk_family(jwk: &Map<String, Value>) -> &'static str {
    if jwk.contains_key("crv") {
        "EC"
    } else {
        "RSA"
    }
}

/// Base64url SHA-1 thumbprint of a DER certificate (the `x5t` member).
pub(crate) fn thumbprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// What the emulator reads out of an X.509 certificate.
pub(crate) struct CertificateInfo {
    pub jwk: Map<String, Value>,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub key_size: Option<usize>,
}

pub(crate) fn inspect_certificate(der: &[u8]) -> Result<CertificateInfo, String> {
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|error| format!("The certificate is not valid X.509: {error}"))?;
    let jwk = jwk_of(certificate.public_key())?;
    let key_size = match certificate.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => Some(strip_leading_zeros(rsa.modulus).len() * 8),
        _ => None,
    };
    // Key Vault writes subjects most-significant-last with `S=` for the state.
    let mut parts: Vec<String> = certificate
        .subject()
        .to_string()
        .split(", ")
        .map(|part| part.replacen("ST=", "S=", 1))
        .collect();
    parts.reverse();
    Ok(CertificateInfo {
        jwk,
        subject: parts.join(", "),
        not_before: certificate.validity().not_before.timestamp(),
        not_after: certificate.validity().not_after.timestamp(),
        is_ca: certificate
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|constraints| constraints.value.ca),
        key_size,
    })
}

fn distinguished_name(subject: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for part in subject.split([',', ';']) {
        let Some((kind, value)) = part.split_once('=') else {
            continue;
        };
        let kind = match kind.trim().to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => DnType::CountryName,
            "S" | "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            _ => continue,
        };
        name.push(kind, value.trim());
    }
    name
}

fn certificate_params(policy: &Value) -> Result<CertificateParams, String> {
    let x509 = &policy["x509_props"];
    let names = |member: &str| -> Vec<String> {
        x509["sans"][member]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut params = CertificateParams::new(names("dns_names"))
        .map_err(|error| format!("invalid subject alternative name: {error}"))?;
    // The policy's e-mail and UPN alternative names go into the certificate too, as Key Vault
    // puts them (UPN: the Microsoft otherName 1.3.6.1.4.1.311.20.2.3).
    for email in names("emails") {
        let email = email
            .try_into()
            .map_err(|error| format!("invalid e-mail alternative name: {error}"))?;
        params.subject_alt_names.push(SanType::Rfc822Name(email));
    }
    for upn in names("upns") {
        params.subject_alt_names.push(SanType::OtherName((
            vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
            OtherNameValue::Utf8String(upn),
        )));
    }
    params.distinguished_name = distinguished_name(x509["subject"].as_str().unwrap_or_default());
    let months = x509["validity_months"]
        .as_i64()
        .unwrap_or(12)
        .clamp(1, 1200);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(months * 30);
    params.key_usages = x509["key_usage"]
        .as_array()
        .map(|usages| {
            usages
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|usage| match usage {
                    "digitalSignature" => Some(KeyUsagePurpose::DigitalSignature),
                    "keyEncipherment" => Some(KeyUsagePurpose::KeyEncipherment),
                    "dataEncipherment" => Some(KeyUsagePurpose::DataEncipherment),
                    "keyAgreement" => Some(KeyUsagePurpose::KeyAgreement),
                    "keyCertSign" => Some(KeyUsagePurpose::KeyCertSign),
                    "cRLSign" => Some(KeyUsagePurpose::CrlSign),
                    "nonRepudiation" => Some(KeyUsagePurpose::ContentCommitment),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    params.extended_key_usages = x509["ekus"]
        .as_array()
        .map(|ekus| {
            ekus.iter()
                .filter_map(Value::as_str)
                .filter_map(|eku| match eku {
                    "1.3.6.1.5.5.7.3.1" => Some(ExtendedKeyUsagePurpose::ServerAuth),
                    "1.3.6.1.5.5.7.3.2" => Some(ExtendedKeyUsagePurpose::ClientAuth),
                    "1.3.6.1.5.5.7.3.3" => Some(ExtendedKeyUsagePurpose::CodeSigning),
                    "1.3.6.1.5.5.7.3.4" => Some(ExtendedKeyUsagePurpose::EmailProtection),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(params)
}

/// Self-signs a certificate for `key` following the policy's `x509_props`.
pub(crate) fn self_signed(policy: &Value, key: &KeyMaterial) -> Result<Vec<u8>, String> {
    let params = certificate_params(policy)?;
    let key_pair = key.key_pair()?;
    let certificate = params
        .self_signed(&key_pair)
        .map_err(|error| format!("certificate generation failed: {error}"))?;
    Ok(certificate.der().to_vec())
}

/// A PKCS#10 request for `key`, as a pending certificate operation reports in `csr`.
pub(crate) fn csr(policy: &Value, key: &KeyMaterial) -> Result<Vec<u8>, String> {
    let params = certificate_params(policy)?;
    let key_pair = key.key_pair()?;
    let request = params
        .serialize_request(&key_pair)
        .map_err(|error| format!("csr generation failed: {error}"))?;
    Ok(request.der().to_vec())
}

/// Certificate chain and (when readable) private key out of an import's `value`.
pub(crate) struct ImportedMaterial {
    pub certificates: Vec<Vec<u8>>,
    /// Plain PKCS#8 private key, when one was present and readable.
    pub key_pkcs8: Option<Vec<u8>>,
    /// A private key PEM block kept verbatim because the emulator cannot decode it (encrypted or
    /// non-PKCS#8); it is handed back as is in a PEM backing secret.
    pub opaque_key_pem: Option<String>,
    pub was_pem: bool,
}

/// Decodes an import `value`: base64 of a PFX (with `pwd`) or of a PEM file (also raw PEM text).
pub(crate) fn parse_import(
    value: &str,
    password: Option<&str>,
) -> Result<ImportedMaterial, String> {
    let bytes = if value.trim_start().starts_with("-----BEGIN") {
        value.as_bytes().to_vec()
    } else {
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        STANDARD
            .decode(compact.as_bytes())
            .or_else(|_| URL_SAFE_NO_PAD.decode(compact.trim_end_matches('=').as_bytes()))
            .map_err(|_| "The specified certificate value is not valid base64.".to_owned())?
    };
    let text_start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if bytes[text_start..].starts_with(b"-----BEGIN") {
        let blocks = pem::parse_many(&bytes)
            .map_err(|error| format!("The specified PEM content is invalid: {error}"))?;
        let mut material = ImportedMaterial {
            certificates: Vec::new(),
            key_pkcs8: None,
            opaque_key_pem: None,
            was_pem: true,
        };
        for block in blocks {
            match block.tag() {
                "CERTIFICATE" => material.certificates.push(block.contents().to_vec()),
                "PRIVATE KEY" => material.key_pkcs8 = Some(block.contents().to_vec()),
                tag if tag.ends_with("PRIVATE KEY") => {
                    material.opaque_key_pem = Some(pem::encode(&block));
                }
                _ => {}
            }
        }
        return Ok(material);
    }
    let store = match KeyStore::from_pkcs12(
        &bytes,
        password.unwrap_or(""),
        Pkcs12ImportPolicy::Relaxed,
    ) {
        Ok(store) => store,
        Err(error) => {
            // An empty password has two encodings; Key Vault's own exports use the one
            // p12-keystore does not try.
            if password.unwrap_or_default().is_empty() {
                if let Ok(contents) = super::pfx::read_without_password(&bytes) {
                    return Ok(ImportedMaterial {
                        certificates: contents.certificates,
                        key_pkcs8: contents.key_pkcs8,
                        opaque_key_pem: None,
                        was_pem: false,
                    });
                }
            }
            return Err(format!("The specified PKCS#12 X.509 certificate content can not be read. Please check if certificate is in valid PKCS#12 format. ({error})"));
        }
    };
    let mut material = ImportedMaterial {
        certificates: Vec::new(),
        key_pkcs8: None,
        opaque_key_pem: None,
        was_pem: false,
    };
    if let Some((_, chain)) = store.private_key_chain() {
        material.key_pkcs8 = Some(chain.key().as_der().to_vec());
        material.certificates = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
    }
    if material.certificates.is_empty() {
        for (_, entry) in store.entries() {
            if let KeyStoreEntry::Certificate(certificate) = entry {
                material.certificates.push(certificate.as_der().to_vec());
            }
        }
    }
    Ok(material)
}

/// A password-less PKCS#12 of key and chain, as Key Vault serves a certificate's backing secret.
pub(crate) fn pkcs12(key_pkcs8: &[u8], certificates: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let key = p12_keystore::PrivateKey::from_der(key_pkcs8)
        .map_err(|error| format!("invalid private key: {error}"))?;
    let chain = certificates
        .iter()
        .map(|der| p12_keystore::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("invalid certificate: {error}"))?;
    let local_key_id = certificates
        .first()
        .map(|der| thumbprint(der))
        .unwrap_or_default();
    let mut store = KeyStore::new();
    store.add_entry(
        "1",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.into_bytes(), key, chain)),
    );
    store
        .writer("")
        .write()
        .map_err(|error| format!("pkcs12 encoding failed: {error}"))
}

/// PEM private key (PKCS#8) followed by the certificate chain.
pub(crate) fn pem_bundle(key_pem: Option<String>, certificates: &[Vec<u8>]) -> String {
    let mut out = key_pem.unwrap_or_default();
    for der in certificates {
        out.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())));
    }
    out
}

pub(crate) fn pkcs8_pem(pkcs8: &[u8]) -> String {
    pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_rsa_key_has_public_jwk() {
        let key = generate_key("RSA", Some(2048), None).expect("rsa");
        let jwk = public_jwk(&key.spki).expect("jwk");
        assert_eq!(jwk["e"], "AQAB");
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().expect("n"))
            .expect("b64");
        assert_eq!(n.len(), 256);
    }

    #[test]
    fn generated_ec_key_has_curve_and_coordinates() {
        let key = generate_key("EC", None, Some("P-384")).expect("ec");
        let jwk = public_jwk(&key.spki).expect("jwk");
        assert_eq!(jwk["crv"], "P-384");
        let x = URL_SAFE_NO_PAD
            .decode(jwk["x"].as_str().expect("x"))
            .expect("b64");
        assert_eq!(x.len(), 48);
    }

    #[test]
    fn self_signed_certificate_round_trips_through_pkcs12_and_pem() {
        let key = generate_key("RSA", Some(2048), None).expect("rsa");
        let policy = json!({"x509_props": {"subject": "CN=unit.example", "validity_months": 12}});
        let der = self_signed(&policy, &key).expect("cert");
        let info = inspect_certificate(&der).expect("inspect");
        assert_eq!(info.subject, "CN=unit.example");
        assert_eq!(info.key_size, Some(2048));
        let pfx = pkcs12(&key.pkcs8, std::slice::from_ref(&der)).expect("pfx");
        let imported = parse_import(&STANDARD.encode(&pfx), None).expect("import pfx");
        assert_eq!(imported.certificates, vec![der.clone()]);
        assert_eq!(imported.key_pkcs8.as_deref(), Some(key.pkcs8.as_slice()));
        let pem_text = pem_bundle(Some(pkcs8_pem(&key.pkcs8)), std::slice::from_ref(&der));
        let imported = parse_import(&STANDARD.encode(pem_text), None).expect("import pem");
        assert!(imported.was_pem);
        assert_eq!(imported.certificates.len(), 1);
    }
}
