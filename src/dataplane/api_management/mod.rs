//! API Management (`Microsoft.ApiManagement/service`): a service's configuration, copied entity
//! by entity through ARM into the paired service (no data-plane host).
//!
//! `entities` lists what is copied and in which stage: named values, version sets, groups and
//! users first; backends, policy fragments, APIs and products next; operations, schemas and
//! product links after them; policies (service, API, operation and product scope, compared as
//! XML the service re-formats: `policy`) once everything they reference exists; subscriptions
//! last. Secrets (secret named values, subscription keys) are read through `listValue` and
//! `listSecrets` in replication and never in template mode, which writes placeholders and lets
//! the service make new keys. Updates carry the target entity's `ETag` (`If-Match`); a 412 is
//! read again and retried once, then reported.

mod entities;
mod policy;

use std::collections::BTreeMap;

use async_trait::async_trait;
use azure_core::http::Method;
use serde_json::{Map, Value};

use super::kit::{
    apply_each, in_slot, pair_by_key, settled, Decision, Existing, Merged, Newer, Typed,
};
use super::{
    ApplyPlan, Capability, DataPlanePlugin, Difference, Discovery, ItemKindInfo, ItemStatus, Job,
    Limit, Mode, PermissionInfo, Plan, PlannedAction, PlannedItem, PluginContext, PluginError,
    PluginInfo, Side,
};
use crate::azure::arm::apim::{self, Written};
use crate::azure::arm::ArmClient;
use crate::azure::{AzureError, Sensitive, WriteAccess};
use crate::dataplane::app_service::key_vault_refs::{self, Rewrite, VaultPairs};
use entities::{Entity, KINDS, NAMED_VALUE, STAGES, SUBSCRIPTION};

const NO_TIME: Newer = Newer::Unknown("api management entities carry no modification time");

static INFO: PluginInfo = PluginInfo {
    name: "api-management",
    resource_types: &["Microsoft.ApiManagement/service"],
    modes: &[Mode::Template, Mode::Replication],
    item_kinds: &[
        ItemKindInfo {
            name: entities::NAMED_VALUE,
            template: "plain values copied; secret values written as a placeholder (never read); Key Vault-backed ones pointed at the target vault paired in the run, else kept (reported)",
            replication: "plain values copied; secret values read through listValue and copied; Key Vault-backed ones pointed at the target vault paired in the run, else kept (reported)",
        },
        ItemKindInfo { name: entities::BACKEND, template: "copied", replication: "copied" },
        ItemKindInfo { name: entities::POLICY_FRAGMENT, template: "copied", replication: "copied" },
        ItemKindInfo { name: entities::VERSION_SET, template: "copied", replication: "copied" },
        ItemKindInfo {
            name: entities::GROUP,
            template: "custom groups copied; the built-in administrators, developers and guests matched",
            replication: "as template",
        },
        ItemKindInfo {
            name: entities::USER,
            template: "name, email, state and note copied (no password); the administrator matched",
            replication: "as template",
        },
        ItemKindInfo {
            name: entities::API,
            template: "current revisions copied with their settings (version set, path, protocols, service URL)",
            replication: "as template",
        },
        ItemKindInfo { name: entities::OPERATION, template: "copied per API", replication: "copied per API" },
        ItemKindInfo { name: entities::SCHEMA, template: "copied per API", replication: "copied per API" },
        ItemKindInfo {
            name: entities::PRODUCT,
            template: "copied; starter and unlimited matched by name",
            replication: "as template",
        },
        ItemKindInfo { name: entities::PRODUCT_API, template: "a product's APIs linked", replication: "as template" },
        ItemKindInfo {
            name: entities::PRODUCT_GROUP,
            template: "a product's groups linked, the built-in groups too (the groups themselves are matched)",
            replication: "as template",
        },
        ItemKindInfo {
            name: entities::POLICY,
            template: "service, API, operation and product policies, compared as XML (the service's re-formatting is no difference)",
            replication: "as template",
        },
        ItemKindInfo {
            name: entities::SUBSCRIPTION,
            template: "scope, owner (the target's user of the same id), state and name; the service makes new keys; the built-in master subscription matched (its keys stay the target's)",
            replication: "as template, with the source's keys (listSecrets), so clients keep working",
        },
    ],
    permissions: &[
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Source,
            data_actions: &["Microsoft.ApiManagement/service/*/read"],
            roles: &["API Management Service Reader Role"],
        },
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Target,
            data_actions: &["Microsoft.ApiManagement/service/*/read", "Microsoft.ApiManagement/service/*/write"],
            roles: &["API Management Service Contributor"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Source,
            data_actions: &[
                "Microsoft.ApiManagement/service/*/read",
                "Microsoft.ApiManagement/service/namedValues/listValue/action",
                "Microsoft.ApiManagement/service/subscriptions/listSecrets/action",
            ],
            roles: &["API Management Service Contributor (Reader cannot list secrets)"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Target,
            data_actions: &[
                "Microsoft.ApiManagement/service/*/read",
                "Microsoft.ApiManagement/service/*/write",
                "Microsoft.ApiManagement/service/namedValues/listValue/action",
                "Microsoft.ApiManagement/service/subscriptions/listSecrets/action",
            ],
            roles: &["API Management Service Contributor"],
        },
    ],
    limits: &[
        Limit {
            capability: Capability::CopyValue,
            kinds: &[entities::USER],
            reason: "passwords cannot be read: users are created without theirs (they reset it), and Entra identities do not map across tenants",
        },
        Limit {
            capability: Capability::IfSourceNewer,
            kinds: &[],
            reason: "API Management entities carry no modification time: --on-conflict if-source-newer acts as skip",
        },
    ],
    notes: &[
        "everything goes through ARM (Microsoft.ApiManagement api-version 2024-05-01); updates carry the target entity's ETag (If-Match), a 412 is read again and retried once",
        "not read, so not copied (check the source for them): certificates, loggers and diagnostics, identity providers, authorization servers, portal content, tags, GraphQL resolvers and API releases; API revisions other than the current one are listed and reported skipped",
        "the target service must exist (ATG's Terraform has no API Management emitter): a missing one fails its pair",
    ],
};

pub struct ApiManagementPlugin;

#[async_trait]
impl DataPlanePlugin for ApiManagementPlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let client = |side: &super::SideContext, access| {
            ArmClient::new(&ctx.http, side.credential.clone(), access).map_err(|e| e.to_string())
        };
        let invalid =
            |e: String| PluginError::Invalid(format!("cannot create the ARM client: {e}"));
        let sides = Sides {
            source: client(&ctx.source, WriteAccess::ReadOnly).map_err(invalid)?,
            target: client(&ctx.target, ctx.target.access).map_err(invalid)?,
            source_service: job.pair.source.id.trim_end_matches('/').to_owned(),
            target_service: job.pair.target.id.trim_end_matches('/').to_owned(),
        };
        let items = plan_items(ctx, job, &sides).await?;
        let discovery = Discovery {
            items: items.iter().map(|item| item.item.clone()).collect(),
            nested: BTreeMap::new(),
            facts: Map::new(),
        };
        Ok(Plan {
            discovery,
            apply: Box::new(ServicePlan { sides, items }),
        })
    }
}

/// Both sides' clients and service ids.
struct Sides {
    source: ArmClient,
    target: ArmClient,
    source_service: String,
    target_service: String,
}

/// What applying one item writes: `properties` plus the secret members, with PUT (or PATCH,
/// which keeps the target's secret value in template mode).
#[derive(Clone)]
struct Work {
    path: String,
    stage: usize,
    method: Method,
    properties: Map<String, Value>,
    secrets: Vec<(&'static str, Sensitive)>,
}

impl std::fmt::Debug for Work {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Work")
            .field("path", &self.path)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

type Item = Typed<Work>;

/// Reads every entity of one side, parents before children. API revisions other than the
/// current one (`api;rev=n`) are left out and counted in `revisions`.
async fn read_side(
    arm: &ArmClient,
    service: &str,
    to_service: &str,
    revisions: &mut Vec<String>,
) -> Result<Vec<Entity>, AzureError> {
    let mut found: Vec<Entity> = Vec::new();
    for kind in KINDS {
        let parents: Vec<String> = if kind.parents.is_empty() {
            vec![String::new()]
        } else {
            let mut parents = Vec::new();
            for parent in kind.parents {
                if parent.is_empty() {
                    parents.push(String::new());
                } else {
                    parents.extend(
                        found
                            .iter()
                            .filter(|e| e.kind == *parent)
                            .map(|e| e.path.clone()),
                    );
                }
            }
            parents
        };
        for parent in parents {
            let collection = if parent.is_empty() {
                kind.collection.to_owned()
            } else {
                format!("{parent}/{}", kind.collection)
            };
            for document in apim::list(arm, service, &collection).await? {
                let name = document["name"].as_str().unwrap_or_default().to_owned();
                if name.contains(';') {
                    revisions.push(format!("{collection}/{name}"));
                    continue;
                }
                let path = format!("{collection}/{name}");
                found.push(Entity::new(kind.name, path, &document, service, to_service));
            }
        }
    }
    Ok(found)
}

async fn plan_items(
    ctx: &PluginContext,
    job: &Job,
    sides: &Sides,
) -> Result<Vec<Item>, PluginError> {
    let mut revisions = Vec::new();
    let source = read_side(
        &sides.source,
        &sides.source_service,
        &sides.target_service,
        &mut revisions,
    )
    .await
    .map_err(|e| PluginError::azure("read the source service", e))?;
    let mut ignored = Vec::new();
    let target = read_side(
        &sides.target,
        &sides.target_service,
        &sides.target_service,
        &mut ignored,
    )
    .await
    .map_err(|e| PluginError::azure("read the target service", e))?;
    let vaults = VaultPairs::new(&ctx.pairs, ctx.http.cloud);
    let mut items = Vec::new();
    for (source, target) in pair_by_key(source, target, Entity::key, Entity::key)
        .into_iter()
        .filter_map(Merged::into_source_pair)
    {
        items.push(plan_entity(ctx, job, sides, &vaults, source, target).await?);
    }
    for revision in revisions {
        items.push(item(
            entities::API,
            revision.trim_start_matches("apis/").to_owned(),
            PlannedAction::Skip {
                reason: "an API revision other than the current one is not copied".into(),
            },
            Work::settled(),
        ));
    }
    Ok(items)
}

impl Work {
    fn settled() -> Self {
        Work {
            path: String::new(),
            stage: 0,
            method: Method::Put,
            properties: Map::new(),
            secrets: Vec::new(),
        }
    }
}

fn item(kind: &'static str, name: String, action: PlannedAction, work: Work) -> Item {
    Typed {
        item: PlannedItem {
            kind,
            name,
            action,
            notes: Vec::new(),
            // A plan file compares decisions only (the entities' ETags are not kept yet).
            fingerprint: None,
        },
        detail: work,
    }
}

/// The plan of one source entity against the target's of the same path.
async fn plan_entity(
    ctx: &PluginContext,
    job: &Job,
    sides: &Sides,
    vaults: &VaultPairs,
    mut source: Entity,
    target: Option<Entity>,
) -> Result<Item, PluginError> {
    let name = source.name();
    let mut notes = Vec::new();
    if source.kind == NAMED_VALUE {
        notes.extend(point_at_target_vault(&mut source.properties, vaults));
    }
    let what = format!("{} {name}", source.kind);
    if source.built_in {
        let action = match target {
            Some(_) => PlannedAction::Identical,
            None => PlannedAction::Skip {
                reason: format!("{what} is built into the source service and absent from the target's (another tier?)"),
            },
        };
        let mut planned = item(source.kind, name, action, Work::settled());
        planned
            .item
            .notes
            .push("built in: matched, not written".into());
        return Ok(planned);
    }
    let mut work = Work {
        path: source.path.clone(),
        stage: entities::kind(source.kind).stage,
        method: Method::Put,
        properties: source.properties.clone(),
        secrets: Vec::new(),
    };
    let mut differs = Vec::new();
    if target.as_ref().is_some_and(|t| source.differs_from(t)) {
        differs.push(Difference::Attributes);
    }
    let read = |what: String| move |e: AzureError| PluginError::azure(what, e);
    let id = source
        .path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    match source.kind {
        NAMED_VALUE
            if source
                .properties
                .get("keyVault")
                .is_some_and(|kv| !kv.is_null()) =>
        {
            // Its value stays in the vault: nothing to read (see point_at_target_vault).
        }
        NAMED_VALUE if source.properties.get("secret") == Some(&Value::Bool(true)) => {
            match job.mode {
                Mode::Replication => {
                    let value = apim::named_value(&sides.source, &sides.source_service, &id)
                        .await
                        .map_err(read(format!("read the source's secret named value {name}")))?;
                    if target.is_some() {
                        let theirs = apim::named_value(&sides.target, &sides.target_service, &id)
                            .await
                            .map_err(read(format!(
                                "read the target's secret named value {name}"
                            )))?;
                        if theirs != value {
                            differs.push(Difference::Value);
                        }
                    }
                    work.secrets.push(("value", value));
                }
                Mode::Template if target.is_some() => {
                    // The target's value stays: PATCH leaves it.
                    work.method = Method::Patch;
                    notes.push("secret value not written (template): the target's is kept".into());
                }
                Mode::Template => {
                    work.secrets
                        .push(("value", Sensitive::new(ctx.placeholder)));
                    notes.push("secret value written as a placeholder (template)".into());
                }
            }
        }
        SUBSCRIPTION => match job.mode {
            Mode::Replication => {
                let keys = apim::subscription_keys(&sides.source, &sides.source_service, &id)
                    .await
                    .map_err(read(format!(
                        "read the source's subscription keys of {name}"
                    )))?;
                if target.is_some() {
                    let theirs = apim::subscription_keys(&sides.target, &sides.target_service, &id)
                        .await
                        .map_err(read(format!(
                            "read the target's subscription keys of {name}"
                        )))?;
                    if theirs != keys {
                        differs.push(Difference::Value);
                    }
                }
                work.secrets.push(("primaryKey", keys.primary_key));
                work.secrets.push(("secondaryKey", keys.secondary_key));
            }
            Mode::Template => {
                notes.push("keys not copied (template): the service makes new ones".into());
            }
        },
        _ => {}
    }
    let existing = match (&target, differs.is_empty()) {
        (None, _) => Existing::Absent,
        (Some(_), true) => Existing::Identical,
        (Some(_), false) => Existing::Differs(NO_TIME),
    };
    let action = Decision::new(job.on_conflict, &what, existing).planned(target.is_some(), differs);
    let mut planned = item(source.kind, name, action, work);
    planned.item.notes = notes;
    Ok(planned)
}

/// Points a Key Vault-backed named value at the target vault paired in this run with the vault
/// it names (its value is never read); answers the note that says what became of it.
fn point_at_target_vault(
    properties: &mut Map<String, Value>,
    vaults: &VaultPairs,
) -> Option<String> {
    let identifier = properties
        .get_mut("keyVault")?
        .get_mut("secretIdentifier")?;
    let uri = identifier.as_str()?.to_owned();
    Some(match key_vault_refs::target_secret_uri(&uri, vaults) {
        Rewrite::Rewritten { value, vault, dropped_version } => {
            *identifier = Value::String(value);
            let version = if dropped_version { " (version dropped: the target's secret has its own)" } else { "" };
            format!("Key Vault-backed: pointed at the paired target vault {vault}{version}; grant the target service's identity access to it")
        }
        Rewrite::Kept { vault } if !vault.is_empty() => format!(
            "Key Vault-backed: vault {vault} is not paired in this run: the reference is kept; grant the target service's identity access to it"
        ),
        _ => "Key Vault-backed: the reference is kept as it is".to_owned(),
    })
}

/// The plan of one service: its clients and its items.
struct ServicePlan {
    sides: Sides,
    items: Vec<Item>,
}

#[async_trait]
impl ApplyPlan for ServicePlan {
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        self.items
            .retain(|typed| keep(typed.item.kind, &typed.item.name));
    }

    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let ServicePlan { sides, items } = *self;
        let sides = &sides;
        let mut stages: Vec<Vec<Item>> = (0..STAGES).map(|_| Vec::new()).collect();
        for item in items {
            let stage = item.detail.stage.min(STAGES - 1);
            stages[stage].push(item);
        }
        let run = |item: Item| in_slot(ctx, item.item.notes.clone(), apply_item(sides, item));
        let concurrency = ctx.item_slots.available_permits().max(1);
        for stage in stages {
            apply_each(ctx, job, stage, concurrency, run).await;
        }
        Ok(())
    }
}

/// Writes one entity: over an existing one only with its current `ETag`; a 412 (the target
/// changed in between) reads the `ETag` again and retries once.
async fn apply_item(sides: &Sides, item: Item) -> ItemStatus {
    if let Some(status) = settled(&item.item.action) {
        return status;
    }
    let existed = !matches!(item.item.action, PlannedAction::Create);
    let work = item.detail;
    let mut properties = work.properties.clone();
    for (member, value) in &work.secrets {
        properties.insert(
            (*member).to_owned(),
            Value::String(value.expose().to_owned()),
        );
    }
    let body = serde_json::json!({ "properties": properties });
    let (arm, service) = (&sides.target, sides.target_service.as_str());
    for _ in 0..2 {
        let etag = if existed {
            match apim::etag(arm, service, &work.path).await {
                Ok(etag) => etag,
                Err(error) => {
                    return ItemStatus::Failed {
                        error: error.to_string(),
                    }
                }
            }
        } else {
            None
        };
        match apim::write(
            arm,
            work.method,
            service,
            &work.path,
            &body,
            etag.as_deref(),
        )
        .await
        {
            Ok(Written::Done) => return ItemStatus::written(existed, "written"),
            Ok(Written::Stale) => {}
            Err(error) => {
                return ItemStatus::Failed {
                    error: error.to_string(),
                }
            }
        }
    }
    ItemStatus::Failed {
        error: format!(
            "{} {}: the target's entity changed while atg wrote it (412 twice): run again to compare anew",
            item.item.kind, item.item.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::azure::arm::fake::{answer, FakeArm};

    const SERVICE: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/apim";
    const ENTITY: &str = r#"{"name":"be1","properties":{"url":"https://b"}}"#;
    const STALE: &str =
        r#"{"error":{"code":"PreconditionFailed","message":"The entity changed."}}"#;

    fn sides(fake: &Arc<FakeArm>) -> Sides {
        Sides {
            source: fake.client(WriteAccess::ReadOnly),
            target: fake.client(WriteAccess::ReadWrite),
            source_service: SERVICE.into(),
            target_service: SERVICE.into(),
        }
    }

    fn backend(action: PlannedAction) -> Item {
        let mut properties = Map::new();
        properties.insert("url".into(), Value::String("https://b".into()));
        item(
            entities::BACKEND,
            "be1".into(),
            action,
            Work {
                path: "backends/be1".into(),
                stage: 1,
                method: Method::Put,
                properties,
                secrets: Vec::new(),
            },
        )
    }

    fn update() -> Item {
        backend(PlannedAction::Overwrite {
            differs: vec![Difference::Attributes],
        })
    }

    /// The `If-Match` of each PUT sent.
    fn put_conditions(fake: &FakeArm) -> Vec<Option<String>> {
        fake.sent()
            .iter()
            .filter(|sent| sent.method == "PUT")
            .map(|sent| sent.header("if-match").map(str::to_owned))
            .collect()
    }

    #[tokio::test]
    async fn an_update_carries_the_etag_and_a_412_is_read_again_and_retried() {
        let fake = FakeArm::new(vec![
            answer(200, &[("etag", "\"v1\"")], ENTITY),
            answer(412, &[], STALE),
            answer(200, &[("etag", "\"v2\"")], ENTITY),
            answer(200, &[("etag", "\"v3\"")], ENTITY),
        ]);
        let status = apply_item(&sides(&fake), update()).await;
        assert!(
            matches!(status, ItemStatus::Overwritten { .. }),
            "{status:?}"
        );
        assert_eq!(
            put_conditions(&fake),
            [Some("\"v1\"".to_owned()), Some("\"v2\"".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_second_412_is_reported_and_a_creation_has_no_condition() {
        let fake = FakeArm::new(vec![
            answer(200, &[("etag", "\"v1\"")], ENTITY),
            answer(412, &[], STALE),
            answer(200, &[("etag", "\"v2\"")], ENTITY),
            answer(412, &[], STALE),
        ]);
        let status = apply_item(&sides(&fake), update()).await;
        assert!(
            matches!(&status, ItemStatus::Failed { error } if error.contains("412 twice")),
            "{status:?}"
        );
        // A 201 without a provisioning state is read once more before it counts as done.
        let fake = FakeArm::new(vec![
            answer(201, &[("etag", "\"v1\"")], ENTITY),
            answer(200, &[("etag", "\"v1\"")], ENTITY),
        ]);
        let status = apply_item(&sides(&fake), backend(PlannedAction::Create)).await;
        assert!(matches!(status, ItemStatus::Created { .. }), "{status:?}");
        assert_eq!(put_conditions(&fake), [None]);
    }
}
