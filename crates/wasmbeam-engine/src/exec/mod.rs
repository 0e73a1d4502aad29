//! Planning fused stages and running them on worker threads.
//!
//! A *stage* starts at a root (Impulse, ReadText, a GroupByKey's output, or
//! a PCollection that had to be materialised) and contains every
//! element-wise operation reachable from it (ParDo, AssignWindows, Flatten,
//! Reshuffle, WriteText). It ends at sinks: GroupByKey shuffles, text files,
//! and collected PCollections (side inputs). Bundles flow through a stage
//! without being materialised in between.
//!
//! Stages run one after another in dependency order (a stage waits for the
//! shuffles it reads and the side inputs its ParDos use); inside a stage,
//! worker threads take source bundles (read splits, shuffle partitions) from a
//! shared counter. Output files are staged and committed only when the whole
//! job succeeds; on failure or cancellation they are discarded.
//!
//! Where things live: `options` (settings, progress, errors, results),
//! `plan` (fusion into stages and their order), `worker` (bundle sources and
//! the loop that pushes bundles through a stage's operations), `group`
//! (precombine tables and grouping a shuffle partition); [`run`] here ties
//! them together and commits or discards the outputs.

mod group;
mod options;
mod plan;
mod worker;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::batch::{Batch, PANE_NO_FIRING, PANE_ON_TIME_ONLY};
use crate::graph::{CombineExec, Graph, KvCodec, OpError, OpKind, PcId, Values};
use crate::shuffle::{encode_record, partition_of, sorted_records, Budget, Record, Seq, Shuffle};
use crate::textio::{plan_splits, read_split, Split, StagedText};
use crate::window::{merge_windows, Window, MIN_TIMESTAMP};

use group::*;
pub use options::*;
use plan::*;
use worker::*;

/// Run the graph to completion. A graph with a stream source (TestStream,
/// GenerateSequence) runs on the streaming executor ([`crate::stream`]).
pub fn run(g: &Graph, opts: &EngineOptions) -> Result<JobResult, EngineError> {
    if g.ops.iter().any(|o| o.kind.is_stream_source()) {
        return crate::stream::run(g, opts);
    }
    let (stages, collect, consumers) = Planner::new(g)?.plan()?;
    crate::textio::remove_stale(&opts.temp_dir, "wasmbeam-spill-");
    let spill_dir = opts
        .temp_dir
        .join(format!("wasmbeam-spill-{}", opts.job_tag));
    let budget = Budget::new(opts.memory_budget.max(1 << 16));
    let mut shuffles = HashMap::new();
    let mut sinks = HashMap::new();
    let mut staged_err = None;
    for (i, op) in g.ops.iter().enumerate() {
        match &op.kind {
            OpKind::GroupByKey { .. } | OpKind::StatefulParDo { .. } => {
                shuffles.insert(
                    i,
                    Shuffle::new(i, opts.partitions.max(1), spill_dir.clone(), budget.clone()),
                );
            }
            OpKind::WriteText(sink) => match StagedText::new(sink.clone(), &opts.job_tag) {
                Ok(s) => {
                    sinks.insert(i, s);
                }
                Err(e) => {
                    staged_err = Some(EngineError::Op {
                        transform: op.name.clone(),
                        message: e.into(),
                    });
                    break;
                }
            },
            _ => {}
        }
    }
    let shared = Shared {
        g,
        opts,
        shuffles,
        sinks,
        collected: collect
            .iter()
            .map(|&pc| (pc, Mutex::new(Vec::new())))
            .collect(),
        consumers,
        counts: (0..g.pcollections.len())
            .map(|_| AtomicU64::new(0))
            .collect(),
        failed: Mutex::new(staged_err),
        abort: AtomicBool::new(false),
    };
    opts.progress
        .stages_total
        .store(stages.len(), Ordering::Relaxed);
    let mut result = Ok(());
    if shared.failed.lock().map(|f| f.is_some()).unwrap_or(true) {
        result = Err(shared
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or(EngineError::Cancelled));
    }
    if result.is_ok() {
        for (si, st) in stages.iter().enumerate() {
            if let Err(e) = run_stage(&shared, si as u32, st) {
                result = Err(e);
                break;
            }
            opts.progress.stages_done.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = std::fs::remove_dir_all(&spill_dir);
    let Shared { sinks, counts, .. } = shared;
    match result {
        Ok(()) => {
            let mut outputs = Vec::new();
            let mut sinks: Vec<_> = sinks.into_iter().collect();
            sinks.sort_by_key(|(i, _)| *i);
            let mut commit_err = None;
            for (i, s) in sinks {
                if commit_err.is_some() {
                    s.abort();
                    continue;
                }
                match s.commit() {
                    Ok(paths) => outputs.extend(paths),
                    Err(e) => {
                        commit_err = Some(EngineError::Op {
                            transform: g.ops[i].name.clone(),
                            message: e.into(),
                        })
                    }
                }
            }
            if let Some(e) = commit_err {
                return Err(e);
            }
            Ok(JobResult {
                outputs,
                element_counts: counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
                spilled_bytes: budget.spilled_bytes(),
                stages: stages.len(),
                dropped: Vec::new(),
            })
        }
        Err(e) => {
            for (_, s) in sinks {
                s.abort();
            }
            Err(e)
        }
    }
}
