//! Builds the test UDF components from source (never committed binaries),
//! with `wasmbeam-build`, into one target directory shared by all guests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmbeam_wasm_host::Batch;

static BUILD: Mutex<()> = Mutex::new(());

/// Elements in the benchmarks' bundles.
pub const BENCH_N: usize = 1000;

/// The benchmarks' bundle: BENCH_N 100-byte values in the global window.
pub fn bench_batch() -> Batch {
    let mut b = Batch::default();
    for i in 0..BENCH_N {
        let mut v = [b'x'; 100];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        b.push_global(&v, i as i64);
    }
    b
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Build `crates/wasmbeam-wasm-host/tests/udfs/<dir>` and return the component path.
pub fn build_udf(dir: &str) -> PathBuf {
    build_guest_crate(
        &repo()
            .join("crates/wasmbeam-wasm-host/tests/udfs")
            .join(dir),
    )
}

/// Build the guest in `src` (Rust, Go or Python) into target/wasm-guests.
pub fn build_guest_crate(src: &Path) -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    wasmbeam_build::build_in(src, &repo().join("target/wasm-guests")).unwrap_or_else(|e| {
        panic!(
            "building guest {} failed (is the wasm32-wasip2 target installed? scripts/bootstrap.sh adds it):\n{e}",
            src.display()
        )
    })
}
