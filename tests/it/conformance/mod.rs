//! The conformance suite: what every data-plane plugin must do, checked the same way for each.
//!
//! A plugin's whole conformance is one call from one test, `conformance::run(&MyFixture).await`.
//! The suite drives the real `atg` binary against the plugin's stand-ins and reads results back
//! through the fixture's independent client. In one seeded world per plugin (the source is seeded
//! once; each check writes into a target of its own, see [`Target`]), in this order:
//!
//! 1. declared limits: `atg plugins --output json` lists what the plugin cannot do
//!    ([`Capability`] per item kind, with the reason) and the human listing shows each one;
//!    the later checks read the declarations from there, so a lack is asserted, never skipped;
//! 2. dry-run, template and replication, into an empty target: zero writes (the stand-in's
//!    request log), every item planned, the target still empty;
//! 3. template: every item of the kinds template writes is there with the source's shape and
//!    never the source's value (placeholders, new material); kinds declared `template` lacking
//!    are absent; no request read a value from the source; a re-run writes nothing;
//! 4. replication: the target read back equals the source exactly (shape, value, written once;
//!    kinds declared `copy-value` lacking have the shape and a different value); a re-run writes
//!    nothing;
//! 5. faults: 10% of the requests answered 429, 503 or reset: exit 0, retries counted, the
//!    target exact and every item written once;
//! 6. lost answers: writes carried out and their answers lost: exit 0, exact, written once, and
//!    a re-run writes nothing;
//! 7. a forbidden resource: one target answers 403: that pair fails with the error and a `hint:`
//!    naming the roles, the other pair of the same run succeeds and is exact;
//! 8. target conflicts (last: it rewrites a source item): one target item made different, then
//!    `--on-conflict` skip (skipped, exit 0, kept), fail (failed, exit 1, kept),
//!    if-source-newer with the target newer (skipped, kept), if-source-newer with the source
//!    newer (overwritten, or skipped with the reason when the kind lacks `if-source-newer`),
//!    overwrite (exact again);
//! 9. secrets: no string of [`World::secrets`] in the stdout, stderr, report file or log file of
//!    any run above (every run is at `-vv` with `--report` and `--log-file`).
//!
//! Every check panics with its name, so a failure says which behaviour broke. One test per
//! plugin rather than one per check: the checks share the world (starting and seeding the
//! stand-ins is most of the time), and they run in the order above on purpose.
//!
//! # Adding a plugin to the suite
//! 1. Make sure `PluginInfo::limits` declares what the plugin cannot do (a capability it lacks
//!    for some kinds, and why): the suite then asserts the lack instead of failing on it.
//! 2. Write `tests/it/conformance/<service>.rs` with a unit struct implementing [`Fixture`]
//!    (`PLUGIN` is the plugin's name; `start` starts the stand-ins) and a world implementing
//!    [`World`]: seed the source with every case the plugin copies exactly (service-specific edge
//!    cases, such as items copied partially, belong in `tests/it/<service>.rs`), read either side
//!    back as [`Items`] keyed `"{kind} {name}"` as the report names them, with a client that is
//!    not atg's (the Python SDKs, or the test kit's plain REST client), count write requests and
//!    source value reads from the stand-in's request log, turn faults and lost answers on, forbid
//!    a target, and make one target item differ.
//! 3. Add `mod <service>;` below and, in that file,
//!    `#[tokio::test] async fn conformance() { super::run(&MyFixture).await }`.

/// The [`World`] methods of a world whose stand-in is the emulator's ARM (a `stack` field):
/// deploying, its scratch directory, its request log, faults and lost answers.
macro_rules! emulated_arm_world {
    () => {
        async fn deploy(&self, inventory: &std::path::Path, args: &[&str]) -> $crate::common::Run {
            self.stack.deploy(inventory, args).await
        }

        fn path(&self, name: &str) -> std::path::PathBuf {
            self.stack.path(name)
        }

        fn clear_requests(&self) {
            self.stack.emulator.clear_requests();
        }

        fn set_faults(&self, on: bool) {
            self.stack.emulator.set_options(|options| {
                options.faults = $crate::conformance::emulator_faults(on);
            });
        }

        fn set_lost_answers(&self, on: bool) {
            self.stack.emulator.set_options(|options| {
                options.arm_lost_answers = $crate::conformance::emulator_lost_answers(on);
            });
        }

        fn injected(&self) -> (usize, usize) {
            $crate::conformance::emulator_injected(&self.stack.requests())
        }
    };
}

mod api_management;
mod app_service;
pub mod event_hubs;
mod key_vault;
pub mod messaging;
pub mod service_bus;
mod storage;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use futures::FutureExt;
use serde_json::Value;

use crate::common::{atg, Run};

/// The emulator's faults as the suite injects them: 10% of the requests answered 429, 503 or
/// reset (`None` when `on` is false).
pub fn emulator_faults(on: bool) -> Option<atg_testkit::FaultOptions> {
    on.then(|| atg_testkit::FaultOptions {
        rate: 0.1,
        kinds: atg_testkit::FaultKind::ALL.to_vec(),
        seed: 7,
    })
}

/// The emulator's lost answers as the suite injects them: half the writes carried out and their
/// answers lost (`None` when `on` is false).
pub fn emulator_lost_answers(on: bool) -> Option<atg_testkit::LostAnswerOptions> {
    on.then(|| atg_testkit::LostAnswerOptions {
        rate: 0.5,
        kinds: atg_testkit::LostAnswerKind::ALL.to_vec(),
        operations: Vec::new(),
        seed: 11,
        timeout_ms: 300,
    })
}

/// Faults injected and answers lost among the emulator's `requests`.
pub fn emulator_injected(requests: &[atg_testkit::RecordedRequest]) -> (usize, usize) {
    (
        requests.iter().filter(|r| r.fault.is_some()).count(),
        requests.iter().filter(|r| r.lost_answer.is_some()).count(),
    )
}

/// Items of one side, keyed `"{kind} {name}"` (the report's kind and name).
pub type Items = BTreeMap<String, Item>;

/// One item as the independent client reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// What the target must share with the source in either mode: metadata, settings, types.
    pub shape: Value,
    /// A fingerprint of the item's value (a secret's value, a blob's SHA-256, a key's public
    /// material, a queue's messages); `None` when the item has none.
    pub value: Option<Value>,
    /// How many times it was written (versions), so a write landing twice shows.
    pub writes: u64,
}

/// The targets of a world: each check writes into its own, so checks do not see each other's
/// writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Dry-runs, then template.
    Template,
    /// Replication, then the conflicts.
    Replica,
    Faults,
    LostAnswers,
    /// Answers 403 once forbidden.
    Forbidden,
    /// Paired in the same run as `Forbidden`.
    Beside,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Template,
        Target::Replica,
        Target::Faults,
        Target::LostAnswers,
        Target::Forbidden,
        Target::Beside,
    ];

    /// The name the fixtures give the target's resource.
    pub fn name(self) -> &'static str {
        match self {
            Target::Template => "dst-template",
            Target::Replica => "dst-replica",
            Target::Faults => "dst-faults",
            Target::LostAnswers => "dst-lost",
            Target::Forbidden => "dst-forbidden",
            Target::Beside => "dst-beside",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Trouble {
    Faults,
    LostAnswers,
}

/// A plugin's stand-ins, started.
#[allow(async_fn_in_trait)] // test code: the futures are awaited on the test's own runtime
pub trait Fixture {
    type World: World;
    /// The plugin's name in `atg plugins`.
    const PLUGIN: &'static str;
    async fn start(&self) -> Self::World;
}

/// What the suite needs from a plugin's stand-ins and independent client.
#[allow(async_fn_in_trait)]
pub trait World {
    /// Writes the source's items, once.
    async fn seed_source(&self);
    /// The resource name of `target` (the end of its ARM id).
    fn target_name(&self, target: Target) -> String;
    /// An inventory pairing the source with each of `targets` (with the pair options it needs to
    /// copy every seeded item).
    fn inventory(&self, targets: &[Target]) -> PathBuf;
    /// Runs `atg deploy` over `inventory` against the stand-ins, then `args`.
    async fn deploy(&self, inventory: &Path, args: &[&str]) -> Run;
    /// A path in the world's scratch directory.
    fn path(&self, name: &str) -> PathBuf;
    async fn read_source(&self) -> Items;
    async fn read_target(&self, target: Target) -> Items;
    /// The requests (method and path) that changed `target` since [`World::clear_requests`].
    fn writes(&self, target: Target) -> Vec<String>;
    /// The requests that read a value (secret value, blob data, entities, messages) from the
    /// source since [`World::clear_requests`].
    fn source_value_reads(&self) -> Vec<String>;
    fn clear_requests(&self);
    /// 10% of the requests answered 429, 503 or reset (`false`: none).
    fn set_faults(&self, on: bool);
    /// Writes carried out and their answers lost (`false`: none).
    fn set_lost_answers(&self, on: bool);
    /// Faults injected and answers lost since [`World::clear_requests`].
    fn injected(&self) -> (usize, usize);
    /// Every request to `target` answered 403 from now on.
    fn forbid(&self, target: Target);
    /// Makes one item of `target` differ from the source's (the target's is then the newer);
    /// answers its key. Its kind must be one the plugin replicates.
    async fn damage(&self, target: Target) -> String;
    /// Writes the source's item `key` again as it is, so the source's is the newer.
    async fn touch_source(&self, key: &str);
    /// Strings that must never appear in any output: seeded secret values, keys, credentials.
    fn secrets(&self) -> Vec<String>;
}

/// What `atg plugins --output json` declares of the plugin.
struct Declared {
    modes: Vec<String>,
    /// (capability, kinds (empty: every kind), reason)
    limits: Vec<(String, Vec<String>, String)>,
}

impl Declared {
    /// The reason the plugin gives for lacking `capability` on `kind`, if it does.
    fn lacks(&self, capability: &str, kind: &str) -> Option<&str> {
        self.limits
            .iter()
            .find(|(c, kinds, _)| {
                c == capability && (kinds.is_empty() || kinds.iter().any(|k| k == kind))
            })
            .map(|(_, _, reason)| reason.as_str())
    }
}

/// Runs every check against the fixture's plugin. See the module doc.
pub async fn run<F: Fixture>(fixture: &F) {
    let world = fixture.start().await;
    world.seed_source().await;
    let declared = check(F::PLUGIN, "declared limits", declared(F::PLUGIN)).await;
    let mut suite = Suite {
        plugin: F::PLUGIN,
        world: &world,
        declared,
        outputs: Vec::new(),
        runs: 0,
    };
    check(F::PLUGIN, "dry-run writes nothing", suite.dry_run()).await;
    check(F::PLUGIN, "template", suite.template()).await;
    check(F::PLUGIN, "replication", suite.replication()).await;
    check(F::PLUGIN, "faults", suite.faults()).await;
    check(F::PLUGIN, "lost answers", suite.lost_answers()).await;
    check(F::PLUGIN, "forbidden resource", suite.forbidden()).await;
    check(F::PLUGIN, "target conflicts", suite.conflicts()).await;
    check(F::PLUGIN, "secrets absent from all output", async {
        suite.secrets_absent();
    })
    .await;
}

/// Runs one check, naming it and the plugin when it fails.
async fn check<T>(plugin: &str, name: &str, work: impl std::future::Future<Output = T>) -> T {
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(value) => value,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("conformance of `{plugin}`, check `{name}` failed:\n{message}");
        }
    }
}

async fn declared(plugin: &str) -> Declared {
    let json = atg(&["plugins".into(), "--output".into(), "json".into()], &[]).await;
    assert_eq!(json.code, 0, "{json}");
    let plugins: Value = serde_json::from_str(&json.stdout).unwrap();
    let info = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == plugin)
        .unwrap_or_else(|| panic!("`atg plugins` does not list {plugin}"));
    let strings = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {value}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let limits: Vec<(String, Vec<String>, String)> = info["limits"]
        .as_array()
        .unwrap_or_else(|| panic!("no `limits` in {info}"))
        .iter()
        .map(|limit| {
            (
                limit["capability"].as_str().unwrap().to_owned(),
                strings(&limit["kinds"]),
                limit["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let human = atg(&["plugins".into()], &[]).await;
    for (capability, _, reason) in &limits {
        assert!(!reason.is_empty(), "{capability}: no reason");
        assert!(
            human
                .stdout
                .lines()
                .any(|line| line.contains(&format!("cannot: {capability} ("))
                    && line.ends_with(reason.as_str())),
            "`atg plugins` does not show the {capability} limit:\n{}",
            human.stdout
        );
    }
    Declared {
        modes: strings(&info["modes"]),
        limits,
    }
}

struct Suite<'a, W: World> {
    plugin: &'static str,
    world: &'a W,
    declared: Declared,
    /// (where, text) of every run's stdout, stderr, report and log file.
    outputs: Vec<(String, String)>,
    runs: usize,
}

/// A run's exit code, report and the end of its stderr: enough to see why it failed without
/// pages of `-vv` trace.
fn brief(run: &Run) -> String {
    let lines: Vec<&str> = run.stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr (last 30 lines)\n{tail}",
        run.code, run.stdout
    )
}

/// The report's entry of the pair whose target is `name`.
fn resource<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["target_id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&format!("/{name}")))
        })
        .unwrap_or_else(|| panic!("no resource with target `{name}` in {report:#}"))
}

/// The listed item `kind name` of a resource, if it is listed (some plugins only count
/// unremarkable outcomes).
fn listed<'r>(resource: &'r Value, kind: &str, name: &str) -> Option<&'r Value> {
    resource["items"]
        .as_array()?
        .iter()
        .find(|i| i["kind"] == kind && i["name"] == name)
}

fn count(resource: &Value, kind: &str, outcome: &str) -> u64 {
    resource["counts_by_kind"][kind][outcome]
        .as_u64()
        .unwrap_or_default()
}

/// `"{kind} {name}"` → (kind, name).
fn split(key: &str) -> (&str, &str) {
    key.split_once(' ').unwrap_or((key, ""))
}

impl<W: World> Suite<'_, W> {
    /// `atg deploy` over the pairs of `targets` with `args`, at `-vv` with a report and a log
    /// file, all kept for the secrets check.
    async fn deploy(&mut self, targets: &[Target], args: &[&str]) -> (Run, Value) {
        self.runs += 1;
        let report_path = self.world.path(&format!("report-{}.json", self.runs));
        let log_path = self.world.path(&format!("atg-{}.log", self.runs));
        let mut all = vec!["-vv", "--output", "json"];
        all.extend_from_slice(args);
        let (report_arg, log_arg) = (
            report_path.display().to_string(),
            log_path.display().to_string(),
        );
        all.extend(["--report", &report_arg, "--log-file", &log_arg]);
        let inventory = self.world.inventory(targets);
        let run = self.world.deploy(&inventory, &all).await;
        let label = format!("run {} ({})", self.runs, args.join(" "));
        for (place, text) in [
            ("stdout", run.stdout.clone()),
            ("stderr", run.stderr.clone()),
            (
                "report",
                std::fs::read_to_string(&report_path).unwrap_or_default(),
            ),
            (
                "log file",
                std::fs::read_to_string(&log_path).unwrap_or_default(),
            ),
        ] {
            self.outputs.push((format!("{label}: {place}"), text));
        }
        let report: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("stdout is not a report ({e}):\n{}", brief(&run)));
        (run, report)
    }

    fn assert_no_writes(&self, target: Target, what: &str) {
        let writes = self.world.writes(target);
        assert!(
            writes.is_empty(),
            "{what} wrote {} request(s): {writes:#?}",
            writes.len()
        );
    }

    /// The target read back equals the source: every item, its shape, its value (a different
    /// one where the plugin declares it cannot copy values of that kind) and written once.
    fn assert_replica(&self, source: &Items, target: &Items, what: &str) {
        let mut problems = String::new();
        for (key, s) in source {
            let Some(t) = target.get(key) else {
                let _ = writeln!(problems, "{key}: missing");
                continue;
            };
            if s.shape != t.shape {
                let _ = writeln!(
                    problems,
                    "{key}: shape {} in the source, {} in the target",
                    s.shape, t.shape
                );
            }
            match self.declared.lacks("copy-value", split(key).0) {
                Some(reason) => {
                    if s.value.is_some() && s.value == t.value {
                        let _ = writeln!(problems, "{key}: the value was copied, yet the plugin declares it cannot ({reason})");
                    }
                }
                None => {
                    if s.value != t.value {
                        // Values may be secrets: say that they differ, not what they are.
                        let _ = writeln!(problems, "{key}: the value differs");
                    }
                }
            }
            if t.writes != 1 {
                let _ = writeln!(problems, "{key}: written {} times", t.writes);
            }
        }
        for key in target.keys().filter(|k| !source.contains_key(*k)) {
            let _ = writeln!(problems, "{key}: in the target, not in the source");
        }
        assert!(
            problems.is_empty(),
            "{what}: the target is not the source's copy:\n{problems}"
        );
    }

    fn assert_succeeded(&self, run: &Run, report: &Value, what: &str) {
        assert_eq!(run.code, 0, "{what}: {}", brief(run));
        assert_eq!(report["totals"]["items"]["failed"], 0, "{what}: {report:#}");
    }

    async fn dry_run(&mut self) {
        self.world.clear_requests();
        for mode in &self.declared.modes.clone() {
            let (run, report) = self
                .deploy(
                    &[Target::Template],
                    &["--dataplane-mode", mode, "--dry-run"],
                )
                .await;
            self.assert_succeeded(&run, &report, mode);
            assert_eq!(report["dry_run"], true);
            assert_eq!(report["refused_writes"], 0, "{report:#}");
            let resource = resource(&report, &self.world.target_name(Target::Template));
            assert!(
                resource["counts"]["planned"].as_u64().unwrap_or_default() > 0,
                "{mode}: nothing planned: {resource:#}"
            );
            for item in resource["items"].as_array().unwrap() {
                assert_eq!(item["outcome"], "planned", "{mode}: {item}");
            }
            self.assert_no_writes(Target::Template, &format!("a {mode} dry-run"));
        }
        let target = self.world.read_target(Target::Template).await;
        assert!(
            target.is_empty(),
            "the target is not empty after the dry-runs: {:?}",
            target.keys()
        );
    }

    async fn template(&mut self) {
        let target_name = self.world.target_name(Target::Template);
        if !self.declared.modes.iter().any(|m| m == "template") {
            let (run, report) = self
                .deploy(&[Target::Template], &["--dataplane-mode", "template"])
                .await;
            assert_eq!(run.code, 0, "{}", brief(&run));
            assert_eq!(
                resource(&report, &target_name)["status"],
                "unsupported",
                "{report:#}"
            );
            return;
        }
        self.world.clear_requests();
        let (run, report) = self
            .deploy(&[Target::Template], &["--dataplane-mode", "template"])
            .await;
        self.assert_succeeded(&run, &report, "template");
        let reads = self.world.source_value_reads();
        assert!(
            reads.is_empty(),
            "template read values from the source: {reads:#?}"
        );
        let source = self.world.read_source().await;
        let target = self.world.read_target(Target::Template).await;
        let mut problems = String::new();
        for (key, s) in &source {
            let kind = split(key).0;
            let written = target.get(key);
            match (self.declared.lacks("template", kind), written) {
                (Some(_), None) => {}
                (Some(reason), Some(_)) => {
                    let _ = writeln!(
                        problems,
                        "{key}: written, yet the plugin declares template does not ({reason})"
                    );
                }
                (None, None) => {
                    let _ = writeln!(problems, "{key}: missing");
                }
                (None, Some(t)) => {
                    if s.shape != t.shape {
                        let _ = writeln!(
                            problems,
                            "{key}: shape {} in the source, {} in the target",
                            s.shape, t.shape
                        );
                    }
                    if s.value.is_some() && s.value == t.value {
                        let _ = writeln!(problems, "{key}: template wrote the source's value");
                    }
                }
            }
        }
        for key in target.keys().filter(|k| !source.contains_key(*k)) {
            let _ = writeln!(problems, "{key}: in the target, not in the source");
        }
        assert!(problems.is_empty(), "template:\n{problems}");

        self.rerun_writes_nothing(Target::Template, "template")
            .await;
    }

    async fn replication(&mut self) {
        self.world.clear_requests();
        let (run, report) = self
            .deploy(&[Target::Replica], &["--dataplane-mode", "replication"])
            .await;
        self.assert_succeeded(&run, &report, "replication");
        self.assert_replicates_source(Target::Replica, "replication")
            .await;
        let report = self
            .rerun_writes_nothing(Target::Replica, "replication")
            .await;
        let counts = &resource(&report, &self.world.target_name(Target::Replica))["counts"];
        assert_eq!(counts["replicated"], 0, "a re-run reports writes: {counts}");
    }

    /// Reads the source and `target` back and asserts the target is the source's copy.
    async fn assert_replicates_source(&self, target: Target, what: &str) {
        let source = self.world.read_source().await;
        let copy = self.world.read_target(target).await;
        self.assert_replica(&source, &copy, what);
    }

    /// Runs `mode` into `target` again: it must succeed and write nothing. Answers the report.
    async fn rerun_writes_nothing(&mut self, target: Target, mode: &str) -> Value {
        self.world.clear_requests();
        let (again, report) = self.deploy(&[target], &["--dataplane-mode", mode]).await;
        let what = format!("a {mode} re-run");
        self.assert_succeeded(&again, &report, &what);
        self.assert_no_writes(target, &what);
        report
    }

    async fn faults(&mut self) {
        let report = self.replicate_through(Trouble::Faults).await;
        let retries = &report["retries"];
        let retried_requests: u64 = ["throttled", "server_busy", "transport"]
            .iter()
            .map(|k| retries[k].as_u64().unwrap_or_default())
            .sum();
        assert!(
            retried_requests > 0,
            "faults and no retry counted: {retries}"
        );
    }

    async fn lost_answers(&mut self) {
        self.replicate_through(Trouble::LostAnswers).await;
        self.rerun_writes_nothing(Target::LostAnswers, "replication")
            .await;
    }

    /// Replicates into the trouble's own target while the stand-ins make that trouble: the run
    /// must succeed and the target be the source's copy. Answers the report.
    async fn replicate_through(&mut self, trouble: Trouble) -> Value {
        let (target, what) = match trouble {
            Trouble::Faults => (Target::Faults, "replication with faults"),
            Trouble::LostAnswers => (Target::LostAnswers, "replication losing answers"),
        };
        let turn = |world: &W, on: bool| match trouble {
            Trouble::Faults => world.set_faults(on),
            Trouble::LostAnswers => world.set_lost_answers(on),
        };
        self.world.clear_requests();
        turn(self.world, true);
        let (run, report) = self
            .deploy(&[target], &["--dataplane-mode", "replication"])
            .await;
        turn(self.world, false);
        let (faults, lost) = self.world.injected();
        let injected = match trouble {
            Trouble::Faults => faults,
            Trouble::LostAnswers => lost,
        };
        assert!(injected > 0, "{what}: nothing was injected");
        self.assert_succeeded(&run, &report, what);
        self.assert_replicates_source(target, what).await;
        report
    }

    async fn forbidden(&mut self) {
        self.world.forbid(Target::Forbidden);
        let (run, report) = self
            .deploy(
                &[Target::Forbidden, Target::Beside],
                &["--dataplane-mode", "replication"],
            )
            .await;
        assert_eq!(run.code, 1, "{}", brief(&run));
        let refused = resource(&report, &self.world.target_name(Target::Forbidden));
        assert_eq!(refused["status"], "failed", "{refused:#}");
        let error = refused["error"].as_str().unwrap_or_default();
        assert!(error.contains("403"), "the error does not say 403: {error}");
        assert!(
            error.contains("\nhint: ") && error.contains("identity"),
            "the error gives no remedy: {error}"
        );
        let beside = resource(&report, &self.world.target_name(Target::Beside));
        assert_eq!(
            beside["status"], "succeeded",
            "the other pair did not go on: {beside:#}"
        );
        self.assert_replicates_source(Target::Beside, "the pair beside the forbidden one")
            .await;
    }

    /// Whether the target's item `key` is the source's (shape and value as replication makes
    /// them; the number of writes aside).
    async fn holds_source_item(&self, key: &str) -> bool {
        let source = self.world.read_source().await;
        let target = self.world.read_target(Target::Replica).await;
        let (Some(s), Some(t)) = (source.get(key), target.get(key)) else {
            return false;
        };
        let values_match = match self.declared.lacks("copy-value", split(key).0) {
            Some(_) => true,
            None => s.value == t.value,
        };
        s.shape == t.shape && values_match
    }

    /// A replication into the replica target with `--on-conflict policy`: the run and the
    /// report's entry of that target.
    async fn replicate_on_conflict(&mut self, policy: &str) -> (Run, Value) {
        let (run, report) = self
            .deploy(
                &[Target::Replica],
                &["--dataplane-mode", "replication", "--on-conflict", policy],
            )
            .await;
        let entry = resource(&report, &self.world.target_name(Target::Replica)).clone();
        (run, entry)
    }

    async fn conflicts(&mut self) {
        let key = self.world.damage(Target::Replica).await;
        let (kind, name) = split(&key);
        let (kind, name) = (kind.to_owned(), name.to_owned());
        assert!(
            !self.holds_source_item(&key).await,
            "{key}: the damage did not make it differ"
        );
        let listed_item = |entry: &Value, policy: &str| -> Value {
            listed(entry, &kind, &name)
                .unwrap_or_else(|| panic!("{policy}: {key} is not listed: {entry:#}"))
                .clone()
        };
        // Listed as overwritten, or counted so where unremarkable outcomes are not listed.
        let overwritten = |entry: &Value| {
            listed(entry, &kind, &name).map_or(count(entry, &kind, "overwritten") == 1, |i| {
                i["outcome"] == "overwritten"
            })
        };

        // The target's item is the newer: every policy but overwrite keeps it.
        for (policy, outcome, code) in [
            ("skip", "skipped", 0),
            ("fail", "failed", 1),
            ("if-source-newer", "skipped", 0),
        ] {
            let (run, entry) = self.replicate_on_conflict(policy).await;
            assert_eq!(run.code, code, "{policy}: {}", brief(&run));
            let item = listed_item(&entry, policy);
            assert_eq!(item["outcome"], outcome, "{policy}: {item}");
            let why = item["reason"]
                .as_str()
                .or(item["error"].as_str())
                .unwrap_or_default();
            assert!(
                why.contains(&format!("--on-conflict {policy}")),
                "{policy}: the reason does not name the policy: {item}"
            );
            assert!(
                !self.holds_source_item(&key).await,
                "{policy}: {key} was written over"
            );
        }

        // The source's item is the newer: if-source-newer writes it, unless the plugin declares
        // it cannot compare times for that kind (then it is skipped, and says so).
        self.world.touch_source(&key).await;
        let (run, entry) = self.replicate_on_conflict("if-source-newer").await;
        assert_eq!(run.code, 0, "{}", brief(&run));
        match self.declared.lacks("if-source-newer", &kind) {
            None => {
                assert!(
                    overwritten(&entry),
                    "if-source-newer with the source newer: {key} not overwritten: {entry:#}"
                );
                assert!(
                    self.holds_source_item(&key).await,
                    "if-source-newer: {key} is not the source's"
                );
            }
            Some(reason) => {
                let item = listed_item(&entry, "if-source-newer");
                assert_eq!(
                    item["outcome"], "skipped",
                    "declared lacking if-source-newer ({reason}): {item}"
                );
                assert!(
                    item["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("if-source-newer"),
                    "{item}"
                );
                assert!(
                    !self.holds_source_item(&key).await,
                    "{key} was written over"
                );
            }
        }

        let still_differs = !self.holds_source_item(&key).await;
        let (run, entry) = self.replicate_on_conflict("overwrite").await;
        assert_eq!(run.code, 0, "overwrite: {}", brief(&run));
        assert!(
            !still_differs || overwritten(&entry),
            "overwrite: {key} not overwritten: {entry:#}"
        );
        assert!(
            self.holds_source_item(&key).await,
            "overwrite: {key} is not the source's"
        );
    }

    fn secrets_absent(&self) {
        let secrets = self.world.secrets();
        assert!(!secrets.is_empty());
        let mut leaks = Vec::new();
        for (place, text) in &self.outputs {
            for secret in &secrets {
                if text.contains(secret.as_str()) {
                    // Name the secret by its length only: the report must not leak it either.
                    leaks.push(format!("{place}: a secret of {} characters", secret.len()));
                }
            }
        }
        assert!(
            leaks.is_empty(),
            "secrets in the output of {}: {leaks:#?}",
            self.plugin
        );
        assert!(
            self.outputs
                .iter()
                .any(|(place, text)| place.ends_with("log file") && text.contains("DEBUG")),
            "no run wrote debug lines to its log file: the secrets check saw no -vv output"
        );
    }
}
