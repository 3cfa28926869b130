//! The HTTPS server: accepts TLS connections on 127.0.0.1, buffers each request, applies the
//! cross-cutting behaviour (latency, fault injection before a request and lost answers after a
//! Key Vault write, request log) and dispatches by `Host` header
//! to the token endpoint, Key Vault, ARM or the control API. Owns the shared state; the services own
//! their semantics.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::arm::{self, ArmState};
use crate::http::{ApiRequest, ApiResponse};
use crate::keyvault::{self, VaultStore};
use crate::options::{operation_matches, EmulatorOptions, FaultKind, LostAnswerKind};
use crate::pki::TestPki;
use crate::{control, token};

/// Which emulated service answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Token,
    KeyVault,
    Arm,
    Unknown,
}

/// One served request. Bodies are never kept: only whether the JSON body had a `value` member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub service: Service,
    pub method: String,
    pub host: String,
    /// Vault name for Key Vault requests.
    pub vault: Option<String>,
    pub path: String,
    pub query: String,
    /// `None` when the connection was reset without a response.
    pub status: Option<u16>,
    pub bearer: bool,
    pub fault: Option<FaultKind>,
    /// Set when the request took effect but its answer was lost.
    #[serde(default)]
    pub lost_answer: Option<LostAnswerKind>,
    pub body_has_value: bool,
}

/// Locks a mutex, recovering the data if a handler panicked while holding it: the emulator must
/// keep answering so the test that caused the panic reports it instead of hanging others.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct Shared {
    pub options: Mutex<EmulatorOptions>,
    fault_rng: Mutex<(u64, StdRng)>,
    lost_answer_rng: Mutex<(u64, StdRng)>,
    arm_lost_answer_rng: Mutex<(u64, StdRng)>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub vaults: VaultStore,
    throttle_windows: Mutex<HashMap<String, VecDeque<Instant>>>,
    pub arm: Mutex<ArmState>,
}

impl Shared {
    pub fn options(&self) -> EmulatorOptions {
        lock(&self.options).clone()
    }

    /// Decides, before any processing, whether this data-plane request is faulted.
    fn pick_fault(
        &self,
        options: &EmulatorOptions,
        request: &ApiRequest,
        collection: &str,
    ) -> Option<FaultKind> {
        let faults = options.faults.as_ref()?;
        if !operation_matches(
            &options.fault_operations,
            request.method.as_str(),
            collection,
        ) {
            return None;
        }
        let kinds: &[FaultKind] = if faults.kinds.is_empty() {
            &FaultKind::ALL
        } else {
            &faults.kinds
        };
        roll(&self.fault_rng, faults.seed, faults.rate, kinds)
    }

    /// Decides, after a Key Vault or ARM write succeeded, whether its answer is lost.
    fn pick_lost_answer(
        &self,
        options: &EmulatorOptions,
        request: &ApiRequest,
        service: Service,
        collection: &str,
    ) -> Option<LostAnswerKind> {
        let (lost, rng) = match service {
            Service::KeyVault => (options.lost_answers.as_ref()?, &self.lost_answer_rng),
            Service::Arm => (
                options.arm_lost_answers.as_ref()?,
                &self.arm_lost_answer_rng,
            ),
            Service::Token | Service::Unknown => return None,
        };
        if !lost.covers(request.method.as_str(), collection) {
            return None;
        }
        let kinds: &[LostAnswerKind] = if lost.kinds.is_empty() {
            &LostAnswerKind::ALL
        } else {
            &lost.kinds
        };
        roll(rng, lost.seed, lost.rate, kinds)
    }

    /// Sliding-window throttle per vault. Returns the seconds to wait when over the limit.
    /// Throttled requests do not count against the window, as in Key Vault.
    pub fn throttle(&self, options: &EmulatorOptions, vault_key: &str) -> Option<u64> {
        let throttle = options.throttle?;
        let window = Duration::from_millis(throttle.window_ms.max(1));
        let now = Instant::now();
        let mut windows = lock(&self.throttle_windows);
        let entries = windows.entry(vault_key.to_owned()).or_default();
        while entries
            .front()
            .is_some_and(|first| now.duration_since(*first) >= window)
        {
            entries.pop_front();
        }
        if entries.len() >= throttle.limit as usize {
            // The window frees up when the oldest counted request leaves it.
            let oldest = entries.front().copied().unwrap_or(now);
            let wait = window.saturating_sub(now.duration_since(oldest));
            let seconds = wait.as_millis().div_ceil(1000).max(1);
            return Some(u64::try_from(seconds).unwrap_or(u64::MAX));
        }
        entries.push_back(now);
        None
    }

    fn record(&self, entry: RecordedRequest) {
        lock(&self.log).push(entry);
    }
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] stops accepting at runtime exit.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ca_pem: String,
    leaf_cert_pem: String,
    leaf_key_pem: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Generates the test PKI and starts serving on 127.0.0.1 (`options.port`, or an ephemeral port).
    ///
    /// # Errors
    /// Fails when the PKI cannot be generated or the port cannot be bound.
    pub async fn start(options: EmulatorOptions) -> anyhow::Result<Emulator> {
        let pki = TestPki::generate().context("generate test pki")?;
        let listener = TcpListener::bind(("127.0.0.1", options.port.unwrap_or(0)))
            .await
            .context("bind emulator port on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let seed = options.faults.as_ref().map_or(0, |faults| faults.seed);
        let lost_seed = options.lost_answers.as_ref().map_or(0, |lost| lost.seed);
        let arm_lost_seed = options
            .arm_lost_answers
            .as_ref()
            .map_or(0, |lost| lost.seed);
        let shared = Arc::new(Shared {
            options: Mutex::new(options),
            fault_rng: Mutex::new((seed, StdRng::seed_from_u64(seed))),
            lost_answer_rng: Mutex::new((lost_seed, StdRng::seed_from_u64(lost_seed))),
            arm_lost_answer_rng: Mutex::new((arm_lost_seed, StdRng::seed_from_u64(arm_lost_seed))),
            log: Mutex::new(Vec::new()),
            vaults: VaultStore::default(),
            throttle_windows: Mutex::new(HashMap::new()),
            arm: Mutex::new(ArmState::default()),
        });
        let (stop, stopped) = oneshot::channel();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config.clone());
        let task = tokio::spawn(accept_loop(listener, acceptor, shared.clone(), stopped));
        Ok(Emulator {
            addr,
            shared,
            ca_pem: pki.ca_pem,
            leaf_cert_pem: pki.leaf_cert_pem,
            leaf_key_pem: pki.leaf_key_pem,
            stop: Some(stop),
            task: Some(task),
        })
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the test CA that signed the server certificate; clients must trust it.
    #[must_use]
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// PEM of the leaf server certificate (e.g. for Azurite's `--cert`).
    #[must_use]
    pub fn leaf_cert_pem(&self) -> &str {
        &self.leaf_cert_pem
    }

    /// PKCS#8 PEM of the leaf server key (e.g. for Azurite's `--key`).
    #[must_use]
    pub fn leaf_key_pem(&self) -> &str {
        &self.leaf_key_pem
    }

    /// Writes `ca.pem` into `dir` (created if missing) and returns its path.
    ///
    /// # Errors
    /// Fails when the directory or file cannot be written.
    pub fn write_ca(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// Writes `leaf.pem` and `leaf-key.pem` into `dir` and returns their paths.
    ///
    /// # Errors
    /// Fails when the files cannot be written.
    pub fn write_leaf(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let cert = dir.join("leaf.pem");
        let key = dir.join("leaf-key.pem");
        std::fs::write(&cert, &self.leaf_cert_pem)?;
        std::fs::write(&key, &self.leaf_key_pem)?;
        Ok((cert, key))
    }

    /// Every request served so far, oldest first (control API requests are not recorded).
    #[must_use]
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// A copy of the current options.
    #[must_use]
    pub fn options(&self) -> EmulatorOptions {
        self.shared.options()
    }

    /// Changes options at runtime; the next request sees the change.
    pub fn set_options(&self, change: impl FnOnce(&mut EmulatorOptions)) {
        change(&mut lock(&self.shared.options));
    }

    /// The tenant a vault (name without suffix) belongs to, as the emulator will check it.
    #[must_use]
    pub fn tenant_of(&self, vault: &str) -> String {
        lock(&self.shared.options).tenant_of(vault).to_owned()
    }

    /// Makes `POST .../storageAccounts/{account}/listKeys` answer with these keys (key1, key2, ...),
    /// and creates the account in the ARM store if missing. No keys: listKeys answers 403, as
    /// for an identity without `listkeys/action`.
    pub fn seed_storage_keys(
        &self,
        subscription: &str,
        resource_group: &str,
        account: &str,
        keys: Vec<String>,
    ) {
        lock(&self.shared.arm).seed_storage_keys(subscription, resource_group, account, keys);
    }

    /// Stores an ARM resource as given, without the resource provider's validation, and lets
    /// the provider add what it creates with it: how tests create what only deployed code
    /// creates on Azure (a function app's functions, with their default key). The control API's
    /// `PUT /_emulator/arm/{resource id}` does the same for out-of-process peers.
    ///
    /// # Errors
    /// Fails when `resource_id` is not a resource id or `body` not a JSON object.
    pub fn seed_arm_resource(
        &self,
        resource_id: &str,
        body: serde_json::Value,
    ) -> Result<(), String> {
        crate::arm::seed(&mut lock(&self.shared.arm), resource_id, body)
    }

    /// Seeds an App Service or Function App scenario (site, settings, connection strings,
    /// slots, sticky names, functions) through [`Emulator::seed_arm_resource`].
    ///
    /// # Errors
    /// Fails when the description names no valid resource id.
    pub fn seed_web_app(&self, app: &crate::web_app::WebAppSeed) -> Result<(), String> {
        app.resources()
            .into_iter()
            .try_for_each(|(id, body)| self.seed_arm_resource(&id, body))
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
    mut stopped: oneshot::Receiver<()>,
) {
    // Dropping the set aborts every connection task, which is what shutdown wants.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(serve_connection(stream, acceptor.clone(), shared.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Signals hyper to drop the connection without writing a response.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("injected connection reset")
    }
}

impl std::error::Error for ResetConnection {}

async fn serve_connection(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    // A second handle on the same socket lets a faulted request set SO_LINGER 0, so the close that
    // follows is an RST (a real "connection reset") rather than an orderly FIN.
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(linger_handle) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let linger_handle = Arc::new(linger_handle);
    let Ok(tls) = acceptor.accept(stream).await else {
        return;
    };
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let shared = shared.clone();
        let linger_handle = linger_handle.clone();
        async move {
            // As on Azure, a request the service received takes effect even when the client goes
            // away before the answer: the handler runs on its own task, which hyper's drop of
            // the connection (client disconnect) does not cancel. A panicked handler resets.
            let handled = tokio::spawn(async move { handle(&shared, request).await }).await;
            if let Some(response) = handled.ok().flatten() {
                Ok(response)
            } else {
                let _ = socket2::SockRef::from(&*linger_handle).set_linger(Some(Duration::ZERO));
                Err(ResetConnection)
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

#[allow(clippy::needless_pass_by_value)] // consumes the response by design; borrowing reads worse here
fn to_hyper(response: ApiResponse) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder
        .body(Full::new(response.body.clone()))
        .unwrap_or_else(|_| {
            // A handler produced an invalid header; answer 500 rather than dropping the connection.
            let mut fallback =
                Response::new(Full::new(Bytes::from_static(b"invalid response header")));
            *fallback.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            fallback
        })
}

fn classify(host: &str) -> Service {
    if token::LOGIN_HOSTS.contains(&host) {
        Service::Token
    } else if keyvault::vault_name(host).is_some() {
        Service::KeyVault
    } else if arm::ARM_HOSTS.contains(&host) {
        Service::Arm
    } else {
        Service::Unknown
    }
}

/// Buffers and answers one request; `None` means "reset the connection".
async fn handle(shared: &Shared, request: Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return None,
    };
    let host_header = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| parts.uri.host())
        .unwrap_or_default();
    let host = strip_port(host_header).to_ascii_lowercase();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let request = ApiRequest {
        method: parts.method,
        host,
        path: parts.uri.path().to_owned(),
        query: url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        raw_query,
        headers: parts.headers,
        body,
    };

    if request.path.starts_with("/_emulator/") {
        return Some(to_hyper(control::handle(shared, &request)));
    }

    let options = shared.options();
    if options.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(options.latency_ms)).await;
    }
    let service = classify(&request.host);
    let mut entry = RecordedRequest {
        service,
        method: request.method.to_string(),
        host: request.host.clone(),
        vault: keyvault::vault_name(&request.host).map(str::to_owned),
        path: request.path.clone(),
        query: request.raw_query.clone(),
        status: None,
        bearer: request.bearer().is_some(),
        fault: None,
        lost_answer: None,
        body_has_value: request.body_has_value(),
    };

    // The collection faults and lost answers are chosen by (see `operation_matches`).
    let collection = match service {
        Service::Arm => arm::operation_collection(&request.segments()),
        _ => request
            .segments()
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned(),
    };
    if matches!(service, Service::KeyVault | Service::Arm) {
        if let Some(fault) = shared.pick_fault(&options, &request, &collection) {
            entry.fault = Some(fault);
            let response = match fault {
                FaultKind::ConnectionReset => None,
                FaultKind::TooManyRequests => Some(
                    ApiResponse::error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Throttled",
                        "Request was not processed because too many requests were received. Reason: injected fault",
                        None,
                    )
                    .with_header("retry-after", "1"),
                ),
                FaultKind::ServiceUnavailable => Some(ApiResponse::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Reason: injected fault",
                    None,
                )),
            };
            let response = response
                .map(|response| response.with_header("x-ms-request-id", crate::http::new_guid()));
            entry.status = response.as_ref().map(|response| response.status.as_u16());
            shared.record(entry);
            return response.map(to_hyper);
        }
    }

    let response = match service {
        Service::Token => token::handle(&request, &options),
        Service::KeyVault => keyvault::handle(shared, &options, &request),
        Service::Arm => arm::handle(shared, &options, &request),
        Service::Unknown => ApiResponse::error(
            StatusCode::NOT_FOUND,
            "UnknownHost",
            &format!("the emulator does not serve host `{}`", request.host),
            None,
        ),
    };
    if response.status.is_success() {
        if let Some(lost) = shared.pick_lost_answer(&options, &request, service, &collection) {
            return lose_answer(shared, entry, lost, &options).await;
        }
    }
    let response = control::misbehave(&options, &request, response);
    entry.status = Some(response.status.as_u16());
    shared.record(entry);
    Some(to_hyper(response))
}

/// Answers a write that took effect as if the answer never made it back.
async fn lose_answer(
    shared: &Shared,
    mut entry: RecordedRequest,
    lost: LostAnswerKind,
    options: &EmulatorOptions,
) -> Option<Response<Full<Bytes>>> {
    entry.lost_answer = Some(lost);
    let response = match lost {
        LostAnswerKind::ConnectionReset => None,
        LostAnswerKind::Timeout => {
            shared.record(entry);
            let wait = options.lost_answers.as_ref().map_or(0, |l| l.timeout_ms);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            return None;
        }
        LostAnswerKind::InternalServerError => Some(ApiResponse::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The server encountered an internal error. Reason: injected lost answer",
            None,
        )),
        LostAnswerKind::ServiceUnavailable => Some(ApiResponse::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Reason: injected lost answer",
            None,
        )),
    };
    let response =
        response.map(|response| response.with_header("x-ms-request-id", crate::http::new_guid()));
    entry.status = response.as_ref().map(|response| response.status.as_u16());
    shared.record(entry);
    response.map(to_hyper)
}

/// Draws from a seeded generator: `None` (no fault) or one of `kinds`. Re-seeds when the
/// configured seed changes, so a test's pattern is reproducible.
fn roll<T: Copy>(slot: &Mutex<(u64, StdRng)>, seed: u64, rate: f64, kinds: &[T]) -> Option<T> {
    if rate <= 0.0 || kinds.is_empty() {
        return None;
    }
    let mut guard = lock(slot);
    if guard.0 != seed {
        *guard = (seed, StdRng::seed_from_u64(seed));
    }
    let rng = &mut guard.1;
    if rng.random::<f64>() >= rate {
        return None;
    }
    Some(kinds[rng.random_range(0..kinds.len())])
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split(']')
            .next()
            .map_or(host, |h| h.trim_start_matches('['));
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports_from_host_headers() {
        assert_eq!(strip_port("v.vault.azure.net:443"), "v.vault.azure.net");
        assert_eq!(strip_port("v.vault.azure.net"), "v.vault.azure.net");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }
}
