//! Helpers shared by the CLI's end-to-end tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The `wasmbeam` binary run in `cwd`, building guests into and caching
/// compiled components under the repository's `target/` (shared by every
/// test, so each UDF is compiled once per suite).
pub fn wasmbeam_cmd(cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmbeam"));
    c.current_dir(cwd)
        .env(
            "WASMBEAM_GUEST_TARGET_DIR",
            repo().join("target/wasm-guests"),
        )
        .env("WASMBEAM_CACHE_DIR", repo().join("target/wasm-cache"));
    c
}

/// Run `wasmbeam ARGS` in `cwd`.
pub fn wasmbeam(args: &[&str], cwd: &Path) -> Output {
    wasmbeam_cmd(cwd).args(args).output().expect("run wasmbeam")
}
