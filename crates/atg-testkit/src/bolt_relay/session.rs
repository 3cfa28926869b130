//! One client connection of the relay: the handshake (Bolt 4.x to the client, 5.1 upstream),
//! authentication, and the request loop that forwards requests and relays the answers,
//! downgraded to 4.x. Must not hold state beyond the connection, except the shared test hooks.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::packstream::{
    decode_message, encode_value, protocol_error, read_message, write_message, IoResult, Value,
};
use super::{Hooks, RelayOptions};

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
pub(super) const RECORD: u8 = 0x71;
const IGNORED: u8 = 0x7E;
const FAILURE: u8 = 0x7F;

pub(super) const NODE: u8 = 0x4E;
const RELATIONSHIP: u8 = 0x52;
const UNBOUND_RELATIONSHIP: u8 = 0x72;
pub(super) const PATH: u8 = 0x50;

/// The highest 4.x version among the client's four proposals (major, minor, range).
pub(super) fn choose_v4(proposals: &[u8; 16]) -> Option<[u8; 4]> {
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

pub(super) async fn serve(
    mut client: TcpStream,
    options: &RelayOptions,
    hooks: &Hooks,
) -> IoResult<()> {
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
pub(super) fn downgrade(value: Value) -> Value {
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
