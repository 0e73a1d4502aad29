//! One sandboxed store and the guarded call used for every export.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use wasmtime::{Store, Trap, UpdateDeadline};

use crate::config::{Grants, Limits};
use crate::error::UdfError;
use crate::host::{UdfComponent, EPOCH_TICK};
use crate::state::{HostState, UserMetrics};

/// A store with its limits; poisoned after any trap.
pub(crate) struct Sandbox {
    pub store: Store<HostState>,
    /// Epoch ticks of the current call's deadline not yet handed out.
    ticks_left: Arc<AtomicU64>,
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
        // The deadline is handed out in slices of INTERRUPT_CHECK, so that
        // between slices the callback can see a cancelled job.
        let ticks_left = Arc::new(AtomicU64::new(0));
        let left = ticks_left.clone();
        let interrupt = limits.interrupt.clone();
        store.epoch_deadline_callback(move |_| {
            if interrupt.as_ref().is_some_and(|i| i.is_set()) {
                return Err(wasmtime::Error::new(CancelledCall));
            }
            let rest = left.load(Ordering::Relaxed);
            if rest == 0 {
                return Err(Trap::Interrupt.into());
            }
            let step = rest.min(check_ticks());
            left.store(rest - step, Ordering::Relaxed);
            Ok(UpdateDeadline::Continue(step))
        });
        let total = deadline_ticks(limits);
        let first = total.min(check_ticks());
        ticks_left.store(total - first, Ordering::Relaxed);
        store.set_epoch_deadline(first);
        Ok(Sandbox {
            store,
            ticks_left,
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
        let first = ticks.min(check_ticks());
        self.ticks_left.store(ticks - first, Ordering::Relaxed);
        self.store.set_epoch_deadline(first);
        self.store.data_mut().limiter.memory_cap_hit = false;
        let result = f(&mut self.store);
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.poisoned = true;
                let state = self.store.data();
                let name = self.name.to_string();
                let err = if e.downcast_ref::<CancelledCall>().is_some() {
                    UdfError::Cancelled { name }
                } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
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

    /// True once the instance's memory has used up half of the headroom
    /// between its initial size and its cap: it should be retired instead of
    /// reused (see [`Limits::memory_bytes`]).
    pub fn worn_out(&self) -> bool {
        let l = &self.store.data().limiter;
        let initial = l.initial_memory_bytes.unwrap_or(0);
        l.memory_bytes > initial + l.limits.memory_bytes.saturating_sub(initial) / 2
    }

    pub fn take_metrics(&mut self) -> UserMetrics {
        std::mem::take(&mut self.store.data_mut().metrics)
    }
}

/// The error a call ends with when its job's interrupt flag is set.
#[derive(Debug)]
struct CancelledCall;

impl std::fmt::Display for CancelledCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the job was cancelled")
    }
}

impl std::error::Error for CancelledCall {}

fn check_ticks() -> u64 {
    (crate::INTERRUPT_CHECK.as_millis() / EPOCH_TICK.as_millis().max(1)).max(1) as u64
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
