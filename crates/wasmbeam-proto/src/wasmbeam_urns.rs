//! URNs that wasmbeam defines (as opposed to Beam's standard ones in
//! [`crate::urns`]). They are documented with their payloads in
//! `docs/urns.md`; everything that builds or reads them uses these constants.

/// `FunctionSpec.urn` of a DoFn compiled to a WebAssembly component, inside a
/// standard `beam:transform:pardo:v1` `ParDoPayload.do_fn`.
pub const WASM_DOFN: &str = "wasmbeam:dofn:wasm:v1";
/// `FunctionSpec.urn` of a CombineFn compiled to a WebAssembly component,
/// inside a standard `CombinePayload.combine_fn`.
pub const WASM_COMBINEFN: &str = "wasmbeam:combinefn:wasm:v1";
/// `FunctionSpec.urn` of a combine function built into the runner (count,
/// sums, mean, min, max), inside a standard `CombinePayload.combine_fn`.
pub const BUILTIN_COMBINEFN: &str = "wasmbeam:combinefn:builtin:v1";
/// `Environment.urn` of the sandboxed wasmtime environment that runs WASM UDFs.
pub const WASM_ENVIRONMENT: &str = "wasmbeam:env:wasm:v1";
/// Runner-native transform: read lines from text files (globs, gzip).
pub const READ_TEXT: &str = "wasmbeam:transform:read_text:v1";
/// Runner-native transform: write sharded text files, committed atomically.
pub const WRITE_TEXT: &str = "wasmbeam:transform:write_text:v1";
/// MonitoringInfo (`beam:metrics:latest_int64:v1`, label `PCOLLECTION`):
/// a streaming job's watermark of that PCollection, in ms since the epoch.
pub const METRIC_WATERMARK: &str = "wasmbeam:metric:watermark_ms:v1";
/// MonitoringInfo (`beam:metrics:latest_int64:v1`, label `PCOLLECTION`): how
/// far that watermark is behind the server's clock, in ms.
pub const METRIC_WATERMARK_LAG: &str = "wasmbeam:metric:watermark_lag_ms:v1";
/// Runner-native source: integers at a fixed processing-time rate
/// (unbounded unless it has a stop).
pub const GENERATE_SEQUENCE: &str = "wasmbeam:transform:generate_sequence:v1";
