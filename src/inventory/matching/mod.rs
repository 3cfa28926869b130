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

use std::collections::{BTreeSet, HashMap};

mod matcher;
mod naming;

use matcher::{leftovers, Matcher, Planned};
pub use naming::atg_planned_name;
use naming::{key, match_name, parent_of, subscription_of, suffix_splits};

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

#[cfg(test)]
mod tests;
