//! The HTTP transport shared by every Azure client of a run, and the `ClientOptions` that wire
//! atg's policies into `azure_core` pipelines.
//!
//! Two knobs change where bytes go without changing any logic, for private endpoints,
//! TLS-inspecting proxies and the local emulators the tests use:
//! `--ca-cert` trusts an extra root certificate, and `--connect-to SUFFIX=IP:PORT` connects to a
//! fixed address for hosts ending in SUFFIX (like curl's `--connect-to`). Host names, TLS name
//! checks, the cloud's host allow-list and Key Vault's challenge verification all stay on.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::policies::Policy;
use azure_core::http::{ClientOptions, RetryOptions, Transport, Url};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::cloud::Cloud;
use super::policies::{
    EndpointPolicy, HostAllowListPolicy, RetryPolicy, RetrySettings, RetryStats, TracePolicy,
    WriteAccess, WriteGuardPolicy,
};

/// `SUFFIX=IP:PORT`: connect to IP:PORT for every host equal to or ending in SUFFIX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectTo {
    pub host_suffix: String,
    pub addr: SocketAddr,
}

impl FromStr for ConnectTo {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (suffix, addr) = value
            .split_once('=')
            .ok_or_else(|| format!("`{value}` is not SUFFIX=IP:PORT"))?;
        let addr = addr
            .parse::<SocketAddr>()
            .map_err(|error| format!("`{addr}` is not IP:PORT: {error}"))?;
        let host_suffix = suffix.trim().to_ascii_lowercase();
        if host_suffix.is_empty() {
            return Err(format!("`{value}` has an empty host suffix"));
        }
        Ok(ConnectTo { host_suffix, addr })
    }
}

#[derive(Debug)]
struct ConnectToResolver {
    overrides: Vec<ConnectTo>,
}

impl ConnectToResolver {
    fn lookup(&self, host: &str) -> Option<SocketAddr> {
        let host = host.to_ascii_lowercase();
        self.overrides
            .iter()
            .find(|o| {
                let bare = o.host_suffix.trim_start_matches('.');
                host == bare || host.ends_with(&format!(".{bare}"))
            })
            .map(|o| o.addr)
    }
}

impl Resolve for ConnectToResolver {
    fn resolve(&self, name: Name) -> Resolving {
        if let Some(addr) = self.lookup(name.as_str()) {
            let addrs: Addrs = Box::new(std::iter::once(addr));
            return Box::pin(std::future::ready(Ok(addrs)));
        }
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Addrs = Box::new(addrs.collect::<Vec<_>>().into_iter());
            Ok(addrs)
        })
    }
}

/// Everything that decides how a run talks HTTP.
#[derive(Clone, Debug, Default)]
pub struct HttpSettings {
    pub cloud: Cloud,
    pub extra_root_pem: Option<Vec<u8>>,
    pub connect_to: Vec<ConnectTo>,
    pub retry: RetrySettings,
}

impl HttpSettings {
    pub fn read_ca_file(path: &Path) -> anyhow::Result<Vec<u8>> {
        std::fs::read(path).map_err(|error| {
            anyhow::anyhow!(
                "cannot read CA certificate file `{}`: {error}",
                path.display()
            )
        })
    }
}

/// The shared transport of a run: one connection pool, one retry state, one set of counters.
#[derive(Clone, Debug)]
pub struct AzureHttp {
    pub cloud: Cloud,
    client: reqwest::Client,
    retry: RetryPolicy,
    pub retry_stats: Arc<RetryStats>,
    /// Writes refused by the write guard (must stay 0 unless a plugin forgot dry-run).
    pub refused_writes: Arc<AtomicU64>,
    /// `--ca-cert` and `--connect-to`, for the few requests written on the wire by hand
    /// (`azure::storage::wire`: metadata names whose case the HTTP client would lose).
    pub(crate) extra_root_pem: Option<Vec<u8>>,
    connect_to: Vec<ConnectTo>,
}

impl AzureHttp {
    pub fn new(settings: &HttpSettings) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .http1_only()
            // The pipeline's policies (host allow-list, write guard) see only the URL they sent:
            // a redirect followed inside the client would take the request, its body and its
            // headers (a copy source's SAS) anywhere. Azure's data planes do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .user_agent(concat!("atg/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.extra_root_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|error| anyhow::anyhow!("the CA certificate file is not PEM: {error}"))?;
            if certificates.is_empty() {
                anyhow::bail!("the CA certificate file holds no certificate");
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if !settings.connect_to.is_empty() {
            builder = builder.dns_resolver(Arc::new(ConnectToResolver {
                overrides: settings.connect_to.clone(),
            }));
        }
        let client = builder
            .build()
            .map_err(|error| anyhow::anyhow!("cannot build the HTTP client: {error}"))?;
        let retry_stats = Arc::new(RetryStats::default());
        Ok(AzureHttp {
            cloud: settings.cloud,
            client,
            retry: RetryPolicy::new(settings.retry.clone(), retry_stats.clone()),
            retry_stats,
            refused_writes: Arc::default(),
            extra_root_pem: settings.extra_root_pem.clone(),
            connect_to: settings.connect_to.clone(),
        })
    }

    /// The `--connect-to` address for `host`, if one applies.
    pub(crate) fn connect_to(&self, host: &str) -> Option<SocketAddr> {
        ConnectToResolver {
            overrides: self.connect_to.clone(),
        }
        .lookup(host)
    }

    /// Client options for an `azure_core` pipeline talking to `endpoint` (a vault, a storage
    /// service, ARM): atg's policies, atg's transport, the cloud. The client may send only to
    /// that endpoint's scheme, host and port.
    pub fn client_options(&self, endpoint: &Url, access: WriteAccess) -> ClientOptions {
        self.options(vec![
            Arc::new(EndpointPolicy::new(endpoint)),
            Arc::new(HostAllowListPolicy::new(self.cloud)),
            Arc::new(WriteGuardPolicy::new(access, self.refused_writes.clone())),
            Arc::new(self.retry.clone()),
        ])
    }

    /// The raw HTTP client, for the few calls that are not `azure_core` pipelines (sign-in).
    pub(crate) fn raw_client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Client options for credentials (token requests): pinned to the cloud's sign-in host, no
    /// write guard (token requests are POSTs that write nothing), and a sign-in host that refuses
    /// connections fails at once.
    pub fn credential_client_options(&self) -> ClientOptions {
        let mut policies: Vec<Arc<dyn Policy>> = Vec::new();
        if let Ok(authority) = Url::parse(self.cloud.authority_host()) {
            policies.push(Arc::new(EndpointPolicy::new(&authority)));
        }
        policies.push(Arc::new(HostAllowListPolicy::new(self.cloud)));
        policies.push(Arc::new(self.retry.for_sign_in()));
        self.options(policies)
    }

    fn options(&self, per_call_policies: Vec<Arc<dyn Policy>>) -> ClientOptions {
        ClientOptions {
            per_call_policies,
            per_try_policies: vec![Arc::new(TracePolicy)],
            retry: RetryOptions::none(),
            transport: Some(Transport::new(Arc::new(self.client.clone()))),
            cloud: Some(Arc::new(self.cloud.configuration())),
            ..ClientOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_parses_and_matches_suffixes() {
        let rule: ConnectTo = "vault.azure.net=127.0.0.1:8443".parse().unwrap();
        let resolver = ConnectToResolver {
            overrides: vec![rule],
        };
        assert!(resolver.lookup("src.vault.azure.net").is_some());
        assert!(resolver.lookup("vault.azure.net").is_some());
        assert!(resolver.lookup("evilvault.azure.net").is_none());
        assert!("vault.azure.net".parse::<ConnectTo>().is_err());
        assert!("vault.azure.net=localhost".parse::<ConnectTo>().is_err());
    }
}
