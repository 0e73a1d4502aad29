//! The idle list shared by DoFn and CombineFn pools: set-up instances wait
//! here between bundles; a poisoned or mid-bundle instance is never returned.

use std::sync::Mutex;

use crate::state::UserMetrics;

/// What the idle list needs from an instance.
pub(crate) trait Pooled {
    /// Metrics reported since the last call.
    fn take_metrics(&mut self) -> UserMetrics;
    /// False once the instance must be dropped (after a trap, or when its
    /// memory has grown too far to keep).
    fn reusable(&self) -> bool;
}

pub(crate) struct Idle<I> {
    idle: Mutex<Vec<I>>,
    metrics: Mutex<UserMetrics>,
}

impl<I: Pooled> Idle<I> {
    pub fn new(first: I) -> Self {
        Idle {
            idle: Mutex::new(vec![first]),
            metrics: Mutex::default(),
        }
    }

    /// An idle instance, or `make()` a new one.
    pub fn acquire<E>(&self, make: impl FnOnce() -> Result<I, E>) -> Result<I, E> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(i) => Ok(i),
            None => make(),
        }
    }

    /// Collect the instance's metrics and keep it if it can be reused.
    pub fn release(&self, mut inst: I) {
        let m = inst.take_metrics();
        if !m.is_empty() {
            self.metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .merge(m);
        }
        if inst.reusable() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(inst);
        }
    }

    /// Metrics of every released instance since the last call.
    pub fn take_metrics(&self) -> UserMetrics {
        std::mem::take(&mut *self.metrics.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
