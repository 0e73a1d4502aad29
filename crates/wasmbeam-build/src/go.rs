//! Go guests: `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`, then
//! [`crate::componentize`]. Needs Go ≥ 1.24 (`go:wasmexport`): the `go` on
//! PATH, `$WASMBEAM_GO`, or the one scripts/bootstrap.sh puts in `.venv`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;

fn go_version(go: &Path) -> Option<(u32, u32)> {
    let out = Command::new(go).args(["env", "GOVERSION"]).output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    let v = v.trim().strip_prefix("go")?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn module_name(go_mod: &str) -> Option<String> {
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("module "))
        .map(|m| m.trim().rsplit('/').next().unwrap_or(m).to_string())
}

/// Local directories named by `replace X => ./path` lines (the SDK).
fn local_replacements(dir: &Path, go_mod: &str) -> Vec<PathBuf> {
    go_mod
        .lines()
        .filter_map(|l| l.split_once("=>").map(|(_, r)| r.trim()))
        .filter(|r| r.starts_with('.') || r.starts_with('/'))
        .map(|r| dir.join(r.split_whitespace().next().unwrap_or(r)))
        .filter(|p| p.is_dir())
        .collect()
}

/// Build the Go guest in `dir`.
pub fn build(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    let go_mod = std::fs::read_to_string(dir.join("go.mod"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("go.mod").display()))?;
    let name = module_name(&go_mod)
        .ok_or_else(|| format!("{} has no module line", dir.join("go.mod").display()))?;
    let candidates = [tools::find("go", "WASMBEAM_GO", dir), {
        // Fall back to the Go that bootstrap installs into .venv.
        let mut v = None;
        for a in dir.ancestors() {
            let p = a.join(".venv/bin/go");
            if p.is_file() {
                v = Some(p);
                break;
            }
        }
        v
    }];
    let go = candidates
        .into_iter()
        .flatten()
        .find(|g| go_version(g).is_some_and(|v| v >= (1, 24)))
        .ok_or("no Go ≥ 1.24 found (go:wasmexport needs it): install Go, set WASMBEAM_GO, or run scripts/bootstrap.sh, which installs one into .venv")?;
    let out_dir = target.join("wasmbeam/go");
    let out = out_dir.join(format!("{name}.wasm"));
    let mut roots: Vec<PathBuf> = vec![dir.to_path_buf()];
    roots.extend(local_replacements(dir, &go_mod));
    let roots_ref: Vec<&Path> = roots.iter().map(|p| p.as_path()).collect();
    let digest = tools::inputs_digest(&roots_ref, &format!("go {go:?} {}", crate::WIT));
    if tools::fresh(&out, &digest) {
        return Ok(out);
    }
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let core = out_dir.join(format!("{name}.core.wasm"));
    let mut cmd = Command::new(&go);
    cmd.args(["build", "-buildmode=c-shared", "-trimpath", "-o"])
        .arg(&core)
        .arg(".")
        .current_dir(dir)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("CGO_ENABLED", "0");
    tracing::info!(dir = %dir.display(), "building Go guest");
    tools::run(cmd, "go build")?;
    let module =
        std::fs::read(&core).map_err(|e| format!("cannot read {}: {e}", core.display()))?;
    let component = crate::componentize(&module)
        .map_err(|e| format!("componentizing {}: {e}", core.display()))?;
    tools::write_atomic(&out, &component)?;
    tools::mark(&out, &digest);
    Ok(out)
}
