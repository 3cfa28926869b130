//! The names ATG gives things, and how the rules compare names: ATG's planned names, the suffix
//! rule's splits, child resources' names under their parents.

use md5::{Digest, Md5};

use super::{
    Resource, Twin, CONTAINER_REGISTRY, COSMOS_ACCOUNT, KEY_VAULT, STORAGE_ACCOUNT, WEB_SITE,
};

pub(super) fn md5_hex(text: &str) -> String {
    use std::fmt::Write;
    let mut hex = String::with_capacity(32);
    for byte in Md5::digest(text.as_bytes()) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Python's `text[:n]` on characters.
pub(super) fn prefix(text: &str, n: usize) -> String {
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

pub(super) fn key(resource_type: &str, name: &str) -> (String, String) {
    (
        resource_type.to_ascii_lowercase(),
        name.to_ascii_lowercase(),
    )
}

pub(super) fn subscription_of(resource: &Resource) -> String {
    resource
        .subscription_id
        .clone()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether the type is a child type (`Microsoft.Sql/servers/databases`).
pub(super) fn is_child_type(resource_type: &str) -> bool {
    resource_type.split('/').count() > 2
}

/// The id's `type/name` segments after the provider namespace, when it has them.
pub(super) fn provider_segments(id: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    let at = parts
        .iter()
        .rposition(|p| p.eq_ignore_ascii_case("providers"))?;
    let rest = parts.get(at + 2..)?;
    (!rest.is_empty() && rest.len() % 2 == 0).then(|| rest.to_vec())
}

/// The name the rules compare: for a child resource its names from the id joined with `/`
/// (`server/database`), so that databases pair only under parents of the same name.
pub(super) fn match_name(resource: &Resource) -> String {
    if is_child_type(&resource.resource_type) {
        if let Some(segments) = provider_segments(&resource.id) {
            let names: Vec<&str> = segments.iter().skip(1).step_by(2).copied().collect();
            return names.join("/");
        }
    }
    resource.name.clone()
}

/// A child resource's parent id (lowercased) and own name.
pub(super) fn parent_of(resource: &Resource) -> Option<(String, String)> {
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
pub(super) fn suffix_splits(name: &str) -> Vec<(&str, String)> {
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
