//! Time inside a call: the wall-clock deadline of the call in progress, and
//! the guest's monotonic clock, whose sleeps never outlast that deadline.
//!
//! Epoch interruption only fires while WASM code runs. A guest blocked in a
//! host call (`std::thread::sleep`, Go's `time.Sleep`: WASI
//! `monotonic-clock.subscribe-*` then `poll`) would otherwise sleep through
//! its deadline and through Cancel. So wasmbeam links its own
//! `wasi:clocks/monotonic-clock` in place of wasmtime-wasi's: a sleep wakes
//! at the earliest of the time asked for, the call's deadline, and the job's
//! interrupt, checking every [`SLEEP_STEP`]. Once the guest runs again, the
//! next epoch check sees that the deadline passed (or the job was cancelled)
//! and stops the call, so time spent blocked counts like time spent running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};

use crate::config::Interrupt;
use crate::state::HostState;

/// How often a sleeping guest's wait re-checks its deadline and interrupt.
pub(crate) const SLEEP_STEP: Duration = Duration::from_millis(20);

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the process's clock base.
fn now_nanos() -> u64 {
    base().elapsed().as_nanos().min(u64::MAX as u128) as u64
}

/// The deadline of the call in progress and the job's interrupt flag, shared
/// by a store and the sleeps its guest starts.
#[derive(Clone, Default)]
pub(crate) struct CallGuard {
    deadline: Arc<AtomicU64>,
    interrupt: Option<Interrupt>,
}

impl CallGuard {
    pub fn new(interrupt: Option<Interrupt>) -> Self {
        CallGuard {
            deadline: Arc::new(AtomicU64::new(u64::MAX)),
            interrupt,
        }
    }

    /// A call starts now and may run for `budget`.
    pub fn start(&self, budget: Duration) {
        let end = now_nanos().saturating_add(budget.as_nanos().min(u64::MAX as u128) as u64);
        self.deadline.store(end, Ordering::Relaxed);
    }

    /// True once the call's deadline has passed.
    pub fn expired(&self) -> bool {
        now_nanos() >= self.deadline.load(Ordering::Relaxed)
    }

    /// True once the job was cancelled.
    pub fn cancelled(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|i| i.is_set())
    }
}

/// A guest's sleep: ready at `until` (never, for `None`), or as soon as the
/// call's deadline passes or the job is cancelled.
struct GuardedSleep {
    until: Option<tokio::time::Instant>,
    guard: CallGuard,
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuardedSleep {
    async fn ready(&mut self) {
        loop {
            if self.guard.expired() || self.guard.cancelled() {
                return;
            }
            let now = tokio::time::Instant::now();
            let step = match self.until {
                Some(u) if u <= now => return,
                Some(u) => (u - now).min(SLEEP_STEP),
                None => SLEEP_STEP,
            };
            tokio::time::sleep(step).await;
        }
    }
}

impl HostState {
    fn sleep_for(&mut self, d: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        let sleep = GuardedSleep {
            until: tokio::time::Instant::now().checked_add(d),
            guard: self.guard.clone(),
        };
        let r = self.table.push(sleep)?;
        subscribe(&mut self.table, r)
    }
}

impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(now_nanos())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(1)
    }

    fn subscribe_instant(
        &mut self,
        when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep_for(Duration::from_nanos(when.saturating_sub(now_nanos())))
    }

    fn subscribe_duration(
        &mut self,
        d: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.sleep_for(Duration::from_nanos(d))
    }
}
