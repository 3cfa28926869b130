//! What a plan says of an item and what became of it: the decisions ([`PlannedAction`]), the
//! differences named (never the values), the outcomes ([`ItemStatus`]), `atg verify`'s
//! verdicts and the counts of items not listed one by one.

use serde::Serialize;

/// What differs between an item of the source and the target's item of that name. Names what,
/// never the values (a value is compared in memory and never printed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    /// The secret's value (replication only; template mode never reads values).
    Value,
    ContentType,
    Tags,
    /// Enabled, not-before, expiry.
    Attributes,
    /// A key's type, size, curve or exportability: new key material would be made.
    KeyType,
    /// A key's permitted operations.
    Operations,
    /// A certificate: another certificate (thumbprint) when it is imported, another policy
    /// when it is created from its policy.
    Certificate,
    /// A blob's, entity's or container's metadata (user-defined name/value pairs).
    Metadata,
    /// A blob's access tier.
    Tier,
}

impl Difference {
    /// What differs, in words: `value, content type, tags`.
    pub fn describe(differs: &[Difference]) -> String {
        differs
            .iter()
            .map(|difference| match difference {
                Difference::Value => "value",
                Difference::ContentType => "content type",
                Difference::Tags => "tags",
                Difference::Attributes => "attributes",
                Difference::KeyType => "key type",
                Difference::Operations => "operations",
                Difference::Certificate => "certificate",
                Difference::Metadata => "metadata",
                Difference::Tier => "tier",
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What the plan says will happen to an item. One fixed shape per variant, tagged `planned`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "planned")]
pub enum PlannedAction {
    /// Absent in the target: will be written.
    Create,
    /// Present in the target and different: will be written per --on-conflict (`differs` says
    /// what differs).
    Overwrite { differs: Vec<Difference> },
    /// Present in the target and the same: nothing will be written.
    Identical,
    /// Present in the target and not decided before applying (Storage containers, queues and
    /// tables, whose blobs and entities are compared when applied): written only if it differs.
    Compare,
    /// Will not be written, for the reason given.
    Skip { reason: String },
    /// Soft-deleted in the target: will be recovered (`--on-deleted recover`), then compared.
    Recover,
    /// Soft-deleted in the target: will be purged (`--on-deleted purge`), then written.
    Purge,
    /// Will be reported failed without a write, for the reason given (`--on-deleted fail`, a
    /// name taken by an item of another kind).
    Fail { reason: String },
    /// Only in the target (listed by `atg verify`): atg never writes or deletes it.
    Extra,
}

impl PlannedAction {
    /// Whether applying the plan would (or may) change the target.
    pub fn changes(&self) -> bool {
        match self {
            PlannedAction::Create
            | PlannedAction::Overwrite { .. }
            | PlannedAction::Compare
            | PlannedAction::Recover
            | PlannedAction::Purge => true,
            PlannedAction::Identical
            | PlannedAction::Skip { .. }
            | PlannedAction::Fail { .. }
            | PlannedAction::Extra => false,
        }
    }

    /// The plan for an item the target holds: identical, or overwritten with what differs.
    pub fn compared(mut differs: Vec<Difference>) -> Self {
        if differs.is_empty() {
            PlannedAction::Identical
        } else {
            differs.sort();
            differs.dedup();
            PlannedAction::Overwrite { differs }
        }
    }
}

/// One item as discovered and planned. Holds names and metadata, never values.
#[derive(Clone, Debug)]
pub struct PlannedItem {
    pub kind: &'static str,
    pub name: String,
    pub action: PlannedAction,
    /// Facts worth reporting even before applying (e.g. "3 older versions not copied").
    pub notes: Vec<String>,
    /// What the decision was made from on both sides (versions, entity tags, modification times;
    /// never a value): a plan applied later (`--plan FILE`) refuses the item as stale when it
    /// changed. `None` when the service offers nothing to tell a change by.
    pub fingerprint: Option<String>,
}

/// Discovery of one resource pair: what the report shows of a plan.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub items: Vec<PlannedItem>,
    /// Items discovered but planned as part of a larger item (blobs of a container, entities of
    /// a table), by kind. Counted in the report next to `items`.
    pub nested: std::collections::BTreeMap<&'static str, u64>,
    /// Resource-level facts for the report (endpoints used, counts, bytes).
    pub facts: serde_json::Map<String, serde_json::Value>,
}

/// The outcome of one item. One fixed shape per variant, tagged `outcome`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome")]
pub enum ItemStatus {
    /// Absent in the target and written (`action` says how: value copied, placeholder, new key
    /// material).
    Created {
        action: String,
    },
    /// Present in the target, different, and written over (`action` says how).
    Overwritten {
        action: String,
    },
    /// Written, but something of it could not be copied (`reason` says what).
    Partial {
        action: String,
        reason: String,
    },
    /// Soft-deleted in the target and recovered (`action` says what followed: left as it was,
    /// or overwritten). One outcome per item: a recovered item is not also `overwritten`.
    Recovered {
        action: String,
    },
    /// Present in the target and the same: nothing written.
    Identical,
    /// Not written, for a reason that is not an error (policy, unsupported, cancelled).
    Skipped {
        reason: String,
    },
    /// Dry-run: what would happen.
    Planned {
        #[serde(flatten)]
        plan: PlannedAction,
    },
    /// `atg verify`: how the target's item stands against the source's.
    Verified {
        #[serde(flatten)]
        verdict: Verdict,
    },
    Failed {
        error: String,
    },
}

impl ItemStatus {
    /// An item written by `action`: `created` when the target did not hold it, `overwritten`
    /// when it did.
    pub fn written(existed: bool, action: impl Into<String>) -> Self {
        let action = action.into();
        if existed {
            ItemStatus::Overwritten { action }
        } else {
            ItemStatus::Created { action }
        }
    }
}

/// How a target item stands against the source's (`atg verify`). Values are compared in
/// memory and never printed or stored. One fixed shape per variant, tagged `verdict`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "verdict")]
pub enum Verdict {
    /// The same on both sides, for everything the mode copies.
    Identical,
    /// Absent in the target (or only soft-deleted there).
    Missing,
    /// Present in the target and different (`differs` says what, never the values).
    Different { differs: Vec<Difference> },
    /// Only in the target: not promised by the source, never deleted by atg.
    Extra,
    /// Not something the mode copies (the reason says why: e.g. a certificate's own secret,
    /// an archived blob); not counted in the fidelity.
    Skipped { reason: String },
    /// Could not be compared item by item, or a run would fail it (the reason says why):
    /// counted against the fidelity.
    Unverified { reason: String },
}

/// Why an item only the target holds is never written (it is planned only by `atg verify`).
pub const EXTRA: &str = "only in the target: atg never writes or deletes it";

impl From<PlannedAction> for Verdict {
    fn from(plan: PlannedAction) -> Self {
        match plan {
            PlannedAction::Identical => Verdict::Identical,
            PlannedAction::Create | PlannedAction::Recover | PlannedAction::Purge => {
                Verdict::Missing
            }
            PlannedAction::Overwrite { differs } => Verdict::Different { differs },
            PlannedAction::Extra => Verdict::Extra,
            PlannedAction::Skip { reason } => Verdict::Skipped { reason },
            PlannedAction::Fail { reason } => Verdict::Unverified { reason },
            PlannedAction::Compare => Verdict::Unverified {
                reason: "compared only as a whole, not item by item".into(),
            },
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ItemOutcome {
    pub kind: &'static str,
    pub name: String,
    #[serde(flatten)]
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub duration_ms: u64,
}

/// An unremarkable outcome, counted but not listed (see [`Reporter::count`](super::Reporter::count)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counted {
    /// Absent in the target and written.
    Created,
    /// Present in the target, different, and written over.
    Overwritten,
    /// Already identical in the target.
    Identical,
    /// Dry run: absent in the target, would be written (`atg verify`: missing).
    PlannedCreate,
    /// Dry run: present in the target and different, would be written over (`atg verify`:
    /// different).
    PlannedOverwrite,
    /// `atg verify`: only in the target.
    Extra,
}
