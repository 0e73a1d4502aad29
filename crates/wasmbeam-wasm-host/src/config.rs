//! Limits and grants: what one UDF instance may use.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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
}

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
