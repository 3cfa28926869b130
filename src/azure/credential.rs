//! The credential chain: which identity atg uses for a side (source or target) of a run.
//!
//! Order, first usable wins and is kept for the rest of the run:
//! 1. an explicit service principal (`--sp-*` / `AZURE_DATAPLANE_*`, or `--source-sp-*`);
//! 2. a service principal from the environment (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//!    `AZURE_CLIENT_SECRET`);
//! 3. workload identity (`AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID`/`AZURE_TENANT_ID`);
//! 4. managed identity;
//! 5. the Azure CLI's signed-in account;
//! 6. device-code sign-in, only with `--dataplane-interactive`.
//!
//! A source that is configured but fails (a wrong client secret) stops the chain with its error:
//! falling through to some other identity would silently act as someone else, which is how one
//! credential ended up serving both tenants in ATG. Sources that are merely unavailable are
//! skipped, and when none works the error lists each one with why.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use super::device_code::{DeviceCodeCredential, PromptFn};
use super::sensitive::Sensitive;
use super::transport::AzureHttp;

/// A service principal with a client secret.
#[derive(Clone, Debug)]
pub struct ServicePrincipal {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Sensitive,
}

/// The process environment as the chain reads it; injected in tests.
#[derive(Clone, Debug, Default)]
pub struct CredentialEnvironment {
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_secret: Option<Sensitive>,
    pub federated_token_file: Option<PathBuf>,
}

impl CredentialEnvironment {
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        CredentialEnvironment {
            client_id: var("AZURE_CLIENT_ID"),
            tenant_id: var("AZURE_TENANT_ID"),
            client_secret: var("AZURE_CLIENT_SECRET").map(Sensitive::new),
            federated_token_file: var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
        }
    }
}

/// What one side of a run may authenticate with.
#[derive(Clone, Default)]
pub struct CredentialSettings {
    /// Where device-code sign-in shows its "open this URL, enter this code" message.
    pub prompt: Option<PromptFn>,
    pub explicit: Option<ServicePrincipal>,
    /// The tenant this side lives in, when known (`--target-tenant-id`/`--source-tenant-id`).
    pub tenant_id: Option<String>,
    pub interactive: bool,
    pub environment: CredentialEnvironment,
}

/// One link of the chain.
pub struct ChainLink {
    pub label: &'static str,
    /// Configured links fail the chain when they fail; unconfigured ones are passed over.
    pub configured: bool,
    pub credential: Result<Arc<dyn TokenCredential>, String>,
    pub timeout: Option<Duration>,
}

/// Builds the links for one side, in priority order.
pub fn chain_links(settings: &CredentialSettings, http: &AzureHttp) -> Vec<ChainLink> {
    let options = || ClientSecretCredentialOptions {
        client_options: http.credential_client_options(),
    };
    let mut links = Vec::new();

    links.push(ChainLink {
        label: "explicit service principal (--sp-client-id/--sp-client-secret/--sp-tenant-id)",
        configured: settings.explicit.is_some(),
        credential: match &settings.explicit {
            Some(sp) => ClientSecretCredential::new(
                &sp.tenant_id,
                sp.client_id.clone(),
                Secret::new(sp.client_secret.expose().to_owned()),
                Some(options()),
            )
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| format!("invalid: {e}")),
            None => Err("not configured".into()),
        },
        timeout: None,
    });

    let env = &settings.environment;
    links.push(ChainLink {
        label:
            "environment service principal (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET)",
        configured: env.client_secret.is_some(),
        credential: match (&env.tenant_id, &env.client_id, &env.client_secret) {
            (Some(tenant), Some(client), Some(secret)) => ClientSecretCredential::new(
                tenant,
                client.clone(),
                Secret::new(secret.expose().to_owned()),
                Some(options()),
            )
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| format!("invalid: {e}")),
            (_, _, None) => Err("AZURE_CLIENT_SECRET is not set".into()),
            _ => Err(
                "AZURE_CLIENT_SECRET is set but AZURE_CLIENT_ID or AZURE_TENANT_ID is not".into(),
            ),
        },
        timeout: None,
    });

    links.push(ChainLink {
        label: "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
        configured: env.federated_token_file.is_some(),
        credential: match (&env.federated_token_file, &env.client_id, &env.tenant_id) {
            (Some(file), Some(client), Some(tenant)) => {
                WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: http.credential_client_options(),
                    },
                    client_id: Some(client.clone()),
                    tenant_id: Some(tenant.clone()),
                    token_file_path: Some(file.clone()),
                }))
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(|e| format!("invalid: {e}"))
            }
            (None, _, _) => Err("AZURE_FEDERATED_TOKEN_FILE is not set".into()),
            _ => Err(
                "AZURE_FEDERATED_TOKEN_FILE is set but AZURE_CLIENT_ID or AZURE_TENANT_ID is not"
                    .into(),
            ),
        },
        timeout: None,
    });

    links.push(ChainLink {
        label: "managed identity",
        configured: false,
        // The identity endpoint is a local or link-local address outside the cloud's hosts,
        // and its answer is the token itself, so it gets a plain pipeline.
        credential: ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
            user_assigned_id: None,
            client_options: azure_core::http::ClientOptions::default(),
        }))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| format!("unavailable: {e}")),
        timeout: Some(Duration::from_secs(3)),
    });

    links.push(ChainLink {
        label: "Azure CLI (az login)",
        configured: false,
        credential: AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: settings.tenant_id.clone(),
            ..AzureCliCredentialOptions::default()
        }))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| format!("unavailable: {e}")),
        timeout: Some(Duration::from_secs(20)),
    });

    links.push(ChainLink {
        label: "interactive device-code sign-in (--dataplane-interactive)",
        configured: settings.interactive,
        credential: if settings.interactive {
            let credential = DeviceCodeCredential::new(http.clone(), settings.tenant_id.clone());
            if let Some(prompt) = &settings.prompt {
                credential.set_prompt(prompt.clone());
            }
            Ok(Arc::new(credential) as Arc<dyn TokenCredential>)
        } else {
            Err("not requested".into())
        },
        timeout: None,
    });
    links
}

/// A [`TokenCredential`] that walks [`ChainLink`]s once and sticks with the first that works.
pub struct ChainCredential {
    side: &'static str,
    links: Vec<ChainLink>,
    chosen: OnceLock<usize>,
}

impl fmt::Debug for ChainCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainCredential")
            .field("side", &self.side)
            .field("chosen", &self.chosen_label())
            .finish_non_exhaustive()
    }
}

impl ChainCredential {
    pub fn new(side: &'static str, links: Vec<ChainLink>) -> Self {
        ChainCredential {
            side,
            links,
            chosen: OnceLock::new(),
        }
    }

    /// The link that produced tokens, once one has.
    pub fn chosen_label(&self) -> Option<&'static str> {
        self.chosen.get().map(|&i| self.links[i].label)
    }

    async fn try_link(
        link: &ChainLink,
        credential: &Arc<dyn TokenCredential>,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> Result<AccessToken, String> {
        let attempt = credential.get_token(scopes, options);
        let result = match link.timeout {
            Some(limit) => match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => return Err(format!("no answer within {} s", limit.as_secs())),
            },
            None => attempt.await,
        };
        result.map_err(|error| {
            super::error::sanitize_server_text(&super::error::AzureError::from(error).to_string())
        })
    }
}

#[async_trait]
impl TokenCredential for ChainCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Some(&index) = self.chosen.get() {
            if let Ok(credential) = &self.links[index].credential {
                return credential.get_token(scopes, options).await;
            }
        }
        let mut tried = Vec::new();
        for (index, link) in self.links.iter().enumerate() {
            let credential = match &link.credential {
                Ok(credential) => credential,
                Err(reason) => {
                    if link.configured {
                        return Err(chain_error(
                            self.side,
                            &[format!("{}: {reason}", link.label)],
                        ));
                    }
                    tried.push(format!("{}: {reason}", link.label));
                    continue;
                }
            };
            match Self::try_link(link, credential, scopes, options.clone()).await {
                Ok(token) => {
                    let _ = self.chosen.set(index);
                    tracing::debug!(
                        side = self.side,
                        credential = link.label,
                        "credential selected"
                    );
                    return Ok(token);
                }
                Err(reason) => {
                    tried.push(format!("{}: {reason}", link.label));
                    if link.configured {
                        return Err(chain_error(self.side, &tried[tried.len() - 1..]));
                    }
                }
            }
        }
        Err(chain_error(self.side, &tried))
    }
}

fn chain_error(side: &str, tried: &[String]) -> azure_core::Error {
    let mut message = format!("no credential could get a token for the {side} side");
    for line in tried {
        message.push_str("\n  - ");
        message.push_str(line);
    }
    message.push_str(
        "\nhint: run `az login`, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, \
         or pass --sp-client-id/--sp-client-secret/--sp-tenant-id (--dataplane-interactive signs in with a device code)",
    );
    azure_core::Error::with_message(ErrorKind::Credential, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Fake {
        token: Option<&'static str>,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(token: Option<&'static str>) -> Arc<Fake> {
            Arc::new(Fake {
                token,
                calls: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait]
    impl TokenCredential for Fake {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match self.token {
                Some(token) => Ok(AccessToken::new(
                    token,
                    time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                )),
                None => Err(azure_core::Error::with_message(
                    ErrorKind::Credential,
                    "boom",
                )),
            }
        }
    }

    fn link(label: &'static str, configured: bool, fake: Option<Arc<Fake>>) -> ChainLink {
        ChainLink {
            label,
            configured,
            credential: fake
                .map(|f| f as Arc<dyn TokenCredential>)
                .ok_or_else(|| "not configured".to_string()),
            timeout: None,
        }
    }

    #[tokio::test]
    async fn first_available_link_wins_and_is_kept() {
        let cli = Fake::new(Some("cli-token"));
        let chain = ChainCredential::new(
            "target",
            vec![
                link("explicit", false, None),
                link("environment", false, None),
                link("managed identity", false, Some(Fake::new(None))),
                link("azure cli", false, Some(cli.clone())),
            ],
        );
        let token = chain.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(token.token.secret(), "cli-token");
        assert_eq!(chain.chosen_label(), Some("azure cli"));
        chain.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(cli.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn explicit_beats_environment_and_cli() {
        let explicit = Fake::new(Some("explicit-token"));
        let cli = Fake::new(Some("cli-token"));
        let chain = ChainCredential::new(
            "source",
            vec![
                link("explicit", true, Some(explicit)),
                link("azure cli", false, Some(cli.clone())),
            ],
        );
        let token = chain.get_token(&["s/.default"], None).await.unwrap();
        assert_eq!(token.token.secret(), "explicit-token");
        assert_eq!(cli.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_configured_link_that_fails_does_not_fall_through() {
        let cli = Fake::new(Some("cli-token"));
        let chain = ChainCredential::new(
            "target",
            vec![
                link("explicit", true, Some(Fake::new(None))),
                link("azure cli", false, Some(cli.clone())),
            ],
        );
        let error = chain.get_token(&["s/.default"], None).await.unwrap_err();
        assert!(error.to_string().contains("explicit"), "{error}");
        assert_eq!(cli.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn when_all_fail_the_error_lists_every_source_and_a_hint() {
        let chain = ChainCredential::new(
            "target",
            vec![
                link("explicit", false, None),
                link("managed identity", false, Some(Fake::new(None))),
                link("azure cli", false, Some(Fake::new(None))),
            ],
        );
        let message = chain
            .get_token(&["s/.default"], None)
            .await
            .unwrap_err()
            .to_string();
        for label in [
            "explicit",
            "managed identity",
            "azure cli",
            "hint: run `az login`",
        ] {
            assert!(message.contains(label), "{message}");
        }
    }

    #[test]
    fn environment_links_follow_the_injected_environment() {
        let http = AzureHttp::new(&super::super::transport::HttpSettings::default()).unwrap();
        let settings = CredentialSettings {
            environment: CredentialEnvironment {
                client_id: Some("00000000-0000-0000-0000-000000000001".into()),
                tenant_id: Some("00000000-0000-0000-0000-000000000002".into()),
                client_secret: Some(Sensitive::new("s3cret")),
                federated_token_file: None,
            },
            ..CredentialSettings::default()
        };
        let links = chain_links(&settings, &http);
        let labels: Vec<_> = links.iter().map(|l| l.label).collect();
        assert!(labels[0].starts_with("explicit"));
        assert!(labels[1].starts_with("environment"));
        assert!(labels[2].starts_with("workload"));
        assert!(labels[3].starts_with("managed"));
        assert!(labels[4].starts_with("Azure CLI"));
        assert!(labels[5].starts_with("interactive"));
        assert!(!links[0].configured && links[0].credential.is_err());
        assert!(links[1].configured && links[1].credential.is_ok());
        assert!(links[2].credential.is_err());
        assert!(!links[5].configured && links[5].credential.is_err());
    }
}
