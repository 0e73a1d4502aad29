//! Reading a Beam `Pipeline` (or any model message) from a file in one of the
//! three encodings a user may have: binary proto, proto JSON or proto text.
//!
//! The format comes from the file extension when it is a known one
//! (`.pb`/`.bin`/`.binpb`, `.json`, `.textproto`/`.txtpb`/`.pbtxt`/`.txt`),
//! otherwise it is sniffed from the bytes. Every error says where the input
//! went wrong: the byte offset and field for binary input, the line and column
//! for JSON and text.

use std::fmt;
use std::path::Path;

use prost::Message;
use prost_reflect::DynamicMessage;

use crate::pipeline::v1::Pipeline;

/// The three encodings of a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The binary wire format.
    Binary,
    /// The canonical proto3 JSON mapping.
    Json,
    /// The protobuf text format (as printed by `text_format` / `protoc --decode`).
    Text,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Binary => "binary proto",
            Format::Json => "proto JSON",
            Format::Text => "proto text format",
        })
    }
}

impl Format {
    /// The format implied by a file's extension, if it is a known one.
    pub fn from_extension(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "pb" | "bin" | "binpb" | "proto3" => Some(Format::Binary),
            "json" => Some(Format::Json),
            "textproto" | "txtpb" | "pbtxt" | "prototxt" | "txt" => Some(Format::Text),
            _ => None,
        }
    }

    /// Guess the format from content: JSON starts with `{`, text format is
    /// printable UTF-8, anything else is binary.
    pub fn sniff(bytes: &[u8]) -> Format {
        let trimmed = bytes.iter().position(|b| !b.is_ascii_whitespace());
        match trimmed.map(|i| bytes[i]) {
            Some(b'{') => Format::Json,
            _ => match std::str::from_utf8(bytes) {
                Ok(s) if s.chars().all(|c| !c.is_control() || c.is_whitespace()) => Format::Text,
                _ => Format::Binary,
            },
        }
    }
}

/// Why a message could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a valid message in the given format.
    #[error("{origin}: invalid {format} {message}: {detail}")]
    Malformed {
        /// File name or other origin of the bytes.
        origin: String,
        /// The encoding that was tried.
        format: Format,
        /// The message type, e.g. `Pipeline`.
        message: String,
        /// Where and what: byte offset and field, or line and column.
        detail: String,
    },
}

/// Load a `Pipeline` from a file in any of the three formats.
pub fn pipeline_from_file(path: &Path) -> Result<(Pipeline, Format), LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let format = Format::from_extension(path).unwrap_or_else(|| Format::sniff(&bytes));
    let p = decode::<Pipeline>(&bytes, format, &path.display().to_string())?;
    Ok((p, format))
}

/// Decode any model message from `bytes` in `format`. `origin` names the
/// source in errors (usually the file name).
pub fn decode<M>(bytes: &[u8], format: Format, origin: &str) -> Result<M, LoadError>
where
    M: Message + Default + prost::Name,
{
    let err = |detail: String| LoadError::Malformed {
        origin: origin.to_string(),
        format,
        message: M::NAME.to_string(),
        detail,
    };
    match format {
        Format::Binary => M::decode(bytes).map_err(|e| err(binary_detail(bytes, &e))),
        Format::Json | Format::Text => {
            let desc = crate::descriptor_pool()
                .get_message_by_name(&M::full_name())
                .ok_or_else(|| err(format!("no descriptor for {}", M::full_name())))?;
            let text = std::str::from_utf8(bytes)
                .map_err(|e| err(format!("byte {}: not UTF-8 text ({e})", e.valid_up_to())))?;
            let dynamic = if format == Format::Json {
                let mut de = serde_json::Deserializer::from_str(text);
                let msg =
                    DynamicMessage::deserialize(desc, &mut de).map_err(|e| err(json_detail(&e)))?;
                de.end().map_err(|e| err(json_detail(&e)))?;
                msg
            } else {
                DynamicMessage::parse_text_format(desc, text)
                    .map_err(|e| err(text_detail(text, &e)))?
            };
            dynamic.transcode_to::<M>().map_err(|e| err(e.to_string()))
        }
    }
}

/// Encode a model message to proto JSON (for `--format json` style output).
pub fn to_json<M: Message + prost::Name>(msg: &M) -> Result<String, LoadError> {
    let dynamic = to_dynamic(msg)?;
    serde_json::to_string_pretty(&dynamic).map_err(|e| LoadError::Malformed {
        origin: "<memory>".into(),
        format: Format::Json,
        message: M::NAME.into(),
        detail: e.to_string(),
    })
}

/// Encode a model message to the protobuf text format.
pub fn to_text<M: Message + prost::Name>(msg: &M) -> Result<String, LoadError> {
    Ok(to_dynamic(msg)?.to_text_format())
}

fn to_dynamic<M: Message + prost::Name>(msg: &M) -> Result<DynamicMessage, LoadError> {
    let fail = |detail: String| LoadError::Malformed {
        origin: "<memory>".into(),
        format: Format::Binary,
        message: M::NAME.into(),
        detail,
    };
    let desc = crate::descriptor_pool()
        .get_message_by_name(&M::full_name())
        .ok_or_else(|| fail(format!("no descriptor for {}", M::full_name())))?;
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .merge(msg.encode_to_vec().as_slice())
        .map_err(|e| fail(e.to_string()))?;
    Ok(dynamic)
}

fn json_detail(e: &serde_json::Error) -> String {
    format!("line {} column {}: {e}", e.line(), e.column())
}

fn text_detail(text: &str, e: &prost_reflect::text_format::ParseError) -> String {
    // The error's Display already names the problem; add a line/column from its span.
    let msg = e.to_string();
    match text_error_offset(e) {
        Some(off) => {
            let off = off.min(text.len());
            let before = &text.as_bytes()[..off];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let col = off
                - before
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1)
                + 1;
            format!("line {line} column {col}: {msg}")
        }
        None => msg,
    }
}

fn text_error_offset(e: &prost_reflect::text_format::ParseError) -> Option<usize> {
    // Without prost-reflect's `miette` feature the span is private; its Debug
    // form carries it as `span: START..END`.
    let dbg = format!("{e:?}");
    let at = dbg.find("span: ")? + "span: ".len();
    let digits: String = dbg[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Describe where binary input breaks: the first byte offset at which the
/// top-level wire structure is invalid, plus prost's field path.
fn binary_detail(bytes: &[u8], e: &prost::DecodeError) -> String {
    let cause = e.to_string();
    let cause = cause
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&cause)
        .to_string();
    match first_wire_error(bytes, 0, 0) {
        Some((off, what)) => format!("byte {off}: {what} (decoder: {cause})"),
        None => cause,
    }
}

/// Walk the wire format (recursing into length-delimited fields that parse
/// as messages) and return the first offset where it is malformed.
fn first_wire_error(bytes: &[u8], base: usize, depth: usize) -> Option<(usize, String)> {
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let (key, n) = match varint(&bytes[i..]) {
            Some(v) => v,
            None => return Some((base + start, "truncated field key".into())),
        };
        i += n;
        let field = key >> 3;
        if field == 0 {
            return Some((base + start, "field number 0 is invalid".into()));
        }
        match key & 7 {
            0 => match varint(&bytes[i..]) {
                Some((_, n)) => i += n,
                None => return Some((base + i, format!("field {field}: truncated varint"))),
            },
            1 | 5 => {
                let w = if key & 7 == 1 { 8 } else { 4 };
                if bytes.len() - i < w {
                    return Some((
                        base + i,
                        format!("field {field}: needs {w} bytes, {} remain", bytes.len() - i),
                    ));
                }
                i += w;
            }
            2 => {
                let (len, n) = match varint(&bytes[i..]) {
                    Some(v) => v,
                    None => return Some((base + i, format!("field {field}: truncated length"))),
                };
                i += n;
                let remain = bytes.len() - i;
                if len > remain as u64 {
                    return Some((
                        base + start,
                        format!("field {field} claims {len} bytes but only {remain} remain (truncated file?)"),
                    ));
                }
                let body = &bytes[i..i + len as usize];
                // Only descend where the body looks like a message; strings and
                // bytes fields are opaque and may legitimately fail the walk.
                if depth < 32 && first_wire_error(body, 0, depth + 1).is_none() {
                    // valid nested message or opaque bytes that happen to parse
                } else if depth < 32 && looks_like_message(body) {
                    if let Some((off, what)) = first_wire_error(body, base + i, depth + 1) {
                        return Some((off, format!("inside field {field}: {what}")));
                    }
                }
                i += len as usize;
            }
            3 | 4 => {} // deprecated groups: markers only
            t => {
                return Some((
                    base + start,
                    format!("field {field}: invalid wire type {t}"),
                ))
            }
        }
    }
    None
}

/// Heuristic: the first key of a message body has a valid wire type and a
/// small field number.
fn looks_like_message(body: &[u8]) -> bool {
    match varint(body) {
        Some((key, _)) => matches!(key & 7, 0 | 1 | 2 | 5) && (1..=64).contains(&(key >> 3)),
        None => false,
    }
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}
