//! Everything atg prints: messages, the human summary, the JSON report, the plugin table,
//! progress and the interactive mode prompt. The only module allowed to print.
//!
//! stdout carries data (the JSON report, `atg plugins --output json`); stderr carries progress
//! and messages.

#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod progress;

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};

use crate::dataplane::{
    registry, Difference, ItemStatus, Mode, PlannedAction, PluginInfo, Side, Verdict,
};
use crate::inventory::{escape_controls, Inventory};
use crate::orchestrator::report::{ItemCounts, Report, ResourceStatus};

/// When stderr gets colour (`--color`): messages, the summary and `-v` logs alike.
// Variant docs are --help text, where backticks would show literally.
#[allow(clippy::doc_markdown)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Only when stderr is a terminal and NO_COLOR is unset (or empty).
    #[default]
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour this process's stderr.
    pub fn for_stderr(self) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        self.colors(std::io::stderr().is_terminal(), no_color)
    }

    fn colors(self, terminal: bool, no_color: bool) -> bool {
        match self {
            ColorChoice::Auto => terminal && !no_color,
            ColorChoice::Always => true,
            ColorChoice::Never => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Printer {
    pub quiet: bool,
    pub verbose: u8,
    pub stderr_is_terminal: bool,
    pub color: bool,
}

impl Printer {
    /// `color`: from [`ColorChoice::for_stderr`], the same answer the logs get.
    pub fn new(quiet: bool, verbose: u8, color: bool) -> Self {
        let stderr_is_terminal = std::io::stderr().is_terminal();
        Printer {
            quiet,
            verbose,
            stderr_is_terminal,
            color,
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// `error: message` then `hint:` lines. Always shown, even with --quiet.
    pub fn error(&self, message: &str, hints: &[String]) {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(out, "{} {}", self.paint("1;31", "error:"), plain(message));
        for hint in hints {
            let _ = writeln!(out, "  {} {}", self.paint("1;36", "hint:"), plain(hint));
        }
    }

    pub fn warn(&self, message: &str) {
        if !self.quiet {
            eprintln!("{} {}", self.paint("1;33", "warning:"), plain(message));
        }
    }

    pub fn info(&self, message: &str) {
        if !self.quiet {
            eprintln!("{}", plain(message));
        }
    }

    /// The JSON report on stdout.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, value)?;
        writeln!(out)
    }

    /// The human summary on stderr. With --quiet, one line.
    pub fn summary(&self, report: &Report) {
        self.write_summary(&mut std::io::stderr().lock(), report);
    }

    /// The summary, every name and message in it with its control characters escaped: item
    /// names and errors come from the services (a blob name may hold any character).
    fn write_summary(self, out: &mut impl Write, report: &Report) {
        let totals = &report.totals;
        let items = &totals.items;
        let headline = format!(
            "{}{}: {} resource(s): {} succeeded, {} failed, {} unsupported{}; items: {} in {:.1}s",
            if report.verify {
                "verify: "
            } else if report.dry_run {
                "dry run: "
            } else {
                ""
            },
            report.mode,
            totals.resources,
            totals.succeeded,
            totals.failed,
            totals.unsupported,
            if totals.cancelled > 0 {
                format!(", {} cancelled", totals.cancelled)
            } else {
                String::new()
            },
            counts_line(items, report),
            std::time::Duration::from_millis(report.duration_ms).as_secs_f64(),
        );
        if self.quiet {
            let _ = writeln!(out, "{headline}");
            return;
        }
        let _ = writeln!(out);
        for resource in &report.resources {
            let status = match resource.status {
                ResourceStatus::Succeeded => self.paint("32", "ok"),
                ResourceStatus::Failed => self.paint("31", "FAILED"),
                ResourceStatus::Unsupported => self.paint("33", "unsupported"),
                ResourceStatus::Cancelled => self.paint("33", "cancelled"),
            };
            let c = &resource.counts;
            let _ = writeln!(
                out,
                "{status} {} -> {} [{}, {}]: {}",
                escape_controls(&short(&resource.source_id)),
                escape_controls(&short(&resource.target_id)),
                resource.plugin.unwrap_or("no plugin"),
                resource.match_rule.as_str(),
                counts_line(c, report)
            );
            if resource.counts_by_kind.len() > 1 {
                for (kind, c) in &resource.counts_by_kind {
                    let _ = writeln!(out, "    {kind}: {}", counts_line(c, report));
                }
            }
            if !resource.evidence.is_empty() {
                let _ = writeln!(
                    out,
                    "    paired by {}",
                    plain(&resource.evidence.describe())
                );
            }
            if let Some(error) = &resource.error {
                let _ = writeln!(out, "    error: {}", plain(error));
            }
            if let Some(reason) = &resource.reason {
                let _ = writeln!(out, "    {}", plain(reason));
            }
            // Failures always, each with its error; skip reasons grouped, so a re-run of
            // 1,000 identical secrets is one line.
            let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
            let mut verdicts_shown = 0;
            for item in &resource.items {
                match &item.status {
                    ItemStatus::Verified { verdict } => match verdict {
                        Verdict::Identical => {}
                        Verdict::Skipped { reason } => {
                            *reasons
                                .entry(format!("{}: {}", item.kind, plain(reason)))
                                .or_default() += 1;
                        }
                        _ if verdicts_shown < VERDICTS_SHOWN || self.verbose > 0 => {
                            verdicts_shown += 1;
                            let _ = writeln!(
                                out,
                                "    {} {} `{}`",
                                describe_verdict(verdict),
                                item.kind,
                                escape_controls(&item.name),
                            );
                        }
                        _ => verdicts_shown += 1,
                    },
                    ItemStatus::Failed { error } => {
                        let _ = writeln!(
                            out,
                            "    {} {} `{}`: {}",
                            self.paint("31", "failed"),
                            item.kind,
                            escape_controls(&item.name),
                            plain(error)
                        );
                    }
                    ItemStatus::Partial { reason, .. } => {
                        let _ = writeln!(
                            out,
                            "    partial {} `{}`: {}",
                            item.kind,
                            escape_controls(&item.name),
                            plain(reason)
                        );
                    }
                    ItemStatus::Recovered { action } => {
                        let _ = writeln!(
                            out,
                            "    recovered {} `{}`: {}",
                            item.kind,
                            escape_controls(&item.name),
                            plain(action)
                        );
                    }
                    ItemStatus::Skipped { reason } => {
                        *reasons
                            .entry(format!("{}: {}", item.kind, plain(reason)))
                            .or_default() += 1;
                    }
                    ItemStatus::Planned { plan } if self.verbose > 0 => {
                        let _ = writeln!(
                            out,
                            "    plan {} `{}`: {}",
                            item.kind,
                            escape_controls(&item.name),
                            plain(&describe_plan(plan))
                        );
                    }
                    _ => {}
                }
            }
            if verdicts_shown > VERDICTS_SHOWN && self.verbose == 0 {
                let _ = writeln!(
                    out,
                    "    ... and {} more (-v lists them all; --output json has every one)",
                    verdicts_shown - VERDICTS_SHOWN
                );
            }
            if let Some(fidelity) = resource.fidelity {
                let _ = writeln!(out, "    fidelity {}", percent(fidelity));
            }
            for (reason, count) in reasons {
                let _ = writeln!(out, "    skipped {count} {reason}");
            }
        }
        for unmatched in &report.unmatched {
            let _ = writeln!(
                out,
                "unmatched {} {} ({}): {}",
                unmatched.side,
                escape_controls(&unmatched.id),
                escape_controls(&unmatched.resource_type),
                plain(&unmatched.reason)
            );
            for candidate in &unmatched.candidates {
                let _ = writeln!(
                    out,
                    "    candidate {} ({}): {}",
                    escape_controls(&candidate.name),
                    candidate.match_rule,
                    plain(&candidate.rejected)
                );
            }
        }
        if report.filtered_pairs > 0 {
            let _ = writeln!(
                out,
                "filtered: {} pair(s) left out by filters",
                report.filtered_pairs
            );
        }
        for warning in &report.inventory_warnings {
            let _ = writeln!(out, "{}: {}", self.paint("33", "warning"), plain(warning));
        }
        let retries = &report.retries;
        if retries.throttled + retries.server_busy + retries.transport > 0 {
            let _ = writeln!(
                out,
                "retries: {} throttled, {} server busy, {} connection faults",
                retries.throttled, retries.server_busy, retries.transport
            );
        }
        let _ = writeln!(out, "{headline}");
    }

    /// `atg plugins`: generated from the registry.
    pub fn plugins(&self) {
        let mut out = std::io::stdout().lock();
        for plugin in registry::PLUGINS {
            let info: &PluginInfo = plugin.info();
            let modes: Vec<String> = info.modes.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "{} ({})", info.name, info.resource_types.join(", "));
            let _ = writeln!(out, "  modes: {}", modes.join(", "));
            for kind in info.item_kinds {
                let _ = writeln!(out, "  {}:", kind.name);
                let _ = writeln!(out, "    template:    {}", kind.template);
                let _ = writeln!(out, "    replication: {}", kind.replication);
            }
            for permission in info.permissions {
                let side = match permission.side {
                    Side::Source => "source",
                    Side::Target => "target",
                };
                let _ = writeln!(
                    out,
                    "  {} {side} roles: {}",
                    permission.mode,
                    permission.roles.join(", ")
                );
                for action in permission.data_actions {
                    let _ = writeln!(out, "      {action}");
                }
            }
            for note in info.notes {
                let _ = writeln!(out, "  note: {note}");
            }
            for limit in info.limits {
                let kinds = if limit.kinds.is_empty() {
                    "every kind".to_owned()
                } else {
                    limit.kinds.join(", ")
                };
                let _ = writeln!(
                    out,
                    "  cannot: {} ({kinds}): {}",
                    limit.capability, limit.reason
                );
            }
        }
    }

    /// Asks which mode to use, after showing what was found. `None` when the user declines.
    pub fn ask_mode(&self, inventory: &Inventory) -> std::io::Result<Option<Mode>> {
        let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
        for pair in &inventory.pairs {
            *per_type
                .entry(pair.source.resource_type.clone())
                .or_default() += 1;
        }
        let mut err = std::io::stderr().lock();
        writeln!(err, "Resources found in {}:", inventory.origin)?;
        for (resource_type, count) in &per_type {
            let support = if registry::find(resource_type).is_some() {
                ""
            } else {
                " (no plugin: will be reported unsupported)"
            };
            writeln!(err, "  {count:>5}  {resource_type}{support}")?;
        }
        writeln!(err)?;
        writeln!(err, "  template     names, settings and structure; secrets get placeholder values; no secret value is read")?;
        writeln!(err, "  replication  full copy: secret values are read from the source and written to the target")?;
        write!(err, "Mode [template/replication/quit] (template): ")?;
        err.flush()?;
        let answer = read_line()?;
        let mode = match answer.trim().to_ascii_lowercase().as_str() {
            "" | "t" | "template" => Mode::Template,
            "r" | "replication" => Mode::Replication,
            _ => return Ok(None),
        };
        if mode == Mode::Replication {
            write!(
                err,
                "Replication copies secret values into the target tenant. Continue? [y/N]: "
            )?;
            err.flush()?;
            if !matches!(
                read_line()?.trim().to_ascii_lowercase().as_str(),
                "y" | "yes"
            ) {
                return Ok(None);
            }
        }
        Ok(Some(mode))
    }
}

/// A message with its control characters escaped, line by line: messages echo names from the
/// input, and whatever slipped past the checks must still not drive the terminal.
fn plain(message: &str) -> String {
    message
        .split('\n')
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join("\n")
}

fn read_line() -> std::io::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line)
}

/// How many differences `atg verify` lists per resource without -v.
const VERDICTS_SHOWN: usize = 20;

/// A verdict in words, e.g. `different (value, tags)`.
fn describe_verdict(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Identical => "identical".into(),
        Verdict::Missing => "missing".into(),
        Verdict::Different { differs } => {
            format!("different ({})", Difference::describe(differs))
        }
        Verdict::Extra => "extra (only in the target)".into(),
        Verdict::Skipped { reason } => format!("skipped: {}", plain(reason)),
        Verdict::Unverified { reason } => format!("unverified: {}", plain(reason)),
    }
}

/// A fidelity as a percentage, never rounded up to 100% when something is missing.
fn percent(fidelity: f64) -> String {
    let percent = (fidelity * 1000.0).floor() / 10.0;
    format!("{percent:.1}%")
}

/// One line of item counts: written (`created`, `overwritten`) or, in a dry run, `planned`;
/// `, N recovered` only when items were recovered from soft-delete, so the usual line keeps
/// its shape. `atg verify` counts verdicts and ends with the fidelity.
fn counts_line(c: &ItemCounts, report: &Report) -> String {
    if report.verify {
        return format!(
            "{} identical, {} missing, {} different, {} extra, {} unverified, {} skipped; fidelity {}",
            c.identical,
            c.missing,
            c.different,
            c.extra,
            c.unverified,
            c.skipped,
            percent(c.fidelity())
        );
    }
    let written = if report.dry_run {
        format!("{} planned", c.planned)
    } else {
        format!("{} created, {} overwritten", c.created, c.overwritten)
    };
    let recovered = if c.recovered > 0 {
        format!(", {} recovered", c.recovered)
    } else {
        String::new()
    };
    format!(
        "{} discovered, {written}{recovered}, {} partial, {} identical, {} skipped, {} failed",
        c.discovered, c.partial, c.identical, c.skipped, c.failed
    )
}

/// A plan in words: `overwrite (differs: value, tags)`, `skip: reason`.
fn describe_plan(plan: &PlannedAction) -> String {
    match plan {
        PlannedAction::Create => "create".into(),
        PlannedAction::Overwrite { differs } => {
            format!("overwrite (differs: {})", Difference::describe(differs))
        }
        PlannedAction::Identical => "identical".into(),
        PlannedAction::Compare => "compare".into(),
        PlannedAction::Skip { reason } => format!("skip: {reason}"),
        PlannedAction::Recover => "recover".into(),
        PlannedAction::Purge => "purge".into(),
        PlannedAction::Fail { reason } => format!("fail: {reason}"),
        PlannedAction::Extra => "extra (only in the target)".into(),
    }
}

/// `rg/name` of an ARM id, for human lines.
fn short(id: &str) -> String {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [.., _, name] => (*name).to_owned(),
        _ => id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_never_writes_a_control_character_from_a_name_or_message() {
        use crate::dataplane::{ItemOutcome, Mode};
        use crate::inventory::{Evidence, MatchRule};
        use crate::orchestrator::report::{Credentials, ResourceReport, Totals};
        let evil = "blob\u{1b}]0;pwned\u{7}\u{9b}2J\nerror: fake";
        let item = |status| ItemOutcome {
            kind: "blob",
            name: evil.into(),
            status,
            notes: Vec::new(),
            duration_ms: 1,
        };
        let mut report = Report {
            report_version: crate::orchestrator::report::REPORT_VERSION,
            atg_version: "0",
            mode: Mode::Replication,
            dry_run: false,
            verify: false,
            cloud: "AzureCloud".into(),
            inventory: "test".into(),
            started_at: String::new(),
            duration_ms: 0,
            cancelled: false,
            credentials: Credentials {
                source: None,
                target: None,
            },
            totals: Totals::default(),
            retries: crate::azure::policies::RetryCounts::default(),
            refused_writes: 0,
            resources: vec![ResourceReport {
                source_id: format!("/x/{evil}"),
                target_id: "/x/t".into(),
                resource_type: "Microsoft.Storage/storageAccounts".into(),
                match_rule: MatchRule::Inventory,
                evidence: Evidence::default(),
                plugin: Some("storage-account"),
                mode: Mode::Replication,
                status: ResourceStatus::Failed,
                error: Some(format!("server said {evil}")),
                reason: None,
                facts: serde_json::Map::new(),
                counts: ItemCounts::default(),
                counts_by_kind: BTreeMap::new(),
                items: vec![
                    item(ItemStatus::Failed { error: evil.into() }),
                    item(ItemStatus::Partial {
                        action: "a".into(),
                        reason: evil.into(),
                    }),
                    item(ItemStatus::Skipped {
                        reason: evil.into(),
                    }),
                    item(ItemStatus::Recovered {
                        action: evil.into(),
                    }),
                ],
                fidelity: None,
                duration_ms: 0,
            }],
            unmatched: Vec::new(),
            filtered_pairs: 0,
            inventory_warnings: vec![evil.into()],
        };
        report.compute_totals();
        let mut out = Vec::new();
        Printer {
            quiet: false,
            verbose: 1,
            stderr_is_terminal: true,
            color: false,
        }
        .write_summary(&mut out, &report);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(text.matches("blob\\u{1b}]0;pwned").count(), 10, "{text}");
        // A name is one line whatever it holds: its newline is escaped too.
        assert_eq!(
            text.matches("`blob\\u{1b}]0;pwned\\u{7}\\u{9b}2J\\u{a}error: fake`")
                .count(),
            3,
            "{text}"
        );
    }

    #[test]
    fn a_plan_in_words_names_what_differs_and_why() {
        let overwrite = PlannedAction::Overwrite {
            differs: vec![Difference::Value, Difference::ContentType],
        };
        assert_eq!(
            describe_plan(&overwrite),
            "overwrite (differs: value, content type)"
        );
        let skip = PlannedAction::Skip {
            reason: "policy".into(),
        };
        assert_eq!(describe_plan(&skip), "skip: policy");
        assert_eq!(describe_plan(&PlannedAction::Identical), "identical");
    }

    #[test]
    fn auto_colours_only_a_terminal_without_no_color() {
        assert!(ColorChoice::Auto.colors(true, false));
        assert!(!ColorChoice::Auto.colors(false, false));
        assert!(!ColorChoice::Auto.colors(true, true));
        assert!(ColorChoice::Always.colors(false, true));
        assert!(!ColorChoice::Never.colors(true, false));
    }
}
