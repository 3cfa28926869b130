//! Shared access signatures, signed locally with HMAC-SHA256: account SAS from an account key,
//! and container SAS from a user delegation key (Entra ID). Also the connection-string parser.
//!
//! Every token and key is a [`Sensitive`]; nothing here formats one into a message.

use std::collections::BTreeMap;

use azure_core::credentials::Secret;

use super::iso_seconds;
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

/// Signed version of the SAS tokens atg makes (string-to-sign layouts of 2020-12-06 and later).
pub const SAS_VERSION: &str = "2021-06-08";

fn sign(string_to_sign: &str, base64_key: &Sensitive) -> Result<String, AzureError> {
    azure_core::hmac::hmac_sha256(string_to_sign, &Secret::new(base64_key.expose().to_owned()))
        .map_err(|_| AzureError::new(AzureErrorKind::Other, "the signing key is not valid base64"))
}

fn query(pairs: &[(&str, &str)]) -> Sensitive {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        serializer.append_pair(name, value);
    }
    Sensitive::new(serializer.finish())
}

/// An account SAS: `services` from `bqt`, `resource_types` from `sco`, `permissions` in the
/// service's order (`rwdlacuptfi`).
pub fn account_sas(
    account: &str,
    key: &Sensitive,
    services: &str,
    resource_types: &str,
    permissions: &str,
    start: time::OffsetDateTime,
    expiry: time::OffsetDateTime,
) -> Result<Sensitive, AzureError> {
    let (start, expiry) = (iso_seconds(start), iso_seconds(expiry));
    let string_to_sign = [
        account,
        permissions,
        services,
        resource_types,
        &start,
        &expiry,
        "",
        "https",
        SAS_VERSION,
        "",
        "",
    ]
    .join("\n");
    let signature = sign(&string_to_sign, key)?;
    Ok(query(&[
        ("sv", SAS_VERSION),
        ("ss", services),
        ("srt", resource_types),
        ("sp", permissions),
        ("st", &start),
        ("se", &expiry),
        ("spr", "https"),
        ("sig", &signature),
    ]))
}

/// A user delegation key as Get User Delegation Key returns it.
#[derive(Clone, Debug)]
pub struct UserDelegationKey {
    pub signed_oid: String,
    pub signed_tid: String,
    pub signed_start: String,
    pub signed_expiry: String,
    pub signed_service: String,
    pub signed_version: String,
    pub value: Sensitive,
}

/// A container SAS signed with a user delegation key (`sr=c`).
pub fn user_delegation_container_sas(
    account: &str,
    container: &str,
    key: &UserDelegationKey,
    permissions: &str,
    start: time::OffsetDateTime,
    expiry: time::OffsetDateTime,
) -> Result<Sensitive, AzureError> {
    let (start, expiry) = (iso_seconds(start), iso_seconds(expiry));
    let canonical = format!("/blob/{account}/{container}");
    let string_to_sign = [
        permissions,
        &start,
        &expiry,
        &canonical,
        &key.signed_oid,
        &key.signed_tid,
        &key.signed_start,
        &key.signed_expiry,
        &key.signed_service,
        &key.signed_version,
        "", // signedAuthorizedUserObjectId
        "", // signedUnauthorizedUserObjectId
        "", // signedCorrelationId
        "", // signedIP
        "https",
        SAS_VERSION,
        "c",
        "", // snapshot time
        "", // encryption scope
        "",
        "",
        "",
        "",
        "",
    ]
    .join("\n");
    let signature = sign(&string_to_sign, &key.value)?;
    Ok(query(&[
        ("sv", SAS_VERSION),
        ("sr", "c"),
        ("sp", permissions),
        ("st", &start),
        ("se", &expiry),
        ("spr", "https"),
        ("skoid", &key.signed_oid),
        ("sktid", &key.signed_tid),
        ("skt", &key.signed_start),
        ("ske", &key.signed_expiry),
        ("sks", &key.signed_service),
        ("skv", &key.signed_version),
        ("sig", &signature),
    ]))
}

/// What a storage connection string gives atg.
#[derive(Debug)]
pub struct ConnectionString {
    pub account_name: Option<String>,
    pub account_key: Option<Sensitive>,
    pub sas: Option<Sensitive>,
}

/// Parses `Key=Value;...`. Errors name the problem, never the value.
pub fn parse_connection_string(text: &Sensitive) -> Result<ConnectionString, String> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    for part in text.expose().split(';').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err("a part is not Key=Value".into());
        };
        fields.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let account_key = fields.remove("accountkey").map(Sensitive::new);
    let sas = fields
        .remove("sharedaccesssignature")
        .map(|s| Sensitive::new(s.trim_start_matches('?').to_owned()));
    if account_key.is_none() && sas.is_none() {
        return Err("it has neither AccountKey nor SharedAccessSignature".into());
    }
    if let Some(key) = &account_key {
        use base64::Engine as _;
        if base64::engine::general_purpose::STANDARD
            .decode(key.expose())
            .is_err()
        {
            return Err("its AccountKey is not base64".into());
        }
    }
    if let Some(protocol) = fields.get("defaultendpointsprotocol") {
        if !protocol.eq_ignore_ascii_case("https") {
            return Err("DefaultEndpointsProtocol must be https".into());
        }
    }
    Ok(ConnectionString {
        account_name: fields.remove("accountname"),
        account_key,
        sas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn account_sas_matches_the_documented_layout() {
        let at = time::macros::datetime!(2024-01-01 00:00:00 UTC);
        let sas = account_sas(
            "devstoreaccount1",
            &Sensitive::new(KEY),
            "bqt",
            "sco",
            "rlt",
            at,
            at + time::Duration::days(1),
        )
        .unwrap();
        let text = sas.expose();
        assert!(text.starts_with("sv=2021-06-08&ss=bqt&srt=sco&sp=rlt&st=2024-01-01T00%3A00%3A00Z"));
        // Same inputs, same signature (a regression check of the string-to-sign).
        let expected_sig = sign(
            "devstoreaccount1\nrlt\nbqt\nsco\n2024-01-01T00:00:00Z\n2024-01-02T00:00:00Z\n\nhttps\n2021-06-08\n\n",
            &Sensitive::new(KEY),
        )
        .unwrap();
        let encoded: String =
            url::form_urlencoded::byte_serialize(expected_sig.as_bytes()).collect();
        assert!(text.ends_with(&format!("sig={encoded}")), "{text}");
        assert!(format!("{sas:?}").contains("redacted"));
    }

    #[test]
    fn connection_strings_are_checked_without_echoing_them() {
        let good = Sensitive::new(format!(
            "DefaultEndpointsProtocol=https;AccountName=src;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ));
        let parsed = parse_connection_string(&good).unwrap();
        assert_eq!(parsed.account_name.as_deref(), Some("src"));
        assert!(parsed.account_key.is_some());
        let sas = Sensitive::new(
            "BlobEndpoint=https://src.blob.core.windows.net/;SharedAccessSignature=?sv=1&sig=abc",
        );
        assert_eq!(
            parse_connection_string(&sas).unwrap().sas.unwrap().expose(),
            "sv=1&sig=abc"
        );
        for bad in [
            "garbage",
            "AccountName=src",
            "AccountName=src;AccountKey=not base64!",
        ] {
            let error = parse_connection_string(&Sensitive::new(bad)).unwrap_err();
            assert!(
                !error.contains("not base64!") && !error.contains("garbage"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bad_key_is_an_error_not_a_panic() {
        let at = time::OffsetDateTime::now_utc();
        assert!(account_sas("a", &Sensitive::new("%%%"), "b", "c", "r", at, at).is_err());
    }
}
