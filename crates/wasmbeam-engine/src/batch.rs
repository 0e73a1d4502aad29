//! Columnar bundles of elements: the bundle shape shared with the WASM host
//! (`wasmbeam-bundle`), so handing a bundle to a UDF moves vectors, never
//! elements.

pub use wasmbeam_bundle::{Batch, ElementRef, PANE_NO_FIRING, PANE_ON_TIME_ONLY};
