//! One sandboxed store and the guarded call used for every export.

use wasmtime::{Store, Trap};

use crate::config::{Grants, Limits};
use crate::error::UdfError;
use crate::host::{UdfComponent, EPOCH_TICK};
use crate::state::{HostState, UserMetrics};

/// A store with its limits; poisoned after any trap.
pub(crate) struct Sandbox {
    pub store: Store<HostState>,
    pub name: std::sync::Arc<str>,
    pub poisoned: bool,
}

impl Sandbox {
    pub fn new(
        component: &UdfComponent,
        limits: &Limits,
        grants: &Grants,
    ) -> Result<Self, UdfError> {
        let state =
            HostState::new(&component.name, limits, grants).map_err(|e| UdfError::Instantiate {
                name: component.name.to_string(),
                detail: format!("cannot grant the requested directories: {e:#}"),
            })?;
        let mut store = Store::new(component.host.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(limits));
        Ok(Sandbox {
            store,
            name: component.name.clone(),
            poisoned: false,
        })
    }

    /// Run one call into the guest under the bundle deadline, turning traps
    /// into [`UdfError`]s and poisoning the store when one happens.
    pub fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, UdfError> {
        if self.poisoned {
            return Err(UdfError::Trap {
                name: self.name.to_string(),
                message: "this instance trapped earlier and cannot be used again".into(),
            });
        }
        let ticks = deadline_ticks(&self.store.data().limiter.limits);
        self.store.set_epoch_deadline(ticks);
        self.store.data_mut().limiter.memory_cap_hit = false;
        let result = f(&mut self.store);
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.poisoned = true;
                let state = self.store.data();
                let name = self.name.to_string();
                let err = if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    UdfError::Deadline {
                        name,
                        deadline: state.limiter.limits.bundle_deadline,
                    }
                } else if state.limiter.memory_cap_hit {
                    UdfError::MemoryCap {
                        name,
                        cap_bytes: state.limiter.limits.memory_bytes,
                    }
                } else {
                    // One line for humans: the trap itself, then what the
                    // guest last wrote to stderr (its panic message); the
                    // wasm backtrace goes to the debug log.
                    tracing::debug!(udf = %name, "trap details: {e:?}");
                    let mut message = match e.downcast_ref::<Trap>() {
                        Some(t) => t.to_string(),
                        None => e.root_cause().to_string(),
                    };
                    let tail: Vec<String> = state
                        .stderr
                        .recent()
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
                        .map(String::from)
                        .collect();
                    if !tail.is_empty() {
                        message.push_str("; guest stderr: ");
                        message.push_str(&tail.join(" / "));
                    }
                    UdfError::Trap { name, message }
                };
                self.store.data_mut().end_bundle();
                Err(err)
            }
        }
    }

    pub fn end_bundle(&mut self) {
        self.store.data_mut().end_bundle();
    }

    pub fn take_metrics(&mut self) -> UserMetrics {
        std::mem::take(&mut self.store.data_mut().metrics)
    }
}

fn deadline_ticks(limits: &Limits) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1);
    (limits.bundle_deadline.as_millis().div_ceil(tick) as u64).max(1)
}

/// Convert a guest's structured error.
pub(crate) fn guest_error(
    name: &str,
    e: crate::bindings::dofn::wasmbeam::udf::types::UdfError,
) -> UdfError {
    UdfError::Guest {
        name: name.to_string(),
        message: e.message,
        element: e.element,
    }
}
