//! Finding toolchains, running them, and skipping builds whose inputs did
//! not change.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The first of: `$env_var`, `name` on PATH, `.venv/bin/name` in the
/// current directory or an ancestor of `dir`.
pub fn find(name: &str, env_var: &str, dir: &Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    let cwd = std::env::current_dir().ok();
    for start in [Some(dir.to_path_buf()), cwd].into_iter().flatten() {
        for a in start.ancestors() {
            candidates.push(a.join(".venv/bin").join(name));
        }
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// Run `cmd`; on failure return the tool's own output.
pub fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    tracing::info!("running {cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// A digest of every source file under `roots` (skipping `target`,
/// `__pycache__` and hidden directories), plus `extra`.
pub fn inputs_digest(roots: &[&Path], extra: &str) -> String {
    let mut files = Vec::new();
    for r in roots {
        collect(r, &mut files);
    }
    files.sort();
    let mut h = Sha256::new();
    h.update(extra.as_bytes());
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        if let Ok(b) = std::fs::read(&f) {
            h.update((b.len() as u64).to_le_bytes());
            h.update(&b);
        }
    }
    hex::encode(h.finalize())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if name == "target" || name == "__pycache__" || name.starts_with('.') {
                continue;
            }
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Is `out` up to date for `digest`?
pub fn fresh(out: &Path, digest: &str) -> bool {
    out.is_file() && std::fs::read_to_string(stamp(out)).is_ok_and(|s| s.trim() == digest)
}

/// Record that `out` was built from `digest`.
pub fn mark(out: &Path, digest: &str) {
    let _ = std::fs::write(stamp(out), digest);
}

fn stamp(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".inputs");
    PathBuf::from(s)
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    std::fs::write(tmp.path(), bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
