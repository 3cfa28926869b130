//! Pairs source resources (ATG's graph) with deployed targets (Terraform state, or the graph),
//! in order, never guessing:
//!
//! 1. the user's mappings file (`--mappings`): source id → target id;
//! 2. ATG's `name_mappings.json` (`original_name` → `new_name`), an entry keyed either by the
//!    source's real name or by ATG's planned name for it (rule 4). A source with an entry is
//!    decided here: paired with the entry's target, or left unmatched with the reason (the
//!    target is missing, taken, or the entries disagree), never paired by a weaker rule;
//! 3. same type (compared case-insensitively) and the same name (for a child resource such as a
//!    SQL database, the same name under a parent of the same name);
//! 4. ATG's own naming: generate-iac names a target from the source's abstracted twin `tw`
//!    (rysweet/azure-tenant-grapher, src/iac/emitters/terraform/handlers/, as issue 4 gives it
//!    for commit 35e414ab): Key Vault `tw[:17] + "-" + md5(tw)[:6]` when the target
//!    subscription or tenant differs, else `tw`; storage account `tw[:18] + md5(tw)[:6]`; web
//!    and function apps `tw[:54] + md5(tw)[:6]`; container registry `tw[:44] + md5(tw)[:6]`;
//!    Cosmos account `lower(tw + "-" + md5(subscription id)[:8])[:44]`, where the subscription
//!    is the one ATG generated against: the target's, or the source's when ATG was given none,
//!    so both are tried and both fitting is ambiguous; other types `tw`. The prefix comes from
//!    the twin's name and the hash from the twin's id, as ATG's Key Vault handler hashes the
//!    abstracted resource's id (ATG's graph gives both the same value);
//! 5. same type where the target name is the source's (or its twin's) name plus an optional `-`
//!    and a 6–16 character `[a-z0-9]` suffix;
//! 6. a child resource with the same name under the target its parent was paired with (a SQL
//!    database under a server renamed by `name_mappings.json` or a suffix).
//!
//! At each rule a pair is made only when it is one to one: a source with several candidates,
//! or a target claimed by several sources, is listed as unmatched with the candidates and
//! takes no part in the weaker rules. A source is never paired with itself. Names compare
//! case-insensitively, as ARM's do. Everything left over is listed as unmatched with what was
//! tried: every candidate any rule proposed, and why it was rejected. A `name_mappings.json`
//! entry that matches no source is returned as a warning.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use md5::{Digest, Md5};

use super::{
    Candidate, Evidence, MatchRule, NameMappingEntry, ParentPair, Resource, ResourcePair,
    Unmatched, SOURCE, TARGET,
};

/// The abstracted twin ATG writes beside each original resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Twin {
    pub id: String,
    pub name: String,
}

/// A source resource and, when the graph has one, its abstracted twin.
#[derive(Clone, Debug)]
pub struct SourceResource {
    pub resource: Resource,
    pub twin: Option<Twin>,
}

/// One entry of the user's mappings file: source id → target id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplicitMapping {
    pub source_id: String,
    pub target_id: String,
}

/// One rename recorded by ATG's name conflict validator in `name_mappings.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameMapping {
    pub original_name: String,
    pub new_name: String,
    pub resource_type: Option<String>,
}

/// What the naming rules need to know about the run.
#[derive(Clone, Debug, Default)]
pub struct MatchOptions {
    pub source_tenant_id: Option<String>,
    pub target_tenant_id: Option<String>,
}

impl MatchOptions {
    fn tenants_differ(&self) -> bool {
        match (&self.source_tenant_id, &self.target_tenant_id) {
            (Some(source), Some(target)) => !source.eq_ignore_ascii_case(target),
            _ => false,
        }
    }
}

/// Pairs, leftovers and what could not be used.
#[derive(Debug, Default)]
pub struct Matched {
    pub pairs: Vec<ResourcePair>,
    pub unmatched: Vec<Unmatched>,
    /// `name_mappings.json` entries that match no source.
    pub warnings: Vec<String>,
}

pub const KEY_VAULT: &str = "microsoft.keyvault/vaults";
pub const STORAGE_ACCOUNT: &str = "microsoft.storage/storageaccounts";
pub const WEB_SITE: &str = "microsoft.web/sites";
pub const CONTAINER_REGISTRY: &str = "microsoft.containerregistry/registries";
pub const COSMOS_ACCOUNT: &str = "microsoft.documentdb/databaseaccounts";

fn md5_hex(text: &str) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(32);
    for byte in Md5::digest(text.as_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Python's `text[:n]` on characters.
fn prefix(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// The name ATG's generate-iac plans for `twin` of `resource_type`, generated against the
/// subscription `subscription` (the Cosmos rule hashes it), with `crosses` telling whether the
/// target's subscription or tenant differs from the source's.
pub fn atg_planned_name(
    resource_type: &str,
    twin: &Twin,
    subscription: &str,
    crosses: bool,
) -> String {
    let tw = twin.name.as_str();
    let hash = || md5_hex(&twin.id);
    match resource_type.to_ascii_lowercase().as_str() {
        KEY_VAULT if crosses => format!("{}-{}", prefix(tw, 17), &hash()[..6]),
        STORAGE_ACCOUNT => format!("{}{}", prefix(tw, 18), &hash()[..6]),
        WEB_SITE => format!("{}{}", prefix(tw, 54), &hash()[..6]),
        CONTAINER_REGISTRY => format!("{}{}", prefix(tw, 44), &hash()[..6]),
        COSMOS_ACCOUNT => prefix(
            &format!("{tw}-{}", &md5_hex(subscription)[..8]).to_lowercase(),
            44,
        ),
        _ => tw.to_owned(),
    }
}

fn key(resource_type: &str, name: &str) -> (String, String) {
    (
        resource_type.to_ascii_lowercase(),
        name.to_ascii_lowercase(),
    )
}

fn subscription_of(resource: &Resource) -> String {
    resource
        .subscription_id
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether the type is a child type (`Microsoft.Sql/servers/databases`).
fn is_child_type(resource_type: &str) -> bool {
    resource_type.split('/').count() > 2
}

/// The id's `type/name` segments after the provider namespace, when it has them.
fn provider_segments(id: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    let at = parts
        .iter()
        .rposition(|p| p.eq_ignore_ascii_case("providers"))?;
    let rest = parts.get(at + 2..)?;
    (!rest.is_empty() && rest.len() % 2 == 0).then(|| rest.to_vec())
}

/// The name the rules compare: for a child resource its names from the id joined with `/`
/// (`server/database`), so that databases pair only under parents of the same name.
fn match_name(resource: &Resource) -> String {
    if is_child_type(&resource.resource_type) {
        if let Some(segments) = provider_segments(&resource.id) {
            let names: Vec<&str> = segments.iter().skip(1).step_by(2).copied().collect();
            return names.join("/");
        }
    }
    resource.name.clone()
}

/// A child resource's parent id (lowercased) and own name.
fn parent_of(resource: &Resource) -> Option<(String, String)> {
    if !is_child_type(&resource.resource_type) {
        return None;
    }
    let id = resource.id.trim_end_matches('/');
    let (rest, name) = id.rsplit_once('/')?;
    let (parent, _) = rest.rsplit_once('/')?;
    Some((parent.to_ascii_lowercase(), name.to_ascii_lowercase()))
}

/// Splits `name` into every (base, suffix) the suffix rule accepts: a 6–16 character
/// `[a-z0-9]` suffix, after an optional `-` (the suffix shown with it).
fn suffix_splits(name: &str) -> Vec<(&str, String)> {
    let mut splits = Vec::new();
    let bytes = name.as_bytes();
    for length in 6..=16usize {
        if bytes.len() <= length {
            break;
        }
        let suffix = &bytes[bytes.len() - length..];
        if !suffix
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            break;
        }
        let Some((base, suffix)) = name
            .is_char_boundary(name.len() - length)
            .then(|| name.split_at(name.len() - length))
        else {
            continue;
        };
        splits.push((base, suffix.to_owned()));
        if let Some(base) = base.strip_suffix('-').filter(|b| !b.is_empty()) {
            splits.push((base, format!("-{suffix}")));
        }
    }
    splits
}

/// One name ATG may have planned for a source's twin.
struct Planned {
    name: String,
    /// Targets in this subscription may carry it.
    target_subscription: String,
    /// The subscription hashed into it (Cosmos only).
    hashed: Option<String>,
}

/// Why a source was given up on before it was paired.
struct Closed {
    reason: String,
    /// What each of its candidates is told.
    rejects: String,
}

/// State of one matching run.
struct Matcher<'a> {
    sources: &'a [SourceResource],
    targets: &'a [Resource],
    source_open: Vec<bool>,
    target_open: Vec<bool>,
    source_closed: Vec<Option<Closed>>,
    target_reason: Vec<Option<String>>,
    /// Why an open target may end up unpaired (it was one of an ambiguous source's candidates).
    target_note: Vec<Option<String>>,
    pairs: Vec<(usize, usize, MatchRule, Evidence)>,
    /// The pair each source and target is in, by the other's index.
    source_pair: Vec<Option<(usize, MatchRule)>>,
    target_pair: Vec<Option<(usize, MatchRule)>>,
    /// Every edge a rule proposed, strongest rule first, once per (source, target), listed
    /// per source and per target.
    considered_by_source: Vec<Vec<(usize, MatchRule)>>,
    considered_by_target: Vec<Vec<(usize, MatchRule)>>,
    seen: HashSet<(usize, usize)>,
}

impl<'a> Matcher<'a> {
    fn new(sources: &'a [SourceResource], targets: &'a [Resource]) -> Self {
        Matcher {
            sources,
            targets,
            source_open: vec![true; sources.len()],
            target_open: vec![true; targets.len()],
            source_closed: sources.iter().map(|_| None).collect(),
            target_reason: vec![None; targets.len()],
            target_note: vec![None; targets.len()],
            pairs: Vec::new(),
            source_pair: vec![None; sources.len()],
            target_pair: vec![None; targets.len()],
            considered_by_source: vec![Vec::new(); sources.len()],
            considered_by_target: vec![Vec::new(); targets.len()],
            seen: HashSet::new(),
        }
    }

    fn same_resource(&self, s: usize, t: usize) -> bool {
        self.sources[s]
            .resource
            .id
            .eq_ignore_ascii_case(&self.targets[t].id)
    }

    fn close_source(&mut self, s: usize, reason: String, rejects: String) {
        self.source_open[s] = false;
        self.source_closed[s] = Some(Closed { reason, rejects });
    }

    /// Applies one rule's candidate edges: one-to-one edges become pairs; sources with several
    /// candidates and targets claimed several times are closed as ambiguous.
    fn settle(&mut self, rule: MatchRule, edges: Vec<(usize, usize, Evidence)>) {
        let mut open_edges: BTreeMap<(usize, usize), Evidence> = BTreeMap::new();
        for (s, t, evidence) in edges {
            if self.seen.insert((s, t)) {
                self.considered_by_source[s].push((t, rule));
                self.considered_by_target[t].push((s, rule));
            }
            if self.source_open[s] && self.target_open[t] && !self.same_resource(s, t) {
                open_edges.entry((s, t)).or_insert(evidence);
            }
        }
        let mut by_source: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut by_target: HashMap<usize, Vec<usize>> = HashMap::new();
        for (s, t) in open_edges.keys() {
            by_source.entry(*s).or_default().push(*t);
            by_target.entry(*t).or_default().push(*s);
        }
        let rule_name = rule.as_str();
        for (s, candidates) in by_source {
            if candidates.len() > 1 {
                let reason = format!(
                    "ambiguous ({rule_name}): several targets fit: {}",
                    Self::names(&candidates, |i| &self.targets[i])
                );
                self.close_source(
                    s,
                    reason,
                    format!("one of several targets fitting it ({rule_name})"),
                );
                for t in &candidates {
                    self.target_note[*t].get_or_insert_with(|| {
                        format!(
                            "left unpaired: one of several targets fitting source `{}` ({rule_name})",
                            self.sources[s].resource.id
                        )
                    });
                }
                continue;
            }
            let t = candidates[0];
            let claimants = &by_target[&t];
            if claimants.len() > 1 {
                let shown = Self::names(claimants, |i| &self.sources[i].resource);
                let reason = format!(
                    "ambiguous ({rule_name}): target `{}` fits several sources: {shown}",
                    self.targets[t].id,
                );
                self.close_source(s, reason, format!("it fits several sources ({rule_name})"));
                if self.target_open[t] {
                    self.target_open[t] = false;
                    self.target_reason[t] = Some(format!(
                        "ambiguous ({rule_name}): several sources fit: {shown}"
                    ));
                }
                continue;
            }
            let evidence = open_edges.remove(&(s, t)).unwrap_or_default();
            self.pairs.push((s, t, rule, evidence));
        }
        for (s, t, rule, _) in &self.pairs {
            self.source_open[*s] = false;
            self.target_open[*t] = false;
            self.source_pair[*s] = Some((*t, *rule));
            self.target_pair[*t] = Some((*s, *rule));
        }
    }

    fn names(indexes: &[usize], resource: impl Fn(usize) -> &'a Resource) -> String {
        let mut ids: Vec<&str> = indexes.iter().map(|i| resource(*i).id.as_str()).collect();
        ids.sort_unstable();
        let shown: Vec<String> = ids.iter().take(5).map(|id| format!("`{id}`")).collect();
        let more = ids.len().saturating_sub(5);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    }

    /// Why the candidate edge (s, t) did not become a pair, seen from the unmatched side.
    fn rejection(&self, s: usize, t: usize, side: &str) -> String {
        if self.same_resource(s, t) {
            return "it is the same resource".into();
        }
        if let (TARGET, Some((paired, rule))) = (side, self.source_pair[s]) {
            return format!(
                "the source was paired with `{}` ({rule})",
                self.targets[paired].name
            );
        }
        if let (SOURCE, Some((paired, rule))) = (side, self.target_pair[t]) {
            return format!(
                "the target was paired with `{}` ({rule})",
                self.sources[paired].resource.name
            );
        }
        if let Some(closed) = &self.source_closed[s] {
            return if side == TARGET {
                format!("the source was left unmatched: {}", closed.rejects)
            } else {
                closed.rejects.clone()
            };
        }
        if let Some(reason) = &self.target_reason[t] {
            return reason.clone();
        }
        "not one to one".into()
    }

    /// The candidates of unmatched source `s`, each with why it was rejected.
    fn source_candidates(&self, s: usize) -> Vec<Candidate> {
        self.considered_by_source[s]
            .iter()
            .map(|(t, rule)| {
                Self::candidate(&self.targets[*t], *rule, self.rejection(s, *t, SOURCE))
            })
            .collect()
    }

    /// The candidates of unmatched target `t`, each with why it was rejected.
    fn target_candidates(&self, t: usize) -> Vec<Candidate> {
        self.considered_by_target[t]
            .iter()
            .map(|(s, rule)| {
                Self::candidate(
                    &self.sources[*s].resource,
                    *rule,
                    self.rejection(*s, t, TARGET),
                )
            })
            .collect()
    }

    fn candidate(other: &Resource, match_rule: MatchRule, rejected: String) -> Candidate {
        Candidate {
            id: other.id.clone(),
            name: other.name.clone(),
            match_rule,
            rejected,
        }
    }
}

/// Pairs `sources` with `targets` by the rules above, moving them into the pairs (the graph's
/// properties are most of the memory of a large plan). A mapping that names an id found on
/// neither side is an error: the user asked for something that cannot be done.
pub fn match_resources(
    sources: Vec<SourceResource>,
    targets: Vec<Resource>,
    explicit: &[ExplicitMapping],
    name_mappings: &[NameMapping],
    options: &MatchOptions,
) -> Result<Matched, String> {
    let planned = plan(&sources, &targets, explicit, name_mappings, options)?;
    let mut sources: Vec<Option<Resource>> =
        sources.into_iter().map(|s| Some(s.resource)).collect();
    let mut targets: Vec<Option<Resource>> = targets.into_iter().map(Some).collect();
    let pairs = planned
        .pairs
        .into_iter()
        .filter_map(|(s, t, match_rule, evidence)| {
            Some(ResourcePair {
                source: sources[s].take()?,
                target: targets[t].take()?,
                match_rule,
                evidence,
            })
        })
        .collect();
    Ok(Matched {
        pairs,
        unmatched: planned.unmatched,
        warnings: planned.warnings,
    })
}

struct Plan {
    pairs: Vec<(usize, usize, MatchRule, Evidence)>,
    unmatched: Vec<Unmatched>,
    warnings: Vec<String>,
}

/// Rule 1: the user's mappings file.
fn explicit_edges(
    sources: &[SourceResource],
    targets: &[Resource],
    explicit: &[ExplicitMapping],
) -> Result<Vec<(usize, usize, Evidence)>, String> {
    if explicit.is_empty() {
        return Ok(Vec::new());
    }
    let source_ids: HashMap<String, usize> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (s.resource.id.to_ascii_lowercase(), i))
        .collect();
    let target_ids: HashMap<String, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.to_ascii_lowercase(), i))
        .collect();
    let mut edges = Vec::new();
    for mapping in explicit {
        let s = *source_ids
            .get(&mapping.source_id.to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "source `{}` is not among the source resources read",
                    mapping.source_id
                )
            })?;
        let t = *target_ids
            .get(&mapping.target_id.to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "target `{}` is not among the target resources read",
                    mapping.target_id
                )
            })?;
        if !sources[s]
            .resource
            .resource_type
            .eq_ignore_ascii_case(&targets[t].resource_type)
        {
            return Err(format!(
                "`{}` ({}) cannot be mapped to `{}` ({}): the types differ",
                mapping.source_id,
                sources[s].resource.resource_type,
                mapping.target_id,
                targets[t].resource_type
            ));
        }
        edges.push((s, t, Evidence::default()));
    }
    Ok(edges)
}

/// The names ATG may have planned for each source, per target subscription of its type.
fn planned_names(
    sources: &[SourceResource],
    targets: &[Resource],
    options: &MatchOptions,
) -> Vec<Vec<Planned>> {
    let mut subscriptions: HashMap<String, BTreeSet<String>> = HashMap::new();
    for target in targets {
        subscriptions
            .entry(target.resource_type.to_ascii_lowercase())
            .or_default()
            .insert(subscription_of(target));
    }
    sources
        .iter()
        .map(|source| {
            let mut planned = Vec::new();
            let Some(twin) = &source.twin else {
                return planned;
            };
            let resource_type = source.resource.resource_type.to_ascii_lowercase();
            let source_subscription = subscription_of(&source.resource);
            for target_subscription in subscriptions.get(&resource_type).into_iter().flatten() {
                let crosses =
                    options.tenants_differ() || *target_subscription != source_subscription;
                let cosmos = resource_type == COSMOS_ACCOUNT;
                let mut hashed = vec![target_subscription.clone()];
                if cosmos && *target_subscription != source_subscription {
                    hashed.push(source_subscription.clone());
                }
                for subscription in hashed {
                    planned.push(Planned {
                        name: atg_planned_name(&resource_type, twin, &subscription, crosses),
                        target_subscription: target_subscription.clone(),
                        hashed: cosmos.then_some(subscription),
                    });
                }
            }
            planned
        })
        .collect()
}

/// Targets by (type, name), lowercased, with `name` as `name_of` gives it.
fn target_index(
    targets: &[Resource],
    name_of: impl Fn(&Resource) -> String,
) -> HashMap<(String, String), Vec<usize>> {
    let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (t, target) in targets.iter().enumerate() {
        index
            .entry(key(&target.resource_type, &name_of(target)))
            .or_default()
            .push(t);
    }
    index
}

/// Rule 2: `name_mappings.json`. Edges for the sources an entry names, and the sources it names
/// that cannot be paired by it (closed with the reason); `used[i]` tells whether entry i named
/// a source.
fn name_mapping_rule(
    matcher: &mut Matcher<'_>,
    name_mappings: &[NameMapping],
    planned: &[Vec<Planned>],
    by_name: &HashMap<(String, String), Vec<usize>>,
) -> Vec<bool> {
    let mut used = vec![false; name_mappings.len()];
    if name_mappings.is_empty() {
        return used;
    }
    let mut by_original: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, mapping) in name_mappings.iter().enumerate() {
        by_original
            .entry(mapping.original_name.to_ascii_lowercase())
            .or_default()
            .push(i);
    }
    let sources = matcher.sources;
    let mut edges = Vec::new();
    let mut decided: Vec<(usize, Vec<(usize, Evidence)>)> = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        let resource_type = &source.resource.resource_type;
        let mut keys: Vec<(String, &'static str, Option<&str>)> =
            vec![(source.resource.name.clone(), "source_name", None)];
        keys.extend(
            planned[s]
                .iter()
                .map(|p| (p.name.clone(), "planned_name", Some(p.name.as_str()))),
        );
        let mut entries: Vec<(usize, Evidence)> = Vec::new();
        for (name, keyed_by, planned_name) in keys {
            for &i in by_original
                .get(&name.to_ascii_lowercase())
                .into_iter()
                .flatten()
            {
                let mapping = &name_mappings[i];
                let type_fits = mapping
                    .resource_type
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(resource_type));
                if !type_fits || entries.iter().any(|(e, _)| *e == i) {
                    continue;
                }
                used[i] = true;
                entries.push((
                    i,
                    Evidence {
                        name_mapping: Some(NameMappingEntry {
                            original_name: mapping.original_name.clone(),
                            new_name: mapping.new_name.clone(),
                            keyed_by,
                        }),
                        planned_name: planned_name.map(str::to_owned),
                        ..Evidence::default()
                    },
                ));
            }
        }
        if entries.is_empty() {
            continue;
        }
        for (i, evidence) in &entries {
            let found = by_name.get(&key(resource_type, &name_mappings[*i].new_name));
            for t in found.into_iter().flatten() {
                edges.push((s, *t, evidence.clone()));
            }
        }
        decided.push((s, entries));
    }
    // Entries that disagree decide nothing but the source's fate.
    let mut disagreeing = Vec::new();
    for (s, entries) in &decided {
        let new_names: BTreeSet<String> = entries
            .iter()
            .map(|(i, _)| name_mappings[*i].new_name.to_ascii_lowercase())
            .collect();
        if new_names.len() > 1 {
            disagreeing.push(*s);
        }
    }
    edges.retain(|(s, _, _)| !disagreeing.contains(s));
    matcher.settle(MatchRule::AtgNameMapping, edges);
    for (s, entries) in decided {
        if !matcher.source_open[s] {
            continue;
        }
        let shown: Vec<String> = entries
            .iter()
            .map(|(i, _)| {
                format!(
                    "`{}` -> `{}`",
                    name_mappings[*i].original_name, name_mappings[*i].new_name
                )
            })
            .collect();
        let (reason, rejects) = if disagreeing.contains(&s) {
            (
                format!(
                    "ambiguous (atg_name_mapping): name_mappings.json has several entries for it: {}",
                    shown.join(", ")
                ),
                "name_mappings.json has several entries for it".to_owned(),
            )
        } else {
            let new_name = &name_mappings[entries[0].0].new_name;
            let exists = by_name
                .get(&key(&sources[s].resource.resource_type, new_name))
                .is_some_and(|found| !found.is_empty());
            let why = if exists {
                "which is paired with another source or fits several"
            } else {
                "and no target of that name was read"
            };
            (
                format!(
                    "name_mappings.json maps it to `{new_name}` ({}), {why}; it is not paired by a weaker rule",
                    shown.join(", ")
                ),
                format!("its name_mappings.json entry names `{new_name}`, and that entry wins"),
            )
        };
        matcher.close_source(s, reason, rejects);
    }
    used
}

fn plan(
    sources: &[SourceResource],
    targets: &[Resource],
    explicit: &[ExplicitMapping],
    name_mappings: &[NameMapping],
    options: &MatchOptions,
) -> Result<Plan, String> {
    let mut matcher = Matcher::new(sources, targets);
    let planned = planned_names(sources, targets, options);
    let by_name = target_index(targets, |t| t.name.clone());

    // 1. The user's mappings.
    matcher.settle(
        MatchRule::Mapping,
        explicit_edges(sources, targets, explicit)?,
    );

    // 2. ATG's name_mappings.json.
    let used = name_mapping_rule(&mut matcher, name_mappings, &planned, &by_name);
    let warnings = name_mappings
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(mapping, _)| {
            format!(
                "name_mappings.json entry `{}` -> `{}` matches no source resource (neither a name nor ATG's planned name for one{})",
                mapping.original_name,
                mapping.new_name,
                mapping
                    .resource_type
                    .as_deref()
                    .map_or_else(String::new, |t| format!(" of type {t}"))
            )
        })
        .collect();

    // 3. Same type, same name.
    let by_match_name = target_index(targets, match_name);
    let mut edges = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        let found = by_match_name.get(&key(
            &source.resource.resource_type,
            &match_name(&source.resource),
        ));
        edges.extend(
            found
                .into_iter()
                .flatten()
                .map(|t| (s, *t, Evidence::default())),
        );
    }
    matcher.settle(MatchRule::ExactName, edges);

    // 4. ATG's naming.
    let mut edges = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        for planned in &planned[s] {
            let found = by_name.get(&key(&source.resource.resource_type, &planned.name));
            let in_subscription = found
                .into_iter()
                .flatten()
                .filter(|t| subscription_of(&targets[**t]) == planned.target_subscription);
            edges.extend(in_subscription.map(|t| {
                (
                    s,
                    *t,
                    Evidence {
                        planned_name: Some(planned.name.clone()),
                        planned_for_subscription: planned.hashed.clone(),
                        ..Evidence::default()
                    },
                )
            }));
        }
    }
    matcher.settle(MatchRule::AtgNaming, edges);

    // 5. Name plus an optional `-` and a 6–16 character [a-z0-9] suffix.
    let mut bases: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (s, source) in sources.iter().enumerate() {
        let mut names = vec![match_name(&source.resource)];
        if let Some(twin) = &source.twin {
            names.push(twin.name.clone());
        }
        let unique: BTreeSet<(String, String)> = names
            .iter()
            .map(|n| key(&source.resource.resource_type, n))
            .collect();
        for base in unique {
            bases.entry(base).or_default().push(s);
        }
    }
    let mut edges = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        let name = match_name(target);
        for (base, suffix) in suffix_splits(&name) {
            for s in bases
                .get(&key(&target.resource_type, base))
                .into_iter()
                .flatten()
            {
                let evidence = Evidence {
                    base: Some(base.to_owned()),
                    suffix: Some(suffix.clone()),
                    ..Evidence::default()
                };
                edges.push((*s, t, evidence));
            }
        }
    }
    matcher.settle(MatchRule::Suffix, edges);

    // 6. Children under their parents' targets.
    let parent_pairs: HashMap<String, (usize, MatchRule)> = matcher
        .pairs
        .iter()
        .map(|(s, t, rule, _)| (sources[*s].resource.id.to_ascii_lowercase(), (*t, *rule)))
        .collect();
    let mut children: HashMap<(String, String, String), Vec<usize>> = HashMap::new();
    for (t, target) in targets.iter().enumerate() {
        if let Some((parent, name)) = parent_of(target) {
            children
                .entry((target.resource_type.to_ascii_lowercase(), parent, name))
                .or_default()
                .push(t);
        }
    }
    let mut edges = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        let Some((parent, name)) = parent_of(&source.resource) else {
            continue;
        };
        let Some((parent_target, parent_rule)) = parent_pairs.get(&parent) else {
            continue;
        };
        let parent_target = &targets[*parent_target];
        let child_key = (
            source.resource.resource_type.to_ascii_lowercase(),
            parent_target.id.to_ascii_lowercase(),
            name,
        );
        for t in children.get(&child_key).into_iter().flatten() {
            let evidence = Evidence {
                parent: Some(ParentPair {
                    source_id: source
                        .resource
                        .id
                        .get(..parent.len())
                        .unwrap_or(&parent)
                        .to_owned(),
                    target_id: parent_target.id.clone(),
                    match_rule: Some(*parent_rule),
                }),
                ..Evidence::default()
            };
            edges.push((s, *t, evidence));
        }
    }
    matcher.settle(MatchRule::Parent, edges);

    let unmatched = leftovers(&matcher);
    let mut pairs = std::mem::take(&mut matcher.pairs);
    pairs.sort_by_key(|(s, _, _, _)| *s);
    Ok(Plan {
        pairs,
        unmatched,
        warnings,
    })
}

/// Every source and target left unpaired, with why and the candidates that were rejected.
fn leftovers(matcher: &Matcher<'_>) -> Vec<Unmatched> {
    let (sources, targets) = (matcher.sources, matcher.targets);
    let typed: HashSet<String> = targets
        .iter()
        .map(|t| t.resource_type.to_ascii_lowercase())
        .collect();
    let mut unmatched = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        if matcher.source_pair[s].is_some() {
            continue;
        }
        let candidates = matcher.source_candidates(s);
        let reason = match &matcher.source_closed[s] {
            Some(closed) => closed.reason.clone(),
            None if !candidates.is_empty() => {
                "no candidate could be paired with it (see the candidates)".into()
            }
            None if typed.contains(&source.resource.resource_type.to_ascii_lowercase()) => {
                let atg = if source.twin.is_some() {
                    "ATG's name for its twin"
                } else {
                    "no abstracted twin in the graph, so no ATG name"
                };
                format!(
                    "no target matches: tried name_mappings.json, the same name, {atg}, and a 6–16 character suffix"
                )
            }
            None => format!(
                "no target of type {} was read",
                source.resource.resource_type
            ),
        };
        let mut entry = Unmatched::new(SOURCE, &source.resource, reason);
        entry.candidates = candidates;
        unmatched.push(entry);
    }
    for (t, target) in targets.iter().enumerate() {
        if matcher.target_pair[t].is_some() {
            continue;
        }
        let candidates = matcher.target_candidates(t);
        let reason = matcher.target_reason[t]
            .clone()
            .or_else(|| matcher.target_note[t].clone())
            .unwrap_or_else(|| {
                if candidates.is_empty() {
                    "no source resource matches it".into()
                } else {
                    "no candidate could be paired with it (see the candidates)".into()
                }
            });
        let mut entry = Unmatched::new(TARGET, target, reason);
        entry.candidates = candidates;
        unmatched.push(entry);
    }
    unmatched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Properties;

    const SOURCE_SUB: &str = "00000000-0000-4000-8000-00000000000a";
    const TARGET_SUB: &str = "00000000-0000-4000-8000-00000000000b";

    fn resource(subscription: &str, resource_type: &str, name: &str) -> Resource {
        Resource {
            id: format!(
                "/subscriptions/{subscription}/resourceGroups/rg/providers/{resource_type}/{name}"
            ),
            resource_type: resource_type.into(),
            name: name.into(),
            subscription_id: Some(subscription.into()),
            resource_group: Some("rg".into()),
            properties: Properties::Missing,
            options: serde_json::Map::new(),
        }
    }

    fn source(resource_type: &str, name: &str, twin: Option<&str>) -> SourceResource {
        SourceResource {
            resource: resource(SOURCE_SUB, resource_type, name),
            twin: twin.map(|t| Twin {
                id: t.into(),
                name: t.into(),
            }),
        }
    }

    fn target(resource_type: &str, name: &str) -> Resource {
        resource(TARGET_SUB, resource_type, name)
    }

    fn run(sources: &[SourceResource], targets: &[Resource]) -> Matched {
        match_resources(
            sources.to_vec(),
            targets.to_vec(),
            &[],
            &[],
            &MatchOptions::default(),
        )
        .unwrap()
    }

    fn run_with(
        sources: &[SourceResource],
        targets: &[Resource],
        name_mappings: &[NameMapping],
    ) -> Matched {
        match_resources(
            sources.to_vec(),
            targets.to_vec(),
            &[],
            name_mappings,
            &MatchOptions::default(),
        )
        .unwrap()
    }

    fn pair_names(matched: &Matched) -> Vec<(String, String, MatchRule)> {
        matched
            .pairs
            .iter()
            .map(|p| (p.source.name.clone(), p.target.name.clone(), p.match_rule))
            .collect()
    }

    const KV: &str = "Microsoft.KeyVault/vaults";

    #[test]
    fn md5_matches_python_hashlib() {
        // python3 -c 'import hashlib; print(hashlib.md5(b"vault-0123456789abcdef").hexdigest())'
        assert_eq!(
            md5_hex("vault-0123456789abcdef"),
            "b7bf97ed717850299bff65c84ac798ca"
        );
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn atg_names_follow_each_types_rule() {
        let twin = Twin {
            id: "vault-0123456789abcdef".into(),
            name: "vault-0123456789abcdef".into(),
        };
        let hash = md5_hex(&twin.id);
        assert_eq!(
            atg_planned_name(KV, &twin, TARGET_SUB, true),
            format!("vault-0123456789a-{}", &hash[..6])
        );
        assert_eq!(atg_planned_name(KV, &twin, TARGET_SUB, false), twin.name);
        assert_eq!(
            atg_planned_name("Microsoft.Storage/storageAccounts", &twin, TARGET_SUB, true),
            format!("vault-0123456789ab{}", &hash[..6])
        );
        let long = Twin {
            id: "x".repeat(70),
            name: "x".repeat(70),
        };
        let long_hash = md5_hex(&long.id);
        assert_eq!(
            atg_planned_name("Microsoft.Web/sites", &long, TARGET_SUB, false),
            format!("{}{}", "x".repeat(54), &long_hash[..6])
        );
        assert_eq!(
            atg_planned_name(
                "Microsoft.ContainerRegistry/registries",
                &long,
                TARGET_SUB,
                false
            ),
            format!("{}{}", "x".repeat(44), &long_hash[..6])
        );
        let cosmos = Twin {
            id: "Cosmos-ABC".into(),
            name: "Cosmos-ABC".into(),
        };
        assert_eq!(
            atg_planned_name(
                "Microsoft.DocumentDB/databaseAccounts",
                &cosmos,
                TARGET_SUB,
                false
            ),
            format!("cosmos-abc-{}", &md5_hex(TARGET_SUB)[..8])
        );
        assert_eq!(
            atg_planned_name("Microsoft.Compute/virtualMachines", &twin, TARGET_SUB, true),
            twin.name
        );
    }

    #[test]
    fn exact_names_pair_case_insensitively_by_type() {
        let matched = run(
            &[source(KV, "Shared-KV", None)],
            &[
                target(KV, "shared-kv"),
                target("Microsoft.Storage/storageAccounts", "shared-kv"),
            ],
        );
        assert_eq!(
            pair_names(&matched),
            vec![("Shared-KV".into(), "shared-kv".into(), MatchRule::ExactName)]
        );
        assert_eq!(matched.unmatched.len(), 1);
        assert_eq!(matched.unmatched[0].side, TARGET);
        assert_eq!(
            matched.unmatched[0].resource_type,
            "Microsoft.Storage/storageAccounts"
        );
    }

    #[test]
    fn atg_naming_pairs_through_the_twin_across_subscriptions() {
        let twin = "vault-0123456789abcdef";
        let planned = format!("vault-0123456789a-{}", &md5_hex(twin)[..6]);
        let matched = run(
            &[source(KV, "prod-kv", Some(twin))],
            &[target(KV, &planned), target(KV, "unrelated")],
        );
        assert_eq!(
            pair_names(&matched),
            vec![("prod-kv".into(), planned, MatchRule::AtgNaming)]
        );
        // In the same subscription and tenant, ATG keeps the twin's name.
        let same = SourceResource {
            resource: resource(TARGET_SUB, KV, "prod-kv"),
            twin: Some(Twin {
                id: twin.into(),
                name: twin.into(),
            }),
        };
        let matched = run(&[same], &[target(KV, twin)]);
        assert_eq!(matched.pairs.len(), 1);
        assert_eq!(matched.pairs[0].match_rule, MatchRule::AtgNaming);
    }

    #[test]
    fn a_tenant_change_alone_suffixes_key_vault_names() {
        let twin = "vault-0123456789abcdef";
        let same_sub = SourceResource {
            resource: resource(TARGET_SUB, KV, "prod-kv"),
            twin: Some(Twin {
                id: twin.into(),
                name: twin.into(),
            }),
        };
        let planned = format!("vault-0123456789a-{}", &md5_hex(twin)[..6]);
        let options = MatchOptions {
            source_tenant_id: Some("tenant-a".into()),
            target_tenant_id: Some("tenant-b".into()),
        };
        let matched = match_resources(
            vec![same_sub.clone()],
            vec![target(KV, &planned)],
            &[],
            &[],
            &options,
        )
        .unwrap();
        assert_eq!(matched.pairs[0].match_rule, MatchRule::AtgNaming);
        let matched = run(&[same_sub], &[target(KV, &planned)]);
        assert!(matched.pairs.is_empty(), "{:?}", matched.unmatched);
    }

    #[test]
    fn name_mappings_follow_atg_conflict_renames() {
        let twin = "storage-00112233445566";
        let planned = format!("{}{}", prefix(twin, 18), &md5_hex(twin)[..6]);
        let renamed = format!("{}-copy", prefix(&planned, 19));
        let mappings = [NameMapping {
            original_name: planned.clone(),
            new_name: renamed.clone(),
            resource_type: Some("Microsoft.Storage/storageAccounts".into()),
        }];
        let sources = [source(
            "Microsoft.Storage/storageAccounts",
            "prodstore",
            Some(twin),
        )];
        let targets = [target("Microsoft.Storage/storageAccounts", &renamed)];
        let matched = run_with(&sources, &targets, &mappings);
        assert_eq!(
            pair_names(&matched),
            vec![("prodstore".into(), renamed, MatchRule::AtgNameMapping)]
        );
        // Without the file nothing pairs: the rename is not guessed.
        let matched = run(&sources, &targets);
        assert!(matched.pairs.is_empty());
        assert_eq!(matched.unmatched.len(), 2);
    }

    #[test]
    fn a_name_mappings_entry_keyed_by_the_real_name_beats_a_look_alike() {
        const STORAGE: &str = "Microsoft.Storage/storageAccounts";
        let mappings = [NameMapping {
            original_name: "stprodmedia".into(),
            new_name: "stprodmediacopy".into(),
            resource_type: Some(STORAGE.into()),
        }];
        let sources = [source(STORAGE, "stprodmedia", None)];
        let matched = match_resources(
            sources.to_vec(),
            vec![
                target(STORAGE, "stprodmedia5da01d"),
                target(STORAGE, "stprodmediacopy"),
            ],
            &[],
            &mappings,
            &MatchOptions::default(),
        )
        .unwrap();
        assert_eq!(
            pair_names(&matched),
            vec![(
                "stprodmedia".into(),
                "stprodmediacopy".into(),
                MatchRule::AtgNameMapping
            )]
        );
        // The entry's target is missing: the source stays unmatched, never paired by a weaker rule.
        let matched = run_with(&sources, &[target(STORAGE, "stprodmedia5da01d")], &mappings);
        assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
        let source = matched.unmatched.iter().find(|u| u.side == SOURCE).unwrap();
        assert!(
            source
                .reason
                .contains("name_mappings.json maps it to `stprodmediacopy`"),
            "{}",
            source.reason
        );
    }

    #[test]
    fn a_random_suffix_of_6_to_16_characters_pairs_last() {
        let matched = run(
            &[
                source(KV, "app-kv", None),
                source(KV, "other", Some("vault-ffff")),
            ],
            &[
                target(KV, "app-kvx7k2p9q"),
                target(KV, "vault-ffffa1b2c3d4"),
            ],
        );
        assert_eq!(
            pair_names(&matched),
            vec![
                ("app-kv".into(), "app-kvx7k2p9q".into(), MatchRule::Suffix),
                (
                    "other".into(),
                    "vault-ffffa1b2c3d4".into(),
                    MatchRule::Suffix
                )
            ]
        );
        for bad in [
            "app-kvabcde",
            "app-kvABCDEF",
            "app-kv--abcdef",
            "app-kv-abcde",
            "app-kv0123456789abcdefg",
        ] {
            let matched = run(&[source(KV, "app-kv", None)], &[target(KV, bad)]);
            assert!(matched.pairs.is_empty(), "{bad} must not pair");
        }
    }

    #[test]
    fn the_suffix_may_follow_a_hyphen_and_the_plan_shows_it() {
        let matched = run(
            &[source(KV, "kv-prod-core", None)],
            &[target(KV, "kv-prod-core-a1b2c3")],
        );
        assert_eq!(
            pair_names(&matched),
            vec![(
                "kv-prod-core".into(),
                "kv-prod-core-a1b2c3".into(),
                MatchRule::Suffix
            )]
        );
        let evidence = &matched.pairs[0].evidence;
        assert_eq!(evidence.base.as_deref(), Some("kv-prod-core"));
        assert_eq!(evidence.suffix.as_deref(), Some("-a1b2c3"));
        // With and without the hyphen: two candidates, ambiguous, no tie-break by length.
        let matched = run(
            &[source(KV, "kv-prod", None)],
            &[target(KV, "kv-prod-a1b2c3"), target(KV, "kv-proda1b2c3d4")],
        );
        assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
        let source = &matched.unmatched[0];
        assert!(
            source.reason.starts_with("ambiguous (suffix)"),
            "{}",
            source.reason
        );
        let candidates: Vec<(&str, &str)> = source
            .candidates
            .iter()
            .map(|c| (c.name.as_str(), c.rejected.as_str()))
            .collect();
        assert_eq!(
            candidates,
            vec![
                (
                    "kv-prod-a1b2c3",
                    "one of several targets fitting it (suffix)"
                ),
                (
                    "kv-proda1b2c3d4",
                    "one of several targets fitting it (suffix)"
                ),
            ]
        );
    }

    #[test]
    fn unused_name_mappings_are_warnings_and_disagreeing_ones_decide_nothing() {
        let mappings = [
            NameMapping {
                original_name: "gone-kv".into(),
                new_name: "gone-kv-copy".into(),
                resource_type: None,
            },
            NameMapping {
                original_name: "twice-kv".into(),
                new_name: "twice-kv-copy".into(),
                resource_type: None,
            },
            NameMapping {
                original_name: "twice-kv".into(),
                new_name: "twice-kv-other".into(),
                resource_type: Some(KV.into()),
            },
        ];
        let matched = run_with(
            &[source(KV, "twice-kv", None)],
            &[target(KV, "twice-kv-copy"), target(KV, "twice-kv")],
            &mappings,
        );
        assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
        assert!(matched.unmatched[0]
            .reason
            .starts_with("ambiguous (atg_name_mapping): name_mappings.json has several entries"));
        assert_eq!(matched.warnings.len(), 1, "{:?}", matched.warnings);
        assert!(matched.warnings[0].starts_with(
            "name_mappings.json entry `gone-kv` -> `gone-kv-copy` matches no source resource"
        ));
    }

    #[test]
    fn cosmos_names_hashed_from_both_subscriptions_are_ambiguous() {
        const COSMOS: &str = "Microsoft.DocumentDB/databaseAccounts";
        let twin = Twin {
            id: "orders-0011".into(),
            name: "orders-0011".into(),
        };
        let for_target = atg_planned_name(COSMOS, &twin, TARGET_SUB, true);
        let for_source = atg_planned_name(COSMOS, &twin, SOURCE_SUB, true);
        let sources = [source(COSMOS, "orders", Some("orders-0011"))];
        let matched = run(&sources, &[target(COSMOS, &for_source)]);
        assert_eq!(matched.pairs[0].match_rule, MatchRule::AtgNaming);
        assert_eq!(
            matched.pairs[0]
                .evidence
                .planned_for_subscription
                .as_deref(),
            Some(SOURCE_SUB)
        );
        let matched = run(
            &sources,
            &[target(COSMOS, &for_target), target(COSMOS, &for_source)],
        );
        assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
        let names: Vec<&str> = matched.unmatched[0]
            .candidates
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains(&for_target.as_str()) && names.contains(&for_source.as_str()));
    }

    #[test]
    fn databases_pair_through_their_renamed_server() {
        const SERVER: &str = "Microsoft.Sql/servers";
        const DATABASE: &str = "Microsoft.Sql/servers/databases";
        let database = |subscription: &str, server: &str, name: &str| {
            let mut database = resource(subscription, DATABASE, name);
            database.id = format!(
                "/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Sql/servers/{server}/databases/{name}"
            );
            database
        };
        let sources = vec![
            source(SERVER, "sql-prod", None),
            SourceResource {
                resource: database(SOURCE_SUB, "sql-prod", "orders"),
                twin: None,
            },
        ];
        let targets = vec![
            target(SERVER, "sql-prod-copy"),
            target(SERVER, "sql-other"),
            database(TARGET_SUB, "sql-prod-copy", "orders"),
            database(TARGET_SUB, "sql-other", "orders"),
        ];
        let mappings = [NameMapping {
            original_name: "sql-prod".into(),
            new_name: "sql-prod-copy".into(),
            resource_type: Some(SERVER.into()),
        }];
        let matched =
            match_resources(sources, targets, &[], &mappings, &MatchOptions::default()).unwrap();
        assert_eq!(
            pair_names(&matched),
            vec![
                (
                    "sql-prod".into(),
                    "sql-prod-copy".into(),
                    MatchRule::AtgNameMapping
                ),
                ("orders".into(), "orders".into(), MatchRule::Parent),
            ]
        );
        let parent = matched.pairs[1].evidence.parent.as_ref().unwrap();
        assert!(parent.target_id.ends_with("/sql-prod-copy"));
        assert!(matched.pairs[1]
            .target
            .id
            .contains("/servers/sql-prod-copy/"));
    }

    #[test]
    fn a_source_is_never_paired_with_itself() {
        let same = source(KV, "kv", None);
        let matched = run(
            std::slice::from_ref(&same),
            std::slice::from_ref(&same.resource),
        );
        assert!(matched.pairs.is_empty());
        assert_eq!(
            matched.unmatched[0].candidates[0].rejected,
            "it is the same resource"
        );
    }

    #[test]
    fn ambiguity_is_reported_and_never_resolved_by_a_weaker_rule() {
        // Two targets fit one source by suffix.
        let matched = run(
            &[source(KV, "app-kv", None)],
            &[target(KV, "app-kvaaaaaa"), target(KV, "app-kvbbbbbb")],
        );
        assert!(matched.pairs.is_empty());
        let reasons: Vec<&str> = matched
            .unmatched
            .iter()
            .map(|u| u.reason.as_str())
            .collect();
        assert!(
            reasons[0].starts_with("ambiguous (suffix): several targets fit"),
            "{reasons:?}"
        );
        // Two sources (same name, two subscriptions) claim one target by name: neither gets it,
        // not even through the suffix rule afterwards.
        let mut second = source(KV, "shared", None);
        second.resource.id = second.resource.id.replace(SOURCE_SUB, "other-sub");
        let matched = run(
            &[source(KV, "shared", None), second],
            &[target(KV, "shared"), target(KV, "sharedabcdef")],
        );
        assert!(matched.pairs.is_empty(), "{:?}", pair_names(&matched));
        let target_reason = matched
            .unmatched
            .iter()
            .find(|u| u.side == TARGET && u.name == "shared")
            .unwrap();
        assert!(target_reason
            .reason
            .starts_with("ambiguous (exact_name): several sources fit"));
    }

    #[test]
    fn explicit_mappings_win_and_bad_ones_are_errors() {
        let sources = [source(KV, "a", None), source(KV, "b", None)];
        let targets = [target(KV, "a"), target(KV, "b")];
        let crossed = [ExplicitMapping {
            source_id: sources[0].resource.id.to_uppercase(),
            target_id: targets[1].id.clone(),
        }];
        let matched = match_resources(
            sources.to_vec(),
            targets.to_vec(),
            &crossed,
            &[],
            &MatchOptions::default(),
        )
        .unwrap();
        assert_eq!(
            pair_names(&matched),
            vec![
                ("a".into(), "b".into(), MatchRule::Mapping),
                // `b` lost its namesake to the mapping; `a` (the target) is left.
            ]
        );
        assert_eq!(matched.unmatched.len(), 2);
        let missing = [ExplicitMapping {
            source_id: "/subscriptions/x/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/zz"
                .into(),
            target_id: targets[0].id.clone(),
        }];
        let error = match_resources(
            sources.to_vec(),
            targets.to_vec(),
            &missing,
            &[],
            &MatchOptions::default(),
        )
        .unwrap_err();
        assert!(
            error.contains("is not among the source resources"),
            "{error}"
        );
    }

    #[test]
    fn leftovers_say_what_was_tried() {
        let matched = run(
            &[
                source(KV, "lonely", Some("vault-1")),
                source("Microsoft.Compute/virtualMachines", "vm", None),
            ],
            &[target(KV, "nothing-alike")],
        );
        let reasons: Vec<(&str, &str)> = matched
            .unmatched
            .iter()
            .map(|u| (u.name.as_str(), u.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 3);
        assert!(reasons[0].1.contains("the same name, ATG's name"));
        assert!(reasons[1]
            .1
            .contains("no target of type Microsoft.Compute/virtualMachines"));
        assert_eq!(
            reasons[2],
            ("nothing-alike", "no source resource matches it")
        );
    }
}
