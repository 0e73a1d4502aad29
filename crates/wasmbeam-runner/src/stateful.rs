//! Stateful WASM DoFns: user state and timers (contract 0.3.0) on the
//! engine's keyed runs.
//!
//! A DoFn component whose `describe` declares state cells, timer families
//! or window expiration becomes a [`wasmbeam_engine::OpKind::StatefulParDo`]:
//! the engine shuffles its input by key, and each partition gets one
//! [`WasmKeyedRun`], which owns that partition's [`KeyedState`]. For every
//! bundle the run splits elements that are in several windows into one
//! element per window (state belongs to a key *and* a window), computes each
//! element's scope (its nested key bytes and window), and lends the state to
//! a pooled instance for the call. `fire` hands the due timers to the
//! DoFn's `on-timer` as one bundle of pseudo-elements (key, output
//! timestamp, window), then, once no timer is due, calls
//! `on-window-expiration` for the expired windows that hold state and
//! drops their state and timers. Pending timers' output timestamps hold the
//! stage's output watermark back.

use std::sync::Arc;

use wasmbeam_engine::{Batch, KeyedDoFnExec, KeyedRun, KvCodec, OpResult, Window, PANE_NO_FIRING};
use wasmbeam_wasm_host::{DoFnInfo, DoFnPool, KeyedState, Scope, MIN_TIMESTAMP};

use crate::udf::{bundle_outputs, WasmDoFn};

/// A stateful ParDo whose DoFn is a WASM component.
pub struct WasmStatefulDoFn {
    dofn: Arc<WasmDoFn>,
    info: Arc<DoFnInfo>,
    codec: Arc<dyn KvCodec>,
    allowed_lateness: i64,
    outputs: usize,
}

impl WasmStatefulDoFn {
    /// `dofn` runs the component; `info` is what its `describe` declared;
    /// `codec` finds the key of an input element; windows of the input
    /// expire `allowed_lateness` ms after their end.
    pub fn new(
        dofn: Arc<WasmDoFn>,
        info: DoFnInfo,
        codec: Arc<dyn KvCodec>,
        allowed_lateness: i64,
        outputs: usize,
    ) -> Self {
        WasmStatefulDoFn {
            dofn,
            info: Arc::new(info),
            codec,
            allowed_lateness,
            outputs: outputs.max(1),
        }
    }
}

impl KeyedDoFnExec for WasmStatefulDoFn {
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
        use wasmbeam_engine::DoFnExec;
        self.dofn.prepare(side_inputs)
    }

    fn open(&self) -> OpResult<Box<dyn KeyedRun>> {
        Ok(Box::new(WasmKeyedRun {
            pool: self.dofn.pool()?,
            state: KeyedState::new(self.info.clone(), self.allowed_lateness)
                .with_budget(self.dofn.limits().job_memory.clone()),
            codec: self.codec.clone(),
            outputs: self.outputs,
            watermark: MIN_TIMESTAMP,
            processing: None,
        }))
    }
}

/// The state and timers of one partition's keys.
pub struct WasmKeyedRun {
    pool: Arc<DoFnPool>,
    state: KeyedState,
    codec: Arc<dyn KvCodec>,
    outputs: usize,
    watermark: i64,
    processing: Option<i64>,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One pseudo-element per timer or expiring window: the key as value.
fn scope_batch(scopes: &[(&Scope, i64)]) -> Batch {
    let mut b = Batch::with_capacity(scopes.len(), 0);
    for ((key, w), ts) in scopes {
        b.push(key, *ts, [*w], PANE_NO_FIRING);
    }
    b
}

impl WasmKeyedRun {
    fn processing(&self) -> i64 {
        self.processing.unwrap_or_else(wall_ms)
    }
}

impl KeyedRun for WasmKeyedRun {
    fn process(&mut self, input: Batch) -> OpResult<Vec<Batch>> {
        // One element per window: state belongs to a key and a window. A
        // bundle whose elements are each in one window (the usual case)
        // goes as it is.
        let single = input.window_starts.len() == input.len();
        let mut exploded = Batch::default();
        let mut scopes: Vec<Scope> = Vec::with_capacity(input.len());
        let mut last: Option<Arc<[u8]>> = None;
        for e in input.iter() {
            let (k, _) = self.codec.split(e.value)?;
            let key = match &last {
                Some(l) if **l == *k => l.clone(),
                _ => {
                    let a: Arc<[u8]> = Arc::from(k);
                    last = Some(a.clone());
                    a
                }
            };
            for w in e.windows() {
                if !single {
                    exploded.push_in_pane(e.value, e.timestamp, [w], e.pane, e.pane_indexes);
                }
                scopes.push((key.clone(), w));
            }
        }
        let batch = if single { &input } else { &exploded };
        let (wm, now) = (self.watermark, self.processing());
        let state = &mut self.state;
        bundle_outputs(&self.pool, batch, self.outputs, |inst| {
            inst.process_keyed(batch, scopes, state, wm, now)
        })
    }

    fn fire(&mut self, watermark: i64, processing: i64) -> OpResult<Option<Vec<Batch>>> {
        self.observe(watermark, processing);
        let (wm, processing) = (self.watermark, self.processing());
        let fired = self.state.take_due(wm, processing);
        if !fired.is_empty() {
            let pseudo: Vec<(&Scope, i64)> = fired
                .iter()
                .map(|f| (&f.scope, f.output_timestamp))
                .collect();
            let timers = scope_batch(&pseudo);
            let state = &mut self.state;
            return bundle_outputs(&self.pool, &timers, self.outputs, |inst| {
                inst.on_timer(&timers, &fired, state, wm, processing)
            })
            .map(Some);
        }
        let expired = self.state.take_expired(wm);
        if expired.is_empty() {
            return Ok(None);
        }
        let mut outs: Vec<Batch> = (0..self.outputs).map(|_| Batch::default()).collect();
        if self.state.info().window_expiration {
            let with_state: Vec<Scope> = expired
                .iter()
                .filter(|s| self.state.has_state(s))
                .cloned()
                .collect();
            if !with_state.is_empty() {
                let pseudo: Vec<(&Scope, i64)> = with_state
                    .iter()
                    .map(|s| (s, window_output_timestamp(s.1)))
                    .collect();
                let batch = scope_batch(&pseudo);
                drop(pseudo);
                let state = &mut self.state;
                outs = bundle_outputs(&self.pool, &batch, self.outputs, |inst| {
                    inst.on_window_expiration(&batch, with_state, state, wm, processing)
                })?;
            }
        }
        for s in &expired {
            self.state.drop_scope(s);
        }
        Ok(Some(outs))
    }

    fn hold(&self) -> Option<i64> {
        self.state.hold()
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.state.next_processing_timer()
    }

    fn observe(&mut self, watermark: i64, processing: i64) {
        self.watermark = self.watermark.max(watermark);
        self.processing = Some(processing.max(self.processing.unwrap_or(i64::MIN)));
    }
}

/// What an expiring window's outputs are stamped with: its last instant.
fn window_output_timestamp(w: Window) -> i64 {
    w.max_timestamp()
}

/// The engine operation of a stateful WASM ParDo reading PCollection
/// `input` of `c`: its elements must be KVs, and its windowing strategy's
/// allowed lateness says when state expires.
pub fn keyed_op(
    c: &wasmbeam_proto::pipeline::v1::Components,
    input: &str,
    dofn: Arc<WasmDoFn>,
    info: DoFnInfo,
    outputs: usize,
    side_inputs: Vec<(String, wasmbeam_engine::PcId)>,
) -> Result<wasmbeam_engine::OpKind, String> {
    let pc = c
        .pcollections
        .get(input)
        .ok_or_else(|| format!("input PCollection {input:?} is not in the pipeline"))?;
    let coder = wasmbeam_coders::coder_from_proto(&pc.coder_id, &c.coders)
        .map_err(|e| format!("input {input:?}: {e}"))?;
    let codec = crate::codec::CoderKv::new(coder).map_err(|e| {
        format!("a DoFn with state or timers needs KV input (state is kept per key), but input {input:?} is not a KV: {e}")
    })?;
    let allowed_lateness = c
        .windowing_strategies
        .get(&pc.windowing_strategy_id)
        .map_or(0, |w| w.allowed_lateness);
    let codec: Arc<dyn KvCodec> = Arc::new(codec);
    Ok(wasmbeam_engine::OpKind::StatefulParDo {
        exec: Arc::new(WasmStatefulDoFn::new(
            dofn,
            info,
            codec.clone(),
            allowed_lateness,
            outputs,
        )),
        codec,
        side_inputs,
    })
}
