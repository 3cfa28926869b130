//! A TLS front door for Azurite that answers on production storage host names
//! (`<account>.blob|queue|table.core.windows.net`), with fault injection.
//!
//! Why: Azurite reads the account from a production-style `Host` header, but its cross-account
//! Copy Blob checks that the copy source's host equals the request's `Host` (both accounts must
//! be "the same Azurite instance"), which two production host names never are. The gateway
//! therefore rewrites blob requests to Azurite's path style (`https://127.0.0.1:<port>/<account>
//! /<container>/<blob>`), including the `x-ms-copy-source` URL; table requests likewise (the
//! operation URLs inside an entity group transaction too: Azurite's `$batch` parser knows only
//! path style); queue requests, and requests signed with Shared Key (whose signature covers the
//! production path), pass with their production `Host` unchanged. atg sends exactly what it sends to Azure;
//! only `--connect-to` and `--ca-cert` point it here.
//!
//! Faults (429 with `Retry-After`, 503, connection reset) are injected on a seeded fraction of
//! requests before they are forwarded, so a faulted request never reaches Azurite. Lost answers
//! ([`LostAnswers`]) are the other kind: the write is forwarded and takes effect, then its answer
//! is dropped (connection reset) or replaced by a 5xx, which is what a client's retry of a write
//! must survive.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::azurite::Azurite;
use crate::options::{FaultKind, FaultOptions};
use crate::Emulator;

mod lost_answers;
mod upstream;

use lost_answers::operation;
pub use lost_answers::{LostAnswer, LostAnswers};
use upstream::{forward, forward_keeping_case, read_source_range, Upstream};

/// One request the gateway saw.
#[derive(Clone, Debug)]
pub struct GatewayRequest {
    pub method: String,
    pub host: String,
    pub path: String,
    /// The `comp` query parameter, if any (`list`, `block`, `blocklist`, ...).
    pub comp: Option<String>,
    /// Whether it carried `x-ms-copy-source` (a server-side copy).
    pub copy: bool,
    /// The operation, for writes (see [`LostAnswers::operations`]).
    pub operation: Option<String>,
    /// `None` when a fault was injected (the request never reached Azurite).
    pub status: Option<u16>,
    pub fault: Option<FaultKind>,
    /// Azurite carried the request out, and the gateway then dropped its answer (reset or 5xx).
    pub lost: bool,
}

struct State {
    faults: Option<FaultOptions>,
    /// Answer Put Page From URL and Append Block From URL (Azurite: 501) the way Azure does.
    emulate_range_copies: bool,
    /// Writes carried out that then lose their answer.
    lost_answers: Option<LostAnswers>,
    /// Writes seen per operation, for [`LostAnswers::every`].
    writes: std::collections::HashMap<String, u64>,
    /// Writes with this `comp` are answered with this status, never forwarded.
    failing: Option<(String, u16)>,
    /// Async copies never finish: `x-ms-copy-status: success` is answered as `pending`.
    pending_copies: bool,
    /// Accounts whose every request is refused with 403, as Azure refuses a caller without a
    /// data role.
    forbidden_accounts: std::collections::BTreeSet<String>,
    /// (account, container) → how many generated blobs its List Blobs answers.
    synthetic_listings: std::collections::BTreeMap<(String, String), u64>,
    rng: StdRng,
    log: Vec<GatewayRequest>,
}

/// The running gateway; stopped when dropped.
pub struct StorageGateway {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for StorageGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StorageGateway {
    /// Starts the gateway in front of `azurite`, serving the emulator's certificate.
    ///
    /// # Errors
    /// Fails when the certificate cannot be loaded or the port cannot be bound.
    pub async fn start(
        emulator: &Emulator,
        azurite: &Azurite,
        faults: Option<FaultOptions>,
    ) -> anyhow::Result<Self> {
        let chain: Vec<CertificateDer<'static>> = [emulator.leaf_cert_pem(), emulator.ca_pem()]
            .iter()
            .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()))
            .collect::<Result<_, _>>()
            .context("leaf certificate pem")?;
        let key = PrivateKeyDer::from_pem_slice(emulator.leaf_key_pem().as_bytes())
            .context("leaf key pem")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let ca = reqwest::Certificate::from_pem(emulator.ca_pem().as_bytes())?;
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .http1_only()
            .pool_max_idle_per_host(256)
            .build()?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(
            emulator.ca_pem().as_bytes(),
        )?)?;
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let upstream = Arc::new(Upstream {
            client,
            tls: tokio_rustls::TlsConnector::from(Arc::new(client_config)),
            blob: azurite.blob,
            queue: azurite.queue,
            table: azurite.table,
        });
        let seed = faults.as_ref().map_or(0, |f| f.seed);
        let state = Arc::new(Mutex::new(State {
            faults,
            emulate_range_copies: false,
            lost_answers: None,
            writes: std::collections::HashMap::new(),
            failing: None,
            pending_copies: false,
            forbidden_accounts: std::collections::BTreeSet::new(),
            synthetic_listings: std::collections::BTreeMap::new(),
            rng: StdRng::seed_from_u64(seed),
            log: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(
                    stream,
                    acceptor.clone(),
                    upstream.clone(),
                    task_state.clone(),
                ));
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Changes fault injection for the next requests.
    pub fn set_faults(&self, faults: Option<FaultOptions>) {
        let mut state = lock(&self.state);
        if let Some(f) = &faults {
            state.rng = StdRng::seed_from_u64(f.seed);
        }
        state.faults = faults;
    }

    /// Makes the gateway carry out Put Page From URL and Append Block From URL, which Azurite
    /// answers 501: it reads `x-ms-source-range` of the copy source (with the request's SAS, as
    /// the service would) and sends Azurite a Put Page / Append Block with those bytes and the
    /// request's other headers (range, append position, authorisation). Off by default, so the
    /// fallback atg takes on a service without these calls is tested too.
    pub fn set_range_copy_emulation(&self, on: bool) {
        lock(&self.state).emulate_range_copies = on;
    }

    /// The writes [`LostAnswers`] selects are forwarded and carried out, then their answer is
    /// lost: what a client's retry of a write must survive. `None` stops it.
    pub fn set_lost_answers(&self, lost: Option<LostAnswers>) {
        let mut state = lock(&self.state);
        state.lost_answers = lost;
        state.writes.clear();
    }

    /// Every write (not GET/HEAD) with query `comp` is answered `status` without reaching
    /// Azurite, until `None`: a service that keeps failing one step of a copy.
    pub fn set_failing(&self, failing: Option<(&str, u16)>) {
        lock(&self.state).failing = failing.map(|(comp, status)| (comp.to_owned(), status));
    }

    /// While on, async copies (Copy Blob, and Get Blob Properties after it) answer
    /// `x-ms-copy-status: pending` where Azurite says `success`: a copy the service takes long
    /// over. Synchronous copies (`x-ms-requires-sync`) are left as they are.
    pub fn set_pending_copies(&self, on: bool) {
        lock(&self.state).pending_copies = on;
    }

    /// Every request to these accounts is answered 403 `AuthorizationPermissionMismatch`
    /// without reaching Azurite (replaces the previous set).
    pub fn set_forbidden_accounts(&self, accounts: &[&str]) {
        lock(&self.state).forbidden_accounts = accounts.iter().map(|a| (*a).to_owned()).collect();
    }

    /// List Blobs of `account/container` is answered with `blobs` generated blobs (see
    /// [`crate::synthetic_listing`]) instead of Azurite's listing; `None` gives it back to
    /// Azurite. Every other request to the container still reaches Azurite.
    pub fn set_synthetic_listing(&self, account: &str, container: &str, blobs: Option<u64>) {
        let key = (account.to_owned(), container.to_owned());
        let mut state = lock(&self.state);
        match blobs {
            Some(blobs) => state.synthetic_listings.insert(key, blobs),
            None => state.synthetic_listings.remove(&key),
        };
    }

    #[must_use]
    pub fn requests(&self) -> Vec<GatewayRequest> {
        lock(&self.state).log.clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.state).log.clear();
    }

    /// `--connect-to` values that send atg's storage traffic here.
    #[must_use]
    pub fn connect_to_args(&self) -> Vec<String> {
        ["blob", "queue", "table"]
            .iter()
            .flat_map(|service| {
                [
                    "--connect-to".to_owned(),
                    format!("{service}.core.windows.net={}", self.addr),
                ]
            })
            .collect()
    }
}

#[derive(Debug)]
struct Reset;
impl std::fmt::Display for Reset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}
impl std::error::Error for Reset {}

async fn serve(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: Arc<Upstream>,
    state: Arc<Mutex<State>>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(linger) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let linger = Arc::new(linger);
    let Ok(tls) = acceptor.accept(stream).await else {
        return;
    };
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let upstream = upstream.clone();
        let state = state.clone();
        let linger = linger.clone();
        async move {
            if let Some(response) = handle(&upstream, &state, request).await {
                Ok(response)
            } else {
                let _ = socket2::SockRef::from(&*linger).set_linger(Some(Duration::ZERO));
                Err(Reset)
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Metadata names are case-preserving in Azure: keep the case a client sent them in.
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// An error answer as the service gives it: `body` and the code in `x-ms-error-code`.
fn service_error(
    status: StatusCode,
    code: &'static str,
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = plain(status, body);
    response.headers_mut().insert(
        "x-ms-error-code",
        hyper::header::HeaderValue::from_static(code),
    );
    response
}

/// `<account>.<service>.core.windows.net` → (account, service).
fn split_host(host: &str) -> Option<(&str, &str)> {
    let host = host.split(':').next().unwrap_or(host);
    let rest = host.strip_suffix(".core.windows.net")?;
    let (account, service) = rest.split_once('.')?;
    Some((account, service))
}

/// Rewrites a production blob URL to Azurite's path style.
fn path_style(url: &str, blob: SocketAddr) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let (account, service) = split_host(parsed.host_str()?)?;
    if service != "blob" {
        return None;
    }
    let mut out = format!("https://{blob}/{account}{}", parsed.path());
    if let Some(query) = parsed.query() {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

async fn handle(
    upstream: &Upstream,
    state: &Mutex<State>,
    request: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let comp = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "comp")
        .map(|(_, v)| v.into_owned());
    let copy = parts.headers.contains_key("x-ms-copy-source");
    let service = split_host(&host).map_or("", |(_, service)| service);
    let mut entry = GatewayRequest {
        method: parts.method.to_string(),
        host: host.clone(),
        path: parts.uri.path().to_owned(),
        operation: operation(service, &parts.method, &parts.uri, comp.as_deref(), copy),
        comp,
        copy,
        status: None,
        fault: None,
        lost: false,
    };
    let fault = {
        let mut guard = lock(state);
        let state = &mut *guard;
        match &state.faults {
            Some(faults) if faults.rate > 0.0 && state.rng.random_bool(faults.rate.min(1.0)) => {
                let kinds = if faults.kinds.is_empty() {
                    FaultKind::ALL.to_vec()
                } else {
                    faults.kinds.clone()
                };
                Some(kinds[state.rng.random_range(0..kinds.len())])
            }
            _ => None,
        }
    };
    let failing = lock(state).failing.clone();
    if let Some((comp, status)) = failing {
        let write = parts.method != hyper::Method::GET && parts.method != hyper::Method::HEAD;
        if write && entry.comp.as_deref() == Some(comp.as_str()) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            entry.status = Some(status.as_u16());
            lock(state).log.push(entry);
            return Some(plain(status, "injected failure"));
        }
    }
    let forbidden = split_host(&host)
        .is_some_and(|(account, _)| lock(state).forbidden_accounts.contains(account));
    if forbidden {
        entry.status = Some(403);
        lock(state).log.push(entry);
        return Some(service_error(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>",
        ));
    }
    let lost = {
        let mut guard = lock(state);
        let state = &mut *guard;
        match &state.lost_answers {
            Some(lost) if lost.selects(entry.operation.as_deref()) => {
                let answers = if lost.answers.is_empty() {
                    vec![LostAnswer::Reset]
                } else {
                    lost.answers.clone()
                };
                let chosen = match lost.every {
                    Some(n) => {
                        let operation = entry.operation.clone().unwrap_or_default();
                        let seen = state.writes.entry(operation).or_default();
                        *seen += 1;
                        *seen % n == 1
                    }
                    None => state.rng.random_bool(lost.rate.clamp(0.0, 1.0)),
                };
                chosen.then(|| answers[state.rng.random_range(0..answers.len())])
            }
            _ => None,
        }
    };
    if let Some(kind) = fault.filter(|_| lost.is_none()) {
        entry.fault = Some(kind);
        lock(state).log.push(entry);
        return match kind {
            FaultKind::TooManyRequests => {
                let mut response = plain(StatusCode::TOO_MANY_REQUESTS, "");
                response
                    .headers_mut()
                    .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
                Some(response)
            }
            FaultKind::ServiceUnavailable => Some(plain(StatusCode::SERVICE_UNAVAILABLE, "")),
            FaultKind::ConnectionReset => None,
        };
    }
    let Some((account, service)) = split_host(&host) else {
        return Some(plain(StatusCode::MISDIRECTED_REQUEST, "not a storage host"));
    };
    if let Some(response) = synthetic_listing(state, account, service, &parts) {
        entry.status = Some(response.status().as_u16());
        lock(state).log.push(entry);
        return Some(response);
    }
    // A Shared Key signature covers the path as the client sent it (`/<account>/<path>` from the
    // production host): such requests keep their production `Host` and path, so Azurite checks
    // the signature exactly as Azure would. They never carry a copy source.
    let shared_key = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("SharedKey "));
    let (url, keep_host) = match service {
        "blob" if shared_key => (format!("https://{}{path_and_query}", upstream.blob), true),
        "blob" => (
            format!("https://{}/{account}{path_and_query}", upstream.blob),
            false,
        ),
        "queue" => (format!("https://{}{path_and_query}", upstream.queue), true),
        "table" if shared_key => (format!("https://{}{path_and_query}", upstream.table), true),
        "table" => (
            format!("https://{}/{account}{path_and_query}", upstream.table),
            false,
        ),
        _ => {
            return Some(plain(
                StatusCode::MISDIRECTED_REQUEST,
                "unknown storage service",
            ))
        }
    };
    let range_copy = service == "blob"
        && lock(state).emulate_range_copies
        && matches!(entry.comp.as_deref(), Some("page" | "appendblock"))
        && entry.copy;
    // Azurite's entity group transactions understand only path-style operation URLs.
    let body = if range_copy {
        match read_source_range(upstream, &parts.headers).await {
            Ok(bytes) => bytes,
            Err(status) => {
                entry.status = Some(status.as_u16());
                lock(state).log.push(entry);
                return Some(plain(status, "copy source range could not be read"));
            }
        }
    } else if service == "table" && parts.uri.path().ends_with("$batch") {
        String::from_utf8_lossy(&body)
            .replace(
                &format!("https://{account}.table.core.windows.net/"),
                &format!("https://{}/{account}/", upstream.table),
            )
            .into_bytes()
    } else {
        body.to_vec()
    };
    // Content-Length as the body has it now (rewritten, or read from a copy source); sent even
    // when 0, as clients send it and as Azurite's dispatcher requires it on some creates.
    let mut headers = hyper::HeaderMap::new();
    headers.insert(hyper::header::CONTENT_LENGTH, body.len().into());
    for (name, value) in &parts.headers {
        if name == hyper::header::HOST || name == hyper::header::CONTENT_LENGTH {
            continue;
        }
        if range_copy && (name == "x-ms-copy-source" || name.as_str().starts_with("x-ms-source-")) {
            continue;
        }
        if name == "x-ms-copy-source" {
            let rewritten = value
                .to_str()
                .ok()
                .and_then(|v| path_style(v, upstream.blob))
                .and_then(|v| hyper::header::HeaderValue::from_str(&v).ok());
            if let Some(rewritten) = rewritten {
                headers.append(name, rewritten);
                continue;
            }
        }
        headers.append(name, value.clone());
    }
    if keep_host {
        if let Ok(host) = hyper::header::HeaderValue::from_str(&host) {
            headers.insert(hyper::header::HOST, host);
        }
    }
    // Metadata names keep their case only through a connection that writes the headers as
    // they came (hyper, with the case its server side recorded); reqwest lowercases them.
    let metadata = parts
        .headers
        .keys()
        .any(|name| name.as_str().starts_with("x-ms-meta-"));
    let answer = if metadata {
        forward_keeping_case(upstream, &parts, &url, headers, body).await
    } else {
        forward(upstream, &parts.method, &url, headers, body).await
    };
    let Some((status, headers, bytes)) = answer else {
        entry.status = Some(502);
        lock(state).log.push(entry);
        return Some(plain(StatusCode::BAD_GATEWAY, "azurite did not answer"));
    };
    let mut headers = headers;
    if lock(state).pending_copies
        && !parts.headers.contains_key("x-ms-requires-sync")
        && headers
            .get("x-ms-copy-status")
            .is_some_and(|value| value == "success")
    {
        headers.insert(
            "x-ms-copy-status",
            hyper::header::HeaderValue::from_static("pending"),
        );
    }
    entry.status = Some(status.as_u16());
    if let Some(answer) = lost {
        // Carried out, but the client never hears of it.
        entry.lost = true;
        lock(state).log.push(entry);
        return match answer {
            LostAnswer::Reset => None,
            LostAnswer::Status(status) => Some(plain(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "",
            )),
        };
    }
    lock(state).log.push(entry);
    let mut response = Response::new(Full::new(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name == hyper::header::TRANSFER_ENCODING || name == hyper::header::CONNECTION {
            continue;
        }
        response.headers_mut().append(name, value.clone());
    }
    Some(response)
}

/// The answer of a List Blobs the gateway generates (see [`StorageGateway::set_synthetic_listing`]).
fn synthetic_listing(
    state: &Mutex<State>,
    account: &str,
    service: &str,
    parts: &hyper::http::request::Parts,
) -> Option<Response<Full<Bytes>>> {
    let query = parts.uri.query().unwrap_or_default();
    let list = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, v)| (k == "restype" && v == "container") || (k == "comp" && v == "list"))
        .count()
        == 2;
    let container = parts.uri.path().trim_start_matches('/');
    if service != "blob" || parts.method != hyper::Method::GET || !list || container.contains('/') {
        return None;
    }
    let blobs = *lock(state)
        .synthetic_listings
        .get(&(account.to_owned(), container.to_owned()))?;
    let query = crate::synthetic_listing::ListQuery::parse(query);
    let Some(body) = crate::synthetic_listing::page(account, container, blobs, &query) else {
        return Some(service_error(
            StatusCode::BAD_REQUEST,
            "OutOfRangeInput",
            "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>OutOfRangeInput</Code><Message>One of the request inputs is out of range.</Message></Error>",
        ));
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    if let Some(version) = parts.headers.get("x-ms-version") {
        headers.insert("x-ms-version", version.clone());
    }
    Some(response)
}

#[cfg(test)]
mod tests;
