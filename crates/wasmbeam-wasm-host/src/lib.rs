//! # wasmbeam-wasm-host
//!
//! Runs user-defined functions (Beam DoFns and CombineFns) that were compiled
//! to WebAssembly components against wasmbeam's WIT contract
//! (`wit/udf.wit`, package `wasmbeam:udf@0.3.0`), inside sandboxed wasmtime
//! instances, **once per bundle**.
//!
//! ## Design
//!
//! * [`UdfHost`] owns one wasmtime `Engine` configured for many short calls
//!   into many small instances: the component model, the pooling instance
//!   allocator with copy-on-write memory images, `concurrency_support(false)`
//!   (cheaper calls), and epoch interruption for deadlines. A background
//!   thread ticks the epoch every [`EPOCH_TICK`].
//! * [`UdfHost::load`] compiles a component, or maps it from the on-disk
//!   cache keyed by the component's sha256 plus the engine's compatibility
//!   hash (a Python component takes seconds to compile; a cached one loads in
//!   milliseconds). It then checks the contract: the component must export
//!   `wasmbeam:udf/dofn@0.3.0` or `wasmbeam:udf/combinefn@0.3.0`, and import
//!   nothing but WASI, `wasmbeam:udf/host@0.3.0` and `wasmbeam:udf/state@0.3.0`; anything else is refused
//!   with a message naming the version it was built for. Compiled code goes
//!   to the cache only once an instance of it has started, so a component
//!   that cannot be instantiated is never cached.
//! * [`DoFnPool`] / [`CombineFnPool`] hold set-up instances of one transform
//!   (its component, config bytes, output tags and side inputs). A worker
//!   thread takes an instance for a bundle and gives it back afterwards, so
//!   instantiation and `setup` are paid once per instance, not per bundle.
//!   A trap poisons a wasmtime store: that instance is dropped, never
//!   returned, and the next acquisition builds a fresh one.
//! * Limits per instance ([`Limits`]): linear memory cap, table elements,
//!   instance/table/memory counts, max wasm stack, a per-call output cap,
//!   and a per-call wall-clock deadline. Every limit has a safe default.
//! * Time: the deadline is wall time. Epoch interruption checks it while
//!   guest code runs; wasmbeam's own `wasi:clocks/monotonic-clock` (see
//!   `clock.rs`) makes a guest's sleeps wake at the deadline or on Cancel,
//!   so time blocked in a host call counts too.
//! * Memory per job ([`MemoryBudget`]): one budget shared by all instances
//!   of a job covers their linear memories together and the host-side
//!   copies of the outputs they return ([`Reservation`], held by each
//!   [`OutputBatch`] until it is dropped). One call's output is bounded by
//!   [`Limits::max_output_bytes`], which is also the store's host-call fuel,
//!   so an oversized output is refused while wasmtime copies it out of the
//!   guest, before the host allocates it.
//! * Outputs are checked before the runner sees them: offsets, tags and
//!   sources, and timestamps against Beam's bounds (the end of the global
//!   window for outputs in it).
//! * Sandbox ([`Grants`]): WASI is linked but empty: no environment
//!   variables, arguments, preopened directories, sockets or name lookup.
//!   stdout/stderr are captured, capped, and forwarded to the job log.
//!   Read-only directories are granted only explicitly.
//! * Imports: `log` goes to `tracing` (target `wasmbeam::udf`, capped per
//!   bundle); `counter`/`distribution`/`gauge` accumulate [`UserMetrics`]
//!   that the runner reports as Beam metrics.
//! * State and timers (contract 0.3.0): [`UdfComponent::describe`] asks a
//!   DoFn which state cells and timer families it declares
//!   ([`DoFnInfo`]). The runner keeps one [`KeyedState`] per keyed run and
//!   lends it to the instance for each call
//!   ([`DoFnInstance::process_keyed`], [`DoFnInstance::on_timer`],
//!   [`DoFnInstance::on_window_expiration`]), together with the key and
//!   window of every element or timer of that call; the `state` import
//!   reads and writes it there. A state call on a wrong cell or outside
//!   such a call traps with a message naming the cell. The bytes a
//!   `KeyedState` holds are reserved from the job's [`MemoryBudget`] after
//!   each call (state does not spill yet).
//!
//! ## Data
//!
//! Bundles cross the boundary as flat buffers ([`Batch`], the bundle shape
//! shared with the engine,
//! [`OutputBatch`], [`Values`]): one `list<u8>` of concatenated values plus
//! offsets and per-element metadata, each packed into a little-endian
//! `list<u8>`. Lowering and lifting them is a handful of memcpys per bundle,
//! independent of element count, in every guest language. The host API keeps
//! typed arrays (`Vec<u32>`, `Vec<i64>`); `batch.rs` packs them into reused
//! wire buffers before a call and unpacks and checks what comes back.
//!
//! Dependency rule: this crate knows the WIT contract and wasmtime, not Beam's
//! protos or the runner; it is a leaf.

#![warn(missing_docs)]

mod batch;
mod cache;
mod clock;
mod combine;
mod config;
mod contract;
mod dofn;
mod error;
mod host;
mod instance;
mod keyed;
mod pool;
mod state;

pub use batch::{OutputBatch, SideInputKind};
pub use combine::{CombineFnInstance, CombineFnPool};
pub use config::{
    Grants, HostConfig, Interrupt, Limits, MemoryBudget, Reservation, OUTPUT_ELEMENT_COST,
};
pub use wasmbeam_bundle::{
    Batch, ElementRef, Values, Window, CONTRACT_VERSION, GLOBAL_WINDOW_END, INHERIT_TIMESTAMP,
    MAX_TIMESTAMP, MIN_TIMESTAMP, NO_SOURCE, PANE_ON_TIME_ONLY,
};

/// How often a busy UDF call checks its [`Interrupt`] flag.
pub const INTERRUPT_CHECK: std::time::Duration = std::time::Duration::from_millis(50);
pub use contract::UdfKind;
pub use dofn::{DoFnInstance, DoFnPool, DoFnSpec, SideInput};
pub use error::UdfError;
pub use host::{UdfComponent, UdfHost, EPOCH_TICK};
pub use keyed::{
    BuiltinCombine, CellKind, CellSpec, DoFnInfo, FiredTimer, KeyedState, Scope, TimeDomain,
    TimerSpec,
};
pub use state::{Distribution, UserMetrics};

/// Host-side bindings generated from `wit/udf.wit`.
#[allow(missing_docs)]
pub mod bindings {
    /// The `dofn-udf` world.
    pub mod dofn {
        wasmtime::component::bindgen!({
            path: "../../wit",
            world: "dofn-udf",
            // A state call on a missing cell or out of scope traps.
            imports: { "wasmbeam:udf/state": trappable },
        });
    }
    /// The `combinefn-udf` world, sharing the types and host interfaces.
    pub mod combinefn {
        wasmtime::component::bindgen!({
            path: "../../wit",
            world: "combinefn-udf",
            with: {
                "wasmbeam:udf/types": super::dofn::wasmbeam::udf::types,
                "wasmbeam:udf/host": super::dofn::wasmbeam::udf::host,
            },
        });
    }
}
