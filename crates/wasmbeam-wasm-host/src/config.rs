//! Limits and grants: what one UDF instance may use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A flag that stops running UDF calls: once set, every call in progress
/// ends within about [`crate::INTERRUPT_CHECK`] with
/// [`crate::UdfError::Cancelled`]. Used to cancel jobs promptly even while a
/// UDF is busy.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(pub Arc<AtomicBool>);

impl Interrupt {
    /// Is it set?
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl PartialEq for Interrupt {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Interrupt {}

/// One memory budget shared by every UDF instance of a job: their linear
/// memories together, plus the host's copies of the bundle outputs they
/// return while the runner holds them. Cheap to clone (clones share the
/// budget).
///
/// Instances reserve from it as their memories grow and give it back when
/// they are dropped; a growth or an output that does not fit is refused, and
/// the call fails with [`crate::UdfError::JobMemory`], naming the budget.
#[derive(Debug, Clone)]
pub struct MemoryBudget(Arc<BudgetInner>);

#[derive(Debug)]
struct BudgetInner {
    cap: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Self {
        MemoryBudget(Arc::new(BudgetInner {
            cap,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }
    /// The budget in bytes.
    pub fn cap(&self) -> usize {
        self.0.cap
    }
    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }
    /// The most bytes ever reserved at once.
    pub fn peak(&self) -> usize {
        self.0.peak.load(Ordering::Relaxed)
    }
    /// Reserve `n` bytes; false (and nothing reserved) when they do not fit.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        let inner = &self.0;
        let mut cur = inner.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|&x| x <= inner.cap) else {
                return false;
            };
            match inner
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    inner.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(now) => cur = now,
            }
        }
    }
    /// Give back `n` reserved bytes.
    pub(crate) fn release(&self, n: usize) {
        let _ = self
            .0
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

impl PartialEq for MemoryBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for MemoryBudget {}

/// Bytes reserved from a [`MemoryBudget`], given back on drop. Held by an
/// [`crate::OutputBatch`] for the host-side copy of a guest's output.
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<MemoryBudget>,
    bytes: usize,
}

impl Reservation {
    /// Reserve `bytes` from `budget` (nothing to reserve without a budget).
    pub(crate) fn take(budget: Option<&MemoryBudget>, bytes: usize) -> Option<Reservation> {
        match budget {
            None => Some(Reservation::default()),
            Some(b) if b.try_reserve(bytes) => Some(Reservation {
                budget: Some(b.clone()),
                bytes,
            }),
            Some(_) => None,
        }
    }
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.bytes);
        }
    }
}

/// A copy of a batch holds no reservation of its own: only the original
/// counts against the budget.
impl Clone for Reservation {
    fn clone(&self) -> Self {
        Reservation::default()
    }
}

/// Reservations never make two batches differ.
impl PartialEq for Reservation {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Reservation {}

/// Resource limits for each UDF instance. Defaults are safe for untrusted code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Cap on each linear memory, in bytes (default 256 MiB). An instance
    /// whose memory has grown through half of the room between its initial
    /// size and this cap is retired after its bundle (dropped, not reused),
    /// so a guest that leaks a little per bundle is replaced by a fresh
    /// instance long before a bundle would hit the cap.
    pub memory_bytes: usize,
    /// Cap on elements per table (default 100,000).
    pub table_elements: usize,
    /// Cap on core instances in one component instance (default 64).
    pub instances: usize,
    /// Cap on tables in one component instance (default 64).
    pub tables: usize,
    /// Cap on linear memories in one component instance (default 16).
    pub memories: usize,
    /// Wall-clock budget for one call into the UDF (default 60 s).
    pub bundle_deadline: Duration,
    /// Bytes of log lines, stdout and stderr kept per bundle (default 64 KiB).
    pub log_bytes_per_bundle: usize,
    /// Stops calls in progress when set (default: none).
    pub interrupt: Option<Interrupt>,
    /// Cap on what one call may return to the host (default 128 MiB),
    /// counted as the host will hold it: the values' bytes plus
    /// [`OUTPUT_ELEMENT_COST`] per output element. It is also the call's
    /// wasmtime host-call fuel, so larger output is refused while it is
    /// being copied out of the guest, before the host allocates it.
    pub max_output_bytes: usize,
    /// The job's memory budget shared by all its instances (default: none,
    /// only the per-instance cap applies).
    pub job_memory: Option<MemoryBudget>,
}

/// Host bytes counted per output element against
/// [`Limits::max_output_bytes`] and the job budget, besides the value's own
/// bytes: its offset, source, tag and timestamp on the wire, then its
/// timestamp, window and pane in the runner's batches.
pub const OUTPUT_ELEMENT_COST: usize = 48;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            table_elements: 100_000,
            instances: 64,
            tables: 64,
            memories: 16,
            bundle_deadline: Duration::from_secs(60),
            log_bytes_per_bundle: 64 << 10,
            interrupt: None,
            max_output_bytes: 128 << 20,
            job_memory: None,
        }
    }
}

/// Capabilities granted to a UDF beyond the empty default sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host directories mounted read-only: (host path, path seen by the guest).
    pub read_only_dirs: Vec<(PathBuf, String)>,
}

/// Engine-wide settings of a [`crate::UdfHost`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Max wasm stack per call, in bytes (default 1 MiB).
    pub max_wasm_stack: usize,
    /// The largest memory any instance may be granted; pooling slots are
    /// reserved at this size (default 4 GiB of address space, not RAM).
    pub max_memory_bytes: usize,
    /// Component instances the pool can hold at once (default 256).
    pub pool_instances: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: default_cache_dir(),
            max_wasm_stack: 1 << 20,
            max_memory_bytes: 4 << 30,
            pool_instances: 256,
        }
    }
}

/// `$WASMBEAM_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmbeam/components`, else
/// `$HOME/.cache/wasmbeam/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WASMBEAM_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmbeam").join("components"))
}
