//! `wasmbeam run` with SDK harnesses: Beam Python pipelines whose pickled
//! DoFns run in a real Beam worker pool (or PROCESS harness) beside WASM
//! and runner-native steps; the Beam fixtures against Beam's own runner;
//! retries, failures, cancellation and several harnesses per environment.

mod common;
use common::{assert_nothing_left, files_with_prefix, repo, sorted_lines, stderr, wasmbeam};

use std::path::{Path, PathBuf};

/// The `modes` test UDF, built (once) and its component path.
fn modes_component(cwd: &Path) -> String {
    let dir = repo().join("crates/wasmbeam-wasm-host/tests/udfs/modes");
    let o = wasmbeam(&["build", &dir.display().to_string()], cwd);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `tests/e2e/mixed_sdk_pipeline.py`'s pipeline in `dir` (in.txt to
/// out/result), its EXTERNAL environment at `pool`.
fn mixed_pipeline(dir: &Path, pool: &str, component: &str) -> PathBuf {
    let pipeline = dir.join("mixed.pb");
    let p = pipeline.to_str().unwrap();
    e2e_script(
        "mixed_sdk_pipeline.py",
        &[pool, "in.txt", "out/result", p, component],
        dir,
    );
    pipeline
}

/// Run `tests/e2e/SCRIPT` with the project's venv in `cwd`; it must succeed.
fn e2e_script(script: &str, args: &[&str], cwd: &Path) {
    let made = std::process::Command::new(repo().join(".venv/bin/python"))
        .arg(repo().join("tests/e2e").join(script))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
}

/// Beam's Python worker pool (what an EXTERNAL environment points at) on a
/// free loopback port; killed on drop. It starts workers with the `python`
/// on PATH, so the project's venv goes first.
struct WorkerPool {
    child: std::process::Child,
    address: String,
}

impl WorkerPool {
    fn start() -> WorkerPool {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let venv = repo().join(".venv/bin");
        let child = std::process::Command::new(venv.join("python"))
            .args([
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                &format!("--service_port={port}"),
            ])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    venv.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start Beam's worker pool from .venv (scripts/bootstrap.sh installs it)");
        let address = format!("127.0.0.1:{port}");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the worker pool never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        WorkerPool { child, address }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_beam_python_pipeline_runs_pickled_dofns_in_the_sdk_harness_beside_wasm_and_native_io() {
    let tmp = tempfile::tempdir().unwrap();
    let lines = ["hello world", "wasm beam", "", "Ünïcode ok"];
    std::fs::write(tmp.path().join("in.txt"), lines.join("\n") + "\n").unwrap();
    let component = modes_component(tmp.path());
    let pool = WorkerPool::start();
    let pipeline = mixed_pipeline(tmp.path(), &pool.address, &component);
    let o = wasmbeam(&["run", pipeline.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut want: Vec<String> = lines
        .iter()
        .flat_map(|l| {
            let u = l.to_uppercase();
            let chars: Vec<char> = u.chars().collect();
            let half = chars.len() / 2;
            [
                chars[..half].iter().collect::<String>(),
                chars[half..].iter().collect(),
            ]
        })
        .collect();
    want.sort();
    let got = sorted_lines(&files_with_prefix(&tmp.path().join("out"), "result"));
    assert_eq!(got, want);
    // The job stopped its harness (StopWorker): no worker process is left.
    let started = std::time::Instant::now();
    while !harnesses_of(pool.child.id()).is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "SDK harness processes left after the job: {:?}",
            harnesses_of(pool.child.id())
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn every_beam_python_fixture_gives_what_beams_own_runner_gives() {
    // The fixtures are pipelines exactly as Beam Python submits them: side
    // inputs (list, dict, multimap), stateful bag state with timers,
    // multiple outputs, windows and lifted combiners. Each gets a recording
    // ParDo on every PCollection nothing reads, runs on wasmbeam against a
    // worker pool of our own, and must record exactly what the same
    // pipeline records on Beam's FnApiRunner (the DirectRunner's engine).
    let tmp = tempfile::tempdir().unwrap();
    let pool = WorkerPool::start();
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/fixtures/beam"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".portable.pb"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 7, "{fixtures:?}");
    let recorded = |dir: &Path| -> Vec<String> {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        sorted_lines(&files)
    };
    for f in fixtures {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let ours = tmp.path().join(format!("{name}-wasmbeam"));
        let theirs = tmp.path().join(format!("{name}-beam"));
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::create_dir_all(&theirs).unwrap();
        let here = tmp.path().join(&name);
        let (fixture, out) = (f.to_str().unwrap(), ours.to_str().unwrap());
        e2e_script(
            "fixture_outputs.py",
            &[
                "prepare",
                fixture,
                &pool.address,
                out,
                here.to_str().unwrap(),
            ],
            tmp.path(),
        );
        let o = wasmbeam(&["run", here.to_str().unwrap()], tmp.path());
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let reference = theirs.to_str().unwrap();
        e2e_script(
            "fixture_outputs.py",
            &["direct", fixture, &pool.address, reference],
            tmp.path(),
        );
        let (got, want) = (recorded(&ours), recorded(&theirs));
        assert!(!want.is_empty(), "{name}: Beam's runner recorded nothing");
        assert_eq!(got, want, "{name}");
    }
}

/// `tests/e2e/sdk_dofn_modes.py`'s pipeline in `dir` (in*.txt to
/// out/result), its DoFn acting as `mode` says, against worker pool `pool`.
fn dofn_mode_pipeline(dir: &Path, mode: &str, pool: &str) -> PathBuf {
    let pipeline = dir.join(format!("{mode}.pb"));
    let marker = dir.join("marker");
    e2e_script(
        "sdk_dofn_modes.py",
        &[
            mode,
            pool,
            "in*.txt",
            "out/result",
            marker.to_str().unwrap(),
            pipeline.to_str().unwrap(),
        ],
        dir,
    );
    pipeline
}

#[test]
fn a_harness_that_dies_mid_bundle_is_replaced_and_the_bundle_retried() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "one\ntwo\nthree\n").unwrap();
    let pool = WorkerPool::start();
    let pipeline = dofn_mode_pipeline(tmp.path(), "crash-once", &pool.address);
    let o = wasmbeam(&["run", pipeline.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // The first harness really died (it left its pid in the marker).
    assert!(tmp.path().join("marker").exists());
    assert!(
        stderr(&o).contains("retrying on a fresh harness"),
        "{}",
        stderr(&o)
    );
    let got = sorted_lines(&files_with_prefix(&tmp.path().join("out"), "result"));
    assert_eq!(got, ["ONE", "THREE", "TWO"]);
}

#[test]
fn a_dofn_that_always_raises_fails_the_job_with_its_traceback_after_the_retries() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "x\n").unwrap();
    let pool = WorkerPool::start();
    let pipeline = dofn_mode_pipeline(tmp.path(), "always-raise", &pool.address);
    let o = wasmbeam(
        &["run", pipeline.to_str().unwrap(), "--bundle-attempts", "2"],
        tmp.path(),
    );
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    let cause = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(cause.contains("transform \"Misbehave\""), "{err}");
    assert!(err.contains("Traceback (most recent call last)"), "{err}");
    assert!(
        err.contains("ValueError: boom from the test DoFn: x"),
        "{err}"
    );
    assert!(err.contains("(attempt 2 of 2)"), "{err}");
    assert!(
        !tmp.path().join("out").exists()
            || files_with_prefix(&tmp.path().join("out"), "result").is_empty()
    );
}

#[test]
fn a_process_harness_that_dies_at_start_fails_the_job_at_once_with_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "x\n").unwrap();
    let boot = tmp.path().join("boot.sh");
    std::fs::write(
        &boot,
        "#!/bin/sh\necho 'boot: no SDK installed here' >&2\nexit 3\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .args(["+x", boot.to_str().unwrap()])
        .status()
        .unwrap();
    let env = format!("process:{}", boot.display());
    let pipeline = dofn_mode_pipeline(tmp.path(), "pid", &env);
    let started = std::time::Instant::now();
    let o = wasmbeam(&["run", pipeline.to_str().unwrap()], tmp.path());
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}: the dead harness was only noticed at the connect timeout",
        started.elapsed()
    );
    let err = stderr(&o);
    assert!(
        err.contains("exited (exit status: 3) before connecting"),
        "{err}"
    );
    assert!(err.contains("boot: no SDK installed here"), "{err}");
}

#[test]
fn sigterm_during_an_sdk_bundle_stops_the_job_and_its_harness() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "x\n").unwrap();
    let pool = WorkerPool::start();
    let pipeline = dofn_mode_pipeline(tmp.path(), "sleep", &pool.address);
    let mut child = common::wasmbeam_cmd(tmp.path())
        .args(["run", pipeline.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The DoFn writes the marker as it falls asleep.
    let waited = std::time::Instant::now();
    while !tmp.path().join("marker").exists() {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "the DoFn never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!harnesses_of(pool.child.id()).is_empty());
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let signalled = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            signalled.elapsed() < std::time::Duration::from_secs(20),
            "wasmbeam run did not stop after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    while !harnesses_of(pool.child.id()).is_empty() {
        assert!(
            signalled.elapsed() < std::time::Duration::from_secs(30),
            "SDK harness processes left after the cancelled job: {:?}",
            harnesses_of(pool.child.id())
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !tmp.path().join("out").exists()
            || files_with_prefix(&tmp.path().join("out"), "result").is_empty()
    );
}

#[test]
fn sdk_workers_spread_bundles_over_several_harnesses() {
    let tmp = tempfile::tempdir().unwrap();
    // Eight files: eight read splits, so eight bundles for two workers.
    for i in 0..8 {
        std::fs::write(tmp.path().join(format!("in{i}.txt")), format!("line{i}\n")).unwrap();
    }
    let pool = WorkerPool::start();
    let pipeline = dofn_mode_pipeline(tmp.path(), "pid", &pool.address);
    let o = wasmbeam(
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--workers",
            "2",
            "--sdk-workers",
            "2",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let got = sorted_lines(&files_with_prefix(&tmp.path().join("out"), "result"));
    assert_eq!(got.len(), 8, "{got:?}");
    let pids: std::collections::BTreeSet<&str> =
        got.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        pids.len(),
        2,
        "two harness processes shared the bundles: {got:?}"
    );
}

/// Command lines of the SDK harness processes that worker pool `pool` started.
fn harnesses_of(pool: u32) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let dir = e.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Field 4 of /proc/PID/stat is the parent pid (after the `(comm)`).
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(pool) {
            continue;
        }
        let cmd = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("SdkHarness") {
            out.push(cmd);
        }
    }
    out
}

#[test]
fn an_sdk_environment_that_cannot_be_reached_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "a\n").unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let pipeline = mixed_pipeline(tmp.path(), &dead, &modes_component(tmp.path()));
    let o = wasmbeam(&["run", pipeline.to_str().unwrap()], tmp.path());
    assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = stderr(&o).lines().next().unwrap_or_default().to_string();
    assert!(first.contains("\"Upper\""), "{first}");
    assert!(
        first.contains(&format!("external worker pool at {dead}")),
        "{first}"
    );
    assert_nothing_left(&tmp.path().join("out"));
}
