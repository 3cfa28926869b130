//! The JSON inventory (`--inventory FILE`): source/target pairs written by hand or by a script.
//! Schema: docs/inventory.md. Every problem names the entry it is in.

use std::path::PathBuf;

use async_trait::async_trait;
use serde_json::Value;

use super::{
    escape_controls, read_input_file, refuse_controls, Inventory, InventoryError, InventorySource,
    MatchRule, Properties, Resource, ResourcePair,
};

pub struct JsonInventory {
    pub path: PathBuf,
}

#[async_trait]
impl InventorySource for JsonInventory {
    async fn load(&self) -> Result<Inventory, InventoryError> {
        let path = self.path.display().to_string();
        let text = read_input_file(&self.path).map_err(|message| InventoryError::Read {
            path: path.clone(),
            message,
        })?;
        parse(&path, &text)
    }
}

const PAIR_FIELDS: [&str; 3] = ["source", "target", "options"];
const RESOURCE_FIELDS: [&str; 7] = [
    "id",
    "type",
    "name",
    "properties",
    "tags",
    "subscription_id",
    "resource_group",
];

pub fn parse(path: &str, text: &str) -> Result<Inventory, InventoryError> {
    let root: Value = serde_json::from_str(text).map_err(|error| InventoryError::Syntax {
        path: path.to_owned(),
        message: error.to_string(),
    })?;
    let invalid = |message: String| InventoryError::Invalid {
        path: path.to_owned(),
        message,
    };
    let root = root.as_object().ok_or_else(|| {
        invalid("the top level must be an object with a `resources` array".into())
    })?;
    for key in root.keys() {
        if !["resources", "version", "$schema"].contains(&key.as_str()) {
            return Err(invalid(format!(
                "unknown top-level field `{}` (expected `resources`)",
                escape_controls(key)
            )));
        }
    }
    if let Some(version) = root.get("version") {
        if version.as_u64() != Some(1) {
            return Err(invalid(format!(
                "unsupported `version` {version}: this atg reads version 1"
            )));
        }
    }
    let entries = root
        .get("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("missing `resources` array".into()))?;

    let mut pairs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let entry_error = |message: String| InventoryError::Entry {
            path: path.to_owned(),
            entry: describe_entry(index, entry),
            message,
        };
        let object = entry
            .as_object()
            .ok_or_else(|| entry_error("must be an object with `source` and `target`".into()))?;
        if let Some(key) = object.keys().find(|k| !PAIR_FIELDS.contains(&k.as_str())) {
            return Err(entry_error(format!(
                "unknown field `{}` (expected source, target, options)",
                escape_controls(key)
            )));
        }
        let source = resource(object.get("source"), "source").map_err(&entry_error)?;
        let mut target = resource(object.get("target"), "target").map_err(&entry_error)?;
        if !source
            .resource_type
            .eq_ignore_ascii_case(&target.resource_type)
        {
            return Err(entry_error(format!(
                "source type `{}` and target type `{}` differ",
                source.resource_type, target.resource_type
            )));
        }
        if let Some(options) = object.get("options") {
            target.options = options
                .as_object()
                .cloned()
                .ok_or_else(|| entry_error("`options` must be an object".into()))?;
        }
        pairs.push(ResourcePair {
            source,
            target,
            match_rule: MatchRule::Inventory,
            evidence: super::Evidence::default(),
        });
    }
    Ok(Inventory {
        pairs,
        unmatched: Vec::new(),
        origin: path.to_owned(),
        warnings: Vec::new(),
    })
}

fn describe_entry(index: usize, entry: &Value) -> String {
    match entry.pointer("/source/name").and_then(Value::as_str) {
        Some(name) => format!("resources[{index}] (source `{}`)", escape_controls(name)),
        None => format!("resources[{index}]"),
    }
}

fn resource(value: Option<&Value>, side: &str) -> Result<Resource, String> {
    let object = value
        .and_then(Value::as_object)
        .ok_or_else(|| format!("`{side}` is missing or not an object"))?;
    if let Some(key) = object
        .keys()
        .find(|k| !RESOURCE_FIELDS.contains(&k.as_str()))
    {
        return Err(format!("{side}: unknown field `{}`", escape_controls(key)));
    }
    let text = |field: &str| -> Result<String, String> {
        match object.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(Value::String(_)) => Err(format!("{side}.{field} is empty")),
            Some(_) => Err(format!("{side}.{field} must be a string")),
            None => Err(format!("{side}.{field} is missing")),
        }
    };
    let id = text("id")?;
    let resource_type = text("type")?;
    let name = text("name")?;
    // First, so that no message below echoes them raw.
    for (field, value) in [("id", &id), ("type", &resource_type), ("name", &name)] {
        refuse_controls(&format!("{side}.{field}"), value)?;
    }
    if resource_type.matches('/').count() < 1 {
        return Err(format!(
            "{side}.type `{resource_type}` is not an ARM type like Microsoft.KeyVault/vaults"
        ));
    }
    let (subscription_id, resource_group) =
        Resource::parse_id(&id).map_err(|e| format!("{side}.id: {e}"))?;
    let last = id
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if !last.eq_ignore_ascii_case(&name) {
        return Err(format!(
            "{side}.name `{name}` does not match the last segment of its id (`{last}`)"
        ));
    }
    let properties =
        Properties::from_value(object.get("properties")).map_err(|e| format!("{side}: {e}"))?;
    Ok(Resource {
        id,
        resource_type,
        name,
        subscription_id: Some(subscription_id),
        resource_group,
        properties,
        options: serde_json::Map::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KV: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/";

    fn pair(source: &str, target: &str) -> String {
        format!(
            r#"{{"resources":[{{"source":{{"id":"{KV}{source}","type":"Microsoft.KeyVault/vaults","name":"{source}"}},
              "target":{{"id":"{KV}{target}","type":"Microsoft.KeyVault/vaults","name":"{target}","properties":"{{\"vaultUri\":\"https://{target}.vault.azure.net/\"}}"}}}}]}}"#
        )
    }

    #[test]
    fn a_valid_inventory_pairs_resources() {
        let inventory = parse("inv.json", &pair("src", "dst")).unwrap();
        assert_eq!(inventory.pairs.len(), 1);
        let target = &inventory.pairs[0].target;
        assert_eq!(
            target.properties.get_str("vaultUri").as_deref(),
            Some("https://dst.vault.azure.net/")
        );
        assert_eq!(target.resource_group.as_deref(), Some("rg"));
    }

    #[test]
    fn malformed_entries_are_named_in_the_error() {
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "top level must be an object"),
            (r#"{"resource":[]}"#, "unknown top-level field `resource`"),
            (
                r#"{"resources":[{"source":{}}]}"#,
                "resources[0]: source.id is missing",
            ),
            (
                r#"{"resources":[{"source":{"id":"x","type":"Microsoft.KeyVault/vaults","name":"x"},"target":{}}]}"#,
                "resources[0] (source `x`): source.id: `x` is not an ARM resource id",
            ),
        ];
        for (text, expected) in cases {
            let message = parse("inv.json", text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
        let mismatched = pair("src", "dst").replace(r#""name":"dst""#, r#""name":"other""#);
        let message = parse("inv.json", &mismatched).unwrap_err().to_string();
        assert!(
            message.contains("target.name `other` does not match"),
            "{message}"
        );
    }
}
