//! Blob service operations atg uses: listing (one page at a time), container settings, the
//! user delegation key, and the server-side copies (Copy Blob From URL, Put Block From URL +
//! Put Block List, async Copy Blob and its polling).

use std::collections::BTreeMap;

use azure_core::http::Method;
use serde::{Deserialize, Serialize};

use super::sas::UserDelegationKey;
use super::xml::{self, SignedIdentifier};
use super::{blob_segments, iso_seconds, parse_http_date, StorageClient, StorageResponse};
use super::{borrowed, metadata_headers};
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

/// One page of a listing and where the next starts.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSettings {
    pub metadata: BTreeMap<String, String>,
    /// `blob`, `container`, or `None` for private.
    pub public_access: Option<String>,
    pub access_policies: Vec<SignedIdentifier>,
    /// False when the service refused to show the stored access policies (Get Container ACL
    /// takes Shared Key only; Entra ID tokens and SAS are refused).
    #[serde(default = "yes")]
    pub policies_readable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug)]
pub struct ContainerItem {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub public_access: Option<String>,
    pub last_modified: Option<time::OffsetDateTime>,
}

/// A blob as a listing (with metadata and tags) describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub size: u64,
    pub blob_type: String,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
    pub content_md5: Option<String>,
    pub access_tier: Option<String>,
    pub access_tier_inferred: bool,
    /// `rehydrate-pending-to-hot` and the like.
    pub archive_status: Option<String>,
    pub last_modified: Option<time::OffsetDateTime>,
    pub etag: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl BlobItem {
    pub fn is_block_blob(&self) -> bool {
        self.blob_type.eq_ignore_ascii_case("BlockBlob")
    }

    pub fn is_page_blob(&self) -> bool {
        self.blob_type.eq_ignore_ascii_case("PageBlob")
    }

    pub fn is_append_blob(&self) -> bool {
        self.blob_type.eq_ignore_ascii_case("AppendBlob")
    }

    pub fn is_archived(&self) -> bool {
        self.access_tier
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("Archive"))
    }

    /// The tier to ask for on the copy: only when the source's was set explicitly.
    pub fn explicit_tier(&self) -> Option<&str> {
        if self.access_tier_inferred || !self.is_block_blob() {
            None
        } else {
            self.access_tier.as_deref()
        }
    }
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn parse_blob(node: roxmltree::Node<'_, '_>) -> Option<BlobItem> {
    let name = xml::name_of(node)?;
    let properties = xml::child(node, "Properties")?;
    let property = |name: &str| non_empty(xml::child_text(properties, name));
    let tags = xml::child(node, "Tags")
        .and_then(|t| xml::child(t, "TagSet"))
        .map(|set| {
            xml::children(set, "Tag")
                .map(|tag| {
                    (
                        xml::child_text(tag, "Key").unwrap_or_default().to_owned(),
                        xml::child_text(tag, "Value").unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Some(BlobItem {
        name,
        size: property("Content-Length")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        blob_type: property("BlobType").unwrap_or_else(|| "BlockBlob".into()),
        content_type: property("Content-Type"),
        content_encoding: property("Content-Encoding"),
        content_language: property("Content-Language"),
        content_disposition: property("Content-Disposition"),
        cache_control: property("Cache-Control"),
        content_md5: property("Content-MD5"),
        access_tier: property("AccessTier"),
        access_tier_inferred: property("AccessTierInferred").as_deref() == Some("true"),
        archive_status: property("ArchiveStatus"),
        last_modified: property("Last-Modified").and_then(|d| parse_http_date(&d)),
        etag: property("Etag"),
        metadata: xml::metadata(node),
        tags,
    })
}

fn invalid_answer(what: &str, problem: &str) -> AzureError {
    AzureError::new(
        AzureErrorKind::Other,
        format!("could not read the {what}: {problem}"),
    )
}

/// Metadata a blob carries while atg is still copying ranges into it (page and append blobs):
/// a target blob with it is atg's unfinished copy, replaced on the next run whatever the
/// conflict policy.
pub const INCOMPLETE_MARKER: &str = "atg_incomplete_copy";

/// The `x-ms-tags` value for a set of tags (URL-encoded `k=v&k=v`).
pub fn tags_header(tags: &BTreeMap<String, String>) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in tags {
        serializer.append_pair(key, value);
    }
    Some(serializer.finish().replace('+', "%20"))
}

/// Conditions on the destination of a write.
#[derive(Clone, Debug)]
pub enum Destination {
    /// Only if absent (`If-None-Match: *`).
    Absent,
    /// Only if unchanged since read (`If-Match: etag`).
    Unchanged(String),
}

impl Destination {
    fn header(&self) -> (&'static str, String) {
        match self {
            Destination::Absent => ("if-none-match", "*".into()),
            Destination::Unchanged(etag) => ("if-match", etag.clone()),
        }
    }
}

/// What a copy request achieved.
#[derive(Debug)]
pub enum CopyAnswer {
    /// The copy finished.
    Done,
    /// Async copy accepted and still running (`x-ms-copy-id`).
    Pending(String),
    /// The service does not implement this call (501, or `NotImplemented`/`FeatureNotSupported`):
    /// use another one.
    Unsupported,
    /// The destination condition failed (it exists, or it changed since it was read).
    ConditionFailed,
    /// The source is no longer the version that was listed (`x-ms-source-if-match` failed).
    SourceChanged,
    /// The service answered a Put Block From URL with something else than a staged block
    /// (Azurite 3.35 runs a whole Copy Blob and answers 202): treat the call as unsupported.
    /// Carries the `ETag` of what the service wrote to the destination, so it can be replaced
    /// conditionally.
    Misrouted(Option<String>),
}

fn is_unsupported(response: &StorageResponse) -> bool {
    if response.status == 501 {
        return true;
    }
    let error = response.error();
    response.status == 400
        && ["NotImplemented", "FeatureNotSupported", "UnsupportedHeader"]
            .iter()
            .any(|code| error.has_code(code))
}

fn is_condition_failed(response: &StorageResponse) -> bool {
    response.status == 412
        || (response.status == 409 && response.error().has_code("BlobAlreadyExists"))
}

fn copy_answer(response: &StorageResponse) -> Result<CopyAnswer, AzureError> {
    if is_unsupported(response) {
        return Ok(CopyAnswer::Unsupported);
    }
    if is_condition_failed(response) {
        return Ok(CopyAnswer::ConditionFailed);
    }
    if !response.is_success() {
        return Err(response.error());
    }
    match response.header("x-ms-copy-status") {
        Some("pending") => Ok(CopyAnswer::Pending(
            response
                .header("x-ms-copy-id")
                .unwrap_or_default()
                .to_owned(),
        )),
        Some("success") | None => Ok(CopyAnswer::Done),
        Some(other) => Err(AzureError::new(
            AzureErrorKind::Other,
            format!("the copy ended `{other}`"),
        )),
    }
}

/// The state of an async copy, from the destination's properties.
#[derive(Debug, PartialEq, Eq)]
pub enum CopyState {
    Pending,
    Success,
    Failed(String),
}

impl StorageClient {
    pub async fn list_containers(
        &self,
        marker: Option<&str>,
    ) -> Result<Page<ContainerItem>, AzureError> {
        self.list_service(marker, ("Containers", "Container"), |node| {
            let properties = xml::child(node, "Properties");
            Some(ContainerItem {
                name: xml::name_of(node)?,
                metadata: xml::metadata(node),
                public_access: properties
                    .and_then(|p| non_empty(xml::child_text(p, "PublicAccess"))),
                last_modified: properties
                    .and_then(|p| xml::child_text(p, "Last-Modified"))
                    .and_then(parse_http_date),
            })
        })
        .await
    }

    /// Metadata, public access and stored access policies; `None` when the container is absent.
    pub async fn container_settings(
        &self,
        container: &str,
    ) -> Result<Option<ContainerSettings>, AzureError> {
        let response = self
            .send(
                Method::Get,
                self.url(&[container], &[("restype", "container")]),
                &[],
                None,
            )
            .await?;
        if response.status == 404 {
            return Ok(None);
        }
        let response = response.success()?;
        let metadata = self
            .listed_metadata(("Containers", "Container"), container)
            .await?
            .unwrap_or_else(|| response.metadata());
        let public_access = non_empty(response.header("x-ms-blob-public-access"));
        let access_policies = self.container_acl(container).await?;
        Ok(Some(ContainerSettings {
            metadata,
            public_access,
            policies_readable: access_policies.is_some(),
            access_policies: access_policies.unwrap_or_default(),
        }))
    }

    /// The container's stored access policies; `None` when the service refuses to show them
    /// (Get Container ACL takes Shared Key: Entra ID tokens and SAS are refused).
    pub async fn container_acl(
        &self,
        container: &str,
    ) -> Result<Option<Vec<SignedIdentifier>>, AzureError> {
        let acl = self
            .send(
                Method::Get,
                self.url(&[container], &[("restype", "container"), ("comp", "acl")]),
                &[],
                None,
            )
            .await?;
        if matches!(acl.status, 401 | 403) {
            return Ok(None);
        }
        let acl = acl.success()?;
        xml::signed_identifiers(&acl.body)
            .map(Some)
            .map_err(|e| invalid_answer("container access policies", &e))
    }

    /// Creates a container. `Ok(false)` when it already exists.
    pub async fn create_container(
        &self,
        container: &str,
        metadata: &BTreeMap<String, String>,
        public_access: Option<&str>,
    ) -> Result<bool, AzureError> {
        let mut headers = metadata_headers(metadata);
        if let Some(access) = public_access {
            headers.push(("x-ms-blob-public-access".to_owned(), access.to_owned()));
        }
        let response = self
            .send(
                Method::Put,
                self.url(&[container], &[("restype", "container")]),
                &borrowed(&headers),
                None,
            )
            .await?;
        if response.status == 409 && response.error().has_code("ContainerAlreadyExists") {
            return Ok(false);
        }
        response.success().map(|_| true)
    }

    pub async fn set_container_metadata(
        &self,
        container: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), AzureError> {
        let headers = metadata_headers(metadata);
        self.send(
            Method::Put,
            self.url(
                &[container],
                &[("restype", "container"), ("comp", "metadata")],
            ),
            &borrowed(&headers),
            None,
        )
        .await?
        .success()
        .map(|_| ())
    }

    pub async fn set_container_acl(
        &self,
        container: &str,
        public_access: Option<&str>,
        policies: &[SignedIdentifier],
    ) -> Result<(), AzureError> {
        let mut headers = vec![("content-type", "application/xml".to_owned())];
        if let Some(access) = public_access {
            headers.push(("x-ms-blob-public-access", access.to_owned()));
        }
        self.send(
            Method::Put,
            self.url(&[container], &[("restype", "container"), ("comp", "acl")]),
            &headers,
            Some(xml::signed_identifiers_body(policies)),
        )
        .await?
        .success()
        .map(|_| ())
    }

    /// One page of blobs (committed, current versions) with metadata and tags. `Ok(None)` when
    /// the container does not exist.
    pub async fn list_blobs(
        &self,
        container: &str,
        marker: Option<&str>,
        page_size: u32,
    ) -> Result<Option<Page<BlobItem>>, AzureError> {
        self.list_blobs_from(container, (None, marker), page_size)
            .await
    }

    /// One blob as [`Self::list_blobs`] describes it; `Ok(None)` when it is absent.
    pub async fn blob_item(
        &self,
        container: &str,
        blob: &str,
    ) -> Result<Option<BlobItem>, AzureError> {
        // The blob itself is the first name that starts with its name.
        let page = self
            .list_blobs_from(container, (Some(blob), None), 1)
            .await?;
        Ok(page.and_then(|page| page.items.into_iter().find(|item| item.name == blob)))
    }

    async fn list_blobs_from(
        &self,
        container: &str,
        (prefix, marker): (Option<&str>, Option<&str>),
        page_size: u32,
    ) -> Result<Option<Page<BlobItem>>, AzureError> {
        let size = page_size.clamp(1, 5000).to_string();
        let mut query = vec![
            ("restype", "container"),
            ("comp", "list"),
            ("include", "metadata,tags"),
            ("maxresults", size.as_str()),
        ];
        if let Some(prefix) = prefix {
            query.push(("prefix", prefix));
        }
        if let Some(marker) = marker {
            query.push(("marker", marker));
        }
        let response = self
            .send(Method::Get, self.url(&[container], &query), &[], None)
            .await?;
        if response.status == 404 && response.error().has_code("ContainerNotFound") {
            return Ok(None);
        }
        let response = response.success()?;
        let document = xml::parse(&response.body).map_err(|e| invalid_answer("blob list", &e))?;
        let root = document.root_element();
        let items = xml::child(root, "Blobs")
            .map(|blobs| {
                xml::children(blobs, "Blob")
                    .filter_map(parse_blob)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Page {
            items,
            next_marker: non_empty(xml::child_text(root, "NextMarker")),
        }))
    }

    /// A user delegation key valid from `start` to `expiry` (at most 7 days), with a bearer token.
    pub async fn user_delegation_key(
        &self,
        start: time::OffsetDateTime,
        expiry: time::OffsetDateTime,
    ) -> Result<UserDelegationKey, AzureError> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><KeyInfo><Start>{}</Start><Expiry>{}</Expiry></KeyInfo>",
            iso_seconds(start),
            iso_seconds(expiry)
        );
        let response = self
            .send(
                Method::Post,
                self.url(
                    &[],
                    &[("restype", "service"), ("comp", "userdelegationkey")],
                ),
                &[("content-type", "application/xml".to_owned())],
                Some(body.into_bytes()),
            )
            .await?
            .success()?;
        let document =
            xml::parse(&response.body).map_err(|e| invalid_answer("user delegation key", &e))?;
        let root = document.root_element();
        let field = |name: &str| {
            xml::child_text(root, name)
                .map(str::to_owned)
                .ok_or_else(|| invalid_answer("user delegation key", &format!("no {name}")))
        };
        Ok(UserDelegationKey {
            signed_oid: field("SignedOid")?,
            signed_tid: field("SignedTid")?,
            signed_start: field("SignedStart")?,
            signed_expiry: field("SignedExpiry")?,
            signed_service: field("SignedService")?,
            signed_version: field("SignedVersion")?,
            value: Sensitive::new(field("Value")?),
        })
    }

    /// The URL of a blob (without any SAS).
    pub fn blob_url(&self, container: &str, blob: &str) -> azure_core::http::Url {
        self.url(&blob_segments(container, blob), &[])
    }

    /// Copy Blob From URL (`x-ms-requires-sync: true`): synchronous, source ≤ 256 MiB.
    pub async fn copy_from_url_sync(
        &self,
        container: &str,
        blob: &str,
        source_url: &Sensitive,
        source: &BlobItem,
        destination: &Destination,
    ) -> Result<CopyAnswer, AzureError> {
        self.copy(container, blob, source_url, source, destination, true)
            .await
    }

    /// Copy Blob: asynchronous, any size and blob type.
    pub async fn start_copy(
        &self,
        container: &str,
        blob: &str,
        source_url: &Sensitive,
        source: &BlobItem,
        destination: &Destination,
    ) -> Result<CopyAnswer, AzureError> {
        self.copy(container, blob, source_url, source, destination, false)
            .await
    }

    /// Copy Blob, synchronous (`x-ms-requires-sync`) or not: the same PUT either way.
    async fn copy(
        &self,
        container: &str,
        blob: &str,
        source_url: &Sensitive,
        source: &BlobItem,
        destination: &Destination,
        synchronous: bool,
    ) -> Result<CopyAnswer, AzureError> {
        let headers = copy_headers(source_url, source, destination, synchronous);
        let response = self
            .send(
                Method::Put,
                self.url(&blob_segments(container, blob), &[]),
                &headers,
                None,
            )
            .await?;
        copy_answer(&response)
    }

    /// Get Blob Properties.
    async fn properties(&self, container: &str, blob: &str) -> Result<StorageResponse, AzureError> {
        self.send(
            Method::Head,
            self.url(&blob_segments(container, blob), &[]),
            &[],
            None,
        )
        .await?
        .success()
    }

    /// The copy state of a destination blob.
    pub async fn copy_state(&self, container: &str, blob: &str) -> Result<CopyState, AzureError> {
        let response = self.properties(container, blob).await?;
        Ok(match response.header("x-ms-copy-status") {
            Some("pending") => CopyState::Pending,
            Some("success") | None => CopyState::Success,
            Some(other) => CopyState::Failed(format!(
                "copy {other}: {}",
                super::sanitize_server_text(
                    response
                        .header("x-ms-copy-status-description")
                        .unwrap_or("no description")
                )
            )),
        })
    }

    /// Put Block From URL: stages `range` of the source as block `block_id`.
    pub async fn put_block_from_url(
        &self,
        container: &str,
        blob: &str,
        block_id: &str,
        (source_url, source): (&Sensitive, &BlobItem),
        range: (u64, u64),
    ) -> Result<CopyAnswer, AzureError> {
        let query = [("comp", "block"), ("blockid", block_id)];
        let Some(response) = self
            .write_from_url(
                container,
                blob,
                &query,
                (source_url, source),
                range,
                Vec::new(),
            )
            .await?
        else {
            return Ok(CopyAnswer::Unsupported);
        };
        if response.status == 412 {
            return Ok(CopyAnswer::SourceChanged);
        }
        let response = response.success()?;
        // A staged block is 201 Created; anything else is not Put Block From URL.
        if response.status != 201 {
            return Ok(CopyAnswer::Misrouted(
                response.header("etag").map(str::to_owned),
            ));
        }
        Ok(CopyAnswer::Done)
    }

    /// One of the "... From URL" writes: `range` of the source into this blob, with `query`
    /// naming the operation and `headers` its own. `None` when the service does not implement it.
    async fn write_from_url(
        &self,
        container: &str,
        blob: &str,
        query: &[(&str, &str)],
        (source_url, source): (&Sensitive, &BlobItem),
        range: (u64, u64),
        mut headers: Vec<(&str, String)>,
    ) -> Result<Option<StorageResponse>, AzureError> {
        headers.push(("x-ms-copy-source", source_url.expose().to_owned()));
        // The bytes come from the version that was listed, or the call fails (412).
        if let Some(etag) = &source.etag {
            headers.push(("x-ms-source-if-match", etag.clone()));
        }
        headers.push((
            "x-ms-source-range",
            format!("bytes={}-{}", range.0, range.1),
        ));
        let response = self
            .send(
                Method::Put,
                self.url(&blob_segments(container, blob), query),
                &headers,
                None,
            )
            .await?;
        Ok((!is_unsupported(&response)).then_some(response))
    }

    /// Put Block List: commits the staged blocks with the source's properties.
    pub async fn put_block_list(
        &self,
        container: &str,
        blob: &str,
        block_ids: &[String],
        source: &BlobItem,
        destination: &Destination,
    ) -> Result<CopyAnswer, AzureError> {
        let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in block_ids {
            body.push_str("<Latest>");
            body.push_str(id);
            body.push_str("</Latest>");
        }
        body.push_str("</BlockList>");
        let mut headers = property_headers(source);
        if let Some(tier) = source.explicit_tier() {
            headers.push(("x-ms-access-tier".into(), tier.to_owned()));
        }
        let (name, value) = destination.header();
        headers.push((name.to_owned(), value));
        headers.push(("content-type".into(), "application/xml".into()));
        let response = self
            .send(
                Method::Put,
                self.url(&blob_segments(container, blob), &[("comp", "blocklist")]),
                &borrowed(&headers),
                Some(body.into_bytes()),
            )
            .await?;
        if is_condition_failed(&response) {
            return Ok(CopyAnswer::ConditionFailed);
        }
        response.success().map(|_| CopyAnswer::Done)
    }

    /// Creates an empty page blob of the source's size, or an empty append blob, with the
    /// source's properties and tags but no Content-MD5, and with [`INCOMPLETE_MARKER`] added to
    /// its metadata: until [`Self::finish_ranges`] runs, it is visibly atg's unfinished copy,
    /// never taken for identical. The `ETag` of the new blob, or `ConditionFailed`.
    pub async fn create_for_ranges(
        &self,
        container: &str,
        blob: &str,
        source: &BlobItem,
        destination: &Destination,
    ) -> Result<Result<String, CopyAnswer>, AzureError> {
        let mut unfinished = source.clone();
        unfinished.content_md5 = None;
        unfinished
            .metadata
            .insert(INCOMPLETE_MARKER.to_owned(), "true".to_owned());
        let mut headers = property_headers(&unfinished);
        if source.is_page_blob() {
            headers.push(("x-ms-blob-type".into(), "PageBlob".into()));
            headers.push(("x-ms-blob-content-length".into(), source.size.to_string()));
        } else {
            headers.push(("x-ms-blob-type".into(), "AppendBlob".into()));
        }
        let (name, value) = destination.header();
        headers.push((name.to_owned(), value));
        let response = self
            .send(
                Method::Put,
                self.url(&blob_segments(container, blob), &[]),
                &borrowed(&headers),
                None,
            )
            .await?;
        if is_condition_failed(&response) {
            return Ok(Err(CopyAnswer::ConditionFailed));
        }
        let response = response.success()?;
        match response.header("etag") {
            Some(etag) => Ok(Ok(etag.to_owned())),
            None => Err(invalid_answer("created blob", "no ETag")),
        }
    }

    /// After the last range: the source's content headers (with its Content-MD5), then its
    /// metadata, which drops [`INCOMPLETE_MARKER`] last.
    pub async fn finish_ranges(
        &self,
        container: &str,
        blob: &str,
        source: &BlobItem,
    ) -> Result<(), AzureError> {
        let url = |comp| self.url(&blob_segments(container, blob), &[("comp", comp)]);
        let content: Vec<(String, String)> = property_headers(source)
            .into_iter()
            .filter(|(name, _)| name.starts_with("x-ms-blob-"))
            .collect();
        self.send(Method::Put, url("properties"), &borrowed(&content), None)
            .await?
            .success()?;
        let metadata = metadata_headers(&source.metadata);
        self.send(Method::Put, url("metadata"), &borrowed(&metadata), None)
            .await?
            .success()
            .map(|_| ())
    }

    /// One page of a page blob's valid ranges (inclusive byte offsets), from Get Page Ranges.
    pub async fn page_ranges(
        &self,
        container: &str,
        blob: &str,
        marker: Option<&str>,
    ) -> Result<Page<(u64, u64)>, AzureError> {
        // Paged, so a large fragmented disk is not one huge answer (2020-10-02 and later).
        let mut query = vec![("comp", "pagelist"), ("maxresults", "10000")];
        if let Some(marker) = marker {
            query.push(("marker", marker));
        }
        let response = self
            .send(
                Method::Get,
                self.url(&blob_segments(container, blob), &query),
                &[],
                None,
            )
            .await?
            .success()?;
        let document = xml::parse(&response.body).map_err(|e| invalid_answer("page ranges", &e))?;
        let root = document.root_element();
        let number =
            |node, name| xml::child_text(node, name).and_then(|t| t.trim().parse::<u64>().ok());
        let mut items = Vec::new();
        for range in xml::children(root, "PageRange") {
            match (number(range, "Start"), number(range, "End")) {
                (Some(start), Some(end)) if start <= end => items.push((start, end)),
                _ => {
                    return Err(invalid_answer(
                        "page ranges",
                        "a range without start and end",
                    ))
                }
            }
        }
        Ok(Page {
            items,
            next_marker: non_empty(xml::child_text(root, "NextMarker")),
        })
    }

    /// Put Page From URL: writes `range` of the source to the same range of this page blob.
    /// Idempotent, so a retried call is harmless.
    pub async fn put_page_from_url(
        &self,
        container: &str,
        blob: &str,
        source_url: &Sensitive,
        source: &BlobItem,
        range: (u64, u64),
    ) -> Result<CopyAnswer, AzureError> {
        let headers = vec![
            ("x-ms-range", format!("bytes={}-{}", range.0, range.1)),
            ("x-ms-page-write", "update".to_owned()),
        ];
        let query = [("comp", "page")];
        match self
            .write_from_url(
                container,
                blob,
                &query,
                (source_url, source),
                range,
                headers,
            )
            .await?
        {
            None => Ok(CopyAnswer::Unsupported),
            Some(response) if response.status == 412 => Ok(CopyAnswer::SourceChanged),
            Some(response) => response.success().map(|_| CopyAnswer::Done),
        }
    }

    /// Append Block From URL: appends `range` of the source, only at `position` (the blob's
    /// length before), so a retried call can never append twice: it fails with
    /// `ConditionFailed` instead, and the caller checks the length.
    pub async fn append_block_from_url(
        &self,
        container: &str,
        blob: &str,
        (source_url, source): (&Sensitive, &BlobItem),
        range: (u64, u64),
        position: u64,
    ) -> Result<CopyAnswer, AzureError> {
        let headers = vec![("x-ms-blob-condition-appendpos", position.to_string())];
        let query = [("comp", "appendblock")];
        let Some(response) = self
            .write_from_url(
                container,
                blob,
                &query,
                (source_url, source),
                range,
                headers,
            )
            .await?
        else {
            return Ok(CopyAnswer::Unsupported);
        };
        if response.status == 412 {
            return Ok(
                if response.error().has_code("AppendPositionConditionNotMet") {
                    CopyAnswer::ConditionFailed
                } else {
                    CopyAnswer::SourceChanged
                },
            );
        }
        response.success().map(|_| CopyAnswer::Done)
    }

    /// A blob's length.
    pub async fn blob_length(&self, container: &str, blob: &str) -> Result<u64, AzureError> {
        self.properties(container, blob)
            .await?
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| invalid_answer("blob properties", "no Content-Length"))
    }

    /// Aborts a pending async copy (best effort, on cancellation).
    pub async fn abort_copy(&self, container: &str, blob: &str, copy_id: &str) {
        let _ = self
            .send(
                Method::Put,
                self.url(
                    &blob_segments(container, blob),
                    &[("comp", "copy"), ("copyid", copy_id)],
                ),
                &[("x-ms-copy-action", "abort".to_owned())],
                None,
            )
            .await;
    }
}

/// Metadata, content headers and tags of `source`, as a write that creates a blob sets them.
fn property_headers(source: &BlobItem) -> Vec<(String, String)> {
    let mut headers = metadata_headers(&source.metadata);
    for (name, value) in [
        ("x-ms-blob-content-type", &source.content_type),
        ("x-ms-blob-content-encoding", &source.content_encoding),
        ("x-ms-blob-content-language", &source.content_language),
        ("x-ms-blob-content-disposition", &source.content_disposition),
        ("x-ms-blob-cache-control", &source.cache_control),
        ("x-ms-blob-content-md5", &source.content_md5),
    ] {
        if let Some(value) = value {
            headers.push((name.to_owned(), value.clone()));
        }
    }
    if let Some(tags) = tags_header(&source.tags) {
        headers.push(("x-ms-tags".into(), tags));
    }
    headers
}

fn copy_headers(
    source_url: &Sensitive,
    source: &BlobItem,
    destination: &Destination,
    sync: bool,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![("x-ms-copy-source", source_url.expose().to_owned())];
    if sync {
        headers.push(("x-ms-requires-sync", "true".into()));
    }
    if let Some(tags) = tags_header(&source.tags) {
        headers.push(("x-ms-tags", tags));
    }
    if let Some(tier) = source.explicit_tier() {
        headers.push(("x-ms-access-tier", tier.to_owned()));
    }
    headers.push(destination.header());
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_pages_are_parsed_with_properties_metadata_and_tags() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c"><Blobs>
<Blob><Name>dir/a.txt</Name><Properties><Last-Modified>Tue, 15 Nov 1994 08:12:31 GMT</Last-Modified><Etag>0x1</Etag><Content-Length>12</Content-Length><Content-Type>text/plain</Content-Type><Content-MD5>abc=</Content-MD5><BlobType>BlockBlob</BlobType><AccessTier>Cool</AccessTier><AccessTierInferred>false</AccessTierInferred></Properties><Metadata><Owner>me</Owner></Metadata><Tags><TagSet><Tag><Key>env</Key><Value>prod</Value></Tag></TagSet></Tags></Blob>
<Blob><Name>cold</Name><Properties><Content-Length>1</Content-Length><BlobType>BlockBlob</BlobType><AccessTier>Archive</AccessTier></Properties></Blob>
</Blobs><NextMarker>m2</NextMarker></EnumerationResults>"#;
        let document = xml::parse(body).unwrap();
        let blobs: Vec<BlobItem> = xml::child(document.root_element(), "Blobs")
            .map(|b| xml::children(b, "Blob").filter_map(parse_blob).collect())
            .unwrap();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0].name, "dir/a.txt");
        assert_eq!(blobs[0].size, 12);
        assert_eq!(blobs[0].metadata["Owner"], "me");
        assert_eq!(blobs[0].tags["env"], "prod");
        assert_eq!(blobs[0].explicit_tier(), Some("Cool"));
        assert!(blobs[1].is_archived());
    }

    #[test]
    fn tags_are_url_encoded() {
        let mut tags = BTreeMap::new();
        tags.insert("project".to_owned(), "a b&c".to_owned());
        assert_eq!(tags_header(&tags).unwrap(), "project=a%20b%26c");
        assert!(tags_header(&BTreeMap::new()).is_none());
    }
}
