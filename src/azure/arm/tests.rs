//! The ARM client's abilities on a scripted transport (atg's policies unchanged): headers per
//! call, a POST's result, declared reads, per-call deadlines.

use std::time::{Duration, Instant};

use azure_core::http::Method;
use serde_json::json;

use super::fake::{answer, FakeArm};
use super::CallOptions;
use crate::azure::{AzureErrorKind, WriteAccess};

const THING: &str =
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.Example/things/t?api-version=2024-01-01";
const STATUS: &str = "https://management.azure.com/subscriptions/s/providers/Microsoft.Example/operations/op1?api-version=2024-01-01";
const RESULT: &str = "https://management.azure.com/subscriptions/s/providers/Microsoft.Example/operationResults/op1?api-version=2024-01-01";

#[tokio::test]
async fn extra_headers_go_on_the_call_and_not_on_its_polls() {
    let fake = FakeArm::new(vec![
        answer(
            201,
            &[("azure-asyncoperation", STATUS), ("retry-after", "0")],
            r#"{"properties":{"provisioningState":"Creating"}}"#,
        ),
        answer(200, &[], r#"{"status":"Succeeded"}"#),
        answer(
            200,
            &[("etag", "\"v2\"")],
            r#"{"properties":{"provisioningState":"Succeeded"}}"#,
        ),
    ]);
    let arm = fake.client(WriteAccess::ReadWrite);
    let resource = arm
        .call_and_wait_with(
            Method::Put,
            THING,
            Some(&json!({})),
            &CallOptions::default().if_match("\"v1\""),
        )
        .await
        .unwrap();
    assert_eq!(resource["properties"]["provisioningState"], "Succeeded");
    let sent = fake.sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert_eq!(sent[0].method, "PUT");
    assert_eq!(sent[0].header("if-match"), Some("\"v1\""));
    assert!(
        sent[1..].iter().all(|s| s.header("if-match").is_none()),
        "{sent:#?}"
    );
    let response = {
        let fake = FakeArm::new(vec![answer(200, &[("etag", "\"v2\"")], "{}")]);
        fake.client(WriteAccess::ReadOnly)
            .call(Method::Get, THING, None)
            .await
            .unwrap()
    };
    assert_eq!(response.etag.as_deref(), Some("\"v2\""));
}

#[tokio::test]
async fn a_post_finished_through_azure_async_operation_answers_its_result() {
    // With a Location in the first answer, the result is read there once the status succeeded.
    let fake = FakeArm::new(vec![
        answer(
            202,
            &[
                ("azure-asyncoperation", STATUS),
                ("location", RESULT),
                ("retry-after", "0"),
            ],
            "",
        ),
        answer(200, &[], r#"{"status":"InProgress"}"#),
        answer(200, &[], r#"{"status":"Succeeded"}"#),
        answer(
            200,
            &[],
            r#"{"blobUri":"https://a.blob.core.windows.net/c/x.bacpac"}"#,
        ),
    ]);
    let arm = fake.client(WriteAccess::ReadWrite);
    let result = arm
        .call_and_wait(
            Method::Post,
            &format!("{THING}&action=export"),
            Some(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(
        result["blobUri"],
        "https://a.blob.core.windows.net/c/x.bacpac"
    );
    assert_eq!(fake.sent()[3].url, RESULT);
    // Without one, the status document's properties are the result.
    let fake = FakeArm::new(vec![
        answer(
            202,
            &[("azure-asyncoperation", STATUS), ("retry-after", "0")],
            "",
        ),
        answer(
            200,
            &[],
            r#"{"status":"Succeeded","properties":{"status":"Completed","requestType":"Export"}}"#,
        ),
    ]);
    let arm = fake.client(WriteAccess::ReadWrite);
    let result = arm
        .call_and_wait(
            Method::Post,
            &format!("{THING}&action=export"),
            Some(&json!({})),
        )
        .await
        .unwrap();
    assert_eq!(result, json!({"status":"Completed","requestType":"Export"}));
    // A Location-only POST (registry import, disk access) still answers the Location's body.
    let fake = FakeArm::new(vec![
        answer(202, &[("location", RESULT), ("retry-after", "0")], ""),
        answer(202, &[("retry-after", "0")], ""),
        answer(
            200,
            &[],
            r#"{"accessSAS":"https://md.blob.core.windows.net/x"}"#,
        ),
    ]);
    let arm = fake.client(WriteAccess::ReadWrite);
    let result = arm
        .call_and_wait(Method::Post, &format!("{THING}&action=access"), None)
        .await
        .unwrap();
    assert_eq!(result["accessSAS"], "https://md.blob.core.windows.net/x");
}

#[tokio::test]
async fn a_read_only_client_takes_only_the_posts_declared_reads() {
    let fake = FakeArm::new(vec![answer(200, &[], r#"{"properties":{"A":"1"}}"#)]);
    let arm = fake.client(WriteAccess::ReadOnly);
    let list = format!("{THING}/config/appsettings/list");
    let settings = arm.post_read(&list).await.unwrap();
    assert_eq!(settings["properties"]["A"], "1");
    // The same path, not declared a read, is refused before it is sent.
    let error = arm.post(&list, None).await.unwrap_err();
    assert_eq!(error.kind, AzureErrorKind::Refused, "{error}");
    // A declared read is still no licence to PUT.
    let error = arm
        .call_with(Method::Put, THING, Some(&json!({})), &CallOptions::read())
        .await
        .unwrap_err();
    assert_eq!(error.kind, AzureErrorKind::Refused, "{error}");
    assert_eq!(fake.sent().len(), 1, "{:#?}", fake.sent());
}

#[tokio::test]
async fn a_call_polls_until_its_own_deadline() {
    let running = || answer(200, &[("retry-after", "1")], r#"{"status":"InProgress"}"#);
    let mut answers = vec![answer(
        202,
        &[("azure-asyncoperation", STATUS), ("retry-after", "1")],
        "",
    )];
    answers.extend((0..10).map(|_| running()));
    let fake = FakeArm::new(answers);
    let arm = fake.client(WriteAccess::ReadWrite);
    assert_eq!(arm.operation_timeout, Duration::from_secs(30 * 60));
    let started = Instant::now();
    let error = arm
        .call_and_wait_with(
            Method::Post,
            THING,
            None,
            &CallOptions::default().deadline(Duration::from_millis(1500)),
        )
        .await
        .unwrap_err();
    assert!(error.to_string().contains("timed out"), "{error}");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // Polled at 1 s and at the deadline, never after it.
    assert_eq!(fake.sent().len(), 3, "{:#?}", fake.sent());
}

#[tokio::test]
async fn a_listing_page_that_is_no_arm_list_is_an_error_not_an_empty_collection() {
    for body in ["<html>sign in</html>", r#"{"items":[]}"#] {
        let fake = FakeArm::new(vec![answer(200, &[], body)]);
        let arm = fake.client(WriteAccess::ReadOnly);
        let mut pages = 0;
        let listed = arm
            .list_pages(THING, |_| {
                pages += 1;
                Ok(())
            })
            .await;
        let error = listed.expect_err(body);
        assert!(
            ["not an ARM list", "not JSON"]
                .iter()
                .any(|said| error.to_string().contains(said)),
            "{error}"
        );
        assert_eq!(pages, 0);
    }
    let fake = FakeArm::new(vec![answer(200, &[], r#"{"value":[]}"#)]);
    let listed = fake
        .client(WriteAccess::ReadOnly)
        .list_pages(THING, |page| {
            assert!(page.is_empty());
            Ok(())
        })
        .await;
    assert!(listed.is_ok(), "{listed:?}");
}

#[tokio::test]
async fn a_success_whose_body_is_not_json_is_an_error() {
    let fake = FakeArm::new(vec![answer(200, &[], "<html>sign in</html>")]);
    let read = fake.client(WriteAccess::ReadOnly).get(THING).await;
    let error = read.expect_err("a page is no resource");
    assert!(error.to_string().contains("not JSON"), "{error}");
    assert!(!error.to_string().contains("sign in"), "{error}");
}
