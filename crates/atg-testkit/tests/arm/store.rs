//! The generic resource store: etags checked by conditional writes, PATCH, children that need
//! their parent, and collections.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{Arm, GROUP};

const THING: &str = "/providers/Microsoft.Example/things/t1";

#[tokio::test]
async fn resources_carry_etags_that_conditional_writes_check() {
    let arm = Arm::start().await;
    let created = arm
        .send(
            Method::PUT,
            THING,
            Some(json!({"location": "westeurope", "properties": {"a": 1}})),
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let etag = created.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");

    let again = arm
        .send(
            Method::PUT,
            THING,
            Some(json!({"location": "westeurope"})),
            &[("if-none-match", "*")],
        )
        .await;
    assert_eq!(again.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(again.body["error"]["code"], "PreconditionFailed");

    let stale = arm
        .send(
            Method::PATCH,
            THING,
            Some(json!({"tags": {"x": "1"}})),
            &[("if-match", "\"0000\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let patched = arm
        .send(
            Method::PATCH,
            THING,
            Some(json!({"tags": {"x": "1"}, "properties": {"b": 2}})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["properties"]["a"], 1, "a PATCH merges");
    assert_eq!(patched.body["properties"]["b"], 2);
    assert_eq!(patched.body["tags"]["x"], "1");
    assert_ne!(patched.header("etag"), etag, "a write changes the etag");

    let got = arm.send(Method::GET, THING, None, &[]).await;
    assert_eq!(got.header("etag"), patched.header("etag"));
    let deleted = arm
        .send(Method::DELETE, THING, None, &[("if-match", &etag)])
        .await;
    assert_eq!(
        deleted.status,
        StatusCode::PRECONDITION_FAILED,
        "the old etag no longer holds"
    );
    let missing = arm
        .send(
            Method::PATCH,
            "/providers/Microsoft.Example/things/absent",
            Some(json!({})),
            &[],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.body["error"]["message"],
        "The Resource 'Microsoft.Example/things/absent' under resource group 'rg1' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    );
    arm.emulator.shutdown().await;
}

#[tokio::test]
async fn children_need_their_parent_and_list_as_collections() {
    let arm = Arm::start().await;
    let child = format!("{THING}/parts/p1");
    let orphan = arm
        .send(Method::PUT, &child, Some(json!({"properties": {}})), &[])
        .await;
    assert_eq!(orphan.status, StatusCode::NOT_FOUND);
    assert_eq!(orphan.body["error"]["code"], "ParentResourceNotFound");
    assert_eq!(
        orphan.body["error"]["message"],
        "Can not perform requested operation on nested resource. Parent resource 't1' not found."
    );
    let listed = arm
        .send(Method::GET, &format!("{THING}/parts"), None, &[])
        .await;
    assert_eq!(listed.body["error"]["code"], "ParentResourceNotFound");

    arm.send(
        Method::PUT,
        THING,
        Some(json!({"location": "westeurope", "kind": "big"})),
        &[],
    )
    .await;
    for index in 0..3 {
        let created = arm
            .send(
                Method::PUT,
                &format!("{THING}/parts/p{index}"),
                Some(json!({"properties": {"n": index}})),
                &[],
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        assert_eq!(created.body["type"], "Microsoft.Example/things/parts");
    }
    // Case-insensitive ids: the same child addressed in another case.
    let got = arm
        .send(
            Method::GET,
            "/providers/microsoft.example/THINGS/T1/Parts/P2",
            None,
            &[],
        )
        .await;
    assert_eq!(got.body["properties"]["n"], 2);

    let first = arm
        .send(Method::GET, &format!("{THING}/parts?$top=2"), None, &[])
        .await;
    assert_eq!(first.body["value"].as_array().map(Vec::len), Some(2));
    let next = first.body["nextLink"]
        .as_str()
        .expect("nextLink")
        .to_owned();
    let second = arm.send(Method::GET, &next, None, &[]).await;
    assert_eq!(second.body["value"][0]["name"], "p2");
    assert!(second.body.get("nextLink").is_none());

    // The resource group listing holds top-level resources only, with their kind.
    let group = arm
        .send(
            Method::GET,
            &format!("{GROUP}/resources?api-version=2021-04-01"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        group.body["value"].as_array().map(Vec::len),
        Some(1),
        "{}",
        group.body
    );
    assert_eq!(group.body["value"][0]["kind"], "big");
    let typed = arm
        .send(
            Method::GET,
            "/providers/Microsoft.Example/things",
            None,
            &[],
        )
        .await;
    assert_eq!(typed.body["value"][0]["name"], "t1");

    // Deleting the parent deletes its children.
    let deleted = arm.send(Method::DELETE, THING, None, &[]).await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    arm.send(
        Method::PUT,
        THING,
        Some(json!({"location": "westeurope"})),
        &[],
    )
    .await;
    let gone = arm
        .send(Method::GET, &format!("{THING}/parts/p0"), None, &[])
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    arm.emulator.shutdown().await;
}
