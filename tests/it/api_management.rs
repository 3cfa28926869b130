//! API Management end to end: the real binary copies a seeded source service into a target
//! service of the emulated ARM; the target is read back with the test kit's plain REST client
//! (not atg's ARM client). Covers secret named values (listValue, never in output), the
//! defaults of a new service matched, subscription keys preserved in replication and new in
//! template, the dependency order of the writes, and a re-run writing nothing.

use serde_json::{json, Value};

use crate::common::*;
use crate::conformance::messaging::ArmRest;
use crate::plan::{apply_a_fresh_plan, apply_plan, assert_not_written, assert_stale, make_plan};

const SOURCE: &str =
    "/subscriptions/source-sub/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-src";
const TARGET: &str =
    "/subscriptions/target-sub/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-dst";
const SECRET: &str = "named-value-secret-3f9a1c";
const PRIMARY: &str = "0123456789abcdef0123456789abcdef";
const SECONDARY: &str = "fedcba9876543210fedcba9876543210";
/// A backend's literal credential (a header value).
const BACKEND_SECRET: &str = "backend-header-secret-77c2e0";
const POLICY: &str = "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"x-k\" exists-action=\"override\"><value>{{backend-key}}</value></set-header>\n  </inbound>\n  <backend><base /></backend>\n  <outbound><base /></outbound>\n  <on-error><base /></on-error>\n</policies>";

fn seed(stack: &Stack) {
    seed_with_target_tier(stack, "Developer");
}

/// The source service (Developer tier) with every kind, and an empty target service of `tier`.
fn seed_with_target_tier(stack: &Stack, tier: &str) {
    for (id, tier) in [(SOURCE, "Developer"), (TARGET, tier)] {
        let service = json!({ "location": "westeurope", "sku": { "name": tier, "capacity": 1 }, "properties": {} });
        stack.emulator.seed_arm_resource(id, service).unwrap();
    }
    // The target's administrator is its own (another publisher email): matched, never written.
    stack
        .emulator
        .seed_arm_resource(
            &format!("{TARGET}/users/1"),
            json!({ "properties": { "firstName": "Administrator", "lastName": "", "email": "owner@target.example", "state": "active" } }),
        )
        .unwrap();
    let seed = |path: &str, properties: Value| seed_entity(stack, SOURCE, path, properties);
    seed(
        "namedValues/plain",
        json!({ "displayName": "plain", "value": "hello", "secret": false, "tags": ["a"] }),
    );
    seed(
        "namedValues/backend-key",
        json!({ "displayName": "backend-key", "value": SECRET, "secret": true, "tags": [] }),
    );
    seed(
        "namedValues/from-vault",
        json!({ "displayName": "from-vault", "secret": true, "tags": [],
        "keyVault": { "secretIdentifier": "https://kv-src.vault.azure.net/secrets/api-key/0123456789abcdef0123456789abcdef", "identityClientId": null } }),
    );
    seed(
        "namedValues/elsewhere",
        json!({ "displayName": "elsewhere", "secret": true, "tags": [],
        "keyVault": { "secretIdentifier": "https://kv-other.vault.azure.net/secrets/api-key", "identityClientId": null } }),
    );
    seed(
        "apiVersionSets/vs1",
        json!({ "displayName": "Echo", "versioningScheme": "Segment", "versionQueryName": null, "versionHeaderName": null }),
    );
    seed(
        "backends/be1",
        json!({ "url": "https://backend.example.com", "protocol": "http", "description": "the backend" }),
    );
    seed(
        "backends/be-creds",
        json!({ "url": "https://creds.example.com", "protocol": "http",
        "credentials": { "header": { "x-key": [BACKEND_SECRET, "{{backend-key}}"] } } }),
    );
    seed(
        "apis/echo",
        json!({
            "displayName": "Echo", "path": "echo", "protocols": ["https"], "serviceUrl": "https://backend.example.com/echo",
            "apiVersion": "v1", "apiVersionSetId": format!("{SOURCE}/apiVersionSets/vs1"), "subscriptionRequired": true,
            "apiRevision": "1", "isCurrent": true, "description": null,
            "subscriptionKeyParameterNames": { "header": "Ocp-Apim-Subscription-Key", "query": "subscription-key" }
        }),
    );
    seed(
        "apis/echo/operations/get",
        json!({ "displayName": "Get", "method": "GET", "urlTemplate": "/items/{id}", "templateParameters": [{ "name": "id", "type": "string", "required": true }] }),
    );
    // As the service stores it: re-formatted.
    seed(
        "apis/echo/policies/policy",
        json!({ "format": "xml", "value": POLICY.replace('\n', "\r\n") }),
    );
    seed(
        "groups/partners",
        json!({ "displayName": "Partners", "description": "external", "type": "custom", "builtIn": false }),
    );
    seed(
        "users/u1",
        json!({ "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "state": "active", "note": null }),
    );
    seed(
        "products/gold",
        json!({ "displayName": "Gold", "subscriptionRequired": true, "approvalRequired": false, "state": "published", "description": "gold" }),
    );
    seed(
        "products/gold/apis/echo",
        json!({ "displayName": "Echo", "path": "echo" }),
    );
    seed(
        "products/gold/groups/partners",
        json!({ "displayName": "Partners", "type": "custom", "builtIn": false }),
    );
    // A custom product visible to a system group: the link is written, the group matched.
    seed(
        "products/gold/groups/developers",
        json!({ "displayName": "Developers", "type": "system", "builtIn": true }),
    );
    seed(
        "groups/partners/users/u1",
        json!({ "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com", "state": "active" }),
    );
    seed(
        "namedValues/db-password",
        json!({ "displayName": "db-password", "value": SECRET, "secret": true, "tags": [] }),
    );
    seed(
        "subscriptions/sub1",
        json!({
            "displayName": "Ada's gold", "scope": format!("{SOURCE}/products/gold"), "ownerId": format!("{SOURCE}/users/u1"),
            "state": "active", "allowTracing": false, "primaryKey": PRIMARY, "secondaryKey": SECONDARY
        }),
    );
}

/// Writes the entity `path` of `service` straight into the emulator's store (no request).
fn seed_entity(stack: &Stack, service: &str, path: &str, properties: Value) {
    stack
        .emulator
        .seed_arm_resource(
            &format!("{service}/{path}"),
            json!({ "properties": properties }),
        )
        .unwrap();
}

/// The service pair, and a Key Vault pair whose vaults Key Vault-backed named values name.
fn inventory(stack: &Stack) -> std::path::PathBuf {
    let resource = |id: &str, name: &str| json!({ "id": id, "type": "Microsoft.ApiManagement/service", "name": name });
    let vaults = json!({
        "source": kv_resource("source-sub", "kv-src", None),
        "target": kv_resource("target-sub", "kv-dst", Some("https://kv-dst.vault.azure.net/".into())),
    });
    stack.write_json(
        "inventory.json",
        &json!({ "version": 1, "resources": [{ "source": resource(SOURCE, "apim-src"), "target": resource(TARGET, "apim-dst") }, vaults] }),
    )
}

/// The report's entry of the service pair.
fn service_entry(report: &Value) -> Value {
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target_id"] == TARGET)
        .cloned()
        .unwrap_or_else(|| panic!("no service pair in {report:#}"))
}

/// The target service read with the conformance suite's plain ARM client (not atg's).
struct Reader(ArmRest);

impl Reader {
    fn new(stack: &Stack) -> Self {
        Reader(ArmRest::at(stack, "2024-05-01"))
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Value {
        self.0.ok(method, &format!("{TARGET}/{path}"), None).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path).await
    }

    async fn names(&self, collection: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .list(&format!("{TARGET}/{collection}"))
            .await
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

fn writes(stack: &Stack) -> Vec<String> {
    stack
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.contains("/apim-dst") && matches!(r.method.as_str(), "PUT" | "PATCH" | "DELETE")
        })
        .map(|r| {
            format!(
                "{} {}",
                r.method,
                r.path.split("/apim-dst/").nth(1).unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn replication_copies_the_service_in_order_with_secrets_keys_and_defaults_matched() {
    let stack = Stack::start().await;
    seed(&stack);
    let inventory = inventory(&stack);
    stack.emulator.clear_requests();
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json", "-vv"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    for text in [&run.stdout, &run.stderr] {
        assert!(
            ![SECRET, PRIMARY, SECONDARY, BACKEND_SECRET]
                .iter()
                .any(|secret| text.contains(secret)),
            "a secret in the output"
        );
    }
    let reader = Reader::new(&stack);
    assert_eq!(
        reader.get("backends/be-creds").await["properties"]["credentials"]["header"]["x-key"],
        json!([BACKEND_SECRET, "{{backend-key}}"])
    );
    let secret = reader
        .call(reqwest::Method::POST, "namedValues/backend-key/listValue")
        .await;
    assert_eq!(secret["value"], SECRET);
    assert_eq!(
        reader.get("namedValues/plain").await["properties"]["value"],
        "hello"
    );
    let keys = reader
        .call(reqwest::Method::POST, "subscriptions/sub1/listSecrets")
        .await;
    assert_eq!(
        (keys["primaryKey"].as_str(), keys["secondaryKey"].as_str()),
        (Some(PRIMARY), Some(SECONDARY))
    );
    let subscription = reader.get("subscriptions/sub1").await;
    assert_eq!(
        subscription["properties"]["ownerId"],
        format!("{TARGET}/users/u1")
    );
    assert_eq!(
        subscription["properties"]["scope"],
        format!("{TARGET}/products/gold")
    );
    assert_eq!(
        reader.get("apis/echo").await["properties"]["apiVersionSetId"],
        format!("{TARGET}/apiVersionSets/vs1")
    );
    assert_eq!(reader.names("apis/echo/operations").await, ["get"]);
    assert_eq!(reader.names("products/gold/apis").await, ["echo"]);
    assert_eq!(
        reader.names("products/gold/groups").await,
        ["developers", "partners"]
    );
    assert_eq!(reader.names("groups/partners/users").await, ["u1"]);
    // A new service's defaults are matched, not duplicated: the administrator's subscriptions
    // to starter and unlimited (each service's own ids), master, and the one copied.
    assert_eq!(reader.names("subscriptions").await.len(), 4);
    assert_eq!(
        reader.names("groups").await,
        ["administrators", "developers", "guests", "partners"]
    );
    assert_eq!(
        reader.names("products").await,
        ["gold", "starter", "unlimited"]
    );
    assert_eq!(reader.names("users").await, ["1", "u1"]);
    assert_eq!(
        reader.get("users/1").await["properties"]["email"],
        "owner@target.example"
    );
    // Key Vault-backed named values: pointed at the paired target vault, else kept and reported.
    for (name, identifier) in [
        (
            "from-vault",
            "https://kv-dst.vault.azure.net/secrets/api-key",
        ),
        (
            "elsewhere",
            "https://kv-other.vault.azure.net/secrets/api-key",
        ),
    ] {
        let named_value = reader.get(&format!("namedValues/{name}")).await;
        assert_eq!(
            named_value["properties"]["keyVault"]["secretIdentifier"],
            identifier
        );
    }
    let report = run.report();
    let notes = |name: &str| {
        service_entry(&report)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["kind"] == "named-value" && item["name"] == name)
            .map(|item| item["notes"].to_string())
            .unwrap_or_default()
    };
    assert!(
        notes("elsewhere").contains("kv-other is not paired"),
        "{report:#}"
    );
    assert!(
        notes("from-vault").contains("paired target vault kv-dst"),
        "{report:#}"
    );

    // Dependency order: what a write references is written before it.
    let order = writes(&stack);
    let at = |what: &str| {
        order
            .iter()
            .position(|w| w == what)
            .unwrap_or_else(|| panic!("{what} not written: {order:#?}"))
    };
    assert!(
        at("PUT namedValues/backend-key") < at("PUT apis/echo/policies/policy"),
        "{order:#?}"
    );
    assert!(
        at("PUT apiVersionSets/vs1") < at("PUT apis/echo"),
        "{order:#?}"
    );
    assert!(
        at("PUT apis/echo") < at("PUT apis/echo/operations/get"),
        "{order:#?}"
    );
    assert!(
        at("PUT products/gold") < at("PUT products/gold/apis/echo"),
        "{order:#?}"
    );
    assert!(
        at("PUT users/u1") < at("PUT subscriptions/sub1"),
        "{order:#?}"
    );
    assert!(
        !order.iter().any(|w| w.contains("groups/administrators")
            || w.contains("subscriptions/master")
            || w.contains("users/1")
            || w.contains("products/starter")),
        "{order:#?}"
    );

    // The service re-formatted the policy: a re-run still finds nothing to write.
    stack.emulator.clear_requests();
    let again = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(writes(&stack), Vec::<String>::new(), "{again}");
    assert_eq!(
        service_entry(&again.report())["counts"]["replicated"],
        0,
        "{again}"
    );
}

#[tokio::test]
async fn template_writes_placeholders_and_new_keys_and_reads_no_secret() {
    let stack = Stack::start().await;
    seed(&stack);
    // The target already has one secret named value, with its own value and another name.
    stack
        .emulator
        .seed_arm_resource(
            &format!("{TARGET}/namedValues/backend-key"),
            json!({ "properties": { "displayName": "old-name", "secret": true, "tags": [], "value": "the-targets-own" } }),
        )
        .unwrap();
    // And a subscription of its own, with its own keys, the source's sub1 is copied over.
    seed_entity(
        &stack,
        TARGET,
        "subscriptions/sub1",
        json!({ "displayName": "old", "scope": format!("{TARGET}/products/starter"), "ownerId": format!("{TARGET}/users/1"),
            "state": "active", "allowTracing": false, "primaryKey": "the-targets-primary", "secondaryKey": "the-targets-secondary" }),
    );
    let inventory = inventory(&stack);
    stack.emulator.clear_requests();
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "template", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let source_secret_reads: Vec<_> = stack
        .requests()
        .into_iter()
        .filter(|r| {
            r.path.contains("/apim-src/")
                && (r.path.ends_with("/listValue") || r.path.ends_with("/listSecrets"))
        })
        .collect();
    assert!(source_secret_reads.is_empty(), "{source_secret_reads:#?}");
    let reader = Reader::new(&stack);
    let secret = reader
        .call(reqwest::Method::POST, "namedValues/backend-key/listValue")
        .await;
    assert_ne!(secret["value"], SECRET);
    // The target's keys stay; the rest of the subscription is the source's.
    let keys = reader
        .call(reqwest::Method::POST, "subscriptions/sub1/listSecrets")
        .await;
    assert_eq!(
        (keys["primaryKey"].as_str(), keys["secondaryKey"].as_str()),
        (Some("the-targets-primary"), Some("the-targets-secondary"))
    );
    assert_eq!(
        reader.get("subscriptions/sub1").await["properties"]["displayName"],
        "Ada's gold"
    );
    assert_eq!(
        reader.get("namedValues/plain").await["properties"]["value"],
        "hello"
    );
    // A target's secret value is never replaced in template mode: the rest is updated around it.
    let kept = reader
        .call(reqwest::Method::POST, "namedValues/backend-key/listValue")
        .await;
    assert_eq!(kept["value"], "the-targets-own");
    assert_eq!(
        reader.get("namedValues/backend-key").await["properties"]["displayName"],
        "backend-key"
    );
    // A secret named value the target lacks gets the placeholder.
    let placeholder = reader
        .call(reqwest::Method::POST, "namedValues/db-password/listValue")
        .await;
    assert_eq!(placeholder["value"], atg::orchestrator::PLACEHOLDER);
    // A backend's literal credential is not written; a named value reference is.
    assert_eq!(
        reader.get("backends/be-creds").await["properties"]["credentials"]["header"]["x-key"],
        json!([atg::orchestrator::PLACEHOLDER, "{{backend-key}}"])
    );
    assert!(!run.stdout.contains(BACKEND_SECRET) && !run.stderr.contains(BACKEND_SECRET));
}

#[tokio::test]
async fn verify_passes_a_replica_and_names_a_changed_entity_and_an_extra_one() {
    let stack = Stack::start().await;
    seed(&stack);
    let inventory = inventory(&stack);
    let args = &["--dataplane-mode", "replication", "--output", "json"];
    let run = stack.deploy(&inventory, args).await;
    assert_eq!(run.code, 0, "{run}");
    let verify = || async {
        let mut all = stack.deploy_args(&inventory, args);
        all[0] = "verify".into();
        atg(&all, &TARGET_PRINCIPAL).await
    };
    let exact = verify().await;
    assert_eq!(exact.code, 0, "{exact}");
    assert_eq!(service_entry(&exact.report())["fidelity"], 1.0, "{exact}");

    let seed_target = |path: &str, properties: Value| seed_entity(&stack, TARGET, path, properties);
    seed_target(
        "backends/be1",
        json!({ "url": "https://elsewhere.example.com", "protocol": "http", "description": "the backend" }),
    );
    seed_target(
        "apis/own",
        json!({ "displayName": "Own", "path": "own", "protocols": ["https"] }),
    );
    stack.emulator.clear_requests();
    let damaged = verify().await;
    assert_ne!(damaged.code, 0, "{damaged}");
    let entry = service_entry(&damaged.report());
    let verdict = |kind: &str, name: &str| resource_item(&entry, kind, name)["verdict"].clone();
    assert_eq!(verdict("backend", "be1"), "different");
    assert_eq!(verdict("api", "own"), "extra");
    // The target's built-ins are the service's own: no gap.
    assert!(
        !entry["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["verdict"] == "extra" && item["kind"] != "api"),
        "{entry:#}"
    );
    assert_eq!(writes(&stack), Vec::<String>::new());
}

#[tokio::test]
async fn kinds_the_target_tier_lacks_are_skipped_with_the_reason_and_the_rest_copied() {
    let stack = Stack::start().await;
    seed_with_target_tier(&stack, "Consumption");
    let inventory = inventory(&stack);
    stack.emulator.clear_requests();
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 0, "{run}");
    let entry = service_entry(&run.report());
    assert_eq!(
        entry["facts"]["target_tier_lacks"],
        json!(["group", "group-user", "product-group"]),
        "{entry:#}"
    );
    let outcome = |kind: &str, name: &str| resource_item(&entry, kind, name).clone();
    for (kind, name) in [
        ("group", "partners"),
        ("group", "administrators"),
        ("group-user", "partners/u1"),
        ("product-group", "gold/partners"),
    ] {
        let item = outcome(kind, name);
        assert_eq!(item["outcome"], "skipped", "{item:#}");
        assert!(
            item["reason"]
                .as_str()
                .is_some_and(|reason| reason.contains("MethodNotAllowedInPricingTier")),
            "{item:#}"
        );
    }
    assert_eq!(outcome("product", "gold")["outcome"], "created");
    assert_eq!(outcome("subscription", "sub1")["outcome"], "created");
    let reader = Reader::new(&stack);
    assert_eq!(reader.names("products/gold/apis").await, ["echo"]);
    assert!(
        writes(&stack)
            .iter()
            .all(|write| !write.contains("/groups/")),
        "{:#?}",
        writes(&stack)
    );
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_fails_its_item_and_the_rest_is_copied() {
    let stack = Stack::start_with(|options| {
        options
            .forbidden_arm_scopes
            .insert(format!("{SOURCE}/subscriptions/sub1"));
    })
    .await;
    seed(&stack);
    let inventory = inventory(&stack);
    let run = stack
        .deploy(
            &inventory,
            &["--dataplane-mode", "replication", "--output", "json"],
        )
        .await;
    assert_eq!(run.code, 1, "{run}");
    let entry = service_entry(&run.report());
    let failed = resource_item(&entry, "subscription", "sub1");
    assert_eq!(failed["outcome"], "failed", "{failed:#}");
    assert!(
        failed["error"].as_str().is_some_and(|error| error
            .contains("cannot read the source's keys of sub1")
            && error.contains("AuthorizationFailed")),
        "{failed:#}"
    );
    assert_eq!(resource_item(&entry, "api", "echo")["outcome"], "created");
    assert!(!run.stdout.contains(PRIMARY) && !run.stderr.contains(PRIMARY));
}

/// The item `kind` `name` of the service pair's entry.
/// The item `kind` `name` of the service pair in `report`.
fn service_item(report: &Value, kind: &str, name: &str) -> Value {
    resource_item(&service_entry(report), kind, name).clone()
}

#[tokio::test]
async fn a_plan_refuses_an_entity_changed_in_the_source_since_and_applies_the_rest() {
    let stack = Stack::start().await;
    seed(&stack);
    let inventory = inventory(&stack);
    let plan = stack.path("plan.json");
    make_plan(&stack, &inventory, &plan).await;
    let text = std::fs::read_to_string(&plan).unwrap();
    for secret in [SECRET, PRIMARY, SECONDARY, BACKEND_SECRET] {
        assert!(!text.contains(secret), "a secret in the plan");
    }

    // After the review, the source's backend points elsewhere: still to be created, from
    // another state.
    let arm = crate::conformance::messaging::ArmRest::at(&stack, "2024-05-01");
    arm.put(
        &format!("{SOURCE}/backends/be1"),
        &json!({ "properties": { "url": "https://elsewhere.example.com", "protocol": "http", "description": "the backend" } }),
    )
    .await;
    stack.emulator.clear_requests();
    let (apply, report) = apply_plan(&stack, &inventory, &plan).await;
    assert_eq!(apply.code, 1, "{apply}");
    assert_stale(&service_item(&report, "backend", "be1"));
    for (kind, name) in [
        ("api", "echo"),
        ("named-value", "backend-key"),
        ("subscription", "sub1"),
    ] {
        assert_eq!(
            service_item(&report, kind, name)["outcome"],
            "created",
            "{kind} {name}"
        );
    }
    assert_not_written(&writes(&stack), "backends/be1");
    let reader = Reader::new(&stack);
    assert!(!reader.names("backends").await.contains(&"be1".to_owned()));

    // A plan made now, and not changed since, is carried out whole.
    let report = apply_a_fresh_plan(&stack, &inventory).await;
    assert_eq!(
        service_item(&report, "backend", "be1")["outcome"],
        "created"
    );
    assert_eq!(
        reader.get("backends/be1").await["properties"]["url"],
        "https://elsewhere.example.com"
    );
}
