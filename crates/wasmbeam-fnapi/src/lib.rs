//! # wasmbeam-fnapi
//!
//! The runner side of Beam's Fn API: the gRPC services an SDK harness (a
//! Python, Go or Java worker process) connects to, and a handle to drive
//! each connected worker bundle by bundle.
//!
//! ## Design
//!
//! * [`FnApiServer::start`] binds one tonic server on a loopback port that
//!   serves `BeamFnControl`, `BeamFnData`, `BeamFnState` and
//!   `BeamFnLogging`. Harnesses are
//!   told its address as their control, data and logging endpoints.
//! * **Control.** A harness opens the `Control` stream with `worker_id`
//!   metadata; the server keeps one [`Worker`] per id. Each instruction sent
//!   gets a fresh id, and its response is matched back by that id.
//!   `GetProcessBundleDescriptor` answers from the descriptors registered
//!   with [`FnApiServer::register`].
//! * **Data.** The harness opens its `Data` stream with the same metadata.
//!   Inbound `Elements` are routed by instruction id to the bundle that
//!   waits for them; outbound input is sent in messages of about
//!   [`DATA_CHUNK_BYTES`], cut only between elements (a harness decodes
//!   each message on its own), never one element per message.
//! * **Bundles.** [`Worker::process_bundle`] sends the request and the
//!   bundle's input for each data source transform (with `is_last`), then
//!   waits for both the instruction's response and `is_last` on every data
//!   sink transform of the descriptor.
//! * **Timers** travel on the data stream too: a [`BundleInput`] with a
//!   `timer_family` goes out as `Elements.Timers` to its ParDo, every other
//!   timer family the descriptor declares is closed empty (harnesses wait
//!   for each), and the timers a harness sets come back in
//!   [`BundleOutput::timers`] once it closes each family. A harness that disconnects, or an
//!   error in the response, fails the bundle with the harness's own text
//!   (a Python traceback, for instance).
//! * **Provision and artifacts** (`provision.rs`): `GetProvisionInfo`
//!   answers a harness the runner announced ([`FnApiServer::expect_worker`])
//!   with the job's pipeline options, the endpoints and its environment's
//!   dependencies; `ArtifactRetrievalService` serves those dependencies,
//!   and nothing else, to Beam's boot programs.
//! * **Logging.** Log entries are kept per worker (capped at
//!   [`LOG_LINES_KEPT`]) and forwarded to `tracing` (target
//!   `wasmbeam::sdk`).
//!
//! * **Environments** (`environments.rs`): harnesses started as processes
//!   (Beam's boot flags, or the Python SDK harness from a venv), or through
//!   an external worker pool's `StartWorker`/`StopWorker` (EXTERNAL and
//!   LOOPBACK).
//!
//! * **Metrics** (`metrics.rs`): the user metrics in bundle responses,
//!   merged per job by each metric type's rule ([`MetricsAggregate`]).
//!
//! * **State** (`state.rs`): side inputs and user state, answered per
//!   bundle from the [`StateProvider`] the bundle was started with, in pages
//!   cut between elements with continuation tokens. [`MemoryState`] keeps
//!   them in memory. A provider may hand out cache tokens
//!   ([`StateProvider::cache_tokens`]), which go into each
//!   `ProcessBundleRequest`, so the SDK's state cache (Python's
//!   `--max_cache_memory_usage_mb`) keeps side inputs across bundles.
//!
//! The engine does not know this crate; the runner drives it. It knows
//! the Fn API protos only.
//!
//! Dependency rule: this crate depends on `wasmbeam-proto` alone.

#![deny(missing_docs)]

mod environments;
mod metrics;
mod provision;
mod server;
mod services;
mod state;
mod varint;
mod worker;

pub use environments::{Endpoints, ExternalWorkerPool, ProcessWorker};
pub use metrics::MetricsAggregate;
pub use provision::{artifact_bytes, staged_name};
pub use server::{BundleInput, BundleOutput, FnApiError, FnApiServer, LogLine};
pub use state::{
    fresh_cache_token, side_input_token, user_state_token, CacheToken, MemoryState, StateProvider,
    StateValue, STATE_PAGE_BYTES,
};
pub use worker::Worker;

/// Largest payload of one outbound `Elements` message.
pub const DATA_CHUNK_BYTES: usize = 1 << 20;

/// Log lines kept per worker; older ones are dropped.
pub const LOG_LINES_KEPT: usize = 10_000;
