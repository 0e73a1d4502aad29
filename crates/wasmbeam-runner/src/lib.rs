//! # wasmbeam-runner
//!
//! Runs a Beam `Pipeline` proto (in batch, or as a stream when it has a
//! TestStream or an unbounded source; [`is_streaming`]): validates it,
//! translates it
//! into the engine's graph (WASM DoFns and CombineFns become engine
//! operations backed by `wasmbeam-wasm-host` pools; DoFns and CombineFn
//! phases of SDK environments become engine operations that send each
//! bundle to an SDK harness over the Fn API (`sdk`, on `wasmbeam-fnapi`);
//! coders from `wasmbeam-coders` split keys for grouping; runner-native IO
//! and built-in combiners are wired directly), then runs the engine.
//!
//! Anything the runner cannot execute is refused before any work starts,
//! with every offending transform's id, unique name, URN and reason.
//!
//! Dependency rule: this is where protos meet the engine. The engine and the
//! WASM host never see protos; the CLI and job service call [`run`].

#![warn(missing_docs)]

pub mod builtin;
pub mod codec;
pub mod sdk;
pub mod stateful;
pub mod streaming;
pub mod translate;
pub mod udf;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use translate::{translate, TranslateOptions, Translated};
pub use wasmbeam_engine::window::{MAX_TIMESTAMP, MIN_TIMESTAMP};
pub use wasmbeam_engine::Progress;
use wasmbeam_engine::{EngineError, EngineOptions};
use wasmbeam_plan::Finding;
use wasmbeam_proto::pipeline::v1::Pipeline;
pub use wasmbeam_wasm_host::{Grants, HostConfig, Limits, UdfError, UserMetrics, CONTRACT_VERSION};
use wasmbeam_wasm_host::{Interrupt, MemoryBudget, UdfHost};

/// Why a pipeline did not run.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The pipeline's references are broken.
    #[error("invalid pipeline: {0}")]
    Invalid(String),
    /// Transforms the runner cannot execute.
    #[error("{} transform(s) cannot run on wasmbeam: {}", .0.len(), .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
    Unsupported(Vec<Finding>),
    /// A transform is malformed or cannot be set up.
    #[error("transform {name:?} (id {id}): {message}")]
    Transform {
        /// Transform id.
        id: String,
        /// Unique name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The WASM host could not start.
    #[error("cannot start the WASM host: {0}")]
    Host(String),
    /// A UDF failed: its typed cause says why (deadline, memory cap or
    /// budget, trap, its own error, a bad output).
    #[error("transform {transform:?} failed: {error}")]
    Udf {
        /// The transform's unique name.
        transform: String,
        /// What the UDF did.
        error: UdfError,
    },
    /// The job was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
    /// Execution failed.
    #[error(transparent)]
    Engine(EngineError),
}

impl From<EngineError> for RunnerError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Cancelled => RunnerError::Cancelled,
            EngineError::Op { transform, message } => {
                match message.cause().and_then(|c| c.downcast_ref::<UdfError>()) {
                    Some(u) if matches!(u, UdfError::Cancelled { .. }) => RunnerError::Cancelled,
                    Some(u) => RunnerError::Udf {
                        transform,
                        error: u.clone(),
                    },
                    None => RunnerError::Engine(EngineError::Op { transform, message }),
                }
            }
            other => RunnerError::Engine(other),
        }
    }
}

/// The default job memory budget for UDFs: 2 GiB.
pub const DEFAULT_UDF_MEMORY_BUDGET: usize = 2 << 30;

/// How to run a job.
#[derive(Clone)]
pub struct RunOptions {
    /// Worker threads; default: the number of cores.
    pub workers: usize,
    /// Shuffle memory budget in bytes.
    pub memory_budget: usize,
    /// Where relative component paths are resolved.
    pub base_dir: PathBuf,
    /// Limits per UDF instance.
    pub limits: Limits,
    /// The job's UDF memory budget in bytes: the linear memory of all its
    /// UDF instances together plus the bundle outputs the host holds
    /// (default 2 GiB). Each instance's own cap (`limits.memory_bytes`) is
    /// lowered to it when larger.
    pub udf_memory_budget: usize,
    /// Grants per UDF instance.
    pub grants: Grants,
    /// The WASM host's engine settings (component cache, ...).
    pub host: HostConfig,
    /// Set to cancel.
    pub cancel: Arc<AtomicBool>,
    /// Set to drain a streaming job (its sources stop, every pending
    /// window fires, the job finishes); batch jobs ignore it.
    pub drain: Arc<AtomicBool>,
    /// Live progress.
    pub progress: Arc<Progress>,
    /// How many times a bundle that fails in an SDK harness (or whose
    /// harness dies) is tried in all, each retry on a fresh harness
    /// (default 3).
    pub bundle_attempts: u32,
    /// SDK harnesses started per environment, sharing its bundles (Beam's
    /// `--sdk_worker_parallelism`; default 1).
    pub sdk_workers: usize,
    /// The job's pipeline options, which SDK harnesses get through the
    /// provision service (or, for the built-in Python command, directly).
    pub pipeline_options: prost_types::Struct,
    /// The Python interpreter (with apache-beam) that a PROCESS environment
    /// whose command is `wasmbeam:python` runs; `python3` on the PATH when
    /// unset.
    pub sdk_python: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        let e = EngineOptions::default();
        RunOptions {
            workers: e.workers,
            memory_budget: e.memory_budget,
            base_dir: PathBuf::from("."),
            limits: Limits::default(),
            udf_memory_budget: DEFAULT_UDF_MEMORY_BUDGET,
            grants: Grants::default(),
            host: HostConfig::default(),
            cancel: e.cancel,
            drain: e.drain,
            progress: e.progress,
            bundle_attempts: 3,
            sdk_workers: 1,
            pipeline_options: prost_types::Struct::default(),
            sdk_python: None,
        }
    }
}

/// True when `pipeline` runs as a stream (it has a TestStream or an
/// unbounded source), so Drain applies to it.
pub fn is_streaming(pipeline: &Pipeline) -> bool {
    let Ok(view) = wasmbeam_plan::PipelineView::new(pipeline) else {
        return false;
    };
    let Some(c) = pipeline.components.as_ref() else {
        return false;
    };
    c.transforms.values().any(|t| {
        matches!(
            wasmbeam_plan::decode(t, c),
            wasmbeam_plan::Verdict::Run(
                wasmbeam_plan::Step::TestStream { .. }
                    | wasmbeam_plan::Step::GenerateSequence { stop: None, .. }
                    | wasmbeam_plan::Step::ReadText {
                        watch_ms: Some(_),
                        ..
                    }
            )
        )
    }) && view.unsupported().is_empty()
}

/// What a finished job reports.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Committed output files.
    pub outputs: Vec<PathBuf>,
    /// Elements per PCollection (by Beam PCollection id).
    pub element_counts: BTreeMap<String, u64>,
    /// User metrics per transform unique name.
    pub user_metrics: BTreeMap<String, UserMetrics>,
    /// User metrics reported by SDK harnesses, as Beam `MonitoringInfo`s
    /// (merged over bundles; labelled with Beam transform ids).
    pub sdk_metrics: Vec<wasmbeam_proto::pipeline::v1::MonitoringInfo>,
    /// Shuffle bytes spilled to disk.
    pub spilled_bytes: usize,
    /// Stages run.
    pub stages: usize,
}

/// The counter (namespace `wasmbeam`, on the GroupByKey) of elements a
/// streaming job dropped as late: past their window's allowed lateness, or
/// for a window whose trigger had finished.
pub const DROPPED_DUE_TO_LATENESS: &str = "droppedDueToLateness";

/// Validate, translate and run `pipeline`.
pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<RunSummary, RunnerError> {
    let host = UdfHost::new(opts.host.clone()).map_err(RunnerError::Host)?;
    // One budget per run, shared by every instance of every transform.
    let budget = MemoryBudget::new(opts.udf_memory_budget.max(1 << 20));
    let t = translate(
        pipeline,
        &host,
        &TranslateOptions {
            base_dir: opts.base_dir.clone(),
            limits: Limits {
                // Cancelling the job also stops UDF calls in progress.
                interrupt: opts
                    .limits
                    .interrupt
                    .clone()
                    .or_else(|| Some(Interrupt(opts.cancel.clone()))),
                memory_bytes: opts.limits.memory_bytes.min(budget.cap()),
                job_memory: Some(budget.clone()),
                ..opts.limits.clone()
            },
            grants: opts.grants.clone(),
            bundle_attempts: opts.bundle_attempts,
            sdk_workers: opts.sdk_workers,
            pipeline_options: opts.pipeline_options.clone(),
            sdk_python: opts.sdk_python.clone(),
        },
    )?;
    let engine_opts = EngineOptions {
        workers: opts.workers.max(1),
        memory_budget: opts.memory_budget,
        cancel: opts.cancel.clone(),
        drain: opts.drain.clone(),
        progress: opts.progress.clone(),
        ..EngineOptions::default()
    };
    let r = wasmbeam_engine::run(&t.graph, &engine_opts)?;
    let element_counts = t
        .pcollections
        .iter()
        .map(|(id, &pc)| (id.clone(), r.element_counts.get(pc).copied().unwrap_or(0)))
        .collect();
    let mut user_metrics = BTreeMap::new();
    for (name, d) in &t.dofns {
        let m = d.take_metrics();
        if !m.is_empty() {
            user_metrics.insert(name.clone(), m);
        }
    }
    // Late data a streaming GroupByKey dropped, as a counter of that
    // transform (namespace `wasmbeam`), as Beam runners report it.
    for (name, n) in &r.dropped {
        let m: &mut UserMetrics = user_metrics.entry(name.clone()).or_default();
        *m.counters
            .entry(format!("wasmbeam/{DROPPED_DUE_TO_LATENESS}"))
            .or_default() += *n as i64;
    }
    let sdk_metrics = t.sdk.as_ref().map(|s| s.metrics()).unwrap_or_default();
    Ok(RunSummary {
        outputs: r.outputs,
        element_counts,
        user_metrics,
        sdk_metrics,
        spilled_bytes: r.spilled_bytes,
        stages: r.stages,
    })
}

/// A component file checked against the UDF contract, as `wasmbeam build`
/// describes it.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// `DoFn` or `CombineFn`.
    pub kind: String,
    /// Hex sha256 of the file.
    pub sha256: String,
}

/// Compile `path` and check it against the UDF contract (no instance is
/// started; nothing is cached).
pub fn check_component(path: &std::path::Path) -> Result<ComponentInfo, UdfError> {
    let host = UdfHost::new(HostConfig {
        cache_dir: None,
        ..HostConfig::default()
    })
    .map_err(|detail| UdfError::Compile {
        name: path.display().to_string(),
        detail,
    })?;
    let c = host.load_file(path)?;
    Ok(ComponentInfo {
        kind: c.kind().to_string(),
        sha256: c.sha256().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbeam_engine::OpError;

    fn op(e: OpError) -> RunnerError {
        EngineError::Op {
            transform: "Split".into(),
            message: e,
        }
        .into()
    }

    #[test]
    fn udf_failures_keep_their_typed_cause_through_the_engine() {
        let deadline = UdfError::Deadline {
            name: "split.wasm".into(),
            deadline: std::time::Duration::from_secs(3),
        };
        match op(OpError::new(deadline.clone())) {
            RunnerError::Udf { transform, error } => {
                assert_eq!(transform, "Split");
                assert_eq!(error, deadline);
            }
            other => panic!("{other:?}"),
        }
        let text = op(OpError::new(deadline)).to_string();
        assert!(
            text.starts_with(
                "transform \"Split\" failed: UDF split.wasm exceeded the bundle deadline of 3s"
            ),
            "{text}"
        );
        // A UDF stopped by Cancel means the job was cancelled.
        let cancelled = UdfError::Cancelled {
            name: "split.wasm".into(),
        };
        assert!(matches!(
            op(OpError::new(cancelled)),
            RunnerError::Cancelled
        ));
        assert!(matches!(
            RunnerError::from(EngineError::Cancelled),
            RunnerError::Cancelled
        ));
        // Other failures stay engine errors with their message.
        let plain = op(OpError::from("bad kv".to_string()));
        assert!(matches!(plain, RunnerError::Engine(_)), "{plain:?}");
        assert_eq!(plain.to_string(), "transform \"Split\" failed: bad kv");
    }
}
