//! Helpers shared by the CLI's end-to-end tests.
#![allow(dead_code)] // each test file uses its own subset

pub mod beam;

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

/// A command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every line of `files`, sorted.
pub fn sorted_lines(files: &[PathBuf]) -> Vec<String> {
    let mut v: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    v.sort();
    v
}

/// The files in `dir` whose names start with `prefix`, sorted.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// A failed or cancelled job commits nothing: no output or staging files
/// remain in `out`.
pub fn assert_nothing_left(out: &Path) {
    let left: Vec<_> = match std::fs::read_dir(out) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
        Err(_) => vec![],
    };
    assert!(
        left.is_empty(),
        "no output or staging files may remain in {}: {left:?}",
        out.display()
    );
}

/// Ctrl-C a streaming `wasmbeam run`: it must drain (say so) and succeed.
pub fn drain_with_sigint(child: std::process::Child) -> Output {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("draining"), "{err}");
    o
}
