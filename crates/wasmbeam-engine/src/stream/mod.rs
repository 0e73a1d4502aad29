//! The streaming executor: the same [`Graph`] run as a dataflow of bundles
//! and watermarks, in event order, so GroupByKeys fire panes by their
//! triggers as the watermark and processing time advance.
//!
//! Each PCollection has a watermark; each operation a queue of bundles.
//! The scheduler repeats, until nothing is left to do:
//!
//! 1. **Bundles.** The first operation (in topological order) with a queued
//!    bundle processes it, and its outputs are queued at their consumers. A
//!    ParDo whose side inputs are not complete yet waits for them (side
//!    inputs are read whole: their watermark must have reached the end of
//!    time).
//! 2. **Watermarks**, once no bundle is queued. In topological order, each
//!    operation's input watermark is the minimum over its inputs; a
//!    GroupByKey hands it to its per-key pane drivers ([`crate::panes`]),
//!    which fire end-of-window and garbage-collection timers; a stateful
//!    ParDo fires its due timers. An operation's output watermark is its
//!    input watermark, held back by the output timestamps of what a
//!    GroupByKey still buffers. A pass stops at the first operation that
//!    produced output, so no watermark passes a bundle still queued.
//! 3. **Sources**, once watermarks are still. The next event of a source:
//!    a TestStream's next element bundle, watermark advance or
//!    processing-time advance (which fires processing-time triggers);
//!    Impulse and text reads emit their whole bounded output, then move
//!    their watermark to the end of time.
//!
//! The processing-time clock is controllable: TestStream's processing-time
//! events advance it from its start, the wall-clock time at which the job
//! began. Everything runs on the calling thread, so a TestStream's output
//! is deterministic. Text sinks commit each window's pane to a file of
//! its own as it arrives ([`PaneText`]), so output appears while the job
//! runs; what was committed stays if the job later fails or is cancelled.
//!
//! Batch stays the batch executor's job ([`crate::exec`]); this one runs
//! the graphs whose sources are streams.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;

use crate::batch::Batch;
use crate::exec::{EngineError, EngineOptions, JobResult};
use crate::graph::{Graph, KeyedRun, OpKind, PcId, StreamEvent, Values};
use crate::panes::{Pane, PaneDriver, Windowing};
use crate::textio::{plan_splits, read_split, PaneText, Watcher};

mod grouping;
mod setup;
mod sources;

use crate::trigger::Times;
use crate::window::{Window, MAX_TIMESTAMP, MIN_TIMESTAMP};
use grouping::advance_drivers;

/// The watermark of a finished source: past the end of the global window.
pub const END_OF_TIME: i64 = MAX_TIMESTAMP;

/// Run `g` as a stream (see the module docs).
pub fn run(g: &Graph, opts: &EngineOptions) -> Result<JobResult, EngineError> {
    let mut s = Streamer::new(g, opts)?;
    // A failure while the job is being cancelled (a bundle abandoned
    // mid-way, say) is the cancel, as in batch.
    let result = s.run_to_end().map_err(|e| {
        if opts.cancel.load(Ordering::SeqCst) {
            EngineError::Cancelled
        } else {
            e
        }
    });
    let Streamer {
        sinks,
        counts,
        states,
        ..
    } = s;
    result?;
    let dropped = states
        .iter()
        .enumerate()
        .filter_map(|(i, st)| match st {
            OpState::Group { dropped, .. } if *dropped > 0 => {
                Some((g.ops[i].name.clone(), *dropped))
            }
            _ => None,
        })
        .collect();
    Ok(JobResult {
        outputs: sinks.into_values().flat_map(PaneText::finish).collect(),
        element_counts: counts,
        spilled_bytes: 0,
        stages: g.ops.len(),
        dropped,
    })
}

/// What an operation keeps between bundles.
enum OpState {
    /// Nothing (element-wise operations).
    None,
    /// A source: its remaining events and the watermark of each output.
    Source {
        events: VecDeque<StreamEvent>,
        watermarks: Vec<i64>,
    },
    /// Watched files: polled every `poll` ms.
    Watch {
        watcher: Watcher,
        next_poll: i64,
        poll: i64,
        stopped: bool,
        watermark: i64,
    },
    /// A generated sequence: the next integer, due at
    /// `started + (next - start) * period` (ms of processing time).
    Generator {
        start: i64,
        next: i64,
        stop: Option<i64>,
        period: i64,
        started: i64,
        watermark: i64,
    },
    /// A ParDo: prepared once its side inputs are complete.
    ParDo { prepared: bool },
    /// A GroupByKey: one pane driver per key (nested key bytes).
    Group {
        windowing: Windowing,
        drivers: HashMap<Vec<u8>, PaneDriver<Vec<u8>>>,
        input_watermark: i64,
        /// Elements dropped: late past the allowed lateness, or for a
        /// window whose trigger had finished.
        dropped: u64,
    },
    /// A stateful ParDo: one keyed run for all keys.
    Keyed {
        run: Option<Box<dyn KeyedRun>>,
        input_watermark: i64,
    },
}

struct Streamer<'g> {
    /// Where the next turn of the sources starts (index into `order`).
    next_source: usize,
    /// Processing time follows the wall clock (no TestStream drives it).
    real_clock: bool,
    drained: bool,
    g: &'g Graph,
    opts: &'g EngineOptions,
    order: Vec<usize>,
    consumers: Vec<Vec<usize>>,
    side_pcs: Vec<bool>,
    queues: Vec<VecDeque<(PcId, Batch)>>,
    watermarks: Vec<i64>,
    states: Vec<OpState>,
    /// Side inputs collected so far, by PCollection.
    collected: HashMap<PcId, Batch>,
    sinks: BTreeMap<usize, PaneText>,
    counts: Vec<u64>,
    clock: i64,
}

impl<'g> Streamer<'g> {
    fn run_to_end(&mut self) -> Result<(), EngineError> {
        loop {
            if self.opts.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
            if !self.drained && self.opts.drain.load(Ordering::Relaxed) {
                self.drain_sources();
            }
            if self.real_clock {
                // Processing-time triggers are looked at every 10 ms at most.
                let now = wall_ms();
                if now >= self.clock.saturating_add(PROCESSING_TIME_STEP_MS) {
                    self.clock = now;
                    self.fire_processing_time()?;
                }
            }
            if self.process_one()? {
                continue;
            }
            if self.propagate()? {
                self.report_watermarks();
                continue;
            }
            if self.advance_source()? {
                continue;
            }
            match self.next_wakeup() {
                // Nothing to do until a generator's next element or a
                // processing-time trigger is due: wait for it (or for a
                // cancel or drain, checked every 50 ms).
                Some(at) => {
                    let wait = (at - wall_ms()).clamp(1, 50);
                    std::thread::sleep(std::time::Duration::from_millis(wait as u64));
                }
                None => break,
            }
        }
        if let Some(i) = self
            .order
            .iter()
            .copied()
            .find(|&i| !self.queues[i].is_empty())
        {
            return Err(op_err(
                self.g,
                i,
                "its side inputs never completed, so its main input could not be processed",
            ));
        }
        Ok(())
    }

    /// Publish the watermarks in the job's progress.
    fn report_watermarks(&self) {
        if let Ok(mut w) = self.opts.progress.watermarks.lock() {
            w.clear();
            w.extend(
                self.g
                    .pcollections
                    .iter()
                    .zip(&self.watermarks)
                    .map(|(pc, t)| (pc.name.clone(), *t)),
            );
        }
    }

    /// Hand `batch` to every consumer of `pc`.
    fn emit(&mut self, pc: PcId, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        self.counts[pc] += batch.len() as u64;
        self.opts
            .progress
            .elements
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if self.side_pcs[pc] {
            self.collected.entry(pc).or_default().extend_from(&batch);
        }
        let consumers = self.consumers[pc].clone();
        for c in consumers {
            if self.g.ops[c].inputs.contains(&pc) {
                // A Flatten may read one PCollection several times.
                let times = self.g.ops[c].inputs.iter().filter(|&&i| i == pc).count();
                for _ in 0..times {
                    self.queues[c].push_back((pc, batch.clone()));
                }
            }
        }
    }

    fn side_inputs_complete(&self, op: usize) -> bool {
        self.g.ops[op]
            .kind
            .side_inputs()
            .iter()
            .all(|(_, pc)| self.watermarks[*pc] >= END_OF_TIME)
    }

    /// Process one queued bundle; false when none can be processed.
    fn process_one(&mut self) -> Result<bool, EngineError> {
        let Some(i) = self
            .order
            .iter()
            .copied()
            .find(|&i| !self.queues[i].is_empty() && self.side_inputs_complete(i))
        else {
            return Ok(false);
        };
        let (_, input) = self.queues[i].pop_front().expect("a queued bundle");
        self.opts.progress.bundles.fetch_add(1, Ordering::Relaxed);
        let g = self.g;
        let op = &g.ops[i];
        let t = Times {
            watermark: self.input_watermark(i),
            processing: self.clock,
        };
        match &op.kind {
            OpKind::ParDo { exec, side_inputs } => {
                if let OpState::ParDo { prepared: false } = self.states[i] {
                    let sides = side_inputs
                        .iter()
                        .map(|(tag, pc)| {
                            (
                                tag.clone(),
                                self.collected.get(pc).cloned().unwrap_or_default(),
                            )
                        })
                        .collect();
                    exec.prepare(sides).map_err(|m| op_err(g, i, m))?;
                    self.states[i] = OpState::ParDo { prepared: true };
                }
                let mut outs: Vec<Batch> = vec![Batch::default(); op.outputs.len()];
                exec.process_into(input, op.outputs.len(), &mut |k, b| {
                    outs[k].extend_from(&b);
                    Ok(())
                })
                .map_err(|m| op_err(g, i, m))?;
                for (k, b) in outs.into_iter().enumerate() {
                    self.emit(op.outputs[k], b);
                }
            }
            OpKind::AssignWindows(wf) => {
                let mut out = Batch::with_capacity(input.len(), input.values.data.len());
                let mut ws = Vec::with_capacity(4);
                for e in input.iter() {
                    ws.clear();
                    wf.assign(e.timestamp, &mut ws);
                    out.push_in_pane(
                        e.value,
                        e.timestamp,
                        ws.iter().copied(),
                        e.pane,
                        e.pane_indexes,
                    );
                }
                self.emit(op.outputs[0], out);
            }
            OpKind::Flatten | OpKind::Reshuffle => self.emit(op.outputs[0], input),
            OpKind::WriteText(_) => {
                if let Some(s) = self.sinks.get_mut(&i) {
                    s.write(&input).map_err(|m| op_err(g, i, m))?;
                }
            }
            OpKind::GroupByKey { codec, .. } => {
                let OpState::Group {
                    drivers,
                    windowing,
                    dropped,
                    ..
                } = &mut self.states[i]
                else {
                    unreachable!("a GroupByKey has group state")
                };
                // One call per key per bundle, as a trigger sees a bundle.
                let mut by_key: HashMap<Vec<u8>, Vec<(Vec<u8>, i64, Window)>> = HashMap::new();
                let mut keys = Vec::new();
                for e in input.iter() {
                    let (k, v) = codec.split(e.value).map_err(|m| op_err(g, i, m))?;
                    let list = by_key.entry(k.to_vec()).or_insert_with(|| {
                        keys.push(k.to_vec());
                        Vec::new()
                    });
                    for w in e.windows() {
                        list.push((v.to_vec(), e.timestamp, w));
                    }
                }
                let mut fired = Vec::new();
                for k in keys {
                    let elements = by_key.remove(&k).unwrap_or_default();
                    let driver = drivers
                        .entry(k.clone())
                        .or_insert_with(|| PaneDriver::new(windowing.clone()));
                    let mut panes = Vec::new();
                    let before = driver.dropped();
                    driver.add(elements, t, &mut panes);
                    *dropped += driver.dropped() - before;
                    fired.extend(panes.into_iter().map(|p| (k.clone(), p)));
                }
                self.emit_panes(i, fired)?;
            }
            OpKind::StatefulParDo {
                exec, side_inputs, ..
            } => {
                let run = self.keyed_run(i, exec.as_ref(), side_inputs)?;
                run.observe(t.watermark, t.processing);
                let outs = run.process(input).map_err(|m| op_err(g, i, m))?;
                for (k, b) in outs.into_iter().enumerate() {
                    self.emit(op.outputs[k], b);
                }
            }
            OpKind::Impulse
            | OpKind::ReadText { .. }
            | OpKind::TestStream(_)
            | OpKind::GenerateSequence { .. }
            | OpKind::WatchText { .. } => {}
        }
        Ok(true)
    }

    fn keyed_run(
        &mut self,
        i: usize,
        exec: &dyn crate::graph::KeyedDoFnExec,
        side_inputs: &[(String, PcId)],
    ) -> Result<&mut Box<dyn KeyedRun>, EngineError> {
        let g = self.g;
        let sides: Vec<(String, Batch)> = side_inputs
            .iter()
            .map(|(tag, pc)| {
                (
                    tag.clone(),
                    self.collected.get(pc).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let OpState::Keyed { run, .. } = &mut self.states[i] else {
            unreachable!("a stateful ParDo has keyed state")
        };
        if run.is_none() {
            exec.prepare(sides).map_err(|m| op_err(g, i, m))?;
            *run = Some(exec.open().map_err(|m| op_err(g, i, m))?);
        }
        Ok(run.as_mut().expect("opened above"))
    }

    fn input_watermark(&self, op: usize) -> i64 {
        match &self.states[op] {
            OpState::Source { watermarks, .. } => {
                watermarks.iter().copied().min().unwrap_or(END_OF_TIME)
            }
            OpState::Generator { watermark, .. } | OpState::Watch { watermark, .. } => *watermark,
            _ => self.g.ops[op]
                .inputs
                .iter()
                .map(|&pc| self.watermarks[pc])
                .min()
                .unwrap_or(END_OF_TIME),
        }
    }

    /// Move watermarks forward in topological order; true when something
    /// moved or fired.
    fn propagate(&mut self) -> Result<bool, EngineError> {
        let mut moved = false;
        let g = self.g;
        for idx in 0..self.order.len() {
            let i = self.order[idx];
            let in_wm = self.input_watermark(i);
            let mut fired = false;
            // The earliest timestamp this pass emitted: downstream must
            // take those elements before the watermark passes them.
            let mut emitted: Option<i64> = None;
            let clock = self.clock;
            let out_wm = match &mut self.states[i] {
                OpState::Group {
                    drivers,
                    input_watermark,
                    ..
                } => {
                    if in_wm > *input_watermark {
                        *input_watermark = in_wm;
                        let t = Times {
                            watermark: in_wm,
                            processing: clock,
                        };
                        let panes = advance_drivers(drivers, t);
                        if !panes.is_empty() {
                            emitted = self.emit_panes(i, panes)?;
                            fired = true;
                        }
                    }
                    let OpState::Group { drivers, .. } = &self.states[i] else {
                        unreachable!()
                    };
                    drivers
                        .values()
                        .filter_map(|d| d.hold())
                        .min()
                        .map_or(in_wm, |h| h.min(in_wm))
                }
                OpState::Keyed {
                    run: Some(_),
                    input_watermark,
                } if in_wm > *input_watermark => {
                    *input_watermark = in_wm;
                    // Once the input is complete no processing time is left
                    // to wait for: every timer fires (as in batch, and on Drain).
                    let clock = if in_wm >= END_OF_TIME {
                        END_OF_TIME
                    } else {
                        clock
                    };
                    (fired, emitted) = self.fire_keyed(i, in_wm, clock)?;
                    keyed_hold(&self.states[i], in_wm)
                }
                OpState::Keyed { .. } => keyed_hold(&self.states[i], in_wm),
                _ => in_wm,
            };
            // Nothing may pass what is still queued here.
            let queued = self.queues[i]
                .iter()
                .flat_map(|(_, b)| b.timestamps.iter().copied())
                .min();
            let out_wm = queued.map_or(out_wm, |q| q.min(out_wm));
            let out_wm = emitted.map_or(out_wm, |e| e.min(out_wm));
            let per_output: Option<Vec<i64>> = match &self.states[i] {
                OpState::Source { watermarks, .. } => Some(watermarks.clone()),
                _ => None,
            };
            for (k, &pc) in g.ops[i].outputs.iter().enumerate() {
                let out_wm = per_output
                    .as_ref()
                    .and_then(|w| w.get(k).copied())
                    .unwrap_or(out_wm);
                if out_wm > self.watermarks[pc] {
                    self.watermarks[pc] = out_wm;
                    moved = true;
                }
            }
            if fired {
                return Ok(true);
            }
        }
        Ok(moved)
    }
}

impl Streamer<'_> {
    /// Fire stateful ParDo `i`'s due timers, round after round, at input
    /// watermark `wm` and processing time `clock`, and hand their outputs
    /// on: whether anything was output, and the earliest output timestamp.
    fn fire_keyed(
        &mut self,
        i: usize,
        wm: i64,
        clock: i64,
    ) -> Result<(bool, Option<i64>), EngineError> {
        let g = self.g;
        let OpState::Keyed { run: Some(run), .. } = &mut self.states[i] else {
            return Ok((false, None));
        };
        let mut outs_all = Vec::new();
        while let Some(outs) = run.fire(wm, clock).map_err(|m| op_err(g, i, m))? {
            outs_all.push(outs);
            if outs_all.len() >= MAX_TIMER_ROUNDS {
                return Err(op_err(
                    g,
                    i,
                    format!("its timers kept firing at watermark {wm} and processing time {clock} for {MAX_TIMER_ROUNDS} rounds: a timer callback sets a timer at or before the current time"),
                ));
            }
            if self.opts.cancel.load(Ordering::Relaxed) {
                return Err(EngineError::Cancelled);
            }
        }
        let (mut fired, mut emitted) = (false, None::<i64>);
        for outs in outs_all {
            for (k, b) in outs.into_iter().enumerate() {
                fired |= !b.is_empty();
                if let Some(t) = b.timestamps.iter().copied().min() {
                    emitted = Some(emitted.map_or(t, |e| e.min(t)));
                }
                self.emit(g.ops[i].outputs[k], b);
            }
        }
        Ok((fired, emitted))
    }
}

/// A stateful ParDo's output watermark: its input watermark, held back by
/// its pending timers' output timestamps.
fn keyed_hold(st: &OpState, in_wm: i64) -> i64 {
    match st {
        OpState::Keyed { run: Some(run), .. } => run.hold().map_or(in_wm, |h| h.min(in_wm)),
        _ => in_wm,
    }
}

/// How often, at most, the real clock's processing-time triggers are
/// looked at (ms).
const PROCESSING_TIME_STEP_MS: i64 = 10;

/// How many rounds of timers a stateful ParDo may fire at one watermark.
const MAX_TIMER_ROUNDS: usize = 100_000;

pub(super) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn op_err(g: &Graph, op: usize, m: impl Into<crate::graph::OpError>) -> EngineError {
    EngineError::Op {
        transform: g.ops[op].name.clone(),
        message: m.into(),
    }
}
