//! The test PKI generated at every start: a CA and a leaf server certificate it signs for all the
//! Azure host names the emulator answers (rustls refuses a bare self-signed CA as a server cert).

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Names in the leaf certificate. Wildcards cover any vault or storage account name.
const LEAF_NAMES: [&str; 15] = [
    "*.vault.azure.net",
    "*.vault.azure.cn",
    "*.vault.usgovcloudapi.net",
    "login.microsoftonline.com",
    "login.chinacloudapi.cn",
    "login.microsoftonline.us",
    "management.azure.com",
    "management.chinacloudapi.cn",
    "management.usgovcloudapi.net",
    "*.blob.core.windows.net",
    "*.queue.core.windows.net",
    "*.table.core.windows.net",
    "localhost",
    "127.0.0.1",
    "emulator.localhost",
];

pub(crate) struct TestPki {
    pub ca_pem: String,
    pub leaf_cert_pem: String,
    pub leaf_key_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

impl TestPki {
    pub fn generate() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("generate ca key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        let mut ca_name = DistinguishedName::new();
        ca_name.push(DnType::CommonName, "atg-testkit test CA");
        ca_name.push(DnType::OrganizationName, "atg-testkit");
        ca_params.distinguished_name = ca_name;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).context("self-sign ca")?;
        let issuer = Issuer::new(ca_params, &ca_key);

        let leaf_key = KeyPair::generate().context("generate leaf key")?;
        let mut leaf_params = CertificateParams::new(
            LEAF_NAMES
                .iter()
                .map(|name| (*name).to_owned())
                .collect::<Vec<_>>(),
        )?;
        let mut leaf_name = DistinguishedName::new();
        leaf_name.push(DnType::CommonName, "atg-testkit emulator");
        leaf_params.distinguished_name = leaf_name;
        leaf_params.is_ca = IsCa::ExplicitNoCa;
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_cert = leaf_params
            .signed_by(&leaf_key, &issuer)
            .context("sign leaf certificate")?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("tls protocol versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![
                    CertificateDer::from(leaf_cert.der().to_vec()),
                    CertificateDer::from(ca_cert.der().to_vec()),
                ],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .context("tls server certificate")?;
        // HTTP/1.1 only: the emulator serves no h2, and clients must not try it.
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];

        Ok(Self {
            ca_pem: ca_cert.pem(),
            leaf_cert_pem: leaf_cert.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
            server_config: Arc::new(server_config),
        })
    }
}
