//! A synthetic List Blobs: one container's listing answered with generated blobs, a page at a
//! time, so that planning over 100,000 blobs can be measured without seeding them (Azurite's
//! seeding slows quadratically with the blobs already there; see docs/benchmarks.md).
//!
//! The answer is shaped as Azure's (`azure-recordings/storage/test_storage_blob_upload_small_
//! file.yaml`): a byte-order mark, `EnumerationResults` with `ServiceEndpoint` and
//! `ContainerName`, each blob's properties as the service lists them, `<Metadata />` when
//! `include` asks for metadata, 5,000 blobs per page unless `maxresults` asks for fewer, an opaque
//! `NextMarker` while blobs remain and an empty one on the last page. Names are
//! `data/<index, 9 digits>.bin`, so name order is index order, and every page is generated
//! from its marker: nothing is held between requests. A blob's properties depend only on its
//! index (the same listing in two accounts is identical blob for blob), its entity tag also on
//! the account (as two accounts' copies have different entity tags).
//!
//! It answers List Blobs only; the gateway passes every other request to Azurite.

use std::fmt::Write as _;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// The most blobs one page holds, as on Azure.
pub const PAGE_LIMIT: u64 = 5000;

/// Every page's `Last-Modified` and `Creation-Time`.
const MODIFIED: &str = "Tue, 21 Nov 2023 07:09:49 GMT";

/// The query of a List Blobs request that matters to the listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: Option<String>,
    pub marker: Option<String>,
    pub max_results: Option<u64>,
    /// `include` names `metadata`.
    pub metadata: bool,
}

impl ListQuery {
    /// The listing's parameters from a request's query string.
    #[must_use]
    pub fn parse(query: &str) -> ListQuery {
        let mut parsed = ListQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "prefix" if !value.is_empty() => parsed.prefix = Some(value.into_owned()),
                "marker" if !value.is_empty() => parsed.marker = Some(value.into_owned()),
                "maxresults" => parsed.max_results = value.parse().ok(),
                "include" => parsed.metadata = value.split(',').any(|i| i == "metadata"),
                _ => {}
            }
        }
        parsed
    }
}

/// The generated name of the blob at `index`.
#[must_use]
pub fn blob_name(index: u64) -> String {
    format!("data/{index:09}.bin")
}

fn marker_of(index: u64) -> String {
    let inner = format!("synthetic!{index:09}");
    format!(
        "2!{}!{}",
        inner.len(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(inner)
    )
}

fn index_of(marker: &str) -> Option<u64> {
    let encoded = marker.splitn(3, '!').nth(2)?;
    let inner = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    String::from_utf8(inner)
        .ok()?
        .strip_prefix("synthetic!")?
        .parse()
        .ok()
}

/// One page of the listing of `blobs` generated blobs in `account/container`, or `None` when
/// the marker is not one this listing gave (Azure answers such a marker 400).
#[must_use]
pub fn page(account: &str, container: &str, blobs: u64, query: &ListQuery) -> Option<String> {
    let start = match &query.marker {
        Some(marker) => index_of(marker)?,
        None => 0,
    };
    let limit = query
        .max_results
        .map_or(PAGE_LIMIT, |m| m.clamp(1, PAGE_LIMIT));
    let mut body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"https://{account}.blob.core.windows.net/\" ContainerName=\"{container}\">"
    );
    // Writing to a String cannot fail.
    if let Some(prefix) = &query.prefix {
        let _ = write!(body, "<Prefix>{}</Prefix>", escape(prefix));
    }
    if let Some(marker) = &query.marker {
        let _ = write!(body, "<Marker>{marker}</Marker>");
    }
    if let Some(max) = query.max_results {
        let _ = write!(body, "<MaxResults>{max}</MaxResults>");
    }
    body.push_str("<Blobs>");
    let prefix = query.prefix.as_deref().unwrap_or_default();
    let mut matching = (start..blobs).filter(|index| blob_name(*index).starts_with(prefix));
    for index in matching
        .by_ref()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        push_blob(&mut body, account, index, query.metadata);
    }
    body.push_str("</Blobs>");
    match matching.next() {
        Some(index) => {
            let _ = write!(body, "<NextMarker>{}</NextMarker>", marker_of(index));
        }
        None => body.push_str("<NextMarker />"),
    }
    body.push_str("</EnumerationResults>");
    Some(body)
}

fn push_blob(body: &mut String, account: &str, index: u64, metadata: bool) {
    let name = blob_name(index);
    // No content exists: the digest stands for one, 16 bytes as Content-MD5 has, from the name.
    let digest = Sha1::digest(name.as_bytes());
    let md5 = base64::engine::general_purpose::STANDARD.encode(&digest[..16]);
    let tag = Sha1::digest(format!("{account}/{name}").as_bytes());
    let etag = tag[..7].iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02X}");
        hex
    });
    let size = 512 + (index * 7919) % (64 * 1024);
    let _ = write!(
        body,
        "<Blob><Name>{name}</Name><Properties><Creation-Time>{MODIFIED}</Creation-Time><Last-Modified>{MODIFIED}</Last-Modified><Etag>0x8{}</Etag><Content-Length>{size}</Content-Length><Content-Type>application/octet-stream</Content-Type><Content-Encoding /><Content-Language /><Content-CRC64 /><Content-MD5>{md5}</Content-MD5><Cache-Control /><Content-Disposition /><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>",
        &etag[..13]
    );
    if metadata {
        body.push_str("<Metadata />");
    }
    body.push_str("</Blob>");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (names, next marker) of a page, read with a plain XML reader.
    fn read(body: &str) -> (Vec<String>, Option<String>) {
        let text = body.trim_start_matches('\u{feff}');
        let names = text
            .split("<Name>")
            .skip(1)
            .map(|rest| rest.split_once("</Name>").unwrap().0.to_owned())
            .collect();
        let next = text
            .split_once("<NextMarker>")
            .map(|(_, rest)| rest.split_once("</NextMarker>").unwrap().0.to_owned());
        (names, next)
    }

    /// Every page's size, following the markers; checks the names come sorted, once each.
    fn walk(blobs: u64, mut query: ListQuery) -> (Vec<usize>, Vec<String>) {
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        loop {
            let (names, next) = read(&page("acct", "c", blobs, &query).unwrap());
            sizes.push(names.len());
            all.extend(names);
            match next {
                Some(marker) => query.marker = Some(marker),
                None => break,
            }
        }
        assert!(
            all.windows(2).all(|w| w[0] < w[1]),
            "names sorted, no repeats"
        );
        (sizes, all)
    }

    #[test]
    fn pages_of_five_thousand_with_markers_until_the_last() {
        let (sizes, names) = walk(12_345, ListQuery::default());
        assert_eq!(sizes, vec![5000, 5000, 2345]);
        assert_eq!(names, (0..12_345).map(blob_name).collect::<Vec<_>>());
        assert_eq!(walk(10_000, ListQuery::default()).0, vec![5000, 5000]);
        assert_eq!(walk(0, ListQuery::default()).0, vec![0]);
    }

    #[test]
    fn maxresults_and_prefix_are_honoured() {
        let query =
            ListQuery::parse("restype=container&comp=list&maxresults=1000&include=metadata,tags");
        assert_eq!(query.max_results, Some(1000));
        assert!(query.metadata);
        assert_eq!(walk(2500, query).0, vec![1000, 1000, 500]);
        // More than Azure's page limit is answered with the limit.
        let query = ListQuery::parse("maxresults=9000");
        assert_eq!(walk(6000, query).0, vec![5000, 1000]);
        let prefix = ListQuery::parse("prefix=data/00000001&maxresults=4");
        let (sizes, names) = walk(200, prefix);
        assert_eq!(sizes, vec![4, 4, 2]);
        assert_eq!(
            names.first().map(String::as_str),
            Some("data/000000010.bin")
        );
        assert_eq!(names.last().map(String::as_str), Some("data/000000019.bin"));
    }

    #[test]
    fn the_same_listing_in_two_accounts_differs_only_by_entity_tag() {
        let query = ListQuery::default();
        let (a, b) = (
            page("one", "c", 3, &query).unwrap(),
            page("two", "c", 3, &query).unwrap(),
        );
        let etags = |body: &str| -> Vec<String> {
            body.split("<Etag>")
                .skip(1)
                .map(|r| r.split_once("</Etag>").unwrap().0.to_owned())
                .collect()
        };
        assert_ne!(etags(&a), etags(&b));
        let strip = |body: &str| {
            let mut out = body.replace("https://one.", "https://two.");
            for etag in etags(body) {
                out = out.replace(&etag, "");
            }
            out
        };
        assert_eq!(strip(&a), strip(&b));
    }

    #[test]
    fn a_marker_it_did_not_give_is_refused() {
        let query = ListQuery {
            marker: Some("2!92!bm90LW91cnM".into()),
            ..ListQuery::default()
        };
        assert_eq!(page("acct", "c", 10, &query), None);
    }
}
