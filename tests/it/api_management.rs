//! API Management end to end: the real binary copies a seeded source service into a target
//! service of the emulated ARM; the target is read back with the test kit's plain REST client
//! (not atg's ARM client). Covers secret named values (listValue, never in output), the
//! defaults of a new service matched, subscription keys preserved in replication and new in
//! template, the dependency order of the writes, and a re-run writing nothing.

use serde_json::{json, Value};

use crate::common::*;
use crate::conformance::messaging::ArmRest;

const SOURCE: &str =
    "/subscriptions/source-sub/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-src";
const TARGET: &str =
    "/subscriptions/target-sub/resourceGroups/rg/providers/Microsoft.ApiManagement/service/apim-dst";
const SECRET: &str = "named-value-secret-3f9a1c";
const PRIMARY: &str = "0123456789abcdef0123456789abcdef";
const SECONDARY: &str = "fedcba9876543210fedcba9876543210";
const POLICY: &str = "<policies>\n  <inbound>\n    <base />\n    <set-header name=\"x-k\" exists-action=\"override\"><value>{{backend-key}}</value></set-header>\n  </inbound>\n  <backend><base /></backend>\n  <outbound><base /></outbound>\n  <on-error><base /></on-error>\n</policies>";

fn seed(stack: &Stack) {
    let service = json!({ "location": "westeurope", "sku": { "name": "Developer", "capacity": 1 }, "properties": {} });
    for id in [SOURCE, TARGET] {
        stack
            .emulator
            .seed_arm_resource(id, service.clone())
            .unwrap();
    }
    // The target's administrator is its own (another publisher email): matched, never written.
    stack
        .emulator
        .seed_arm_resource(
            &format!("{TARGET}/users/1"),
            json!({ "properties": { "firstName": "Administrator", "lastName": "", "email": "owner@target.example", "state": "active" } }),
        )
        .unwrap();
    let seed = |path: &str, properties: Value| {
        stack
            .emulator
            .seed_arm_resource(
                &format!("{SOURCE}/{path}"),
                json!({ "properties": properties }),
            )
            .unwrap();
    };
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
    seed(
        "subscriptions/sub1",
        json!({
            "displayName": "Ada's gold", "scope": format!("{SOURCE}/products/gold"), "ownerId": format!("{SOURCE}/users/u1"),
            "state": "active", "allowTracing": false, "primaryKey": PRIMARY, "secondaryKey": SECONDARY
        }),
    );
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
            !text.contains(SECRET) && !text.contains(PRIMARY) && !text.contains(SECONDARY),
            "a secret in the output"
        );
    }
    let reader = Reader::new(&stack);
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
    // A new service's defaults are matched, not duplicated.
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
    assert_eq!(reader.names("subscriptions").await, ["master", "sub1"]);

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
        again.report()["resources"][0]["counts"]["replicated"],
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
    let keys = reader
        .call(reqwest::Method::POST, "subscriptions/sub1/listSecrets")
        .await;
    assert_ne!(keys["primaryKey"], PRIMARY);
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
}
