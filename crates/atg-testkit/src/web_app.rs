//! Seeding of App Service and Function App scenarios in the emulated ARM: a site (or function
//! app) with its app settings, connection strings (with their type), slots, sticky setting names
//! and functions, described once and stored through the emulator's control mechanism. Functions
//! can only be seeded: the emulator, like atg, never deploys code.
//!
//! In process: [`crate::Emulator::seed_web_app`]. Out of process: PUT each of
//! [`WebAppSeed::resources`] to `/_emulator/arm{resource id}` in order.

use serde_json::{json, Value};

/// A site to seed, built with the methods below.
#[derive(Clone, Debug)]
pub struct WebAppSeed {
    subscription: String,
    resource_group: String,
    name: String,
    /// `app`, `app,linux`, `functionapp`, `functionapp,linux`.
    kind: String,
    location: String,
    settings: Vec<(String, String)>,
    connection_strings: Vec<(String, String, String)>,
    slots: Vec<WebAppSeed>,
    sticky_settings: Vec<String>,
    sticky_connection_strings: Vec<String>,
    functions: Vec<String>,
}

impl WebAppSeed {
    /// A site of `kind` in West Europe, on a plan of the same resource group.
    #[must_use]
    pub fn new(subscription: &str, resource_group: &str, name: &str, kind: &str) -> Self {
        WebAppSeed {
            subscription: subscription.to_owned(),
            resource_group: resource_group.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            location: "West Europe".to_owned(),
            settings: Vec::new(),
            connection_strings: Vec::new(),
            slots: Vec::new(),
            sticky_settings: Vec::new(),
            sticky_connection_strings: Vec::new(),
            functions: Vec::new(),
        }
    }

    #[must_use]
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `kind`: `MySql`, `SQLServer`, `SQLAzure`, `Custom`, ... as App Service names them.
    #[must_use]
    pub fn connection_string(mut self, name: &str, value: &str, kind: &str) -> Self {
        self.connection_strings
            .push((name.to_owned(), value.to_owned(), kind.to_owned()));
        self
    }

    /// A deployment slot with its own settings and connection strings (built with
    /// [`WebAppSeed::slot_named`]); its kind is the site's.
    #[must_use]
    pub fn slot(mut self, slot: WebAppSeed) -> Self {
        self.slots.push(slot);
        self
    }

    /// An empty slot description to pass to [`WebAppSeed::slot`].
    #[must_use]
    pub fn slot_named(name: &str) -> Self {
        Self::new("", "", name, "")
    }

    /// Setting names that stay with the slot in a swap (`slotConfigNames`).
    #[must_use]
    pub fn sticky_setting(mut self, name: &str) -> Self {
        self.sticky_settings.push(name.to_owned());
        self
    }

    #[must_use]
    pub fn sticky_connection_string(mut self, name: &str) -> Self {
        self.sticky_connection_strings.push(name.to_owned());
        self
    }

    /// A function (as if its code were deployed), with a `default` key.
    #[must_use]
    pub fn function(mut self, name: &str) -> Self {
        self.functions.push(name.to_owned());
        self
    }

    /// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Web/sites/{name}`.
    #[must_use]
    pub fn id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Web/sites/{}",
            self.subscription, self.resource_group, self.name
        )
    }

    /// The body of a site or slot whose `siteConfig` carries these settings and connection
    /// strings, which the emulator turns into `config/appsettings` and `config/connectionstrings`.
    fn app_body(&self, kind: &str, farm: &str) -> Value {
        let settings: Vec<Value> = self
            .settings
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        let connection_strings: Vec<Value> = self
            .connection_strings
            .iter()
            .map(|(name, value, kind)| {
                json!({"name": name, "connectionString": value, "type": kind})
            })
            .collect();
        json!({
            "kind": kind,
            "location": self.location,
            "properties": {
                "serverFarmId": farm,
                "siteConfig": {"appSettings": settings, "connectionStrings": connection_strings},
            },
        })
    }

    /// Every resource to store, parents first: `(resource id, body)`.
    #[must_use]
    pub fn resources(&self) -> Vec<(String, Value)> {
        let site = self.id();
        let farm = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Web/serverfarms/{}-plan",
            self.subscription, self.resource_group, self.name
        );
        let mut resources = vec![(site.clone(), self.app_body(&self.kind, &farm))];
        for slot in &self.slots {
            let slot_id = format!("{site}/slots/{}", slot.name);
            resources.push((slot_id.clone(), slot.app_body(&self.kind, &farm)));
            for function in &slot.functions {
                resources.push((format!("{slot_id}/functions/{function}"), json!({})));
            }
        }
        if !self.sticky_settings.is_empty() || !self.sticky_connection_strings.is_empty() {
            resources.push((
                format!("{site}/config/slotConfigNames"),
                json!({
                    "location": self.location,
                    "properties": {
                        "appSettingNames": self.sticky_settings,
                        "connectionStringNames": self.sticky_connection_strings,
                        "azureStorageConfigNames": [],
                    },
                }),
            ));
        }
        for function in &self.functions {
            resources.push((format!("{site}/functions/{function}"), json!({})));
        }
        resources
    }
}
