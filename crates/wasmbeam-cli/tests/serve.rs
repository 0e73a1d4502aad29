//! `wasmbeam serve` end to end with the real Beam Python SDK (apache-beam
//! 2.77.0 in the project's .venv, made by scripts/bootstrap.sh) as the
//! client: PortableRunner submissions, the refusal of pickled Python, and
//! SIGTERM / SIGKILL followed by a restart.

mod common;
use common::beam::{build, python, script, script_env, text, Server};
use common::repo;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn sorted_lines(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn outputs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// Lines "JOB id STATE" and "  MSG text" from the Job API.
fn job_status(endpoint: &str) -> String {
    let o = script("job_status.py", &[endpoint]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_for_state(endpoint: &str, state: &str) -> String {
    let t = Instant::now();
    loop {
        let s = job_status(endpoint);
        if s.contains(state) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no job reached {state}:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn beam_python_portable_runner_runs_wordcount_and_pickled_python_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = build(
        &repo().join("examples/wordcount/udf"),
        &tmp.path().join("wordcount.wasm"),
    );
    let server = Server::start(&tmp.path().join("state"));
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let input = repo().join("examples/wordcount/input.txt");
    let o = script(
        "portable_wordcount.py",
        &[
            &server.endpoint,
            wasm.to_str().unwrap(),
            input.to_str().unwrap(),
            out.join("counts").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("STATE DONE"), "{}", text(&o));
    let lines = std::fs::read_to_string(&input).unwrap().lines().count();
    assert!(
        stdout.contains(&format!("COUNTER Split wordcount lines {lines}")),
        "user counter from the UDF, through GetJobMetrics: {}",
        text(&o)
    );
    let files = outputs(&out, "counts");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        sorted_lines(&files[0]),
        sorted_lines(&repo().join("examples/wordcount/expected.txt"))
    );

    let o = script("portable_pickled.py", &[&server.endpoint]);
    let all = text(&o);
    assert!(o.status.success(), "the pipeline was accepted:\n{all}");
    assert!(all.contains("REFUSED"), "{all}");
    assert!(all.contains("wasmbeam cannot run this pipeline"), "{all}");
    for name in ["Double", "Keep", "Numbers/FlatMap"] {
        assert!(
            all.contains(name),
            "the refusal does not name {name}:\n{all}"
        );
    }
    assert!(all.contains("pickled"), "{all}");
}

#[test]
fn sigterm_cancels_and_commits_nothing_and_sigkill_leaves_a_failed_record() {
    let tmp = tempfile::tempdir().unwrap();
    let modes = build(
        &repo().join("crates/wasmbeam-wasm-host/tests/udfs/modes"),
        &tmp.path().join("modes.wasm"),
    );
    let state = tmp.path().join("state");
    let input = tmp.path().join("in.txt");
    std::fs::write(&input, "spin\n").unwrap();
    let submit = |endpoint: &str, prefix: &str| {
        let o = script(
            "portable_submit.py",
            &[
                endpoint,
                modes.to_str().unwrap(),
                "loop",
                input.to_str().unwrap(),
                tmp.path().join(prefix).to_str().unwrap(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    };

    // SIGTERM: the looping job is cancelled, nothing is written, exit 0.
    let mut server = Server::start(&state);
    submit(&server.endpoint, "term");
    wait_for_state(&server.endpoint, "RUNNING");
    let t = Instant::now();
    let status = server.signal("-TERM");
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(outputs(tmp.path(), "term").is_empty());
    drop(server);

    // SIGKILL while running: the restart marks the job FAILED with the reason.
    let mut server = Server::start(&state);
    let s = job_status(&server.endpoint);
    assert!(s.contains(" CANCELLED"), "{s}");
    submit(&server.endpoint, "kill");
    wait_for_state(&server.endpoint, "RUNNING");
    server.signal("-KILL");
    drop(server);

    let server = Server::start(&state);
    let s = job_status(&server.endpoint);
    let jobs: Vec<&str> = s.lines().filter(|l| l.starts_with("JOB ")).collect();
    assert_eq!(jobs.len(), 2, "no submitted job vanishes:\n{s}");
    assert!(jobs.iter().any(|l| l.ends_with(" CANCELLED")), "{s}");
    assert!(jobs.iter().any(|l| l.ends_with(" FAILED")), "{s}");
    assert!(
        s.contains("server stopped while this job was RUNNING"),
        "the reason is recorded:\n{s}"
    );
    assert!(outputs(tmp.path(), "kill").is_empty());
}

#[test]
fn multi_tenant_server_takes_the_beam_client_token_and_refuses_others() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().canonicalize().unwrap();
    let wasm = build(
        &repo().join("examples/wordcount/udf"),
        &tmp_path.join("wordcount.wasm"),
    );
    let out = tmp_path.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let token = "a-long-enough-token-for-team-a";
    let config = tmp_path.join("tenants.yaml");
    std::fs::write(
        &config,
        format!(
            "tenants:\n  - name: team-a\n    token: {token}\n    data_dirs: [\"{}\", \"{}\"]\n",
            repo().join("examples/wordcount").display(),
            out.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        &tmp_path.join("state"),
        &["--config", config.to_str().unwrap()],
    );
    let input = repo().join("examples/wordcount/input.txt");
    let prefix = out.join("counts");
    let args = [
        server.endpoint.as_str(),
        wasm.to_str().unwrap(),
        input.to_str().unwrap(),
        prefix.to_str().unwrap(),
    ];
    // Plain PortableRunner sends no token: the server refuses it.
    let o = script("portable_wordcount.py", &args);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("a valid bearer token is required"),
        "{}",
        text(&o)
    );
    // WasmbeamRunner with the wrong token: refused the same way.
    let runner = ("WASMBEAM_TEST_RUNNER", "wasmbeam.runner.WasmbeamRunner");
    let o = script_env(
        "portable_wordcount.py",
        &args,
        &[runner, ("WASMBEAM_TOKEN", "someone-elses-token-123")],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("UNAUTHENTICATED"), "{}", text(&o));
    assert!(outputs(&out, "counts").is_empty());
    // With the tenant's token the job runs.
    let o = script_env(
        "portable_wordcount.py",
        &args,
        &[runner, ("WASMBEAM_TOKEN", token)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("STATE DONE"),
        "{}",
        text(&o)
    );
    assert_eq!(
        sorted_lines(&outputs(&out, "counts")[0]),
        sorted_lines(&repo().join("examples/wordcount/expected.txt"))
    );
}

fn loopback_lines(out: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    lines
}

const LOOPBACK_RESULT: [&str; 16] = [
    "BEAM!",
    "HELLO!",
    "ON!",
    "ON!",
    "WASM!",
    "WASM!",
    "WASMBEAM!",
    "count beam=1",
    "count hello=1",
    "count on=2",
    "count wasm=2",
    "count wasmbeam=1",
    "len 2=on,on",
    "len 4=beam,wasm,wasm",
    "len 5=hello",
    "len 8=wasmbeam",
];

#[test]
fn a_plain_beam_python_pipeline_runs_with_loopback_in_its_own_sdk_harness() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("state"));
    let out = tmp.path().join("recorded.txt");
    let o = script(
        "portable_loopback.py",
        &[&server.endpoint, out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("STATE DONE"), "{}", text(&o));
    assert_eq!(loopback_lines(&out), LOOPBACK_RESULT);
    // The harness was stopped cleanly: it saw no broken stream.
    assert!(!text(&o).contains("Socket closed"), "{}", text(&o));
}

#[test]
fn beam_python_wordcount_with_beams_own_text_io_runs_on_serve() {
    // Beam's ReadFromText is a splittable DoFn and its WriteToText a
    // composite of pickled DoFns with side inputs: the whole pipeline runs
    // in the client's LOOPBACK harness, around the runner's GroupByKey.
    // With two SDK workers (harness processes), wasmbeam splits the file's
    // restriction between them while they run: same counts.
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("state"));
    let input = tmp.path().join("in.txt");
    let mut text_in = String::new();
    let mut want: std::collections::BTreeMap<String, u64> = Default::default();
    for i in 0..40_000 {
        let verb = ["ran", "runs", "ran"][i % 3];
        let line = format!(
            "the beam {verb} wasm{} {}",
            "abcdefg".as_bytes()[i % 7] as char,
            i % 1000
        );
        for w in line.split(' ') {
            *want.entry(w.to_string()).or_default() += 1;
        }
        text_in.push_str(&line);
        text_in.push('\n');
    }
    std::fs::write(&input, text_in).unwrap();
    let mut expected: Vec<String> = want.iter().map(|(w, n)| format!("{w}: {n}")).collect();
    expected.sort();
    let job = format!("--job_endpoint={}", server.endpoint);
    // The harness processes are started with the `python` on PATH.
    let venv_path = format!(
        "{}:{}",
        repo().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (run, extra) in [
        ("one", vec![]),
        (
            "two",
            vec![
                "--sdk_worker_parallelism=2",
                "--experiments=use_loopback_process_worker",
            ],
        ),
    ] {
        let prefix = tmp.path().join(run).join("counts");
        let mut args = vec![
            input.to_str().unwrap(),
            prefix.to_str().unwrap(),
            "--runner=PortableRunner",
            &job,
            "--environment_type=LOOPBACK",
        ];
        args.extend(extra);
        let o = script_env("beam_wordcount.py", &args, &[("PATH", &venv_path)]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("STATE DONE"),
            "{run}: {}",
            text(&o)
        );
        let mut got = Vec::new();
        for f in outputs(&tmp.path().join(run), "counts") {
            got.extend(sorted_lines(&f));
        }
        got.sort();
        assert_eq!(got, expected, "{run}");
    }
}

#[test]
fn ordered_list_state_reads_and_clears_by_range() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("state"));
    let o = script("ordered_state_pipeline.py", &[&server.endpoint]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"),
        "{}",
        text(&o)
    );
}

/// A `--save_main_session` pipeline on PROCESS harnesses: its DoFn needs
/// the pickled main session the client staged, and an option it was given.
/// Both the built-in Python command and a boot program that uses Beam's own
/// provision and artifact retrieval stubs get them from the runner.
#[test]
fn process_harnesses_get_staged_files_and_options_from_the_runner() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &tmp.path().join("state"),
        &["--sdk-python", python().to_str().unwrap()],
    );
    let boot = format!(
        "{} {}",
        python().display(),
        repo().join("tests/e2e/provision_boot.py").display()
    );
    for command in ["wasmbeam:python", boot.as_str()] {
        let o = script("main_session_pipeline.py", &[&server.endpoint, command]);
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"),
            "{command}: {}",
            text(&o)
        );
    }
}

#[test]
fn tenants_use_sdk_environments_only_where_their_policy_allows() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp_path = tmp.path().canonicalize().unwrap();
    let config = tmp_path.join("tenants.yaml");
    std::fs::write(
        &config,
        "tenants:\n  - name: wasm-only\n    token: token-of-the-wasm-only-team\n  - name: harnesses\n    token: token-of-the-harness-team\n    environments: [external]\n",
    )
    .unwrap();
    let server = Server::start_with(
        &tmp_path.join("state"),
        &["--config", config.to_str().unwrap()],
    );
    let runner = ("WASMBEAM_TEST_RUNNER", "wasmbeam.runner.WasmbeamRunner");
    let out = tmp_path.join("recorded.txt");
    let args = [server.endpoint.as_str(), out.to_str().unwrap()];
    // A tenant without SDK environments is refused, naming the policy field.
    let o = script_env(
        "portable_loopback.py",
        &args,
        &[runner, ("WASMBEAM_TOKEN", "token-of-the-wasm-only-team")],
    );
    let all = text(&o);
    assert!(all.contains("REFUSED"), "{all}");
    assert!(
        all.contains("tenant \"wasm-only\" may not use external SDK environments"),
        "{all}"
    );
    assert!(all.contains("policy field environments"), "{all}");
    assert!(loopback_lines(&out).is_empty());
    // A tenant allowed `external` runs the same pipeline.
    let o = script_env(
        "portable_loopback.py",
        &args,
        &[runner, ("WASMBEAM_TOKEN", "token-of-the-harness-team")],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("STATE DONE"),
        "{}",
        text(&o)
    );
    assert_eq!(loopback_lines(&out), LOOPBACK_RESULT);
}
