//! # wasmbeam-bundle
//!
//! The one shape of a bundle in wasmbeam, shared by the engine, the WASM
//! host and the runner, so a bundle moves between them without a copy:
//!
//! * [`Values`]: encoded values back to back in one buffer, with `n + 1`
//!   offsets (the UDF contract's `values` record).
//! * [`Batch`]: a bundle of windowed elements as columns: values, event
//!   timestamps, windows (per-element ranges into two flat columns) and
//!   pane bytes (the contract's `input-batch`).
//! * [`Window`] and Beam's time bounds in milliseconds ([`MIN_TIMESTAMP`],
//!   [`MAX_TIMESTAMP`], [`GLOBAL_WINDOW_MAX_TIMESTAMP`]).
//! * Pane bytes ([`PANE_ON_TIME_ONLY`], [`PANE_NO_FIRING`]) and the markers
//!   a UDF's output uses ([`NO_SOURCE`], [`INHERIT_TIMESTAMP`]).
//! * [`CONTRACT_VERSION`], the version of `wit/udf.wit` that hosts accept and
//!   builders produce.
//!
//! This crate is a leaf: it depends on nothing, and it knows no protos,
//! coders or WebAssembly.

#![deny(missing_docs)]

mod batch;
mod values;

pub use batch::{default_pane_indexes, Batch, ElementRef};
pub use values::Values;

/// The version of the UDF contract (`wasmbeam:udf@VERSION` in
/// `wit/udf.wit`) that this build of wasmbeam speaks.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// Beam's minimum timestamp, in milliseconds.
pub const MIN_TIMESTAMP: i64 = -9_223_372_036_854_775;
/// Beam's maximum timestamp, in milliseconds.
pub const MAX_TIMESTAMP: i64 = 9_223_372_036_854_775;
/// The last timestamp inside the global window (its end minus one), in
/// milliseconds.
pub const GLOBAL_WINDOW_MAX_TIMESTAMP: i64 = 9_223_371_950_454_775;
/// The (exclusive) end of the global window, in milliseconds.
pub const GLOBAL_WINDOW_END: i64 = GLOBAL_WINDOW_MAX_TIMESTAMP + 1;

/// Pane byte of the only, on-time pane of batch processing: bits are
/// first (1), last (2) and the timing in bits 2-3 (0 early, 1 on time,
/// 2 late, 3 unknown); on time, first and last.
pub const PANE_ON_TIME_ONLY: u8 = 0b0111;
/// Pane byte of an element no trigger produced (first, last, timing
/// unknown): Beam's `NO_FIRING`.
pub const PANE_NO_FIRING: u8 = 0b1111;

/// An output's source index when it has no input element (it was emitted
/// in `finish_bundle`, say): it goes to the global window.
pub const NO_SOURCE: u32 = u32::MAX;
/// An output's timestamp meaning "its source element's timestamp".
pub const INHERIT_TIMESTAMP: i64 = i64::MIN;

/// A window `[start, end)` in milliseconds. The global window is
/// `[MIN_TIMESTAMP, GLOBAL_WINDOW_END)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl Window {
    /// The global window.
    pub const GLOBAL: Window = Window {
        start: MIN_TIMESTAMP,
        end: GLOBAL_WINDOW_END,
    };

    /// The last timestamp inside the window.
    #[inline]
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }
    /// True for the global window.
    #[inline]
    pub fn is_global(&self) -> bool {
        *self == Window::GLOBAL
    }
}
