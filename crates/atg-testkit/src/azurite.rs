//! Azurite (Microsoft's Storage emulator, npm `azurite@3.35.0`) for tests: installed into the
//! project-local `.stand-ins/azurite` by `scripts/azurite.sh`, started here with named accounts,
//! https with the emulator's leaf certificate and `--oauth basic` (bearer tokens from the
//! emulator's token endpoint are accepted: Azurite checks claims, not signatures).
//!
//! Tests that need Azurite fail when it is missing, with the command that installs it.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;

use crate::Emulator;

pub const AZURITE_VERSION: &str = "3.35.0";

/// The Azurite launcher: `ATG_AZURITE` if set, else the project-local install.
pub fn azurite_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("ATG_AZURITE") {
        return Ok(PathBuf::from(path));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(".stand-ins/azurite/node_modules/.bin/azurite");
    if path.exists() {
        return Ok(path);
    }
    anyhow::bail!(
        "azurite {AZURITE_VERSION} is not installed (looked for {})\nhint: run `scripts/azurite.sh install` (npm install into .stand-ins/azurite), or set ATG_AZURITE",
        path.display()
    )
}

/// A storage account Azurite serves.
#[derive(Clone, Debug)]
pub struct AzuriteAccount {
    pub name: String,
    /// Base64 account key.
    pub key: String,
}

impl AzuriteAccount {
    /// An account with a key derived from its name (stable across runs).
    #[must_use]
    pub fn named(name: &str) -> Self {
        let mut key = [0u8; 64];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = name
                .as_bytes()
                .get(i % name.len().max(1))
                .copied()
                .unwrap_or(0)
                .wrapping_add(u8::try_from(i).unwrap_or(0));
        }
        Self {
            name: name.to_owned(),
            key: base64::engine::general_purpose::STANDARD.encode(key),
        }
    }
}

/// A running Azurite; stopped (killed) when dropped.
pub struct Azurite {
    child: tokio::process::Child,
    pub blob: SocketAddr,
    pub queue: SocketAddr,
    pub table: SocketAddr,
    pub accounts: Vec<AzuriteAccount>,
    pub ca_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    let listener = StdListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

impl Azurite {
    /// Starts Azurite (blob, queue, table) on free loopback ports, https with the emulator's
    /// certificate, `--oauth basic`, in-memory, with these accounts.
    ///
    /// # Errors
    /// Fails (with a hint) when Azurite is not installed or does not come up within 30 s.
    pub async fn start(emulator: &Emulator, accounts: &[AzuriteAccount]) -> anyhow::Result<Self> {
        let binary = azurite_binary()?;
        let dir = tempfile::tempdir().context("azurite temp dir")?;
        let (cert, key) = emulator.write_leaf(dir.path())?;
        let ca_path = emulator.write_ca(dir.path())?;
        let (blob, queue, table) = (free_port()?, free_port()?, free_port()?);
        let accounts_env = accounts
            .iter()
            .map(|a| format!("{}:{}", a.name, a.key))
            .collect::<Vec<_>>()
            .join(";");
        let mut command = tokio::process::Command::new(&binary);
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--queueHost",
                "127.0.0.1",
                "--tableHost",
                "127.0.0.1",
                "--blobPort",
                &blob.to_string(),
                "--queuePort",
                &queue.to_string(),
                "--tablePort",
                &table.to_string(),
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
                "--inMemoryPersistence",
                "--oauth",
                "basic",
                "--cert",
            ])
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .env("AZURITE_ACCOUNTS", accounts_env)
            .env("NODE_EXTRA_CA_CERTS", &ca_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let mut azurite = Azurite {
            child,
            blob: addr(blob),
            queue: addr(queue),
            table: addr(table),
            accounts: accounts.to_vec(),
            ca_path,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [blob, queue, table] {
            loop {
                if tokio::net::TcpStream::connect(addr(port)).await.is_ok() {
                    break;
                }
                if let Ok(Some(status)) = azurite.child.try_wait() {
                    anyhow::bail!("azurite exited at start ({status})\nhint: run `{} --help` to check the install", binary.display());
                }
                if Instant::now() > deadline {
                    anyhow::bail!("azurite did not listen on port {port} within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(azurite)
    }

    #[must_use]
    pub fn account(&self, name: &str) -> Option<&AzuriteAccount> {
        self.accounts.iter().find(|a| a.name == name)
    }

    /// A connection string for the official SDKs, path-style against this Azurite
    /// (`https://127.0.0.1:<port>/<account>`): test readers use it, never atg.
    #[must_use]
    pub fn connection_string(&self, account: &str) -> String {
        let key = self
            .account(account)
            .map(|a| a.key.clone())
            .unwrap_or_default();
        format!(
            "DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};BlobEndpoint=https://127.0.0.1:{}/{account};QueueEndpoint=https://127.0.0.1:{}/{account};TableEndpoint=https://127.0.0.1:{}/{account};",
            self.blob.port(),
            self.queue.port(),
            self.table.port()
        )
    }

    /// Stops Azurite.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
