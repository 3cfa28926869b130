//! Queue service operations atg uses: listing queues with metadata, access policies, the
//! approximate message count, creating queues and setting their metadata and policies, and, only
//! when a pair opts in, peeking at most 32 messages (the most Peek Messages returns; a draining
//! read would change the source, so atg never dequeues) and putting copies of them.

use std::collections::BTreeMap;

use azure_core::http::Method;
use serde::{Deserialize, Serialize};

use super::blob::Page;
use super::xml::{self, SignedIdentifier};
use super::{borrowed, metadata_headers, StorageClient};
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::Sensitive;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    pub metadata: BTreeMap<String, String>,
    pub access_policies: Vec<SignedIdentifier>,
    /// False when the service refused to show the stored access policies (Shared Key only).
    #[serde(default)]
    pub policies_unreadable: bool,
}

#[derive(Clone, Debug)]
pub struct QueueItem {
    pub name: String,
    pub metadata: BTreeMap<String, String>,
}

impl StorageClient {
    pub async fn list_queues(&self, marker: Option<&str>) -> Result<Page<QueueItem>, AzureError> {
        self.list_service(marker, ("Queues", "Queue"), |node| {
            Some(QueueItem {
                name: xml::name_of(node)?,
                metadata: xml::metadata(node),
            })
        })
        .await
    }

    /// Metadata, access policies and the approximate number of messages; `None` when absent.
    pub async fn queue_settings(
        &self,
        queue: &str,
    ) -> Result<Option<(QueueSettings, u64)>, AzureError> {
        let response = self
            .send(
                Method::Get,
                self.url(&[queue], &[("comp", "metadata")]),
                &[],
                None,
            )
            .await?;
        if response.status == 404 {
            return Ok(None);
        }
        let response = response.success()?;
        let count = response
            .header("x-ms-approximate-messages-count")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let metadata = self
            .listed_metadata(("Queues", "Queue"), queue)
            .await?
            .unwrap_or_else(|| response.metadata());
        let access_policies = self.queue_acl(queue).await?;
        Ok(Some((
            QueueSettings {
                metadata,
                policies_unreadable: access_policies.is_none(),
                access_policies: access_policies.unwrap_or_default(),
            },
            count,
        )))
    }

    /// The queue's stored access policies; `None` when the service refuses to show them
    /// (Get Queue ACL takes Shared Key).
    pub async fn queue_acl(
        &self,
        queue: &str,
    ) -> Result<Option<Vec<SignedIdentifier>>, AzureError> {
        let acl = self
            .send(
                Method::Get,
                self.url(&[queue], &[("comp", "acl")]),
                &[],
                None,
            )
            .await?;
        if matches!(acl.status, 401 | 403) {
            return Ok(None);
        }
        let acl = acl.success()?;
        xml::signed_identifiers(&acl.body).map(Some).map_err(|e| {
            AzureError::new(
                AzureErrorKind::Other,
                format!("could not read the queue access policies: {e}"),
            )
        })
    }

    /// Creates a queue with its metadata. `Ok(false)` when it already exists.
    pub async fn create_queue(
        &self,
        queue: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<bool, AzureError> {
        let headers = metadata_headers(metadata);
        let response = self
            .send(
                Method::Put,
                self.url(&[queue], &[]),
                &borrowed(&headers),
                None,
            )
            .await?;
        match response.status {
            201 => Ok(true),
            // 204: exists with the same metadata; 409: exists with other metadata.
            204 => Ok(false),
            409 if response.error().has_code("QueueAlreadyExists") => Ok(false),
            _ => response.success().map(|_| true),
        }
    }

    pub async fn set_queue_metadata(
        &self,
        queue: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), AzureError> {
        let headers = metadata_headers(metadata);
        self.send(
            Method::Put,
            self.url(&[queue], &[("comp", "metadata")]),
            &borrowed(&headers),
            None,
        )
        .await?
        .success()
        .map(|_| ())
    }

    pub async fn set_queue_acl(
        &self,
        queue: &str,
        policies: &[SignedIdentifier],
    ) -> Result<(), AzureError> {
        self.send(
            Method::Put,
            self.url(&[queue], &[("comp", "acl")]),
            &[("content-type", "application/xml".to_owned())],
            Some(xml::signed_identifiers_body(policies)),
        )
        .await?
        .success()
        .map(|_| ())
    }

    /// The texts of up to 32 messages at the front of the queue, without changing it (Peek
    /// Messages). A message can hold anything its producer put there, so texts are secrets.
    pub async fn peek_messages(&self, queue: &str) -> Result<Vec<Sensitive>, AzureError> {
        let response = self
            .send(
                Method::Get,
                self.url(
                    &[queue, "messages"],
                    &[("peekonly", "true"), ("numofmessages", "32")],
                ),
                &[],
                None,
            )
            .await?
            .success()?;
        let document = xml::parse(&response.body).map_err(|e| {
            AzureError::new(
                AzureErrorKind::Other,
                format!("could not read the peeked messages: {e}"),
            )
        })?;
        Ok(document
            .root_element()
            .children()
            .filter(|node| node.has_tag_name("QueueMessage"))
            .map(|message| {
                Sensitive::new(
                    xml::child(message, "MessageText")
                        .and_then(|text| text.text())
                        .unwrap_or_default(),
                )
            })
            .collect())
    }

    /// Puts a message with this text at the back of the queue (Put Message), sent once: a
    /// retry after a lost answer could put it twice, so the caller looks (peeks) before
    /// sending it again.
    pub async fn put_message(&self, queue: &str, text: &Sensitive) -> Result<(), AzureError> {
        let body = format!(
            "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            xml::escape(text.expose())
        );
        self.send_once(
            Method::Post,
            self.url(&[queue, "messages"], &[]),
            &[("content-type", "application/xml".to_owned())],
            Some(body.into_bytes()),
        )
        .await?
        .success()
        .map(|_| ())
    }
}
