//! Server-side blob copies: Copy Blob From URL, Put Block From URL + Put Block List, Put Page
//! From URL over valid ranges, Append Block From URL, async Copy Blob and its status, and the
//! headers a copy carries (properties, metadata, tags, conditions).

use std::collections::BTreeMap;

use azure_core::http::Method;

use super::{invalid_answer, non_empty, BlobItem, Page};
use crate::azure::error::{sanitize_server_text, AzureError, AzureErrorKind};
use crate::azure::storage::xml;
use crate::azure::storage::{
    blob_segments, borrowed, metadata_headers, StorageClient, StorageResponse,
};
use crate::azure::Sensitive;

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
                sanitize_server_text(
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
