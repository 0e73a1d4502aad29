//! DoFn instances and the per-transform pool that reuses them across bundles.

use std::sync::Arc;

use crate::batch::{check_output, host_cost, output_from_wire, SideInputKind, WireScratch};
use crate::bindings::dofn::DofnUdf;
use crate::config::Reservation;
use crate::config::{Grants, Limits};
use crate::contract::UdfKind;
use crate::error::UdfError;
use crate::host::UdfComponent;
use crate::instance::Sandbox;
use crate::pool::{Idle, Pooled};
use crate::state::UserMetrics;
use crate::{Batch, OutputBatch};

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
