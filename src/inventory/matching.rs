//! Pairs source resources (ATG's graph) with deployed targets (Terraform state, or the graph),
//! in order, never guessing:
//!
//! 1. the user's mappings file (`--mappings`): source id → target id;
//! 2. same type (compared case-insensitively) and the same name;
//! 3. ATG's own naming: generate-iac names a target from the source's abstracted twin `tw`
//!    (rysweet/azure-tenant-grapher, src/iac/emitters/terraform/handlers/, as issue 4 gives it
//!    for commit 35e414ab): Key Vault `tw[:17] + "-" + md5(tw)[:6]` when the target
//!    subscription or tenant differs, else `tw`; storage account `tw[:18] + md5(tw)[:6]`; web
//!    and function apps `tw[:54] + md5(tw)[:6]`; container registry `tw[:44] + md5(tw)[:6]`;
//!    Cosmos account `lower(tw + "-" + md5(target subscription id)[:8])[:44]`; other types
//!    `tw`. The prefix comes from the twin's name and the hash from the twin's id, as ATG's Key
//!    Vault handler hashes the abstracted resource's id (ATG's graph gives both the same value).
//!    A planned name ATG renamed for a conflict is followed through `name_mappings.json`
//!    (`original_name` = planned name → `new_name`);
//! 4. same type where the target name is the source's (or its twin's) name plus a 6–16
//!    character `[a-z0-9]` suffix.
//!
//! At each rule a pair is made only when it is one to one: a source with several candidates,
//! or a target claimed by several sources, is listed as unmatched with the candidates and
//! takes no part in the weaker rules. Names compare case-insensitively, as ARM's do.
//! Everything left over is listed as unmatched with what was tried.

use std::collections::{BTreeSet, HashMap, HashSet};

use md5::{Digest, Md5};

use super::{MatchRule, Resource, ResourcePair, Unmatched, SOURCE, TARGET};

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

/// Pairs and leftovers.
#[derive(Debug, Default)]
pub struct Matched {
    pub pairs: Vec<ResourcePair>,
    pub unmatched: Vec<Unmatched>,
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

/// The name ATG's generate-iac plans for `twin` of `resource_type`, deployed into a target
/// whose subscription is `target_subscription`, with `crosses` telling whether the target's
/// subscription or tenant differs from the source's.
pub fn atg_planned_name(
    resource_type: &str,
    twin: &Twin,
    target_subscription: &str,
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
            &format!("{tw}-{}", &md5_hex(target_subscription)[..8]).to_lowercase(),
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

/// State of one matching run.
struct Matcher<'a> {
    sources: &'a [SourceResource],
    targets: &'a [Resource],
    source_open: Vec<bool>,
    target_open: Vec<bool>,
    /// Why each source was given up on, when it was (ambiguity).
    source_reason: Vec<Option<String>>,
    target_reason: Vec<Option<String>>,
    /// Why an open target may end up unpaired (it was one of an ambiguous source's candidates).
    target_note: Vec<Option<String>>,
    pairs: Vec<(usize, usize, MatchRule)>,
}

impl<'a> Matcher<'a> {
    fn new(sources: &'a [SourceResource], targets: &'a [Resource]) -> Self {
        Matcher {
            sources,
            targets,
            source_open: vec![true; sources.len()],
            target_open: vec![true; targets.len()],
            source_reason: vec![None; sources.len()],
            target_reason: vec![None; targets.len()],
            target_note: vec![None; targets.len()],
            pairs: Vec::new(),
        }
    }

    /// Applies one rule's candidate edges: one-to-one edges become pairs; sources with several
    /// candidates and targets claimed several times are closed as ambiguous.
    fn settle(&mut self, rule: MatchRule, edges: Vec<(usize, usize)>) {
        let edges: BTreeSet<(usize, usize)> = edges
            .into_iter()
            .filter(|(s, t)| self.source_open[*s] && self.target_open[*t])
            .collect();
        let mut by_source: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut by_target: HashMap<usize, Vec<usize>> = HashMap::new();
        for (s, t) in &edges {
            by_source.entry(*s).or_default().push(*t);
            by_target.entry(*t).or_default().push(*s);
        }
        let rule_name = rule.as_str();
        let mut sources: Vec<usize> = by_source.keys().copied().collect();
        sources.sort_unstable();
        for s in sources {
            let candidates = &by_source[&s];
            if candidates.len() > 1 {
                self.source_open[s] = false;
                self.source_reason[s] = Some(format!(
                    "ambiguous ({rule_name}): several targets fit: {}",
                    Self::names(candidates, |i| &self.targets[i])
                ));
                for t in candidates {
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
                self.source_open[s] = false;
                self.source_reason[s] = Some(format!(
                    "ambiguous ({rule_name}): target `{}` fits several sources: {}",
                    self.targets[t].id,
                    Self::names(claimants, |i| &self.sources[i].resource)
                ));
                if self.target_open[t] {
                    self.target_open[t] = false;
                    self.target_reason[t] = Some(format!(
                        "ambiguous ({rule_name}): several sources fit: {}",
                        Self::names(claimants, |i| &self.sources[i].resource)
                    ));
                }
                continue;
            }
            self.pairs.push((s, t, rule));
        }
        for (s, t, _) in &self.pairs {
            self.source_open[*s] = false;
            self.target_open[*t] = false;
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

    /// Open targets by (type, name), lowercased.
    fn target_index(&self) -> HashMap<(String, String), Vec<usize>> {
        let mut index: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (t, target) in self.targets.iter().enumerate() {
            if self.target_open[t] {
                index
                    .entry(key(&target.resource_type, &target.name))
                    .or_default()
                    .push(t);
            }
        }
        index
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
    let (pairs, unmatched) = plan(&sources, &targets, explicit, name_mappings, options)?;
    let mut sources: Vec<Option<Resource>> =
        sources.into_iter().map(|s| Some(s.resource)).collect();
    let mut targets: Vec<Option<Resource>> = targets.into_iter().map(Some).collect();
    let pairs = pairs
        .into_iter()
        .filter_map(|(s, t, match_rule)| {
            Some(ResourcePair {
                source: sources[s].take()?,
                target: targets[t].take()?,
                match_rule,
            })
        })
        .collect();
    Ok(Matched { pairs, unmatched })
}

type PairIndexes = Vec<(usize, usize, MatchRule)>;

fn plan(
    sources: &[SourceResource],
    targets: &[Resource],
    explicit: &[ExplicitMapping],
    name_mappings: &[NameMapping],
    options: &MatchOptions,
) -> Result<(PairIndexes, Vec<Unmatched>), String> {
    let mut matcher = Matcher::new(sources, targets);

    // 1. The user's mappings.
    if !explicit.is_empty() {
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
            edges.push((s, t));
        }
        matcher.settle(MatchRule::Mapping, edges);
    }

    // 2. Same type, same name.
    let index = matcher.target_index();
    let mut edges = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        if let Some(found) = index.get(&key(&source.resource.resource_type, &source.resource.name))
        {
            edges.extend(found.iter().map(|t| (s, *t)));
        }
    }
    matcher.settle(MatchRule::ExactName, edges);

    // 3. ATG's naming, then its conflict renames.
    let renames: HashMap<String, Vec<&NameMapping>> = {
        let mut renames: HashMap<String, Vec<&NameMapping>> = HashMap::new();
        for mapping in name_mappings {
            renames
                .entry(mapping.original_name.to_ascii_lowercase())
                .or_default()
                .push(mapping);
        }
        renames
    };
    let index = matcher.target_index();
    // Subscriptions the targets of each type live in: the names depend on them.
    let mut subscriptions: HashMap<String, BTreeSet<String>> = HashMap::new();
    for target in targets {
        subscriptions
            .entry(target.resource_type.to_ascii_lowercase())
            .or_default()
            .insert(subscription_of(target));
    }
    let mut planned_edges = Vec::new();
    let mut renamed_edges = Vec::new();
    for (s, source) in sources.iter().enumerate() {
        let Some(twin) = &source.twin else { continue };
        let resource_type = source.resource.resource_type.to_ascii_lowercase();
        let Some(target_subscriptions) = subscriptions.get(&resource_type) else {
            continue;
        };
        for target_subscription in target_subscriptions {
            let crosses = options.tenants_differ()
                || *target_subscription != subscription_of(&source.resource);
            let planned = atg_planned_name(&resource_type, twin, target_subscription, crosses);
            let in_subscription = |t: &usize| subscription_of(&targets[*t]) == *target_subscription;
            if let Some(found) = index.get(&key(&resource_type, &planned)) {
                planned_edges.extend(found.iter().filter(|t| in_subscription(t)).map(|t| (s, *t)));
            }
            for rename in renames
                .get(&planned.to_ascii_lowercase())
                .into_iter()
                .flatten()
            {
                let type_fits = rename
                    .resource_type
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(&resource_type));
                if !type_fits {
                    continue;
                }
                if let Some(found) = index.get(&key(&resource_type, &rename.new_name)) {
                    renamed_edges
                        .extend(found.iter().filter(|t| in_subscription(t)).map(|t| (s, *t)));
                }
            }
        }
    }
    matcher.settle(MatchRule::AtgNaming, planned_edges);
    matcher.settle(MatchRule::AtgNameMapping, renamed_edges);

    // 4. Name plus a 6–16 character [a-z0-9] suffix.
    let mut bases: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (s, source) in sources.iter().enumerate() {
        if !matcher.source_open[s] {
            continue;
        }
        let mut names = vec![source.resource.name.as_str()];
        if let Some(twin) = &source.twin {
            names.push(twin.name.as_str());
        }
        let unique: HashSet<(String, String)> = names
            .into_iter()
            .map(|n| key(&source.resource.resource_type, n))
            .collect();
        for base in unique {
            bases.entry(base).or_default().push(s);
        }
    }
    let mut edges = Vec::new();
    for (t, target) in targets.iter().enumerate() {
        if !matcher.target_open[t] {
            continue;
        }
        let name = target.name.as_bytes();
        for length in 6..=16 {
            if name.len() <= length {
                break;
            }
            let (base, suffix) = name.split_at(name.len() - length);
            if !suffix
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                break;
            }
            let Ok(base) = std::str::from_utf8(base) else {
                continue;
            };
            if let Some(found) = bases.get(&key(&target.resource_type, base)) {
                edges.extend(found.iter().map(|s| (*s, t)));
            }
        }
    }
    matcher.settle(MatchRule::Suffix, edges);

    let mut unmatched = Vec::new();
    let mut paired_sources = vec![false; sources.len()];
    let mut pairs = std::mem::take(&mut matcher.pairs);
    pairs.sort_by_key(|(s, _, _)| *s);
    for (s, _, _) in &pairs {
        paired_sources[*s] = true;
    }
    let typed: HashSet<String> = targets
        .iter()
        .map(|t| t.resource_type.to_ascii_lowercase())
        .collect();
    for (s, source) in sources.iter().enumerate() {
        if paired_sources[s] {
            continue;
        }
        let reason = matcher.source_reason[s].clone().unwrap_or_else(|| {
            if typed.contains(&source.resource.resource_type.to_ascii_lowercase()) {
                let atg = if source.twin.is_some() {
                    "ATG's name for its twin"
                } else {
                    "no abstracted twin in the graph, so no ATG name"
                };
                format!(
                    "no target matches: tried the same name, {atg}, and a 6–16 character suffix"
                )
            } else {
                format!(
                    "no target of type {} was read",
                    source.resource.resource_type
                )
            }
        });
        unmatched.push(Unmatched::new(SOURCE, &source.resource, reason));
    }
    let paired_targets: HashSet<usize> = matcher
        .target_open
        .iter()
        .enumerate()
        .filter(|(_, open)| !**open)
        .map(|(t, _)| t)
        .collect();
    for (t, target) in targets.iter().enumerate() {
        if let Some(reason) = &matcher.target_reason[t] {
            unmatched.push(Unmatched::new(TARGET, target, reason.clone()));
        } else if !paired_targets.contains(&t) {
            let reason = matcher.target_note[t]
                .clone()
                .unwrap_or_else(|| "no source resource matches it".into());
            unmatched.push(Unmatched::new(TARGET, target, reason));
        }
    }
    Ok((pairs, unmatched))
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
        let matched = match_resources(
            sources.to_vec(),
            targets.to_vec(),
            &[],
            &mappings,
            &MatchOptions::default(),
        )
        .unwrap();
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
            "app-kv-abcdef",
            "app-kv0123456789abcdefg",
        ] {
            let matched = run(&[source(KV, "app-kv", None)], &[target(KV, bad)]);
            assert!(matched.pairs.is_empty(), "{bad} must not pair");
        }
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
        assert!(reasons[0].1.contains("tried the same name, ATG's name"));
        assert!(reasons[1]
            .1
            .contains("no target of type Microsoft.Compute/virtualMachines"));
        assert_eq!(
            reasons[2],
            ("nothing-alike", "no source resource matches it")
        );
    }
}
