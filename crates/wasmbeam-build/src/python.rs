//! Python guests: `componentize-py` bundles CPython, the author's module and
//! the Python guest SDK (compiled into this binary, so no checkout is
//! needed) into one component. The guest's `pyproject.toml` says which
//! module holds the UDF and which world it implements:
//!
//! ```toml
//! [tool.wasmbeam]
//! module = "wordcount_udf"   # wordcount_udf.py, next to pyproject.toml
//! world = "dofn"             # or "combinefn"
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;

/// The SDK's files, embedded.
const SDK: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/__init__.py"),
    ),
    (
        "api.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/api.py"),
    ),
    (
        "coders.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/coders.py"),
    ),
    (
        "metrics.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/metrics.py"),
    ),
    (
        "state.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/state.py"),
    ),
    (
        "_dofn_app.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/_dofn_app.py"),
    ),
    (
        "_packed.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/_packed.py"),
    ),
    (
        "_combinefn_app.py",
        include_str!("../../../sdk-guests/python/wasmbeam_guest/_combinefn_app.py"),
    ),
];

/// `key = "value"` inside `[tool.wasmbeam]`, or `[project] name`.
fn toml_value(text: &str, table: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.starts_with('[') {
            inside = l == format!("[{table}]");
            continue;
        }
        if inside {
            if let Some((k, v)) = l.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().trim_matches('"').trim_matches('\'').to_string());
                }
            }
        }
    }
    None
}

/// Build the Python guest in `dir`.
pub fn build(dir: &Path, target: &Path) -> Result<PathBuf, String> {
    let pyproject = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject)
        .map_err(|e| format!("cannot read {}: {e}", pyproject.display()))?;
    let module = toml_value(&text, "tool.wasmbeam", "module").ok_or_else(|| {
        format!(
            "{}: [tool.wasmbeam] needs module = \"NAME\" (the .py file holding your DoFn or CombineFn)",
            pyproject.display()
        )
    })?;
    let world = toml_value(&text, "tool.wasmbeam", "world").unwrap_or_else(|| "dofn".into());
    let (world_name, app) = match world.as_str() {
        "dofn" => ("dofn-udf", "_dofn_app import Dofn"),
        "combinefn" => ("combinefn-udf", "_combinefn_app import Combinefn"),
        other => {
            return Err(format!(
                "{}: [tool.wasmbeam] world = {other:?}; use \"dofn\" or \"combinefn\"",
                pyproject.display()
            ))
        }
    };
    if !dir.join(format!("{module}.py")).is_file()
        && !dir.join(&module).join("__init__.py").is_file()
    {
        return Err(format!(
            "{}: module {module:?} names no {module}.py or {module}/__init__.py in {}",
            pyproject.display(),
            dir.display()
        ));
    }
    let name = toml_value(&text, "project", "name").unwrap_or_else(|| module.clone());
    let cpy = tools::find("componentize-py", "WASMBEAM_COMPONENTIZE_PY", dir).ok_or(
        "componentize-py not found: pip install componentize-py==0.25.1, set WASMBEAM_COMPONENTIZE_PY, or run scripts/bootstrap.sh (it installs it into .venv)",
    )?;
    let out_dir = target.join("wasmbeam/python");
    let out = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
    let sdk_text: String = SDK.iter().map(|(n, s)| format!("{n}\n{s}")).collect();
    let digest = tools::inputs_digest(
        &[dir],
        &format!("{cpy:?} {world} {module} {sdk_text} {}", crate::WIT),
    );
    if tools::fresh(&out, &digest) {
        return Ok(out);
    }
    let work = tempfile::tempdir().map_err(|e| format!("cannot make a build dir: {e}"))?;
    let w = work.path();
    let write = |p: PathBuf, s: &str| {
        std::fs::create_dir_all(p.parent().unwrap())
            .and_then(|_| std::fs::write(&p, s))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    };
    write(w.join("wit/udf.wit"), crate::WIT)?;
    for (n, s) in SDK {
        write(w.join("sdk/wasmbeam_guest").join(n), s)?;
    }
    write(
        w.join("app/wasmbeam_app.py"),
        &format!("import {module}  # noqa: F401  (registers the UDF)\nfrom wasmbeam_guest.{app}  # noqa: F401\n"),
    )?;
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let tmp_out = w.join("out.wasm");
    let mut cmd = Command::new(&cpy);
    cmd.arg("-d")
        .arg(w.join("wit"))
        .args(["-w", world_name, "componentize", "-p"])
        .arg(w.join("app"))
        .arg("-p")
        .arg(w.join("sdk"))
        .arg("-p")
        .arg(dir)
        .arg("wasmbeam_app")
        .arg("-o")
        .arg(&tmp_out)
        .current_dir(dir);
    tracing::info!(dir = %dir.display(), "building Python guest");
    tools::run(cmd, "componentize-py")?;
    let bytes =
        std::fs::read(&tmp_out).map_err(|e| format!("cannot read {}: {e}", tmp_out.display()))?;
    tools::write_atomic(&out, &bytes)?;
    tools::mark(&out, &digest);
    Ok(out)
}
