//! Flags and environment → validated settings. Everything that can be wrong with the user's
//! input is found here, before any request, and reported with what to do (exit code 2).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::azure::credential::{CredentialEnvironment, CredentialSettings, ServicePrincipal};
use crate::azure::{HttpSettings, Sensitive};
use crate::cli::{DeployArgs, OutputFormat};
use crate::dataplane::{Mode, OnConflict, OnDeleted};
use crate::inventory::graph::{GraphInventory, TargetSource};
use crate::inventory::matching::MatchOptions;
use crate::inventory::neo4j::GraphSettings;
use crate::orchestrator::filter::PairFilters;
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

/// Where the resources of a run come from: exactly one of these.
#[derive(Clone, Debug)]
pub enum ResourceSource {
    /// `--inventory FILE`: source/target pairs written out.
    Inventory(PathBuf),
    /// ATG's graph (`--neo4j-uri`) with the targets of `--iac-dir` (or of the graph).
    Graph(Box<GraphInventory>),
}

/// The ARM types read from the graph: those the plugins handle plus those the Terraform reader
/// knows, so that the plan lists every data plane it has a pair for.
pub fn graph_resource_types() -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    let plugin_types = crate::dataplane::registry::PLUGINS
        .iter()
        .flat_map(|plugin| plugin.info().resource_types.iter().copied());
    for resource_type in plugin_types.chain(crate::inventory::terraform::arm_types()) {
        if !types.iter().any(|t| t.eq_ignore_ascii_case(resource_type)) {
            types.push(resource_type.to_owned());
        }
    }
    types
}

fn resource_source(
    args: &DeployArgs,
    warnings: &mut Vec<String>,
) -> Result<ResourceSource, SettingsError> {
    let graph = &args.graph;
    let graph_only: Vec<&str> = [
        (graph.source_subscription.is_some(), "--source-subscription"),
        (graph.target_subscription.is_some(), "--target-subscription"),
        (graph.iac_dir.is_some(), "--iac-dir"),
        (graph.mappings.is_some(), "--mappings"),
        (graph.name_mappings.is_some(), "--name-mappings"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect();
    if let Some(inventory) = &args.inventory {
        // Flags typed next to --inventory mean two sources; the environment's NEO4J_URI (set
        // for ATG itself, say) does not, and gets a warning instead.
        let typed: Vec<&str> = graph
            .typed_neo4j_flags
            .iter()
            .copied()
            .chain(graph_only)
            .collect();
        if !typed.is_empty() {
            return Err(settings_error(
                format!(
                    "two sources of resources: --inventory and {}",
                    typed.join(", ")
                ),
                Some("take the resources from one place: a JSON inventory, or ATG's graph (--neo4j-uri with --iac-dir)"),
            ));
        }
        if graph.neo4j_uri.is_some() {
            warnings
                .push("NEO4J_URI is set, but --inventory is given: the graph is not read".into());
        }
        return Ok(ResourceSource::Inventory(inventory.clone()));
    }
    let Some(uri) = &graph.neo4j_uri else {
        if graph_only.is_empty() {
            return Err(settings_error(
                "no inventory given",
                Some("pass --inventory FILE (a JSON list of source/target pairs, see docs/inventory.md), or read ATG's graph with --neo4j-uri and --iac-dir"),
            ));
        }
        return Err(settings_error(
            format!("{} need ATG's graph", graph_only.join(", ")),
            Some("pass --neo4j-uri (or set NEO4J_URI) with --neo4j-user and --neo4j-password"),
        ));
    };
    let password = graph.neo4j_password.clone().ok_or_else(|| {
        settings_error(
            "no Neo4j password",
            Some("pass --neo4j-password or set NEO4J_PASSWORD"),
        )
    })?;
    let targets = match (&graph.iac_dir, &graph.target_subscription) {
        (Some(dir), _) => {
            if !dir.exists() {
                return Err(settings_error(
                    format!("--iac-dir `{}` does not exist", dir.display()),
                    Some("pass ATG's IaC directory holding terraform.tfstate"),
                ));
            }
            TargetSource::IacDir(dir.clone())
        }
        (None, Some(target)) => TargetSource::Graph {
            subscription: target.clone(),
        },
        (None, None) => {
            return Err(settings_error(
                "no targets for the graph's resources",
                Some("pass --iac-dir DIR (ATG's IaC directory with terraform.tfstate), or --target-subscription for targets ATG scanned into the same graph"),
            ))
        }
    };
    // Without it the graph's other subscriptions (the target's among them) would be sources.
    let Some(source_subscription) = &graph.source_subscription else {
        return Err(settings_error(
            "the graph's resources need --source-subscription",
            Some("ATG's graph may hold several subscriptions, the target's too: pass the subscription the source resources are in"),
        ));
    };
    if let TargetSource::Graph { subscription } = &targets {
        if source_subscription.eq_ignore_ascii_case(subscription) {
            return Err(settings_error(
                "targets from the graph need a --source-subscription other than --target-subscription",
                Some("or pass --iac-dir with the Terraform state of the deployed targets"),
            ));
        }
    }
    if let Some(path) = &graph.name_mappings {
        if !path.is_file() {
            return Err(settings_error(
                format!("--name-mappings `{}` is not a file", path.display()),
                Some("pass ATG's name_mappings.json (it is written beside the IaC it generates)"),
            ));
        }
    }
    let mut graph_settings = GraphSettings::new(uri.clone(), graph.neo4j_user.clone(), password);
    graph_settings.database.clone_from(&graph.neo4j_database);
    Ok(ResourceSource::Graph(Box::new(GraphInventory {
        graph: graph_settings,
        types: graph_resource_types(),
        source_subscription: graph.source_subscription.clone(),
        target_subscription: graph.target_subscription.clone(),
        targets,
        mappings: graph.mappings.clone(),
        name_mappings: graph.name_mappings.clone(),
        options: MatchOptions {
            source_tenant_id: args
                .source_tenant_id
                .clone()
                .or_else(|| args.source_sp.source_sp_tenant_id.clone()),
            target_tenant_id: args
                .target_tenant_id
                .clone()
                .or_else(|| args.target_sp.sp_tenant_id.clone()),
        },
    })))
}

pub struct DeploySettings {
    pub resources: ResourceSource,
    pub mode: ModeChoice,
    pub run: RunSettings,
    pub http: HttpSettings,
    pub source_credentials: CredentialSettings,
    pub target_credentials: CredentialSettings,
    pub output: OutputFormat,
    pub report_path: Option<PathBuf>,
    pub progress: bool,
    /// `--detailed-exitcode` (only with --dry-run): exit 3 when changes are pending.
    pub detailed_exitcode: bool,
    /// `--stats-interval`; `None` when 0.
    pub stats_interval: Option<Duration>,
    pub filters: PairFilters,
    /// Things worth saying about the flags that do not stop the run.
    pub warnings: Vec<String>,
}

/// Refuses a `--report` path the report could not be written to at the end of the run, before
/// any request: a directory, a FIFO, a missing directory, a file or directory atg may not write.
/// An existing report is opened for writing but not truncated: it stays as it is until the new
/// report replaces it.
fn check_report_path(path: &Path) -> Result<(), SettingsError> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let refuse = |problem: String| {
        settings_error(
            format!("--report `{shown}` {problem}"),
            Some("pass a file path in a directory atg can write to"),
        )
    };
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(refuse("is a directory".into())),
        // Opening a FIFO for writing would block until something reads it.
        Ok(metadata) if metadata.file_type().is_fifo() => Err(refuse("is a FIFO".into())),
        Ok(_) => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|error| refuse(format!("cannot be written: {error}"))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let directory = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            if !directory.is_dir() {
                return Err(refuse(format!(
                    "cannot be written: the directory `{}` does not exist",
                    directory.display()
                )));
            }
            // Whether the directory takes a new file: create one of our own and remove it,
            // leaving nothing behind if the run stops before its report.
            let probe = directory.join(format!(".atg-report-probe-{}", std::process::id()));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
                .map_err(|error| refuse(format!("cannot be written: {error}")))?;
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(error) => Err(refuse(format!("cannot be written: {error}"))),
    }
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
    /// The settings of `atg verify`: a dry run that plans item by item, where a difference is
    /// a difference whatever `--on-conflict` says. Flags that only shape writes are refused.
    pub fn for_verify(mut self, args: &DeployArgs) -> Result<Self, SettingsError> {
        let refused = [
            (args.dry_run, "--dry-run"),
            (args.detailed_exitcode, "--detailed-exitcode"),
            (args.on_conflict != OnConflict::default(), "--on-conflict"),
            (args.on_deleted != OnDeleted::default(), "--on-deleted"),
            (args.plan.is_some(), "--plan"),
            (args.plan_out.is_some(), "--plan-out"),
        ];
        if let Some((_, flag)) = refused.iter().find(|(given, _)| *given) {
            return Err(settings_error(
                format!("atg verify takes no {flag}"),
                Some("verify always reads only, compares every item and exits 0 only when the targets hold everything the mode promises"),
            ));
        }
        self.run.verify = true;
        self.run.dry_run = true;
        self.run.on_conflict = OnConflict::Overwrite;
        self.run.on_deleted = OnDeleted::Recover;
        Ok(self)
    }

    pub fn from_args(
        args: &DeployArgs,
        environment: CredentialEnvironment,
        terminal: bool,
    ) -> Result<Self, SettingsError> {
        let mut warnings = Vec::new();
        if args.detailed_exitcode && !args.dry_run {
            return Err(settings_error(
                "--detailed-exitcode needs --dry-run",
                Some("add --dry-run: its exit code then says whether the plan would change anything (0 no, 3 yes)"),
            ));
        }
        if args.plan_out.is_some() && !args.dry_run {
            return Err(settings_error(
                "--plan-out needs --dry-run",
                Some("add --dry-run: the plan is what a dry run decides; apply it later with --plan FILE"),
            ));
        }
        let resources = resource_source(args, &mut warnings)?;
        let filters = PairFilters {
            include_types: args.include_type.clone(),
            exclude_types: args.exclude_type.clone(),
            resources: args.resource.clone(),
        };
        warnings.extend(filters.warnings());
        if let Some(path) = &args.report {
            check_report_path(path)?;
        }
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
            resources,
            mode,
            run: RunSettings {
                mode: match mode {
                    ModeChoice::Explicit(mode) => mode,
                    ModeChoice::Ask | ModeChoice::Default => Mode::Template,
                },
                dry_run: args.dry_run,
                verify: false,
                on_conflict: args.on_conflict,
                on_deleted: args.on_deleted,
                concurrency: usize::from(args.concurrency),
                resource_concurrency: 4,
                settle_timeout: Duration::from_secs(60),
                approved: None,
                journal: None,
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
            detailed_exitcode: args.detailed_exitcode,
            stats_interval: (args.stats_interval > 0)
                .then(|| Duration::from_secs(args.stats_interval)),
            filters,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests;
