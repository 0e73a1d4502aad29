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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::batch::{Batch, PANE_ON_TIME_ONLY};
use crate::graph::{CombineExec, Graph, KvCodec, OpError, OpKind, PcId, Values};
use crate::shuffle::{encode_record, partition_of, sorted_records, Budget, Record, Seq, Shuffle};
use crate::textio::{plan_splits, read_split, Split, StagedText};
use crate::window::{merge_windows, Window, MIN_TIMESTAMP};

/// Engine settings for one job.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Bytes of shuffle data held in memory before spilling to disk.
    pub memory_budget: usize,
    /// Shuffle partitions per GroupByKey.
    pub partitions: usize,
    /// Where spill files go (a private subdirectory is created and removed).
    pub temp_dir: PathBuf,
    /// Unique tag of this job, used in staging names.
    pub job_tag: String,
    /// Set to stop the job; checked between bundles.
    pub cancel: Arc<AtomicBool>,
    /// Live progress counters.
    pub progress: Arc<Progress>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_budget: 128 << 20,
            partitions: 32,
            temp_dir: std::env::temp_dir(),
            job_tag: format!("{}-{}", std::process::id(), now_nanos()),
            cancel: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Progress::default()),
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Stages in the job.
    pub stages_total: AtomicUsize,
    /// Stages finished.
    pub stages_done: AtomicUsize,
    /// Elements produced into PCollections.
    pub elements: AtomicU64,
    /// Bundles processed.
    pub bundles: AtomicU64,
    /// Name of the stage running now.
    pub current: Mutex<String>,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// An operation failed.
    #[error("transform {transform:?} failed: {message}")]
    Op {
        /// The transform's unique name.
        transform: String,
        /// What happened, with its typed cause when it has one.
        message: OpError,
    },
    /// The job was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
    /// The graph cannot be executed.
    #[error("cannot plan the job: {0}")]
    Plan(String),
}

/// What a successful job produced.
#[derive(Debug, Clone, Default)]
pub struct JobResult {
    /// Files committed by text sinks.
    pub outputs: Vec<PathBuf>,
    /// Elements per PCollection, by [`PcId`].
    pub element_counts: Vec<u64>,
    /// Shuffle bytes spilled to disk.
    pub spilled_bytes: usize,
    /// Number of stages run.
    pub stages: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Root {
    /// Impulse, ReadText or a GroupByKey's output.
    Op(usize),
    /// A ParDo whose side input is produced by its own stage: it runs in a
    /// stage of its own, over its collected main input.
    Deferred(usize),
}

struct Stage {
    root: Root,
    /// Element-wise ops inside the stage.
    ops: BTreeSet<usize>,
    /// PCollections produced inside the stage (including the root's).
    produced: HashSet<PcId>,
    /// Shuffles written.
    writes_gbk: HashSet<usize>,
    name: String,
}

struct Planner<'g> {
    g: &'g Graph,
    consumers: Vec<Vec<usize>>,
    side_pcs: HashSet<PcId>,
    deferred: HashSet<usize>,
}

impl<'g> Planner<'g> {
    fn new(g: &'g Graph) -> Result<Self, EngineError> {
        let mut consumers = vec![Vec::new(); g.pcollections.len()];
        let mut side_pcs = HashSet::new();
        for (i, op) in g.ops.iter().enumerate() {
            for &pc in &op.inputs {
                let list = consumers
                    .get_mut(pc)
                    .ok_or_else(|| EngineError::Plan(format!("{}: unknown input", op.name)))?;
                if !list.contains(&i) {
                    list.push(i);
                }
            }
            if let OpKind::ParDo { side_inputs, .. } = &op.kind {
                side_pcs.extend(side_inputs.iter().map(|(_, pc)| *pc));
            }
        }
        Ok(Planner {
            g,
            consumers,
            side_pcs,
            deferred: HashSet::new(),
        })
    }

    fn is_root_op(kind: &OpKind) -> bool {
        matches!(
            kind,
            OpKind::Impulse | OpKind::ReadText { .. } | OpKind::GroupByKey { .. }
        )
    }

    fn build_stage(&self, root: Root) -> Stage {
        let mut st = Stage {
            root,
            ops: BTreeSet::new(),
            produced: HashSet::new(),
            writes_gbk: HashSet::new(),
            name: match root {
                Root::Op(o) => self.g.ops[o].name.clone(),
                Root::Deferred(o) => self.g.ops[o].name.clone(),
            },
        };
        let mut frontier: Vec<PcId> = self.g.ops[match root {
            Root::Op(o) | Root::Deferred(o) => o,
        }]
        .outputs
        .clone();
        if let Root::Deferred(o) = root {
            st.ops.insert(o);
        }
        while let Some(pc) = frontier.pop() {
            if !st.produced.insert(pc) {
                continue;
            }
            for &c in &self.consumers[pc] {
                let op = &self.g.ops[c];
                if matches!(op.kind, OpKind::GroupByKey { .. }) {
                    st.writes_gbk.insert(c);
                } else if !Self::is_root_op(&op.kind)
                    && !self.deferred.contains(&c)
                    && st.ops.insert(c)
                {
                    frontier.extend(op.outputs.iter().copied());
                }
            }
        }
        st
    }

    fn reads(&self, st: &Stage) -> HashSet<PcId> {
        let mut r = HashSet::new();
        for &o in &st.ops {
            if let OpKind::ParDo { side_inputs, .. } = &self.g.ops[o].kind {
                r.extend(side_inputs.iter().map(|(_, pc)| *pc));
            }
        }
        if let Root::Deferred(o) = st.root {
            r.insert(self.g.ops[o].inputs[0]);
        }
        r
    }

    /// Stages in an order that respects their dependencies.
    /// Returns the stages, the PCollections to collect (side inputs and the
    /// main inputs of deferred ParDos), and the consumer lists.
    #[allow(clippy::type_complexity)]
    fn plan(mut self) -> Result<(Vec<Stage>, HashSet<PcId>, Vec<Vec<usize>>), EngineError> {
        for _ in 0..=self.g.ops.len() {
            let mut roots: Vec<Root> = self
                .g
                .ops
                .iter()
                .enumerate()
                .filter(|(_, o)| Self::is_root_op(&o.kind))
                .map(|(i, _)| Root::Op(i))
                .collect();
            let mut deferred: Vec<_> = self.deferred.iter().copied().collect();
            deferred.sort();
            roots.extend(deferred.into_iter().map(Root::Deferred));
            let stages: Vec<Stage> = roots.into_iter().map(|r| self.build_stage(r)).collect();
            // A ParDo that reads a side input produced in its own stage is
            // deferred to a stage of its own.
            let mut cut = None;
            'outer: for st in &stages {
                for &o in &st.ops {
                    if let OpKind::ParDo { side_inputs, .. } = &self.g.ops[o].kind {
                        if side_inputs.iter().any(|(_, pc)| st.produced.contains(pc))
                            && !self.deferred.contains(&o)
                        {
                            cut = Some(o);
                            break 'outer;
                        }
                    }
                }
            }
            if let Some(o) = cut {
                self.deferred.insert(o);
                continue;
            }
            // Order: Kahn over "writes before reads".
            let n = stages.len();
            let mut deps: Vec<HashSet<usize>> = vec![HashSet::new(); n];
            for (i, s) in stages.iter().enumerate() {
                let reads = self.reads(s);
                for (j, t) in stages.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let gbk_dep = matches!(s.root, Root::Op(o) if t.writes_gbk.contains(&o));
                    if gbk_dep
                        || reads
                            .iter()
                            .any(|pc| t.produced.contains(pc) && !s.produced.contains(pc))
                    {
                        deps[i].insert(j);
                    }
                    if let Root::Deferred(o) = s.root {
                        if t.produced.contains(&self.g.ops[o].inputs[0]) {
                            deps[i].insert(j);
                        }
                    }
                }
            }
            let mut order = Vec::with_capacity(n);
            let mut done = vec![false; n];
            while order.len() < n {
                let ready = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
                match ready {
                    Some(i) => {
                        done[i] = true;
                        order.push(i);
                    }
                    None => {
                        return Err(EngineError::Plan(
                            "the pipeline's stages depend on each other in a cycle".into(),
                        ))
                    }
                }
            }
            let mut stages: Vec<Option<Stage>> = stages.into_iter().map(Some).collect();
            let ordered = order.into_iter().filter_map(|i| stages[i].take()).collect();
            let mut collect = self.side_pcs.clone();
            collect.extend(self.deferred.iter().map(|&o| self.g.ops[o].inputs[0]));
            return Ok((ordered, collect, self.consumers));
        }
        Err(EngineError::Plan(
            "could not separate side inputs from their consumers".into(),
        ))
    }
}

enum Source {
    Impulse,
    Split(Split),
    Partition(usize),
    Stored(PcId),
}

/// State shared by all workers of a job.
struct Shared<'g> {
    g: &'g Graph,
    opts: &'g EngineOptions,
    shuffles: HashMap<usize, Shuffle>,
    sinks: HashMap<usize, StagedText>,
    collected: HashMap<PcId, Mutex<Vec<((u32, u32, u32), Batch)>>>,
    consumers: Vec<Vec<usize>>,
    counts: Vec<AtomicU64>,
    failed: Mutex<Option<EngineError>>,
    abort: AtomicBool,
}

impl Shared<'_> {
    fn fail(&self, e: EngineError) {
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            // Once cancelled, whatever else breaks (a UDF stopped mid-call)
            // is a consequence of the cancellation.
            let cancelled = self.opts.cancel.load(Ordering::SeqCst);
            *f = Some(if cancelled { EngineError::Cancelled } else { e });
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    fn op_err(&self, op: usize, message: impl Into<OpError>) -> EngineError {
        EngineError::Op {
            transform: self.g.ops[op].name.clone(),
            message: message.into(),
        }
    }
}

/// A worker's precombined accumulators of one GroupByKey, by window then key.
/// Pipelines have few distinct windows per bundle, so windows are a short
/// list searched from the most recent; keys use a fast non-cryptographic hash.
#[derive(Default)]
struct Table {
    windows: Vec<(Window, rustc_hash::FxHashMap<Vec<u8>, Vec<u8>>)>,
}

impl Table {
    fn window(&mut self, w: Window) -> &mut rustc_hash::FxHashMap<Vec<u8>, Vec<u8>> {
        let i = match self.windows.iter().rposition(|(x, _)| *x == w) {
            Some(i) => i,
            None => {
                self.windows.push((w, Default::default()));
                self.windows.len() - 1
            }
        };
        &mut self.windows[i].1
    }

    fn drain(&mut self) -> Vec<((Vec<u8>, Window), Vec<u8>)> {
        let mut out = Vec::new();
        for (w, m) in self.windows.drain(..) {
            out.extend(m.into_iter().map(|(k, a)| ((k, w), a)));
        }
        out
    }
}

/// Per-worker buffers for shuffles (and precombine tables).
#[derive(Default)]
struct Local {
    bufs: HashMap<usize, Vec<Vec<u8>>>,
    precombine: HashMap<usize, Table>,
    precombine_bytes: HashMap<usize, usize>,
}

const LOCAL_FLUSH: usize = 256 << 10;

struct BundleCtx {
    stage: u32,
    source: u32,
    sub: u32,
    parts: u32,
}

/// Run the graph to completion.
pub fn run(g: &Graph, opts: &EngineOptions) -> Result<JobResult, EngineError> {
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
            OpKind::GroupByKey { .. } => {
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

fn run_stage(sh: &Shared<'_>, si: u32, st: &Stage) -> Result<(), EngineError> {
    let g = sh.g;
    *sh.opts
        .progress
        .current
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = st.name.clone();
    // Prepare ParDos with their side inputs.
    for &o in &st.ops {
        if let OpKind::ParDo { exec, side_inputs } = &g.ops[o].kind {
            let mut sides = Vec::new();
            for (tag, pc) in side_inputs {
                sides.push((tag.clone(), gather(sh, *pc)));
            }
            exec.prepare(sides).map_err(|m| sh.op_err(o, m))?;
        }
    }
    let (root_pc, sources): (Option<PcId>, Vec<Source>) = match st.root {
        Root::Op(o) => match &g.ops[o].kind {
            OpKind::Impulse => (g.ops[o].outputs.first().copied(), vec![Source::Impulse]),
            OpKind::ReadText { patterns } => {
                let splits = plan_splits(patterns).map_err(|m| sh.op_err(o, m))?;
                (
                    g.ops[o].outputs.first().copied(),
                    splits.into_iter().map(Source::Split).collect(),
                )
            }
            OpKind::GroupByKey { .. } => {
                let n = sh.shuffles[&o].partitions();
                (
                    g.ops[o].outputs.first().copied(),
                    (0..n).map(Source::Partition).collect(),
                )
            }
            _ => {
                return Err(EngineError::Plan(format!(
                    "{} cannot start a stage",
                    g.ops[o].name
                )))
            }
        },
        Root::Deferred(o) => (
            g.ops[o].inputs.first().copied(),
            vec![Source::Stored(g.ops[o].inputs[0])],
        ),
    };
    let Some(root_pc) = root_pc else {
        return Ok(());
    };
    let next = AtomicUsize::new(0);
    let workers = sh.opts.workers.max(1).min(sources.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut local = Local::default();
                loop {
                    if sh.abort.load(Ordering::SeqCst) {
                        break;
                    }
                    if sh.opts.cancel.load(Ordering::SeqCst) {
                        sh.fail(EngineError::Cancelled);
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(src) = sources.get(i) else { break };
                    if let Err(e) = run_source(sh, si, st, root_pc, i as u32, src, &mut local) {
                        sh.fail(e);
                        break;
                    }
                }
                if let Err(e) = flush_local(sh, si, &mut local) {
                    sh.fail(e);
                }
            });
        }
    });
    match sh.failed.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Concatenate a collected PCollection in deterministic order.
fn gather(sh: &Shared<'_>, pc: PcId) -> Batch {
    let mut parts = match sh.collected.get(&pc) {
        Some(m) => m.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        None => Vec::new(),
    };
    parts.sort_by_key(|(k, _)| *k);
    let mut all = Batch::default();
    for (_, b) in &parts {
        all.extend_from(b);
    }
    all
}

fn run_source(
    sh: &Shared<'_>,
    si: u32,
    st: &Stage,
    root_pc: PcId,
    source: u32,
    src: &Source,
    local: &mut Local,
) -> Result<(), EngineError> {
    let mut sub = 0u32;
    let mut emit = |batch: Batch, local: &mut Local| -> Result<(), EngineError> {
        if sh.abort.load(Ordering::Relaxed) {
            return Err(sh
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or(EngineError::Cancelled));
        }
        let mut ctx = BundleCtx {
            stage: si,
            source,
            sub,
            parts: 0,
        };
        sub += 1;
        sh.opts.progress.bundles.fetch_add(1, Ordering::Relaxed);
        push(sh, st, root_pc, batch, &mut ctx, local)
    };
    match src {
        Source::Impulse => {
            let mut b = Batch::default();
            b.push_global(&[], MIN_TIMESTAMP);
            emit(b, local)
        }
        Source::Split(split) => {
            let (Root::Op(root) | Root::Deferred(root)) = st.root;
            let mut inner_err = None;
            let r = read_split(split, |b| match emit(b, local) {
                Ok(()) => Ok(()),
                Err(e) => {
                    inner_err = Some(e);
                    Err("stopped".into())
                }
            });
            match (r, inner_err) {
                (_, Some(e)) => Err(e),
                (Err(m), None) => Err(sh.op_err(root, m)),
                (Ok(()), None) => Ok(()),
            }
        }
        Source::Partition(p) => {
            let Root::Op(o) = st.root else { return Ok(()) };
            group_partition(sh, o, *p, |b| emit(b, local))
        }
        Source::Stored(pc) => {
            let parts = match sh.collected.get(pc) {
                Some(m) => {
                    let mut v = m.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    v.sort_by_key(|(k, _)| *k);
                    v
                }
                None => Vec::new(),
            };
            for (_, b) in parts {
                emit(b, local)?;
            }
            Ok(())
        }
    }
}

/// Send a bundle of `pc` through the stage's consumers.
fn push(
    sh: &Shared<'_>,
    st: &Stage,
    pc: PcId,
    batch: Batch,
    ctx: &mut BundleCtx,
    local: &mut Local,
) -> Result<(), EngineError> {
    let g = sh.g;
    // A deferred ParDo's stage replays its collected input: not new elements.
    let replay = matches!(st.root, Root::Deferred(o) if g.ops[o].inputs[0] == pc);
    if !replay {
        sh.counts[pc].fetch_add(batch.len() as u64, Ordering::Relaxed);
        sh.opts
            .progress
            .elements
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(c) = sh.collected.get(&pc) {
            c.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(((ctx.stage, ctx.source, ctx.sub), batch.clone()));
        }
    }
    let consumers: Vec<usize> = sh.consumers[pc]
        .iter()
        .copied()
        .filter(|&i| st.ops.contains(&i) || matches!(g.ops[i].kind, OpKind::GroupByKey { .. }))
        .collect();
    let last = consumers.len().saturating_sub(1);
    let mut batch = Some(batch);
    for (k, &c) in consumers.iter().enumerate() {
        let input = if k == last {
            batch.take().unwrap_or_default()
        } else {
            batch.as_ref().cloned().unwrap_or_default()
        };
        let op = &g.ops[c];
        match &op.kind {
            OpKind::GroupByKey {
                codec,
                window_fn,
                combine,
            } => {
                let pre = combine.as_ref().filter(|_| !window_fn.is_merging());
                shuffle_write(
                    sh,
                    c,
                    codec.as_ref(),
                    pre.map(|c| c.as_ref()),
                    &input,
                    ctx,
                    local,
                )?;
            }
            OpKind::ParDo { exec, .. } => {
                let outs = exec.process(input).map_err(|m| sh.op_err(c, m))?;
                if outs.len() != op.outputs.len() {
                    return Err(sh.op_err(
                        c,
                        format!(
                            "produced {} outputs, expected {}",
                            outs.len(),
                            op.outputs.len()
                        ),
                    ));
                }
                for (out, &opc) in outs.into_iter().zip(&op.outputs) {
                    push(sh, st, opc, out, ctx, local)?;
                }
            }
            OpKind::AssignWindows(wf) => {
                let mut out = Batch::with_capacity(input.len(), input.data.len());
                let mut ws = Vec::with_capacity(4);
                for e in input.iter() {
                    ws.clear();
                    wf.assign(e.timestamp, &mut ws);
                    out.push(e.value, e.timestamp, ws.iter().copied(), e.pane);
                }
                push(sh, st, op.outputs[0], out, ctx, local)?;
            }
            OpKind::Flatten | OpKind::Reshuffle => push(sh, st, op.outputs[0], input, ctx, local)?,
            OpKind::WriteText(_) => {
                let key = (ctx.stage, ctx.source, ctx.sub * 1024 + ctx.parts.min(1023));
                ctx.parts += 1;
                if let Some(s) = sh.sinks.get(&c) {
                    s.write_part(key, &input).map_err(|m| sh.op_err(c, m))?;
                }
            }
            OpKind::Impulse | OpKind::ReadText { .. } => {}
        }
    }
    Ok(())
}

fn shuffle_write(
    sh: &Shared<'_>,
    op: usize,
    codec: &dyn KvCodec,
    precombine: Option<&dyn CombineExec>,
    batch: &Batch,
    ctx: &BundleCtx,
    local: &mut Local,
) -> Result<(), EngineError> {
    let shuffle = &sh.shuffles[&op];
    let parts = shuffle.partitions();
    if let Some(comb) = precombine {
        return precombine_bundle(sh, op, codec, comb, batch, local);
    }
    let bufs = local
        .bufs
        .entry(op)
        .or_insert_with(|| vec![Vec::new(); parts]);
    for (i, e) in batch.iter().enumerate() {
        let (key, value) = codec
            .split(e.value)
            .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
        let p = partition_of(key, parts);
        for (wi, w) in e.windows().enumerate() {
            let seq = Seq {
                stage: ctx.stage,
                source: ctx.source,
                sub: ctx.sub,
                index: (i as u32).wrapping_mul(8).wrapping_add(wi as u32),
            };
            encode_record(
                &mut bufs[p],
                &Record {
                    key,
                    window: w,
                    timestamp: e.timestamp,
                    seq,
                    value,
                },
            );
        }
        if bufs[p].len() >= LOCAL_FLUSH {
            shuffle.append(p, &bufs[p]).map_err(|m| sh.op_err(op, m))?;
            bufs[p].clear();
        }
    }
    Ok(())
}

/// Fold a bundle into the worker's precombine table: one `add_inputs` call
/// for all of the bundle's (key, window) groups.
fn precombine_bundle(
    sh: &Shared<'_>,
    op: usize,
    codec: &dyn KvCodec,
    comb: &dyn CombineExec,
    batch: &Batch,
    local: &mut Local,
) -> Result<(), EngineError> {
    if comb.supports_in_place() {
        let mut fresh: Option<Vec<u8>> = None;
        let table = local.precombine.entry(op).or_default();
        let bytes = local.precombine_bytes.entry(op).or_insert(0);
        for (i, e) in batch.iter().enumerate() {
            let (key, value) = codec
                .split(e.value)
                .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
            for w in e.windows() {
                let map = table.window(w);
                let acc = match map.get_mut(key) {
                    Some(a) => a,
                    None => {
                        if fresh.is_none() {
                            fresh = Some(comb.create().map_err(|m| sh.op_err(op, m))?);
                        }
                        *bytes += key.len() + 64;
                        map.entry(key.to_vec())
                            .or_insert_with(|| fresh.clone().unwrap_or_default())
                    }
                };
                comb.add_input_in_place(acc, value)
                    .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
            }
        }
        if *bytes > sh.opts.memory_budget / (4 * sh.opts.workers.max(1)) {
            flush_precombine(sh, op, local)?;
        }
        return Ok(());
    }
    let mut group_of: rustc_hash::FxHashMap<(&[u8], Window), u32> = Default::default();
    let mut keys: Vec<(&[u8], Window)> = Vec::new();
    let mut members: Vec<(u32, &[u8])> = Vec::with_capacity(batch.len());
    for (i, e) in batch.iter().enumerate() {
        let (key, value) = codec
            .split(e.value)
            .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
        for w in e.windows() {
            let next = keys.len() as u32;
            let gi = *group_of.entry((key, w)).or_insert_with(|| {
                keys.push((key, w));
                next
            });
            members.push((gi, value));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    // Counting sort of values by group.
    let mut counts = vec![0u32; keys.len()];
    for (gi, _) in &members {
        counts[*gi as usize] += 1;
    }
    let mut ends = Vec::with_capacity(keys.len());
    let mut acc = 0u32;
    for c in &counts {
        acc += c;
        ends.push(acc);
    }
    let mut slots: Vec<&[u8]> = vec![&[]; members.len()];
    let mut fill: Vec<u32> = ends.iter().zip(&counts).map(|(e, c)| e - c).collect();
    for (gi, v) in &members {
        slots[fill[*gi as usize] as usize] = v;
        fill[*gi as usize] += 1;
    }
    let mut inputs = Values::default();
    for v in &slots {
        inputs.push(v);
    }
    let table = local.precombine.entry(op).or_default();
    let mut accs = Values::default();
    let mut fresh: Option<Vec<u8>> = None;
    for (k, w) in &keys {
        match table.window(*w).get(*k) {
            Some(a) => accs.push(a),
            None => {
                if fresh.is_none() {
                    fresh = Some(comb.create().map_err(|m| sh.op_err(op, m))?);
                }
                accs.push(fresh.as_deref().unwrap_or(&[]));
            }
        }
    }
    let out = comb
        .add_inputs(&accs, &inputs, &ends)
        .map_err(|m| sh.op_err(op, m))?;
    if out.len() != keys.len() {
        return Err(sh.op_err(
            op,
            format!(
                "the CombineFn returned {} accumulators for {} groups",
                out.len(),
                keys.len()
            ),
        ));
    }
    let bytes = local.precombine_bytes.entry(op).or_insert(0);
    for (i, (k, w)) in keys.iter().enumerate() {
        let a = out.get(i).to_vec();
        *bytes += a.len() + k.len() + 48;
        table.window(*w).insert(k.to_vec(), a);
    }
    // Keep the table within a share of the budget.
    if *bytes > sh.opts.memory_budget / (4 * sh.opts.workers.max(1)) {
        flush_precombine(sh, op, local)?;
    }
    Ok(())
}

fn flush_precombine(sh: &Shared<'_>, op: usize, local: &mut Local) -> Result<(), EngineError> {
    let Some(table) = local.precombine.get_mut(&op) else {
        return Ok(());
    };
    let shuffle = &sh.shuffles[&op];
    let parts = shuffle.partitions();
    let mut bufs = vec![Vec::new(); parts];
    let mut entries = table.drain();
    entries.sort();
    for (i, ((k, w), acc)) in entries.iter().enumerate() {
        let p = partition_of(k, parts);
        let seq = Seq {
            stage: u32::MAX,
            source: 0,
            sub: 0,
            index: i as u32,
        };
        encode_record(
            &mut bufs[p],
            &Record {
                key: k,
                window: *w,
                timestamp: w.max_timestamp(),
                seq,
                value: acc,
            },
        );
    }
    for (p, b) in bufs.iter().enumerate() {
        shuffle.append(p, b).map_err(|m| sh.op_err(op, m))?;
    }
    local.precombine_bytes.insert(op, 0);
    Ok(())
}

fn flush_local(sh: &Shared<'_>, _si: u32, local: &mut Local) -> Result<(), EngineError> {
    let ops: Vec<usize> = local.precombine.keys().copied().collect();
    for op in ops {
        flush_precombine(sh, op, local)?;
    }
    for (op, bufs) in local.bufs.iter_mut() {
        let shuffle = &sh.shuffles[op];
        for (p, b) in bufs.iter_mut().enumerate() {
            shuffle.append(p, b).map_err(|m| sh.op_err(*op, m))?;
            b.clear();
        }
    }
    Ok(())
}

/// Groups per output bundle when reading a shuffle.
const GROUPS_PER_BUNDLE: usize = 4096;

/// Read, sort and group one shuffle partition, emitting output bundles.
fn group_partition(
    sh: &Shared<'_>,
    op: usize,
    p: usize,
    mut emit: impl FnMut(Batch) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let OpKind::GroupByKey {
        codec,
        window_fn,
        combine,
    } = &sh.g.ops[op].kind
    else {
        return Ok(());
    };
    let buf = sh.shuffles[&op]
        .take_partition(p)
        .map_err(|m| sh.op_err(op, m))?;
    let recs = sorted_records(&buf).map_err(|m| sh.op_err(op, m))?;
    // Groups as (key, window, member record indexes in seq order).
    let mut groups: Vec<(&[u8], Window, Vec<usize>)> = Vec::new();
    if window_fn.is_merging() {
        let mut i = 0;
        while i < recs.len() {
            let mut j = i;
            while j < recs.len() && recs[j].key == recs[i].key {
                j += 1;
            }
            let merged = merge_windows(recs[i..j].iter().map(|r| r.window).collect());
            let mut per: Vec<Vec<usize>> = vec![Vec::new(); merged.len()];
            for (k, r) in recs[i..j].iter().enumerate() {
                let mi = merged
                    .partition_point(|m| m.start <= r.window.start)
                    .saturating_sub(1);
                per[mi].push(i + k);
            }
            for (mi, mut members) in per.into_iter().enumerate() {
                if members.is_empty() {
                    continue;
                }
                members.sort_by_key(|&x| recs[x].seq);
                groups.push((recs[i].key, merged[mi], members));
            }
            i = j;
        }
    } else {
        let mut i = 0;
        while i < recs.len() {
            let mut j = i;
            while j < recs.len() && recs[j].key == recs[i].key && recs[j].window == recs[i].window {
                j += 1;
            }
            groups.push((recs[i].key, recs[i].window, (i..j).collect()));
            i = j;
        }
    }
    for chunk in groups.chunks(GROUPS_PER_BUNDLE) {
        let mut out = Batch::with_capacity(chunk.len(), 0);
        match combine {
            None => {
                let mut v = Vec::new();
                for (key, w, members) in chunk {
                    v.clear();
                    v.extend_from_slice(key);
                    v.extend_from_slice(&(members.len() as i32).to_be_bytes());
                    for &m in members {
                        codec
                            .value_to_nested(recs[m].value, &mut v)
                            .map_err(|e| sh.op_err(op, e))?;
                    }
                    out.push(&v, w.max_timestamp(), [*w], PANE_ON_TIME_ONLY);
                }
            }
            Some(comb) => {
                let mut vals = Values::default();
                let mut ends = Vec::with_capacity(chunk.len());
                for (_, _, members) in chunk {
                    for &m in members {
                        vals.push(recs[m].value);
                    }
                    ends.push(vals.len() as u32);
                }
                let accs = if window_fn.is_merging() {
                    let fresh = comb.create().map_err(|m| sh.op_err(op, m))?;
                    let mut empties = Values::default();
                    for _ in chunk {
                        empties.push(&fresh);
                    }
                    comb.add_inputs(&empties, &vals, &ends)
                        .map_err(|m| sh.op_err(op, m))?
                } else {
                    comb.merge(&vals, &ends).map_err(|m| sh.op_err(op, m))?
                };
                let outs = comb.extract(&accs).map_err(|m| sh.op_err(op, m))?;
                if outs.len() != chunk.len() {
                    return Err(sh.op_err(
                        op,
                        format!(
                            "the CombineFn returned {} outputs for {} groups",
                            outs.len(),
                            chunk.len()
                        ),
                    ));
                }
                let mut v = Vec::new();
                for (gi, (key, w, _)) in chunk.iter().enumerate() {
                    v.clear();
                    v.extend_from_slice(key);
                    v.extend_from_slice(outs.get(gi));
                    out.push(&v, w.max_timestamp(), [*w], PANE_ON_TIME_ONLY);
                }
            }
        }
        emit(out)?;
    }
    Ok(())
}
