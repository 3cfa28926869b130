//! Command-line types (clap derive). No I/O here; `///` docs become `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::azure::{Cloud, ConnectTo, Sensitive};
use crate::dataplane::{Mode, OnConflict, OnDeleted};
use crate::ui::ColorChoice;

// The grace period quoted is `dataplane::CANCEL_GRACE` (a test keeps them equal).
const EXIT_CODES: &str = "Exit codes:\n    0  every resource succeeded (items may be skipped, with reasons)\n    1  the run finished with failures, or was cancelled (first Ctrl-C: no new item starts,\n       items in flight finish within 30 s, then the report)\n    2  the run could not start: bad flags, inventory or credentials (with --output json,\n       also a JSON document on stdout)\n    3  --dry-run --detailed-exitcode: changes are pending (an item planned create, overwrite,\n       compare, recover or purge; 0 then means nothing would change)\n  130  interrupted twice (a second Ctrl-C): stopped at once, no report";

const VERIFY_EXIT_CODES: &str = "Exit codes:\n    0  every target holds everything the mode promises, the same as its source\n    1  something promised is missing, different or could not be compared (or a resource\n       could not be read)\n    2  the run could not start: bad flags, inventory or credentials";

/// atg fills deployed Azure resources from a source tenant: the data plane that Terraform leaves
/// empty (Key Vault, Storage, App Service, Service Bus, Event Hubs, API Management: `atg plugins`).
#[derive(Parser)]
#[command(name = "atg", version, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More output on stderr: -v debug, -vv trace (`RUST_LOG`, when set, wins).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors and the final summary line on stderr; no progress.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Colour on stderr (messages, summary, -v logs): auto colours only a terminal, and not
    /// when NO_COLOR is set.
    #[allow(clippy::doc_markdown)] // --help text, where backticks would show literally
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto, global = true)]
    pub color: ColorChoice,
}

impl Cli {
    /// Parses a command line like `try_parse_from`, and also notes which of the graph's flags
    /// were typed rather than taken from the environment (clap knows, the derived types do not):
    /// `--neo4j-uri` next to `--inventory` is an error, `NEO4J_URI` in the environment is not.
    pub fn try_parse_noting_sources<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli =
            Cli::from_arg_matches(&matches).map_err(|error| error.format(&mut Cli::command()))?;
        if let (Command::Deploy(deploy) | Command::Verify(deploy), Some((_, given))) =
            (&mut cli.command, matches.subcommand())
        {
            deploy.graph.typed_neo4j_flags = [
                ("neo4j_uri", "--neo4j-uri"),
                ("neo4j_user", "--neo4j-user"),
                ("neo4j_password", "--neo4j-password"),
                ("neo4j_database", "--neo4j-database"),
            ]
            .into_iter()
            .filter(|(id, _)| {
                given.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|(_, flag)| flag)
            .collect();
        }
        Ok(cli)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Replicate the data plane of source resources into their deployed targets.
    #[command(after_help = EXIT_CODES)]
    Deploy(Box<DeployArgs>),
    /// Compare every target with its source, item by item, after a deploy: missing, different
    /// and extra items and a fidelity figure. Same inputs as deploy; reads both sides, writes
    /// nothing; values are compared in memory and never printed. Exit 0 only when everything
    /// the mode promises is there and the same, 1 otherwise, 2 when it cannot start.
    #[command(after_help = VERIFY_EXIT_CODES)]
    Verify(Box<DeployArgs>),
    /// List the supported resource types, their modes, item kinds and required permissions.
    Plugins(PluginsArgs),
    /// Print a shell completion script to stdout, e.g. `atg completions bash > /etc/bash_completion.d/atg`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, e.g. `atg man > atg.1`.
    Man,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A summary for people on stderr.
    Human,
    /// The machine-readable report on stdout (the summary still goes to stderr).
    Json,
}

#[allow(clippy::unnecessary_wraps)] // the signature clap's value_parser takes
fn parse_sensitive(value: &str) -> Result<Sensitive, String> {
    Ok(Sensitive::new(value))
}

#[derive(Args)]
pub struct DeployArgs {
    /// Run the data-plane stage (the only stage atg runs; accepted for ATG compatibility).
    #[arg(long)]
    pub dataplane: bool,

    /// template: structure and placeholder values, no secret value read or written;
    /// replication: full copy. Default: ask with --dataplane-interactive on a terminal,
    /// else template.
    #[arg(long, value_enum)]
    pub dataplane_mode: Option<Mode>,

    /// Discover and plan both sides; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// JSON inventory of source/target resource pairs (docs/inventory.md).
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,

    #[command(flatten)]
    pub graph: GraphArgs,

    /// Azure cloud of both tenants.
    #[arg(long, default_value = "AzureCloud", value_parser = clap::value_parser!(Cloud))]
    pub cloud: Cloud,

    #[command(flatten)]
    pub target_sp: TargetServicePrincipal,

    #[command(flatten)]
    pub source_sp: SourceServicePrincipal,

    /// Tenant of the target resources (used by the Azure CLI and interactive sign-in).
    #[arg(long, env = "AZURE_DATAPLANE_TARGET_TENANT_ID", value_name = "TENANT")]
    pub target_tenant_id: Option<String>,

    /// Tenant of the source resources, when it differs from the target's.
    #[arg(long, value_name = "TENANT")]
    pub source_tenant_id: Option<String>,

    /// Allow device-code sign-in as a last resort, and ask which mode to use when
    /// --dataplane-mode is not given (on a terminal).
    #[arg(long)]
    pub dataplane_interactive: bool,

    /// Item operations in flight at once, across all resources.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// When a target item exists and differs.
    #[arg(long, value_enum, default_value_t = OnConflict::Overwrite)]
    pub on_conflict: OnConflict,

    /// When a target name is soft-deleted but recoverable.
    #[arg(long, value_enum, default_value_t = OnDeleted::Recover)]
    pub on_deleted: OnDeleted,

    /// Only the pairs of this ARM type, e.g. Microsoft.KeyVault/vaults (of the source or the
    /// target, any case). Repeatable.
    #[arg(long, value_name = "TYPE", help_heading = "Filters")]
    pub include_type: Vec<String>,

    /// Leave out the pairs of this ARM type (counted in the report as filtered). Repeatable.
    #[arg(long, value_name = "TYPE", help_heading = "Filters")]
    pub exclude_type: Vec<String>,

    /// Only the pairs whose source or target has this name or full ARM id (any case).
    /// Repeatable.
    #[arg(long, value_name = "NAME_OR_ID", help_heading = "Filters")]
    pub resource: Vec<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,

    /// Also write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Also write the log to FILE, whatever the terminal's verbosity: atg's debug messages and
    /// one line per HTTP request (method, host, path, status, duration; never a query, header
    /// or body), without colour. Replaced if it exists.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// When stderr is not a terminal (and without --quiet): one line of statistics every SECS
    /// seconds (items done, per second, retries, resources done); 0 turns them off.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub stats_interval: u64,

    /// No progress bars or progress lines.
    #[arg(long)]
    pub no_progress: bool,

    /// Trust this PEM root certificate too (TLS-inspecting proxies, private clouds, emulators).
    #[arg(long, value_name = "FILE", env = "ATG_CA_CERT")]
    pub ca_cert: Option<PathBuf>,

    /// Connect to IP:PORT for hosts ending in SUFFIX, keeping host names and TLS checks
    /// (like curl --connect-to). Repeatable.
    #[arg(long, value_name = "SUFFIX=IP:PORT", value_parser = clap::value_parser!(ConnectTo), env = "ATG_CONNECT_TO", value_delimiter = ',')]
    pub connect_to: Vec<ConnectTo>,

    /// With --dry-run: exit 0 when nothing would change, 3 when changes are pending, 1 when an
    /// item would fail or a resource failed.
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// With --dry-run: also write the plan to FILE (versioned JSON: names, decisions and
    /// fingerprints, never a value), for `--plan FILE` to apply after review.
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<PathBuf>,

    /// Apply exactly the plan in FILE (from --dry-run --plan-out): only the items it decided,
    /// each only when its source and target did not change since (else refused as stale).
    /// Applied items are recorded in FILE.applied, so running it again resumes.
    #[arg(long, value_name = "FILE", conflicts_with = "dry_run")]
    pub plan: Option<PathBuf>,
}

/// Resources from ATG's graph (instead of --inventory): sources are the graph's original
/// resources, targets the Terraform state of the deployed IaC (--iac-dir).
#[derive(Args)]
#[command(next_help_heading = "ATG graph")]
// Doc comments here are --help text, where backticks and <> would show literally.
#[allow(clippy::doc_markdown, clippy::doc_link_with_quotes)]
pub struct GraphArgs {
    /// Bolt URI of ATG's Neo4j graph, e.g. bolt://localhost:7687 (replaces --inventory).
    #[arg(long, env = "NEO4J_URI", value_name = "URI")]
    pub neo4j_uri: Option<String>,

    /// Neo4j user.
    #[arg(long, env = "NEO4J_USER", value_name = "USER", default_value = "neo4j")]
    pub neo4j_user: String,

    /// Neo4j database to read (default: the server's default database).
    #[arg(long, env = "NEO4J_DATABASE", value_name = "NAME")]
    pub neo4j_database: Option<String>,

    /// Neo4j password (prefer the environment variable).
    #[arg(long, env = "NEO4J_PASSWORD", hide_env_values = true, value_name = "PASSWORD", value_parser = parse_sensitive)]
    pub neo4j_password: Option<Sensitive>,

    /// The subscription of the source resources in the graph (required: ATG's graph may hold
    /// the target's resources too).
    #[arg(long, value_name = "SUBSCRIPTION")]
    pub source_subscription: Option<String>,

    /// Subscription of the deployed targets (ATG names some targets after it); without
    /// --iac-dir, the targets are this subscription's resources in the same graph.
    #[arg(long, value_name = "SUBSCRIPTION")]
    pub target_subscription: Option<String>,

    /// ATG's IaC directory after `terraform apply`: terraform.tfstate (or the JSON of
    /// `terraform show -json` as terraform.tfstate.json) and name_mappings.json.
    #[arg(long, value_name = "DIR")]
    pub iac_dir: Option<PathBuf>,

    /// ATG's name_mappings.json (its conflict renames), when it is not in --iac-dir or the
    /// targets come from the graph.
    #[arg(long, value_name = "FILE")]
    pub name_mappings: Option<PathBuf>,

    /// Explicit source → target pairs that win over name matching:
    /// {"mappings": [{"source": SOURCE_ID, "target": TARGET_ID}]} (ARM ids).
    #[arg(long, value_name = "FILE")]
    pub mappings: Option<PathBuf>,

    /// The --neo4j-* flags given on the command line (not from the environment or defaults),
    /// filled in by [`Cli::try_parse_noting_sources`].
    #[arg(skip)]
    pub typed_neo4j_flags: Vec<&'static str>,
}

/// The service principal of the target side (and of both sides unless --source-sp-* is given).
#[derive(Args)]
pub struct TargetServicePrincipal {
    /// Service principal application (client) id.
    #[arg(long, env = "AZURE_DATAPLANE_CLIENT_ID", value_name = "ID")]
    pub sp_client_id: Option<String>,

    /// Service principal client secret (prefer the environment variable).
    #[arg(long, env = "AZURE_DATAPLANE_CLIENT_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_sensitive)]
    pub sp_client_secret: Option<Sensitive>,

    /// Service principal tenant id.
    #[arg(long, env = "AZURE_DATAPLANE_TENANT_ID", value_name = "TENANT")]
    pub sp_tenant_id: Option<String>,
}

/// A separate service principal for the source side (cross-tenant replication).
#[derive(Args)]
pub struct SourceServicePrincipal {
    /// Source-side service principal application (client) id.
    #[arg(long, env = "AZURE_DATAPLANE_SOURCE_CLIENT_ID", value_name = "ID")]
    pub source_sp_client_id: Option<String>,

    /// Source-side service principal client secret.
    #[arg(long, env = "AZURE_DATAPLANE_SOURCE_CLIENT_SECRET", hide_env_values = true, value_name = "SECRET", value_parser = parse_sensitive)]
    pub source_sp_client_secret: Option<Sensitive>,

    /// Source-side service principal tenant id.
    #[arg(long, env = "AZURE_DATAPLANE_SOURCE_TENANT_ID", value_name = "TENANT")]
    pub source_sp_tenant_id: Option<String>,
}

#[derive(Args)]
pub struct PluginsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_quotes_the_real_cancellation_grace_period() {
        let quoted = format!("within {} s", crate::dataplane::CANCEL_GRACE.as_secs());
        assert!(EXIT_CODES.contains(&quoted), "{EXIT_CODES}");
    }
}
