//! App Service and Function Apps in the conformance suite: the testkit's emulated ARM
//! (Microsoft.Web), seeded with [`WebAppSeed`] and read back with the plain ARM client of
//! [`super::messaging`] (reqwest and a minted token, not atg's ARM client).
//!
//! Each side holds two sites, and each target of the suite is such a pair of sites (two pairs
//! of the inventory): a web app (app settings, connection strings of five types, two slots with
//! their own settings, sticky names, site configuration) and a function app (settings, host and
//! function keys, two functions seeded on both sides: atg never deploys code). The report names
//! the web app's target ([`World::target_name`]); the function app's items are keyed
//! `"{kind} function-app:{name}"`.
//!
//! Left out of the items compared, since the service or the target's own infrastructure makes
//! them on each side: the infrastructure settings (the target keeps its own, by design; the
//! source's are seeded and must not be copied, so their values are among the secrets), the keys
//! named `default` (every function app and function is created with one), the master key
//! (never copied) and site configuration at the service's defaults (a fresh site's).
//!
//! App Service has no names-only read of app settings and connection strings: `config/*/list`
//! answers values, so template mode reads them to learn the names (the template check still
//! asserts no source value was written). The source value reads counted here are the key reads
//! (`listkeys`), which template mode never makes.

use std::path::PathBuf;

use atg_testkit::web_app::WebAppSeed;
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::messaging::{arm_actions, arm_inventory, arm_writes, forbid_arm, key, ArmRest};
use super::{Fixture, Item, Items, Target, World};
use crate::common::{Stack, SOURCE_SECRET, TARGET_SECRET};

/// The api-version atg's plugin uses.
const API_VERSION: &str = "2024-11-01";
const GROUP: &str = "rg";

/// Settings the target's infrastructure owns (atg keeps the target's): not compared.
const INFRASTRUCTURE: &[&str] = &[
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "WEBSITE_RUN_FROM_PACKAGE",
];

/// The web app: production's settings and connection strings.
const WEB_SETTINGS: Settings = &[
    ("Greeting", "sv-greeting-5e1c0a7f"),
    (
        "ApiBase",
        "https://api.example.test/v2?code=sv-apibase-77d0",
    ),
    ("SlotName", "sv-production-slot-3f1e"),
    (
        "WEBSITE_RUN_FROM_PACKAGE",
        "https://srcpkg.blob.core.windows.net/p/app.zip?sig=sv-package-sas-91ab",
    ),
];
const WEB_STRINGS: ConnectionStrings = &[
    (
        "db",
        "Server=tcp:src.database.windows.net;Password=sv-db-4c2d",
        "SQLAzure",
    ),
    (
        "cache",
        "src.redis.cache.windows.net:6380,password=sv-cache-8e0f",
        "RedisCache",
    ),
    ("legacy", "Server=mysql;Pwd=sv-mysql-1a9b", "MySql"),
    (
        "events",
        "Endpoint=sb://src.servicebus.windows.net/;SharedAccessKey=sv-bus-6d3e",
        "ServiceBus",
    ),
    ("custom", "sv-custom-2b7c", "Custom"),
];
/// App settings `(name, value)` and connection strings `(name, value, type)`.
type Settings = &'static [(&'static str, &'static str)];
type ConnectionStrings = &'static [(&'static str, &'static str, &'static str)];

/// The web app's slots: `(name, settings, connection strings)`.
const SLOTS: &[(&str, Settings, ConnectionStrings)] = &[
    (
        "staging",
        &[
            ("Greeting", "sv-staging-greeting-0d4a"),
            ("SlotName", "sv-staging-slot-7c2b"),
        ],
        &[(
            "db",
            "Server=tcp:stage.database.windows.net;Password=sv-staging-db-9f3a",
            "SQLServer",
        )],
    ),
    ("qa", &[("Greeting", "sv-qa-greeting-4e8d")], &[]),
];
const STICKY_SETTINGS: &[&str] = &["SlotName"];
const STICKY_STRINGS: &[&str] = &["db"];

/// The function app.
const FUNCTION_SETTINGS: Settings = &[
    (
        "AzureWebJobsStorage",
        "DefaultEndpointsProtocol=https;AccountName=srcfunc;AccountKey=sv-func-storage-3a5c",
    ),
    ("FUNCTIONS_WORKER_RUNTIME", "node"),
    ("QueueName", "sv-queue-orders-1b2d"),
    ("ApiKey", "sv-apikey-8d7e"),
];
const FUNCTION_STRINGS: ConnectionStrings = &[
    (
        "bus",
        "Endpoint=sb://fn.servicebus.windows.net/;SharedAccessKey=sv-fn-bus-2f6a",
        "ServiceBus",
    ),
    (
        "docs",
        "AccountEndpoint=https://fn.documents.azure.com/;AccountKey=sv-fn-docdb-5c1e",
        "DocDb",
    ),
];
/// The target function app's own storage: kept by atg.
const TARGET_STORAGE: &str =
    "DefaultEndpointsProtocol=https;AccountName=dstfunc;AccountKey=sv-target-storage-0e2f";
const FUNCTIONS: &[&str] = &["HttpTrigger1", "TimerTrigger1"];
/// `(host collection, key name)`, and `(function, key name)`: their values are [`key`]s.
const HOST_KEYS: &[(&str, &str)] = &[
    ("functionKeys", "deploy-hook"),
    ("systemKeys", "durabletask_extension"),
];
const FUNCTION_KEYS: &[(&str, &str)] = &[
    ("HttpTrigger1", "client-a"),
    ("HttpTrigger1", "client-b"),
    ("TimerTrigger1", "ops"),
];

/// Site configuration seeded: `(scope below the web app, fields)`, and the function app's.
fn web_site_config() -> Vec<(&'static str, Value)> {
    vec![
        (
            "",
            json!({
                "alwaysOn": false,
                "defaultDocuments": ["app.html", "index.html"],
                "cors": { "allowedOrigins": ["https://portal.example.test"], "supportCredentials": true },
                "http20Enabled": false,
                "webSocketsEnabled": true,
                "ftpsState": "FtpsOnly",
                "healthCheckPath": "/healthz",
                "appCommandLine": "node server.js",
            }),
        ),
        ("/slots/staging", json!({ "healthCheckPath": "/ready" })),
    ]
}

fn function_site_config() -> Value {
    json!({ "cors": { "allowedOrigins": ["https://functions.example.test"] } })
}

/// The site configuration fields compared: those seeded.
const CONFIG_FIELDS: &[&str] = &[
    "alwaysOn",
    "defaultDocuments",
    "cors",
    "http20Enabled",
    "webSocketsEnabled",
    "ftpsState",
    "healthCheckPath",
    "appCommandLine",
];

/// The item the conflicts check makes differ, and the value it gives the target.
const DAMAGED: &str = "app-settings production";
const DAMAGED_VALUE: &str = "sv-damaged-greeting-6a0b";

fn key_value(owner: &str, name: &str) -> String {
    key(&format!("{owner}-{name}"))
}

fn site_id(subscription: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{GROUP}/providers/Microsoft.Web/sites/{name}"
    )
}

fn with_settings(
    mut seed: WebAppSeed,
    settings: &[(&str, &str)],
    strings: &[(&str, &str, &str)],
) -> WebAppSeed {
    for (name, value) in settings {
        seed = seed.setting(name, value);
    }
    for (name, value, kind) in strings {
        seed = seed.connection_string(name, value, kind);
    }
    seed
}

fn with_functions(mut seed: WebAppSeed) -> WebAppSeed {
    for function in FUNCTIONS {
        seed = seed.function(function);
    }
    seed
}

pub struct AppServiceFixture;

pub struct AppServiceWorld {
    stack: Stack,
    arm: ArmRest,
    /// A fresh site's configuration: what the service sets by itself.
    defaults: Map<String, Value>,
}

impl AppServiceWorld {
    fn source_sites(&self) -> [String; 2] {
        [
            site_id("source-sub", "src-web"),
            site_id("source-sub", "src-func"),
        ]
    }

    /// The web app and the function app of `target`.
    fn target_sites(&self, target: Target) -> [String; 2] {
        let web = self.target_name(target);
        let function = web.replacen("dst-", "fn-", 1);
        [
            site_id("target-sub", &web),
            site_id("target-sub", &function),
        ]
    }

    async fn send(&self, method: Method, id: &str, body: Option<&Value>) -> Value {
        self.arm.ok(method, id, body).await
    }

    /// A map config (`appsettings`, `connectionstrings`) of a site or slot.
    async fn map_config(&self, scope: &str, config: &str) -> Map<String, Value> {
        let answer = self
            .send(Method::POST, &format!("{scope}/config/{config}/list"), None)
            .await;
        answer["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// Both sides' sites, read back: `sites[0]` a web app, `sites[1]` a function app.
    async fn read_sites(&self, sites: &[String; 2]) -> Items {
        let mut items = Items::new();
        self.read_site(&sites[0], "", &mut items).await;
        self.read_site(&sites[1], "function-app:", &mut items).await;
        self.read_keys(&sites[1], "function-app:", &mut items).await;
        items
    }

    async fn read_site(&self, site: &str, prefix: &str, items: &mut Items) {
        let mut insert = |kind: &str, name: &str, shape: Value, value: Option<Value>| {
            // A PUT replaces a resource: ARM keeps no versions to count.
            let item = Item {
                shape,
                value,
                writes: 1,
            };
            items.insert(format!("{kind} {prefix}{name}"), item);
        };
        let mut scopes = vec![("production".to_owned(), site.to_owned())];
        for slot in self.arm.list(&format!("{site}/slots")).await {
            let name = slot["name"].as_str().unwrap().rsplit('/').next().unwrap();
            insert("slot", name, Value::Null, None);
            scopes.push((name.to_owned(), format!("{site}/slots/{name}")));
        }
        for (label, scope) in &scopes {
            let mut settings = self.map_config(scope, "appsettings").await;
            settings.retain(|name, _| !INFRASTRUCTURE.contains(&name.as_str()));
            if !settings.is_empty() {
                let names: Vec<&String> = settings.keys().collect();
                let shape = json!(names);
                insert("app-settings", label, shape, Some(Value::Object(settings)));
            }
            let strings = self.map_config(scope, "connectionstrings").await;
            if !strings.is_empty() {
                let shape: Map<String, Value> = strings
                    .iter()
                    .map(|(name, entry)| (name.clone(), entry["type"].clone()))
                    .collect();
                let values: Map<String, Value> = strings
                    .iter()
                    .map(|(name, entry)| (name.clone(), entry["value"].clone()))
                    .collect();
                insert(
                    "connection-strings",
                    label,
                    Value::Object(shape),
                    Some(Value::Object(values)),
                );
            }
            let config = self
                .send(Method::GET, &format!("{scope}/config/web"), None)
                .await;
            let changed: Map<String, Value> = CONFIG_FIELDS
                .iter()
                .filter_map(|field| {
                    let value = &config["properties"][*field];
                    (self.defaults.get(*field) != Some(value))
                        .then(|| ((*field).to_owned(), value.clone()))
                })
                .collect();
            if !changed.is_empty() {
                insert("site-config", label, Value::Object(changed), None);
            }
        }
        let sticky = self
            .send(Method::GET, &format!("{site}/config/slotConfigNames"), None)
            .await;
        let names = |list: &str| {
            let mut names: Vec<String> = sticky["properties"][list]
                .as_array()
                .into_iter()
                .flatten()
                .map(|name| name.as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        };
        let (settings, strings) = (names("appSettingNames"), names("connectionStringNames"));
        if !settings.is_empty() || !strings.is_empty() {
            let shape = json!({ "appSettingNames": settings, "connectionStringNames": strings });
            insert("sticky-names", "site", shape, None);
        }
    }

    /// A function app's host and function keys, but those named `default` and the master key.
    async fn read_keys(&self, site: &str, prefix: &str, items: &mut Items) {
        let mut insert = |kind: &str, name: String, key: &Value| {
            let item = Item {
                shape: Value::Null,
                value: Some(key.clone()),
                writes: 1,
            };
            items.insert(format!("{kind} {prefix}{name}"), item);
        };
        let host = self
            .send(Method::POST, &format!("{site}/host/default/listkeys"), None)
            .await;
        for collection in ["functionKeys", "systemKeys"] {
            for (name, key) in host[collection].as_object().into_iter().flatten() {
                if name != "default" {
                    insert("host-key", format!("{collection}/{name}"), key);
                }
            }
        }
        for function in self.arm.list(&format!("{site}/functions")).await {
            let function = function["name"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let keys = self
                .send(
                    Method::POST,
                    &format!("{site}/functions/{function}/listkeys"),
                    None,
                )
                .await;
            for (name, key) in keys["properties"].as_object().into_iter().flatten() {
                if name != "default" {
                    insert("function-key", format!("{function}/{name}"), key);
                }
            }
        }
    }

    /// The source's web app production settings, written back with `change`.
    async fn rewrite_settings(&self, site: &str, change: impl FnOnce(&mut Map<String, Value>)) {
        let mut settings = self.map_config(site, "appsettings").await;
        change(&mut settings);
        self.send(
            Method::PUT,
            &format!("{site}/config/appsettings"),
            Some(&json!({ "properties": settings })),
        )
        .await;
    }
}

impl Fixture for AppServiceFixture {
    type World = AppServiceWorld;
    const PLUGIN: &'static str = "app-service";

    async fn start(&self) -> AppServiceWorld {
        let stack = Stack::start().await;
        let arm = ArmRest::at(&stack, API_VERSION);
        let mut world = AppServiceWorld {
            stack,
            arm,
            defaults: Map::new(),
        };
        for target in Target::ALL {
            let [web, function] = world.target_sites(target);
            let name = |id: &str| id.rsplit('/').next().unwrap().to_owned();
            let emulator = &world.stack.emulator;
            emulator
                .seed_web_app(&WebAppSeed::new("target-sub", GROUP, &name(&web), "app"))
                .unwrap();
            let function_app =
                WebAppSeed::new("target-sub", GROUP, &name(&function), "functionapp")
                    .setting("AzureWebJobsStorage", TARGET_STORAGE)
                    .setting("FUNCTIONS_WORKER_RUNTIME", "node");
            emulator
                .seed_web_app(&with_functions(function_app))
                .unwrap();
        }
        let fresh = &world.target_sites(Target::Template)[0];
        let config = world
            .send(Method::GET, &format!("{fresh}/config/web"), None)
            .await;
        world.defaults = config["properties"].as_object().cloned().unwrap();
        world
    }
}

impl World for AppServiceWorld {
    async fn seed_source(&self) {
        let [web, function] = self.source_sites();
        let mut web_app = with_settings(
            WebAppSeed::new("source-sub", GROUP, "src-web", "app"),
            WEB_SETTINGS,
            WEB_STRINGS,
        );
        for (slot, settings, strings) in SLOTS {
            web_app = web_app.slot(with_settings(
                WebAppSeed::slot_named(slot),
                settings,
                strings,
            ));
        }
        for name in STICKY_SETTINGS {
            web_app = web_app.sticky_setting(name);
        }
        for name in STICKY_STRINGS {
            web_app = web_app.sticky_connection_string(name);
        }
        let function_app = with_settings(
            WebAppSeed::new("source-sub", GROUP, "src-func", "functionapp"),
            FUNCTION_SETTINGS,
            FUNCTION_STRINGS,
        );
        let emulator = &self.stack.emulator;
        emulator.seed_web_app(&web_app).unwrap();
        emulator
            .seed_web_app(&with_functions(function_app))
            .unwrap();
        let patch = |scope: String, fields: Value| async move {
            let body = json!({ "properties": fields });
            self.send(Method::PATCH, &format!("{scope}/config/web"), Some(&body))
                .await;
        };
        for (below, fields) in web_site_config() {
            patch(format!("{web}{below}"), fields).await;
        }
        patch(function.clone(), function_site_config()).await;
        for (collection, name) in HOST_KEYS {
            let body = json!({ "properties": { "value": key_value(collection, name) } });
            let id = format!("{function}/host/default/{collection}/{name}");
            self.send(Method::PUT, &id, Some(&body)).await;
        }
        for (owner, name) in FUNCTION_KEYS {
            let body = json!({ "properties": { "value": key_value(owner, name) } });
            let id = format!("{function}/functions/{owner}/keys/{name}");
            self.send(Method::PUT, &id, Some(&body)).await;
        }
    }

    fn target_name(&self, target: Target) -> String {
        target.name().to_owned()
    }

    fn inventory(&self, targets: &[Target]) -> PathBuf {
        let pairs: Vec<(String, String)> = targets
            .iter()
            .flat_map(|target| {
                self.source_sites()
                    .into_iter()
                    .zip(self.target_sites(*target))
            })
            .collect();
        arm_inventory(&self.stack, "Microsoft.Web/sites", &pairs)
    }

    async fn read_source(&self) -> Items {
        self.read_sites(&self.source_sites()).await
    }

    async fn read_target(&self, target: Target) -> Items {
        self.read_sites(&self.target_sites(target)).await
    }

    fn writes(&self, target: Target) -> Vec<String> {
        // Settings and keys are read by POST: `list` and `listkeys` change nothing.
        arm_writes(
            &self.stack,
            &self.target_sites(target),
            &["/list", "/listkeys"],
        )
    }

    fn source_value_reads(&self) -> Vec<String> {
        arm_actions(&self.stack, &self.source_sites(), &["/listkeys"])
    }

    emulated_arm_world!();

    fn forbid(&self, target: Target) {
        forbid_arm(&self.stack, &self.target_sites(target));
    }

    async fn damage(&self, target: Target) -> String {
        let web = &self.target_sites(target)[0];
        self.rewrite_settings(web, |settings| {
            settings.insert("Greeting".into(), json!(DAMAGED_VALUE));
        })
        .await;
        DAMAGED.to_owned()
    }

    async fn touch_source(&self, key: &str) {
        assert_eq!(key, DAMAGED);
        self.rewrite_settings(&self.source_sites()[0], |_| {}).await;
    }

    fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![
            TARGET_SECRET.to_owned(),
            SOURCE_SECRET.to_owned(),
            // A token's header.
            "eyJ".to_owned(),
            TARGET_STORAGE.to_owned(),
            DAMAGED_VALUE.to_owned(),
        ];
        let slot_settings = SLOTS.iter().flat_map(|(_, settings, _)| settings.iter());
        let settings = WEB_SETTINGS
            .iter()
            .chain(FUNCTION_SETTINGS)
            .chain(slot_settings);
        // Every seeded value but the runtime's name (`node`).
        secrets.extend(
            settings
                .map(|(_, value)| *value)
                .filter(|value| value.contains("sv-"))
                .map(str::to_owned),
        );
        let slot_strings = SLOTS.iter().flat_map(|(_, _, strings)| strings.iter());
        let strings = WEB_STRINGS
            .iter()
            .chain(FUNCTION_STRINGS)
            .chain(slot_strings);
        secrets.extend(strings.map(|(_, value, _)| (*value).to_owned()));
        secrets.extend(
            HOST_KEYS
                .iter()
                .chain(FUNCTION_KEYS)
                .map(|(owner, name)| key_value(owner, name)),
        );
        secrets
    }
}

#[tokio::test]
async fn conformance() {
    super::run(&AppServiceFixture).await;
}
