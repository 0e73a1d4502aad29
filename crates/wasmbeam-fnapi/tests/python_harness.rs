//! The Fn API server against the real Beam Python SDK harness
//! (apache-beam 2.77.0 from the project's `.venv`), over real gRPC on
//! 127.0.0.1: pickled DoFns taken from a pipeline the Beam Python SDK
//! produced run bundle by bundle; a DoFn that raises fails its bundle with
//! the Python traceback; a harness that dies fails the bundle, no hang.

use std::path::PathBuf;
use std::time::Duration;

use wasmbeam_coders::{Coder, Context, PaneInfo, Reader, Value};
use wasmbeam_fnapi::{
    BundleInput, Endpoints, ExternalWorkerPool, FnApiError, FnApiServer, ProcessWorker,
};
use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::prost::Message;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/bootstrap.sh (the README's test command does)",
        python.display()
    );
    python
}

/// The Python SDK harness from the project's venv.
fn harness(server: &FnApiServer, worker_id: &str, dir: &std::path::Path) -> ProcessWorker {
    let ep = Endpoints::all_at(&server.endpoint().url);
    ProcessWorker::python(&python(), worker_id, &ep, "{}", dir).unwrap()
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
    let _harness = harness(&server, "py-1", dir.path());
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
    let harness = harness(&server, "py-dies", dir.path());
    let worker = server
        .worker("py-dies", Duration::from_secs(120))
        .await
        .unwrap();
    worker
        .process_bundle("pair", encode(&[Value::string("a")], Coder::StringUtf8))
        .await
        .unwrap();
    drop(harness); // killed
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

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_worker_pool_starts_and_stops_harnesses() {
    let server = FnApiServer::start(None).await.unwrap();
    let ep = server.endpoint();
    server.register(descriptor("pair", &ep, "PairWithOne", "str", "kv"));
    // Beam's own worker pool (what EXTERNAL environments point at); it
    // starts each worker with the `python` on PATH, so the venv goes first.
    let port = free_port();
    let venv_bin = repo().join(".venv/bin");
    let path = format!(
        "{}:{}",
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pool_process = std::process::Command::new(python())
        .args([
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            &format!("--service_port={port}"),
        ])
        .env("PATH", path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _pool_process = Kill(pool_process);
    let address = format!("127.0.0.1:{port}");
    let mut pool = None;
    for _ in 0..300 {
        match ExternalWorkerPool::connect(&address, Duration::from_secs(2)).await {
            Ok(p) => {
                pool = Some(p);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let mut pool = pool.expect("the worker pool never listened");
    pool.start_worker("ext-1", &Endpoints::all_at(&ep.url), Default::default())
        .await
        .unwrap();
    let worker = server
        .worker("ext-1", Duration::from_secs(120))
        .await
        .unwrap();
    let out = worker
        .process_bundle(
            "pair",
            encode(&[Value::string("pooled")], Coder::StringUtf8),
        )
        .await
        .unwrap();
    assert_eq!(
        decode(&out.outputs["sink"], kv_coder()),
        [(Value::kv(Value::string("pooled"), Value::Int64(1)), 1000)]
    );
    // StopWorker ends the harness: its control stream closes.
    pool.stop_worker("ext-1").await.unwrap();
    let stopped = std::time::Instant::now();
    while server.is_connected("ext-1") {
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "the harness kept running after StopWorker"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An unreachable pool is named in the error.
    let dead = format!("127.0.0.1:{}", free_port());
    let err = ExternalWorkerPool::connect(&dead, Duration::from_secs(2))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains(&dead) && err.to_string().contains("external worker pool"),
        "{err}"
    );
}
