//! Stateful WASM DoFns that cannot run say why, naming the transform:
//! state on input that has no key, and a DoFn whose `describe` refuses its
//! config. Nothing is written.

mod common;
use common::{assert_nothing_left, repo, stderr, wasmbeam};

/// A pipeline that reads `input` and runs examples/dedup's UDF with
/// `config` on the lines themselves (or on parsed KVs when `parse`).
fn dedup_yaml(dir: &std::path::Path, config: &str, parse: bool) -> std::path::PathBuf {
    let udf = repo().join("examples/dedup/udf");
    let (input, parse_step) = if parse {
        (
            "Parse",
            format!(
                "    - type: ParDo\n      name: Parse\n      input: Read\n      config: {{ udf: \"{}\", config: parse, output_coder: \"kv<string_utf8, string_utf8>\" }}\n",
                udf.display()
            ),
        )
    } else {
        ("Read", String::new())
    };
    let text = format!(
        "pipeline:\n  transforms:\n    - type: ReadFromText\n      name: Read\n      config: {{ path: \"{events}\" }}\n{parse_step}    - type: ParDo\n      name: Dedup\n      input: {input}\n      config:\n        udf: \"{udf}\"\n        config: \"{config}\"\n        outputs: [first, dups]\n        output_coder: {{ first: string_utf8, dups: string_utf8 }}\n    - type: WriteToText\n      name: Write\n      input: Dedup.first\n      config: {{ path: \"{out}/first\" }}\n",
        events = repo().join("examples/dedup/events.txt").display(),
        udf = udf.display(),
        out = dir.join("out").display(),
    );
    let path = dir.join("p.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn state_on_input_without_keys_is_refused_naming_the_transform() {
    let tmp = tempfile::tempdir().unwrap();
    let y = dedup_yaml(tmp.path(), "dedup:60000", false);
    let o = wasmbeam(&["run", y.to_str().unwrap()], tmp.path());
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("Dedup"), "{err}");
    assert!(err.contains("needs KV input"), "{err}");
    assert_nothing_left(&tmp.path().join("out"));
}

#[test]
fn a_config_that_describe_refuses_fails_before_any_data_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let y = dedup_yaml(tmp.path(), "dedup:soon", true);
    let o = wasmbeam(&["run", y.to_str().unwrap()], tmp.path());
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("Dedup"), "{err}");
    assert!(err.contains("TTL_MS must be a positive integer"), "{err}");
    assert_nothing_left(&tmp.path().join("out"));
}

/// A stream's stateful DoFn whose user state outgrows the job's UDF memory
/// budget (100,000 keys, 8 MiB) stops with the budget error, naming the
/// transform and what the state needed, instead of growing without bound.
#[test]
fn user_state_past_the_memory_budget_stops_the_job_with_the_budget_error() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let events: String = (0..100_000).map(|i| format!("id{i},{i}\n")).collect();
    std::fs::write(inbox.join("events.txt"), events).unwrap();
    let y = dedup_yaml(tmp.path(), "dedup:60000", true);
    // The same pipeline, watching the directory: one keyed run holds every key.
    let text = std::fs::read_to_string(&y).unwrap().replace(
        &format!(
            "path: \"{}\" }}",
            repo().join("examples/dedup/events.txt").display()
        ),
        &format!("path: \"{}/*.txt\", watch_secs: 0.1 }}", inbox.display()),
    );
    assert!(text.contains("watch_secs"), "{text}");
    std::fs::write(&y, text).unwrap();
    let o = wasmbeam(
        &["run", y.to_str().unwrap(), "--memory-mb", "8"],
        tmp.path(),
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("Dedup"), "{err}");
    assert!(err.contains("for the user state of its keys"), "{err}");
    assert!(err.contains("memory budget of 8 MiB"), "{err}");
}
