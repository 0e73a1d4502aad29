//! # wasmbeam-engine
//!
//! wasmbeam's execution engine, batch and streaming. It knows elements,
//! windows, triggers, watermarks, bundles,
//! shuffles and files; it does not know Beam's protos, coders or
//! WebAssembly. The runner translates a Beam pipeline into a [`graph::Graph`]
//! whose user functions and key handling arrive through the
//! [`graph::DoFnExec`], [`graph::CombineExec`] and [`graph::KvCodec`] traits.
//!
//! * [`batch`]: columnar bundles (same layout as the WASM contract's batches).
//! * [`window`]: windows and window functions (global, fixed, sliding,
//!   sessions with merging).
//! * [`exec`]: fused stages, parallel workers, dependency order, atomic
//!   commit of outputs, cancellation.
//! * [`shuffle`]: GroupByKey with hash partitions that spill to disk past a
//!   memory budget; combiner lifting (precombine before the shuffle).
//! * [`trigger`] and [`panes`]: Beam's triggers as state machines, and the
//!   per-key driver that turns elements, watermarks and processing time into
//!   panes (windows, lateness, accumulation, timestamp combiners, merging).
//! * [`stream`]: the streaming executor: operators driven by bundles and
//!   watermarks in event order, GroupByKeys that fire panes by their
//!   triggers, TestStream sources, a controllable processing-time clock.
//! * [`textio`]: reading text (globs, gzip, byte-range splits) and staged,
//!   sharded writing (`prefix-00000-of-00004`).
//!
//! Output is deterministic: bundle boundaries depend only on the input, and
//! grouped values are ordered by their origin, not by which worker ran.

#![warn(missing_docs)]

pub mod batch;
pub mod exec;
pub mod graph;
pub mod panes;
pub mod shuffle;
pub mod stream;
pub mod textio;
pub mod trigger;
pub mod window;

pub use batch::{Batch, ElementRef, PANE_NO_FIRING, PANE_ON_TIME_ONLY};
pub use exec::{run, EngineError, EngineOptions, JobResult, Progress};
pub use graph::{
    emit_batches, CombineExec, DoFnExec, Graph, KeyedDoFnExec, KeyedRun, KvCodec, OpError, OpKind,
    OpResult, PcId, StreamEvent, TextSink, Values,
};
pub use window::{Window, WindowFn};
