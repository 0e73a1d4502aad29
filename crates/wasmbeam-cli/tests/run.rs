//! `wasmbeam run` end to end: YAML pipelines with real WASM components built
//! from source, real files, and the Beam Python fixtures.

mod common;
use common::{assert_nothing_left, files_with_prefix, repo, sorted_lines, stderr, wasmbeam};

use std::path::{Path, PathBuf};
use std::process::Output;

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
    for name in ["minute_stats", "daily_totals", "alerts"] {
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

/// `wasmbeam run` on a stream (a watched directory): files moved in while
/// it runs are written out as they arrive, and the first SIGINT drains it
/// (it ends with success, everything read committed).
#[test]
fn a_streaming_run_writes_as_files_arrive_and_drains_on_sigint() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("first.txt"), "alpha\nbeta\n").unwrap();
    let out = tmp.path().join("out/lines");
    let yaml = tmp.path().join("watch.yaml");
    std::fs::write(
        &yaml,
        format!(
            "pipeline:\n  transforms:\n    - type: ReadFromText\n      name: Watch\n      config:\n        path: \"{}/*.txt\"\n        watch_secs: 0.05\n    - type: WriteToText\n      name: Write\n      input: Watch\n      config:\n        path: \"{}\"\n",
            inbox.display(),
            out.display()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_wasmbeam"))
        .arg("run")
        .arg(&yaml)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let written = |min: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let mut lines: Vec<String> = std::fs::read_dir(tmp.path().join("out"))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .flat_map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .collect();
            lines.sort();
            if lines.len() >= min || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert_eq!(
        written(2),
        ["alpha", "beta"],
        "the first file is out while the job runs"
    );
    std::fs::write(inbox.join("second.part"), "gamma\n").unwrap();
    std::fs::rename(inbox.join("second.part"), inbox.join("second.txt")).unwrap();
    assert_eq!(written(3), ["alpha", "beta", "gamma"]);
    common::drain_with_sigint(child);
    assert_eq!(
        written(3),
        ["alpha", "beta", "gamma"],
        "nothing lost or doubled"
    );
}
