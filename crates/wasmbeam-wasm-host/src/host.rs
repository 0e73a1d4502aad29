//! The engine, the epoch ticker, loading (with the disk cache) and linking.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{combinefn::CombinefnUdfPre, dofn::DofnUdfPre};
use crate::cache::DiskCache;
use crate::config::HostConfig;
use crate::contract::{check, UdfKind};
use crate::error::UdfError;
use crate::state::HostState;

/// How often the engine's epoch advances; deadlines are counted in ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<DiskCache>,
    max_wasm_stack: usize,
    _ticker: Ticker,
}

/// The wasmtime engine and everything shared by all UDFs of a process.
/// Cheap to clone.
#[derive(Clone)]
pub struct UdfHost {
    inner: Arc<Inner>,
}

/// A compiled, contract-checked component, ready to instantiate quickly.
#[derive(Clone)]
pub struct UdfComponent {
    pub(crate) name: Arc<str>,
    pub(crate) sha256: Arc<str>,
    pub(crate) kind: UdfKind,
    pub(crate) dofn: Option<DofnUdfPre<HostState>>,
    pub(crate) combinefn: Option<CombinefnUdfPre<HostState>>,
    pub(crate) host: UdfHost,
    /// Compiled code not yet in the disk cache: it is written there only
    /// once an instance of it has started, so a component that can never
    /// be instantiated never reaches the cache.
    uncached: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

impl std::fmt::Debug for UdfComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdfComponent")
            .field("name", &self.name)
            .field("sha256", &self.sha256)
            .field("kind", &self.kind)
            .finish()
    }
}

impl UdfComponent {
    /// The name given at load time (a file name or artifact id).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Hex sha256 of the component bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// DoFn or CombineFn.
    pub fn kind(&self) -> UdfKind {
        self.kind
    }

    /// An instance started: the compiled code may now go to the disk cache.
    pub(crate) fn instantiated(&self) {
        let pending = self
            .uncached
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let (Some(compiled), Some(cache)) = (pending, &self.host.inner.cache) {
            cache.put(&self.sha256, &compiled);
        }
    }
}

impl UdfHost {
    /// Build the engine. Fails only on an invalid configuration.
    pub fn new(config: HostConfig) -> Result<Self, String> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.pool_instances)
            .total_core_instances(config.pool_instances.saturating_mul(16))
            .total_memories(config.pool_instances.saturating_mul(4))
            .total_tables(config.pool_instances.saturating_mul(16))
            .total_stacks(0)
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .max_core_instances_per_component(64)
            .max_memory_size(config.max_memory_bytes)
            .max_core_instance_size(16 << 20)
            .max_component_instance_size(16 << 20)
            .table_elements(100_000);
        let mut c = Config::new();
        c.wasm_component_model(true)
            .concurrency_support(false)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .max_wasm_stack(config.max_wasm_stack)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&c).map_err(|e| format!("cannot configure wasmtime: {e}"))?;

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| format!("cannot link WASI: {e}"))?;
        // wasmbeam's monotonic clock replaces wasmtime-wasi's, so that a
        // sleeping guest wakes at its deadline or on Cancel (see `clock`).
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<
            HostState,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |s| s)
        .map_err(|e| format!("cannot link the monotonic clock: {e}"))?;
        linker.allow_shadowing(false);
        crate::bindings::dofn::DofnUdf::add_to_linker::<
            HostState,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |s| s)
        .map_err(|e| format!("cannot link the host interface: {e}"))?;

        let cache = match &config.cache_dir {
            Some(dir) => match DiskCache::new(dir, &engine) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "component cache disabled: {e}");
                    None
                }
            },
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let (e2, s2) = (engine.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("wasmbeam-epoch".into())
            .spawn(move || {
                while !s2.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e2.increment_epoch();
                }
            })
            .map_err(|e| format!("cannot start the epoch thread: {e}"))?;
        Ok(UdfHost {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache,
                max_wasm_stack: config.max_wasm_stack,
                _ticker: Ticker {
                    stop,
                    thread: Some(thread),
                },
            }),
        })
    }

    /// Max wasm stack per call, in bytes.
    pub fn max_wasm_stack(&self) -> usize {
        self.inner.max_wasm_stack
    }

    /// The underlying wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Load a component from a file; see [`UdfHost::load`].
    pub fn load_file(&self, path: &Path) -> Result<UdfComponent, UdfError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| UdfError::Compile {
            name: name.clone(),
            detail: format!("cannot read the file: {e}"),
        })?;
        self.load(&name, &bytes)
    }

    /// Compile `bytes` (or fetch them from the disk cache), check the
    /// contract, and pre-link the component. `name` appears in errors.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<UdfComponent, UdfError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let engine = &self.inner.engine;
        let cached = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.get(engine, &sha256));
        let mut uncached = None;
        let component = match cached {
            Some(c) => c,
            None => {
                let compile_err = |e: wasmtime::Error| UdfError::Compile {
                    name: name.to_string(),
                    detail: format!("{e:#}"),
                };
                let started = std::time::Instant::now();
                let component = match &self.inner.cache {
                    Some(_) => {
                        let compiled = engine.precompile_component(bytes).map_err(compile_err)?;
                        // SAFETY: `compiled` was just produced by this engine.
                        let c = unsafe { Component::deserialize(engine, &compiled) }
                            .map_err(compile_err)?;
                        uncached = Some(compiled);
                        c
                    }
                    None => Component::new(engine, bytes).map_err(compile_err)?,
                };
                tracing::info!(udf = name, elapsed = ?started.elapsed(), "compiled component");
                component
            }
        };
        let kind = check(name, &component, engine)?;
        let pre =
            self.inner
                .linker
                .instantiate_pre(&component)
                .map_err(|e| UdfError::Contract {
                    name: name.to_string(),
                    detail: format!("it cannot be linked against wasmbeam's imports: {e:#}"),
                })?;
        let inst_err = |e: wasmtime::Error| UdfError::Contract {
            name: name.to_string(),
            detail: format!("{e:#}"),
        };
        let (dofn, combinefn) = match kind {
            UdfKind::DoFn => (Some(DofnUdfPre::new(pre).map_err(inst_err)?), None),
            UdfKind::CombineFn => (None, Some(CombinefnUdfPre::new(pre).map_err(inst_err)?)),
        };
        Ok(UdfComponent {
            name: name.into(),
            sha256: sha256.into(),
            kind,
            dofn,
            combinefn,
            host: self.clone(),
            uncached: Arc::new(std::sync::Mutex::new(uncached)),
        })
    }
}
