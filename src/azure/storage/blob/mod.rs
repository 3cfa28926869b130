//! Blob service operations atg uses: listing (one page at a time), container settings, the
//! user delegation key, and the server-side copies (Copy Blob From URL, Put Block From URL +
//! Put Block List, async Copy Blob and its polling).

mod copy;

pub use copy::*;

use std::collections::BTreeMap;

use azure_core::http::{Context, Method};
use serde::{Deserialize, Serialize};

use super::sas::UserDelegationKey;
use super::xml::{self, SignedIdentifier};
use super::{borrowed, metadata_headers};
use super::{iso_seconds, parse_http_date, StorageClient};
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::policies::ReadsOnly;
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
        // A POST that mints a signing key and changes nothing: a read, so the source may ask.
        let response = self
            .send_in(
                &Context::new().with_value(ReadsOnly),
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
