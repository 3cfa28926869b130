//! One matching run's state: which sources and targets are still open, the pairs made, every
//! edge a rule proposed, and the leftovers with what was tried.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Candidate, Evidence, MatchRule, Resource, SourceResource, Unmatched, SOURCE, TARGET};

/// One name ATG may have planned for a source's twin.
pub(super) struct Planned {
    pub(super) name: String,
    /// Targets in this subscription may carry it.
    pub(super) target_subscription: String,
    /// The subscription hashed into it (Cosmos only).
    pub(super) hashed: Option<String>,
}

/// Why a source was given up on before it was paired.
pub(super) struct Closed {
    pub(super) reason: String,
    /// What each of its candidates is told.
    pub(super) rejects: String,
}

/// State of one matching run.
pub(super) struct Matcher<'a> {
    pub(super) sources: &'a [SourceResource],
    pub(super) targets: &'a [Resource],
    pub(super) source_open: Vec<bool>,
    pub(super) target_open: Vec<bool>,
    pub(super) source_closed: Vec<Option<Closed>>,
    pub(super) target_reason: Vec<Option<String>>,
    /// Why an open target may end up unpaired (it was one of an ambiguous source's candidates).
    pub(super) target_note: Vec<Option<String>>,
    pub(super) pairs: Vec<(usize, usize, MatchRule, Evidence)>,
    /// The pair each source and target is in, by the other's index.
    pub(super) source_pair: Vec<Option<(usize, MatchRule)>>,
    pub(super) target_pair: Vec<Option<(usize, MatchRule)>>,
    /// Every edge a rule proposed, strongest rule first, once per (source, target), listed
    /// per source and per target.
    pub(super) considered_by_source: Vec<Vec<(usize, MatchRule)>>,
    pub(super) considered_by_target: Vec<Vec<(usize, MatchRule)>>,
    pub(super) seen: HashSet<(usize, usize)>,
}

impl<'a> Matcher<'a> {
    pub(super) fn new(sources: &'a [SourceResource], targets: &'a [Resource]) -> Self {
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

    pub(super) fn same_resource(&self, s: usize, t: usize) -> bool {
        self.sources[s]
            .resource
            .id
            .eq_ignore_ascii_case(&self.targets[t].id)
    }

    pub(super) fn close_source(&mut self, s: usize, reason: String, rejects: String) {
        self.source_open[s] = false;
        self.source_closed[s] = Some(Closed { reason, rejects });
    }

    /// Applies one rule's candidate edges: one-to-one edges become pairs; sources with several
    /// candidates and targets claimed several times are closed as ambiguous.
    pub(super) fn settle(&mut self, rule: MatchRule, edges: Vec<(usize, usize, Evidence)>) {
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

    pub(super) fn names(indexes: &[usize], resource: impl Fn(usize) -> &'a Resource) -> String {
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
    pub(super) fn rejection(&self, s: usize, t: usize, side: &str) -> String {
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
    pub(super) fn source_candidates(&self, s: usize) -> Vec<Candidate> {
        self.considered_by_source[s]
            .iter()
            .map(|(t, rule)| {
                Self::candidate(&self.targets[*t], *rule, self.rejection(s, *t, SOURCE))
            })
            .collect()
    }

    /// The candidates of unmatched target `t`, each with why it was rejected.
    pub(super) fn target_candidates(&self, t: usize) -> Vec<Candidate> {
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

    pub(super) fn candidate(
        other: &Resource,
        match_rule: MatchRule,
        rejected: String,
    ) -> Candidate {
        Candidate {
            id: other.id.clone(),
            name: other.name.clone(),
            match_rule,
            rejected,
        }
    }
}

/// Every source and target left unpaired, with why and the candidates that were rejected.
pub(super) fn leftovers(matcher: &Matcher<'_>) -> Vec<Unmatched> {
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
