//! The storage gateway's synthetic List Blobs, read through the gateway by a plain REST client
//! on the production host name: pages of 5,000 (or `maxresults`) with markers, names sorted,
//! every generated blob once; other requests still reach Azurite.
//!
//! Needs Azurite (`scripts/azurite.sh install`).

// A test helper fails loudly on a broken answer.
#![allow(clippy::unwrap_used)]

use atg_testkit::azurite::{Azurite, AzuriteAccount};
use atg_testkit::storage_gateway::StorageGateway;
use atg_testkit::synthetic_listing::blob_name;
use atg_testkit::{Emulator, EmulatorOptions};

const ACCOUNT: &str = "synthacct";
const HOST: &str = "synthacct.blob.core.windows.net";

/// Follows the markers: (blobs per page, every name).
async fn list(client: &reqwest::Client, query: &str) -> (Vec<usize>, Vec<String>) {
    let (mut sizes, mut names) = (Vec::new(), Vec::new());
    let mut marker = String::new();
    loop {
        let url = format!(
            "https://{HOST}/many?restype=container&comp=list&include=metadata,tags{query}&marker={marker}"
        );
        let response = client
            .get(url)
            .header("x-ms-version", "2021-08-06")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/xml");
        let body = response.text().await.unwrap();
        let text = body.trim_start_matches('\u{feff}');
        let page: Vec<String> = text
            .split("<Name>")
            .skip(1)
            .map(|rest| rest.split_once("</Name>").unwrap().0.to_owned())
            .collect();
        sizes.push(page.len());
        names.extend(page);
        let Some((_, rest)) = text.split_once("<NextMarker>") else {
            assert!(text.contains("<NextMarker />"), "the last page says so");
            return (sizes, names);
        };
        rest.split_once("</NextMarker>")
            .unwrap()
            .0
            .clone_into(&mut marker);
    }
}

#[tokio::test]
async fn a_synthetic_listing_pages_sorted_names_through_the_gateway() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let azurite = Azurite::start(&emulator, &[AzuriteAccount::named(ACCOUNT)])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let gateway = StorageGateway::start(&emulator, &azurite, None)
        .await
        .unwrap();
    gateway.set_synthetic_listing(ACCOUNT, "many", Some(12_001));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes()).unwrap())
        .resolve(HOST, gateway.addr)
        .build()
        .unwrap();

    let (sizes, names) = list(&client, "").await;
    assert_eq!(sizes, vec![5000, 5000, 2001]);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, once each");
    assert_eq!(names, (0..12_001).map(blob_name).collect::<Vec<_>>());
    let (sizes, _) = list(&client, "&maxresults=1000").await;
    assert_eq!(sizes.len(), 13);
    assert!(sizes[..12].iter().all(|size| *size == 1000));

    // Only List Blobs is generated: the container's properties are Azurite's (it has none).
    let properties = client
        .get(format!("https://{HOST}/many?restype=container"))
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap();
    assert_ne!(properties.status(), 200);
    let requests = gateway.requests();
    assert_eq!(
        requests.last().unwrap().status,
        Some(properties.status().as_u16())
    );
    // Given back to Azurite, the listing is Azurite's: not the generated one.
    gateway.set_synthetic_listing(ACCOUNT, "many", None);
    let listed = client
        .get(format!("https://{HOST}/many?restype=container&comp=list"))
        .header("x-ms-version", "2021-08-06")
        .send()
        .await
        .unwrap();
    assert!(!listed.text().await.unwrap().contains("<Name>data/"));
    azurite.stop().await;
    emulator.shutdown().await;
}
