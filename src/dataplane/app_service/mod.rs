//! App Service and Function Apps (`Microsoft.Web/sites`, kinds `app`, `app,linux`,
//! `functionapp`, `functionapp,linux`): what a deployed site holds that is data rather than
//! infrastructure, copied through ARM (no data-plane host: every call goes to the ARM host).
//!
//! One file per item kind: `slots` (deployment slots created where missing), `settings`
//! (app settings and connection strings of the site and every slot, merged into the target's
//! map), `sticky` (slot-sticky names), `site_config` (the data-like site configuration),
//! `keys` (Function App host and function keys). `key_vault_refs` rewrites Key Vault
//! references to the paired target vault.
//!
//! Application code is not copied (the deployment pipeline, zip deploy or run-from-package
//! does that); the report says so. The plan owns both ARM clients; apply creates the missing
//! slots first, then writes every other item.

pub(crate) mod key_vault_refs;
mod keys;
mod settings;
mod site_config;
mod slots;
mod sticky;

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::kit::{self, apply_each, in_slot, settled, Typed};
use super::{
    ApplyPlan, Capability, DataPlanePlugin, Discovery, ItemKindInfo, ItemStatus, Job, Limit, Mode,
    PermissionInfo, Plan, PlannedAction, PlannedItem, PluginContext, PluginError, PluginInfo, Side,
};
use crate::azure::arm::web::{self, ConnectionString, KeyOwner, SlotConfigNames};
use crate::azure::arm::ArmClient;
use crate::azure::{AzureError, Sensitive, WriteAccess};
use crate::inventory::ResourcePair;
use key_vault_refs::VaultPairs;

const SLOT: &str = "slot";
const APP_SETTINGS: &str = "app-settings";
const CONNECTION_STRINGS: &str = "connection-strings";
const STICKY_NAMES: &str = "sticky-names";
const SITE_CONFIG: &str = "site-config";
const HOST_KEY: &str = "host-key";
const FUNCTION_KEY: &str = "function-key";

/// Slots written at once (each creation is a long-running operation).
const SLOT_CONCURRENCY: usize = 4;
/// Site and slots whose configuration is read at once while planning.
const SCOPE_CONCURRENCY: usize = 4;

static INFO: PluginInfo = PluginInfo {
    name: "app-service",
    resource_types: &["Microsoft.Web/sites"],
    modes: &[Mode::Template, Mode::Replication],
    item_kinds: &[
        ItemKindInfo {
            name: SLOT,
            template: "created in the target when missing (same name, the target site's plan and location, no content)",
            replication: "as template",
        },
        ItemKindInfo {
            name: APP_SETTINGS,
            template: "per site and slot: names the target lacks written with a placeholder; a target value is never replaced; the target's own settings are kept",
            replication: "per site and slot: values merged into the target's map (never a target setting removed; the target's infrastructure settings kept unless options.copy_infrastructure_settings names them); Key Vault references rewritten to the paired target vault",
        },
        ItemKindInfo {
            name: CONNECTION_STRINGS,
            template: "per site and slot: names and types the target lacks, with a placeholder value",
            replication: "per site and slot: values and types merged into the target's map; Key Vault references rewritten",
        },
        ItemKindInfo {
            name: STICKY_NAMES,
            template: "the source's slot-sticky setting and connection string names added to the target's",
            replication: "as template",
        },
        ItemKindInfo {
            name: SITE_CONFIG,
            template: "per site and slot: always-on, default documents, handler mappings, CORS, HTTP/2, web sockets, TLS and FTPS minimums, logging switches, health check path, start-up command (where the target's plan allows them)",
            replication: "as template",
        },
        ItemKindInfo {
            name: HOST_KEY,
            template: "not copied (a placeholder key would be a known credential)",
            replication: "function and system host keys of a Function App (the master key is never copied)",
        },
        ItemKindInfo {
            name: FUNCTION_KEY,
            template: "not copied (a placeholder key would be a known credential)",
            replication: "copied for each function the target has; a function the target lacks is reported with the remedy (deploy the code first)",
        },
    ],
    permissions: &[
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Source,
            data_actions: &[
                "Microsoft.Web/sites/read",
                "Microsoft.Web/sites/slots/read",
                "Microsoft.Web/sites/config/list/action",
                "Microsoft.Web/sites/slots/config/list/action",
            ],
            roles: &["Website Contributor (list actions: Reader cannot read settings)"],
        },
        PermissionInfo {
            mode: Mode::Template,
            side: Side::Target,
            data_actions: &[
                "Microsoft.Web/sites/read",
                "Microsoft.Web/sites/config/list/action",
                "Microsoft.Web/sites/config/write",
                "Microsoft.Web/sites/slots/write",
                "Microsoft.Web/sites/slots/config/write",
            ],
            roles: &["Website Contributor"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Source,
            data_actions: &[
                "Microsoft.Web/sites/read",
                "Microsoft.Web/sites/slots/read",
                "Microsoft.Web/sites/config/list/action",
                "Microsoft.Web/sites/slots/config/list/action",
                "Microsoft.Web/sites/host/listkeys/action",
                "Microsoft.Web/sites/functions/listkeys/action",
            ],
            roles: &["Website Contributor"],
        },
        PermissionInfo {
            mode: Mode::Replication,
            side: Side::Target,
            data_actions: &[
                "Microsoft.Web/sites/read",
                "Microsoft.Web/sites/config/list/action",
                "Microsoft.Web/sites/config/write",
                "Microsoft.Web/sites/slots/write",
                "Microsoft.Web/sites/slots/config/write",
                "Microsoft.Web/sites/host/listkeys/action",
                "Microsoft.Web/sites/host/functionKeys/write",
                "Microsoft.Web/sites/host/systemKeys/write",
                "Microsoft.Web/sites/functions/listkeys/action",
                "Microsoft.Web/sites/functions/keys/write",
            ],
            roles: &["Website Contributor"],
        },
    ],
    notes: &[
        "everything goes through ARM (Microsoft.Web api-version 2024-11-01); settings are written as whole maps (the service has no per-setting write), merged with the target's",
        "application code is not copied: deploy it to the target with its pipeline (zip deploy, run-from-package, container image); function keys of functions the target lacks are copied by a run after that",
        "the target's infrastructure settings (AzureWebJobsStorage, WEBSITE_CONTENTSHARE, WEBSITE_CONTENTAZUREFILECONNECTIONSTRING, APPLICATIONINSIGHTS_CONNECTION_STRING, APPINSIGHTS_INSTRUMENTATIONKEY, FUNCTIONS_*, WEBSITE_RUN_FROM_PACKAGE, DOCKER_REGISTRY_SERVER_*, MICROSOFT_PROVIDER_AUTHENTICATION_SECRET) are kept, each reported; options.copy_infrastructure_settings names those to copy",
        "app settings carry no ETag: a write between atg's read and its write (Terraform, a deployment) is overwritten with the map atg read",
        "template mode still lists the source's settings to learn their names (the service answers names with values): the values are never written, logged or reported",
    ],
    limits: &[
        Limit {
            capability: Capability::Template,
            kinds: &[HOST_KEY, FUNCTION_KEY],
            reason: "a placeholder key would be a known credential: template mode writes no keys",
        },
        Limit {
            capability: Capability::IfSourceNewer,
            kinds: &[],
            reason: "settings, connection strings, site configuration and keys carry no modification time: --on-conflict if-source-newer acts as skip",
        },
    ],
};

/// The pair's options (the target's `options` in the inventory).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Infrastructure settings to copy all the same (names, any case).
    #[serde(default, deserialize_with = "copy_infrastructure_settings")]
    copy_infrastructure_settings: Option<Vec<String>>,
}

fn copy_infrastructure_settings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    kit::options::names(deserializer, "copy_infrastructure_settings")
}

impl Options {
    fn parse(pair: &ResourcePair) -> Result<Options, String> {
        let options: Options = kit::options::parse(&pair.target.options)?;
        for name in options.copy_infrastructure_settings.iter().flatten() {
            if !settings::is_infrastructure(name) {
                return Err(format!(
                    "options.copy_infrastructure_settings: `{}` is not an infrastructure setting (every other setting is copied anyway)",
                    crate::inventory::escape_controls(name)
                ));
            }
        }
        Ok(options)
    }
}

pub struct AppServicePlugin;

#[async_trait]
impl DataPlanePlugin for AppServicePlugin {
    fn info(&self) -> &'static PluginInfo {
        &INFO
    }

    fn validate_options(&self, pair: &ResourcePair) -> Result<(), String> {
        Options::parse(pair).map(drop)
    }

    async fn plan(&self, ctx: &PluginContext, job: &Job) -> Result<Plan, PluginError> {
        let options = Options::parse(&job.pair).map_err(PluginError::Invalid)?;
        let client = |side: &super::SideContext, access| {
            ArmClient::new(&ctx.http, side.credential.clone(), access).map_err(|e| e.to_string())
        };
        let invalid =
            |e: String| PluginError::Invalid(format!("cannot create the ARM client: {e}"));
        let sides = Sides {
            source: client(&ctx.source, WriteAccess::ReadOnly).map_err(invalid)?,
            target: client(&ctx.target, ctx.target.access).map_err(invalid)?,
            source_site: job.pair.source.id.trim_end_matches('/').to_owned(),
            target_site: job.pair.target.id.trim_end_matches('/').to_owned(),
        };
        let planner = Planner {
            ctx,
            job,
            sides: &sides,
            vaults: VaultPairs::new(&ctx.pairs, ctx.http.cloud),
            copy_infrastructure: options.copy_infrastructure_settings.unwrap_or_default(),
        };
        let (slots, items, facts) = planner.plan().await?;
        let discovery = Discovery {
            items: slots.iter().chain(&items).map(|t| t.item.clone()).collect(),
            nested: BTreeMap::new(),
            facts,
        };
        Ok(Plan {
            discovery,
            apply: Box::new(SitePlan {
                sides,
                slots,
                items,
            }),
        })
    }
}

/// Both sides' clients and site ids.
struct Sides {
    source: ArmClient,
    target: ArmClient,
    source_site: String,
    target_site: String,
}

/// A site (`production`) or one of its slots, on one side.
#[derive(Clone, Debug)]
struct Scope {
    label: String,
    slot: Option<String>,
}

impl Scope {
    fn production() -> Self {
        Scope {
            label: "production".into(),
            slot: None,
        }
    }

    fn slot(name: &str) -> Self {
        Scope {
            label: name.to_owned(),
            slot: Some(name.to_owned()),
        }
    }

    /// The scope's id under `site`.
    fn path(&self, site: &str) -> String {
        match &self.slot {
            Some(slot) => format!("{site}/slots/{slot}"),
            None => site.to_owned(),
        }
    }
}

/// What applying one item writes.
#[derive(Clone)]
enum Work {
    /// Nothing: the plan settled it (identical, skipped, failed).
    Settled,
    CreateSlot {
        slot: String,
        on: web::SiteInfo,
    },
    AppSettings {
        scope: Scope,
        map: BTreeMap<String, Sensitive>,
        action: String,
    },
    ConnectionStrings {
        scope: Scope,
        map: BTreeMap<String, ConnectionString>,
        action: String,
    },
    StickyNames(SlotConfigNames),
    SiteConfig {
        scope: Scope,
        fields: Map<String, Value>,
    },
    Key {
        owner: OwnedKeyOwner,
        name: String,
        value: Sensitive,
    },
}

/// [`KeyOwner`] with its names owned, for a plan.
#[derive(Clone, Debug)]
enum OwnedKeyOwner {
    Host(&'static str),
    Function(String),
}

impl OwnedKeyOwner {
    fn borrow(&self) -> KeyOwner<'_> {
        match self {
            OwnedKeyOwner::Host(kind) => KeyOwner::Host(kind),
            OwnedKeyOwner::Function(function) => KeyOwner::Function(function),
        }
    }
}

type Item = Typed<Work>;

fn item(
    kind: &'static str,
    name: String,
    action: PlannedAction,
    notes: Vec<String>,
    work: Work,
) -> Item {
    Typed {
        item: PlannedItem {
            kind,
            name,
            action,
            notes,
            // Set where the item is decided (`Typed::decided_from`): nothing here has a version
            // or an entity tag, so each fingerprint is a digest of the compared shapes.
            fingerprint: None,
        },
        detail: work,
    }
}

/// The fingerprint of an item known by its name alone (a slot; a key, whose value never enters
/// a fingerprint, not even hashed): whether each side holds it. A change of a key's value alone
/// is seen when the plan is applied, by deciding the key again.
fn by_name(name: &str, in_target: bool) -> String {
    let name = Value::from(name);
    kit::fingerprint::shapes(&name, in_target.then_some(&name))
}

/// Reads both sides and plans every item.
struct Planner<'a> {
    ctx: &'a PluginContext,
    job: &'a Job,
    sides: &'a Sides,
    vaults: VaultPairs,
    copy_infrastructure: Vec<String>,
}

type Planned = (Vec<Item>, Vec<Item>, Map<String, Value>);

impl Planner<'_> {
    async fn plan(&self) -> Result<Planned, PluginError> {
        let sides = self.sides;
        let (source_site, target_site) = read_both(
            "site".into(),
            web::site(&sides.source, &sides.source_site),
            web::site(&sides.target, &sides.target_site),
        )
        .await?;
        let (slot_items, target_slots) = slots::plan(sides, &target_site).await?;
        let mut scopes = vec![Scope::production()];
        scopes.extend(slot_items.iter().map(|slot| Scope::slot(&slot.item.name)));
        // Collected first: a stream holding the closure would not be Send for every lifetime.
        let scope_plans: Vec<_> = scopes
            .iter()
            .map(|scope| {
                let in_target = scope
                    .slot
                    .as_ref()
                    .is_none_or(|slot| target_slots.contains(slot));
                self.plan_scope(scope, in_target)
            })
            .collect();
        let per_scope = futures::stream::iter(scope_plans)
            .buffered(SCOPE_CONCURRENCY)
            .try_collect::<Vec<Vec<Item>>>();
        let copies_keys = source_site.is_function_app() && self.job.mode == Mode::Replication;
        let keys = async {
            if copies_keys {
                keys::plan(sides, self.job.on_conflict).await
            } else {
                Ok(Vec::new())
            }
        };
        let (per_scope, sticky, keys) = futures::try_join!(per_scope, sticky::plan(sides), keys)?;
        let mut items: Vec<Item> = per_scope.into_iter().flatten().collect();
        items.push(sticky);
        items.extend(keys);
        let mut facts = Map::new();
        facts.insert("kind".into(), source_site.kind.clone().into());
        facts.insert(
            "application_code".into(),
            "not copied: deploy it to the target with its pipeline (zip deploy, run-from-package, container image)".into(),
        );
        if source_site.is_function_app() && !copies_keys {
            facts.insert(
                "function_keys".into(),
                "not copied in template mode (a placeholder key would be a known credential)"
                    .into(),
            );
        }
        Ok((slot_items, items, facts))
    }

    /// The settings, connection strings and site configuration of one scope, read at once. A
    /// slot the target lacks is planned against empty maps: it is created first.
    async fn plan_scope(&self, scope: &Scope, in_target: bool) -> Result<Vec<Item>, PluginError> {
        let sides = self.sides;
        let source = scope.path(&sides.source_site);
        let target = scope.path(&sides.target_site);
        let rules = |what, infrastructure| settings::Rules {
            what,
            mode: self.job.mode,
            on_conflict: self.job.on_conflict,
            infrastructure,
            copy_infrastructure: &self.copy_infrastructure,
            vaults: &self.vaults,
            cloud: self.ctx.http.cloud,
            placeholder: self.ctx.placeholder,
        };
        let settings_item = async {
            let maps = read_both(
                format!("app settings of {}", scope.label),
                web::app_settings(&sides.source, &source),
                if_present(in_target, web::app_settings(&sides.target, &target)),
            )
            .await?;
            let rules = rules("app setting", true);
            Ok(settings::map_item(
                APP_SETTINGS,
                scope,
                (&maps.0, &maps.1),
                &rules,
                |map, action| Work::AppSettings {
                    scope: scope.clone(),
                    map,
                    action,
                },
            ))
        };
        let strings_item = async {
            let maps = read_both(
                format!("connection strings of {}", scope.label),
                web::connection_strings(&sides.source, &source),
                if_present(in_target, web::connection_strings(&sides.target, &target)),
            )
            .await?;
            let rules = rules("connection string", false);
            Ok(settings::map_item(
                CONNECTION_STRINGS,
                scope,
                (&maps.0, &maps.1),
                &rules,
                |map, action| Work::ConnectionStrings {
                    scope: scope.clone(),
                    map,
                    action,
                },
            ))
        };
        let config_item = site_config::plan(sides, scope, in_target, self.job.on_conflict);
        let (settings_item, strings_item, config_item) =
            futures::try_join!(settings_item, strings_item, config_item)?;
        Ok(vec![settings_item, strings_item, config_item])
    }
}

/// Reads `what` on both sides at once (`source`, `target`); a failure names the side.
async fn read_both<T>(
    what: String,
    source: impl std::future::Future<Output = Result<T, AzureError>>,
    target: impl std::future::Future<Output = Result<T, AzureError>>,
) -> Result<(T, T), PluginError> {
    let named = |side: &'static str| {
        let operation = format!("read the {side} {what}");
        move |error| PluginError::azure(operation, error)
    };
    futures::try_join!(async { source.await.map_err(named("source")) }, async {
        target.await.map_err(named("target"))
    },)
}

/// What `read` answers when the target has the scope (`in_target`), else an empty value
/// without a request: a slot that is yet to be created holds nothing.
async fn if_present<T: Default>(
    in_target: bool,
    read: impl std::future::Future<Output = Result<T, AzureError>>,
) -> Result<T, AzureError> {
    if in_target {
        read.await
    } else {
        Ok(T::default())
    }
}

/// The plan of one site: its clients and its items, slots first.
struct SitePlan {
    sides: Sides,
    slots: Vec<Item>,
    items: Vec<Item>,
}

#[async_trait]
impl ApplyPlan for SitePlan {
    fn retain(&mut self, keep: &dyn Fn(&str, &str) -> bool) {
        for items in [&mut self.slots, &mut self.items] {
            items.retain(|typed| keep(typed.item.kind, &typed.item.name));
        }
    }

    async fn apply(self: Box<Self>, ctx: &PluginContext, job: &Job) -> Result<(), PluginError> {
        let SitePlan {
            sides,
            slots,
            items,
        } = *self;
        let sides = &sides;
        let run = |item: Item| in_slot(ctx, item.item.notes.clone(), apply_item(sides, item));
        apply_each(ctx, job, slots, SLOT_CONCURRENCY, run).await;
        let concurrency = ctx.item_slots.available_permits().max(1);
        apply_each(ctx, job, items, concurrency, run).await;
        Ok(())
    }
}

/// Carries out one item's plan.
async fn apply_item(sides: &Sides, item: Item) -> ItemStatus {
    if let Some(status) = settled(&item.item.action) {
        return status;
    }
    let existed = !matches!(item.item.action, PlannedAction::Create);
    let site = sides.target_site.as_str();
    let arm = &sides.target;
    let written = match item.detail {
        Work::Settled => return ItemStatus::Identical,
        Work::CreateSlot { slot, on } => slots::create(sides, &slot, &on)
            .await
            .map(|()| "created empty on the target site's plan".to_owned()),
        Work::AppSettings { scope, map, action } => {
            web::put_app_settings(arm, &scope.path(site), &map)
                .await
                .map(|()| action)
        }
        Work::ConnectionStrings { scope, map, action } => {
            web::put_connection_strings(arm, &scope.path(site), &map)
                .await
                .map(|()| action)
        }
        Work::StickyNames(names) => web::put_slot_config_names(arm, site, &names)
            .await
            .map(|()| "names added".to_owned()),
        Work::SiteConfig { scope, fields } => {
            let names: Vec<&str> = fields.keys().map(String::as_str).collect();
            let action = names.join(", ");
            web::patch_site_config(arm, &scope.path(site), &fields)
                .await
                .map(|()| action)
        }
        Work::Key { owner, name, value } => web::put_key(arm, site, owner.borrow(), &name, &value)
            .await
            .map(|()| "value copied".to_owned()),
    };
    match written {
        Ok(action) => ItemStatus::written(existed, action),
        Err(error) => ItemStatus::Failed {
            error: error.to_string(),
        },
    }
}
