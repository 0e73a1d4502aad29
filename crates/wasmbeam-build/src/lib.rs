//! # wasmbeam-build
//!
//! Turns a guest UDF source directory into a WebAssembly component that
//! implements wasmbeam's contract (`wit/udf.wit`). The language is detected
//! from the directory:
//!
//! | file | language | toolchain |
//! |---|---|---|
//! | `Cargo.toml` | Rust | `cargo build --release --target wasm32-wasip2` (emits a component) |
//! | `go.mod` | Go | `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`, then [`componentize`] in-process (wit-component and the WASI preview1 reactor adapter) |
//! | `pyproject.toml` | Python | `componentize-py` with the Python guest SDK bundled in |
//!
//! Go needs two fixes that [`componentize`] applies: the core module's
//! `_initialize` (Go's runtime start) becomes the contract's `runtime-init`
//! export, which the host calls once right after instantiation; and the
//! adapter allocates its state from the module's `cabi_realloc_adapter`, a
//! static region (growing memory behind Go's allocator corrupts its heap).
//! The Go SDK's `cabi_realloc` also uses a static arena, so no Go allocation
//! runs inside it.
//!
//! A failing build returns the compiler's own output. Outputs go to
//! `DIR/target/wasmbeam/{go,python}/` (or under `$WASMBEAM_GUEST_TARGET_DIR`), and builds are
//! skipped when no source file changed since the last one.
//!
//! Dependency rule: a leaf; it knows the WIT contract and the toolchains.

#![warn(missing_docs)]

mod componentize;
mod go;
mod python;
mod rust;
mod tools;

use std::path::{Path, PathBuf};

pub use componentize::{componentize, describe, Description};

/// The contract, compiled into the binary so builds need no checkout.
pub const WIT: &str = include_str!("../../../wit/udf.wit");

/// The contract version `WIT` declares (`package wasmbeam:udf@VERSION;`),
/// the one the host accepts.
pub use wasmbeam_bundle::CONTRACT_VERSION;

/// A guest language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// `Cargo.toml`
    Rust,
    /// `go.mod`
    Go,
    /// `pyproject.toml`
    Python,
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Language::Rust => "Rust",
            Language::Go => "Go",
            Language::Python => "Python",
        })
    }
}

/// The language of the guest in `dir`.
pub fn detect(dir: &Path) -> Result<Language, String> {
    let found: Vec<Language> = [
        ("Cargo.toml", Language::Rust),
        ("go.mod", Language::Go),
        ("pyproject.toml", Language::Python),
    ]
    .iter()
    .filter(|(f, _)| dir.join(f).is_file())
    .map(|(_, l)| *l)
    .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!(
            "{} holds no Cargo.toml, go.mod or pyproject.toml, so wasmbeam cannot tell which language to build",
            dir.display()
        )),
        many => Err(format!(
            "{} holds build files of several languages ({many:?}); keep one per directory",
            dir.display()
        )),
    }
}

/// Where outputs of the guest in `dir` go by default:
/// `$WASMBEAM_GUEST_TARGET_DIR`, else `DIR/target`.
pub fn target_dir(dir: &Path) -> PathBuf {
    std::env::var_os("WASMBEAM_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"))
}

/// Build the guest in `dir` into [`target_dir`]; returns the component's path.
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    build_in(dir, &target_dir(dir))
}

/// Build the guest in `dir` with outputs under `target` (several guests
/// may share one, so Rust dependencies compile once).
pub fn build_in(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot use guest directory {}: {e}", dir.display()))?;
    // Compilers run inside `dir`, so a relative target would resolve there.
    let target = std::path::absolute(target)
        .map_err(|e| format!("cannot use target directory {}: {e}", target.display()))?;
    match detect(&dir)? {
        Language::Rust => rust::build(&dir, &target),
        Language::Go => go::build(&dir, &target),
        Language::Python => python::build(&dir, &target),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn contract_version_is_the_wits_package_version() {
        let package = format!("package wasmbeam:udf@{};", super::CONTRACT_VERSION);
        assert!(
            super::WIT.lines().any(|l| l.trim() == package),
            "wit/udf.wit does not declare `{package}`: update CONTRACT_VERSION"
        );
    }
}
