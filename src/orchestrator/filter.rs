//! `--include-type`, `--exclude-type` and `--resource`: which of the inventory's pairs run.
//! Applied before the pairs are checked and before any request: a pair left out is never
//! contacted, and is counted (`filtered_pairs` in the report), never dropped silently.

use crate::dataplane::registry;
use crate::inventory::{escape_controls, Inventory, ResourcePair};

/// The filters of the command line; all empty selects every pair.
#[derive(Clone, Debug, Default)]
pub struct PairFilters {
    /// ARM types to keep (any of them); empty keeps every type.
    pub include_types: Vec<String>,
    /// ARM types to leave out.
    pub exclude_types: Vec<String>,
    /// Names or full ARM ids of a source or a target to keep (any of them); empty keeps all.
    pub resources: Vec<String>,
}

/// A filter that selects nothing: a typo must not turn into an empty, successful run.
#[derive(Debug, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    pub hint: String,
}

impl PairFilters {
    /// Keeps the pairs the filters select, in their order; answers how many were left out.
    /// Every filter value must match at least one pair of the inventory (exit 2 otherwise).
    pub fn apply(&self, inventory: &mut Inventory) -> Result<usize, FilterError> {
        let pairs = &inventory.pairs;
        let unmatched =
            |flag: &str, values: &[String], matches: fn(&ResourcePair, &str) -> bool| {
                values
                    .iter()
                    .find(|value| !pairs.iter().any(|pair| matches(pair, value)))
                    .map(|value| (flag.to_owned(), value.clone()))
            };
        let missing = unmatched("--include-type", &self.include_types, has_type)
            .or_else(|| unmatched("--exclude-type", &self.exclude_types, has_type))
            .or_else(|| unmatched("--resource", &self.resources, is_resource));
        if let Some((flag, value)) = missing {
            let mut types: Vec<&str> = pairs
                .iter()
                .map(|pair| pair.source.resource_type.as_str())
                .collect();
            types.sort_unstable_by_key(|t| t.to_ascii_lowercase());
            types.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
            return Err(FilterError {
                message: format!(
                    "{flag} `{}` matches no pair of inventory `{}`",
                    escape_controls(&value),
                    escape_controls(&inventory.origin)
                ),
                hint: if types.is_empty() {
                    "the inventory has no pairs".to_owned()
                } else {
                    format!(
                        "the pairs' types: {}; --resource takes a source or target name or ARM id",
                        escape_controls(&types.join(", "))
                    )
                },
            });
        }
        let before = inventory.pairs.len();
        inventory.pairs.retain(|pair| self.selects(pair));
        Ok(before - inventory.pairs.len())
    }

    /// One warning per type filter value that no plugin handles (its pairs run unsupported).
    pub fn warnings(&self) -> Vec<String> {
        self.include_types
            .iter()
            .map(|t| ("--include-type", t))
            .chain(self.exclude_types.iter().map(|t| ("--exclude-type", t)))
            .filter(|(_, t)| !registry::PLUGINS.iter().any(|p| p.info().handles(t)))
            .map(|(flag, t)| {
                format!(
                    "{flag} `{}`: no plugin handles this type (see `atg plugins`)",
                    escape_controls(t)
                )
            })
            .collect()
    }

    fn selects(&self, pair: &ResourcePair) -> bool {
        (self.include_types.is_empty() || self.include_types.iter().any(|t| has_type(pair, t)))
            && !self.exclude_types.iter().any(|t| has_type(pair, t))
            && (self.resources.is_empty() || self.resources.iter().any(|r| is_resource(pair, r)))
    }
}

fn has_type(pair: &ResourcePair, resource_type: &str) -> bool {
    [&pair.source, &pair.target]
        .iter()
        .any(|side| side.resource_type.eq_ignore_ascii_case(resource_type))
}

fn is_resource(pair: &ResourcePair, name_or_id: &str) -> bool {
    [&pair.source, &pair.target].iter().any(|side| {
        side.name.eq_ignore_ascii_case(name_or_id) || side.id.eq_ignore_ascii_case(name_or_id)
    })
}
