//! Bolt's wire format: messages framed in chunks, and the `PackStream` values they carry
//! (decoding and encoding). Knows nothing of what a message means.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(super) type IoResult<T> = std::io::Result<T>;

pub(super) fn protocol_error(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

/// Reads one chunked message; `None` when the peer closed cleanly between messages.
pub(super) async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> IoResult<Option<Vec<u8>>> {
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

pub(super) async fn write_message<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &[u8],
) -> IoResult<()> {
    let mut out = Vec::with_capacity(message.len() + 8);
    for chunk in message.chunks(0xFFFF) {
        out.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&[0, 0]);
    stream.write_all(&out).await?;
    stream.flush().await
}

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

pub(super) fn decode_message(bytes: &[u8]) -> IoResult<Value> {
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
