//! PKCS#12 files whose password is the *empty byte string*, as Key Vault (and Windows) export a
//! certificate's password-less PFX.
//!
//! RFC 7292 turns a password into a `BMPString` with a two-byte terminator, so "" becomes `00 00`;
//! Windows and Key Vault instead use no bytes at all. OpenSSL tries both; `p12-keystore` knows only
//! the first and fails such files with "MAC tag mismatch". This module verifies the MAC and
//! decrypts the bags with the no-bytes password (PBES1 with SHA-1: 3DES or RC2, the schemes those
//! exports use). It must not grow into a general PKCS#12 reader: anything else is left to
//! `p12-keystore`, which the caller tries first.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt as _, KeyInit, KeyIvInit as _};
use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use der::asn1::{ContextSpecific, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use hmac::Mac as _;
use pkcs12::kdf::{derive_key, Pkcs12KeyType};
use pkcs12::pbe_params::{EncryptedPrivateKeyInfo, Pkcs12PbeParams};
use pkcs12::pfx::Pfx;
use pkcs12::safe_bag::{PrivateKeyInfo, SafeContents};
use pkcs12::CertBag;
use sha1::Sha1;
use spki::AlgorithmIdentifierOwned;

/// The password of a password-less Windows/Key Vault export.
const NO_BYTES: &[u8] = &[];
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENCRYPTED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.6");
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// Key (PKCS#8 DER) and certificates (DER, in file order) of a password-less PFX.
pub(crate) struct PfxContents {
    pub key_pkcs8: Option<Vec<u8>>,
    pub certificates: Vec<Vec<u8>>,
}

/// Reads a PFX whose MAC and bags use the no-bytes password.
pub(crate) fn read_without_password(bytes: &[u8]) -> Result<PfxContents, String> {
    let pfx = Pfx::from_der(bytes).map_err(|error| error.to_string())?;
    let content = pfx.auth_safe.content.value();
    if let Some(mac_data) = &pfx.mac_data {
        if mac_data.mac.algorithm.oid != ID_SHA1 {
            return Err("unsupported MAC digest".to_owned());
        }
        let key = derive_key::<Sha1>(
            NO_BYTES,
            mac_data.mac_salt.as_bytes(),
            Pkcs12KeyType::Mac,
            mac_data.iterations,
            20,
        );
        let mut mac =
            hmac::Hmac::<Sha1>::new_from_slice(&key).map_err(|error| error.to_string())?;
        mac.update(content);
        mac.verify_slice(mac_data.mac.digest.as_bytes())
            .map_err(|_| "MAC tag mismatch with the empty password".to_owned())?;
    }
    if pfx.auth_safe.content_type != ID_DATA {
        return Err("unsupported authSafe content type".to_owned());
    }
    let safes = Vec::<ContentInfo>::from_der(
        OctetString::from_der(&pfx.auth_safe.content.to_der().map_err(der_error)?)
            .map_err(der_error)?
            .as_bytes(),
    )
    .map_err(der_error)?;
    let mut out = PfxContents {
        key_pkcs8: None,
        certificates: Vec::new(),
    };
    for safe in safes {
        let plain = if safe.content_type == ID_DATA {
            OctetString::from_der(&safe.content.to_der().map_err(der_error)?)
                .map_err(der_error)?
                .as_bytes()
                .to_vec()
        } else if safe.content_type == ID_ENCRYPTED_DATA {
            let encrypted = EncryptedData::from_der(&safe.content.to_der().map_err(der_error)?)
                .map_err(der_error)?;
            let info = encrypted.enc_content_info;
            let data = info
                .encrypted_content
                .as_ref()
                .map_or(&[][..], OctetString::as_bytes);
            decrypt(&info.content_enc_alg, data)?
        } else {
            return Err("unsupported safe content type".to_owned());
        };
        for bag in SafeContents::from_der(&plain).map_err(der_error)? {
            match bag.bag_id {
                pkcs12::PKCS_12_PKCS8_KEY_BAG_OID => {
                    let shrouded: ContextSpecific<EncryptedPrivateKeyInfo> =
                        ContextSpecific::from_der(&bag.bag_value).map_err(der_error)?;
                    let info = shrouded.value;
                    out.key_pkcs8 = Some(decrypt(
                        &info.encryption_algorithm,
                        info.encrypted_data.as_bytes(),
                    )?);
                }
                pkcs12::PKCS_12_KEY_BAG_OID => {
                    let plain: ContextSpecific<PrivateKeyInfo> =
                        ContextSpecific::from_der(&bag.bag_value).map_err(der_error)?;
                    out.key_pkcs8 = Some(plain.value.to_der().map_err(der_error)?);
                }
                pkcs12::PKCS_12_CERT_BAG_OID => {
                    let cert: ContextSpecific<CertBag> =
                        ContextSpecific::from_der(&bag.bag_value).map_err(der_error)?;
                    if cert.value.cert_id == pkcs12::PKCS_12_X509_CERT_OID {
                        out.certificates
                            .push(cert.value.cert_value.as_bytes().to_vec());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

#[allow(clippy::needless_pass_by_value)] // used as a map_err function
fn der_error(error: der::Error) -> String {
    error.to_string()
}

/// PBES1 with SHA-1 and the no-bytes password.
fn decrypt(algorithm: &AlgorithmIdentifierOwned, data: &[u8]) -> Result<Vec<u8>, String> {
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or("missing PBE parameters")?
        .decode_as::<Pkcs12PbeParams>()
        .map_err(der_error)?;
    let salt = params.salt.as_bytes();
    match algorithm.oid {
        pkcs12::PKCS_12_PBE_WITH_SHAAND3_KEY_TRIPLE_DES_CBC => {
            cbc_decrypt::<des::TdesEde3>(data, salt, params.iterations, 24)
        }
        pkcs12::PKCS_12_PBEWITH_SHAAND40_BIT_RC2_CBC => {
            cbc_decrypt::<rc2::Rc2>(data, salt, params.iterations, 5)
        }
        other => Err(format!("unsupported PBE scheme {other}")),
    }
}

fn cbc_decrypt<C: KeyInit + BlockCipherDecrypt>(
    data: &[u8],
    salt: &[u8],
    iterations: i32,
    key_len: usize,
) -> Result<Vec<u8>, String> {
    let key = derive_key::<Sha1>(
        NO_BYTES,
        salt,
        Pkcs12KeyType::EncryptionKey,
        iterations,
        key_len,
    );
    let iv = derive_key::<Sha1>(NO_BYTES, salt, Pkcs12KeyType::Iv, iterations, 8);
    cbc::Decryptor::<C>::new_from_slices(&key, &iv)
        .map_err(|error| error.to_string())?
        .decrypt_padded_vec::<Pkcs7>(data)
        .map_err(|_| "bad padding after decryption with the empty password".to_owned())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;

    /// A certificate's backing secret as real Key Vault served it (Azure SDK for JS recording
    /// `recording_can_get_a_certificates_secret_in_pkcs12_format.js`, 2021): password-less PFX,
    /// SHA-1 MAC, 3DES-shrouded key, 3DES-encrypted certificate bag.
    const REAL_EXPORT: &str = include_str!("../../tests/fixtures/real-key-vault-export.pfx.b64");

    fn real_export() -> Vec<u8> {
        STANDARD
            .decode(REAL_EXPORT.trim())
            .expect("fixture is base64")
    }

    #[test]
    fn reads_a_password_less_pfx_exported_by_key_vault() {
        let contents = read_without_password(&real_export()).expect("readable");
        assert_eq!(contents.certificates.len(), 1);
        let key = contents.key_pkcs8.expect("private key");
        // A PKCS#8 PrivateKeyInfo for RSA.
        assert_eq!(key[0], 0x30);
        assert!(key
            .windows(9)
            .any(|w| w == [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01]));
    }

    #[test]
    fn the_two_byte_empty_password_does_not_open_it() {
        // Why this module exists: the RFC 7292 encoding of "" fails this file's MAC.
        let error = p12_keystore::KeyStore::from_pkcs12(
            &real_export(),
            "",
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .expect_err("p12-keystore alone refuses it");
        assert!(
            error.to_string().to_ascii_lowercase().contains("mac"),
            "{error}"
        );
    }

    #[test]
    fn a_tampered_file_fails_the_mac() {
        let mut bytes = real_export();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        assert!(read_without_password(&bytes).is_err());
    }
}
