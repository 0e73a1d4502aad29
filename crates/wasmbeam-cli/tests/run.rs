//! `wasmbeam run` end to end: YAML pipelines with real WASM components built
//! from source, real files, and the Beam Python fixtures.

mod common;
use common::{repo, wasmbeam};

use std::path::{Path, PathBuf};
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sorted_lines(files: &[PathBuf]) -> Vec<String> {
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

fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn wordcount_example_matches_its_expected_output_at_any_parallelism() {
    let tmp = tempfile::tempdir().unwrap();
    let expected: Vec<String> =
        std::fs::read_to_string(repo().join("examples/wordcount/expected.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
    let mut previous: Option<Vec<u8>> = None;
    for workers in ["1", "2", "3"] {
        let out = tmp.path().join(format!("w{workers}/counts"));
        let o = wasmbeam(
            &[
                "run",
                "examples/wordcount/pipeline.yaml",
                "--workers",
                workers,
                "--set",
                "input=examples/wordcount/input.txt",
                "--set",
                &format!("output={}", out.display()),
            ],
            &repo(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let files = files_with_prefix(out.parent().unwrap(), "counts");
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with("counts-00000-of-00001"));
        let mut lines = sorted_lines(&files);
        lines.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(lines, expected);
        let bytes = std::fs::read(&files[0]).unwrap();
        if let Some(p) = &previous {
            assert_eq!(p, &bytes, "output differs between worker counts");
        }
        previous = Some(bytes);
    }
}

/// A failed or cancelled job commits nothing: no output or staging files
/// remain in `out`.
fn assert_nothing_left(out: &Path) {
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

fn modes_yaml(dir: &Path, body: &str) -> PathBuf {
    let udf = repo().join("crates/wasmbeam-wasm-host/tests/udfs/modes");
    let text = body.replace("UDF", &udf.display().to_string());
    let p = dir.join("pipeline.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_trapping_udf_fails_the_job_names_the_transform_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "a\nb\nboom\nc\n").unwrap();
    let y = modes_yaml(
        tmp.path(),
        "pipeline:\n  transforms:\n    - type: ReadFromText\n      name: Read\n      config: {path: in.txt}\n    - type: ParDo\n      name: Explode\n      input: Read\n      config: {udf: UDF, config: trap-on-boom, output_coder: string_utf8}\n    - type: WriteToText\n      name: Write\n      input: Explode\n      config: {path: out/result}\n",
    );
    let o = wasmbeam(&["run", y.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let first = stderr(&o)
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string();
    assert!(first.contains("transform \"Explode\" failed"), "{first}");
    assert!(
        first.contains("the guest panicked on purpose: boom"),
        "{first}"
    );
    assert_nothing_left(&tmp.path().join("out"));
}

#[test]
fn multiple_outputs_and_side_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "# header\nx\n# note\ny\n").unwrap();
    std::fs::write(tmp.path().join("side.txt"), "s1\ns2\n").unwrap();
    let y = modes_yaml(
        tmp.path(),
        "pipeline:\n  transforms:\n    - type: ReadFromText\n      name: Read\n      config: {path: in.txt}\n    - type: ReadFromText\n      name: Side\n      config: {path: side.txt}\n    - type: ParDo\n      name: Route\n      input: Read\n      config: {udf: UDF, config: route, output_coder: string_utf8, outputs: [main, comments]}\n    - type: ParDo\n      name: Join\n      input: Route\n      config: {udf: UDF, config: side, output_coder: string_utf8, side_inputs: {extra: Side}}\n    - type: WriteToText\n      name: WriteMain\n      input: Join\n      config: {path: out/main}\n    - type: WriteToText\n      name: WriteComments\n      input: Route.comments\n      config: {path: out/comments}\n",
    );
    let o = wasmbeam(&["run", y.to_str().unwrap(), "--workers", "2"], tmp.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp.path().join("out");
    assert_eq!(
        sorted_lines(&files_with_prefix(&out, "main")),
        ["x|extra:s1", "x|extra:s2", "y|extra:s1", "y|extra:s2"]
    );
    assert_eq!(
        sorted_lines(&files_with_prefix(&out, "comments")),
        ["# header", "# note"]
    );
}

#[test]
fn beam_python_fixtures_name_the_worker_pool_they_need() {
    // Pickled DoFns run in the SDK harness of their EXTERNAL environment;
    // the fixtures name localhost:50000, where nothing listens here.
    let o = wasmbeam(
        &["run", "tests/fixtures/beam/c_group_by_key.portable.pb"],
        &repo(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let first = stderr(&o).lines().next().unwrap_or_default().to_string();
    assert!(
        first.contains("external worker pool at localhost:50000"),
        "{first}"
    );
    assert!(
        first.contains("transform \"Create/FlatMap(<lambda at core.py:4094>)\""),
        "{first}"
    );
}

#[test]
fn bad_yaml_and_missing_variables_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.yaml");
    std::fs::write(
        &p,
        "pipeline:\n  transforms:\n    - type: ReadFromText\n      config: {path: [unclosed\n",
    )
    .unwrap();
    let o = wasmbeam(&["run", p.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .lines()
            .next()
            .unwrap()
            .contains("bad.yaml: line"),
        "{}",
        stderr(&o)
    );
    let o = wasmbeam(&["run", "examples/wordcount/pipeline.yaml"], &repo());
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--set input=VALUE"), "{}", stderr(&o));
}

#[test]
fn telemetry_example_matches_its_expected_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("telemetry");
    let o = wasmbeam(
        &[
            "run",
            "examples/telemetry/pipeline.yaml",
            "--set",
            "input=examples/telemetry/readings.csv",
            "--set",
            &format!("output={}", out.display()),
        ],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for name in ["minute_stats", "daily_totals"] {
        let expected: Vec<String> =
            std::fs::read_to_string(repo().join(format!("examples/telemetry/expected_{name}.csv")))
                .unwrap()
                .lines()
                .map(String::from)
                .collect();
        let mut got = sorted_lines(&files_with_prefix(&out, name));
        got.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, expected, "{name}");
    }
    let invalid = sorted_lines(&files_with_prefix(&out, "invalid"));
    assert_eq!(invalid.len(), 3, "{invalid:?}");
    assert!(
        invalid
            .iter()
            .any(|l| l.contains("bad timestamp \"not-a-time\"")),
        "{invalid:?}"
    );
}

#[test]
fn ml_example_fits_the_model_and_reports_the_expected_rmse() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ml");
    let o = wasmbeam(
        &[
            "run",
            "examples/ml/pipeline.yaml",
            "--set",
            "train=examples/ml/train.csv",
            "--set",
            "test=examples/ml/test.csv",
            "--set",
            &format!("output={}", out.display()),
        ],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let expected = std::fs::read_to_string(repo().join("examples/ml/expected_rmse.txt")).unwrap();
    assert_eq!(
        sorted_lines(&files_with_prefix(&out, "rmse")),
        [expected.trim().to_string()]
    );
    assert_eq!(
        sorted_lines(&files_with_prefix(&out, "predictions")).len(),
        500
    );
}

#[test]
fn gzip_and_glob_inputs_are_read() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read(repo().join("examples/wordcount/input.txt")).unwrap();
    let (first, second) = text.split_at(text.iter().position(|&b| b == b'\n').unwrap() + 1);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(first).unwrap();
    std::fs::write(tmp.path().join("part-a.txt.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(tmp.path().join("part-b.txt"), second).unwrap();
    let out = tmp.path().join("out/counts");
    let input = format!("input={}/part-*", tmp.path().display());
    let o = wasmbeam(
        &[
            "run",
            "examples/wordcount/pipeline.yaml",
            "--set",
            &input,
            "--set",
            &format!("output={}", out.display()),
        ],
        &repo(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let expected: Vec<String> =
        std::fs::read_to_string(repo().join("examples/wordcount/expected.txt"))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
    let mut got = sorted_lines(&files_with_prefix(out.parent().unwrap(), "counts"));
    got.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(got, expected);
}

/// `Read in.txt -> [before] -> ParDo(mode) -> [after] -> Write out/result`.
fn one_udf_pipeline(dir: &Path, mode: &str, before: &str, after: &str) -> PathBuf {
    let window = |w: &str, name: &str, input: &str| {
        if w.is_empty() {
            String::new()
        } else {
            format!("    - type: WindowInto\n      name: {name}\n      input: {input}\n      config: {{windowing: {w}}}\n")
        }
    };
    let mut y = String::from("pipeline:\n  transforms:\n    - type: ReadFromText\n      name: Read\n      config: {path: in.txt}\n");
    y.push_str(&window(before, "WindowFirst", "Read"));
    let udf_in = if before.is_empty() {
        "Read"
    } else {
        "WindowFirst"
    };
    y.push_str(&format!("    - type: ParDo\n      name: Udf\n      input: {udf_in}\n      config: {{udf: UDF, config: {mode}, output_coder: string_utf8}}\n"));
    y.push_str(&window(after, "WindowAfter", "Udf"));
    let last = if after.is_empty() {
        "Udf"
    } else {
        "WindowAfter"
    };
    if !after.is_empty() {
        y.push_str("    - type: ParDo\n      name: ShowWindows\n      input: WindowAfter\n      config: {udf: UDF, config: windows, output_coder: string_utf8}\n");
    }
    let last = if after.is_empty() {
        last
    } else {
        "ShowWindows"
    };
    y.push_str(&format!("    - type: WriteToText\n      name: Write\n      input: {last}\n      config: {{path: out/result, num_shards: 1}}\n"));
    modes_yaml(dir, &y)
}

fn first_stderr_line(o: &Output) -> String {
    stderr(o).lines().next().unwrap_or_default().to_string()
}

#[test]
fn out_of_range_timestamps_fail_in_every_window_kind_and_extreme_valid_ones_are_windowed() {
    let kinds = [
        ("{type: global}", 1),
        ("{type: fixed, size: 1m}", 1),
        ("{type: sliding, size: 1m, period: 10s}", 6),
        ("{type: sessions, gap: 1m}", 1),
    ];
    for (kind, windows) in kinds {
        // i64::MIN + 60_001 ms, outside Beam's range: the UDF's output is
        // refused, naming the transform and the element, whatever windows
        // its input is in.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("in.txt"), "0\n-9223372036854715807\n").unwrap();
        let y = one_udf_pipeline(tmp.path(), "stamp", kind, "");
        let o = wasmbeam(&["run", y.to_str().unwrap()], tmp.path());
        assert_eq!(o.status.code(), Some(1), "{kind}: {}", stderr(&o));
        let first = first_stderr_line(&o);
        assert!(
            first.contains("transform \"Udf\" failed"),
            "{kind}: {first}"
        );
        assert!(
            first.contains("output 1 (from input element 1 of the bundle) has timestamp -9223372036854715807 ms, outside Beam's range"),
            "{kind}: {first}"
        );
        assert_nothing_left(&tmp.path().join("out"));

        // Beam's minimum itself is valid: windowing it after the UDF ends
        // (it once looped without end for sliding windows) and gives the
        // windows that hold it.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("in.txt"), "-9223372036854775\n").unwrap();
        let y = one_udf_pipeline(tmp.path(), "stamp", "", kind);
        let o = wasmbeam(&["run", y.to_str().unwrap()], tmp.path());
        assert_eq!(o.status.code(), Some(0), "{kind}: {}", stderr(&o));
        let out = files_with_prefix(&tmp.path().join("out"), "result");
        let lines = sorted_lines(&out);
        assert_eq!(lines.len(), windows, "{kind}: {lines:?}");
        for l in &lines {
            let (start, end) = l
                .split_once("@[")
                .and_then(|(_, w)| {
                    w.trim_end_matches('G')
                        .trim_end_matches(')')
                        .split_once(',')
                })
                .unwrap_or_else(|| panic!("{l}"));
            let (start, end): (i64, i64) = (start.parse().unwrap(), end.parse().unwrap());
            assert!(
                start <= -9223372036854775 && -9223372036854775 < end,
                "{kind}: {l}"
            );
        }
    }
}

#[test]
fn a_udf_flooding_stdout_fails_with_its_cause_on_the_first_stderr_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "a\n").unwrap();
    let y = one_udf_pipeline(tmp.path(), "shout", "", "");
    let o = wasmbeam(&["run", y.to_str().unwrap()], tmp.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let first = first_stderr_line(&o);
    assert!(
        first.starts_with("error: transform \"Udf\" failed"),
        "{first}"
    );
    assert!(first.contains("shout: the real cause"), "{first}");
    // The warning about dropped stdout still comes, after the cause.
    let err = stderr(&o);
    assert!(
        err.contains("dropped") && err.contains("per-bundle cap"),
        "{err}"
    );
    assert!(
        err.len() < 200_000,
        "the flood reached stderr: {} bytes",
        err.len()
    );
}

#[test]
fn memory_mb_bounds_the_job_and_names_the_budget() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "a\nb\nc\nd\n").unwrap();
    let y = one_udf_pipeline(tmp.path(), "membomb", "", "");
    let o = wasmbeam(
        &[
            "run",
            y.to_str().unwrap(),
            "--memory-mb",
            "48",
            "--workers",
            "2",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let first = first_stderr_line(&o);
    assert!(first.contains("transform \"Udf\" failed"), "{first}");
    assert!(first.contains("48 MiB"), "{first}");
}

#[test]
fn sigterm_stops_a_sleeping_udf_within_seconds_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "3600000\n").unwrap();
    let y = one_udf_pipeline(tmp.path(), "sleep", "", "");
    // Build the guest first, so the job starts at once.
    let o = wasmbeam(
        &[
            "build",
            &repo()
                .join("crates/wasmbeam-wasm-host/tests/udfs/modes")
                .display()
                .to_string(),
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut child = common::wasmbeam_cmd(tmp.path())
        .args(["run", y.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The job has started once its output is staged; give the UDF a moment to fall asleep.
    let out = tmp.path().join("out");
    let waited = std::time::Instant::now();
    while !(out.exists() && std::fs::read_dir(&out).unwrap().next().is_some()) {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(120),
            "the job never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let signalled = std::time::Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut status = None;
    while signalled.elapsed() < std::time::Duration::from_secs(10) {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let took = signalled.elapsed();
    let Some(status) = status else {
        let _ = child.kill();
        panic!("still running 10 s after SIGTERM");
    };
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "{}", stderr(&o));
    assert!(
        took < std::time::Duration::from_secs(2),
        "SIGTERM took {took:?}"
    );
    assert!(stderr(&o).contains("cancelled"), "{}", stderr(&o));
    assert_nothing_left(&out);
}

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
