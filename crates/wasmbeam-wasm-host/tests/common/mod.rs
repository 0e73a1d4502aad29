//! Builds the test UDF components from source (never committed binaries).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static BUILD: Mutex<()> = Mutex::new(());

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Build `tests/udfs/<dir>` for wasm32-wasip2 and return the component path.
pub fn build_udf(dir: &str) -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/udfs")
        .join(dir);
    build_guest_crate(&src)
}

/// `cargo build --release --target wasm32-wasip2` in a guest crate, with a
/// target directory shared by all guests so dependencies compile once.
pub fn build_guest_crate(src: &Path) -> PathBuf {
    let target = repo().join("target/wasm-guests");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building guest {} failed (is the wasm32-wasip2 target installed? scripts/bootstrap.sh adds it):\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).unwrap();
    let name = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("package name")
        .replace('-', "_");
    target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"))
}
