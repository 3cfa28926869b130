//! Flags and environment → validated settings. Everything that can be wrong with the user's
//! input is found here, before any request, and reported with what to do (exit code 2).

use std::path::PathBuf;
use std::time::Duration;

use crate::azure::credential::{CredentialEnvironment, CredentialSettings, ServicePrincipal};
use crate::azure::{HttpSettings, Sensitive};
use crate::cli::{DeployArgs, OutputFormat};
use crate::dataplane::Mode;
use crate::orchestrator::RunSettings;

/// How the mode is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeChoice {
    /// `--dataplane-mode` was given.
    Explicit(Mode),
    /// `--dataplane-interactive` on a terminal: show what was found and ask.
    Ask,
    /// Neither: template, the safe default.
    Default,
}

pub fn choose_mode(explicit: Option<Mode>, interactive: bool, terminal: bool) -> ModeChoice {
    match explicit {
        Some(mode) => ModeChoice::Explicit(mode),
        None if interactive && terminal => ModeChoice::Ask,
        None => ModeChoice::Default,
    }
}

pub struct DeploySettings {
    pub inventory: PathBuf,
    pub mode: ModeChoice,
    pub run: RunSettings,
    pub http: HttpSettings,
    pub source_credentials: CredentialSettings,
    pub target_credentials: CredentialSettings,
    pub output: OutputFormat,
    pub report_path: Option<PathBuf>,
    pub progress: bool,
}

/// A problem with the user's input, with a hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    pub message: String,
    pub hint: Option<String>,
}

fn settings_error(message: impl Into<String>, hint: Option<&str>) -> SettingsError {
    SettingsError {
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

fn service_principal(
    flags: [&str; 3],
    client_id: Option<&String>,
    secret: Option<&Sensitive>,
    tenant_id: Option<&String>,
) -> Result<Option<ServicePrincipal>, SettingsError> {
    match (client_id, secret, tenant_id) {
        (None, None, None) => Ok(None),
        (Some(client_id), Some(secret), Some(tenant_id)) => {
            if secret.is_empty() {
                return Err(settings_error(format!("{} is empty", flags[1]), None));
            }
            Ok(Some(ServicePrincipal {
                tenant_id: tenant_id.clone(),
                client_id: client_id.clone(),
                client_secret: secret.clone(),
            }))
        }
        (client_id, secret, tenant_id) => {
            let missing: Vec<&str> = [client_id.is_none(), secret.is_none(), tenant_id.is_none()]
                .iter()
                .zip(flags)
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
            Err(settings_error(
                format!(
                    "incomplete service principal: missing {}",
                    missing.join(", ")
                ),
                Some("give all three of client id, client secret and tenant id, or none"),
            ))
        }
    }
}

impl DeploySettings {
    pub fn from_args(
        args: &DeployArgs,
        environment: CredentialEnvironment,
        terminal: bool,
    ) -> Result<Self, SettingsError> {
        let inventory = args.inventory.clone().ok_or_else(|| {
            settings_error(
                "no inventory given",
                Some("pass --inventory FILE (a JSON list of source/target pairs, see docs/inventory.md)"),
            )
        })?;
        let target_sp = service_principal(
            ["--sp-client-id", "--sp-client-secret", "--sp-tenant-id"],
            args.target_sp.sp_client_id.as_ref(),
            args.target_sp.sp_client_secret.as_ref(),
            args.target_sp.sp_tenant_id.as_ref(),
        )?;
        let source_sp = service_principal(
            [
                "--source-sp-client-id",
                "--source-sp-client-secret",
                "--source-sp-tenant-id",
            ],
            args.source_sp.source_sp_client_id.as_ref(),
            args.source_sp.source_sp_client_secret.as_ref(),
            args.source_sp.source_sp_tenant_id.as_ref(),
        )?;
        let extra_root_pem = match &args.ca_cert {
            Some(path) => Some(HttpSettings::read_ca_file(path).map_err(|e| {
                settings_error(
                    e.to_string(),
                    Some("--ca-cert takes a PEM file of root certificates"),
                )
            })?),
            None => None,
        };
        let mode = choose_mode(args.dataplane_mode, args.dataplane_interactive, terminal);
        let target_credentials = CredentialSettings {
            prompt: None,
            // The target's principal serves both sides unless the source has its own.
            explicit: target_sp.clone(),
            tenant_id: args.target_tenant_id.clone(),
            interactive: args.dataplane_interactive,
            environment: environment.clone(),
        };
        let source_credentials = CredentialSettings {
            prompt: None,
            explicit: source_sp.or(target_sp),
            tenant_id: args
                .source_tenant_id
                .clone()
                .or_else(|| args.target_tenant_id.clone()),
            interactive: args.dataplane_interactive,
            environment,
        };
        Ok(DeploySettings {
            inventory,
            mode,
            run: RunSettings {
                mode: match mode {
                    ModeChoice::Explicit(mode) => mode,
                    ModeChoice::Ask | ModeChoice::Default => Mode::Template,
                },
                dry_run: args.dry_run,
                on_conflict: args.on_conflict,
                on_deleted: args.on_deleted,
                concurrency: usize::from(args.concurrency),
                resource_concurrency: 4,
                settle_timeout: Duration::from_secs(60),
            },
            http: HttpSettings {
                cloud: args.cloud,
                extra_root_pem,
                connect_to: args.connect_to.clone(),
                retry: crate::azure::policies::RetrySettings::default(),
            },
            source_credentials,
            target_credentials,
            output: args.output,
            report_path: args.report.clone(),
            progress: !args.no_progress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> DeployArgs {
        let mut argv = vec!["atg", "deploy"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Deploy(args) => *args,
            crate::cli::Command::Plugins(_) => unreachable!(),
        }
    }

    #[test]
    fn explicit_mode_wins_then_interactive_asks_then_template() {
        assert_eq!(
            choose_mode(Some(Mode::Replication), true, true),
            ModeChoice::Explicit(Mode::Replication)
        );
        assert_eq!(choose_mode(None, true, true), ModeChoice::Ask);
        assert_eq!(choose_mode(None, true, false), ModeChoice::Default);
        assert_eq!(choose_mode(None, false, true), ModeChoice::Default);
    }

    #[test]
    fn default_mode_is_template() {
        let args = parse(&["--inventory", "x.json"]);
        let settings =
            DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
        assert_eq!(settings.run.mode, Mode::Template);
        assert!(!settings.run.dry_run);
    }

    #[test]
    fn a_partial_service_principal_is_refused() {
        let args = parse(&["--inventory", "x.json", "--sp-client-id", "abc"]);
        let error = DeploySettings::from_args(&args, CredentialEnvironment::default(), false)
            .err()
            .unwrap();
        assert!(
            error.message.contains("--sp-client-secret, --sp-tenant-id"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_target_principal_serves_the_source_unless_it_has_its_own() {
        let args = parse(&[
            "--inventory",
            "x.json",
            "--sp-client-id",
            "t-app",
            "--sp-client-secret",
            "t-secret",
            "--sp-tenant-id",
            "t-tenant",
        ]);
        let settings =
            DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
        assert_eq!(
            settings
                .source_credentials
                .explicit
                .as_ref()
                .unwrap()
                .client_id,
            "t-app"
        );
        let args = parse(&[
            "--inventory",
            "x.json",
            "--sp-client-id",
            "t-app",
            "--sp-client-secret",
            "t-secret",
            "--sp-tenant-id",
            "t-tenant",
            "--source-sp-client-id",
            "s-app",
            "--source-sp-client-secret",
            "s-secret",
            "--source-sp-tenant-id",
            "s-tenant",
        ]);
        let settings =
            DeploySettings::from_args(&args, CredentialEnvironment::default(), false).unwrap();
        assert_eq!(
            settings
                .source_credentials
                .explicit
                .as_ref()
                .unwrap()
                .tenant_id,
            "s-tenant"
        );
        assert_eq!(
            settings
                .target_credentials
                .explicit
                .as_ref()
                .unwrap()
                .tenant_id,
            "t-tenant"
        );
    }

    #[test]
    fn no_inventory_is_a_clear_error() {
        let args = parse(&[]);
        let error = DeploySettings::from_args(&args, CredentialEnvironment::default(), false)
            .err()
            .unwrap();
        assert!(error.message.contains("no inventory"));
        assert!(error.hint.unwrap().contains("--inventory"));
    }
}
