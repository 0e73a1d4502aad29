//! The worker loop: sources of bundles, pushing bundles through a stage's
//! fused operations, and writing shuffles, sinks and collected outputs.

use super::*;

pub(super) enum Source {
    Impulse,
    Split(Split),
    Partition(usize),
    Stored(PcId),
}

/// State shared by all workers of a job.
pub(super) struct Shared<'g> {
    pub(super) g: &'g Graph,
    pub(super) opts: &'g EngineOptions,
    pub(super) shuffles: HashMap<usize, Shuffle>,
    pub(super) sinks: HashMap<usize, StagedText>,
    pub(super) collected: HashMap<PcId, Mutex<Vec<((u32, u32, u32), Batch)>>>,
    pub(super) consumers: Vec<Vec<usize>>,
    pub(super) counts: Vec<AtomicU64>,
    pub(super) failed: Mutex<Option<EngineError>>,
    pub(super) abort: AtomicBool,
}

impl Shared<'_> {
    pub(super) fn fail(&self, e: EngineError) {
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            // Once cancelled, whatever else breaks (a UDF stopped mid-call)
            // is a consequence of the cancellation.
            let cancelled = self.opts.cancel.load(Ordering::SeqCst);
            *f = Some(if cancelled { EngineError::Cancelled } else { e });
        }
        self.abort.store(true, Ordering::SeqCst);
    }

    pub(super) fn op_err(&self, op: usize, message: impl Into<OpError>) -> EngineError {
        EngineError::Op {
            transform: self.g.ops[op].name.clone(),
            message: message.into(),
        }
    }
}

pub(super) struct BundleCtx {
    pub(super) stage: u32,
    pub(super) source: u32,
    pub(super) sub: u32,
    pub(super) parts: u32,
}

pub(super) fn run_stage(sh: &Shared<'_>, si: u32, st: &Stage) -> Result<(), EngineError> {
    let g = sh.g;
    *sh.opts
        .progress
        .current
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = st.name.clone();
    // Prepare ParDos with their side inputs.
    let root_op = match st.root {
        Root::Op(o) => Some(o),
        Root::Deferred(_) => None,
    };
    for o in st.ops.iter().copied().chain(root_op) {
        let sides = || -> Vec<(String, Batch)> {
            g.ops[o]
                .kind
                .side_inputs()
                .iter()
                .map(|(tag, pc)| (tag.clone(), gather(sh, *pc)))
                .collect()
        };
        match &g.ops[o].kind {
            OpKind::ParDo { exec, .. } if Some(o) != root_op => {
                exec.prepare(sides()).map_err(|m| sh.op_err(o, m))?
            }
            OpKind::StatefulParDo { exec, .. } if Some(o) == root_op => {
                exec.prepare(sides()).map_err(|m| sh.op_err(o, m))?
            }
            _ => {}
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
            // Its outputs are pushed by the keyed run itself; the input
            // stands in as the root (it is never pushed).
            OpKind::StatefulParDo { .. } => {
                let n = sh.shuffles[&o].partitions();
                (
                    g.ops[o].inputs.first().copied(),
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
pub(super) fn gather(sh: &Shared<'_>, pc: PcId) -> Batch {
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

pub(super) fn run_source(
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
            if let OpKind::StatefulParDo { exec, .. } = &sh.g.ops[o].kind {
                let mut ctx = BundleCtx {
                    stage: si,
                    source,
                    sub: 0,
                    parts: 0,
                };
                return run_keyed_partition(sh, st, o, exec.as_ref(), *p, &mut ctx, local);
            }
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
pub(super) fn push(
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
        .filter(|&i| st.ops.contains(&i) || g.ops[i].kind.is_shuffled())
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
                ..
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
            OpKind::StatefulParDo { codec, .. } => {
                shuffle_write(sh, c, codec.as_ref(), None, &input, ctx, local)?;
            }
            OpKind::ParDo { exec, .. } => {
                // Output may arrive in parts while the function runs; each
                // part goes on through the stage at once. An error from
                // downstream is kept whole (it names its own transform).
                let mut downstream: Option<EngineError> = None;
                let mut emit = |i: usize, out: Batch| -> crate::graph::OpResult<()> {
                    let Some(&opc) = op.outputs.get(i) else {
                        return Err(format!(
                            "produced output {i}, but has {} outputs",
                            op.outputs.len()
                        )
                        .into());
                    };
                    push(sh, st, opc, out, ctx, local).map_err(|e| {
                        let m = OpError::from(e.to_string());
                        downstream = Some(e);
                        m
                    })
                };
                let r = exec.process_into(input, op.outputs.len(), &mut emit);
                if let Some(e) = downstream {
                    return Err(e);
                }
                r.map_err(|m| sh.op_err(c, m))?;
            }
            OpKind::AssignWindows(wf) => {
                let mut out = Batch::with_capacity(input.len(), input.values.data.len());
                let mut ws = Vec::with_capacity(4);
                for e in input.iter() {
                    ws.clear();
                    wf.assign(e.timestamp, &mut ws);
                    out.push(e.value, e.timestamp, ws.iter().copied(), e.pane);
                }
                push(sh, st, op.outputs[0], out, ctx, local)?;
            }
            OpKind::Flatten => {
                // A Flatten may read one PCollection several times: each
                // reading contributes its elements.
                let times = op.inputs.iter().filter(|&&i| i == pc).count().max(1);
                for _ in 1..times {
                    push(sh, st, op.outputs[0], input.clone(), ctx, local)?;
                }
                push(sh, st, op.outputs[0], input, ctx, local)?
            }
            OpKind::Reshuffle => push(sh, st, op.outputs[0], input, ctx, local)?,
            OpKind::WriteText(_) => {
                let key = (ctx.stage, ctx.source, ctx.sub * 1024 + ctx.parts.min(1023));
                ctx.parts += 1;
                if let Some(s) = sh.sinks.get(&c) {
                    s.write_part(key, &input).map_err(|m| sh.op_err(c, m))?;
                }
            }
            OpKind::Impulse
            | OpKind::ReadText { .. }
            | OpKind::TestStream(_)
            | OpKind::GenerateSequence { .. }
            | OpKind::WatchText { .. } => {}
        }
    }
    Ok(())
}

/// Push one bundle of a stateful ParDo's outputs through the stage.
fn push_outputs(
    sh: &Shared<'_>,
    st: &Stage,
    op: usize,
    outs: Vec<Batch>,
    ctx: &mut BundleCtx,
    local: &mut Local,
) -> Result<(), EngineError> {
    let outputs = &sh.g.ops[op].outputs;
    if outs.len() != outputs.len() {
        return Err(sh.op_err(
            op,
            format!(
                "produced {} outputs, expected {}",
                outs.len(),
                outputs.len()
            ),
        ));
    }
    ctx.sub += 1;
    ctx.parts = 0;
    sh.opts.progress.bundles.fetch_add(1, Ordering::Relaxed);
    for (out, &pc) in outs.into_iter().zip(outputs) {
        push(sh, st, pc, out, ctx, local)?;
    }
    Ok(())
}

/// Elements per bundle handed to a stateful ParDo.
const KEYED_BUNDLE: usize = 4096;

/// Run one shuffle partition of a stateful ParDo: its elements in (key,
/// window, arrival) order, then its timers until none is due.
fn run_keyed_partition(
    sh: &Shared<'_>,
    st: &Stage,
    op: usize,
    exec: &dyn crate::graph::KeyedDoFnExec,
    p: usize,
    ctx: &mut BundleCtx,
    local: &mut Local,
) -> Result<(), EngineError> {
    let buf = sh.shuffles[&op]
        .take_partition(p)
        .map_err(|m| sh.op_err(op, m))?;
    let recs = sorted_records(&buf).map_err(|m| sh.op_err(op, m))?;
    if recs.is_empty() {
        return Ok(());
    }
    let mut run = exec.open().map_err(|m| sh.op_err(op, m))?;
    let stopped = || -> Option<EngineError> {
        if sh.opts.cancel.load(Ordering::SeqCst) {
            return Some(EngineError::Cancelled);
        }
        sh.abort.load(Ordering::SeqCst).then(|| {
            sh.failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or(EngineError::Cancelled)
        })
    };
    let mut v = Vec::new();
    for chunk in recs.chunks(KEYED_BUNDLE) {
        if let Some(e) = stopped() {
            return Err(e);
        }
        let mut input = Batch::with_capacity(chunk.len(), 0);
        for r in chunk {
            v.clear();
            v.extend_from_slice(r.key);
            v.extend_from_slice(r.value);
            input.push(&v, r.timestamp, [r.window], PANE_NO_FIRING);
        }
        let outs = run.process(input).map_err(|m| sh.op_err(op, m))?;
        push_outputs(sh, st, op, outs, ctx, local)?;
    }
    drop(recs);
    drop(buf);
    // Batch: the input is done, so the watermark is at the end of time.
    loop {
        if let Some(e) = stopped() {
            return Err(e);
        }
        match run.fire(i64::MAX, i64::MAX).map_err(|m| sh.op_err(op, m))? {
            Some(outs) => push_outputs(sh, st, op, outs, ctx, local)?,
            None => return Ok(()),
        }
    }
}

pub(super) fn shuffle_write(
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

pub(super) fn flush_local(sh: &Shared<'_>, _si: u32, local: &mut Local) -> Result<(), EngineError> {
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
