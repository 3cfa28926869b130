//! Shared Key authorisation (`Authorization: SharedKey <account>:<signature>`), signed locally
//! with the account key, for the few operations the storage services accept with nothing else:
//! Get/Set Container, Queue and Table ACL (stored access policies). Everything else atg does
//! with Entra ID tokens or SAS.
//!
//! The layouts are the documented ones ("Authorize with Shared Key", version 2015-02-21 and
//! later): Blob and Queue sign the verb, the standard headers, every `x-ms-*` header and the
//! canonicalized resource with all query parameters; Table signs the verb, Content-MD5,
//! Content-Type, the date and the resource with `comp` only.
//!
//! The key is a [`Sensitive`]; the policy refuses to sign a request for any host but the
//! account's own, over https, so a key-derived signature never leaves for another host.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::credentials::Secret;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};

use super::{http_date, StorageService};
use crate::azure::error::{AzureError, AzureErrorKind};
use crate::azure::policies::refuse;
use crate::azure::Sensitive;

/// Signs each request (each try) with the account key.
pub struct SharedKeyPolicy {
    account: String,
    /// The one host this key signs for (the account's endpoint of this service).
    host: String,
    key: Sensitive,
    service: StorageService,
}

impl std::fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeyPolicy")
            .field("account", &self.account)
            .field("host", &self.host)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl SharedKeyPolicy {
    /// `endpoint`: the account's endpoint of `service`; requests for any other host are refused.
    pub fn new(account: &str, endpoint: &Url, key: Sensitive, service: StorageService) -> Self {
        SharedKeyPolicy {
            account: account.to_ascii_lowercase(),
            host: endpoint.host_str().unwrap_or_default().to_ascii_lowercase(),
            key,
            service,
        }
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let url = request.url();
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let own_host = !self.host.is_empty() && host == self.host;
        if url.scheme() != "https" || !own_host || url.port().is_some_and(|p| p != 443) {
            return Err(refuse(format!(
                "refused to sign a request for `{host}` with the key of account `{}`",
                self.account
            )));
        }
        // A fresh date on every try: the service refuses a signature older than 15 minutes.
        request.insert_header("x-ms-date", http_date(time::OffsetDateTime::now_utc()));
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    value.as_str().to_owned(),
                )
            })
            .collect();
        let to_sign = string_to_sign(
            self.service,
            &self.account,
            request.method().as_ref(),
            request.url(),
            &headers,
        );
        let signature = sign(&to_sign, &self.key).map_err(|e| refuse(e.message))?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn sign(string_to_sign: &str, base64_key: &Sensitive) -> Result<String, AzureError> {
    azure_core::hmac::hmac_sha256(string_to_sign, &Secret::new(base64_key.expose().to_owned()))
        .map_err(|_| AzureError::new(AzureErrorKind::Other, "the account key is not valid base64"))
}

/// The string a Shared Key signature covers. `headers` are lowercase names with their values.
pub fn string_to_sign(
    service: StorageService,
    account: &str,
    method: &str,
    url: &Url,
    headers: &[(String, String)],
) -> String {
    let header = |name: &str| -> &str {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    };
    // The path as sent (percent-encoded), after `/<account>`.
    let resource = format!("/{account}{}", url.path());
    if service == StorageService::Table {
        let mut resource = resource;
        if let Some((_, comp)) = url.query_pairs().find(|(name, _)| name == "comp") {
            resource.push_str("?comp=");
            resource.push_str(&comp);
        }
        return [
            method,
            header("content-md5"),
            header("content-type"),
            header("x-ms-date"),
            &resource,
        ]
        .join("\n");
    }
    let content_length = match header("content-length") {
        "0" => "",
        other => other,
    };
    let mut canonical_headers: BTreeMap<&str, String> = BTreeMap::new();
    for (name, value) in headers {
        if name.starts_with("x-ms-") {
            // Values are trimmed and inner runs of whitespace folded to one space.
            let folded = value.split_whitespace().collect::<Vec<_>>().join(" ");
            canonical_headers.insert(name.as_str(), folded);
        }
    }
    let mut parameters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        parameters
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    let mut canonical = String::new();
    for line in [
        method,
        header("content-encoding"),
        header("content-language"),
        content_length,
        header("content-md5"),
        header("content-type"),
        "", // Date: x-ms-date is used instead
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    ] {
        canonical.push_str(line);
        canonical.push('\n');
    }
    for (name, value) in &canonical_headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push_str(&resource);
    for (name, mut values) in parameters {
        values.sort();
        canonical.push('\n');
        canonical.push_str(&name);
        canonical.push(':');
        canonical.push_str(&values.join(","));
    }
    canonical
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn blob_layout_matches_the_documentation() {
        // The documented example shape: verb, eleven standard header lines, x-ms-* sorted,
        // then the resource and each query parameter on its own line, names sorted.
        let url = Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=acl",
        )
        .unwrap();
        let text = string_to_sign(
            StorageService::Blob,
            "myaccount",
            "PUT",
            &url,
            &headers(&[
                ("x-ms-version", "2025-01-05"),
                ("x-ms-date", "Tue, 15 Nov 1994 08:12:31 GMT"),
                ("content-type", "application/xml"),
                ("content-length", "120"),
                ("x-ms-blob-public-access", "  blob  "),
                ("user-agent", "atg"),
            ]),
        );
        assert_eq!(
            text,
            "PUT\n\n\n120\n\napplication/xml\n\n\n\n\n\n\n\
             x-ms-blob-public-access:blob\n\
             x-ms-date:Tue, 15 Nov 1994 08:12:31 GMT\n\
             x-ms-version:2025-01-05\n\
             /myaccount/mycontainer\ncomp:acl\nrestype:container"
        );
    }

    #[test]
    fn zero_length_is_signed_as_empty() {
        let url = Url::parse("https://a1b.queue.core.windows.net/jobs?comp=acl").unwrap();
        let text = string_to_sign(
            StorageService::Queue,
            "a1b",
            "GET",
            &url,
            &headers(&[("content-length", "0")]),
        );
        assert!(text.starts_with("GET\n\n\n\n"), "{text:?}");
        assert!(text.ends_with("/a1b/jobs\ncomp:acl"), "{text:?}");
    }

    /// The end of a test pipeline: answers 200 with the Authorization header it received.
    #[derive(Debug)]
    struct Echo;

    #[async_trait]
    impl Policy for Echo {
        async fn send(
            &self,
            _ctx: &Context,
            request: &mut Request,
            _next: &[Arc<dyn Policy>],
        ) -> PolicyResult {
            let authorization = request
                .headers()
                .get_optional_str(&azure_core::http::headers::HeaderName::from_static(
                    "authorization",
                ))
                .unwrap_or_default()
                .to_owned();
            Ok(azure_core::http::AsyncRawResponse::from_bytes(
                azure_core::http::StatusCode::Ok,
                azure_core::http::headers::Headers::new(),
                authorization.into_bytes(),
            ))
        }
    }

    #[tokio::test]
    async fn signs_only_for_the_accounts_own_endpoint() {
        let endpoint = Url::parse("https://acct.blob.core.windows.net/").unwrap();
        let policy = SharedKeyPolicy::new(
            "acct",
            &endpoint,
            Sensitive::new("a2V5a2V5a2V5a2V5"),
            StorageService::Blob,
        );
        let next: Vec<Arc<dyn Policy>> = vec![Arc::new(Echo)];
        let send = |url: &str| {
            let mut request = Request::new(Url::parse(url).unwrap(), azure_core::http::Method::Get);
            let policy = &policy;
            let next = &next;
            async move { policy.send(&Context::new(), &mut request, next).await }
        };
        let signed = send("https://acct.blob.core.windows.net/c?comp=acl")
            .await
            .unwrap();
        let body = signed.into_body().collect().await.unwrap();
        assert!(body.starts_with(b"SharedKey acct:"), "{body:?}");
        for elsewhere in [
            "https://acct.blob.evil.example/c?comp=acl",
            "https://acct.queue.core.windows.net/c?comp=acl",
            "https://other.blob.core.windows.net/c?comp=acl",
            "https://acct.blob.core.windows.net:8443/c?comp=acl",
            "http://acct.blob.core.windows.net/c?comp=acl",
        ] {
            let error = send(elsewhere).await.unwrap_err().to_string();
            assert!(error.contains("refused to sign"), "{elsewhere}: {error}");
            assert!(!error.contains("a2V5"), "{error}");
        }
    }

    #[test]
    fn table_layout_keeps_only_comp() {
        let url =
            Url::parse("https://acct.table.core.windows.net/people?comp=acl&timeout=30").unwrap();
        let text = string_to_sign(
            StorageService::Table,
            "acct",
            "GET",
            &url,
            &headers(&[
                ("x-ms-date", "Tue, 15 Nov 1994 08:12:31 GMT"),
                ("content-type", "application/xml"),
            ]),
        );
        assert_eq!(
            text,
            "GET\n\napplication/xml\nTue, 15 Nov 1994 08:12:31 GMT\n/acct/people?comp=acl"
        );
    }
}
