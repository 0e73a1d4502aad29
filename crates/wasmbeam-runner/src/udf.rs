//! Engine operations backed by WASM components: a DoFn (`DoFnExec`) and a
//! CombineFn (`CombineExec`), both calling the component once per bundle.

use std::sync::{Arc, RwLock};

use wasmbeam_engine::{Batch, CombineExec, DoFnExec, OpError, OpResult, Values, Window};
use wasmbeam_wasm_host::{
    CombineFnPool, DoFnInstance, DoFnPool, DoFnSpec, OutputBatch, SideInput, SideInputKind,
    UdfComponent, UdfError, INHERIT_TIMESTAMP, NO_SOURCE,
};

/// Split a UDF's output batch by output index, resolving inherited
/// timestamps, windows and panes from the input elements.
pub fn split_outputs(
    input: &Batch,
    out: &OutputBatch,
    outputs: &mut [Batch],
) -> Result<(), String> {
    for i in 0..out.values.len() {
        let tag = out.tag(i) as usize;
        let target = outputs
            .get_mut(tag)
            .ok_or_else(|| format!("output index {tag} out of range"))?;
        let value = out.values.get(i);
        let src = out.sources[i];
        let ts = out.timestamp(i);
        if src == NO_SOURCE {
            target.push_global(value, ts);
            continue;
        }
        let s = src as usize;
        let ts = if ts == INHERIT_TIMESTAMP {
            input.timestamps[s]
        } else {
            ts
        };
        let (a, b) = (
            input.window_offsets[s] as usize,
            input.window_offsets[s + 1] as usize,
        );
        let windows = input.window_starts[a..b]
            .iter()
            .zip(&input.window_ends[a..b])
            .map(|(&start, &end)| Window { start, end });
        match input.pane_indexes.get(s) {
            Some(&indexes) => target.push_in_pane(value, ts, windows, input.panes[s], indexes),
            None => target.push(value, ts, windows, input.panes[s]),
        }
    }
    Ok(())
}

/// Run `call` on an instance of `pool`, then finish the bundle, and give
/// the instance back; both calls' outputs, split into `outputs` batches
/// (at least one) and resolved against `input`.
pub(crate) fn bundle_outputs(
    pool: &DoFnPool,
    input: &Batch,
    outputs: usize,
    call: impl FnOnce(&mut DoFnInstance) -> Result<OutputBatch, UdfError>,
) -> OpResult<Vec<Batch>> {
    let mut inst = pool.acquire().map_err(OpError::new)?;
    let processed = call(&mut inst);
    let finished = processed.as_ref().ok().map(|_| inst.finish_bundle());
    pool.release(inst);
    let processed = processed.map_err(OpError::new)?;
    let finished = finished
        .unwrap_or_else(|| Ok(OutputBatch::default()))
        .map_err(OpError::new)?;
    let mut outs: Vec<Batch> = (0..outputs.max(1))
        .map(|_| Batch::with_capacity(processed.values.len(), processed.values.data.len()))
        .collect();
    split_outputs(input, &processed, &mut outs)?;
    split_outputs(input, &finished, &mut outs)?;
    Ok(outs)
}

/// A ParDo whose DoFn is a WASM component.
pub struct WasmDoFn {
    component: UdfComponent,
    spec: DoFnSpec,
    side_kinds: Vec<(String, SideInputKind)>,
    pool: RwLock<Option<Arc<DoFnPool>>>,
}

impl WasmDoFn {
    /// `spec.side_inputs` is filled in by `prepare`; `side_kinds` says how each tag is accessed.
    pub fn new(
        component: UdfComponent,
        spec: DoFnSpec,
        side_kinds: Vec<(String, SideInputKind)>,
    ) -> Self {
        WasmDoFn {
            component,
            spec,
            side_kinds,
            pool: RwLock::new(None),
        }
    }

    pub(crate) fn pool(&self) -> Result<Arc<DoFnPool>, String> {
        self.pool
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| "the DoFn was used before it was prepared".to_string())
    }

    /// The limits its instances run under.
    pub(crate) fn limits(&self) -> &wasmbeam_wasm_host::Limits {
        &self.spec.limits
    }

    /// User metrics reported so far.
    pub fn take_metrics(&self) -> wasmbeam_wasm_host::UserMetrics {
        self.pool
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|p| p.take_metrics())
            .unwrap_or_default()
    }
}

impl DoFnExec for WasmDoFn {
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
        let mut spec = self.spec.clone();
        for (tag, batch) in side_inputs {
            let kind = self
                .side_kinds
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, k)| *k)
                .unwrap_or(SideInputKind::Iterable);
            spec.side_inputs.push(SideInput {
                tag,
                kind,
                elements: batch,
            });
        }
        let pool = DoFnPool::new(self.component.clone(), spec).map_err(OpError::new)?;
        *self.pool.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(pool));
        Ok(())
    }

    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let pool = self.pool()?;
        let n = self.spec.outputs.len();
        bundle_outputs(&pool, &input, n, |inst| inst.process_bundle(&input))
    }
}

/// A combine whose CombineFn is a WASM component.
pub struct WasmCombine {
    pool: CombineFnPool,
}

impl WasmCombine {
    /// Wrap a pool.
    pub fn new(pool: CombineFnPool) -> Self {
        WasmCombine { pool }
    }

    /// Take an instance for one call and give it back (a trapped one is dropped).
    fn with_instance<R>(
        &self,
        call: impl FnOnce(
            &mut wasmbeam_wasm_host::CombineFnInstance,
        ) -> Result<R, wasmbeam_wasm_host::UdfError>,
    ) -> OpResult<R> {
        let mut i = self.pool.acquire().map_err(OpError::new)?;
        let r = call(&mut i);
        self.pool.release(i);
        r.map_err(OpError::new)
    }
}

impl CombineExec for WasmCombine {
    fn create(&self) -> OpResult<Vec<u8>> {
        self.with_instance(|i| i.create_accumulator())
    }
    fn add_inputs(&self, accs: &Values, inputs: &Values, ends: &[u32]) -> OpResult<Values> {
        self.with_instance(|i| i.add_inputs(accs, inputs, ends))
    }
    fn merge(&self, accs: &Values, ends: &[u32]) -> OpResult<Values> {
        self.with_instance(|i| i.merge_accumulators(accs, ends))
    }
    fn extract(&self, accs: &Values) -> OpResult<Values> {
        self.with_instance(|i| i.extract_outputs(accs))
    }
}
