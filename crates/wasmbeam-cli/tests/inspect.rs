//! `wasmbeam inspect` and `convert` on real Beam Python pipelines and on broken input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn wasmbeam(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wasmbeam"))
        .args(args)
        .output()
        .expect("run wasmbeam")
}

fn inspect(path: &Path) -> Output {
    wasmbeam(&["inspect".as_ref(), path.as_os_str()])
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(repo().join("tests/fixtures/beam"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".portable.pb"))
        .collect();
    v.sort();
    assert_eq!(v.len(), 7, "expected the 7 Beam Python fixtures");
    v
}

/// The report without its first line (which names the file and format).
fn body(o: &Output) -> String {
    let s = String::from_utf8_lossy(&o.stdout);
    s.split_once('\n')
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// Proto JSON written by protobuf's own Python `json_format`, an encoder independent of ours.
fn to_json_with_python(pb: &Path, out: &Path) {
    let py = repo().join(".venv/bin/python");
    assert!(
        py.exists(),
        "run scripts/bootstrap.sh first (missing {})",
        py.display()
    );
    let status = Command::new(py)
        .arg("-c")
        .arg(
            "import sys, logging; logging.disable(logging.WARNING)\n\
             from apache_beam.portability.api import beam_runner_api_pb2 as b\n\
             from google.protobuf import json_format\n\
             p = b.Pipeline.FromString(open(sys.argv[1],'rb').read())\n\
             open(sys.argv[2],'w').write(json_format.MessageToJson(p))",
        )
        .arg(pb)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn every_fixture_loads_in_all_three_formats_with_the_same_report() {
    let tmp = tempfile::tempdir().unwrap();
    for pb in fixtures() {
        let text = PathBuf::from(
            pb.to_string_lossy()
                .replace(".portable.pb", ".portable.textproto"),
        );
        let json = tmp
            .path()
            .join(pb.file_name().unwrap())
            .with_extension("json");
        to_json_with_python(&pb, &json);
        let reports: Vec<_> = [&pb, &text, &json]
            .iter()
            .map(|p| {
                let o = inspect(p);
                assert!(
                    o.status.success(),
                    "{}: {}",
                    p.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                body(&o)
            })
            .collect();
        assert_eq!(
            reports[0],
            reports[1],
            "binary vs text report for {}",
            pb.display()
        );
        assert_eq!(
            reports[0],
            reports[2],
            "binary vs JSON report for {}",
            pb.display()
        );
        let r = &reports[0];
        assert!(r.contains("Transforms ("), "{r}");
        assert!(r.contains("beam:transform:impulse:v1"), "{r}");
        assert!(r.contains("PCollections ("), "{r}");
        assert!(r.contains("Windowing strategies ("), "{r}");
        assert!(r.contains("beam:env:external:v1"), "{r}");
        // Pickled Python DoFns run in an SDK harness; what cannot run yet
        // (pickled CombineFns, SDK side inputs and state) is listed with why.
        assert!(r.contains("-> runs in an SDK harness"), "{r}");
        assert!(
            r.contains("yes:") || r.contains("no; these transforms cannot run:"),
            "{r}"
        );
    }
}

#[test]
fn report_shows_coders_windows_and_exact_unsupported_list() {
    let pb = repo().join("tests/fixtures/beam/e_fixed_windows_mean.portable.pb");
    let o = inspect(&pb);
    assert!(o.status.success());
    let r = body(&o);
    assert!(r.contains("fixed(1m)  window_coder=interval_window"), "{r}");
    assert!(r.contains("coder=kv<varint, bytes>"), "{r}");
    assert!(
        r.contains(
            "CombinePerKey(MeanCombineFn)/Group [beam:transform:group_by_key:v1]  -> runs natively"
        ),
        "{r}"
    );
    let listed: Vec<_> = r.lines().filter(|l| l.starts_with("  - ")).collect();
    let names: Vec<_> = listed
        .iter()
        .map(|l| l.split('"').nth(1).unwrap())
        .collect();
    // The pickled DoFns, and the lifted phases of the pickled CombineFn,
    // run in an SDK harness; the GroupByKey between them is the runner's.
    for step in [
        "Stamp [beam:transform:pardo:v1]  -> runs in an SDK harness",
        "CombinePerKey(MeanCombineFn)/Precombine [beam:transform:combine_per_key_precombine:v1]  -> runs in an SDK harness",
        "CombinePerKey(MeanCombineFn)/ExtractOutputs [beam:transform:combine_per_key_extract_outputs:v1]  -> runs in an SDK harness",
    ] {
        assert!(r.contains(step), "{step}\n{r}");
    }
    assert!(names.is_empty(), "{names:?}");
    let side = body(&inspect(
        &repo().join("tests/fixtures/beam/g_side_inputs.portable.pb"),
    ));
    assert!(side.contains("UseSides"), "{side}");
    assert!(
        side.contains("UseSides [beam:transform:pardo:v1]  -> runs in an SDK harness: DoFn"),
        "{side}"
    );
    let stateful = body(&inspect(
        &repo().join("tests/fixtures/beam/i_stateful_bag_timer.portable.pb"),
    ));
    assert!(
        stateful.contains("ParDo(BufferUntilWatermark) [beam:transform:pardo:v1]  -> runs in an SDK harness: stateful DoFn"),
        "{stateful}"
    );
}

fn assert_bad_input(o: &Output, needles: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "exit code; stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let first = err.lines().next().unwrap_or("");
    for n in needles {
        assert!(
            first.contains(n),
            "first stderr line {first:?} should contain {n:?}"
        );
    }
    assert!(o.stdout.is_empty(), "no partial report on failure");
}

#[test]
fn truncated_binary_names_the_byte_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let full = std::fs::read(repo().join("tests/fixtures/beam/a_wordcount.portable.pb")).unwrap();
    for cut in [full.len() - 1, full.len() / 2, 7] {
        let p = tmp.path().join("cut.pb");
        std::fs::write(&p, &full[..cut]).unwrap();
        assert_bad_input(
            &inspect(&p),
            &["cut.pb", "invalid binary proto Pipeline", "byte "],
        );
    }
    let p = tmp.path().join("garbage.pb");
    std::fs::write(
        &p,
        [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
    )
    .unwrap();
    assert_bad_input(&inspect(&p), &["garbage.pb", "byte 1"]);
}

#[test]
fn malformed_text_and_json_name_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("bad.textproto");
    std::fs::write(
        &t,
        "components {\n  transforms {\n    key: \"x\"\n    value { bogus_field: 1 }\n  }\n}\n",
    )
    .unwrap();
    assert_bad_input(
        &inspect(&t),
        &["bad.textproto", "line 4 column", "bogus_field"],
    );
    let j = tmp.path().join("bad.json");
    std::fs::write(
        &j,
        "{\"components\": {\"transforms\": {\"x\": {\"uniqueName\": 5}}}}",
    )
    .unwrap();
    assert_bad_input(&inspect(&j), &["bad.json", "line 1 column"]);
}

#[test]
fn dangling_reference_names_the_transform_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("dangling.textproto");
    std::fs::write(
        &t,
        "root_transform_ids: \"t1\"\ncomponents { transforms { key: \"t1\" value { unique_name: \"Read\" \
         spec { urn: \"beam:transform:impulse:v1\" } outputs { key: \"out\" value: \"nope\" } } } }\n",
    )
    .unwrap();
    assert_bad_input(
        &inspect(&t),
        &["transform \"t1\" (Read)", "outputs[\"out\"]", "\"nope\""],
    );
}

#[test]
fn missing_file_is_bad_input() {
    assert_bad_input(
        &inspect(Path::new("/nonexistent/pipeline.pb")),
        &["cannot read /nonexistent/pipeline.pb"],
    );
}

#[test]
fn convert_round_trips_through_json_and_text() {
    let tmp = tempfile::tempdir().unwrap();
    let pb = repo().join("tests/fixtures/beam/g_side_inputs.portable.pb");
    let original = std::fs::read(&pb).unwrap();
    let mut prev = pb.clone();
    for (fmt, name) in [
        ("json", "a.json"),
        ("text", "b.textproto"),
        ("binary", "c.pb"),
    ] {
        let out = tmp.path().join(name);
        let o = wasmbeam(&[
            "convert".as_ref(),
            prev.as_os_str(),
            "--to".as_ref(),
            fmt.as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        prev = out;
    }
    // Map ordering may differ in bytes, so compare decoded messages.
    use wasmbeam_proto::prost::Message;
    let a = wasmbeam_proto::pipeline::v1::Pipeline::decode(original.as_slice()).unwrap();
    let b =
        wasmbeam_proto::pipeline::v1::Pipeline::decode(std::fs::read(&prev).unwrap().as_slice())
            .unwrap();
    assert_eq!(a, b);
}
