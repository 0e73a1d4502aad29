//! # wasmbeam-coders
//!
//! Apache Beam's standard coders, byte-exact with Beam 2.77, for the
//! wasmbeam runner.
//!
//! ## Design
//!
//! * **Coder tree.** A [`Coder`] is a tree: each standard coder URN
//!   (`beam:coder:<name>:v1`) is a variant holding its component coders, so
//!   `KV<string, Iterable<varint>>` is
//!   `Coder::Kv(StringUtf8, Iterable(VarInt))`. [`coder_from_proto`] builds
//!   the tree from a pipeline's `Coder` protos by component id and reports
//!   missing ids, cycles, wrong component counts and bad payloads naming the
//!   coder id and URN. Row coders carry a [`row::Schema`] parsed from the
//!   payload's `Schema` proto; `param_windowed_value` coders carry their
//!   constant timestamp, windows and pane.
//! * **Values.** Decoding produces a [`Value`], one enum for everything a
//!   coder can hold (bytes, strings, integers, KVs, iterables, windows,
//!   windowed values with [`PaneInfo`], timers, rows with
//!   [`Value::Null`] fields, ...). Timestamps are event-time milliseconds as
//!   `i64`. Encoding takes the same variants back.
//! * **Contexts.** Every operation takes a [`Context`]. In the `Nested`
//!   context a value must be self-delimiting (bytes and strings carry a
//!   varint length); in the `Outer` context it is the last thing in the
//!   buffer and may run to its end. Components followed by other data are
//!   always nested; a composite's last component inherits its context,
//!   following Beam's rules for each coder.
//! * **Opaque coders.** A URN this crate does not know (for example
//!   `beam:coder:pickled_python:v1`) becomes [`Coder::Opaque`]: its values
//!   are raw bytes, length-prefixed when nested (so elements stay groupable
//!   by their encoded key bytes), the rest of the buffer when outer.
//! * **Skipping.** [`Coder::skip`] advances past an encoded value without
//!   building it; [`Coder::split_kv`] uses it to cut an encoded KV into key
//!   and value bytes, which is what the runner needs to group by key.
//! * **Errors with offsets.** Every failure is a [`CodecError`] naming the
//!   byte offset and what was expected there, e.g.
//!   `byte 17: expected 5 bytes of string_utf8 data, 2 remain`.
//! * **Never panics.** Decoding arbitrary bytes returns `Ok` or `Err`: all
//!   reads go through the bounds-checked [`Reader`], arithmetic on input
//!   values is checked or wrapping, element counts are checked against the
//!   remaining input before anything is allocated (zero-byte elements are
//!   capped at [`MAX_ZERO_SIZE_ELEMENTS`]), and recursion is capped at
//!   [`MAX_DEPTH`].
//!
//! ## Example
//!
//! ```
//! use wasmbeam_coders::{Coder, Context, Value};
//!
//! // KV<string, iterable<varint>>, as the value of a GroupByKey output.
//! let coder = Coder::Kv(
//!     Box::new(Coder::StringUtf8),
//!     Box::new(Coder::Iterable(Box::new(Coder::VarInt))),
//! );
//! let value = Value::kv(
//!     Value::string("k"),
//!     Value::Iterable(vec![Value::Int64(1), Value::Int64(300)]),
//! );
//! let bytes = coder.encode_to_vec(&value, Context::Outer).unwrap();
//! assert_eq!(bytes, b"\x01k\x00\x00\x00\x02\x01\xac\x02");
//! assert_eq!(coder.decode(&bytes, Context::Outer).unwrap(), value);
//!
//! // The runner groups by the encoded key bytes.
//! let (key, rest) = coder.split_kv(&bytes, Context::Outer).unwrap();
//! assert_eq!((key, rest.len()), (&b"\x01k"[..], 7));
//!
//! // Errors name the byte offset.
//! let err = coder.decode(&bytes[..5], Context::Outer).unwrap_err();
//! assert_eq!(err.to_string(), "byte 2: expected 4 bytes of iterable, 3 remain");
//! ```
//!
//! ## Hot-path helpers
//!
//! [`varint`] (Beam's varints), [`read_length_prefixed`], [`time`] (the
//! sign-flipped big-endian timestamp encoding and Beam's timestamp bounds,
//! e.g. [`GLOBAL_WINDOW_MAX_TIMESTAMP`]) and [`pane`] ([`PaneInfo`]
//! encoding) are public for the runner to use directly.
//!
//! Conformance: `tests/standard_coders.rs` checks every example of Beam
//! 2.77's `standard_coders.yaml` (read from the installed `apache-beam`
//! wheel) in every context it lists, decoding and re-encoding.
//!
//! Dependency rule: depends on `wasmbeam-proto` only.

#![warn(missing_docs)]

pub mod coder;
pub mod error;
pub mod pane;
pub mod proto;
pub mod reader;
pub mod row;
pub mod time;
pub mod value;
pub mod varint;

pub use coder::{
    decode_interval_window, encode_interval_window, param_windowed_value_payload,
    parse_param_windowed_value_payload, Coder, Context, MAX_DEPTH, MAX_PARAM_WINDOWS,
    MAX_ZERO_SIZE_ELEMENTS, STANDARD_CODER_URNS,
};
pub use error::{BuildError, CodecError, Direction, SchemaError};
pub use pane::{PaneInfo, Timing};
pub use proto::{coder_from_proto, MAX_TREE_NODES};
pub use reader::{read_length_prefixed, write_length_prefixed, Reader};
pub use row::{Field, FieldType, LogicalEncoding, LogicalType, Schema, TypeKind};
pub use time::{
    decode_timestamp, encode_timestamp, timestamp_from_bytes, timestamp_to_bytes,
    GLOBAL_WINDOW_MAX_TIMESTAMP, MAX_TIMESTAMP_MILLIS, MIN_TIMESTAMP_MILLIS,
};
pub use value::{IntervalWindow, Timer, TimerFiring, Value, WindowedValue};
