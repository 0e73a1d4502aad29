//! Rust guests: `cargo build --release --target wasm32-wasip2` emits a
//! component directly; cargo decides what to rebuild.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the guest in `dir` and return the component path. The compiler's
/// own output is shown on failure.
pub fn build(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
    let name = package_name(&text)
        .ok_or_else(|| format!("{} has no [package] name", manifest.display()))?;
    let target = target.to_path_buf();
    tracing::info!(dir = %dir.display(), "building Rust guest");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let wasm = target
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", name.replace('-', "_")));
    if !wasm.exists() {
        return Err(format!(
            "the build produced no {} (is the crate a cdylib?)",
            wasm.display()
        ));
    }
    Ok(wasm)
}

fn package_name(toml: &str) -> Option<String> {
    let mut in_package = false;
    for line in toml.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_package = l == "[package]";
            continue;
        }
        if in_package {
            if let Some(rest) = l.strip_prefix("name") {
                let v = rest
                    .trim_start()
                    .strip_prefix('=')?
                    .trim()
                    .trim_matches('"');
                return Some(v.to_string());
            }
        }
    }
    None
}
