//! References from one resource to another of the source tenant (an app setting's Key Vault
//! reference, an event hub's capture storage account), pointed at the resource paired with it in
//! this run. [`Paired`] holds the run's pairs of one resource type, keyed by what a reference
//! names (a vault's host, a resource id); a reference to a resource outside the run's pairs
//! finds nothing, and its plugin reports it.

use std::collections::BTreeMap;

use crate::inventory::ResourcePair;

/// The run's pairs of one resource type: source key (lowercase) → what a reference to it
/// becomes in the target.
#[derive(Debug)]
pub struct Paired<T> {
    by_key: BTreeMap<String, T>,
}

impl<T> Default for Paired<T> {
    fn default() -> Self {
        Paired {
            by_key: BTreeMap::new(),
        }
    }
}

impl<T> Paired<T> {
    /// The pairs of `resource_type` (case-insensitive), each keyed and valued by `entry`; a
    /// pair `entry` answers `None` for is left out.
    pub fn new(
        pairs: &[ResourcePair],
        resource_type: &str,
        entry: impl Fn(&ResourcePair) -> Option<(String, T)>,
    ) -> Self {
        let by_key = pairs
            .iter()
            .filter(|pair| {
                pair.source
                    .resource_type
                    .eq_ignore_ascii_case(resource_type)
            })
            .filter_map(|pair| entry(pair).map(|(key, value)| (key.to_ascii_lowercase(), value)))
            .collect();
        Paired { by_key }
    }

    /// What the source resource named by `key` (any case) becomes in the target.
    pub fn target(&self, key: &str) -> Option<&T> {
        self.by_key.get(&key.to_ascii_lowercase())
    }
}

impl Paired<String> {
    /// The target resource id of each source resource id of `resource_type` (ids compared
    /// case-insensitively, a trailing `/` ignored).
    pub fn ids(pairs: &[ResourcePair], resource_type: &str) -> Self {
        Paired::new(pairs, resource_type, |pair| {
            Some((
                pair.source.id.trim_end_matches('/').to_owned(),
                pair.target.id.trim_end_matches('/').to_owned(),
            ))
        })
    }

    /// The target id paired with the source resource `id`.
    pub fn target_id(&self, id: &str) -> Option<&str> {
        self.target(id.trim_end_matches('/')).map(String::as_str)
    }
}
