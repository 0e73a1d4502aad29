//! DoFn instances and the per-transform pool that reuses them across bundles.

use std::sync::Arc;

use crate::batch::{check_output, host_cost, output_from_wire, SideInputKind, WireScratch};
use crate::bindings::dofn::wasmbeam::udf::types as wit;
use crate::bindings::dofn::DofnUdf;
use crate::config::Reservation;
use crate::config::{Grants, Limits};
use crate::contract::UdfKind;
use crate::error::UdfError;
use crate::host::UdfComponent;
use crate::instance::Sandbox;
use crate::keyed::{
    BuiltinCombine, CellKind, CellSpec, DoFnInfo, FiredTimer, KeyedState, Scope, TimeDomain,
    TimerSpec,
};
use crate::pool::{Idle, Pooled};
use crate::state::{KeyedCall, UserMetrics};
use crate::{Batch, OutputBatch};

impl UdfComponent {
    /// Ask a DoFn component which state and timers it needs for `config`
    /// (its `describe` export), in a throwaway instance.
    pub fn describe(&self, config: &[u8], limits: &Limits) -> Result<DoFnInfo, UdfError> {
        let pre = self.dofn.as_ref().ok_or_else(|| UdfError::Contract {
            name: self.name.to_string(),
            detail: format!("it is a {}, but the transform needs a DoFn", self.kind),
        })?;
        let mut sandbox = Sandbox::new(self, limits, &Grants::default())?;
        let bindings = sandbox.call(|s| pre.instantiate(s))?;
        let iface = bindings.wasmbeam_udf_dofn();
        sandbox.call(|s| iface.call_runtime_init(s))?;
        let info = sandbox
            .call(|s| iface.call_describe(s, config))?
            .map_err(|e| sandbox.guest_error(e))?;
        sandbox.end_bundle();
        Ok(info_from_wire(info))
    }
}

fn info_from_wire(w: wit::DofnInfo) -> DoFnInfo {
    let cells = w
        .state
        .into_iter()
        .map(|c| CellSpec {
            name: c.name,
            kind: match c.kind {
                wit::StateKind::Value => CellKind::Value,
                wit::StateKind::Bag => CellKind::Bag,
                wit::StateKind::Map => CellKind::Map,
                wit::StateKind::Set => CellKind::Set,
                wit::StateKind::OrderedList => CellKind::OrderedList,
                wit::StateKind::Combining(f) => CellKind::Combining(match f {
                    wit::BuiltinCombine::SumInt64 => BuiltinCombine::SumInt64,
                    wit::BuiltinCombine::MinInt64 => BuiltinCombine::MinInt64,
                    wit::BuiltinCombine::MaxInt64 => BuiltinCombine::MaxInt64,
                    wit::BuiltinCombine::SumDouble => BuiltinCombine::SumDouble,
                    wit::BuiltinCombine::MinDouble => BuiltinCombine::MinDouble,
                    wit::BuiltinCombine::MaxDouble => BuiltinCombine::MaxDouble,
                    wit::BuiltinCombine::Count => BuiltinCombine::Count,
                }),
            },
        })
        .collect();
    let timers = w
        .timers
        .into_iter()
        .map(|t| TimerSpec {
            name: t.name,
            domain: match t.domain {
                wit::TimeDomain::EventTime => TimeDomain::EventTime,
                wit::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
            },
        })
        .collect();
    DoFnInfo {
        cells,
        timers,
        window_expiration: w.window_expiration,
    }
}

/// A materialised side input handed to every instance before its first bundle.
#[derive(Debug, Clone)]
pub struct SideInput {
    /// The side input's tag in the ParDo.
    pub tag: String,
    /// Iterable or multimap access.
    pub kind: SideInputKind,
    /// Its elements, with their windows.
    pub elements: Batch,
}

/// Everything that configures the instances of one DoFn transform.
#[derive(Debug, Clone, Default)]
pub struct DoFnSpec {
    /// The transform's opaque config bytes, passed to `setup`.
    pub config: Vec<u8>,
    /// Output tags, main output first.
    pub outputs: Vec<String>,
    /// Side inputs, loaded after `setup`.
    pub side_inputs: Vec<SideInput>,
    /// Resource limits per instance.
    pub limits: Limits,
    /// Sandbox grants.
    pub grants: Grants,
}

/// A set-up DoFn instance. Use it for whole bundles: any number of
/// [`DoFnInstance::process_bundle`] calls, then [`DoFnInstance::finish_bundle`].
pub struct DoFnInstance {
    sandbox: Sandbox,
    bindings: DofnUdf,
    outputs: usize,
    in_bundle: bool,
    scratch: WireScratch,
}

impl DoFnInstance {
    /// Instantiate `component` and run `runtime-init`, `setup` and
    /// `load-side-input` as `spec` says.
    pub fn new(component: &UdfComponent, spec: &DoFnSpec) -> Result<Self, UdfError> {
        let pre = component.dofn.as_ref().ok_or_else(|| UdfError::Contract {
            name: component.name.to_string(),
            detail: format!("it is a {}, but the transform needs a DoFn", component.kind),
        })?;
        let mut sandbox = Sandbox::new(component, &spec.limits, &spec.grants)?;
        let bindings = sandbox.call(|s| pre.instantiate(s)).map_err(|e| match e {
            UdfError::Trap { name, message } => UdfError::Instantiate {
                name,
                detail: message,
            },
            e => e,
        })?;
        component.instantiated();
        let iface = bindings.wasmbeam_udf_dofn();
        sandbox.call(|s| iface.call_runtime_init(s))?;
        let r = sandbox.call(|s| iface.call_describe(s, &spec.config))?;
        r.map_err(|e| sandbox.guest_error(e))?;
        let r = sandbox.call(|s| iface.call_setup(s, &spec.config, &spec.outputs))?;
        r.map_err(|e| sandbox.guest_error(e))?;
        let mut scratch = WireScratch::default();
        for si in &spec.side_inputs {
            let elements = scratch.input(&si.elements);
            let r = sandbox.call(|s| iface.call_load_side_input(s, &si.tag, si.kind, elements))?;
            r.map_err(|e| sandbox.guest_error(e))?;
        }
        sandbox.end_bundle();
        Ok(DoFnInstance {
            sandbox,
            bindings,
            outputs: spec.outputs.len().max(1),
            in_bundle: false,
            scratch,
        })
    }

    /// Process (a chunk of) the current bundle.
    pub fn process_bundle(&mut self, batch: &Batch) -> Result<OutputBatch, UdfError> {
        self.in_bundle = true;
        let iface = self.bindings.wasmbeam_udf_dofn();
        let wire = self.scratch.input(batch);
        let out = self.sandbox.call(|s| iface.call_process_bundle(s, wire))?;
        let out = out.map_err(|e| self.sandbox.guest_error(e))?;
        self.checked(out, Some(batch))
    }

    /// Unpack and check a guest's output for `input` (`None` in
    /// finish-bundle), bound its size and charge it to the job's budget.
    fn checked(
        &self,
        out: crate::bindings::dofn::wasmbeam::udf::types::OutputBatch,
        input: Option<&Batch>,
    ) -> Result<OutputBatch, UdfError> {
        let name = || self.sandbox.name.to_string();
        let limits = self.sandbox.limits();
        let cost = host_cost(
            out.values.data.len(),
            (out.values.offsets.len() / 4).saturating_sub(1),
        );
        if cost > limits.max_output_bytes {
            return Err(UdfError::OutputTooLarge {
                name: name(),
                cap_bytes: limits.max_output_bytes,
                bytes: Some(cost),
            });
        }
        let reservation = Reservation::take(limits.job_memory.as_ref(), cost).ok_or_else(|| {
            UdfError::JobMemory {
                name: name(),
                budget_bytes: limits.job_memory.as_ref().map_or(0, |b| b.cap()),
                wanted: format!("{} KiB to hold a bundle's output", cost >> 10),
            }
        })?;
        let mut out = output_from_wire(out)
            .and_then(|out| check_output(&out, input, self.outputs).map(|()| out))
            .map_err(|detail| UdfError::BadOutput {
                name: name(),
                detail,
            })?;
        out.reservation = reservation;
        Ok(out)
    }

    /// Process a bundle chunk of a stateful DoFn: element `i` reads and
    /// writes the state of `scopes[i]` (its key and its only window) in
    /// `state`, which is lent to the instance for the call.
    pub fn process_keyed(
        &mut self,
        batch: &Batch,
        scopes: Vec<Scope>,
        state: &mut KeyedState,
        watermark: i64,
        processing: i64,
    ) -> Result<OutputBatch, UdfError> {
        let clock = (watermark, processing);
        self.keyed(batch, KeyedExport::Process, scopes, state, clock)
    }

    /// Hand fired timers to the DoFn. `timers` holds one pseudo-element per
    /// timer (value: the key, timestamp: the output timestamp, window: the
    /// timer's); outputs name their timer as their source.
    pub fn on_timer(
        &mut self,
        timers: &Batch,
        fired: &[FiredTimer],
        state: &mut KeyedState,
        watermark: i64,
        processing: i64,
    ) -> Result<OutputBatch, UdfError> {
        let scopes = fired.iter().map(|f| f.scope.clone()).collect();
        let clock = (watermark, processing);
        self.keyed(timers, KeyedExport::Timers(fired), scopes, state, clock)
    }

    /// Tell the DoFn that the windows of `expiring` (one pseudo-element
    /// per key and window, as in [`DoFnInstance::on_timer`]) expired;
    /// `scopes[i]` is element i's key and window.
    pub fn on_window_expiration(
        &mut self,
        expiring: &Batch,
        scopes: Vec<Scope>,
        state: &mut KeyedState,
        watermark: i64,
        processing: i64,
    ) -> Result<OutputBatch, UdfError> {
        let clock = (watermark, processing);
        self.keyed(expiring, KeyedExport::Expiration, scopes, state, clock)
    }

    /// One keyed call: lend `state` with the call's scopes, call the
    /// export on `input`, take the state back (also after a trap).
    fn keyed(
        &mut self,
        input: &Batch,
        export: KeyedExport<'_>,
        scopes: Vec<Scope>,
        state: &mut KeyedState,
        (watermark, processing): (i64, i64),
    ) -> Result<OutputBatch, UdfError> {
        self.in_bundle = true;
        let iface = self.bindings.wasmbeam_udf_dofn();
        let ts = input.timestamps.clone();
        lend(&mut self.sandbox, state, scopes, ts, watermark, processing);
        let wire = self.scratch.input(input);
        let out = match export {
            KeyedExport::Process => self.sandbox.call(|s| iface.call_process_bundle(s, wire)),
            KeyedExport::Expiration => self
                .sandbox
                .call(|s| iface.call_on_window_expiration(s, wire)),
            KeyedExport::Timers(fired) => {
                let batch = timer_batch(wire.clone(), fired);
                self.sandbox.call(|s| iface.call_on_timer(s, &batch))
            }
        };
        take_back(&mut self.sandbox, state);
        let out = out?.map_err(|e| self.sandbox.guest_error(e))?;
        state.settle().map_err(|(bytes, cap)| UdfError::JobMemory {
            name: self.sandbox.name.to_string(),
            budget_bytes: cap,
            wanted: format!(
                "{} KiB for the user state of its keys (state does not spill to disk yet)",
                bytes >> 10
            ),
        })?;
        self.checked(out, Some(input))
    }

    /// Finish the current bundle; outputs have no source element.
    pub fn finish_bundle(&mut self) -> Result<OutputBatch, UdfError> {
        self.in_bundle = false;
        let iface = self.bindings.wasmbeam_udf_dofn();
        let out = self.sandbox.call(|s| iface.call_finish_bundle(s));
        self.sandbox.end_bundle();
        let out = out?.map_err(|e| self.sandbox.guest_error(e))?;
        self.checked(out, None)
    }

    /// Process a whole bundle: `process-bundle` then `finish-bundle`.
    pub fn run_bundle(&mut self, batch: &Batch) -> Result<(OutputBatch, OutputBatch), UdfError> {
        let processed = self.process_bundle(batch)?;
        let finished = self.finish_bundle()?;
        Ok((processed, finished))
    }

    /// Metrics reported since the last call.
    pub fn take_metrics(&mut self) -> UserMetrics {
        self.sandbox.take_metrics()
    }

    /// True when the instance trapped and must be dropped.
    pub fn is_poisoned(&self) -> bool {
        self.sandbox.poisoned
    }
}

/// The export a keyed call goes to.
enum KeyedExport<'a> {
    Process,
    Timers(&'a [FiredTimer]),
    Expiration,
}

/// The contract's timer batch: the pseudo-elements plus each timer's
/// family, tag and due time.
fn timer_batch(timers: wit::InputBatch, fired: &[FiredTimer]) -> wit::TimerBatch {
    let mut families = Vec::with_capacity(4 * fired.len());
    let mut fire_times = Vec::with_capacity(8 * fired.len());
    let mut tags = wit::Values {
        data: Vec::new(),
        offsets: 0u32.to_le_bytes().to_vec(),
    };
    for f in fired {
        families.extend_from_slice(&f.family.to_le_bytes());
        fire_times.extend_from_slice(&f.fire.to_le_bytes());
        tags.data.extend_from_slice(f.tag.as_bytes());
        tags.offsets
            .extend_from_slice(&(tags.data.len() as u32).to_le_bytes());
    }
    wit::TimerBatch {
        timers,
        families,
        tags,
        fire_times,
    }
}

/// Lend `state` to the store for one call.
fn lend(
    sandbox: &mut Sandbox,
    state: &mut KeyedState,
    scopes: Vec<Scope>,
    timestamps: Vec<i64>,
    watermark: i64,
    processing: i64,
) {
    let empty = KeyedState::new(Default::default(), 0);
    sandbox.store.data_mut().keyed = Some(KeyedCall {
        state: std::mem::replace(state, empty),
        scopes,
        timestamps,
        watermark,
        processing,
    });
}

/// Take the lent state back after the call (also after a trap).
fn take_back(sandbox: &mut Sandbox, state: &mut KeyedState) {
    if let Some(call) = sandbox.store.data_mut().keyed.take() {
        *state = call.state;
    }
}

impl Pooled for DoFnInstance {
    fn take_metrics(&mut self) -> UserMetrics {
        DoFnInstance::take_metrics(self)
    }
    fn reusable(&self) -> bool {
        !self.is_poisoned() && !self.in_bundle && !self.sandbox.worn_out()
    }
}

impl Drop for DoFnInstance {
    fn drop(&mut self) {
        if !self.sandbox.poisoned {
            let iface = self.bindings.wasmbeam_udf_dofn();
            let _ = self.sandbox.call(|s| iface.call_teardown(s));
        }
    }
}

/// Set-up instances of one DoFn transform, shared by worker threads.
pub struct DoFnPool {
    component: UdfComponent,
    spec: Arc<DoFnSpec>,
    idle: Idle<DoFnInstance>,
}

impl DoFnPool {
    /// A pool for `component` configured by `spec`. One instance is created
    /// at once so that a component that cannot start fails here, before any
    /// data flows.
    pub fn new(component: UdfComponent, spec: DoFnSpec) -> Result<Self, UdfError> {
        if component.kind != UdfKind::DoFn {
            return Err(UdfError::Contract {
                name: component.name.to_string(),
                detail: format!("it is a {}, but the transform needs a DoFn", component.kind),
            });
        }
        let first = DoFnInstance::new(&component, &spec)?;
        Ok(DoFnPool {
            component,
            spec: Arc::new(spec),
            idle: Idle::new(first),
        })
    }

    /// Take an idle instance, or set up a new one.
    pub fn acquire(&self) -> Result<DoFnInstance, UdfError> {
        self.idle
            .acquire(|| DoFnInstance::new(&self.component, &self.spec))
    }

    /// Give an instance back; a poisoned one is dropped instead.
    pub fn release(&self, inst: DoFnInstance) {
        self.idle.release(inst)
    }

    /// Acquire, run one whole bundle, release. After a trap the failed
    /// instance is discarded; the next bundle gets a fresh one.
    pub fn run_bundle(&self, batch: &Batch) -> Result<(OutputBatch, OutputBatch), UdfError> {
        let mut inst = self.acquire()?;
        let r = inst.run_bundle(batch);
        self.release(inst);
        r
    }

    /// User metrics of every released instance, since the last call.
    pub fn take_metrics(&self) -> UserMetrics {
        self.idle.take_metrics()
    }

    /// The component this pool runs.
    pub fn component(&self) -> &UdfComponent {
        &self.component
    }
}
