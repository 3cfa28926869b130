//! The inventory of a migration ATG made: sources from ATG's graph, targets from the Terraform
//! state of the deployed infrastructure (or from the same graph, for a target tenant ATG scanned too),
//! paired by [`super::matching`]. The targets are read first: they are local and fail fast.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde_json::Value;

use super::matching::{match_resources, ExplicitMapping, MatchOptions, NameMapping};
use super::neo4j::{shown_uri, GraphReader, GraphSettings};
use super::terraform::{read_iac_dir, read_mappings_file, read_name_mappings};
use super::{Inventory, InventoryError, InventorySource, Resource, Unmatched, TARGET};

/// Where the deployed targets are.
#[derive(Clone, Debug)]
pub enum TargetSource {
    /// The Terraform state in ATG's `--iac-dir` (and its `name_mappings.json`).
    IacDir(PathBuf),
    /// The originals of this subscription in the same graph.
    Graph { subscription: String },
}

#[derive(Clone, Debug)]
pub struct GraphInventory {
    pub graph: GraphSettings,
    /// ARM types to read (the data planes atg can fill).
    pub types: Vec<String>,
    pub source_subscription: Option<String>,
    /// Only targets in this subscription take part (all when `None`).
    pub target_subscription: Option<String>,
    pub targets: TargetSource,
    /// The user's explicit source → target mappings.
    pub mappings: Option<PathBuf>,
    /// ATG's `name_mappings.json` (`--name-mappings`); without it, the one in `--iac-dir`.
    pub name_mappings: Option<PathBuf>,
    pub options: MatchOptions,
}

#[async_trait]
impl InventorySource for GraphInventory {
    async fn load(&self) -> Result<Inventory, InventoryError> {
        let explicit = match &self.mappings {
            Some(path) => read_mappings(path)?,
            None => Vec::new(),
        };
        let mut unmatched: Vec<Unmatched> = Vec::new();
        let (mut targets, mut name_mappings, target_origin): (
            Vec<Resource>,
            Option<(PathBuf, Vec<NameMapping>)>,
            String,
        ) = match &self.targets {
            TargetSource::IacDir(dir) => {
                let read = read_iac_dir(dir)?;
                let origin = read.state_path.display().to_string();
                (read.resources, read.name_mappings, origin)
            }
            TargetSource::Graph { .. } => (Vec::new(), None, String::new()),
        };
        if let Some(path) = &self.name_mappings {
            name_mappings = Some((path.clone(), read_name_mappings(path)?));
        }
        let (name_mappings_path, name_mappings) = name_mappings.unwrap_or_default();

        let reader = GraphReader::connect(self.graph.clone()).await?;
        let sources = reader
            .read_originals(&self.types, self.source_subscription.as_deref())
            .await?;
        unmatched.extend(sources.unusable);
        let target_origin = if let TargetSource::Graph { subscription } = &self.targets {
            let read = reader
                .read_originals(&self.types, Some(subscription))
                .await?;
            targets = read.resources.into_iter().map(|r| r.resource).collect();
            unmatched.extend(read.unusable.into_iter().map(|mut u| {
                u.side = TARGET;
                u
            }));
            format!("subscription {subscription} in the graph")
        } else {
            target_origin
        };
        if let Some(subscription) = &self.target_subscription {
            let before = targets.len();
            targets.retain(|t| {
                t.subscription_id
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(subscription))
            });
            if targets.len() < before {
                tracing::info!(
                    left_out = before - targets.len(),
                    "targets outside --target-subscription take no part"
                );
            }
        }
        let matched = match_resources(
            sources.resources,
            targets,
            &explicit,
            &name_mappings,
            &self.options,
        )
        .map_err(|message| InventoryError::Mappings {
            path: self
                .mappings
                .as_ref()
                .map_or_else(String::new, |p| p.display().to_string()),
            message,
        })?;
        unmatched.extend(matched.unmatched);
        let warnings = matched
            .warnings
            .into_iter()
            .map(|warning| format!("`{}`: {warning}", name_mappings_path.display()))
            .collect();
        Ok(Inventory {
            pairs: matched.pairs,
            unmatched,
            warnings,
            origin: format!(
                "{} (sources) + {target_origin} (targets)",
                shown_uri(&self.graph.uri)
            ),
        })
    }
}

/// The user's mappings file: `{"mappings": [{"source": "<id>", "target": "<id>"}]}` (a bare
/// array of the same entries is read too).
pub fn read_mappings(path: &Path) -> Result<Vec<ExplicitMapping>, InventoryError> {
    read_mappings_file(path, parse_mappings)
}

pub fn parse_mappings(path: &str, text: &str) -> Result<Vec<ExplicitMapping>, InventoryError> {
    let error = |message: String| InventoryError::Mappings {
        path: path.to_owned(),
        message,
    };
    let root: Value =
        serde_json::from_str(text).map_err(|e| error(format!("not valid JSON: {e}")))?;
    let entries = match &root {
        Value::Array(entries) => entries,
        Value::Object(object) => object
            .get("mappings")
            .and_then(Value::as_array)
            .ok_or_else(|| error("missing `mappings` array".into()))?,
        _ => return Err(error("the top level must be an object".into())),
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let field = |key: &str| {
                entry
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            match (field("source"), field("target")) {
                (Some(source_id), Some(target_id)) => Ok(ExplicitMapping {
                    source_id,
                    target_id,
                }),
                _ => Err(error(format!(
                    "mappings[{index}] needs `source` and `target` resource ids"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_files_are_read_and_bad_entries_named() {
        let mappings = parse_mappings(
            "m.json",
            r#"{"mappings":[{"source":"/subscriptions/a/x","target":"/subscriptions/b/y"}]}"#,
        )
        .unwrap();
        assert_eq!(mappings[0].target_id, "/subscriptions/b/y");
        assert_eq!(
            parse_mappings("m.json", r#"[{"source":"s","target":"t"}]"#)
                .unwrap()
                .len(),
            1
        );
        let error = parse_mappings("m.json", r#"{"mappings":[{"source":"s"}]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "mappings `m.json`: mappings[0] needs `source` and `target` resource ids"
        );
    }

    #[test]
    fn uris_lose_their_credentials() {
        assert_eq!(
            shown_uri("bolt://neo4j:hunter2@db.example:7687"),
            "bolt://db.example:7687"
        );
        assert_eq!(shown_uri("bolt://db:7687"), "bolt://db:7687");
    }
}
