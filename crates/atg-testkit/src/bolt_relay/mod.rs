//! A Bolt 4.x ↔ 5.1 translating relay, so that a Bolt 4 client (neo4rs 0.8, which atg uses to
//! read ATG's graph) can talk to `FalkorDB`, a real Cypher engine that speaks Bolt 5 only.
//!
//! What it translates (see ../shared/reference/local-stand-ins.md):
//! - handshake: answers the client with the highest 4.x version it proposes, opens 5.1 upstream;
//! - auth: the 4.x HELLO carries credentials; the relay checks them against its own user and
//!   password (as Neo4j would, answering `Neo.ClientError.Security.Unauthorized`) and opens the
//!   upstream session with a 5.x HELLO plus LOGON scheme "none", the only scheme `FalkorDB` takes;
//! - records: strips the 5.x element id fields from nodes, relationships and paths;
//! - DISCARD, which `FalkorDB` never answers, becomes a PULL whose records are dropped;
//! - after a FAILURE it answers IGNORED itself until RESET (`FalkorDB` sends those late).
//!
//! Test hooks: [`BoltRelay::drop_next_handshakes`] closes the next connections right after the
//! client's handshake (as a server whose first connection after another client's disconnect
//! fails), and [`BoltRelay::databases`] lists the `db` every BEGIN and RUN named.
//!
//! It handles one request at a time per connection (neo4rs does not pipeline), which keeps the
//! response bookkeeping trivial. Test infrastructure only; [`falkordb`] starts the server.
//!
//! Parts: `session` serves one client connection (handshake, authentication, the request loop),
//! `packstream` is Bolt's wire format (chunked messages, `PackStream` values).

pub mod falkordb;
mod packstream;
mod session;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use packstream::{decode, encode, encode_value, Value};
use session::serve;

/// Where the relay listens, where it forwards to, and the credentials it accepts.
#[derive(Clone)]
pub struct RelayOptions {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for RelayOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayOptions")
            .field("listen", &self.listen)
            .field("upstream", &self.upstream)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What the test hooks share with the connections.
#[derive(Default)]
struct Hooks {
    drop_handshakes: AtomicUsize,
    databases: Mutex<Vec<String>>,
}

/// A running relay; stops when dropped.
pub struct BoltRelay {
    addr: SocketAddr,
    task: JoinHandle<()>,
    hooks: Arc<Hooks>,
}

impl BoltRelay {
    pub async fn start(options: RelayOptions) -> std::io::Result<BoltRelay> {
        let listener = TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        let options = Arc::new(options);
        let hooks = Arc::new(Hooks::default());
        let shared = hooks.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let options = options.clone();
                let hooks = shared.clone();
                tokio::spawn(async move {
                    // A broken connection only ends that connection.
                    let _ = serve(client, &options, &hooks).await;
                });
            }
        });
        Ok(BoltRelay { addr, task, hooks })
    }

    /// Closes the next `count` connections right after reading the client's handshake.
    pub fn drop_next_handshakes(&self, count: usize) {
        self.hooks.drop_handshakes.store(count, Ordering::SeqCst);
    }

    /// The `db` named by every BEGIN and RUN so far (`<none>` when a message named none).
    pub fn databases(&self) -> Vec<String> {
        self.hooks
            .databases
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `bolt://127.0.0.1:<port>`
    pub fn uri(&self) -> String {
        format!("bolt://{}", self.addr)
    }
}

impl Drop for BoltRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;
