//! One sandboxed store and the guarded call used for every export.

use wasmtime::{Store, Trap, UpdateDeadline};

use crate::config::{Grants, Limits};
use crate::error::UdfError;
use crate::host::{UdfComponent, EPOCH_TICK};
use crate::state::{HostState, UserMetrics};

/// A store with its limits; poisoned after any trap.
pub(crate) struct Sandbox {
    pub store: Store<HostState>,
    pub name: std::sync::Arc<str>,
    pub poisoned: bool,
    /// The engine's wasm stack size, to explain a stack overflow.
    max_wasm_stack: usize,
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
        // What one call may hand back is bounded while wasmtime copies it
        // out of the guest, before the host allocates it.
        store.set_hostcall_fuel(limits.max_output_bytes.max(1 << 20));
        // The deadline is wall time (see `clock`): every INTERRUPT_CHECK of
        // running guest code, the callback checks the deadline and Cancel.
        store.epoch_deadline_callback(move |ctx| {
            let guard = &ctx.data().guard;
            if guard.cancelled() {
                return Err(wasmtime::Error::new(CancelledCall));
            }
            if guard.expired() {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Continue(check_ticks()))
        });
        store.data().guard.start(limits.bundle_deadline);
        store.set_epoch_deadline(check_ticks());
        Ok(Sandbox {
            store,
            name: component.name.clone(),
            poisoned: false,
            max_wasm_stack: component.host.max_wasm_stack(),
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
        let state = self.store.data_mut();
        state.guard.start(state.limiter.limits.bundle_deadline);
        state.limiter.memory_cap_hit = false;
        state.limiter.budget_hit = false;
        self.store.set_epoch_deadline(check_ticks());
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
                        message: None,
                    }
                } else if let Some(budget) = state
                    .limiter
                    .limits
                    .job_memory
                    .as_ref()
                    .filter(|_| state.limiter.budget_hit)
                {
                    UdfError::JobMemory {
                        name,
                        budget_bytes: budget.cap(),
                        wanted: "more linear memory".into(),
                    }
                } else if format!("{e:#}").contains("fuel allocated for hostcalls") {
                    UdfError::OutputTooLarge {
                        name,
                        cap_bytes: state.limiter.limits.max_output_bytes,
                        bytes: None,
                    }
                } else {
                    // One line for humans: the trap itself, then what the
                    // guest last wrote to stderr (its panic message); the
                    // wasm backtrace goes to the debug log.
                    tracing::debug!(udf = %name, "trap details: {e:?}");
                    let mut message = match e.downcast_ref::<Trap>() {
                        Some(Trap::StackOverflow) => format!(
                            "{} (the host's wasm stack of {} KiB ran out: unbounded or too deep recursion)",
                            Trap::StackOverflow,
                            self.max_wasm_stack >> 10
                        ),
                        Some(Trap::MemoryOutOfBounds) if shadow_stack_overflow(&e) => format!(
                            "{} (most likely the guest's own stack, kept in its linear memory, ran out: unbounded or too deep recursion)",
                            Trap::MemoryOutOfBounds
                        ),
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

    /// The limits this instance runs under.
    pub fn limits(&self) -> &Limits {
        &self.store.data().limiter.limits
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

impl Drop for Sandbox {
    /// An instance dropped mid-bundle (after a guest error) still flushes
    /// its captured output and reports what it dropped.
    fn drop(&mut self) {
        self.store.data_mut().end_bundle();
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

/// A guest whose stack lives in its linear memory (Rust, C, Go's
/// goroutine stacks) traps with an out-of-bounds access when that stack runs
/// out, usually deep in a recursion: the backtrace then repeats one function
/// many times over.
fn shadow_stack_overflow(e: &wasmtime::Error) -> bool {
    let Some(bt) = e.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    // wasmtime keeps the innermost 20 frames by default.
    let frames = bt.frames();
    if frames.len() < 16 {
        return false;
    }
    let mut counts: std::collections::HashMap<(Option<&str>, u32), usize> = Default::default();
    for f in frames {
        *counts
            .entry((f.module().name(), f.func_index()))
            .or_default() += 1;
    }
    counts.values().any(|&c| c * 4 >= frames.len())
}

impl Sandbox {
    /// Convert a guest's structured error. When its memory was refused
    /// during the call (a Python `MemoryError`, a Go out-of-memory), the
    /// error says which limit refused it.
    pub(crate) fn guest_error(
        &self,
        e: crate::bindings::dofn::wasmbeam::udf::types::UdfError,
    ) -> UdfError {
        let name = self.name.to_string();
        let l = &self.store.data().limiter;
        if l.memory_cap_hit {
            return UdfError::MemoryCap {
                name,
                cap_bytes: l.limits.memory_bytes,
                message: Some(e.message),
            };
        }
        if let Some(b) = l.limits.job_memory.as_ref().filter(|_| l.budget_hit) {
            return UdfError::JobMemory {
                name,
                budget_bytes: b.cap(),
                wanted: format!("more linear memory (the guest reported: {})", e.message),
            };
        }
        UdfError::Guest {
            name,
            message: e.message,
            element: e.element,
        }
    }
}
