//! Every example in Rust, Go and Python: `wasmbeam run` builds each guest
//! from source (cargo, Go ≥ 1.24 with the in-process componentizer,
//! componentize-py), and the three languages' outputs must be byte for byte
//! the same, and right. Also: a broken guest shows its compiler's error.

mod common;
use common::repo;

use std::path::Path;
use std::process::Output;

/// `wasmbeam ARGS` from the repository root.
fn wasmbeam(args: &[&str]) -> Output {
    common::wasmbeam(args, &repo())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir`, by name, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Run `example/pipeline{suffix}.yaml` for each language with `sets`
/// (OUT is replaced by each run's output dir); return the output files.
fn run_all(example: &str, sets: &[&str]) -> Vec<(&'static str, Vec<(String, Vec<u8>)>)> {
    let tmp = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (lang, suffix) in [("rust", ""), ("go", "-go"), ("python", "-py")] {
        let out = tmp.path().join(lang);
        let pipeline = format!("examples/{example}/pipeline{suffix}.yaml");
        let mut args = vec!["run".to_string(), pipeline];
        for s in sets {
            args.push("--set".into());
            args.push(s.replace("OUT", &out.display().to_string()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = wasmbeam(&args);
        assert!(o.status.success(), "{example} in {lang}:\n{}", text(&o));
        results.push((lang, files(&out)));
    }
    let (_, rust) = &results[0];
    assert!(!rust.is_empty());
    for (lang, got) in &results[1..] {
        let names: Vec<&String> = got.iter().map(|(n, _)| n).collect();
        let want: Vec<&String> = rust.iter().map(|(n, _)| n).collect();
        assert_eq!(names, want, "{example}: {lang} wrote other files than rust");
        for ((name, a), (_, b)) in rust.iter().zip(got) {
            assert!(a == b, "{example}: {lang}'s {name} differs from rust's");
        }
    }
    results
}

#[test]
fn wordcount_is_byte_identical_in_rust_go_and_python() {
    let r = run_all(
        "wordcount",
        &["input=examples/wordcount/input.txt", "output=OUT/counts"],
    );
    let (_, files) = &r[0];
    assert_eq!(files.len(), 1);
    assert_eq!(
        sorted_lines(&files[0].1),
        sorted_lines(&std::fs::read(repo().join("examples/wordcount/expected.txt")).unwrap())
    );

    // Every ASCII byte as a separator, underscores, tabs and CRs, words of
    // 127 and 200 bytes (one- and two-byte length prefixes), and non-ASCII
    // words: each SDK splits ASCII and non-ASCII lines by different code.
    let tmp = tempfile::tempdir().unwrap();
    let tricky = tmp.path().join("tricky.txt");
    let mut text: Vec<u8> = (1u8..128).filter(|&b| b != b'\n').collect();
    text.extend_from_slice(b"\nsnake_case don't\tTAB\r\n\n");
    text.extend(std::iter::repeat_n(b'a', 127));
    text.push(b' ');
    text.extend(std::iter::repeat_n(b'b', 200));
    text.extend_from_slice("\ncafé naïve_ßtraße ΚΑΛΗ ημέρα 日本語 l'été 😀x don't\n".as_bytes());
    std::fs::write(&tricky, text).unwrap();
    run_all(
        "wordcount",
        &[&format!("input={}", tricky.display()), "output=OUT/counts"],
    );
}

#[test]
fn telemetry_is_byte_identical_in_rust_go_and_python() {
    let r = run_all(
        "telemetry",
        &["input=examples/telemetry/readings.csv", "output=OUT"],
    );
    let (_, files) = &r[0];
    let get = |prefix: &str| -> Vec<String> {
        let mut lines = Vec::new();
        for (n, b) in files.iter().filter(|(n, _)| n.starts_with(prefix)) {
            assert!(!n.is_empty());
            lines.extend(sorted_lines(b));
        }
        lines.sort();
        lines
    };
    for (prefix, expected) in [
        ("minute_stats", "expected_minute_stats.csv"),
        ("daily_totals", "expected_daily_totals.csv"),
        ("alerts", "expected_alerts.csv"),
    ] {
        let want =
            sorted_lines(&std::fs::read(repo().join("examples/telemetry").join(expected)).unwrap());
        assert_eq!(get(prefix), want, "{prefix}");
    }
    let invalid = get("invalid");
    assert_eq!(invalid.len(), 3, "{invalid:?}");
    assert!(
        invalid
            .iter()
            .any(|l| l.contains("bad timestamp \"not-a-time\"")),
        "{invalid:?}"
    );
}

/// The stateful example: a value cell, a runner-side count and an
/// event-time timer per key, in each language's SDK.
#[test]
fn stateful_dedup_is_byte_identical_in_rust_go_and_python() {
    let r = run_all("dedup", &["input=examples/dedup/events.txt", "output=OUT"]);
    let (_, files) = &r[0];
    let get = |prefix: &str| -> Vec<String> {
        let mut lines = Vec::new();
        for (_, b) in files.iter().filter(|(n, _)| n.starts_with(prefix)) {
            lines.extend(sorted_lines(b));
        }
        lines.sort();
        lines
    };
    for (prefix, expected) in [
        ("first", "expected_first.txt"),
        ("dups", "expected_dups.txt"),
    ] {
        let want =
            sorted_lines(&std::fs::read(repo().join("examples/dedup").join(expected)).unwrap());
        assert_eq!(get(prefix), want, "{prefix}");
    }
}

#[test]
fn ml_is_byte_identical_in_rust_go_and_python() {
    let r = run_all(
        "ml",
        &[
            "train=examples/ml/train.csv",
            "test=examples/ml/test.csv",
            "output=OUT",
        ],
    );
    let (_, files) = &r[0];
    let rmse = files.iter().find(|(n, _)| n.starts_with("rmse")).unwrap();
    assert_eq!(
        rmse.1,
        std::fs::read(repo().join("examples/ml/expected_rmse.txt")).unwrap()
    );
    let predictions = files
        .iter()
        .find(|(n, _)| n.starts_with("predictions"))
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&predictions.1).lines().count(), 500);
}

#[test]
fn a_go_guest_named_by_relative_paths_builds_where_it_says() {
    // `go build` runs inside the guest's directory, so every path handed to
    // it must be absolute; a relative one used to land inside the guest.
    let tmp = tempfile::tempdir().unwrap();
    let udf = tmp.path().join("udf");
    std::fs::create_dir_all(&udf).unwrap();
    std::fs::write(
        udf.join("go.mod"),
        format!(
            "module relative\n\ngo 1.24\n\nrequire wasmbeam.dev/guest v0.0.0\n\nreplace wasmbeam.dev/guest => {}\n",
            repo().join("sdk-guests/go").display()
        ),
    )
    .unwrap();
    std::fs::copy(
        repo().join("examples/wordcount/udf-go/main.go"),
        udf.join("main.go"),
    )
    .unwrap();
    let o = common::wasmbeam_cmd(tmp.path())
        .args(["build", "udf", "-o", "out/udf.wasm"])
        .env("WASMBEAM_GUEST_TARGET_DIR", "guest-target")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wasmbeam:udf/dofn@"), "{}", text(&o));
    assert!(tmp.path().join("out/udf.wasm").is_file());
    assert!(tmp.path().join("guest-target/wasmbeam/go").is_dir());
    assert!(
        !udf.join("guest-target").exists(),
        "the build wrote inside the guest"
    );
}

#[test]
fn a_broken_guest_shows_its_compilers_error() {
    let tmp = tempfile::tempdir().unwrap();
    // Go: a type error.
    let go = tmp.path().join("go");
    std::fs::create_dir_all(&go).unwrap();
    std::fs::write(
        go.join("go.mod"),
        format!(
            "module broken\n\ngo 1.24\n\nrequire wasmbeam.dev/guest v0.0.0\n\nreplace wasmbeam.dev/guest => {}\n",
            repo().join("sdk-guests/go").display()
        ),
    )
    .unwrap();
    std::fs::write(
        go.join("main.go"),
        "package main\n\nfunc main() { var x int = \"text\"; _ = x }\n",
    )
    .unwrap();
    let o = wasmbeam(&["build", go.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("go build failed") && text(&o).contains("cannot use \"text\""),
        "{}",
        text(&o)
    );

    // Python: a syntax error.
    let py = tmp.path().join("py");
    std::fs::create_dir_all(&py).unwrap();
    std::fs::write(
        py.join("pyproject.toml"),
        "[project]\nname = \"broken\"\n\n[tool.wasmbeam]\nmodule = \"broken\"\n",
    )
    .unwrap();
    std::fs::write(py.join("broken.py"), "def oops(:\n    pass\n").unwrap();
    let o = wasmbeam(&["build", py.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("componentize-py failed") && text(&o).contains("SyntaxError"),
        "{}",
        text(&o)
    );

    // No build file at all.
    let o = wasmbeam(&["build", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no Cargo.toml, go.mod or pyproject.toml"),
        "{}",
        text(&o)
    );
}
