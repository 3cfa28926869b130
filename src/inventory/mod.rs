//! Where resources come from: the pairs of source and target resources a run works on.
//!
//! An [`InventorySource`] reads resources from somewhere (a JSON file, or ATG's Neo4j graph
//! with the Terraform state of the deployed target) and pairs each source resource with its
//! deployed target. This module owns the resource model, its validation and the matching
//! rules; it makes no Azure calls and knows nothing of plugins.

pub mod graph;
pub mod json;
pub mod matching;
pub mod neo4j;
pub mod terraform;

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

/// A resource's `properties` as the inventory gave them. ATG's graph stores them as a JSON
/// string cut at 5,000 characters, so they may be unparseable; what can still be read is.
#[derive(Clone, Debug, Default)]
pub enum Properties {
    #[default]
    Missing,
    Object(serde_json::Map<String, Value>),
    /// A JSON string that did not parse (usually truncated); fields are salvaged from the text.
    Truncated(String),
}

impl Properties {
    pub fn from_value(value: Option<&Value>) -> Result<Properties, String> {
        match value {
            None | Some(Value::Null) => Ok(Properties::Missing),
            Some(Value::Object(map)) => Ok(Properties::Object(map.clone())),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(Properties::Missing),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => Ok(Properties::Object(map)),
                Ok(Value::Null) => Ok(Properties::Missing),
                Ok(other) => Err(format!(
                    "`properties` is a JSON {} inside a string, expected an object",
                    kind(&other)
                )),
                Err(_) => Ok(Properties::Truncated(text.clone())),
            },
            Some(other) => Err(format!(
                "`properties` is a {}, expected an object or a JSON string",
                kind(other)
            )),
        }
    }

    /// A top-level string property, e.g. `vaultUri`. From a truncated text only when the whole
    /// `"key": "value"` pair survived the cut.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self {
            Properties::Missing => None,
            Properties::Object(map) => map.get(key).and_then(Value::as_str).map(str::to_owned),
            Properties::Truncated(text) => salvage_string(text, key),
        }
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        match self {
            Properties::Object(map) => map.get(key).and_then(Value::as_bool),
            _ => None,
        }
    }

    pub fn is_truncated(&self) -> bool {
        matches!(self, Properties::Truncated(_))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Finds `"key":"value"` (whitespace allowed) in possibly truncated JSON text, only at the top
/// level of the object, and only when the value's closing quote is present.
fn salvage_string(text: &str, key: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                let end = string_end(bytes, i)?;
                if depth == 1 && &text[i + 1..end] == key {
                    let rest = text[end + 1..].trim_start();
                    let rest = rest.strip_prefix(':')?.trim_start();
                    if !rest.starts_with('"') {
                        return None;
                    }
                    let offset = text.len() - rest.len();
                    let value_end = string_end(bytes, offset)?;
                    return serde_json::from_str::<String>(&text[offset..=value_end]).ok();
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the quote closing the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// One Azure resource as the inventory describes it.
#[derive(Clone, Debug)]
pub struct Resource {
    pub id: String,
    pub resource_type: String,
    pub name: String,
    pub subscription_id: Option<String>,
    pub resource_group: Option<String>,
    pub properties: Properties,
    /// Per-resource knobs from the inventory (e.g. a connection string for a storage account).
    pub options: serde_json::Map<String, Value>,
}

impl Resource {
    /// Subscription and resource group parsed from an ARM id, case-insensitively.
    pub fn parse_id(id: &str) -> Result<(String, Option<String>), String> {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        if parts.len() < 2 || !parts[0].eq_ignore_ascii_case("subscriptions") || parts[1].is_empty()
        {
            return Err(format!("`{id}` is not an ARM resource id (/subscriptions/<id>/resourceGroups/<name>/providers/...)"));
        }
        let group = parts
            .iter()
            .position(|p| p.eq_ignore_ascii_case("resourceGroups"))
            .and_then(|i| parts.get(i + 1))
            .map(|s| (*s).to_owned());
        Ok((parts[1].to_owned(), group))
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.resource_type)
    }
}

/// A source resource and the target it is replicated into.
#[derive(Clone, Debug)]
pub struct ResourcePair {
    pub source: Resource,
    pub target: Resource,
    /// Which rule paired them (shown in the plan).
    pub match_rule: MatchRule,
    /// What the rule found (empty for pairs written in an inventory).
    pub evidence: Evidence,
}

/// How a source was paired with its target, strongest first (docs: src/inventory/matching.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchRule {
    /// Written as a pair in a JSON inventory.
    Inventory,
    /// An entry of the user's mappings file (`--mappings`).
    Mapping,
    /// Same type and the same name.
    ExactName,
    /// The name ATG's generate-iac gives the source's abstracted twin.
    AtgNaming,
    /// ATG's name, renamed for a conflict as recorded in `name_mappings.json`.
    AtgNameMapping,
    /// The source's (or its twin's) name plus an optional `-` and a 6–16 character `[a-z0-9]`
    /// suffix.
    Suffix,
    /// A child resource (a SQL database) with the same name under the target its parent was
    /// paired with.
    Parent,
}

impl MatchRule {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchRule::Inventory => "inventory",
            MatchRule::Mapping => "mapping",
            MatchRule::ExactName => "exact_name",
            MatchRule::AtgNaming => "atg_naming",
            MatchRule::AtgNameMapping => "atg_name_mapping",
            MatchRule::Suffix => "suffix",
            MatchRule::Parent => "parent",
        }
    }
}

impl fmt::Display for MatchRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `name_mappings.json` entry a pair was made by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NameMappingEntry {
    pub original_name: String,
    pub new_name: String,
    /// `source_name` (the source's real name) or `planned_name` (ATG's name for its twin).
    pub keyed_by: &'static str,
}

/// The parent pair a child pair was made through.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ParentPair {
    pub source_id: String,
    pub target_id: String,
    pub match_rule: Option<MatchRule>,
}

/// What a rule found when it paired a source with a target (shown in the plan). Empty for the
/// rules whose name says it all (`inventory`, `mapping`, `exact_name`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_mapping: Option<NameMappingEntry>,
    /// The name ATG's generate-iac plans for the source's twin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_name: Option<String>,
    /// The subscription a Cosmos account's planned name was hashed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_for_subscription: Option<String>,
    /// The name the suffix rule found at the start of the target's (the source's or its twin's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// What follows it, with its `-` when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentPair>,
}

impl Evidence {
    pub fn is_empty(&self) -> bool {
        *self == Evidence::default()
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(entry) = &self.name_mapping {
            let key = if entry.keyed_by == "planned_name" {
                "ATG's planned name"
            } else {
                "the source's name"
            };
            parts.push(format!(
                "name_mappings.json `{}` -> `{}` (keyed by {key})",
                entry.original_name, entry.new_name
            ));
        }
        if let Some(planned) = &self.planned_name {
            match &self.planned_for_subscription {
                Some(subscription) => parts.push(format!(
                    "planned name `{planned}` (hashed from subscription {subscription})"
                )),
                None => parts.push(format!("planned name `{planned}`")),
            }
        }
        if let (Some(base), Some(suffix)) = (&self.base, &self.suffix) {
            parts.push(format!("`{base}` + suffix `{suffix}`"));
        }
        if let Some(parent) = &self.parent {
            parts.push(format!(
                "parent `{}` -> `{}`{}",
                parent.source_id,
                parent.target_id,
                parent
                    .match_rule
                    .map_or_else(String::new, |rule| format!(" ({rule})"))
            ));
        }
        parts.join("; ")
    }
}

/// A resource an unmatched one could have been paired with, and why it was not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub match_rule: MatchRule,
    pub rejected: String,
}

/// Which side of the migration an unmatched resource is on.
pub const SOURCE: &str = "source";
pub const TARGET: &str = "target";

/// A resource that could not be paired, and why. Skipped by the run, listed in the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Unmatched {
    pub side: &'static str,
    pub id: String,
    pub resource_type: String,
    pub name: String,
    pub reason: String,
    /// What the matching rules proposed for it, each with why it was rejected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

impl Unmatched {
    pub fn new(side: &'static str, resource: &Resource, reason: impl Into<String>) -> Self {
        Unmatched {
            side,
            id: resource.id.clone(),
            resource_type: resource.resource_type.clone(),
            name: resource.name.clone(),
            reason: reason.into(),
            candidates: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub pairs: Vec<ResourcePair>,
    pub unmatched: Vec<Unmatched>,
    /// Where it came from, for the report (`inventory.json`, `neo4j://…`).
    pub origin: String,
    /// What the reader noticed but could not act on (a `name_mappings.json` entry that matches
    /// no source).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory `{path}`: {message}")]
    Read { path: String, message: String },
    #[error("inventory `{path}` is not valid JSON: {message}")]
    Syntax { path: String, message: String },
    #[error("inventory `{path}`, {entry}: {message}")]
    Entry {
        path: String,
        entry: String,
        message: String,
    },
    #[error("inventory `{path}`: {message}")]
    Invalid { path: String, message: String },
    /// ATG's graph could not be read (server, credentials, shape of the data).
    #[error("cannot read ATG's graph at `{uri}`: {message}")]
    Graph {
        uri: String,
        message: String,
        hint: Option<String>,
    },
    /// The Terraform state (or `terraform show -json` output) of the target.
    #[error("terraform state `{path}`: {message}")]
    State {
        path: String,
        message: String,
        hint: Option<String>,
    },
    /// Pairs that cannot run together, or names that cannot be echoed (one line each).
    #[error("inventory `{origin}`: {}", lines(problems))]
    Pairs {
        origin: String,
        problems: Vec<String>,
    },
    /// Pairs their plugin refuses: options, endpoints outside the cloud (one line each).
    #[error("inventory `{origin}`: {}", lines(problems))]
    Options {
        origin: String,
        problems: Vec<String>,
    },
    /// The user's mappings file or ATG's `name_mappings.json`.
    #[error("mappings `{path}`: {message}")]
    Mappings { path: String, message: String },
}

impl InventoryError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            InventoryError::Read { .. }
            | InventoryError::Syntax { .. }
            | InventoryError::Entry { .. }
            | InventoryError::Invalid { .. } => Some("see docs/inventory.md for the format".into()),
            InventoryError::Pairs { .. } => Some(
                "each target is written by one pair, and no resource is both a source and a target in one run: run a chain A -> B -> C as two runs"
                    .into(),
            ),
            InventoryError::Options { .. } => Some(
                "see docs/inventory.md for each plugin's options; endpoints must be in the cloud of --cloud"
                    .into(),
            ),
            InventoryError::Graph { hint, .. } | InventoryError::State { hint, .. } => hint.clone(),
            InventoryError::Mappings { .. } => Some(
                "--mappings takes {\"mappings\": [{\"source\": \"<source id>\", \"target\": \"<target id>\"}]}"
                    .into(),
            ),
        }
    }
}

/// The most an inventory file may hold. A file over it is refused, never truncated: a bigger
/// inventory is almost surely the wrong file (`/dev/zero`, a log), and reading it would have no
/// bound.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a file the user named as input (the JSON inventory, `--mappings`, the Terraform state
/// and `name_mappings.json`): only a regular file (a FIFO would block forever, a
/// character device such as `/dev/zero` never ends), and at most [`MAX_INPUT_BYTES`].
pub fn read_input_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    // Checked before opening: opening a FIFO blocks until a writer appears.
    let metadata = std::fs::metadata(path).map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err(format!(
            "not a regular file ({}): atg reads its input from regular files only",
            file_kind(&metadata)
        ));
    }
    let too_big = || {
        format!(
            "larger than the limit of {} MiB",
            MAX_INPUT_BYTES / (1024 * 1024)
        )
    };
    if metadata.len() > MAX_INPUT_BYTES {
        return Err(too_big());
    }
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a file that grew since the check from one that fits.
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|error| format!("not UTF-8 text: {error}"))
}

fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// `text` with every control character (C0, DEL, C1) written as `\u{1b}`: what every message
/// that echoes a name or id from the input goes through, so that input never reaches a
/// terminal raw.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write;
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            // Writing to a String cannot fail.
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// Refuses a name or id holding control characters (C0, DEL, C1): no Azure name has them, and
/// echoed raw they would drive the terminal.
pub fn refuse_controls(field: &str, text: &str) -> Result<(), String> {
    if text.chars().any(char::is_control) {
        return Err(format!(
            "{field} `{}` contains control characters",
            escape_controls(text)
        ));
    }
    Ok(())
}

impl ResourcePair {
    /// How messages name this pair: its place in a JSON inventory, else its two ids.
    pub fn label(&self, index: usize) -> String {
        match self.match_rule {
            MatchRule::Inventory => format!(
                "resources[{index}] (source `{}`)",
                escape_controls(&self.source.name)
            ),
            _ => format!(
                "pair `{}` -> `{}`",
                escape_controls(&self.source.id),
                escape_controls(&self.target.id)
            ),
        }
    }
}

impl Inventory {
    /// What makes the pairs unsafe to run together, one line per problem, found before any
    /// request: control characters in names or ids, a pair listed twice, a resource that is its
    /// own target, a resource that is the source of one pair and the target of another (a cycle
    /// or a chain: it would be read while written), and two pairs writing into one target.
    /// One source with several targets is fine.
    pub fn problems(&self) -> Vec<String> {
        use std::collections::HashMap;
        let mut problems = Vec::new();
        for (index, pair) in self.pairs.iter().enumerate() {
            for (side, resource) in [("source", &pair.source), ("target", &pair.target)] {
                for (field, text) in [("id", &resource.id), ("name", &resource.name)] {
                    if let Err(problem) = refuse_controls(&format!("{side}.{field}"), text) {
                        problems.push(format!("{}: {problem}", pair.label(index)));
                    }
                }
            }
        }
        for unmatched in &self.unmatched {
            for (field, text) in [("id", &unmatched.id), ("name", &unmatched.name)] {
                if let Err(problem) = refuse_controls(&format!("{} {field}", unmatched.side), text)
                {
                    problems.push(format!("unmatched resource: {problem}"));
                }
            }
        }
        if !problems.is_empty() {
            // The checks below would repeat the same names.
            return problems;
        }
        // ARM ids are case-insensitive.
        let key = |id: &str| id.trim_end_matches('/').to_ascii_lowercase();
        let mut pairs_seen: HashMap<(String, String), usize> = HashMap::new();
        let mut sources: HashMap<String, usize> = HashMap::new();
        let mut targets: HashMap<String, usize> = HashMap::new();
        for (index, pair) in self.pairs.iter().enumerate() {
            let (source, target) = (key(&pair.source.id), key(&pair.target.id));
            let label = pair.label(index);
            if source == target {
                problems.push(format!(
                    "{label}: the source is its own target `{}`",
                    pair.target.id
                ));
                continue;
            }
            if let Some(first) = pairs_seen.insert((source.clone(), target.clone()), index) {
                problems.push(format!(
                    "{label}: the same pair as {}, listed twice",
                    self.pairs[first].label(first)
                ));
                continue;
            }
            sources.entry(source).or_insert(index);
            if let Some(&first) = targets.get(&target) {
                problems.push(format!(
                    "{label} and {} both write into the target `{}`",
                    self.pairs[first].label(first),
                    pair.target.id
                ));
            } else {
                targets.insert(target, index);
            }
        }
        for (index, pair) in self.pairs.iter().enumerate() {
            let target = key(&pair.target.id);
            if let Some(&other) = sources.get(&target).filter(|&&other| other != index) {
                problems.push(format!(
                    "`{}` is the target of {} and the source of {}: it would be read while it is written",
                    pair.target.id,
                    pair.label(index),
                    self.pairs[other].label(other)
                ));
            }
        }
        problems
    }

    /// [`Inventory::problems`] as an error naming the inventory.
    pub fn check(&self) -> Result<(), InventoryError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(InventoryError::Pairs {
            origin: escape_controls(&self.origin).into_owned(),
            problems,
        })
    }
}

/// One problem on the line, several each on a line of their own.
fn lines(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => format!("{} problems\n  {}", many.len(), many.join("\n  ")),
    }
}

/// Anything that can produce an [`Inventory`].
#[async_trait]
pub trait InventorySource: Send + Sync {
    async fn load(&self) -> Result<Inventory, InventoryError>;
}

#[cfg(test)]
mod tests;
