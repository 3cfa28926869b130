//! The storage transport: every request goes through the run's HTTP client, except those that
//! set metadata with upper-case letters in a name, which are written on the wire by hand.
//!
//! Why: Azure stores a metadata name (`x-ms-meta-Author`) with the case it arrives in, and
//! shows it in listings and properties; the `http` crate, and so reqwest and hyper, keep header
//! names in lower case only, which turned `Author` into `author`. [`super::metadata_headers`]
//! therefore adds [`METADATA_NAMES`], the names as they are, to such a request; this transport
//! takes it off and sends the request over its own TLS connection (HTTP/1.1, `Connection:
//! close`) with the `x-ms-meta-*` names in their case. The pipeline's policies (host allow-list,
//! write guard, retries, authorisation) ran before, as for every request; the connection uses
//! the same root store as the HTTP client (the platform's, plus `--ca-cert`) and `--connect-to`.
//!
//! Must not: carry any other request, or follow redirects. Behind an HTTPS proxy (which only
//! the HTTP client uses) metadata names go through the HTTP client, lowercased, with a warning.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use azure_core::error::{Error, ErrorKind};
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Request, StatusCode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::azure::transport::AzureHttp;

/// Request header (never sent) carrying the metadata names of the request with their case,
/// separated by commas (metadata names are C# identifiers: letters, digits, `_`).
pub(super) const METADATA_NAMES: &str = "x-atg-metadata-names";

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// The HTTP client of every storage pipeline.
pub(super) struct StorageTransport {
    http: AzureHttp,
    tls: OnceLock<Result<tokio_rustls::TlsConnector, String>>,
}

impl std::fmt::Debug for StorageTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageTransport").finish_non_exhaustive()
    }
}

impl StorageTransport {
    pub(super) fn new(http: &AzureHttp) -> Arc<Self> {
        Arc::new(StorageTransport {
            http: http.clone(),
            tls: OnceLock::new(),
        })
    }

    fn connector(&self) -> Result<tokio_rustls::TlsConnector, Error> {
        self.tls
            .get_or_init(|| {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let extra: Vec<CertificateDer<'static>> = match &self.http.extra_root_pem {
                    Some(pem) => CertificateDer::pem_slice_iter(pem)
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("the CA certificate file is not PEM: {e}"))?,
                    None => Vec::new(),
                };
                let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
                    extra,
                    provider.clone(),
                )
                .map_err(|e| format!("cannot load the root certificates: {e}"))?;
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
                    .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
            })
            .clone()
            .map_err(|e| Error::with_message(ErrorKind::Other, e))
    }

    async fn send_by_hand(
        &self,
        request: &Request,
        names: &str,
    ) -> Result<AsyncRawResponse, Error> {
        let head = request_head(request, names)?;
        let url = request.url();
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addr = match self.http.connect_to(&host) {
            Some(addr) => addr,
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(io)?
                .next()
                .ok_or_else(|| {
                    Error::with_message(ErrorKind::Io, format!("`{host}` has no address"))
                })?,
        };
        let body = match request.body() {
            azure_core::http::Body::Bytes(bytes) => bytes.clone(),
            azure_core::http::Body::SeekableStream(_) => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "a streamed body cannot carry metadata names",
                ))
            }
        };
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| Error::with_message(ErrorKind::Other, e.to_string()))?;
            let mut tls = self.connector()?.connect(name, tcp).await.map_err(io)?;
            tls.write_all(head.as_bytes()).await.map_err(io)?;
            tls.write_all(&body).await.map_err(io)?;
            tls.flush().await.map_err(io)?;
            let mut answer = Vec::new();
            // `Connection: close`: the answer ends where the connection does (a TLS peer may
            // close without close_notify, which is an error only once nothing was read).
            match tls.read_to_end(&mut answer).await {
                Ok(_) => {}
                Err(e) if !answer.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                Err(e) => return Err(io(e)),
            }
            parse_response(&answer, request.method() == Method::Head)
        };
        tokio::time::timeout(Duration::from_secs(120), exchange)
            .await
            .map_err(|_| Error::with_message(ErrorKind::Io, "no answer within 120 s"))?
    }
}

/// Whether an HTTPS proxy is configured (the HTTP client goes through it, the writer by hand
/// does not): then metadata names go lowercased, as before, and the run says so once.
fn behind_proxy() -> bool {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if proxy && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "an HTTPS proxy is configured: storage metadata names are written in lower case (keeping their case needs a direct connection)"
        );
    }
    proxy
}

fn io(error: std::io::Error) -> Error {
    Error::new(ErrorKind::Io, error)
}

#[async_trait]
impl HttpClient for StorageTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let names = request
            .headers()
            .get_optional_str(&HeaderName::from_static(METADATA_NAMES))
            .map(str::to_owned);
        match names {
            Some(names) if !behind_proxy() => self.send_by_hand(request, &names).await,
            _ => self.http.raw_client().execute_request(request).await,
        }
    }
}

/// The request line and headers, `x-ms-meta-*` names in the case `names` gives them.
fn request_head(request: &Request, names: &str) -> Result<String, Error> {
    let url = request.url();
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let method = request.method().as_str().to_owned();
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in request.headers().iter() {
        let name = name.as_str();
        if name == METADATA_NAMES || name == "host" || name == "connection" {
            continue;
        }
        let value = value.as_str();
        if value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']) {
            return Err(Error::with_message(
                ErrorKind::Other,
                format!("header `{name}` holds a line break"),
            ));
        }
        let name = match name.strip_prefix("x-ms-meta-") {
            Some(key) => names
                .split(',')
                .find(|original| original.eq_ignore_ascii_case(key))
                .map_or_else(
                    || name.to_owned(),
                    |original| format!("x-ms-meta-{original}"),
                ),
            None => name.to_owned(),
        };
        head.push_str(&name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("connection: close\r\n\r\n");
    Ok(head)
}

/// An HTTP/1.1 answer read to its end: status, headers, and the body by `Content-Length`,
/// chunked, or to the end.
fn parse_response(answer: &[u8], head_request: bool) -> Result<AsyncRawResponse, Error> {
    let bad = |what: &str| Error::with_message(ErrorKind::Io, format!("malformed answer: {what}"));
    let mut slots = [httparse::EMPTY_HEADER; 100];
    let mut response = httparse::Response::new(&mut slots);
    let head_len = match response.parse(answer) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD => len,
        Ok(_) => return Err(bad("incomplete head")),
        Err(e) => return Err(bad(&e.to_string())),
    };
    let status = response.code.ok_or_else(|| bad("no status"))?;
    let mut headers = Headers::new();
    let (mut length, mut chunked) = (None, false);
    for header in response.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(header.value).into_owned();
        if name == "content-length" {
            length = value.trim().parse::<usize>().ok();
        }
        if name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
        headers.insert(name, value);
    }
    let rest = &answer[head_len..];
    let body = if head_request || matches!(status, 204 | 304) || (100..200).contains(&status) {
        Vec::new()
    } else if chunked {
        dechunk(rest).ok_or_else(|| bad("chunked body"))?
    } else if let Some(length) = length {
        rest.get(..length)
            .ok_or_else(|| bad("body shorter than its length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(AsyncRawResponse::from_bytes(
        StatusCode::from(status),
        headers,
        body,
    ))
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_keep_their_case_on_the_wire_and_the_marker_stays_home() {
        let mut request = Request::new(
            "https://acct.blob.core.windows.net/c?restype=container"
                .parse()
                .unwrap(),
            Method::Put,
        );
        request.insert_header("x-ms-meta-author", "ada");
        request.insert_header("x-ms-meta-camelcase", "x");
        request.insert_header("x-ms-meta-lower", "y");
        request.insert_header(METADATA_NAMES, "Author,CamelCase,lower");
        let head = request_head(&request, "Author,CamelCase,lower").unwrap();
        assert!(
            head.starts_with(
                "PUT /c?restype=container HTTP/1.1\r\nhost: acct.blob.core.windows.net\r\n"
            ),
            "{head}"
        );
        assert!(head.contains("\r\nx-ms-meta-Author: ada\r\n"), "{head}");
        assert!(head.contains("\r\nx-ms-meta-CamelCase: x\r\n"), "{head}");
        assert!(head.contains("\r\nx-ms-meta-lower: y\r\n"), "{head}");
        assert!(!head.contains(METADATA_NAMES), "{head}");
        assert!(head.ends_with("connection: close\r\n\r\n"));
        request.insert_header("x-ms-meta-evil", "a\r\nx-injected: 1");
        assert!(request_head(&request, "Author").is_err());
    }

    #[test]
    fn answers_are_read_by_length_chunks_or_end() {
        let by_length = b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\nETag: \"x\"\r\n\r\nabcdef";
        let response = parse_response(by_length, false).unwrap();
        assert_eq!(u16::from(response.status()), 201);
        assert_eq!(
            response
                .headers()
                .get_optional_str(&HeaderName::from_static("etag")),
            Some("\"x\"")
        );
        let chunked = b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(dechunk(&chunked[47..]).as_deref(), Some(&b"abcde"[..]));
        assert!(parse_response(chunked, false).is_ok());
        assert!(parse_response(b"HTTP/1.1 20", false).is_err());
    }
}
