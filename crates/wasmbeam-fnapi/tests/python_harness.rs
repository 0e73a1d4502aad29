//! The Fn API server against the real Beam Python SDK harness
//! (apache-beam 2.77.0 from the project's `.venv`), over real gRPC on
//! 127.0.0.1: pickled DoFns taken from a pipeline the Beam Python SDK
//! produced run bundle by bundle; a DoFn that raises fails its bundle with
//! the Python traceback; a harness that dies fails the bundle, no hang.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wasmbeam_coders::{Coder, Context, PaneInfo, Reader, Value};
use wasmbeam_fnapi::{BundleInput, FnApiError, FnApiServer};
use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::prost::Message;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The Python SDK harness, started the way a PROCESS environment starts it.
struct Harness(Child);

impl Harness {
    fn start(endpoint: &str, worker_id: &str, dir: &std::path::Path) -> Harness {
        let python = repo().join(".venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/bootstrap.sh (the README's test command does)",
            python.display()
        );
        let descriptor = format!("url: \"{endpoint}\"");
        let child = Command::new(python)
            .args(["-m", "apache_beam.runners.worker.sdk_worker_main"])
            .env("CONTROL_API_SERVICE_DESCRIPTOR", &descriptor)
            .env("LOGGING_API_SERVICE_DESCRIPTOR", &descriptor)
            .env("WORKER_ID", worker_id)
            .env("PIPELINE_OPTIONS", "{}")
            .env("SEMI_PERSISTENT_DIRECTORY", dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python SDK harness");
        Harness(child)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture() -> pb::Pipeline {
    let path = repo().join("tests/fixtures/beam/a_wordcount.portable.pb");
    wasmbeam_proto::load::pipeline_from_file(&path).unwrap().0
}

fn coder(urn: &str, components: &[&str]) -> pb::Coder {
    pb::Coder {
        spec: Some(pb::FunctionSpec {
            urn: urn.into(),
            payload: vec![],
        }),
        component_coder_ids: components.iter().map(|c| c.to_string()).collect(),
    }
}

fn port(endpoint: &pb::ApiServiceDescriptor, coder_id: &str) -> Vec<u8> {
    fn_api::RemoteGrpcPort {
        api_service_descriptor: Some(endpoint.clone()),
        coder_id: coder_id.into(),
    }
    .encode_to_vec()
}

/// source -> the fixture's ParDo `transform` -> sink, with the runner's own
/// choice of element coders for its input and output.
fn descriptor(
    id: &str,
    endpoint: &pb::ApiServiceDescriptor,
    transform: &str,
    input_coder: &str,
    output_coder: &str,
) -> fn_api::ProcessBundleDescriptor {
    let p = fixture();
    let c = p.components.unwrap();
    let pardo = c
        .transforms
        .iter()
        .find(|(_, t)| t.unique_name == transform)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("the fixture has no transform {transform}"));
    let env_id = pardo.environment_id.clone();
    let main_in = pardo.inputs.keys().next().unwrap().clone();
    let main_out = pardo.outputs.keys().next().unwrap().clone();
    let mut d = fn_api::ProcessBundleDescriptor {
        id: id.into(),
        ..Default::default()
    };
    for (k, v) in [
        ("str", coder("beam:coder:string_utf8:v1", &[])),
        ("varint", coder("beam:coder:varint:v1", &[])),
        ("kv", coder("beam:coder:kv:v1", &["str", "varint"])),
        ("gw", coder("beam:coder:global_window:v1", &[])),
        (
            "wv_in",
            coder("beam:coder:windowed_value:v1", &[input_coder, "gw"]),
        ),
        (
            "wv_out",
            coder("beam:coder:windowed_value:v1", &[output_coder, "gw"]),
        ),
    ] {
        d.coders.insert(k.into(), v);
    }
    let mut ws = c.windowing_strategies.values().next().unwrap().clone();
    ws.window_coder_id = "gw".into();
    d.windowing_strategies.insert("ws".into(), ws);
    for (id, coder) in [("in", input_coder), ("out", output_coder)] {
        d.pcollections.insert(
            id.into(),
            pb::PCollection {
                unique_name: id.into(),
                coder_id: coder.into(),
                is_bounded: pb::is_bounded::Enum::Bounded as i32,
                windowing_strategy_id: "ws".into(),
                display_data: vec![],
            },
        );
    }
    d.environments
        .insert(env_id.clone(), c.environments[&env_id].clone());
    d.transforms.insert(
        "source".into(),
        pb::PTransform {
            unique_name: "source".into(),
            spec: Some(pb::FunctionSpec {
                urn: "beam:runner:source:v1".into(),
                payload: port(endpoint, "wv_in"),
            }),
            outputs: [("out".to_string(), "in".to_string())].into(),
            ..Default::default()
        },
    );
    let mut pardo = pardo;
    pardo.inputs = [(main_in, "in".to_string())].into();
    pardo.outputs = [(main_out, "out".to_string())].into();
    d.transforms.insert("udf".into(), pardo);
    d.transforms.insert(
        "sink".into(),
        pb::PTransform {
            unique_name: "sink".into(),
            spec: Some(pb::FunctionSpec {
                urn: "beam:runner:sink:v1".into(),
                payload: port(endpoint, "wv_out"),
            }),
            inputs: [("in".to_string(), "out".to_string())].into(),
            ..Default::default()
        },
    );
    d
}

fn windowed(element: Coder) -> Coder {
    Coder::WindowedValue {
        value: Box::new(element),
        window: Box::new(Coder::GlobalWindow),
    }
}

/// Elements on the data plane: windowed values, each nested, back to back,
/// for the descriptor's `source`.
fn encode(elements: &[Value], element: Coder) -> Vec<BundleInput> {
    let c = windowed(element);
    let mut out = Vec::new();
    let mut ends = Vec::new();
    for (i, v) in elements.iter().enumerate() {
        let wv = Value::windowed(
            v.clone(),
            1000 + i as i64,
            vec![Value::GlobalWindow],
            PaneInfo::NO_FIRING,
        );
        c.encode(&wv, Context::Nested, &mut out).unwrap();
        ends.push(out.len());
    }
    vec![BundleInput {
        transform_id: "source".into(),
        data: out,
        element_ends: ends,
    }]
}

fn decode(bytes: &[u8], element: Coder) -> Vec<(Value, i64)> {
    let c = windowed(element);
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while !r.is_empty() {
        match c.decode_from(&mut r, Context::Nested).unwrap() {
            Value::WindowedValue(w) => out.push((w.value, w.timestamp)),
            other => panic!("{other:?}"),
        }
    }
    out
}

fn kv_coder() -> Coder {
    Coder::Kv(Box::new(Coder::StringUtf8), Box::new(Coder::VarInt))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickled_python_dofns_run_in_the_real_sdk_harness_bundle_by_bundle() {
    let server = FnApiServer::start(None).await.unwrap();
    let ep = server.endpoint();
    server.register(descriptor("pair", &ep, "PairWithOne", "str", "kv"));
    // Split is `str.split`-like: an int input makes it raise in Python.
    server.register(descriptor("split-ints", &ep, "Split", "varint", "str"));
    let dir = tempfile::tempdir().unwrap();
    let _harness = Harness::start(&ep.url, "py-1", dir.path());
    let worker = server
        .worker("py-1", Duration::from_secs(120))
        .await
        .unwrap();

    // Two bundles through the same harness: `lambda w: (w, 1)` pairs every
    // word, keeping its timestamp.
    for words in [vec!["hello", "wasm"], vec!["beam", "hello", "again"]] {
        let input: Vec<Value> = words.iter().map(|w| Value::string(*w)).collect();
        let out = worker
            .process_bundle("pair", encode(&input, Coder::StringUtf8))
            .await
            .unwrap();
        let got = decode(&out.outputs["sink"], kv_coder());
        let want: Vec<(Value, i64)> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                (
                    Value::kv(Value::string(*w), Value::Int64(1)),
                    1000 + i as i64,
                )
            })
            .collect();
        assert_eq!(got, want);
    }
    // A large bundle crosses in several data messages.
    let many: Vec<Value> = (0..50_000)
        .map(|i| Value::string(format!("word{i:06}")))
        .collect();
    let out = worker
        .process_bundle("pair", encode(&many, Coder::StringUtf8))
        .await
        .unwrap();
    let got = decode(&out.outputs["sink"], kv_coder());
    assert_eq!(got.len(), 50_000);
    assert_eq!(
        got[49_999].0,
        Value::kv(Value::string("word049999"), Value::Int64(1))
    );

    // A DoFn that raises fails its bundle with the Python traceback.
    let err = worker
        .process_bundle("split-ints", encode(&[Value::Int64(7)], Coder::VarInt))
        .await
        .unwrap_err();
    match &err {
        FnApiError::Harness { worker, error, .. } => {
            assert_eq!(worker, "py-1");
            assert!(
                error.contains("Traceback") && error.contains("Error"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    // The harness carries on after a failed bundle.
    let out = worker
        .process_bundle("pair", encode(&[Value::string("still")], Coder::StringUtf8))
        .await
        .unwrap();
    assert_eq!(decode(&out.outputs["sink"], kv_coder()).len(), 1);
    // Its log lines reached the server.
    assert!(!server.logs("py-1").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_harness_that_dies_fails_the_bundle_instead_of_hanging() {
    let server = FnApiServer::start(None).await.unwrap();
    let ep = server.endpoint();
    server.register(descriptor("pair", &ep, "PairWithOne", "str", "kv"));
    let dir = tempfile::tempdir().unwrap();
    let mut harness = Harness::start(&ep.url, "py-dies", dir.path());
    let worker = server
        .worker("py-dies", Duration::from_secs(120))
        .await
        .unwrap();
    worker
        .process_bundle("pair", encode(&[Value::string("a")], Coder::StringUtf8))
        .await
        .unwrap();
    harness.0.kill().unwrap();
    harness.0.wait().unwrap();
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        worker.process_bundle("pair", encode(&[Value::string("b")], Coder::StringUtf8)),
    )
    .await
    .expect("a dead harness must not hang the bundle")
    .unwrap_err();
    assert!(matches!(err, FnApiError::Disconnected { .. }), "{err:?}");
    assert!(err.to_string().contains("py-dies"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // No harness of that id: waiting for one times out with a clear error.
    let err = server
        .worker("nobody", Duration::from_millis(300))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("did not connect"), "{err}");
}
