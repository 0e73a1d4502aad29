//! [`Value`]: the decoded form of anything a [`crate::Coder`] encodes.

use crate::pane::PaneInfo;
use crate::time::GLOBAL_WINDOW_MAX_TIMESTAMP;

/// An interval window `[start, end)` in event-time milliseconds.
///
/// Beam encodes it as the end timestamp followed by the span `end - start`
/// as a varint. Decoding computes `start = end - span` with wrapping `i64`
/// arithmetic, so every decodable window re-encodes to the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntervalWindow {
    /// Inclusive start, milliseconds.
    pub start: i64,
    /// Exclusive end, milliseconds.
    pub end: i64,
}

impl IntervalWindow {
    /// The window's largest included timestamp, `end - 1`.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }
}

/// A value with its event time, windows and pane
/// (`beam:coder:windowed_value:v1` and `beam:coder:param_windowed_value:v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedValue {
    /// The element.
    pub value: Value,
    /// Event time, milliseconds since the epoch.
    pub timestamp: i64,
    /// The windows the element is in, decoded with the window coder.
    pub windows: Vec<Value>,
    /// The pane that produced the element.
    pub pane: PaneInfo,
}

/// A user timer (`beam:coder:timer:v1`).
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    /// The key the timer belongs to, decoded with the key coder.
    pub user_key: Value,
    /// The dynamic timer tag (empty for static timers).
    pub dynamic_timer_tag: String,
    /// The windows the timer is set in, decoded with the window coder.
    pub windows: Vec<Value>,
    /// When the timer fires; `None` means the clear bit is set (the timer is
    /// being cleared and no timestamps or pane are encoded).
    pub firing: Option<TimerFiring>,
}

/// The firing part of a [`Timer`] that is set rather than cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerFiring {
    /// When the timer fires, milliseconds.
    pub fire_timestamp: i64,
    /// The output watermark hold, milliseconds.
    pub hold_timestamp: i64,
    /// The pane of the firing.
    pub pane: PaneInfo,
}

/// A decoded value.
///
/// Which variant a coder produces (and accepts when encoding):
///
/// | coder | variant |
/// |---|---|
/// | `bytes`, unknown (opaque) coders | [`Value::Bytes`] |
/// | `string_utf8` | [`Value::String`] |
/// | `bool` | [`Value::Bool`] |
/// | `varint` | [`Value::Int64`] |
/// | `double` | [`Value::Double`] |
/// | `kv` | [`Value::Kv`] |
/// | `iterable` | [`Value::Iterable`] |
/// | `state_backed_iterable` | [`Value::Iterable`], or [`Value::StateBackedIterable`] when the encoding ends in a state token |
/// | `timer` | [`Value::Timer`] |
/// | `global_window` | [`Value::GlobalWindow`] |
/// | `interval_window` | [`Value::IntervalWindow`] |
/// | `custom_window` | [`Value::CustomWindow`] |
/// | `windowed_value`, `param_windowed_value` | [`Value::WindowedValue`] |
/// | `length_prefix` | whatever its component produces |
/// | `row` | [`Value::Row`] (see [`crate::row`] for field types) |
/// | `sharded_key` | [`Value::ShardedKey`] |
/// | `nullable` | [`Value::Null`] or its component's value |
///
/// Doubles and floats compare with IEEE semantics (`NaN != NaN`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent value: a null row field or a `nullable` coder's null.
    Null,
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// UTF-8 text.
    String(String),
    /// A boolean.
    Bool(bool),
    /// Row `BYTE` field.
    Byte(i8),
    /// Row `INT16` field.
    Int16(i16),
    /// Row `INT32` field.
    Int32(i32),
    /// `varint` coder value and row `INT64` field.
    Int64(i64),
    /// Row `FLOAT` field.
    Float(f32),
    /// `double` coder value and row `DOUBLE` field.
    Double(f64),
    /// Event-time instant in milliseconds (row `millis_instant` logical type).
    Timestamp(i64),
    /// Arbitrary-precision decimal (row `decimal` logical type): the value is
    /// `unscaled * 10^-scale`, `unscaled` being a big-endian two's-complement
    /// integer (Java's `BigInteger.toByteArray`).
    Decimal {
        /// Big-endian two's-complement unscaled value.
        unscaled: Vec<u8>,
        /// Number of digits after the decimal point.
        scale: i32,
    },
    /// A key and a value.
    Kv(Box<Value>, Box<Value>),
    /// A sequence (also row `ARRAY` and `ITERABLE` fields).
    Iterable(Vec<Value>),
    /// A state-backed iterable whose encoding ends with a state token: the
    /// listed elements come first, then whatever the runner's state API
    /// returns for the token.
    StateBackedIterable {
        /// The elements encoded inline.
        elements: Vec<Value>,
        /// The token to read the remaining elements with.
        state_token: Vec<u8>,
    },
    /// Row `MAP` field: entries in encoded order.
    Map(Vec<(Value, Value)>),
    /// A row: field values in schema field order ([`Value::Null`] for nulls).
    Row(Vec<Value>),
    /// The global window.
    GlobalWindow,
    /// An interval window.
    IntervalWindow(IntervalWindow),
    /// A window of a custom window coder, prefixed with its max timestamp.
    CustomWindow {
        /// The window's largest included timestamp, milliseconds.
        max_timestamp: i64,
        /// The window, decoded with the wrapped window coder.
        window: Box<Value>,
    },
    /// A windowed value.
    WindowedValue(Box<WindowedValue>),
    /// A timer.
    Timer(Box<Timer>),
    /// A key with a shard id.
    ShardedKey {
        /// The shard id bytes.
        shard_id: Vec<u8>,
        /// The key, decoded with the key coder.
        key: Box<Value>,
    },
}

impl Value {
    /// A [`Value::Kv`].
    pub fn kv(key: Value, value: Value) -> Value {
        Value::Kv(Box::new(key), Box::new(value))
    }

    /// A [`Value::Bytes`].
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Bytes(b.into())
    }

    /// A [`Value::String`].
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// A [`Value::WindowedValue`].
    pub fn windowed(value: Value, timestamp: i64, windows: Vec<Value>, pane: PaneInfo) -> Value {
        Value::WindowedValue(Box::new(WindowedValue {
            value,
            timestamp,
            windows,
            pane,
        }))
    }

    /// A short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bytes(_) => "bytes",
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Byte(_) => "byte",
            Value::Int16(_) => "int16",
            Value::Int32(_) => "int32",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Timestamp(_) => "timestamp",
            Value::Decimal { .. } => "decimal",
            Value::Kv(..) => "kv",
            Value::Iterable(_) => "iterable",
            Value::StateBackedIterable { .. } => "state-backed iterable",
            Value::Map(_) => "map",
            Value::Row(_) => "row",
            Value::GlobalWindow => "global window",
            Value::IntervalWindow(_) => "interval window",
            Value::CustomWindow { .. } => "custom window",
            Value::WindowedValue(_) => "windowed value",
            Value::Timer(_) => "timer",
            Value::ShardedKey { .. } => "sharded key",
        }
    }

    /// The largest timestamp in this window, if the value is a window:
    /// [`GLOBAL_WINDOW_MAX_TIMESTAMP`] for the global window, `end - 1` for
    /// an interval window, the encoded prefix for a custom window.
    pub fn window_max_timestamp(&self) -> Option<i64> {
        match self {
            Value::GlobalWindow => Some(GLOBAL_WINDOW_MAX_TIMESTAMP),
            Value::IntervalWindow(w) => Some(w.max_timestamp()),
            Value::CustomWindow { max_timestamp, .. } => Some(*max_timestamp),
            _ => None,
        }
    }
}

impl From<IntervalWindow> for Value {
    fn from(w: IntervalWindow) -> Self {
        Value::IntervalWindow(w)
    }
}

impl From<WindowedValue> for Value {
    fn from(w: WindowedValue) -> Self {
        Value::WindowedValue(Box::new(w))
    }
}

impl From<Timer> for Value {
    fn from(t: Timer) -> Self {
        Value::Timer(Box::new(t))
    }
}
