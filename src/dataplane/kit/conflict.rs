//! One conflict decision for every plugin: what `--on-conflict` does with an item the target
//! already holds.

use super::super::{Difference, ItemStatus, OnConflict, PlannedAction};

/// How an item of the source stands against the target's item of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The target has no item of that name.
    Absent,
    /// The target's item is the same.
    Identical,
    /// The target's item differs; `newer` says whether the source changed after it.
    Differs(Newer),
}

/// Whether the source's item was modified after the target's (for `--on-conflict
/// if-source-newer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Newer {
    /// The source was modified after the target.
    Source,
    /// The target was modified at or after the source.
    Target,
    /// The service keeps no modification time comparable across resources: the reason, in
    /// words (`key vault has no comparable modification time`). Acts as `skip`.
    Unknown(&'static str),
}

/// What to do with one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write it (create it, or write over the target's).
    Write,
    /// The target's is the same: nothing to write.
    Identical,
    /// Leave the target's item; report it skipped.
    Skip(String),
    /// Leave the target's item; report it failed.
    Fail(String),
}

impl Decision {
    /// The decision `policy` makes for `what` (`secret s1`, `container logs`), as it stands
    /// against the target.
    pub fn new(policy: OnConflict, what: &str, existing: Existing) -> Decision {
        let newer = match existing {
            Existing::Absent => return Decision::Write,
            Existing::Identical => return Decision::Identical,
            Existing::Differs(newer) => newer,
        };
        match (policy, newer) {
            (OnConflict::Overwrite, _) | (OnConflict::IfSourceNewer, Newer::Source) => {
                Decision::Write
            }
            (OnConflict::Skip, _) => Decision::Skip(format!(
                "{what} exists in the target and differs (--on-conflict skip)"
            )),
            (OnConflict::Fail, _) => Decision::Fail(format!(
                "{what} exists in the target and differs (--on-conflict fail)"
            )),
            (OnConflict::IfSourceNewer, Newer::Target) => Decision::Skip(format!(
                "{what} exists in the target, differs, and is not older than the source (--on-conflict if-source-newer)"
            )),
            (OnConflict::IfSourceNewer, Newer::Unknown(why)) => Decision::Skip(format!(
                "{what} exists in the target and differs; {why} (--on-conflict if-source-newer acts as skip)"
            )),
        }
    }

    /// The plan for it: `differs` says what differs when the target holds a different item.
    pub fn planned(self, existed: bool, differs: Vec<Difference>) -> PlannedAction {
        match self {
            Decision::Write if existed => PlannedAction::compared(differs),
            Decision::Write => PlannedAction::Create,
            Decision::Identical => PlannedAction::Identical,
            Decision::Skip(reason) => PlannedAction::Skip {
                reason: with_differences(reason, &differs),
            },
            Decision::Fail(reason) => PlannedAction::Fail {
                reason: with_differences(reason, &differs),
            },
        }
    }

    /// The outcome when nothing is to be written, or `None` for [`Decision::Write`].
    pub fn settled(self) -> Option<ItemStatus> {
        match self {
            Decision::Write => None,
            Decision::Identical => Some(ItemStatus::Identical),
            Decision::Skip(reason) => Some(ItemStatus::Skipped { reason }),
            Decision::Fail(error) => Some(ItemStatus::Failed { error }),
        }
    }
}

fn with_differences(reason: String, differs: &[Difference]) -> String {
    if differs.is_empty() {
        reason
    } else {
        format!("{reason}: {}", Difference::describe(differs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_TIME: Newer = Newer::Unknown("key vault has no comparable modification time");

    #[test]
    fn absent_items_are_written_and_identical_ones_left_whatever_the_policy() {
        for policy in [
            OnConflict::Overwrite,
            OnConflict::Skip,
            OnConflict::Fail,
            OnConflict::IfSourceNewer,
        ] {
            assert_eq!(
                Decision::new(policy, "secret s", Existing::Absent),
                Decision::Write
            );
            assert_eq!(
                Decision::new(policy, "secret s", Existing::Identical),
                Decision::Identical
            );
        }
    }

    #[test]
    fn differing_items_follow_the_policy() {
        let differs = |policy, newer| Decision::new(policy, "blob b", Existing::Differs(newer));
        assert_eq!(
            differs(OnConflict::Overwrite, Newer::Target),
            Decision::Write
        );
        assert_eq!(
            differs(OnConflict::IfSourceNewer, Newer::Source),
            Decision::Write
        );
        assert_eq!(
            differs(OnConflict::Skip, Newer::Source),
            Decision::Skip("blob b exists in the target and differs (--on-conflict skip)".into())
        );
        assert_eq!(
            differs(OnConflict::Fail, Newer::Source),
            Decision::Fail("blob b exists in the target and differs (--on-conflict fail)".into())
        );
        assert!(matches!(
            differs(OnConflict::IfSourceNewer, Newer::Target),
            Decision::Skip(reason) if reason.contains("not older than the source")
        ));
        assert!(matches!(
            differs(OnConflict::IfSourceNewer, NO_TIME),
            Decision::Skip(reason) if reason.contains("no comparable modification time")
                && reason.contains("acts as skip")
        ));
    }

    #[test]
    fn plans_and_outcomes_say_what_differs_and_why() {
        let values = vec![Difference::Tags, Difference::Value];
        assert_eq!(
            Decision::Write.planned(false, Vec::new()),
            PlannedAction::Create
        );
        assert_eq!(
            Decision::Write.planned(true, values.clone()),
            PlannedAction::Overwrite {
                differs: vec![Difference::Value, Difference::Tags]
            }
        );
        assert_eq!(
            Decision::Skip("kept".into()).planned(true, values),
            PlannedAction::Skip {
                reason: "kept: tags, value".into()
            }
        );
        assert_eq!(Decision::Write.settled(), None);
        assert_eq!(
            Decision::Fail("no".into()).settled(),
            Some(ItemStatus::Failed { error: "no".into() })
        );
    }
}
