//! The ARM client (atg's library code) against the emulator's ARM: paging by nextLink,
//! long-running operations, POST list actions, the write guard and the host allow-list.

use std::sync::Arc;

use atg::azure::arm::ArmClient;
use atg::azure::credential::{chain_links, ChainCredential, CredentialSettings, ServicePrincipal};
use atg::azure::{AzureErrorKind, AzureHttp, ConnectTo, HttpSettings, Sensitive, WriteAccess};
use azure_core::http::Method;
use serde_json::json;

use crate::common::*;

fn client(stack: &Stack, access: WriteAccess) -> ArmClient {
    let addr = stack.emulator.addr();
    let http = AzureHttp::new(&HttpSettings {
        extra_root_pem: Some(stack.emulator.ca_pem().as_bytes().to_vec()),
        connect_to: ["management.azure.com", "login.microsoftonline.com"]
            .iter()
            .map(|host| ConnectTo {
                host_suffix: (*host).into(),
                addr,
            })
            .collect(),
        ..HttpSettings::default()
    })
    .unwrap();
    let settings = CredentialSettings {
        explicit: Some(ServicePrincipal {
            tenant_id: TARGET_TENANT.into(),
            client_id: TARGET_CLIENT.into(),
            client_secret: Sensitive::new(TARGET_SECRET),
        }),
        ..CredentialSettings::default()
    };
    let credential = Arc::new(ChainCredential::new(
        "target",
        chain_links(&settings, &http),
    ));
    ArmClient::new(&http, credential, access).unwrap()
}

const GROUP: &str = "/subscriptions/sub-1/resourceGroups/rg-1";

#[tokio::test]
async fn puts_wait_for_the_operation_and_lists_follow_next_link() {
    let stack = Stack::start().await;
    let arm = client(&stack, WriteAccess::ReadWrite);
    for index in 0..5 {
        let path = format!(
            "{GROUP}/providers/Microsoft.Example/things/thing-{index}?api-version=2024-01-01"
        );
        let resource = arm
            .call_and_wait(
                Method::Put,
                &path,
                Some(&json!({ "location": "westeurope", "properties": { "n": index } })),
            )
            .await
            .unwrap();
        assert_eq!(
            resource["properties"]["provisioningState"], "Succeeded",
            "{resource}"
        );
    }
    let mut pages = 0;
    let mut names = Vec::new();
    arm.list_pages(
        &format!("{GROUP}/resources?api-version=2021-04-01&$top=2"),
        |items| {
            pages += 1;
            names.extend(
                items
                    .into_iter()
                    .map(|i| i["name"].as_str().unwrap().to_owned()),
            );
            Ok(())
        },
    )
    .await
    .unwrap();
    names.sort();
    assert_eq!(
        names,
        (0..5).map(|i| format!("thing-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(pages, 3, "5 items at 2 per page");
    let missing = arm
        .get_optional(&format!(
            "{GROUP}/providers/Microsoft.Example/things/absent?api-version=2024-01-01"
        ))
        .await
        .unwrap();
    assert!(missing.is_none());
}

#[tokio::test]
async fn list_keys_is_a_read_even_for_a_read_only_client() {
    let stack = Stack::start().await;
    stack.emulator.seed_storage_keys(
        "sub-1",
        "rg-1",
        "acct1",
        vec!["a2V5MQ==".into(), "a2V5Mg==".into()],
    );
    let arm = client(&stack, WriteAccess::ReadOnly);
    let key = atg::azure::arm::storage::first_account_key(
        &arm,
        &format!("{GROUP}/providers/Microsoft.Storage/storageAccounts/acct1"),
    )
    .await
    .unwrap();
    assert_eq!(key.expose(), "a2V5MQ==");
    // The same POST not declared a read by its caller is refused.
    let error = arm
        .post(&format!("{GROUP}/providers/Microsoft.Storage/storageAccounts/acct1/listKeys?api-version=2023-05-01"), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind, AzureErrorKind::Refused, "{error}");
}

#[tokio::test]
async fn a_read_only_client_refuses_writes_before_sending() {
    let stack = Stack::start().await;
    let arm = client(&stack, WriteAccess::ReadOnly);
    let error = arm
        .call(
            Method::Put,
            &format!("{GROUP}/providers/Microsoft.Example/things/x?api-version=2024-01-01"),
            Some(&json!({})),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind, AzureErrorKind::Refused, "{error}");
    assert!(
        stack.requests().iter().all(|r| r.method != "PUT"),
        "the write reached the server"
    );
}

#[tokio::test]
async fn hosts_outside_the_cloud_never_get_a_request() {
    let stack = Stack::start().await;
    let arm = client(&stack, WriteAccess::ReadWrite);
    for url in [
        "https://management.azure.com.evil.example/x",
        "http://management.azure.com/x",
        "https://example.com/x",
    ] {
        let error = arm.get(url).await.unwrap_err();
        assert_eq!(error.kind, AzureErrorKind::Refused, "{url}: {error}");
    }
    assert!(
        stack
            .requests()
            .iter()
            .all(|r| r.service != atg_testkit::Service::Token),
        "no token was even requested"
    );
}

#[tokio::test]
async fn follow_up_urls_off_the_arm_host_are_never_requested() {
    let stack = Stack::start().await;
    let arm = client(&stack, WriteAccess::ReadWrite);
    for index in 0..3 {
        arm.call_and_wait(
            Method::Put,
            &format!("{GROUP}/providers/Microsoft.Example/things/t{index}?api-version=2024-01-01"),
            Some(&json!({ "location": "westeurope" })),
        )
        .await
        .unwrap();
    }
    // A host of the same cloud (tokens may go there) but not this client's endpoint.
    let elsewhere = "https://acct1.blob.core.windows.net";
    stack
        .emulator
        .set_options(|options| options.follow_up_origin = Some(elsewhere.into()));
    stack.emulator.clear_requests();
    let mut pages = 0;
    let listed = arm
        .list_pages(
            &format!("{GROUP}/resources?api-version=2021-04-01&$top=2"),
            |_| {
                pages += 1;
                Ok(())
            },
        )
        .await
        .unwrap_err();
    assert_eq!(listed.kind, AzureErrorKind::Refused, "{listed}");
    assert!(
        listed.to_string().contains("acct1.blob.core.windows.net"),
        "{listed}"
    );
    assert_eq!(pages, 1, "only the ARM host's own page was taken");
    let operation = arm
        .call_and_wait(
            Method::Put,
            &format!("{GROUP}/providers/Microsoft.Example/things/t9?api-version=2024-01-01"),
            Some(&json!({ "location": "westeurope" })),
        )
        .await
        .unwrap_err();
    assert_eq!(operation.kind, AzureErrorKind::Refused, "{operation}");
    assert!(
        stack
            .requests()
            .iter()
            .all(|r| r.host == "management.azure.com" || r.service == atg_testkit::Service::Token),
        "a request left the ARM host: {:#?}",
        stack.requests()
    );
}
