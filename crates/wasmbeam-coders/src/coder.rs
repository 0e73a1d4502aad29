//! [`Coder`]: the coder tree, and encoding, decoding and skipping with it.

use std::sync::Arc;

use wasmbeam_proto::urns::standard_coders::enum_ as urn;

use crate::error::CodecError;
use crate::pane::PaneInfo;
use crate::reader::Reader;
use crate::row::{self, Schema};
use crate::time::{decode_timestamp, encode_timestamp};
use crate::value::{IntervalWindow, Timer, TimerFiring, Value, WindowedValue};
use crate::varint;

/// Deepest nesting of coders (and of row field types) that encoding,
/// decoding and [`crate::coder_from_proto`] accept. Bounds recursion, so
/// hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 100;

/// Most zero-byte elements (for example global windows in an iterable or a
/// windowed value's window list) one decoded or skipped value may contain,
/// summed over all its iterables. Counts of such elements are not bounded
/// by the input length, so they are capped here to bound memory and time.
pub const MAX_ZERO_SIZE_ELEMENTS: u64 = 1 << 20;

/// Most constant windows a `param_windowed_value` payload may list: every
/// decoded value gets its own copy of them.
pub const MAX_PARAM_WINDOWS: usize = 1024;

/// Where a value sits in the byte stream, which decides whether its
/// encoding must be self-delimiting.
///
/// `Nested`: other data may follow, so variable-length values (bytes,
/// strings, opaque values) carry a varint length prefix. `Outer`: the value
/// is the last thing in the buffer (Beam's "unnested" context), so such
/// values extend to the end of the buffer. Components that are followed by
/// other data (a KV's key, iterable elements, row fields, ...) are always
/// nested; the last component (a KV's value, a windowed value's value, a
/// nullable's value, ...) inherits the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Followed by other data: self-delimiting encoding.
    Nested,
    /// Last in the buffer: may extend to its end.
    Outer,
}

/// A Beam coder, as a tree of standard coders with opaque leaves.
///
/// Build one from pipeline protos with [`crate::coder_from_proto`] or
/// directly. See [`Value`] for the value each coder produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Coder {
    /// `beam:coder:bytes:v1`: raw bytes, length-prefixed when nested.
    Bytes,
    /// `beam:coder:string_utf8:v1`: UTF-8 text, length-prefixed when nested.
    StringUtf8,
    /// `beam:coder:bool:v1`: one byte, 0 or 1.
    Bool,
    /// `beam:coder:varint:v1`: a signed 64-bit varint.
    VarInt,
    /// `beam:coder:double:v1`: big-endian IEEE-754 double.
    Double,
    /// `beam:coder:kv:v1`: key (nested) then value (in the KV's context).
    Kv(Box<Coder>, Box<Coder>),
    /// `beam:coder:iterable:v1`: big-endian `i32` count then the elements,
    /// or count -1 followed by varint-counted blocks ending with a 0 count.
    Iterable(Box<Coder>),
    /// `beam:coder:timer:v1`: key, dynamic tag, windows, clear bit and, when
    /// not cleared, fire timestamp, hold timestamp and pane.
    Timer {
        /// The user key coder.
        key: Box<Coder>,
        /// The window coder.
        window: Box<Coder>,
    },
    /// `beam:coder:interval_window:v1`: end timestamp then span varint.
    IntervalWindow,
    /// `beam:coder:length_prefix:v1`: varint length, then the component
    /// encoded in the outer context.
    LengthPrefix(Box<Coder>),
    /// `beam:coder:global_window:v1`: zero bytes.
    GlobalWindow,
    /// `beam:coder:windowed_value:v1`: timestamp, windows, pane, value.
    WindowedValue {
        /// The element coder.
        value: Box<Coder>,
        /// The window coder.
        window: Box<Coder>,
    },
    /// `beam:coder:param_windowed_value:v1`: only the value is encoded; the
    /// timestamp, windows and pane are constants from the coder's payload.
    /// Decoding yields a [`Value::WindowedValue`] carrying those constants;
    /// encoding takes a [`Value::WindowedValue`] and ignores everything in
    /// it but the value.
    ParamWindowedValue {
        /// The element coder.
        value: Box<Coder>,
        /// The window coder.
        window: Box<Coder>,
        /// The constant timestamp, milliseconds.
        timestamp: i64,
        /// The constant windows.
        windows: Vec<Value>,
        /// The constant pane.
        pane: PaneInfo,
    },
    /// `beam:coder:state_backed_iterable:v1`: like [`Coder::Iterable`], but
    /// an unknown-length encoding may end with a state token.
    StateBackedIterable(Box<Coder>),
    /// `beam:coder:custom_window:v1`: the window's max timestamp, then the
    /// window encoded with the component coder (nested).
    CustomWindow(Box<Coder>),
    /// `beam:coder:row:v1`: a row of the given schema.
    Row(Arc<Schema>),
    /// `beam:coder:sharded_key:v1`: shard id bytes then the key (both nested).
    ShardedKey(Box<Coder>),
    /// `beam:coder:nullable:v1`: byte 0 for null, or byte 1 then the value
    /// (in the nullable's context).
    Nullable(Box<Coder>),
    /// A coder this crate does not know. Its values are raw
    /// [`Value::Bytes`]: length-prefixed when nested (so encoded keys stay
    /// comparable byte-wise), the rest of the buffer when outer.
    Opaque {
        /// The coder's URN.
        urn: String,
    },
}

/// Every coder URN this crate implements (everything else is opaque).
pub const STANDARD_CODER_URNS: &[&str] = &[
    urn::BYTES,
    urn::STRING_UTF8,
    urn::KV,
    urn::BOOL,
    urn::VARINT,
    urn::DOUBLE,
    urn::ITERABLE,
    urn::TIMER,
    urn::INTERVAL_WINDOW,
    urn::LENGTH_PREFIX,
    urn::GLOBAL_WINDOW,
    urn::WINDOWED_VALUE,
    urn::PARAM_WINDOWED_VALUE,
    urn::STATE_BACKED_ITERABLE,
    urn::CUSTOM_WINDOW,
    urn::ROW,
    urn::SHARDED_KEY,
    urn::NULLABLE,
];

fn too_deep(offset: usize, direction_encode: bool) -> CodecError {
    let msg = format!("coder tree is nested more than {MAX_DEPTH} levels deep");
    if direction_encode {
        CodecError::encode(offset, msg)
    } else {
        CodecError::decode(offset, msg)
    }
}

impl Coder {
    /// The coder's URN (`beam:coder:...:v1`, or the opaque coder's own URN).
    pub fn urn(&self) -> &str {
        match self {
            Coder::Bytes => urn::BYTES,
            Coder::StringUtf8 => urn::STRING_UTF8,
            Coder::Bool => urn::BOOL,
            Coder::VarInt => urn::VARINT,
            Coder::Double => urn::DOUBLE,
            Coder::Kv(..) => urn::KV,
            Coder::Iterable(_) => urn::ITERABLE,
            Coder::Timer { .. } => urn::TIMER,
            Coder::IntervalWindow => urn::INTERVAL_WINDOW,
            Coder::LengthPrefix(_) => urn::LENGTH_PREFIX,
            Coder::GlobalWindow => urn::GLOBAL_WINDOW,
            Coder::WindowedValue { .. } => urn::WINDOWED_VALUE,
            Coder::ParamWindowedValue { .. } => urn::PARAM_WINDOWED_VALUE,
            Coder::StateBackedIterable(_) => urn::STATE_BACKED_ITERABLE,
            Coder::CustomWindow(_) => urn::CUSTOM_WINDOW,
            Coder::Row(_) => urn::ROW,
            Coder::ShardedKey(_) => urn::SHARDED_KEY,
            Coder::Nullable(_) => urn::NULLABLE,
            Coder::Opaque { urn } => urn,
        }
    }

    /// A short name for messages: the URN without `beam:coder:` and `:v1`.
    pub fn name(&self) -> &str {
        let u = self.urn();
        match self {
            Coder::Opaque { .. } => u,
            _ => u
                .strip_prefix("beam:coder:")
                .and_then(|s| s.strip_suffix(":v1"))
                .unwrap_or(u),
        }
    }

    /// The component coders, in proto order (empty for leaves and rows).
    pub fn components(&self) -> Vec<&Coder> {
        match self {
            Coder::Kv(k, v) => vec![k, v],
            Coder::Timer { key, window } => vec![key, window],
            Coder::WindowedValue { value, window }
            | Coder::ParamWindowedValue { value, window, .. } => vec![value, window],
            Coder::Iterable(c)
            | Coder::LengthPrefix(c)
            | Coder::StateBackedIterable(c)
            | Coder::CustomWindow(c)
            | Coder::ShardedKey(c)
            | Coder::Nullable(c) => vec![c],
            _ => Vec::new(),
        }
    }

    /// A lower bound on the length of any nested encoding of this coder.
    /// Used to reject element counts the remaining input cannot hold.
    pub fn min_encoded_len(&self) -> usize {
        self.min_len(0)
    }

    fn min_len(&self, depth: usize) -> usize {
        if depth > MAX_DEPTH {
            return 0;
        }
        let d = depth + 1;
        match self {
            Coder::Bytes | Coder::StringUtf8 | Coder::Bool | Coder::VarInt => 1,
            Coder::Double => 8,
            Coder::Kv(k, v) => k.min_len(d).saturating_add(v.min_len(d)),
            Coder::Iterable(_) | Coder::StateBackedIterable(_) => 4,
            Coder::Timer { key, .. } => key.min_len(d).saturating_add(6),
            Coder::IntervalWindow => 9,
            Coder::LengthPrefix(_) => 1,
            Coder::GlobalWindow => 0,
            Coder::WindowedValue { value, .. } => value.min_len(d).saturating_add(13),
            Coder::ParamWindowedValue { value, .. } => value.min_len(d),
            Coder::CustomWindow(w) => w.min_len(d).saturating_add(8),
            Coder::Row(_) => 2,
            Coder::ShardedKey(k) => k.min_len(d).saturating_add(1),
            Coder::Nullable(_) => 1,
            Coder::Opaque { .. } => 1,
        }
    }

    /// Encodes `v` in context `ctx`, appending to `out`.
    ///
    /// On error `out` may hold a partial encoding; truncate it to its old
    /// length if you keep using it.
    pub fn encode(&self, v: &Value, ctx: Context, out: &mut Vec<u8>) -> Result<(), CodecError> {
        self.enc(v, ctx, out, 0)
    }

    /// Encodes `v` in context `ctx` into a new vector.
    pub fn encode_to_vec(&self, v: &Value, ctx: Context) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        self.encode(v, ctx, &mut out)?;
        Ok(out)
    }

    /// Decodes one value that must occupy all of `buf`.
    pub fn decode(&self, buf: &[u8], ctx: Context) -> Result<Value, CodecError> {
        let mut r = Reader::new(buf);
        let v = self.decode_from(&mut r, ctx)?;
        if !r.is_empty() {
            return Err(r.error(format!(
                "{} trailing byte(s) after the {} value",
                r.remaining(),
                self.name()
            )));
        }
        Ok(v)
    }

    /// Decodes one value from the reader, leaving it just past the value. In
    /// the outer context the value may consume all remaining bytes.
    pub fn decode_from(&self, r: &mut Reader<'_>, ctx: Context) -> Result<Value, CodecError> {
        r.zero_budget = MAX_ZERO_SIZE_ELEMENTS;
        self.dec(r, ctx, 0)
    }

    /// Advances the reader past one encoded value without building it.
    ///
    /// Checks structure (lengths, counts, flags that decide what follows)
    /// but not contents such as UTF-8 validity, so it can succeed where
    /// [`Coder::decode_from`] would fail; where decoding succeeds, skipping
    /// stops at the same offset.
    pub fn skip(&self, r: &mut Reader<'_>, ctx: Context) -> Result<(), CodecError> {
        r.zero_budget = MAX_ZERO_SIZE_ELEMENTS;
        self.skp(r, ctx, 0)
    }

    /// Splits the encoding of a KV (this coder must be [`Coder::Kv`]) into
    /// its key bytes and value bytes without decoding them. `buf` must hold
    /// exactly one KV.
    pub fn split_kv<'a>(
        &self,
        buf: &'a [u8],
        ctx: Context,
    ) -> Result<(&'a [u8], &'a [u8]), CodecError> {
        let Coder::Kv(k, v) = self else {
            return Err(CodecError::decode(
                0,
                format!("split_kv needs a kv coder, not {}", self.name()),
            ));
        };
        let mut r = Reader::new(buf);
        k.skip(&mut r, Context::Nested)?;
        let key_end = r.position();
        v.skip(&mut r, ctx)?;
        if !r.is_empty() {
            return Err(r.error(format!(
                "{} trailing byte(s) after the kv value",
                r.remaining()
            )));
        }
        let (key, value) = buf.split_at(key_end.min(buf.len()));
        Ok((key, value))
    }

    fn mismatch(&self, v: &Value, out: &[u8]) -> CodecError {
        CodecError::encode(
            out.len(),
            format!("{} coder cannot encode a {} value", self.name(), v.kind()),
        )
    }

    pub(crate) fn enc(
        &self,
        v: &Value,
        ctx: Context,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), CodecError> {
        if depth > MAX_DEPTH {
            return Err(too_deep(out.len(), true));
        }
        let d = depth + 1;
        match (self, v) {
            (Coder::Bytes, Value::Bytes(b)) | (Coder::Opaque { .. }, Value::Bytes(b)) => {
                write_bytes(b, ctx, out);
                Ok(())
            }
            (Coder::StringUtf8, Value::String(s)) => {
                write_bytes(s.as_bytes(), ctx, out);
                Ok(())
            }
            (Coder::Bool, Value::Bool(b)) => {
                out.push(u8::from(*b));
                Ok(())
            }
            (Coder::VarInt, Value::Int64(i)) => {
                varint::encode_i64(*i, out);
                Ok(())
            }
            (Coder::Double, Value::Double(f)) => {
                out.extend_from_slice(&f.to_bits().to_be_bytes());
                Ok(())
            }
            (Coder::Kv(kc, vc), Value::Kv(k, val)) => {
                kc.enc(k, Context::Nested, out, d)?;
                vc.enc(val, ctx, out, d)
            }
            (Coder::Iterable(e), Value::Iterable(items))
            | (Coder::StateBackedIterable(e), Value::Iterable(items)) => {
                write_count(items.len(), "iterable", out)?;
                for item in items {
                    e.enc(item, Context::Nested, out, d)?;
                }
                Ok(())
            }
            (
                Coder::StateBackedIterable(e),
                Value::StateBackedIterable {
                    elements,
                    state_token,
                },
            ) => {
                out.extend_from_slice(&(-1i32).to_be_bytes());
                if !elements.is_empty() {
                    varint::encode_u64(elements.len() as u64, out);
                    for item in elements {
                        e.enc(item, Context::Nested, out, d)?;
                    }
                }
                varint::encode_i64(-1, out);
                write_bytes(state_token, Context::Nested, out);
                Ok(())
            }
            (Coder::Timer { key, window }, Value::Timer(t)) => {
                key.enc(&t.user_key, Context::Nested, out, d)?;
                write_bytes(t.dynamic_timer_tag.as_bytes(), Context::Nested, out);
                write_windows(window, &t.windows, out, d)?;
                match &t.firing {
                    None => out.push(1),
                    Some(f) => {
                        out.push(0);
                        encode_timestamp(f.fire_timestamp, out);
                        encode_timestamp(f.hold_timestamp, out);
                        f.pane.encode(out);
                    }
                }
                Ok(())
            }
            (Coder::IntervalWindow, Value::IntervalWindow(w)) => {
                encode_interval_window(w, out);
                Ok(())
            }
            (Coder::LengthPrefix(inner), _) => {
                let start = out.len();
                inner.enc(v, Context::Outer, out, d)?;
                let len = out.len() - start;
                let mut prefix = Vec::with_capacity(varint::MAX_VARINT_LEN);
                varint::encode_u64(len as u64, &mut prefix);
                out.splice(start..start, prefix);
                Ok(())
            }
            (Coder::GlobalWindow, Value::GlobalWindow) => Ok(()),
            (Coder::WindowedValue { value, window }, Value::WindowedValue(wv)) => {
                encode_timestamp(wv.timestamp, out);
                write_windows(window, &wv.windows, out, d)?;
                wv.pane.encode(out);
                value.enc(&wv.value, ctx, out, d)
            }
            (Coder::ParamWindowedValue { value, .. }, Value::WindowedValue(wv)) => {
                value.enc(&wv.value, ctx, out, d)
            }
            (
                Coder::CustomWindow(inner),
                Value::CustomWindow {
                    max_timestamp,
                    window,
                },
            ) => {
                encode_timestamp(*max_timestamp, out);
                inner.enc(window, Context::Nested, out, d)
            }
            (Coder::Row(schema), _) => row::encode_row(schema, v, out, d),
            (Coder::ShardedKey(kc), Value::ShardedKey { shard_id, key }) => {
                write_bytes(shard_id, Context::Nested, out);
                kc.enc(key, Context::Nested, out, d)
            }
            (Coder::Nullable(_), Value::Null) => {
                out.push(0);
                Ok(())
            }
            (Coder::Nullable(inner), _) => {
                out.push(1);
                inner.enc(v, ctx, out, d)
            }
            _ => Err(self.mismatch(v, out)),
        }
    }

    pub(crate) fn dec(
        &self,
        r: &mut Reader<'_>,
        ctx: Context,
        depth: usize,
    ) -> Result<Value, CodecError> {
        if depth > MAX_DEPTH {
            return Err(too_deep(r.offset(), false));
        }
        let d = depth + 1;
        Ok(match self {
            Coder::Bytes => Value::Bytes(read_bytes(r, ctx, "bytes data")?.to_vec()),
            Coder::Opaque { .. } => Value::Bytes(read_bytes(r, ctx, "opaque coder data")?.to_vec()),
            Coder::StringUtf8 => {
                let bytes = read_bytes(r, ctx, "string_utf8 data")?;
                Value::String(utf8(bytes, r, "string_utf8 data")?)
            }
            Coder::Bool => Value::Bool(read_bool(r, "bool")?),
            Coder::VarInt => Value::Int64(r.read_varint_i64("varint")?),
            Coder::Double => Value::Double(f64::from_bits(r.read_be_u64("double")?)),
            Coder::Kv(kc, vc) => {
                let k = kc.dec(r, Context::Nested, d)?;
                let v = vc.dec(r, ctx, d)?;
                Value::kv(k, v)
            }
            Coder::Iterable(e) | Coder::StateBackedIterable(e) => {
                let allow_state = matches!(self, Coder::StateBackedIterable(_));
                let mut items = Vec::new();
                let token = walk_iterable(r, "iterable", e.min_len(d), allow_state, |r| {
                    items.push(e.dec(r, Context::Nested, d)?);
                    Ok(())
                })?;
                match token {
                    None => Value::Iterable(items),
                    Some(t) => Value::StateBackedIterable {
                        elements: items,
                        state_token: t.to_vec(),
                    },
                }
            }
            Coder::Timer { key, window } => {
                let user_key = key.dec(r, Context::Nested, d)?;
                let tag = r.read_length_prefixed("timer tag")?;
                let dynamic_timer_tag = utf8(tag, r, "timer tag")?;
                let windows = read_windows(window, r, d)?;
                let firing = if read_bool(r, "timer clear bit")? {
                    None
                } else {
                    Some(TimerFiring {
                        fire_timestamp: decode_timestamp(r)?,
                        hold_timestamp: decode_timestamp(r)?,
                        pane: PaneInfo::decode(r)?,
                    })
                };
                Value::Timer(Box::new(Timer {
                    user_key,
                    dynamic_timer_tag,
                    windows,
                    firing,
                }))
            }
            Coder::IntervalWindow => Value::IntervalWindow(decode_interval_window(r)?),
            Coder::LengthPrefix(inner) => {
                let mut sub = r.sub_reader("length_prefix data")?;
                let v = inner.dec(&mut sub, Context::Outer, d);
                r.zero_budget = sub.zero_budget;
                let v = v?;
                if !sub.is_empty() {
                    return Err(sub.error(format!(
                        "{} byte(s) left inside length_prefix after the {} value",
                        sub.remaining(),
                        inner.name()
                    )));
                }
                v
            }
            Coder::GlobalWindow => Value::GlobalWindow,
            Coder::WindowedValue { value, window } => {
                let timestamp = decode_timestamp(r)?;
                let windows = read_windows(window, r, d)?;
                let pane = PaneInfo::decode(r)?;
                let value = value.dec(r, ctx, d)?;
                Value::WindowedValue(Box::new(WindowedValue {
                    value,
                    timestamp,
                    windows,
                    pane,
                }))
            }
            Coder::ParamWindowedValue {
                value,
                timestamp,
                windows,
                pane,
                ..
            } => {
                let value = value.dec(r, ctx, d)?;
                Value::WindowedValue(Box::new(WindowedValue {
                    value,
                    timestamp: *timestamp,
                    windows: windows.clone(),
                    pane: *pane,
                }))
            }
            Coder::CustomWindow(inner) => {
                let max_timestamp = decode_timestamp(r)?;
                let window = inner.dec(r, Context::Nested, d)?;
                Value::CustomWindow {
                    max_timestamp,
                    window: Box::new(window),
                }
            }
            Coder::Row(schema) => row::decode_row(schema, r, d)?,
            Coder::ShardedKey(kc) => {
                let shard_id = r.read_length_prefixed("sharded_key shard id")?.to_vec();
                let key = kc.dec(r, Context::Nested, d)?;
                Value::ShardedKey {
                    shard_id,
                    key: Box::new(key),
                }
            }
            Coder::Nullable(inner) => {
                if read_presence(r, "nullable")? {
                    inner.dec(r, ctx, d)?
                } else {
                    Value::Null
                }
            }
        })
    }

    pub(crate) fn skp(
        &self,
        r: &mut Reader<'_>,
        ctx: Context,
        depth: usize,
    ) -> Result<(), CodecError> {
        if depth > MAX_DEPTH {
            return Err(too_deep(r.offset(), false));
        }
        let d = depth + 1;
        match self {
            Coder::Bytes | Coder::StringUtf8 | Coder::Opaque { .. } => {
                read_bytes(r, ctx, "data")?;
            }
            Coder::Bool => {
                r.read_u8("bool")?;
            }
            Coder::VarInt => {
                r.read_varint_u64("varint")?;
            }
            Coder::Double => r.skip_bytes(8, "double")?,
            Coder::Kv(kc, vc) => {
                kc.skp(r, Context::Nested, d)?;
                vc.skp(r, ctx, d)?;
            }
            Coder::Iterable(e) | Coder::StateBackedIterable(e) => {
                let allow_state = matches!(self, Coder::StateBackedIterable(_));
                walk_iterable(r, "iterable", e.min_len(d), allow_state, |r| {
                    e.skp(r, Context::Nested, d)
                })?;
            }
            Coder::Timer { key, window } => {
                key.skp(r, Context::Nested, d)?;
                r.read_length_prefixed("timer tag")?;
                walk_iterable(r, "timer windows", window.min_len(d), false, |r| {
                    window.skp(r, Context::Nested, d)
                })?;
                if !read_bool(r, "timer clear bit")? {
                    r.skip_bytes(16, "timer timestamps")?;
                    PaneInfo::decode(r)?;
                }
            }
            Coder::IntervalWindow => {
                r.skip_bytes(8, "interval window end")?;
                r.read_varint_u64("interval window span")?;
            }
            Coder::LengthPrefix(_) => {
                r.read_length_prefixed("length_prefix data")?;
            }
            Coder::GlobalWindow => {}
            Coder::WindowedValue { value, window } => {
                r.skip_bytes(8, "timestamp")?;
                walk_iterable(r, "windows", window.min_len(d), false, |r| {
                    window.skp(r, Context::Nested, d)
                })?;
                PaneInfo::decode(r)?;
                value.skp(r, ctx, d)?;
            }
            Coder::ParamWindowedValue { value, .. } => value.skp(r, ctx, d)?,
            Coder::CustomWindow(inner) => {
                r.skip_bytes(8, "custom window max timestamp")?;
                inner.skp(r, Context::Nested, d)?;
            }
            Coder::Row(schema) => row::skip_row(schema, r, d)?,
            Coder::ShardedKey(kc) => {
                r.read_length_prefixed("sharded_key shard id")?;
                kc.skp(r, Context::Nested, d)?;
            }
            Coder::Nullable(inner) => {
                if read_presence(r, "nullable")? {
                    inner.skp(r, ctx, d)?;
                }
            }
        }
        Ok(())
    }
}

/// Appends bytes: length-prefixed when nested, raw when outer.
#[inline]
pub(crate) fn write_bytes(b: &[u8], ctx: Context, out: &mut Vec<u8>) {
    if ctx == Context::Nested {
        varint::encode_u64(b.len() as u64, out);
    }
    out.extend_from_slice(b);
}

/// Reads bytes: length-prefixed when nested, the rest when outer.
#[inline]
pub(crate) fn read_bytes<'a>(
    r: &mut Reader<'a>,
    ctx: Context,
    what: &str,
) -> Result<&'a [u8], CodecError> {
    match ctx {
        Context::Nested => r.read_length_prefixed(what),
        Context::Outer => Ok(r.take_rest()),
    }
}

/// Converts bytes just read from `r` (so they end at its current offset)
/// to a string; an error points at the first invalid byte.
pub(crate) fn utf8(bytes: &[u8], r: &Reader<'_>, what: &str) -> Result<String, CodecError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => {
            let start = r.offset().saturating_sub(bytes.len());
            Err(CodecError::decode(
                start.saturating_add(e.valid_up_to()),
                format!("invalid UTF-8 in {what}"),
            ))
        }
    }
}

pub(crate) fn read_bool(r: &mut Reader<'_>, what: &str) -> Result<bool, CodecError> {
    let at = r.offset();
    match r.read_u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(CodecError::decode(
            at,
            format!("expected {what} byte 0 or 1, found {b}"),
        )),
    }
}

/// Reads a nullable marker: false for 0 (null), true for 1 (value follows).
pub(crate) fn read_presence(r: &mut Reader<'_>, what: &str) -> Result<bool, CodecError> {
    let at = r.offset();
    match r.read_u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        b => Err(CodecError::decode(
            at,
            format!("expected {what} marker 0 (null) or 1 (present), found {b}"),
        )),
    }
}

/// Writes a big-endian `i32` element count.
pub(crate) fn write_count(n: usize, what: &str, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let n = i32::try_from(n).map_err(|_| {
        CodecError::encode(
            out.len(),
            format!("{what} has {n} elements, more than i32::MAX"),
        )
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn check_count(
    r: &mut Reader<'_>,
    at: usize,
    what: &str,
    count: u64,
    min_len: usize,
) -> Result<(), CodecError> {
    if min_len == 0 {
        if count > r.zero_budget {
            return Err(CodecError::decode(
                at,
                format!(
                    "{what} declares {count} elements with a zero-byte encoding, more than the {} left of the limit of {MAX_ZERO_SIZE_ELEMENTS} per value",
                    r.zero_budget
                ),
            ));
        }
        r.zero_budget -= count;
    } else if count.saturating_mul(min_len as u64) > r.remaining() as u64 {
        return Err(CodecError::decode(
            at,
            format!(
                "{what} declares {count} elements of at least {min_len} byte(s) each, but only {} bytes remain",
                r.remaining()
            ),
        ));
    }
    Ok(())
}

/// Walks Beam's iterable encoding, calling `elem` once per element: a
/// big-endian `i32` count and the elements, or -1 and then blocks of
/// (varint count, elements) ending with a 0 count or, when `allow_state`,
/// a -1 count followed by a length-prefixed state token (returned).
pub(crate) fn walk_iterable<'a>(
    r: &mut Reader<'a>,
    what: &str,
    min_elem_len: usize,
    allow_state: bool,
    mut elem: impl FnMut(&mut Reader<'a>) -> Result<(), CodecError>,
) -> Result<Option<&'a [u8]>, CodecError> {
    let start = r.offset();
    let len = r.read_be_u32(what)? as i32;
    if len >= 0 {
        let n = len as u64;
        check_count(r, start, what, n, min_elem_len)?;
        for _ in 0..n {
            elem(r)?;
        }
        return Ok(None);
    }
    if len != -1 {
        return Err(CodecError::decode(
            start,
            format!("{what} length {len} is negative (only -1, unknown length, is allowed)"),
        ));
    }
    loop {
        let at = r.offset();
        let count = r.read_varint_i64(what)?;
        match count {
            0 => return Ok(None),
            -1 if allow_state => return Ok(Some(r.read_length_prefixed("state token")?)),
            -1 => {
                return Err(CodecError::decode(
                    at,
                    format!(
                        "{what} ends with a state token (block count -1), which only {} allows",
                        urn::STATE_BACKED_ITERABLE
                    ),
                ))
            }
            c if c < 0 => {
                return Err(CodecError::decode(
                    at,
                    format!("{what} block count {c} is negative"),
                ))
            }
            c => {
                let c = c as u64;
                check_count(r, at, what, c, min_elem_len)?;
                for _ in 0..c {
                    elem(r)?;
                }
            }
        }
    }
}

fn write_windows(
    window: &Coder,
    windows: &[Value],
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    write_count(windows.len(), "windows", out)?;
    for w in windows {
        window.enc(w, Context::Nested, out, depth)?;
    }
    Ok(())
}

fn read_windows(
    window: &Coder,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Vec<Value>, CodecError> {
    let mut windows = Vec::new();
    walk_iterable(r, "windows", window.min_len(depth), false, |r| {
        windows.push(window.dec(r, Context::Nested, depth)?);
        Ok(())
    })?;
    Ok(windows)
}

/// Appends an interval window: end timestamp, then `end - start` as a varint.
pub fn encode_interval_window(w: &IntervalWindow, out: &mut Vec<u8>) {
    encode_timestamp(w.end, out);
    varint::encode_i64(w.end.wrapping_sub(w.start), out);
}

/// Reads an interval window.
pub fn decode_interval_window(r: &mut Reader<'_>) -> Result<IntervalWindow, CodecError> {
    let end = decode_timestamp(r)?;
    let span = r.read_varint_i64("interval window span")?;
    Ok(IntervalWindow {
        start: end.wrapping_sub(span),
        end,
    })
}

/// Parses a `param_windowed_value` payload: a windowed value (timestamp,
/// windows of `window` coder, pane) whose value part is ignored. Returns the
/// timestamp, windows and pane.
pub fn parse_param_windowed_value_payload(
    payload: &[u8],
    window: &Coder,
) -> Result<(i64, Vec<Value>, PaneInfo), CodecError> {
    let mut r = Reader::new(payload);
    let timestamp = decode_timestamp(&mut r)?;
    let at = r.offset();
    let windows = read_windows(window, &mut r, 1)?;
    if windows.len() > MAX_PARAM_WINDOWS {
        return Err(CodecError::decode(
            at,
            format!(
                "{} windows, more than the limit of {MAX_PARAM_WINDOWS} (every decoded value gets a copy)",
                windows.len()
            ),
        ));
    }
    let pane = PaneInfo::decode(&mut r)?;
    // The rest is the encoding of an empty value; SDKs ignore it.
    Ok((timestamp, windows, pane))
}

/// Builds a `param_windowed_value` payload the way the Java SDK does: a
/// windowed value of an empty byte array (encoded nested, so it ends with a
/// zero byte).
pub fn param_windowed_value_payload(
    timestamp: i64,
    windows: &[Value],
    pane: &PaneInfo,
    window: &Coder,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_timestamp(timestamp, &mut out);
    write_windows(window, windows, &mut out, 1)?;
    pane.encode(&mut out);
    out.push(0);
    Ok(out)
}
