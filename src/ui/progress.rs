//! Progress: indicatif bars on a terminal (one overall, one per resource in flight), a plain
//! line per resource otherwise, nothing with --quiet. Item names and counts only.

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::dataplane::{ItemOutcome, ItemStatus};
use crate::orchestrator::report::ResourceStatus;
use crate::orchestrator::ProgressSink;

pub enum Progress {
    Hidden,
    Lines,
    Bars(Bars),
}

pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    per_resource: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    pub fn new(enabled: bool, terminal: bool) -> Self {
        if !enabled {
            return Progress::Hidden;
        }
        if !terminal {
            return Progress::Lines;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} items {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.set_prefix("overall");
        Progress::Bars(Bars {
            multi,
            overall,
            per_resource: Mutex::new(HashMap::new()),
        })
    }

    pub fn finish(&self) {
        if let Progress::Bars(bars) = self {
            bars.overall.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }
}

/// The source's name from a job key (`<source id> #<index>`).
fn name(resource: &str) -> &str {
    let id = resource.rsplit_once(" #").map_or(resource, |(id, _)| id);
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

impl ProgressSink for Progress {
    fn resource_started(&self, resource: &str, plugin: &str) {
        match self {
            Progress::Hidden => {}
            Progress::Lines => eprintln!("atg: {} [{plugin}]: discovering", name(resource)),
            Progress::Bars(bars) => {
                let bar = bars.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>10} {spinner} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name(resource).to_owned());
                bar.set_message("discovering");
                bar.enable_steady_tick(std::time::Duration::from_millis(120));
                if let Ok(mut map) = bars.per_resource.lock() {
                    map.insert(resource.to_owned(), bar);
                }
            }
        }
    }

    fn resource_discovered(&self, resource: &str, items: u64) {
        match self {
            Progress::Hidden => {}
            Progress::Lines => eprintln!("atg: {}: {items} item(s)", name(resource)),
            Progress::Bars(bars) => {
                bars.overall.inc_length(items);
                if let Some(bar) = bars
                    .per_resource
                    .lock()
                    .ok()
                    .and_then(|m| m.get(resource).cloned())
                {
                    bar.set_length(items);
                    bar.set_style(
                        ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.set_message("");
                }
            }
        }
    }

    fn item_finished(&self, resource: &str, outcome: &ItemOutcome) {
        if let Progress::Bars(bars) = self {
            bars.overall.inc(1);
            if let Some(bar) = bars
                .per_resource
                .lock()
                .ok()
                .and_then(|m| m.get(resource).cloned())
            {
                bar.inc(1);
                if matches!(outcome.status, ItemStatus::Failed { .. }) {
                    bar.set_message("with failures");
                }
            }
        }
    }

    fn items_counted(&self, resource: &str, count: u64) {
        if let Progress::Bars(bars) = self {
            bars.overall.inc(count);
            if let Some(bar) = bars
                .per_resource
                .lock()
                .ok()
                .and_then(|m| m.get(resource).cloned())
            {
                bar.inc(count);
            }
        }
    }

    fn resource_finished(&self, resource: &str, status: ResourceStatus) {
        let status = match status {
            ResourceStatus::Succeeded => "done",
            ResourceStatus::Failed => "failed",
            ResourceStatus::Unsupported => "unsupported",
            ResourceStatus::Cancelled => "cancelled",
        };
        match self {
            Progress::Hidden => {}
            Progress::Lines => eprintln!("atg: {}: {status}", name(resource)),
            Progress::Bars(bars) => {
                if let Some(bar) = bars
                    .per_resource
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(resource))
                {
                    bar.finish_with_message(status.to_owned());
                }
            }
        }
    }
}
