//! # wasmbeam-plan
//!
//! The runner's first look at a portable `Pipeline`, before anything runs:
//!
//! * [`graph::PipelineView::new`] validates it: every transform, PCollection,
//!   coder, windowing strategy and environment id it references must exist
//!   and the transform graph must be a tree. Errors name the owner and field.
//! * [`step::decode`] is the typed plan: the one place that reads transform
//!   URNs and payloads. Each transform becomes a [`Step`] (a runner-native
//!   primitive with its parameters, a WASM ParDo or combine with its UDF
//!   payload, an SDK harness step with its environment kind) or a reason it
//!   cannot run. `inspect`, the job server's tenant policy and the runner's
//!   translation all read these steps; [`support::classify`] summarises one
//!   for people.
//! * [`graph::PipelineView::unsupported`] lists every transform that cannot
//!   run, by id, unique name and URN, which is what `wasmbeam run` and the job
//!   service report when they refuse a pipeline.
//! * [`inspect::render`] is the `wasmbeam inspect` report.
//!
//! Dependency rule: depends on `wasmbeam-proto` only; the execution engine
//! never depends on this crate's proto views (translation happens in the runner).

#![warn(missing_docs)]

pub mod graph;
pub mod inspect;
pub mod step;
pub mod support;
pub mod triggering;

pub use graph::{Finding, PipelineView, PlanError};
pub use step::{decode, Step, Verdict, Windowing};
pub use support::{classify, Support};
pub use triggering::{TestStreamEvent, Triggering};
