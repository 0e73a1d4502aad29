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
