//! Progress: indicatif bars on a terminal (one overall, one per resource in flight), a plain
//! line per resource otherwise, nothing with --quiet. Item names and counts only.

#![allow(clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::azure::policies::RetryStats;
use crate::dataplane::{ItemOutcome, ItemStatus, JobId};
use crate::orchestrator::report::ResourceStatus;
use crate::orchestrator::ProgressSink;

pub enum Progress {
    Hidden,
    /// One line per event, naming the resource (names by job, from when each started).
    Lines(Mutex<HashMap<JobId, String>>),
    Bars(Bars),
}

pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    per_resource: Mutex<HashMap<JobId, ProgressBar>>,
}

impl Progress {
    pub fn new(enabled: bool, terminal: bool) -> Self {
        if !enabled {
            return Progress::Hidden;
        }
        if !terminal {
            return Progress::Lines(Mutex::new(HashMap::new()));
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

/// The last segment of a resource id: the resource's name.
fn name(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

impl ProgressSink for Progress {
    fn resource_started(&self, job: JobId, resource: &str, plugin: &str) {
        match self {
            Progress::Hidden => {}
            Progress::Lines(names) => {
                eprintln!("atg: {} [{plugin}]: discovering", name(resource));
                if let Ok(mut names) = names.lock() {
                    names.insert(job, name(resource).to_owned());
                }
            }
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
                    map.insert(job, bar);
                }
            }
        }
    }

    fn resource_discovered(&self, job: JobId, items: u64) {
        match self {
            Progress::Hidden => {}
            Progress::Lines(names) => {
                if let Some(name) = names.lock().ok().and_then(|m| m.get(&job).cloned()) {
                    eprintln!("atg: {name}: {items} item(s)");
                }
            }
            Progress::Bars(bars) => {
                bars.overall.inc_length(items);
                if let Some(bar) = bars
                    .per_resource
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&job).cloned())
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

    fn item_finished(&self, job: JobId, outcome: &ItemOutcome) {
        if let Progress::Bars(bars) = self {
            bars.overall.inc(1);
            if let Some(bar) = bars
                .per_resource
                .lock()
                .ok()
                .and_then(|m| m.get(&job).cloned())
            {
                bar.inc(1);
                if matches!(outcome.status, ItemStatus::Failed { .. }) {
                    bar.set_message("with failures");
                }
            }
        }
    }

    fn items_counted(&self, job: JobId, count: u64) {
        if let Progress::Bars(bars) = self {
            bars.overall.inc(count);
            if let Some(bar) = bars
                .per_resource
                .lock()
                .ok()
                .and_then(|m| m.get(&job).cloned())
            {
                bar.inc(count);
            }
        }
    }

    fn resource_finished(&self, job: JobId, resource: &str, status: ResourceStatus) {
        let status = match status {
            ResourceStatus::Succeeded => "done",
            ResourceStatus::Failed => "failed",
            ResourceStatus::Unsupported => "unsupported",
            ResourceStatus::Cancelled => "cancelled",
        };
        match self {
            Progress::Hidden => {}
            Progress::Lines(names) => {
                eprintln!("atg: {}: {status}", name(resource));
                if let Ok(mut names) = names.lock() {
                    names.remove(&job);
                }
            }
            Progress::Bars(bars) => {
                if let Some(bar) = bars
                    .per_resource
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(&job))
                {
                    bar.finish_with_message(status.to_owned());
                }
            }
        }
    }
}

/// Counts what the run has done and forwards every event to the progress display; a task
/// prints the counts as one line every interval (`--stats-interval`) on a non-terminal, where
/// a log collector has no progress bar to look at.
pub struct Statistics {
    display: Arc<Progress>,
    started: Instant,
    items_done: AtomicU64,
    resources_done: AtomicU64,
    resources_total: u64,
    retries: Arc<RetryStats>,
}

impl Statistics {
    pub fn new(display: Arc<Progress>, resources_total: usize, retries: Arc<RetryStats>) -> Self {
        Statistics {
            display,
            started: Instant::now(),
            items_done: AtomicU64::new(0),
            resources_done: AtomicU64::new(0),
            resources_total: u64::try_from(resources_total).unwrap_or(u64::MAX),
            retries,
        }
    }

    /// `atg: stats: 120 items done (4.0/s), 2 retries, 1/3 resources`
    pub fn line(&self) -> String {
        let done = self.items_done.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)] // a rate to one decimal
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        let retries = self.retries.snapshot();
        format!(
            "atg: stats: {done} items done ({rate:.1}/s), {} retries, {}/{} resources",
            retries.throttled + retries.server_busy + retries.transport,
            self.resources_done.load(Ordering::Relaxed),
            self.resources_total
        )
    }

    /// Prints [`Statistics::line`] every `interval` until the task is aborted.
    pub fn spawn_printer(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let statistics = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                ticks.tick().await;
                eprintln!("{}", statistics.line());
            }
        })
    }
}

impl ProgressSink for Statistics {
    fn resource_started(&self, job: JobId, resource: &str, plugin: &str) {
        self.display.resource_started(job, resource, plugin);
    }

    fn resource_discovered(&self, job: JobId, items: u64) {
        self.display.resource_discovered(job, items);
    }

    fn item_finished(&self, job: JobId, outcome: &ItemOutcome) {
        self.items_done.fetch_add(1, Ordering::Relaxed);
        self.display.item_finished(job, outcome);
    }

    fn items_counted(&self, job: JobId, count: u64) {
        self.items_done.fetch_add(count, Ordering::Relaxed);
        self.display.items_counted(job, count);
    }

    fn resource_finished(&self, job: JobId, resource: &str, status: ResourceStatus) {
        self.resources_done.fetch_add(1, Ordering::Relaxed);
        self.display.resource_finished(job, resource, status);
    }
}
