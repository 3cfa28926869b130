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

pub mod falkordb;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const MAGIC: [u8; 4] = [0x60, 0x60, 0xB0, 0x17];

const HELLO: u8 = 0x01;
const RUN: u8 = 0x10;
const BEGIN: u8 = 0x11;
const GOODBYE: u8 = 0x02;
const RESET: u8 = 0x0F;
const DISCARD: u8 = 0x2F;
const PULL: u8 = 0x3F;
const LOGON: u8 = 0x6A;
const SUCCESS: u8 = 0x70;
const RECORD: u8 = 0x71;
const IGNORED: u8 = 0x7E;
const FAILURE: u8 = 0x7F;

const NODE: u8 = 0x4E;
const RELATIONSHIP: u8 = 0x52;
const UNBOUND_RELATIONSHIP: u8 = 0x72;
const PATH: u8 = 0x50;

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

type IoResult<T> = std::io::Result<T>;

fn protocol_error(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

/// The highest 4.x version among the client's four proposals (major, minor, range).
fn choose_v4(proposals: &[u8; 16]) -> Option<[u8; 4]> {
    let mut best: Option<u8> = None;
    for proposal in proposals.chunks_exact(4) {
        let (range, minor, major) = (proposal[1], proposal[2], proposal[3]);
        if major != 4 {
            continue;
        }
        // A range covers minor, minor-1, ... minor-range; 4.4 is the newest 4.x.
        let low = minor.saturating_sub(range);
        let high = minor.min(4);
        if low <= high {
            best = Some(best.map_or(high, |b| b.max(high)));
        }
    }
    best.map(|minor| [0, 0, minor, 4])
}

async fn serve(mut client: TcpStream, options: &RelayOptions, hooks: &Hooks) -> IoResult<()> {
    let mut handshake = [0u8; 20];
    client.read_exact(&mut handshake).await?;
    if handshake[..4] != MAGIC {
        return Err(protocol_error("not a bolt client"));
    }
    let dropped = hooks
        .drop_handshakes
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    if dropped.is_ok() {
        return Ok(());
    }
    let mut proposals = [0u8; 16];
    proposals.copy_from_slice(&handshake[4..]);
    let Some(version) = choose_v4(&proposals) else {
        client.write_all(&[0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&version).await?;

    let mut upstream =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(options.upstream))
            .await
            .map_err(|_| protocol_error("upstream connect timed out"))??;
    upstream.set_nodelay(true)?;
    let mut offer = Vec::with_capacity(20);
    offer.extend_from_slice(&MAGIC);
    offer.extend_from_slice(&[0, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    upstream.write_all(&offer).await?;
    let mut agreed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), upstream.read_exact(&mut agreed))
        .await
        .map_err(|_| protocol_error("upstream handshake timed out"))??;
    if agreed != [0, 0, 1, 5] {
        return Err(protocol_error(format!(
            "upstream chose bolt {agreed:?}, not 5.1"
        )));
    }

    let mut failed = false;
    loop {
        let Some(message) = read_message(&mut client).await? else {
            return Ok(());
        };
        let Value::Struct(tag, fields) = decode_message(&message)? else {
            return Err(protocol_error("a message is not a structure"));
        };
        if tag == BEGIN || tag == RUN {
            let database = fields
                .iter()
                .rev()
                .find_map(|field| map_get(field, "db"))
                .map_or_else(
                    || "<none>".to_owned(),
                    |db| match db {
                        Value::String(name) => name.clone(),
                        _ => "<not a string>".to_owned(),
                    },
                );
            if let Ok(mut seen) = hooks.databases.lock() {
                seen.push(database);
            }
        }
        match tag {
            HELLO => {
                let extra = fields.first().cloned().unwrap_or(Value::Map(Vec::new()));
                if !credentials_match(&extra, options) {
                    let failure = Value::Struct(
                        FAILURE,
                        vec![Value::Map(vec![
                            (
                                "code".into(),
                                Value::String("Neo.ClientError.Security.Unauthorized".into()),
                            ),
                            (
                                "message".into(),
                                Value::String(
                                    "The client is unauthorized due to authentication failure."
                                        .into(),
                                ),
                            ),
                        ])],
                    );
                    write_message(&mut client, &encode_value(&failure)).await?;
                    return Ok(());
                }
                let user_agent = map_get(&extra, "user_agent")
                    .cloned()
                    .unwrap_or(Value::String("atg-bolt-relay".into()));
                let hello = Value::Struct(
                    HELLO,
                    vec![Value::Map(vec![("user_agent".into(), user_agent)])],
                );
                write_message(&mut upstream, &encode_value(&hello)).await?;
                let summary = read_summary(&mut upstream).await?;
                if summary_tag(&summary) != SUCCESS {
                    write_message(&mut client, &summary).await?;
                    return Ok(());
                }
                let logon = Value::Struct(
                    LOGON,
                    vec![Value::Map(vec![(
                        "scheme".into(),
                        Value::String("none".into()),
                    )])],
                );
                write_message(&mut upstream, &encode_value(&logon)).await?;
                let logon_summary = read_summary(&mut upstream).await?;
                if summary_tag(&logon_summary) != SUCCESS {
                    write_message(&mut client, &logon_summary).await?;
                    return Ok(());
                }
                write_message(&mut client, &summary).await?;
            }
            GOODBYE => {
                let _ = write_message(&mut upstream, &message).await;
                return Ok(());
            }
            RESET => {
                failed = false;
                write_message(&mut upstream, &message).await?;
                // Skip IGNORED answers FalkorDB may still owe for earlier requests.
                loop {
                    let summary = read_summary(&mut upstream).await?;
                    if summary_tag(&summary) != IGNORED {
                        write_message(&mut client, &summary).await?;
                        break;
                    }
                }
            }
            _ if failed => {
                write_message(
                    &mut client,
                    &encode_value(&Value::Struct(IGNORED, Vec::new())),
                )
                .await?;
            }
            DISCARD => {
                let pull = Value::Struct(PULL, fields);
                write_message(&mut upstream, &encode_value(&pull)).await?;
                let summary = read_summary(&mut upstream).await?;
                failed = summary_tag(&summary) == FAILURE;
                write_message(&mut client, &summary).await?;
            }
            _ => {
                write_message(&mut upstream, &message).await?;
                let summary = relay_records(&mut upstream, &mut client).await?;
                failed = summary_tag(&summary) == FAILURE;
                write_message(&mut client, &summary).await?;
            }
        }
    }
}

fn credentials_match(extra: &Value, options: &RelayOptions) -> bool {
    let text = |key: &str| match map_get(extra, key) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    text("scheme") == Some("basic")
        && text("principal") == Some(options.user.as_str())
        && text("credentials") == Some(options.password.as_str())
}

fn map_get<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    match value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn summary_tag(message: &[u8]) -> u8 {
    message.get(1).copied().unwrap_or(0)
}

/// Reads messages until a summary (SUCCESS, FAILURE, IGNORED); RECORDs are dropped.
async fn read_summary<S: AsyncRead + Unpin>(upstream: &mut S) -> IoResult<Vec<u8>> {
    loop {
        let message = read_message(upstream)
            .await?
            .ok_or_else(|| protocol_error("upstream closed"))?;
        if summary_tag(&message) != RECORD {
            return Ok(message);
        }
    }
}

/// Forwards RECORDs (downgraded to 4.x) until the summary, which it returns.
async fn relay_records<S: AsyncRead + Unpin, C: AsyncWrite + Unpin>(
    upstream: &mut S,
    client: &mut C,
) -> IoResult<Vec<u8>> {
    loop {
        let message = read_message(upstream)
            .await?
            .ok_or_else(|| protocol_error("upstream closed"))?;
        if summary_tag(&message) != RECORD {
            return Ok(message);
        }
        let record = downgrade(decode_message(&message)?);
        write_message(client, &encode_value(&record)).await?;
    }
}

/// Bolt 5 → 4: drop element ids from nodes, relationships and paths, recursively.
fn downgrade(value: Value) -> Value {
    match value {
        Value::Struct(tag, fields) => {
            let mut fields: Vec<Value> = fields.into_iter().map(downgrade).collect();
            let keep = match tag {
                NODE | UNBOUND_RELATIONSHIP => 3,
                RELATIONSHIP => 5,
                _ => fields.len(),
            };
            if matches!(tag, NODE | RELATIONSHIP | UNBOUND_RELATIONSHIP | PATH) {
                fields.truncate(keep);
            }
            Value::Struct(tag, fields)
        }
        Value::List(items) => Value::List(items.into_iter().map(downgrade).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, downgrade(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Reads one chunked message; `None` when the peer closed cleanly between messages.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> IoResult<Option<Vec<u8>>> {
    let mut message = Vec::new();
    loop {
        let mut size = [0u8; 2];
        match stream.read_exact(&mut size).await {
            Ok(_) => {}
            Err(error)
                if error.kind() == std::io::ErrorKind::UnexpectedEof && message.is_empty() =>
            {
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
        let size = usize::from(u16::from_be_bytes(size));
        if size == 0 {
            if message.is_empty() {
                continue; // a NOOP keep-alive chunk
            }
            return Ok(Some(message));
        }
        let start = message.len();
        message.resize(start + size, 0);
        stream.read_exact(&mut message[start..]).await?;
    }
}

async fn write_message<S: AsyncWrite + Unpin>(stream: &mut S, message: &[u8]) -> IoResult<()> {
    let mut out = Vec::with_capacity(message.len() + 8);
    for chunk in message.chunks(0xFFFF) {
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&[0, 0]);
    stream.write_all(&out).await?;
    stream.flush().await
}

/// A `PackStream` value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    String(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
    Struct(u8, Vec<Value>),
}

fn decode_message(bytes: &[u8]) -> IoResult<Value> {
    let mut cursor = 0;
    let value = decode(bytes, &mut cursor)?;
    if cursor != bytes.len() {
        return Err(protocol_error("trailing bytes after a message"));
    }
    Ok(value)
}

fn take<'b>(bytes: &'b [u8], cursor: &mut usize, n: usize) -> IoResult<&'b [u8]> {
    let end = cursor
        .checked_add(n)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| protocol_error("truncated packstream value"))?;
    let slice = &bytes[*cursor..end];
    *cursor = end;
    Ok(slice)
}

fn length(bytes: &[u8], cursor: &mut usize, width: usize) -> IoResult<usize> {
    let raw = take(bytes, cursor, width)?;
    let mut n: usize = 0;
    for byte in raw {
        n = (n << 8) | usize::from(*byte);
    }
    Ok(n)
}

pub fn decode(bytes: &[u8], cursor: &mut usize) -> IoResult<Value> {
    let marker = take(bytes, cursor, 1)?[0];
    let high = marker & 0xF0;
    let low = usize::from(marker & 0x0F);
    Ok(match marker {
        0x00..=0x7F => Value::Int(i64::from(marker)),
        0xF0..=0xFF => Value::Int(i64::from(i8::from_ne_bytes([marker]))),
        0xC0 => Value::Null,
        0xC2 => Value::Bool(false),
        0xC3 => Value::Bool(true),
        0xC1 => {
            let raw = take(bytes, cursor, 8)?;
            let mut array = [0u8; 8];
            array.copy_from_slice(raw);
            Value::Float(f64::from_be_bytes(array))
        }
        0xC8..=0xCB => {
            let width = 1usize << (marker - 0xC8);
            let raw = take(bytes, cursor, width)?;
            let mut array = [0u8; 8];
            array[8 - width..].copy_from_slice(raw);
            let unsigned = u64::from_be_bytes(array);
            let shift = 64 - 8 * u32::try_from(width).unwrap_or(8);
            #[allow(clippy::cast_possible_wrap)]
            let signed = ((unsigned << shift) as i64) >> shift;
            Value::Int(signed)
        }
        0xCC..=0xCE => {
            let n = length(bytes, cursor, 1 << (marker - 0xCC))?;
            Value::Bytes(take(bytes, cursor, n)?.to_vec())
        }
        _ if high == 0x80 => string(bytes, cursor, low)?,
        0xD0..=0xD2 => {
            let n = length(bytes, cursor, 1 << (marker - 0xD0))?;
            string(bytes, cursor, n)?
        }
        _ if high == 0x90 => list(bytes, cursor, low)?,
        0xD4..=0xD6 => {
            let n = length(bytes, cursor, 1 << (marker - 0xD4))?;
            list(bytes, cursor, n)?
        }
        _ if high == 0xA0 => map(bytes, cursor, low)?,
        0xD8..=0xDA => {
            let n = length(bytes, cursor, 1 << (marker - 0xD8))?;
            map(bytes, cursor, n)?
        }
        _ if high == 0xB0 => {
            let tag = take(bytes, cursor, 1)?[0];
            let mut fields = Vec::with_capacity(low);
            for _ in 0..low {
                fields.push(decode(bytes, cursor)?);
            }
            Value::Struct(tag, fields)
        }
        other => return Err(protocol_error(format!("unknown marker {other:#04x}"))),
    })
}

fn string(bytes: &[u8], cursor: &mut usize, n: usize) -> IoResult<Value> {
    let raw = take(bytes, cursor, n)?;
    String::from_utf8(raw.to_vec())
        .map(Value::String)
        .map_err(|_| protocol_error("a string is not UTF-8"))
}

fn list(bytes: &[u8], cursor: &mut usize, n: usize) -> IoResult<Value> {
    let mut items = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        items.push(decode(bytes, cursor)?);
    }
    Ok(Value::List(items))
}

fn map(bytes: &[u8], cursor: &mut usize, n: usize) -> IoResult<Value> {
    let mut entries = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let Value::String(key) = decode(bytes, cursor)? else {
            return Err(protocol_error("a map key is not a string"));
        };
        entries.push((key, decode(bytes, cursor)?));
    }
    Ok(Value::Map(entries))
}

fn header(out: &mut Vec<u8>, n: usize, tiny: u8, wide: u8) {
    if n < 16 && tiny != 0 {
        out.push(tiny | u8::try_from(n).unwrap_or(0));
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[wide, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(wide + 1);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(wide + 2);
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }
}

pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(value, &mut out);
    out
}

pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0xC0),
        Value::Bool(b) => out.push(if *b { 0xC3 } else { 0xC2 }),
        Value::Int(i) => {
            let i = *i;
            if (-16..128).contains(&i) {
                out.push(i.to_be_bytes()[7]);
            } else if let Ok(v) = i8::try_from(i) {
                out.push(0xC8);
                out.extend_from_slice(&v.to_be_bytes());
            } else if let Ok(v) = i16::try_from(i) {
                out.push(0xC9);
                out.extend_from_slice(&v.to_be_bytes());
            } else if let Ok(v) = i32::try_from(i) {
                out.push(0xCA);
                out.extend_from_slice(&v.to_be_bytes());
            } else {
                out.push(0xCB);
                out.extend_from_slice(&i.to_be_bytes());
            }
        }
        Value::Float(f) => {
            out.push(0xC1);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Bytes(b) => {
            header(out, b.len(), 0, 0xCC);
            out.extend_from_slice(b);
        }
        Value::String(s) => {
            header(out, s.len(), 0x80, 0xD0);
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(items) => {
            header(out, items.len(), 0x90, 0xD4);
            for item in items {
                encode(item, out);
            }
        }
        Value::Map(entries) => {
            header(out, entries.len(), 0xA0, 0xD8);
            for (key, value) in entries {
                encode(&Value::String(key.clone()), out);
                encode(value, out);
            }
        }
        Value::Struct(tag, fields) => {
            out.push(0xB0 | u8::try_from(fields.len()).unwrap_or(0x0F));
            out.push(*tag);
            for field in fields {
                encode(field, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packstream_round_trips() {
        let value = Value::Struct(
            NODE,
            vec![
                Value::Int(-17),
                Value::List(vec![Value::String("Resource".into()), Value::Int(70_000)]),
                Value::Map(vec![
                    ("p".into(), Value::String("x".repeat(300))),
                    ("f".into(), Value::Float(1.5)),
                    ("n".into(), Value::Null),
                    ("big".into(), Value::Int(i64::MIN)),
                    ("neg".into(), Value::Int(-200)),
                ]),
                Value::String("4:abc:1".into()),
            ],
        );
        let bytes = encode_value(&value);
        assert_eq!(decode_message(&bytes).unwrap(), value);
    }

    #[test]
    fn element_ids_are_stripped_from_nodes_in_paths() {
        let node = |id| {
            Value::Struct(
                NODE,
                vec![
                    Value::Int(id),
                    Value::List(vec![]),
                    Value::Map(vec![]),
                    Value::String("e".into()),
                ],
            )
        };
        let record = Value::Struct(
            RECORD,
            vec![Value::List(vec![Value::Struct(
                PATH,
                vec![
                    Value::List(vec![node(1), node(2)]),
                    Value::List(vec![]),
                    Value::List(vec![]),
                ],
            )])],
        );
        let Value::Struct(_, fields) = downgrade(record) else {
            panic!()
        };
        let Value::List(items) = &fields[0] else {
            panic!()
        };
        let Value::Struct(PATH, path) = &items[0] else {
            panic!()
        };
        let Value::List(nodes) = &path[0] else {
            panic!()
        };
        assert!(nodes
            .iter()
            .all(|n| matches!(n, Value::Struct(NODE, f) if f.len() == 3)));
    }

    #[test]
    fn the_client_gets_its_newest_4x_version() {
        let mut neo4rs_08 = [0u8; 16];
        neo4rs_08[..8].copy_from_slice(&[0, 0, 1, 4, 0, 0, 0, 4]);
        assert_eq!(choose_v4(&neo4rs_08), Some([0, 0, 1, 4]));
        let mut ranged = [0u8; 16];
        ranged[..8].copy_from_slice(&[0, 0, 0, 5, 0, 2, 4, 4]);
        assert_eq!(choose_v4(&ranged), Some([0, 0, 4, 4]));
        let mut five_only = [0u8; 16];
        five_only[..4].copy_from_slice(&[0, 0, 1, 5]);
        assert_eq!(choose_v4(&five_only), None);
    }
}
