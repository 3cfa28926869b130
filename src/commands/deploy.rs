//! `atg deploy` and `atg verify`: settings → inventory → mode → credentials → orchestrator →
//! report. Verify is the same run, read-only and item by item, judged by its verdicts.

use std::io::IsTerminal;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use tokio_util::sync::CancellationToken;

use super::ExitStatus;
use crate::azure::credential::{chain_links, ChainCredential, CredentialEnvironment};
use crate::azure::{AzureError, AzureHttp};
use crate::cli::{DeployArgs, OutputFormat};
use crate::dataplane::{OnConflict, OnDeleted};
use crate::inventory::json::JsonInventory;
use crate::inventory::{escape_controls, InventoryError, InventorySource};
use crate::orchestrator::plan_file::{Approved, Journal, PlanFile, PlannedResource, PLAN_VERSION};
use crate::orchestrator::{self, Connections};
use crate::settings::{DeploySettings, ModeChoice, ResourceSource};
use crate::ui::progress::{Progress, Statistics};
use crate::ui::Printer;

/// An error that stops the run before it starts (exit 2): on stderr, and with `--output json`
/// also as a JSON document on stdout, so a pipeline that reads stdout learns why.
fn could_not_run(
    printer: Printer,
    output: OutputFormat,
    message: &str,
    hints: &[String],
) -> ExitStatus {
    printer.error(message, hints);
    if output == OutputFormat::Json {
        let _ = printer.json(&crate::orchestrator::report::ErrorReport::new(
            message,
            hints,
            ExitStatus::Error.code(),
        ));
    }
    ExitStatus::Error
}

/// Which command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `atg deploy`: plan, then apply (unless --dry-run).
    Deploy,
    /// `atg verify`: compare both sides item by item; write nothing.
    Verify,
}

pub async fn run(args: &DeployArgs, printer: Printer, purpose: Purpose) -> ExitStatus {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let settings = DeploySettings::from_args(args, CredentialEnvironment::from_process(), terminal)
        .and_then(|settings| match purpose {
            Purpose::Deploy => Ok(settings),
            Purpose::Verify => settings.for_verify(args),
        });
    let mut settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            return could_not_run(
                printer,
                args.output,
                &error.message,
                &error.hint.into_iter().collect::<Vec<_>>(),
            );
        }
    };
    for warning in &settings.warnings {
        printer.warn(warning);
    }
    let plan = match &args.plan {
        Some(path) => match use_plan(path, args, &mut settings) {
            Ok(plan) => Some(plan),
            Err(message) => {
                return could_not_run(
                    printer,
                    args.output,
                    &format!("cannot apply the plan `{}`: {message}", path.display()),
                    &["make the plan with the same inputs: atg deploy --dataplane --dry-run --plan-out FILE ...".to_owned()],
                );
            }
        },
        None => None,
    };
    if !args.dataplane && purpose == Purpose::Deploy {
        tracing::debug!("--dataplane not given: the data plane is the only stage atg runs");
    }

    let http = match AzureHttp::new(&settings.http) {
        Ok(http) => http,
        Err(error) => {
            return could_not_run(printer, args.output, &error.to_string(), &[]);
        }
    };

    let source: Box<dyn InventorySource> = match &settings.resources {
        ResourceSource::Inventory(path) => Box::new(JsonInventory { path: path.clone() }),
        ResourceSource::Graph(graph) => Box::new((**graph).clone()),
    };
    let mut filtered = 0;
    // Everything wrong with the pairs is found here, before any request to Azure.
    let checked = source.load().await.and_then(|mut inventory| {
        inventory.check()?;
        // Left-out pairs are neither checked nor contacted.
        filtered = match settings.filters.apply(&mut inventory) {
            Ok(count) => count,
            Err(error) => return Ok(Err(error)),
        };
        let problems = orchestrator::check_pairs(&inventory, settings.http.cloud);
        if !problems.is_empty() {
            return Err(InventoryError::Options {
                origin: escape_controls(&inventory.origin).into_owned(),
                problems,
            });
        }
        Ok(Ok(inventory))
    });
    let inventory = match checked {
        Ok(Ok(inventory)) => inventory,
        Ok(Err(error)) => {
            printer.error(&error.message, &[error.hint]);
            return ExitStatus::Error;
        }
        Err(error) => {
            return could_not_run(
                printer,
                args.output,
                &error.to_string(),
                &error.hint().into_iter().collect::<Vec<_>>(),
            );
        }
    };
    let nothing_to_do = inventory.pairs.is_empty();
    if nothing_to_do {
        printer.info(&if filtered > 0 {
            format!("nothing to do: the filters left out every pair ({filtered})")
        } else if inventory.unmatched.is_empty() {
            "nothing to do: the inventory has no resources".to_owned()
        } else {
            format!(
                "nothing to do: no resource was paired with a target ({} unmatched, listed in the report)",
                inventory.unmatched.len()
            )
        });
    }

    match settings.mode {
        ModeChoice::Explicit(_) => {}
        // No pair, no request: neither a mode nor an identity is needed.
        _ if nothing_to_do => {}
        ModeChoice::Default => {
            printer.info(
                "mode: template (the default; pass --dataplane-mode replication for a full copy)",
            );
        }
        ModeChoice::Ask => match printer.ask_mode(&inventory) {
            Ok(Some(mode)) => settings.run.mode = mode,
            Ok(None) => {
                return could_not_run(printer, args.output, "cancelled: no mode chosen", &[]);
            }
            Err(error) => {
                return could_not_run(
                    printer,
                    args.output,
                    &format!("cannot read the answer: {error}"),
                    &[],
                );
            }
        },
    }

    let prompt_printer = printer;
    let prompt: crate::azure::device_code::PromptFn =
        Arc::new(move |message: &str| prompt_printer.info(message));
    settings.source_credentials.prompt = Some(prompt.clone());
    settings.target_credentials.prompt = Some(prompt);
    let source = Arc::new(ChainCredential::new(
        "source",
        chain_links(&settings.source_credentials, &http),
    ));
    let target = Arc::new(ChainCredential::new(
        "target",
        chain_links(&settings.target_credentials, &http),
    ));

    // Fail before any work when a side has no identity at all (exit 2). Token issuance does not
    // depend on permissions, so this checks identity only; permissions show per resource.
    let scope = http.cloud.resource_manager_scope();
    let sides = if nothing_to_do {
        Vec::new()
    } else {
        vec![("source", &source), ("target", &target)]
    };
    for (side, credential) in sides {
        if let Err(error) = credential.get_token(&[scope.as_str()], None).await {
            let error = AzureError::from(error);
            return could_not_run(
                printer,
                args.output,
                &format!("{side} credentials: {}", error.message),
                &[],
            );
        }
    }

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let signal_printer = printer;
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            signal_printer.warn(&format!(
                "interrupted: no new item starts; items in flight may finish (at most {}s), then the report (Ctrl-C again to stop now, without a report: exit 130)",
                crate::dataplane::CANCEL_GRACE.as_secs()
            ));
            on_signal.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                signal_printer.error("interrupted twice: stopping without a report", &[]);
                std::process::exit(130);
            }
        }
    });

    let progress = Arc::new(Progress::new(
        settings.progress && !printer.quiet,
        printer.stderr_is_terminal,
    ));
    let statistics = Arc::new(Statistics::new(
        progress.clone(),
        inventory.pairs.len(),
        http.retry_stats.clone(),
    ));
    let stats_printer = settings
        .stats_interval
        .filter(|_| !printer.quiet && !printer.stderr_is_terminal)
        .map(|interval| statistics.spawn_printer(interval));
    let connections = Connections {
        http,
        source,
        target,
    };
    let mut report =
        orchestrator::run(inventory, &settings.run, &connections, statistics, cancel).await;
    if let Some(task) = stats_printer {
        task.abort();
    }
    progress.finish();
    report.filtered_pairs = filtered;
    if let Some(plan) = &plan {
        let unknown = plan
            .resources
            .iter()
            .filter(|planned| {
                !report.resources.iter().any(|resource| {
                    resource.source_id.eq_ignore_ascii_case(&planned.source_id)
                        && resource.target_id.eq_ignore_ascii_case(&planned.target_id)
                })
            })
            .count();
        if unknown > 0 {
            report.inventory_warnings.push(format!(
                "the plan has {unknown} pair(s) this inventory (after filters) lacks: not applied"
            ));
        }
    }
    if let Some(journal) = &settings.run.journal {
        if let Some(failure) = journal.failure() {
            report.inventory_warnings.push(failure);
        }
    }

    // A pipeline that asked for a report and did not get one must not see success.
    let mut report_lost = false;
    if let Some(path) = &settings.report_path {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(path, bytes));
        if let Err(error) = written {
            printer.error(
                &format!("cannot write the report to `{}`: {error}", path.display()),
                &[],
            );
            report_lost = true;
        }
    }
    if settings.output == OutputFormat::Json {
        if let Err(error) = printer.json(&report) {
            printer.error(&format!("cannot write the report to stdout: {error}"), &[]);
            report_lost = true;
        }
    }
    if let Some(path) = &args.plan_out {
        if let Err(error) = write_plan(path, &report, &settings) {
            printer.error(
                &format!("cannot write the plan to `{}`: {error}", path.display()),
                &[],
            );
            report_lost = true;
        }
    }
    printer.summary(&report);
    if !report.succeeded() || report_lost {
        ExitStatus::Failure
    } else if !settings.detailed_exitcode {
        ExitStatus::Success
    } else if report.failures_planned() {
        ExitStatus::Failure
    } else if report.changes_pending() {
        ExitStatus::ChangesPending
    } else {
        ExitStatus::Success
    }
}

/// Reads the plan of `--plan`, checks it fits the run, and makes the run apply it: its mode and
/// policies, what it approved, and its journal.
fn use_plan(
    path: &std::path::Path,
    args: &DeployArgs,
    settings: &mut DeploySettings,
) -> Result<PlanFile, String> {
    let plan = PlanFile::read(path)?;
    if let ModeChoice::Explicit(mode) = settings.mode {
        if mode != plan.mode {
            return Err(format!(
                "it was made in {} mode and --dataplane-mode says {mode}",
                plan.mode
            ));
        }
    }
    let cloud = settings.http.cloud.to_string();
    if plan.cloud != cloud {
        return Err(format!(
            "it was made for the {} cloud and this run is for {cloud}",
            plan.cloud
        ));
    }
    for (given, planned, flag) in [
        (
            args.on_conflict != OnConflict::default() && args.on_conflict != plan.on_conflict,
            format!("{:?}", plan.on_conflict),
            "--on-conflict",
        ),
        (
            args.on_deleted != OnDeleted::default() && args.on_deleted != plan.on_deleted,
            format!("{:?}", plan.on_deleted),
            "--on-deleted",
        ),
    ] {
        if given {
            return Err(format!(
                "{flag} differs from the plan's ({planned}): the plan's decisions were made with it"
            ));
        }
    }
    let journal = Journal::open(path)?;
    settings.mode = ModeChoice::Explicit(plan.mode);
    settings.run.mode = plan.mode;
    settings.run.on_conflict = plan.on_conflict;
    settings.run.on_deleted = plan.on_deleted;
    settings.run.approved = Some(Arc::new(Approved::new(&plan, &journal)));
    settings.run.journal = Some(Arc::new(journal));
    Ok(plan)
}

/// Writes a dry run's decisions as a plan file (`--plan-out`).
fn write_plan(
    path: &std::path::Path,
    report: &crate::orchestrator::report::Report,
    settings: &DeploySettings,
) -> std::io::Result<()> {
    let plan = PlanFile {
        plan_version: PLAN_VERSION,
        atg_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: report.started_at.clone(),
        mode: settings.run.mode,
        on_conflict: settings.run.on_conflict,
        on_deleted: settings.run.on_deleted,
        cloud: report.cloud.clone(),
        resources: report
            .resources
            .iter()
            .filter(|resource| resource.plugin.is_some() && resource.error.is_none())
            .map(|resource| PlannedResource {
                source_id: resource.source_id.clone(),
                target_id: resource.target_id.clone(),
                resource_type: resource.resource_type.clone(),
                items: resource.plan.clone(),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&plan).map_err(std::io::Error::other)?;
    std::fs::write(path, bytes)
}
