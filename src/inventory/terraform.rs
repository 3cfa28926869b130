//! The deployed target resources, read from the Terraform state in ATG's `--iac-dir`
//! (`--iac-dir`): `terraform.tfstate` (format version 4) or the JSON of `terraform show -json`
//! saved as `terraform.tfstate.json`, and ATG's `name_mappings.json` beside it when present.
//!
//! Only the azurerm resources whose data planes atg handles are read ([`AZURERM_TYPES`]);
//! everything else in the state is ignored by design (networks, role assignments, ...).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::matching::NameMapping;
use super::{InventoryError, Properties, Resource};

/// azurerm resource types → the ARM type of what they deploy.
pub const AZURERM_TYPES: &[(&str, &str)] = &[
    ("azurerm_key_vault", "Microsoft.KeyVault/vaults"),
    (
        "azurerm_storage_account",
        "Microsoft.Storage/storageAccounts",
    ),
    ("azurerm_linux_web_app", "Microsoft.Web/sites"),
    ("azurerm_windows_web_app", "Microsoft.Web/sites"),
    ("azurerm_app_service", "Microsoft.Web/sites"),
    ("azurerm_linux_function_app", "Microsoft.Web/sites"),
    ("azurerm_windows_function_app", "Microsoft.Web/sites"),
    ("azurerm_function_app", "Microsoft.Web/sites"),
    (
        "azurerm_container_registry",
        "Microsoft.ContainerRegistry/registries",
    ),
    (
        "azurerm_cosmosdb_account",
        "Microsoft.DocumentDB/databaseAccounts",
    ),
    ("azurerm_mssql_database", "Microsoft.Sql/servers/databases"),
    // Read so that their databases can be paired through them (renamed servers).
    ("azurerm_mssql_server", "Microsoft.Sql/servers"),
    ("azurerm_sql_database", "Microsoft.Sql/servers/databases"),
    ("azurerm_api_management", "Microsoft.ApiManagement/service"),
    (
        "azurerm_linux_virtual_machine",
        "Microsoft.Compute/virtualMachines",
    ),
    (
        "azurerm_windows_virtual_machine",
        "Microsoft.Compute/virtualMachines",
    ),
    (
        "azurerm_virtual_machine",
        "Microsoft.Compute/virtualMachines",
    ),
];

/// The ARM types the Terraform reader can produce, each once.
pub fn arm_types() -> Vec<&'static str> {
    let mut types: Vec<&'static str> = Vec::new();
    for (_, arm) in AZURERM_TYPES {
        if !types.contains(arm) {
            types.push(arm);
        }
    }
    types
}

fn arm_type(azurerm: &str) -> Option<&'static str> {
    AZURERM_TYPES
        .iter()
        .find(|(t, _)| *t == azurerm)
        .map(|(_, arm)| *arm)
}

/// What the `--iac-dir` holds.
#[derive(Debug, Default)]
pub struct TerraformTargets {
    pub resources: Vec<Resource>,
    /// `name_mappings.json` beside the state, when there is one, and where it is.
    pub name_mappings: Option<(PathBuf, Vec<NameMapping>)>,
    /// The state file read, for the report.
    pub state_path: PathBuf,
}

const STATE_FILES: [&str; 2] = ["terraform.tfstate", "terraform.tfstate.json"];

/// Reads `dir` (or a state file given directly).
pub fn read_iac_dir(dir: &Path) -> Result<TerraformTargets, InventoryError> {
    let state_path = if dir.is_file() {
        dir.to_path_buf()
    } else {
        STATE_FILES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
            .ok_or_else(|| InventoryError::State {
                path: dir.display().to_string(),
                message: format!("no {} in the directory", STATE_FILES.join(" or ")),
                hint: Some(
                    "run `terraform state pull > terraform.tfstate` (or `terraform show -json > \
                     terraform.tfstate.json`) in the IaC directory ATG generated"
                        .into(),
                ),
            })?
    };
    let path_text = state_path.display().to_string();
    let text = super::read_input_file(&state_path).map_err(|error| InventoryError::State {
        path: path_text.clone(),
        message: format!("cannot read it: {error}"),
        hint: None,
    })?;
    let resources = parse_state(&path_text, &text)?;
    let mappings_path = state_path.parent().map_or_else(
        || PathBuf::from("name_mappings.json"),
        |p| p.join("name_mappings.json"),
    );
    let name_mappings = if mappings_path.is_file() {
        let read = read_name_mappings(&mappings_path)?;
        Some((mappings_path, read))
    } else {
        None
    };
    Ok(TerraformTargets {
        resources,
        name_mappings,
        state_path,
    })
}

/// Parses a v4 state or `terraform show -json` output into target resources.
pub fn parse_state(path: &str, text: &str) -> Result<Vec<Resource>, InventoryError> {
    let error = |message: String, hint: Option<&str>| InventoryError::State {
        path: path.to_owned(),
        message,
        hint: hint.map(str::to_owned),
    };
    let root: Value =
        serde_json::from_str(text).map_err(|e| error(format!("not valid JSON: {e}"), None))?;
    let root = root
        .as_object()
        .ok_or_else(|| error("the top level is not an object".into(), None))?;

    let mut found: Vec<(String, Map<String, Value>)> = Vec::new();
    if root.contains_key("format_version") {
        // `terraform show -json`: values.root_module.{resources, child_modules[]}.
        let Some(values) = root.get("values") else {
            let what = if root.contains_key("planned_values") {
                "this is a plan (`terraform show -json PLANFILE`), not the deployed state"
            } else {
                "no `values`: the state is empty"
            };
            return Err(error(
                what.into(),
                Some("run `terraform show -json > terraform.tfstate.json` after `terraform apply`"),
            ));
        };
        let mut modules: Vec<&Value> = values.get("root_module").into_iter().collect();
        while let Some(module) = modules.pop() {
            for resource in array(module.get("resources")) {
                if resource.get("mode").and_then(Value::as_str) != Some("managed") {
                    continue;
                }
                let (Some(kind), Some(Value::Object(values))) = (
                    resource.get("type").and_then(Value::as_str),
                    resource.get("values"),
                ) else {
                    continue;
                };
                found.push((kind.to_owned(), values.clone()));
            }
            modules.extend(array(module.get("child_modules")));
        }
    } else {
        match root.get("version").and_then(Value::as_u64) {
            Some(4) => {}
            Some(other) => {
                return Err(error(
                    format!("state format version {other} is not supported (atg reads version 4)"),
                    Some("Terraform 0.12 and later write version 4; upgrade the state with a current `terraform`"),
                ))
            }
            None => {
                return Err(error(
                    "neither a state file (`version`) nor `terraform show -json` output (`format_version`)".into(),
                    None,
                ))
            }
        }
        for resource in array(root.get("resources")) {
            if resource.get("mode").and_then(Value::as_str) != Some("managed") {
                continue;
            }
            let Some(kind) = resource.get("type").and_then(Value::as_str) else {
                continue;
            };
            for instance in array(resource.get("instances")) {
                if let Some(Value::Object(attributes)) = instance.get("attributes") {
                    found.push((kind.to_owned(), attributes.clone()));
                }
            }
        }
    }

    let mut resources = Vec::new();
    for (kind, attributes) in found {
        let Some(resource_type) = arm_type(&kind) else {
            continue;
        };
        let text = |key: &str| {
            attributes
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (Some(id), Some(name)) = (text("id"), text("name")) else {
            return Err(error(
                format!("a {kind} has no `id` or `name` attribute"),
                Some("is the resource fully created? run `terraform apply` first"),
            ));
        };
        let (subscription_id, resource_group) =
            Resource::parse_id(&id).map_err(|e| error(format!("{kind} `{name}`: {e}"), None))?;
        let mut properties = Map::new();
        if let Some(uri) = text("vault_uri") {
            properties.insert("vaultUri".into(), Value::String(uri));
        }
        if let Some(tenant) = text("tenant_id") {
            properties.insert("tenantId".into(), Value::String(tenant));
        }
        resources.push(Resource {
            id,
            resource_type: resource_type.to_owned(),
            name,
            subscription_id: Some(subscription_id),
            resource_group: resource_group.or_else(|| text("resource_group_name")),
            properties: if properties.is_empty() {
                Properties::Missing
            } else {
                Properties::Object(properties)
            },
            options: Map::new(),
        });
    }
    if resources.is_empty() {
        let wanted: Vec<&str> = AZURERM_TYPES.iter().map(|(t, _)| *t).collect();
        return Err(error(
            "no deployed resource whose data plane atg handles".into(),
            Some(&format!(
                "atg looks for managed resources of these types: {}",
                wanted.join(", ")
            )),
        ));
    }
    Ok(resources)
}

fn array(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter())
        .into_iter()
        .flatten()
}

/// Reads ATG's `name_mappings.json` at `path`.
pub fn read_name_mappings(path: &Path) -> Result<Vec<NameMapping>, InventoryError> {
    read_mappings_file(path, parse_name_mappings)
}

/// Reads a mappings file (ATG's or the user's) with `parse`.
pub fn read_mappings_file<T>(
    path: &Path,
    parse: fn(&str, &str) -> Result<T, InventoryError>,
) -> Result<T, InventoryError> {
    let shown = path.display().to_string();
    let text = super::read_input_file(path).map_err(|error| InventoryError::Mappings {
        path: shown.clone(),
        message: format!("cannot read it: {error}"),
    })?;
    parse(&shown, &text)
}

/// ATG's `name_mappings.json` (`name_conflict_validator.py`): `{"mappings": [{"original_name",
/// "new_name", "resource_type"?}]}`; a flat `{"original": "new"}` object is read too.
pub fn parse_name_mappings(path: &str, text: &str) -> Result<Vec<NameMapping>, InventoryError> {
    let error = |message: String| InventoryError::Mappings {
        path: path.to_owned(),
        message,
    };
    let root: Value =
        serde_json::from_str(text).map_err(|e| error(format!("not valid JSON: {e}")))?;
    let Some(object) = root.as_object() else {
        return Err(error("the top level is not an object".into()));
    };
    let mut mappings = Vec::new();
    if let Some(entries) = object.get("mappings") {
        let entries = entries
            .as_array()
            .ok_or_else(|| error("`mappings` is not an array".into()))?;
        for (index, entry) in entries.iter().enumerate() {
            let field = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_owned);
            let (Some(original_name), Some(new_name)) = (field("original_name"), field("new_name"))
            else {
                return Err(error(format!(
                    "mappings[{index}] needs `original_name` and `new_name` strings"
                )));
            };
            mappings.push(NameMapping {
                original_name,
                new_name,
                resource_type: field("resource_type"),
            });
        }
    } else {
        for (original_name, new_name) in object {
            let new_name = new_name
                .as_str()
                .ok_or_else(|| error(format!("`{original_name}` does not map to a string")))?;
            mappings.push(NameMapping {
                original_name: original_name.clone(),
                new_name: new_name.to_owned(),
                resource_type: None,
            });
        }
    }
    Ok(mappings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/terraform")
            .join(name)
    }

    fn summary(resources: &[Resource]) -> Vec<(String, String, String)> {
        let mut rows: Vec<_> = resources
            .iter()
            .map(|r| {
                (
                    r.resource_type.clone(),
                    r.name.clone(),
                    r.subscription_id.clone().unwrap_or_default(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn a_v4_state_gives_the_data_plane_resources_with_ids_and_names() {
        let targets = read_iac_dir(&fixture("v4")).unwrap();
        let rows = summary(&targets.resources);
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|(t, n, _)| (t.as_str(), n.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("Microsoft.Compute/virtualMachines", "vm-abc123"),
                (
                    "Microsoft.DocumentDB/databaseAccounts",
                    "cosmos-abc-1a2b3c4d"
                ),
                ("Microsoft.KeyVault/vaults", "kv-in-module"),
                ("Microsoft.KeyVault/vaults", "vault-0123456789a-b7bf97"),
                (
                    "Microsoft.Storage/storageAccounts",
                    "storage00112233445f00d1"
                ),
                (
                    "Microsoft.Storage/storageAccounts",
                    "storage00112233445f00d2"
                ),
                ("Microsoft.Web/sites", "app-1234"),
            ]
        );
        let vault = targets
            .resources
            .iter()
            .find(|r| r.name == "vault-0123456789a-b7bf97")
            .unwrap();
        assert_eq!(
            vault.properties.get_str("vaultUri").as_deref(),
            Some("https://vault-0123456789a-b7bf97.vault.azure.net/")
        );
        assert_eq!(vault.resource_group.as_deref(), Some("rg-target"));
        let (path, name_mappings) = targets.name_mappings.unwrap();
        assert!(path.ends_with("name_mappings.json"));
        assert_eq!(
            name_mappings,
            vec![NameMapping {
                original_name: "storage00112233445f00d1".into(),
                new_name: "storage00112233445f00d2".into(),
                resource_type: Some("Microsoft.Storage/storageAccounts".into()),
            }]
        );
    }

    #[test]
    fn terraform_show_json_reads_the_same_way_including_child_modules() {
        let targets = read_iac_dir(&fixture("show-json")).unwrap();
        let from_show = summary(&targets.resources);
        let from_state = summary(&read_iac_dir(&fixture("v4")).unwrap().resources);
        assert_eq!(from_show, from_state);
        assert!(targets.name_mappings.is_none());
        assert!(targets.state_path.ends_with("terraform.tfstate.json"));
    }

    #[test]
    fn unusable_states_say_why() {
        let cases = [
            (
                r#"{"version":3,"modules":[]}"#,
                "state format version 3 is not supported",
            ),
            (r#"{"serial":1}"#, "neither a state file"),
            (
                r#"{"format_version":"1.2","planned_values":{}}"#,
                "this is a plan",
            ),
            (
                r#"{"version":4,"resources":[{"mode":"managed","type":"azurerm_virtual_network","name":"n","instances":[{"attributes":{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/n","name":"n"}}]}]}"#,
                "no deployed resource whose data plane atg handles",
            ),
            ("{", "not valid JSON"),
        ];
        for (text, expected) in cases {
            let message = parse_state("s.tfstate", text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
        let missing = read_iac_dir(Path::new("/nonexistent-iac-dir")).unwrap_err();
        assert!(missing.to_string().contains("no terraform.tfstate"));
        assert!(missing.hint().unwrap().contains("terraform state pull"));
    }

    #[test]
    fn flat_name_mappings_are_read_and_bad_ones_named() {
        let flat = parse_name_mappings("m.json", r#"{"a":"a-copy"}"#).unwrap();
        assert_eq!(flat[0].new_name, "a-copy");
        let bad = parse_name_mappings("m.json", r#"{"mappings":[{"original_name":"a"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("mappings[0] needs"), "{bad}");
    }
}
