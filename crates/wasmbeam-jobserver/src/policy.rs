//! What a job may do, decided from its tenant's quotas and policy and the
//! options it was submitted with. Every refusal names the quota or the
//! policy field, so the user knows what to change or whom to ask.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use prost_types::value::Kind;
use wasmbeam_plan::{decode, Finding, PipelineView, Step, Verdict};
use wasmbeam_proto::pipeline::v1::Pipeline;
use wasmbeam_runner::{Grants, Limits};

use crate::config::Tenant;

/// Pipeline options wasmbeam understands (`--wasmbeam_workers=2`, ...).
pub const OPTIONS: &[(&str, &str)] = &[
    ("wasmbeam_workers", "Worker threads for this job (at most the tenant's workers quota)."),
    ("wasmbeam_memory_mb", "The job's UDF memory budget, MiB: all its WASM instances' linear memory plus the bundle outputs the host holds (at most the tenant's memory_mb quota)."),
    ("wasmbeam_bundle_deadline_secs", "Wall-clock budget of one UDF call, seconds (at most the tenant's bundle_deadline_secs quota)."),
    ("wasmbeam_grant_read", "Directories UDFs may read, HOST_DIR or HOST_DIR=GUEST_PATH; only those the tenant's grant_read_dirs allow."),
];

/// How a job will run.
#[derive(Debug, Clone)]
pub struct JobLimits {
    /// Worker threads.
    pub workers: usize,
    /// Per-instance limits.
    pub limits: Limits,
    /// The job's UDF memory budget, bytes.
    pub udf_memory_budget: usize,
    /// Directories granted to UDFs.
    pub grants: Grants,
    /// SDK harnesses per environment (Beam's `sdk_worker_parallelism`; 0
    /// there means one per worker thread), at most the worker threads.
    pub sdk_workers: usize,
}

fn option<'a>(options: &'a prost_types::Struct, name: &str) -> Option<&'a Kind> {
    options
        .fields
        .get(&format!("beam:option:{name}:v1"))
        .or_else(|| options.fields.get(name))
        .and_then(|v| v.kind.as_ref())
        .filter(|k| !matches!(k, Kind::NullValue(_)))
}

fn option_u64(options: &prost_types::Struct, name: &str) -> Result<Option<u64>, String> {
    match option(options, name) {
        None => Ok(None),
        Some(Kind::StringValue(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("option {name}={s:?} is not a whole number")),
        Some(Kind::NumberValue(n)) if *n >= 0.0 && n.fract() == 0.0 => Ok(Some(*n as u64)),
        Some(other) => Err(format!(
            "option {name} must be a whole number, not {other:?}"
        )),
    }
}

fn option_list(options: &prost_types::Struct, name: &str) -> Result<Vec<String>, String> {
    match option(options, name) {
        None => Ok(vec![]),
        Some(Kind::StringValue(s)) => Ok(vec![s.clone()]),
        Some(Kind::ListValue(l)) => l
            .values
            .iter()
            .map(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Ok(s.clone()),
                other => Err(format!("option {name}: {other:?} is not a string")),
            })
            .collect(),
        Some(other) => Err(format!(
            "option {name} must be a list of strings, not {other:?}"
        )),
    }
}

/// Decide a job's limits: requested options, capped by the quotas.
pub fn job_limits(tenant: &Tenant, options: &prost_types::Struct) -> Result<JobLimits, String> {
    let q = &tenant.quotas;
    let over = |opt: &str, asked: u64, quota: &str, max: u64| {
        format!(
            "option {opt}={asked} exceeds tenant {:?}'s quota {quota}={max}",
            tenant.name
        )
    };
    let workers = match option_u64(options, "wasmbeam_workers")? {
        Some(w) if w as usize > q.workers => {
            return Err(over("wasmbeam_workers", w, "workers", q.workers as u64))
        }
        Some(w) => (w as usize).max(1),
        None => q.workers,
    };
    let mut limits = Limits::default();
    let udf_memory_budget = match option_u64(options, "wasmbeam_memory_mb")? {
        Some(m) if m as usize > q.memory_mb => {
            return Err(over(
                "wasmbeam_memory_mb",
                m,
                "memory_mb",
                q.memory_mb as u64,
            ))
        }
        Some(m) => (m.max(1) as usize) << 20,
        None => q.memory_mb << 20,
    };
    limits.bundle_deadline = Duration::from_secs(
        match option_u64(options, "wasmbeam_bundle_deadline_secs")? {
            Some(s) if s > q.bundle_deadline_secs => {
                return Err(over(
                    "wasmbeam_bundle_deadline_secs",
                    s,
                    "bundle_deadline_secs",
                    q.bundle_deadline_secs,
                ))
            }
            Some(s) => s.max(1),
            None => q.bundle_deadline_secs,
        },
    );
    let mut grants = Grants::default();
    for g in option_list(options, "wasmbeam_grant_read")? {
        let (host, guest) = match g.split_once('=') {
            Some((h, gp)) => (h.to_string(), gp.to_string()),
            None => (g.clone(), g.clone()),
        };
        let host_path = PathBuf::from(&host);
        let allowed = match &tenant.grant_read_dirs {
            None => true,
            Some(dirs) => within(&host_path, dirs),
        };
        if !allowed {
            return Err(format!(
                "option wasmbeam_grant_read={g:?}: {host} is outside the directories tenant {:?} may grant to UDFs (policy grant_read_dirs: {:?})",
                tenant.name,
                tenant.grant_read_dirs.as_deref().unwrap_or_default()
            ));
        }
        grants.read_only_dirs.push((host_path, guest));
    }
    let sdk_workers = match option_u64(options, "sdk_worker_parallelism")? {
        Some(0) => workers,
        Some(n) => (n as usize).min(workers.max(1)),
        None => 1,
    };
    Ok(JobLimits {
        workers,
        limits,
        udf_memory_budget,
        grants,
        sdk_workers,
    })
}

/// SDK harnesses run native code the WASM sandbox does not contain: a
/// tenant uses only the environment kinds its config lists (`external`
/// for EXTERNAL and LOOPBACK, `process`). One finding per transform that
/// would need another kind, naming the policy field.
pub fn sdk_environment_findings(tenant: &Tenant, view: &PipelineView<'_>) -> Vec<Finding> {
    let Some(allowed) = tenant.environments.as_ref() else {
        return vec![]; // single-user mode: every kind
    };
    let mut findings = Vec::new();
    for (id, t, verdict) in view.execution_units() {
        let Verdict::Run(Step::Sdk(step)) = verdict else {
            continue;
        };
        let kind = step.environment.policy_name();
        if !allowed.iter().any(|k| k == kind) {
            findings.push(Finding {
                transform_id: id.to_string(),
                unique_name: t.unique_name.clone(),
                urn: t.spec.as_ref().map(|s| s.urn.clone()).unwrap_or_default(),
                reason: format!(
                    "{}; tenant {:?} may not use {kind} SDK environments (policy field environments: {allowed:?}); use WASM UDFs, or ask the operator",
                    foreign_function(&step.function_urn),
                    tenant.name,
                ),
            });
        }
    }
    findings
}

/// What kind of user function a step has, for humans.
fn foreign_function(urn: &str) -> String {
    if urn.contains("pickled_python") {
        format!("pickled Python function ({urn}): it needs a Python SDK harness")
    } else {
        format!("function {urn} needs an SDK harness")
    }
}

/// Lexically normalised absolute path, or `None` when it climbs with `..`
/// or is relative. When the path (or, for globs, the directory before the
/// first wildcard) exists, symlinks are resolved.
fn normalise(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let mut fixed = PathBuf::new();
    let mut rest = PathBuf::new();
    let mut in_rest = false;
    for c in p.components() {
        let s = c.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            in_rest = true;
        }
        if in_rest {
            rest.push(c);
        } else {
            fixed.push(c);
        }
    }
    // Resolve the longest existing ancestor of the fixed part.
    let mut existing = fixed.clone();
    let mut tail = Vec::new();
    while !existing.exists() {
        tail.push(existing.file_name()?.to_owned());
        existing = existing.parent()?.to_path_buf();
    }
    let mut out = existing.canonicalize().ok()?;
    for t in tail.into_iter().rev() {
        out.push(t);
    }
    Some(out.join(rest))
}

fn within(p: &Path, dirs: &[PathBuf]) -> bool {
    match normalise(p) {
        Some(n) => dirs.iter().any(|d| n.starts_with(d)),
        None => false,
    }
}

/// Check every runner-native IO path in `pipeline` against the tenant's
/// `data_dirs`. Single-user mode (no data_dirs) allows any path.
pub fn check_io_paths(tenant: &Tenant, pipeline: &Pipeline) -> Result<(), String> {
    let Some(dirs) = &tenant.data_dirs else {
        return Ok(());
    };
    let Some(c) = &pipeline.components else {
        return Ok(());
    };
    let mut ids: Vec<&String> = c.transforms.keys().collect();
    ids.sort();
    for id in ids {
        let t = &c.transforms[id];
        let paths: Vec<String> = match decode(t, c) {
            Verdict::Run(Step::ReadText { patterns, .. }) => patterns,
            Verdict::Run(Step::WriteText { prefix, .. }) => vec![prefix],
            _ => continue,
        };
        for p in paths {
            if !within(Path::new(&p), dirs) {
                return Err(format!(
                    "transform {:?}: path {p:?} is outside tenant {:?}'s data directories (policy data_dirs: {:?}); use an absolute path inside one of them",
                    t.unique_name, tenant.name, dirs
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quotas;

    fn tenant(dir: &Path) -> Tenant {
        Tenant {
            name: "t".into(),
            token_sha256: None,
            quotas: Quotas {
                workers: 2,
                memory_mb: 64,
                bundle_deadline_secs: 5,
                ..Quotas::default()
            },
            data_dirs: Some(vec![dir.canonicalize().unwrap()]),
            grant_read_dirs: Some(vec![dir.canonicalize().unwrap()]),
            environments: Some(vec![]),
        }
    }

    fn opts(kv: &[(&str, Kind)]) -> prost_types::Struct {
        prost_types::Struct {
            fields: kv
                .iter()
                .map(|(k, v)| {
                    (
                        format!("beam:option:{k}:v1"),
                        prost_types::Value {
                            kind: Some(v.clone()),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn quotas_cap_options_and_name_the_quota() {
        let d = tempfile::tempdir().unwrap();
        let t = tenant(d.path());
        let ok = job_limits(&t, &opts(&[])).unwrap();
        assert_eq!(ok.workers, 2);
        assert_eq!(ok.udf_memory_budget, 64 << 20);
        assert_eq!(ok.limits.bundle_deadline, Duration::from_secs(5));
        let ok = job_limits(
            &t,
            &opts(&[("wasmbeam_workers", Kind::StringValue("1".into()))]),
        )
        .unwrap();
        assert_eq!(ok.workers, 1);
        let e = job_limits(
            &t,
            &opts(&[("wasmbeam_workers", Kind::StringValue("8".into()))]),
        )
        .unwrap_err();
        assert!(e.contains("quota workers=2"), "{e}");
        let e = job_limits(
            &t,
            &opts(&[("wasmbeam_memory_mb", Kind::NumberValue(512.0))]),
        )
        .unwrap_err();
        assert!(e.contains("quota memory_mb=64"), "{e}");
        let e = job_limits(
            &t,
            &opts(&[("wasmbeam_grant_read", Kind::StringValue("/etc".into()))]),
        )
        .unwrap_err();
        assert!(e.contains("grant_read_dirs"), "{e}");
        let inside = d.path().join("models").display().to_string();
        let ok = job_limits(
            &t,
            &opts(&[(
                "wasmbeam_grant_read",
                Kind::StringValue(format!("{inside}=/models")),
            )]),
        )
        .unwrap();
        assert_eq!(ok.grants.read_only_dirs[0].1, "/models");
    }

    #[test]
    fn paths_must_stay_inside_data_dirs() {
        let d = tempfile::tempdir().unwrap();
        let dirs = vec![d.path().canonicalize().unwrap()];
        assert!(within(&d.path().join("in/*.txt"), &dirs));
        assert!(within(&d.path().join("out/counts"), &dirs));
        assert!(!within(&d.path().join("../escape"), &dirs));
        assert!(!within(Path::new("relative/path"), &dirs));
        assert!(!within(Path::new("/etc/passwd"), &dirs));
        // A symlink inside the data dir pointing out of it does not widen it.
        std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
        assert!(!within(&d.path().join("link/passwd"), &dirs));
    }
}
