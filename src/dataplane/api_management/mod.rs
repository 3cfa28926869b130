//! API Management (`Microsoft.ApiManagement/service`): a service's configuration, copied entity
//! by entity through ARM into the paired service (no data-plane host).
//!
//! `entities` lists what is copied and in which stage, by what refers to what: named values,
//! backends, version sets, groups and users first; policy fragments, APIs, products and group
//! members next; schemas and product links; operations; policies (service, API, operation and
//! product scope, compared as XML the service re-formats: `policy`) once everything they
//! reference exists; subscriptions last. `decide` decides each entity: secrets (secret named
//! values, subscription keys) are read through `listValue` and `listSecrets` in replication and
//! never in template mode, which writes placeholders (`backend`: literal credentials too) and
//! lets the service make new keys, keeping the target's. `apply` writes an update only over the
//! version planning compared (`If-Match` with the target entity's `ETag`). Kinds a service's
//! pricing tier lacks (groups in Consumption) are skipped with the reason.

mod apply;
mod backend;
mod decide;
mod entities;
mod fingerprint;
mod policy;

use std::collections::BTreeMap;

use async_trait::async_trait;
use azure_core::http::Method;
use serde_json::{Map, Value};

use super::kit::{pair_by_key, Merged, Newer, Typed};
use super::{
    Capability, DataPlanePlugin, Discovery, ItemKindInfo, Job, Limit, Mode, PermissionInfo, Plan,
    PlannedAction, PlannedItem, PluginContext, PluginError, PluginInfo, Side, EXTRA,
};
use crate::azure::arm::apim;
use crate::azure::arm::ArmClient;
use crate::azure::{AzureError, Sensitive, WriteAccess};
use crate::dataplane::app_service::key_vault_refs::VaultPairs;
use apply::ServicePlan;
use decide::plan_entity;
use entities::{Entity, GROUP_USER, KINDS};

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
        ItemKindInfo {
            name: entities::BACKEND,
            template: "copied; literal credentials (header and query values, authorization parameter, proxy password) written as a placeholder, or the target's kept; {{named value}} references copied",
            replication: "copied, credentials included",
        },
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
            template: "a product's groups linked (the system groups included)",
            replication: "as template",
        },
        ItemKindInfo {
            name: entities::GROUP_USER,
            template: "a custom group's members linked (the system groups' membership is the service's)",
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
        "everything goes through ARM (Microsoft.ApiManagement api-version 2024-05-01); an update goes only over the version compared (If-Match with its ETag): a target entity changed since is reported, never overwritten",
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
        let (items, facts) = plan_items(ctx, job, &sides).await?;
        let discovery = Discovery {
            items: items.iter().map(|item| item.item.clone()).collect(),
            nested: BTreeMap::new(),
            facts,
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
    /// The target's properties as planning compared them (`None`: it had none).
    seen: Option<Map<String, Value>>,
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

/// The error code of a listing the service's pricing tier does not have (groups in the
/// Consumption tier).
const NOT_IN_TIER: &str = "MethodNotAllowedInPricingTier";

/// What one side holds.
#[derive(Default)]
struct Listed {
    entities: Vec<Entity>,
    /// API revisions other than the current one (`apis/echo;rev=2`): listed, never copied.
    revisions: Vec<String>,
    /// The kinds the service's pricing tier does not have (its listing answered
    /// [`NOT_IN_TIER`]).
    not_in_tier: Vec<&'static str>,
}

/// Reads every entity of one side, parents before children.
async fn read_side(arm: &ArmClient, service: &str, to_service: &str) -> Result<Listed, AzureError> {
    let mut side = Listed::default();
    for kind in KINDS {
        if !kind.parents.is_empty()
            && kind
                .parents
                .iter()
                .all(|parent| side.not_in_tier.contains(parent))
        {
            // A group's users, when the tier has no groups.
            side.not_in_tier.push(kind.name);
            continue;
        }
        let found = &side.entities;
        let parents: Vec<String> = if kind.parents.is_empty() {
            vec![String::new()]
        } else {
            let mut parents = Vec::new();
            for parent in kind.parents {
                if parent.is_empty() {
                    parents.push(String::new());
                } else {
                    // A system group's members are the service's to manage: not listed.
                    parents.extend(
                        found
                            .iter()
                            .filter(|e| {
                                e.kind == *parent && !(kind.name == GROUP_USER && e.built_in)
                            })
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
            let documents = match apim::list(arm, service, &collection).await {
                Ok(documents) => documents,
                Err(error) if error.status() == Some(400) && error.has_code(NOT_IN_TIER) => {
                    side.not_in_tier.push(kind.name);
                    break;
                }
                Err(error) => return Err(error),
            };
            for document in documents {
                let name = document["name"].as_str().unwrap_or_default().to_owned();
                if name.contains(';') {
                    side.revisions.push(format!("{collection}/{name}"));
                    continue;
                }
                let path = format!("{collection}/{name}");
                let entity = Entity::new(kind.name, path, &document, service, to_service);
                side.entities.push(entity);
            }
        }
    }
    Ok(side)
}

/// Every item of the pair, and the facts of the report: the kinds either side's pricing tier
/// does not have (`source_tier_lacks`, `target_tier_lacks`).
async fn plan_items(
    ctx: &PluginContext,
    job: &Job,
    sides: &Sides,
) -> Result<(Vec<Item>, Map<String, Value>), PluginError> {
    let source = read_side(&sides.source, &sides.source_service, &sides.target_service)
        .await
        .map_err(|e| PluginError::azure("read the source service", e))?;
    let target = read_side(&sides.target, &sides.target_service, &sides.target_service)
        .await
        .map_err(|e| PluginError::azure("read the target service", e))?;
    let vaults = VaultPairs::new(&ctx.pairs, ctx.http.cloud);
    let mut items = Vec::new();
    let mut facts = Map::new();
    for (fact, kinds) in [
        ("source_tier_lacks", &source.not_in_tier),
        ("target_tier_lacks", &target.not_in_tier),
    ] {
        if !kinds.is_empty() {
            facts.insert(fact.to_owned(), Value::from(kinds.clone()));
        }
    }
    let not_in_target_tier = target.not_in_tier;
    let mut source_entities = source.entities;
    entities::match_administrators_subscriptions(&mut source_entities, &target.entities);
    for merged in pair_by_key(source_entities, target.entities, Entity::key, Entity::key) {
        match merged {
            Merged::SourceOnly(source) if not_in_target_tier.contains(&source.kind) => {
                let reason = format!(
                    "the target service's pricing tier has no {}s ({NOT_IN_TIER}): choose a tier that has them to copy them",
                    source.kind
                );
                items.push(item(
                    source.kind,
                    source.name(),
                    PlannedAction::Skip { reason },
                    Work::settled(),
                ));
            }
            // A built-in the source lacks (another tier) is the service's own, no gap.
            Merged::TargetOnly(target) if job.verify && !target.built_in => {
                let mut extra = item(
                    target.kind,
                    target.name(),
                    PlannedAction::Extra,
                    Work::settled(),
                );
                extra.item.notes.push(EXTRA.to_owned());
                items.push(extra);
            }
            Merged::TargetOnly(_) => {}
            Merged::SourceOnly(source) => {
                items.push(plan_entity(ctx, job, sides, &vaults, source, None).await?);
            }
            Merged::Both(source, target) => {
                items.push(plan_entity(ctx, job, sides, &vaults, source, Some(target)).await?);
            }
        }
    }
    for revision in source.revisions {
        items.push(item(
            entities::API,
            revision.trim_start_matches("apis/").to_owned(),
            PlannedAction::Skip {
                reason: "an API revision other than the current one is not copied".into(),
            },
            Work::settled(),
        ));
    }
    Ok((items, facts))
}

impl Work {
    fn settled() -> Self {
        Work {
            path: String::new(),
            stage: 0,
            method: Method::Put,
            properties: Map::new(),
            secrets: Vec::new(),
            seen: None,
        }
    }

    /// `properties` as an entity of `kind` at this work's path, to compare: what is written
    /// (without its secrets, which the service does not show), or what planning saw.
    fn entity(&self, kind: &'static str, properties: &Map<String, Value>) -> Entity {
        Entity {
            kind,
            path: self.path.clone(),
            properties: properties.clone(),
            built_in: false,
            matched: None,
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
            // Set by `plan_entity` (`fingerprint::decided_from`); none for a skipped revision.
            fingerprint: None,
        },
        detail: work,
    }
}
