//! Plan files: `atg deploy --dry-run --plan-out FILE` writes the plan, `atg deploy --plan FILE`
//! applies exactly that plan, and the applied items are recorded next to it so an interrupted
//! apply resumes where it stopped. docs/plan.md documents the format.
//!
//! A plan holds names, decisions and fingerprints (what each decision was made from: versions,
//! entity tags, modification times), never a value. Applying re-reads both sides and carries out an
//! item only when it is still decided the same way from the same state; an item the plan did
//! not decide is not written, and one whose source or target changed is refused as stale.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::collector::Collector;
use crate::dataplane::{
    Discovery, ItemOutcome, ItemStatus, Job, Mode, OnConflict, OnDeleted, PlannedAction,
    PlannedItem, PluginContext, PluginInfo,
};

/// The version of the plan format; a plan of another version is refused.
pub const PLAN_VERSION: u32 = 1;

/// A plan as written by `--plan-out` and read by `--plan`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub plan_version: u32,
    pub atg_version: String,
    pub created_at: String,
    pub mode: Mode,
    pub on_conflict: OnConflict,
    pub on_deleted: OnDeleted,
    pub cloud: String,
    pub resources: Vec<PlannedResource>,
}

/// One pair's decided items.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedResource {
    pub source_id: String,
    pub target_id: String,
    pub resource_type: String,
    pub items: Vec<PlanEntry>,
}

/// One decided item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub kind: String,
    pub name: String,
    #[serde(flatten)]
    pub action: PlannedAction,
    pub fingerprint: Option<String>,
}

impl PlanEntry {
    pub fn of(item: &PlannedItem) -> Self {
        PlanEntry {
            kind: item.kind.to_owned(),
            name: item.name.clone(),
            action: item.action.clone(),
            fingerprint: item.fingerprint.clone(),
        }
    }
}

impl PlanFile {
    /// Reads and checks a plan file (size-capped, version, shape).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = crate::inventory::read_input_file(path)?;
        let version: Option<u32> = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|value| value.get("plan_version")?.as_u64())
            .and_then(|version| u32::try_from(version).ok());
        match version {
            Some(PLAN_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "plan version {other}: this atg reads plan version {PLAN_VERSION}"
                ))
            }
            None => return Err("not an atg plan (no plan_version)".into()),
        }
        serde_json::from_str(&text).map_err(|error| {
            format!(
                "not a valid atg plan: {}",
                crate::inventory::escape_controls(&error.to_string())
            )
        })
    }
}

/// What `--plan` approved, by pair, with what earlier runs of it already applied.
#[derive(Debug, Default)]
pub struct Approved {
    resources: HashMap<(String, String), HashMap<(String, String), PlanEntry>>,
    done: HashSet<(String, String, String, String)>,
}

/// What applying a plan does with one freshly planned item.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Decided the same way from the same state: carried out.
    Apply,
    /// An earlier run of the plan applied it: left alone.
    AlreadyApplied,
    /// Not carried out, for the reason given (not in the plan, stale).
    Refuse(ItemStatus),
}

impl Approved {
    pub fn new(plan: &PlanFile, journal: &Journal) -> Self {
        let resources = plan
            .resources
            .iter()
            .map(|resource| {
                (
                    pair_key(&resource.source_id, &resource.target_id),
                    resource
                        .items
                        .iter()
                        .map(|entry| ((entry.kind.clone(), entry.name.clone()), entry.clone()))
                        .collect(),
                )
            })
            .collect();
        Approved {
            resources,
            done: journal.done.clone(),
        }
    }

    /// The items the plan decided for a pair, or `None` when it has none for it.
    pub fn items(
        &self,
        source_id: &str,
        target_id: &str,
    ) -> Option<&HashMap<(String, String), PlanEntry>> {
        self.resources.get(&pair_key(source_id, target_id))
    }

    /// How many of a pair's planned items earlier runs applied, and whether that is all of them.
    pub fn progress(&self, source_id: &str, target_id: &str) -> (usize, bool) {
        let Some(items) = self.items(source_id, target_id) else {
            return (0, false);
        };
        let done = items
            .keys()
            .filter(|(kind, name)| self.is_done(source_id, target_id, kind, name))
            .count();
        (done, done == items.len())
    }

    fn is_done(&self, source_id: &str, target_id: &str, kind: &str, name: &str) -> bool {
        let (source, target) = pair_key(source_id, target_id);
        self.done
            .contains(&(source, target, kind.to_owned(), name.to_owned()))
    }

    /// What to do with an item planned again now.
    pub fn admit(&self, source_id: &str, target_id: &str, item: &PlannedItem) -> Admission {
        if self.is_done(source_id, target_id, item.kind, &item.name) {
            return Admission::AlreadyApplied;
        }
        let approved = self
            .items(source_id, target_id)
            .and_then(|items| items.get(&(item.kind.to_owned(), item.name.clone())));
        // The target already holds what the plan would write (an interrupted run wrote it, or
        // someone else did): nothing is written, so nothing can be stale.
        if item.action == PlannedAction::Identical && approved.is_some() {
            return Admission::Apply;
        }
        let Some(approved) = approved else {
            return Admission::Refuse(ItemStatus::Skipped {
                reason: "not in the plan (it was not there or not decided when the plan was made): not written; make a new plan to include it".into(),
            });
        };
        if approved.action != item.action {
            return Admission::Refuse(stale(&format!(
                "planned `{}`, now `{}`",
                describe(&approved.action),
                describe(&item.action)
            )));
        }
        if approved.fingerprint != item.fingerprint {
            return Admission::Refuse(stale("the source or the target changed since the plan"));
        }
        Admission::Apply
    }
}

/// An item refused because its source or target changed since the plan was made.
pub fn stale(what: &str) -> ItemStatus {
    ItemStatus::Failed {
        error: format!("stale: {what}; not written (make a new plan, review it, apply it)"),
    }
}

fn describe(action: &PlannedAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|value| value.get("planned")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Resource ids compare case-insensitively (ARM ids do).
fn pair_key(source_id: &str, target_id: &str) -> (String, String) {
    (
        source_id.to_ascii_lowercase(),
        target_id.to_ascii_lowercase(),
    )
}

/// The record of what runs of a plan applied: `<plan>.applied`, one JSON line per item,
/// appended as each item finishes, so an interrupted run loses at most the item in flight.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    done: HashSet<(String, String, String, String)>,
    file: Mutex<Option<std::fs::File>>,
    /// The first write that failed (the run is then not resumable past it).
    failed: Mutex<Option<String>>,
}

#[derive(Serialize, Deserialize)]
struct JournalLine {
    source_id: String,
    target_id: String,
    kind: String,
    name: String,
}

impl Journal {
    /// The journal of the plan at `plan`: what it already records, opened for appending.
    pub fn open(plan: &Path) -> Result<Self, String> {
        let mut path = plan.as_os_str().to_owned();
        path.push(".applied");
        let path = PathBuf::from(path);
        let mut done = HashSet::new();
        if path.exists() {
            let text = crate::inventory::read_input_file(&path)
                .map_err(|error| format!("`{}`: {error}", path.display()))?;
            // A line cut short by an interruption is the only one that may not parse: skipped.
            for line in text.lines() {
                if let Ok(entry) = serde_json::from_str::<JournalLine>(line) {
                    let (source, target) = pair_key(&entry.source_id, &entry.target_id);
                    done.insert((source, target, entry.kind, entry.name));
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|error| {
                format!(
                    "cannot open `{}` to record progress: {error}",
                    path.display()
                )
            })?;
        Ok(Journal {
            path,
            done,
            file: Mutex::new(Some(file)),
            failed: Mutex::new(None),
        })
    }

    /// Records an item as applied when its outcome settles it (written, identical, recovered,
    /// partial); failed and skipped items are looked at again by the next run.
    pub fn record(
        &self,
        source_id: &str,
        target_id: &str,
        kind: &str,
        name: &str,
        status: &ItemStatus,
    ) {
        let settled = matches!(
            status,
            ItemStatus::Created { .. }
                | ItemStatus::Overwritten { .. }
                | ItemStatus::Partial { .. }
                | ItemStatus::Recovered { .. }
                | ItemStatus::Identical
        );
        if !settled {
            return;
        }
        let line = JournalLine {
            source_id: source_id.to_owned(),
            target_id: target_id.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        if let Some(open) = file.as_mut() {
            if let Err(error) = open.write_all(text.as_bytes()).and_then(|()| open.flush()) {
                *file = None;
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some(format!(
                        "cannot record progress in `{}`: {error} (a re-run of the plan re-reads what was applied after this)",
                        self.path.display()
                    ));
                }
            }
        }
    }

    /// Why progress could not be recorded, if it could not.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|failed| failed.clone())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `--plan FILE`: keeps in `discovery` only the items the plan approved as they are now;
/// reports the others (not in the plan, stale, planned but no longer there) and counts those
/// an earlier run of the plan applied.
pub(super) fn admit_approved(
    approved: &Approved,
    info: &PluginInfo,
    job: &Job,
    discovery: &mut Discovery,
    ctx: &PluginContext,
    collector: &Collector,
) {
    let (source_id, target_id) = (&job.pair.source.id, &job.pair.target.id);
    let mut seen = std::collections::HashSet::new();
    discovery.items.retain(|item| {
        seen.insert((item.kind, item.name.clone()));
        match approved.admit(source_id, target_id, item) {
            Admission::Apply => true,
            Admission::AlreadyApplied => {
                collector.already_applied(job.id, item.kind, 1);
                false
            }
            Admission::Refuse(status) => {
                ctx.reporter.item(
                    job.id,
                    ItemOutcome {
                        kind: item.kind,
                        name: item.name.clone(),
                        status,
                        notes: item.notes.clone(),
                        duration_ms: 0,
                    },
                );
                false
            }
        }
    });
    let vanished = approved
        .items(source_id, target_id)
        .into_iter()
        .flat_map(|items| items.values())
        .filter(|entry| !seen.contains(&(entry.kind.as_str(), entry.name.clone())));
    for entry in vanished {
        // Kinds are the plugin's own: a kind it does not know is reported as an item.
        let kind = info
            .item_kinds
            .iter()
            .find(|kind| kind.name == entry.kind)
            .map_or("item", |kind| kind.name);
        ctx.reporter.item(
            job.id,
            ItemOutcome {
                kind,
                name: entry.name.clone(),
                status: stale("planned, but no longer in the source's listing"),
                notes: Vec::new(),
                duration_ms: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::Difference;

    fn item(name: &str, action: PlannedAction, fingerprint: &str) -> PlannedItem {
        PlannedItem {
            kind: "secret",
            name: name.into(),
            action,
            notes: Vec::new(),
            fingerprint: Some(fingerprint.into()),
        }
    }

    fn plan(items: &[PlannedItem]) -> PlanFile {
        PlanFile {
            plan_version: PLAN_VERSION,
            atg_version: "0".into(),
            created_at: String::new(),
            mode: Mode::Replication,
            on_conflict: OnConflict::Overwrite,
            on_deleted: OnDeleted::Recover,
            cloud: "AzureCloud".into(),
            resources: vec![PlannedResource {
                source_id: "/S".into(),
                target_id: "/T".into(),
                resource_type: "Microsoft.KeyVault/vaults".into(),
                items: items.iter().map(PlanEntry::of).collect(),
            }],
        }
    }

    #[test]
    fn only_items_decided_the_same_way_from_the_same_state_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("plan.json")).unwrap();
        let planned = plan(&[
            item("same", PlannedAction::Create, "source 1, target absent"),
            item("moved", PlannedAction::Create, "source 1, target absent"),
            item("changed", PlannedAction::Create, "source 1, target absent"),
        ]);
        let approved = Approved::new(&planned, &journal);
        // Ids compare case-insensitively.
        let admit = |item: &PlannedItem| approved.admit("/s", "/t", item);
        assert_eq!(
            admit(&item(
                "same",
                PlannedAction::Create,
                "source 1, target absent"
            )),
            Admission::Apply
        );
        let overwrite = PlannedAction::Overwrite {
            differs: vec![Difference::Value],
        };
        assert!(matches!(
            admit(&item("moved", overwrite, "source 1, target 5")),
            Admission::Refuse(ItemStatus::Failed { error }) if error.contains("planned `create`, now `overwrite`")
        ));
        assert!(matches!(
            admit(&item("changed", PlannedAction::Create, "source 2, target absent")),
            Admission::Refuse(ItemStatus::Failed { error }) if error.starts_with("stale: the source or the target changed")
        ));
        assert!(matches!(
            admit(&item("new", PlannedAction::Create, "source 1, target absent")),
            Admission::Refuse(ItemStatus::Skipped { reason }) if reason.starts_with("not in the plan")
        ));
        assert!(approved.items("/S", "/other").is_none());
        // What the target already holds is never stale: nothing is written.
        assert_eq!(
            admit(&item(
                "changed",
                PlannedAction::Identical,
                "source 2, target 3"
            )),
            Admission::Apply
        );
    }

    #[test]
    fn the_journal_records_settled_items_and_a_reopened_plan_resumes_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let journal = Journal::open(&path).unwrap();
        let created = ItemStatus::Created {
            action: "value copied".into(),
        };
        journal.record("/S", "/T", "secret", "a", &created);
        journal.record(
            "/S",
            "/T",
            "secret",
            "b",
            &ItemStatus::Failed { error: "x".into() },
        );
        journal.record("/S", "/T", "secret", "c", &ItemStatus::Identical);
        drop(journal);
        // An interruption may cut the last line short: it is ignored.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("plan.json.applied"))
            .unwrap();
        file.write_all(b"{\"source_id\":\"/S\",\"tar").unwrap();
        let planned = plan(&[
            item("a", PlannedAction::Create, "f"),
            item("b", PlannedAction::Create, "f"),
            item("c", PlannedAction::Identical, "f"),
        ]);
        let approved = Approved::new(&planned, &Journal::open(&path).unwrap());
        assert_eq!(approved.progress("/S", "/T"), (2, false));
        assert_eq!(
            approved.admit("/S", "/T", &item("a", PlannedAction::Create, "f")),
            Admission::AlreadyApplied
        );
        assert_eq!(
            approved.admit("/S", "/T", &item("b", PlannedAction::Create, "f")),
            Admission::Apply
        );
    }

    #[test]
    fn plans_of_another_version_or_shape_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        std::fs::write(&path, r#"{"plan_version": 9}"#).unwrap();
        assert_eq!(
            PlanFile::read(&path).unwrap_err(),
            "plan version 9: this atg reads plan version 1"
        );
        std::fs::write(&path, r#"{"resources": []}"#).unwrap();
        assert!(PlanFile::read(&path)
            .unwrap_err()
            .contains("no plan_version"));
        let written =
            serde_json::to_string(&plan(&[item("a", PlannedAction::Create, "f")])).unwrap();
        std::fs::write(&path, &written).unwrap();
        assert_eq!(PlanFile::read(&path).unwrap().resources[0].items.len(), 1);
        std::fs::write(&path, written.replace("\"cloud\"", "\"colour\"")).unwrap();
        assert!(PlanFile::read(&path)
            .unwrap_err()
            .starts_with("not a valid atg plan"));
    }
}
