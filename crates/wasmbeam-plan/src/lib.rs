//! # wasmbeam-plan
//!
//! The runner's first look at a portable `Pipeline`, before anything runs:
//!
//! * [`graph::PipelineView::new`] validates it: every transform, PCollection,
//!   coder, windowing strategy and environment id it references must exist
//!   and the transform graph must be a tree. Errors name the owner and field.
//! * [`support::classify`] (and [`support::classify_in`], which also sees
//!   the environments) is the single table of what wasmbeam executes: Beam
//!   primitives the runner implements itself, ParDos and combines whose
//!   function is a WASM component, ParDos and CombineFn phases that run in
//!   an SDK harness, and everything else with a reason.
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
pub mod support;

pub use graph::{Finding, PipelineView, PlanError};
pub use support::{classify, classify_in, classify_with, Support};
