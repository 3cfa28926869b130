//! Forwarding to Azurite: through reqwest, or on a connection of its own that keeps header
//! names' case.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::path_style;

pub(super) struct Upstream {
    pub(super) client: reqwest::Client,
    /// For [`forward_keeping_case`]: TLS to Azurite, trusting the emulator's CA.
    pub(super) tls: tokio_rustls::TlsConnector,
    pub(super) blob: SocketAddr,
    pub(super) queue: SocketAddr,
    pub(super) table: SocketAddr,
}

pub(super) type Answer = (StatusCode, hyper::HeaderMap, Bytes);

pub(super) async fn forward(
    upstream: &Upstream,
    method: &hyper::Method,
    url: &str,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
) -> Option<Answer> {
    let answer = upstream
        .client
        .request(method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .ok()?;
    let status = answer.status();
    let headers = answer.headers().clone();
    Some((status, headers, answer.bytes().await.unwrap_or_default()))
}

/// [`forward`] on a connection of its own that writes header names in the case the client
/// sent them (the request's extensions carry what hyper's server side recorded).
pub(super) async fn forward_keeping_case(
    upstream: &Upstream,
    parts: &hyper::http::request::Parts,
    url: &str,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
) -> Option<Answer> {
    let url = url::Url::parse(url).ok()?;
    let authority = format!("{}:{}", url.host_str()?, url.port()?);
    let mut target = url.path().to_owned();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(target)
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    *request.headers_mut() = headers;
    if !request.headers().contains_key(hyper::header::HOST) {
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_str(&authority).ok()?,
        );
    }
    *request.extensions_mut() = parts.extensions.clone();
    let tcp = TcpStream::connect(&authority).await.ok()?;
    let name = rustls::pki_types::ServerName::try_from(url.host_str()?.to_owned()).ok()?;
    let tls = upstream.tls.connect(name, tcp).await.ok()?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(connection);
    let answer = sender.send_request(request).await.ok()?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.into_body().collect().await.ok()?.to_bytes();
    Some((status, headers, bytes))
}

/// The bytes `x-ms-source-range` names of `x-ms-copy-source`, read from Azurite with the SAS
/// the copy source carries (as the service reads a copy source).
pub(super) async fn read_source_range(
    upstream: &Upstream,
    headers: &hyper::HeaderMap,
) -> Result<Vec<u8>, StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let source = header("x-ms-copy-source")
        .and_then(|url| path_style(url, upstream.blob))
        .ok_or(StatusCode::BAD_REQUEST)?;
    let range = header("x-ms-source-range").ok_or(StatusCode::BAD_REQUEST)?;
    let mut get = upstream.client.get(source).header("range", range).header(
        "x-ms-version",
        header("x-ms-version").unwrap_or("2021-08-06"),
    );
    // `x-ms-source-if-match`: the source must still be that version (412 otherwise).
    if let Some(etag) = header("x-ms-source-if-match") {
        get = get.header("if-match", etag);
    }
    let answer = get.send().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    if !answer.status().is_success() {
        // The service answers a copy source it cannot read with CannotVerifyCopySource.
        return Err(answer.status());
    }
    Ok(answer
        .bytes()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .to_vec())
}
