//! Microsoft.Web: sites and slots in the recorded shapes, settings and connection strings, function
//! apps' keys, and web apps seeded by the tests.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{Answer, Arm, GROUP};

pub(crate) const SITE: &str = "/providers/Microsoft.Web/sites/app1";
const WEB_API: &str = "api-version=2023-01-01";
const FARM: &str =
    "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Web/serverfarms/plan1";

impl Arm {
    /// A Microsoft.Web request (its api-versions are checked).
    pub(crate) async fn web(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, &format!("{GROUP}{path}?{WEB_API}"), body, &[])
            .await
    }

    /// `POST {scope}/config/{config}/list`.
    pub(crate) async fn list(&self, scope: &str, config: &str) -> Answer {
        self.web(Method::POST, &format!("{scope}/config/{config}/list"), None)
            .await
    }

    pub(crate) async fn create_site(&self, kind: &str) {
        let created = self
            .web(
                Method::PUT,
                SITE,
                Some(json!({
                    "kind": kind,
                    "location": "West Europe",
                    "properties": {
                        "serverFarmId": FARM,
                        "siteConfig": {
                            "alwaysOn": true,
                            "appSettings": [{"name": "WEBSITE_NODE_DEFAULT_VERSION", "value": "~14"}],
                        },
                    },
                })),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    }
}

#[tokio::test]
async fn sites_and_slots_answer_in_the_recorded_shapes() {
    let arm = Arm::start().await;
    let unversioned = arm
        .send(
            Method::GET,
            &format!("{GROUP}{SITE}?api-version=2099-01-01"),
            None,
            &[],
        )
        .await;
    assert_eq!(unversioned.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unversioned.body["error"]["code"],
        "NoRegisteredProviderFound"
    );
    let no_location = arm
        .web(Method::PUT, SITE, Some(json!({"properties": {}})))
        .await;
    assert_eq!(no_location.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_location.body["error"]["code"], "LocationRequired");

    arm.create_site("app,linux").await;
    let site = arm.web(Method::GET, SITE, None).await;
    assert_eq!(site.body["kind"], "app,linux");
    assert_eq!(site.body["name"], "app1");
    assert_eq!(site.body["properties"]["serverFarmId"], FARM);
    assert_eq!(
        site.body["properties"]["defaultHostName"],
        "app1.azurewebsites.net"
    );
    assert!(site.body["properties"].get("sshEnabled").is_some());
    assert!(!site.header("etag").is_empty());
    let older = arm
        .send(
            Method::GET,
            &format!("{GROUP}{SITE}?api-version=2022-03-01"),
            None,
            &[],
        )
        .await;
    assert!(
        older.body["properties"].get("sshEnabled").is_none(),
        "2023-01-01 members are absent at 2022-03-01"
    );

    // A slot needs its site, a location and a plan; it is named `site/slot`.
    let orphan = arm
        .web(
            Method::PUT,
            "/providers/Microsoft.Web/sites/absent/slots/dev",
            Some(json!({"location": "West Europe", "properties": {"serverFarmId": FARM}})),
        )
        .await;
    assert_eq!(orphan.body["error"]["code"], "ParentResourceNotFound");
    let no_plan = arm
        .web(
            Method::PUT,
            &format!("{SITE}/slots/dev"),
            Some(json!({"location": "West Europe", "properties": {}})),
        )
        .await;
    assert_eq!(no_plan.status, StatusCode::BAD_REQUEST);
    let slot = arm
        .web(
            Method::PUT,
            &format!("{SITE}/slots/dev"),
            Some(json!({"location": "West Europe", "properties": {"serverFarmId": FARM}})),
        )
        .await;
    assert_eq!(slot.status, StatusCode::OK, "{}", slot.body);
    assert_eq!(slot.body["name"], "app1/dev");
    assert_eq!(slot.body["type"], "Microsoft.Web/sites/slots");
    assert_eq!(
        slot.body["kind"], "app,linux",
        "a slot takes its site's kind"
    );
    assert_eq!(slot.body["properties"]["name"], "app1(dev)");
    let slots = arm.web(Method::GET, &format!("{SITE}/slots"), None).await;
    assert_eq!(slots.body["value"].as_array().map(Vec::len), Some(1));

    // config/web: GET names the site; PATCH merges and its answer names the slot, as recorded.
    let web = arm
        .web(Method::GET, &format!("{SITE}/slots/dev/config/web"), None)
        .await;
    assert_eq!(web.body["name"], "app1");
    assert_eq!(web.body["type"], "Microsoft.Web/sites/config");
    let patched = arm
        .web(
            Method::PATCH,
            &format!("{SITE}/slots/dev/config/web"),
            Some(json!({"properties": {"alwaysOn": false, "defaultDocuments": ["a.html"]}})),
        )
        .await;
    assert_eq!(patched.body["name"], "app1/dev");
    assert_eq!(patched.body["type"], "Microsoft.Web/sites/slots");
    assert_eq!(
        patched.body["properties"]["defaultDocuments"],
        json!(["a.html"])
    );
    assert_eq!(
        patched.body["properties"]["numberOfWorkers"], 1,
        "a PATCH keeps the rest"
    );
    let site_web = arm
        .web(Method::GET, &format!("{SITE}/config/web"), None)
        .await;
    assert_eq!(
        site_web.body["properties"]["alwaysOn"], true,
        "from the site's siteConfig"
    );

    let deleted = arm
        .web(Method::DELETE, &format!("{SITE}/slots/dev"), None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(deleted.body.is_null());
    arm.emulator.shutdown().await;
}

#[tokio::test]
async fn settings_and_connection_strings_are_listed_and_replaced_whole() {
    let arm = Arm::start().await;
    arm.create_site("app").await;
    arm.web(
        Method::PUT,
        &format!("{SITE}/slots/staging"),
        Some(json!({"location": "West Europe", "properties": {"serverFarmId": FARM}})),
    )
    .await;
    for scope in [SITE.to_owned(), format!("{SITE}/slots/staging")] {
        let refused = arm
            .web(Method::GET, &format!("{scope}/config/appsettings"), None)
            .await;
        assert_eq!(
            refused.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "values are read by list only"
        );
        let put = arm
            .web(
                Method::PUT,
                &format!("{scope}/config/appsettings"),
                Some(json!({"properties": {"s1": "v1", "s2": "v2"}})),
            )
            .await;
        assert_eq!(put.status, StatusCode::OK);
        assert_eq!(put.body["name"], "appsettings");
        assert_eq!(put.body["type"], "Microsoft.Web/sites/config");
        assert_eq!(put.body["location"], "West Europe");
        // Full replace: a setting left out of the PUT is gone.
        arm.web(
            Method::PUT,
            &format!("{scope}/config/appsettings"),
            Some(json!({"properties": {"s2": "v2b"}})),
        )
        .await;
        let listed = arm.list(&scope, "appsettings").await;
        assert_eq!(listed.status, StatusCode::OK);
        assert_eq!(listed.body["properties"], json!({"s2": "v2b"}));

        let bad_type = arm
            .web(
                Method::PUT,
                &format!("{scope}/config/connectionstrings"),
                Some(json!({"properties": {"c1": {"value": "x", "type": "Oracle"}}})),
            )
            .await;
        assert_eq!(bad_type.status, StatusCode::BAD_REQUEST);
        arm.web(
            Method::PUT,
            &format!("{scope}/config/connectionstrings"),
            Some(json!({"properties": {"c1": {"value": "conn1", "type": "SQLAzure"}}})),
        )
        .await;
        let strings = arm.list(&scope, "connectionstrings").await;
        assert_eq!(
            strings.body["properties"]["c1"],
            json!({"value": "conn1", "type": "SQLAzure"})
        );
    }
    let production = arm.list(SITE, "appsettings").await;
    assert_eq!(
        production.body["id"]
            .as_str()
            .map(|id| id.contains("/slots/")),
        Some(false)
    );

    // Sticky names: site level only, null until written, then all three lists replaced.
    let names = arm
        .web(Method::GET, &format!("{SITE}/config/slotConfigNames"), None)
        .await;
    assert_eq!(
        names.body,
        json!({"id": null, "name": "app1", "type": "Microsoft.Web/sites", "location": "West Europe",
               "properties": {"connectionStringNames": null, "appSettingNames": null, "azureStorageConfigNames": null}})
    );
    let put = arm
        .web(
            Method::PUT,
            &format!("{SITE}/config/slotConfigNames"),
            Some(json!({"properties": {"appSettingNames": ["s2"]}})),
        )
        .await;
    assert_eq!(
        put.body["properties"],
        json!({"connectionStringNames": [], "appSettingNames": ["s2"], "azureStorageConfigNames": []})
    );
    let under_slot = arm
        .web(
            Method::GET,
            &format!("{SITE}/slots/staging/config/slotConfigNames"),
            None,
        )
        .await;
    assert_eq!(under_slot.status, StatusCode::NOT_FOUND);
    let missing_site = arm
        .web(
            Method::POST,
            "/providers/Microsoft.Web/sites/absent/config/appsettings/list",
            None,
        )
        .await;
    assert_eq!(missing_site.status, StatusCode::NOT_FOUND);
    arm.emulator.shutdown().await;
}

#[tokio::test]
async fn function_apps_have_host_keys_and_keys_of_seeded_functions() {
    let arm = Arm::start().await;
    arm.create_site("functionapp,linux").await;
    let keys = arm
        .web(Method::POST, &format!("{SITE}/host/default/listkeys"), None)
        .await;
    assert_eq!(keys.status, StatusCode::OK);
    assert!(keys.body["masterKey"]
        .as_str()
        .is_some_and(|key| key.len() > 40));
    assert!(keys.body["functionKeys"]["default"].is_string());
    assert_eq!(keys.body["systemKeys"], json!({}));

    let put = arm
        .web(
            Method::PUT,
            &format!("{SITE}/host/default/functionKeys/keyname1"),
            Some(json!({"properties": {"name": "keyname1", "value": "keyvalue1"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.body["type"], "Microsoft.Web/sites/host/functionKeys");
    assert_eq!(
        put.body["properties"],
        json!({"name": "keyname1", "value": "keyvalue1"})
    );
    let again = arm
        .web(
            Method::PUT,
            &format!("{SITE}/host/default/functionKeys/keyname1"),
            Some(json!({"properties": {"name": "keyname1", "value": "keyvalue2"}})),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    arm.web(
        Method::PUT,
        &format!("{SITE}/host/default/systemKeys/durabletask_extension"),
        Some(json!({"properties": {"value": "sys1"}})),
    )
    .await;
    let keys = arm
        .web(Method::POST, &format!("{SITE}/host/default/listkeys"), None)
        .await;
    assert_eq!(keys.body["functionKeys"]["keyname1"], "keyvalue2");
    assert_eq!(keys.body["systemKeys"]["durabletask_extension"], "sys1");
    let deleted = arm
        .web(
            Method::DELETE,
            &format!("{SITE}/host/default/functionKeys/keyname1"),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    // Functions exist only when seeded: code is never deployed here.
    let functions = arm
        .web(Method::GET, &format!("{SITE}/functions"), None)
        .await;
    assert_eq!(functions.body["value"], json!([]));
    let missing = arm
        .web(
            Method::POST,
            &format!("{SITE}/functions/HttpTrigger1/listkeys"),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let refused = arm
        .web(
            Method::PUT,
            &format!("{SITE}/functions/HttpTrigger1"),
            Some(json!({"properties": {}})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let missing_key = arm
        .web(
            Method::PUT,
            &format!("{SITE}/functions/HttpTrigger1/keys/k1"),
            Some(json!({"properties": {"value": "v"}})),
        )
        .await;
    assert_eq!(missing_key.status, StatusCode::NOT_FOUND);

    // Seeding through the control API, as an out-of-process peer would.
    let seeded = arm
        .http
        .put(format!(
            "https://management.azure.com/_emulator/arm/subscriptions/sub1/resourceGroups/rg1{SITE}/functions/HttpTrigger1"
        ))
        .json(&json!({"properties": {"language": "node"}}))
        .send()
        .await
        .expect("seed");
    assert_eq!(seeded.status(), StatusCode::NO_CONTENT);
    let functions = arm
        .web(Method::GET, &format!("{SITE}/functions"), None)
        .await;
    assert_eq!(functions.body["value"][0]["name"], "app1/HttpTrigger1");
    assert_eq!(
        functions.body["value"][0]["type"],
        "Microsoft.Web/sites/functions"
    );
    let put = arm
        .web(
            Method::PUT,
            &format!("{SITE}/functions/HttpTrigger1/keys/k1"),
            Some(json!({"properties": {"name": "k1", "value": "fk1"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let keys = arm
        .web(
            Method::POST,
            &format!("{SITE}/functions/HttpTrigger1/listkeys"),
            None,
        )
        .await;
    assert_eq!(keys.status, StatusCode::OK);
    assert_eq!(keys.body["properties"]["k1"], "fk1");
    assert!(keys.body["properties"]["default"].is_string());

    // A web app has no host keys.
    let arm_web = arm
        .web(
            Method::PUT,
            "/providers/Microsoft.Web/sites/web1",
            Some(json!({"kind": "app", "location": "West Europe"})),
        )
        .await;
    assert_eq!(arm_web.status, StatusCode::OK);
    let none = arm
        .web(
            Method::POST,
            "/providers/Microsoft.Web/sites/web1/host/default/listkeys",
            None,
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    arm.emulator.shutdown().await;
}

#[tokio::test]
async fn seeded_web_apps_read_back_through_arm() {
    use atg_testkit::web_app::WebAppSeed;
    let arm = Arm::start().await;
    let app = WebAppSeed::new("sub1", "rg1", "app1", "functionapp,linux")
        .setting("FUNCTIONS_WORKER_RUNTIME", "node")
        .setting("s1", "v1")
        .connection_string("db", "Server=x", "SQLAzure")
        .sticky_setting("s1")
        .function("HttpTrigger1")
        .slot(
            WebAppSeed::slot_named("staging")
                .setting("s1", "staging-v1")
                .function("HttpTrigger1"),
        );
    arm.emulator.seed_web_app(&app).expect("seed");

    let settings = arm.list(SITE, "appsettings").await;
    assert_eq!(
        settings.body["properties"],
        json!({"FUNCTIONS_WORKER_RUNTIME": "node", "s1": "v1"})
    );
    let strings = arm.list(SITE, "connectionstrings").await;
    assert_eq!(
        strings.body["properties"]["db"],
        json!({"value": "Server=x", "type": "SQLAzure"})
    );
    let sticky = arm
        .web(Method::GET, &format!("{SITE}/config/slotConfigNames"), None)
        .await;
    assert_eq!(sticky.body["properties"]["appSettingNames"], json!(["s1"]));
    let site = arm.web(Method::GET, SITE, None).await;
    assert_eq!(site.body["kind"], "functionapp,linux");
    let slot = arm
        .list(&format!("{SITE}/slots/staging"), "appsettings")
        .await;
    assert_eq!(slot.body["properties"], json!({"s1": "staging-v1"}));
    for scope in [SITE.to_owned(), format!("{SITE}/slots/staging")] {
        let functions = arm
            .web(Method::GET, &format!("{scope}/functions"), None)
            .await;
        assert_eq!(
            functions.body["value"].as_array().map(Vec::len),
            Some(1),
            "{scope}"
        );
        let host = arm
            .web(
                Method::POST,
                &format!("{scope}/host/default/listkeys"),
                None,
            )
            .await;
        assert_eq!(host.status, StatusCode::OK, "{scope}");
    }

    // The same description through the control API, as an out-of-process peer would.
    let other = WebAppSeed::new("sub1", "rg1", "web2", "app").setting("a", "1");
    for (id, body) in other.resources() {
        let seeded = arm
            .http
            .put(format!("https://management.azure.com/_emulator/arm{id}"))
            .json(&body)
            .send()
            .await
            .expect("seed");
        assert_eq!(seeded.status(), StatusCode::NO_CONTENT);
    }
    let listed = arm
        .web(
            Method::POST,
            "/providers/Microsoft.Web/sites/web2/config/appsettings/list",
            None,
        )
        .await;
    assert_eq!(listed.body["properties"], json!({"a": "1"}));
    arm.emulator.shutdown().await;
}
