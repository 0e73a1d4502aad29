//! CombineFn instances and their pool. Every call works on many groups at
//! once (one group per key in the runner), never on one element.

use crate::batch::{pack_u32, values_from_wire, WireScratch};
use crate::bindings::combinefn::CombinefnUdf;
use crate::bindings::dofn::wasmbeam::udf::types as wit;
use crate::config::{Grants, Limits};
use crate::contract::UdfKind;
use crate::error::UdfError;
use crate::host::UdfComponent;
use crate::instance::Sandbox;
use crate::pool::{Idle, Pooled};
use crate::state::UserMetrics;
use crate::Values;

/// A set-up CombineFn instance.
pub struct CombineFnInstance {
    sandbox: Sandbox,
    bindings: CombinefnUdf,
    scratch: WireScratch,
    ends: Vec<u8>,
}

/// Unpack a guest's `values` and check it holds one entry per group.
fn check_groups(name: &str, out: wit::Values, groups: usize) -> Result<Values, UdfError> {
    values_from_wire(out)
        .and_then(|out| out.check().map(|()| out))
        .and_then(|out| {
            if out.len() == groups {
                Ok(out)
            } else {
                Err(format!(
                    "expected {groups} accumulators or outputs, got {}",
                    out.len()
                ))
            }
        })
        .map_err(|detail| UdfError::BadOutput {
            name: name.to_string(),
            detail,
        })
}

impl CombineFnInstance {
    /// Instantiate and set up with `config`.
    pub fn new(
        component: &UdfComponent,
        config: &[u8],
        limits: &Limits,
        grants: &Grants,
    ) -> Result<Self, UdfError> {
        let pre = component
            .combinefn
            .as_ref()
            .ok_or_else(|| UdfError::Contract {
                name: component.name.to_string(),
                detail: format!(
                    "it is a {}, but the transform needs a CombineFn",
                    component.kind
                ),
            })?;
        let mut sandbox = Sandbox::new(component, limits, grants)?;
        let bindings = sandbox.call(|s| pre.instantiate(s)).map_err(|e| match e {
            UdfError::Trap { name, message } => UdfError::Instantiate {
                name,
                detail: message,
            },
            e => e,
        })?;
        component.instantiated();
        let iface = bindings.wasmbeam_udf_combinefn();
        sandbox.call(|s| iface.call_runtime_init(s))?;
        let r = sandbox.call(|s| iface.call_setup(s, config))?;
        r.map_err(|e| sandbox.guest_error(e))?;
        sandbox.end_bundle();
        Ok(CombineFnInstance {
            sandbox,
            bindings,
            scratch: WireScratch::default(),
            ends: Vec::new(),
        })
    }

    /// A fresh accumulator.
    pub fn create_accumulator(&mut self) -> Result<Vec<u8>, UdfError> {
        let iface = self.bindings.wasmbeam_udf_combinefn();
        let r = self.sandbox.call(|s| iface.call_create_accumulator(s))?;
        r.map_err(|e| self.sandbox.guest_error(e))
    }

    /// Add each group's inputs to its accumulator (`group_ends[g]` is the end
    /// of group g in `inputs`).
    pub fn add_inputs(
        &mut self,
        accumulators: &Values,
        inputs: &Values,
        group_ends: &[u32],
    ) -> Result<Values, UdfError> {
        let iface = self.bindings.wasmbeam_udf_combinefn();
        let [accs, ins] = self.scratch.values([accumulators, inputs]);
        pack_u32(&mut self.ends, group_ends);
        let ends = &self.ends;
        let r = self
            .sandbox
            .call(|s| iface.call_add_inputs(s, accs, ins, ends))?;
        let out = r.map_err(|e| self.sandbox.guest_error(e))?;
        check_groups(&self.sandbox.name, out, group_ends.len())
    }

    /// Merge each group of accumulators into one.
    pub fn merge_accumulators(
        &mut self,
        accumulators: &Values,
        group_ends: &[u32],
    ) -> Result<Values, UdfError> {
        let iface = self.bindings.wasmbeam_udf_combinefn();
        let [accs] = self.scratch.values([accumulators]);
        pack_u32(&mut self.ends, group_ends);
        let ends = &self.ends;
        let r = self
            .sandbox
            .call(|s| iface.call_merge_accumulators(s, accs, ends))?;
        let out = r.map_err(|e| self.sandbox.guest_error(e))?;
        check_groups(&self.sandbox.name, out, group_ends.len())
    }

    /// The output of each accumulator.
    pub fn extract_outputs(&mut self, accumulators: &Values) -> Result<Values, UdfError> {
        let iface = self.bindings.wasmbeam_udf_combinefn();
        let [accs] = self.scratch.values([accumulators]);
        let r = self.sandbox.call(|s| iface.call_extract_outputs(s, accs))?;
        self.sandbox.end_bundle();
        let out = r.map_err(|e| self.sandbox.guest_error(e))?;
        check_groups(&self.sandbox.name, out, accumulators.len())
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

impl Pooled for CombineFnInstance {
    fn take_metrics(&mut self) -> UserMetrics {
        CombineFnInstance::take_metrics(self)
    }
    fn reusable(&self) -> bool {
        !self.is_poisoned() && !self.sandbox.worn_out()
    }
}

/// Set-up instances of one CombineFn transform, shared by worker threads.
pub struct CombineFnPool {
    component: UdfComponent,
    config: Vec<u8>,
    limits: Limits,
    grants: Grants,
    idle: Idle<CombineFnInstance>,
}

impl CombineFnPool {
    /// A pool; one instance is set up at once so bad components fail early.
    pub fn new(
        component: UdfComponent,
        config: Vec<u8>,
        limits: Limits,
        grants: Grants,
    ) -> Result<Self, UdfError> {
        if component.kind != UdfKind::CombineFn {
            return Err(UdfError::Contract {
                name: component.name.to_string(),
                detail: format!(
                    "it is a {}, but the transform needs a CombineFn",
                    component.kind
                ),
            });
        }
        let first = CombineFnInstance::new(&component, &config, &limits, &grants)?;
        Ok(CombineFnPool {
            component,
            config,
            limits,
            grants,
            idle: Idle::new(first),
        })
    }

    /// Take an idle instance, or set up a new one.
    pub fn acquire(&self) -> Result<CombineFnInstance, UdfError> {
        self.idle.acquire(|| {
            CombineFnInstance::new(&self.component, &self.config, &self.limits, &self.grants)
        })
    }

    /// Give an instance back; a poisoned one is dropped instead.
    pub fn release(&self, inst: CombineFnInstance) {
        self.idle.release(inst)
    }

    /// User metrics of every released instance, since the last call.
    pub fn take_metrics(&self) -> UserMetrics {
        self.idle.take_metrics()
    }
}
