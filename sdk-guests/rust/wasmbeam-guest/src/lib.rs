//! # wasmbeam-guest: Beam UDFs in Rust, as WebAssembly components
//!
//! Write a struct, implement [`DoFn`] (or [`CombineFn`]), and export it with
//! one macro. The SDK implements wasmbeam's UDF contract
//! (`wasmbeam:udf@0.3.0`, see `wit/udf.wit`): it receives whole bundles as
//! flat buffers, walks the elements, calls your code per element, and packs
//! what you emit back into one flat output batch.
//!
//! ```ignore
//! use wasmbeam_guest::{DoFn, Element, Emitter, Error, Setup, coders::{Utf8, Coder}};
//!
//! struct Upper;
//! impl DoFn for Upper {
//!     fn setup(_: &Setup) -> Result<Self, Error> { Ok(Upper) }
//!     fn process(&mut self, e: &Element, out: &mut Emitter) -> Result<(), Error> {
//!         let s = Utf8.decode_outer(e.value)?;
//!         out.emit(s.to_uppercase().as_bytes());
//!         Ok(())
//!     }
//! }
//! wasmbeam_guest::export_dofn!(Upper);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm`
//! in `target/wasm32-wasip2/release/` is the component.
//!
//! Values are the bytes of the PCollection's element coder in the outer
//! context; [`coders`] decodes and encodes the common Beam coders.
//!
//! A stateful DoFn (user state and timers, Beam's `@StateId`/`@TimerId`)
//! declares its cells and timer families in [`DoFn::describe`] and uses
//! them through [`Element::state`] and [`DoFn::on_timer`]; see [`State`].

//! A component is either a DoFn or a CombineFn. The crate feature `dofn`
//! (the default) exports the DoFn world; a CombineFn crate depends on this SDK
//! with `default-features = false, features = ["combinefn"]`.

#[cfg(all(feature = "dofn", feature = "combinefn"))]
compile_error!(
    "enable exactly one of the features `dofn` and `combinefn`: a component is one kind of UDF"
);
#[cfg(not(any(feature = "dofn", feature = "combinefn")))]
compile_error!("enable one of the features `dofn` (default) or `combinefn`");

pub mod coders;
#[cfg(feature = "combinefn")]
mod combine;
#[cfg(feature = "dofn")]
mod dofn;
pub mod metrics;
mod packed;
#[cfg(feature = "dofn")]
mod state;
#[cfg(feature = "dofn")]
pub use state::{Cell, Combine, Expiring, State, Stateful, Timer, TimerFamily, DEFAULT_OUTPUT};

#[cfg(feature = "combinefn")]
pub use combine::CombineFn;
#[cfg(feature = "dofn")]
pub use dofn::{DoFn, Element, Emitter, FinishEmitter, Setup, SideInput, Window};

/// Bindings generated from the contract; used by the export macros.
#[doc(hidden)]
pub mod bindings {
    #[cfg(feature = "dofn")]
    pub mod dofn {
        wit_bindgen::generate!({
            path: "../../../wit",
            world: "wasmbeam:udf/dofn-udf",
            pub_export_macro: true,
            export_macro_name: "export_dofn_world",
            default_bindings_module: "::wasmbeam_guest::bindings::dofn",
        });
    }
    #[cfg(feature = "combinefn")]
    pub mod combinefn {
        wit_bindgen::generate!({
            path: "../../../wit",
            world: "wasmbeam:udf/combinefn-udf",
            pub_export_macro: true,
            export_macro_name: "export_combinefn_world",
            default_bindings_module: "::wasmbeam_guest::bindings::combinefn",
        });
    }
}

#[cfg(feature = "combinefn")]
#[doc(hidden)]
pub use combine::runtime as combine_runtime;
#[cfg(feature = "dofn")]
#[doc(hidden)]
pub use dofn::runtime as dofn_runtime;

#[cfg(all(feature = "combinefn", not(feature = "dofn")))]
pub(crate) use bindings::combinefn::wasmbeam::udf::host;
/// The `host` import of whichever world this crate was built for.
#[cfg(feature = "dofn")]
pub(crate) use bindings::dofn::wasmbeam::udf::host;

/// An error from user code; the runner reports it with the transform name
/// and the index of the failing element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong, for humans.
    pub message: String,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::new(s)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::new(s)
    }
}

impl From<coders::DecodeError> for Error {
    fn from(e: coders::DecodeError) -> Self {
        Error::new(e.to_string())
    }
}

/// Write a line to the runner's log for this transform (capped per bundle).
pub fn log(level: LogLevel, message: &str) {
    use host::Level;
    let l = match level {
        LogLevel::Trace => Level::Trace,
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warn,
        LogLevel::Error => Level::Error,
    };
    host::log(l, message);
}

/// Log severities for [`log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// Export a [`DoFn`] implementation as this component's DoFn.
#[macro_export]
macro_rules! export_dofn {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __WasmbeamDoFnExport;
        impl $crate::bindings::dofn::exports::wasmbeam::udf::dofn::Guest for __WasmbeamDoFnExport {
            fn runtime_init() {}
            fn describe(
                config: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<$crate::dofn_runtime::WitDofnInfo, $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::describe::<$t>(config)
            }
            fn on_timer(
                timers: $crate::dofn_runtime::WitTimerBatch,
            ) -> ::std::result::Result<$crate::dofn_runtime::WitOutputBatch, $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::on_timer::<$t>(timers)
            }
            fn on_window_expiration(
                expiring: $crate::dofn_runtime::WitInputBatch,
            ) -> ::std::result::Result<$crate::dofn_runtime::WitOutputBatch, $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::on_window_expiration::<$t>(expiring)
            }
            fn setup(
                config: ::std::vec::Vec<u8>,
                outputs: ::std::vec::Vec<::std::string::String>,
            ) -> ::std::result::Result<(), $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::setup::<$t>(config, outputs)
            }
            fn load_side_input(
                tag: ::std::string::String,
                kind: $crate::dofn_runtime::WitSideInputKind,
                elements: $crate::dofn_runtime::WitInputBatch,
            ) -> ::std::result::Result<(), $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::load_side_input::<$t>(tag, kind, elements)
            }
            fn process_bundle(
                batch: $crate::dofn_runtime::WitInputBatch,
            ) -> ::std::result::Result<$crate::dofn_runtime::WitOutputBatch, $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::process_bundle::<$t>(batch)
            }
            fn finish_bundle(
            ) -> ::std::result::Result<$crate::dofn_runtime::WitOutputBatch, $crate::dofn_runtime::WitError> {
                $crate::dofn_runtime::finish_bundle::<$t>()
            }
            fn teardown() {
                $crate::dofn_runtime::teardown::<$t>()
            }
        }
        $crate::bindings::dofn::export_dofn_world!(__WasmbeamDoFnExport with_types_in $crate::bindings::dofn);
    };
}

/// Export a [`CombineFn`] implementation as this component's CombineFn.
#[macro_export]
macro_rules! export_combinefn {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __WasmbeamCombineFnExport;
        impl $crate::bindings::combinefn::exports::wasmbeam::udf::combinefn::Guest for __WasmbeamCombineFnExport {
            fn runtime_init() {}
            fn setup(config: ::std::vec::Vec<u8>) -> ::std::result::Result<(), $crate::combine_runtime::WitError> {
                $crate::combine_runtime::setup::<$t>(config)
            }
            fn create_accumulator() -> ::std::result::Result<::std::vec::Vec<u8>, $crate::combine_runtime::WitError> {
                $crate::combine_runtime::create_accumulator::<$t>()
            }
            fn add_inputs(
                accumulators: $crate::combine_runtime::WitValues,
                inputs: $crate::combine_runtime::WitValues,
                group_ends: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<$crate::combine_runtime::WitValues, $crate::combine_runtime::WitError> {
                $crate::combine_runtime::add_inputs::<$t>(accumulators, inputs, group_ends)
            }
            fn merge_accumulators(
                accumulators: $crate::combine_runtime::WitValues,
                group_ends: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<$crate::combine_runtime::WitValues, $crate::combine_runtime::WitError> {
                $crate::combine_runtime::merge_accumulators::<$t>(accumulators, group_ends)
            }
            fn extract_outputs(
                accumulators: $crate::combine_runtime::WitValues,
            ) -> ::std::result::Result<$crate::combine_runtime::WitValues, $crate::combine_runtime::WitError> {
                $crate::combine_runtime::extract_outputs::<$t>(accumulators)
            }
        }
        $crate::bindings::combinefn::export_combinefn_world!(__WasmbeamCombineFnExport with_types_in $crate::bindings::combinefn);
    };
}
