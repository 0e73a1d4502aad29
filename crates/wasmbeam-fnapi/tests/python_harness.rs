//! The Fn API server against the real Beam Python SDK harness
//! (apache-beam 2.77.0 from the project's `.venv`), over real gRPC on
//! 127.0.0.1: pickled DoFns taken from a pipeline the Beam Python SDK
//! produced run bundle by bundle; a DoFn that raises fails its bundle with
//! the Python traceback; a harness that dies fails the bundle, no hang.

use std::path::PathBuf;
use std::time::Duration;

use wasmbeam_coders::{Coder, Context, PaneInfo, Reader, Value};
use wasmbeam_fnapi::{
    BundleInput, Endpoints, ExternalWorkerPool, FnApiError, FnApiServer, MemoryState,
    ProcessWorker, StateProvider, StateValue,
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
    descriptor_from(
        fixture(),
        id,
        endpoint,
        transform,
        input_coder,
        output_coder,
        &[],
    )
}

/// The same from any pipeline, with side inputs `(tag, coder)` given their
/// own PCollections, and this server as the state endpoint.
fn descriptor_from(
    p: pb::Pipeline,
    id: &str,
    endpoint: &pb::ApiServiceDescriptor,
    transform: &str,
    input_coder: &str,
    output_coder: &str,
    sides: &[(&str, &str)],
) -> fn_api::ProcessBundleDescriptor {
    let c = p.components.unwrap();
    let pardo = c
        .transforms
        .iter()
        .find(|(_, t)| t.unique_name == transform)
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("the fixture has no transform {transform}"));
    let env_id = pardo.environment_id.clone();
    let main_in = pardo
        .inputs
        .keys()
        .find(|k| !sides.iter().any(|(t, _)| t == k))
        .unwrap()
        .clone();
    let main_out = pardo.outputs.keys().next().unwrap().clone();
    let mut d = fn_api::ProcessBundleDescriptor {
        id: id.into(),
        coders: c.coders.clone(),
        state_api_service_descriptor: Some(endpoint.clone()),
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
    let side_pcs: Vec<(String, String)> = sides
        .iter()
        .map(|(tag, coder)| (format!("side-{tag}"), coder.to_string()))
        .collect();
    let pcs = [
        ("in".to_string(), input_coder.to_string()),
        ("out".to_string(), output_coder.to_string()),
    ];
    for (id, coder) in pcs.iter().chain(&side_pcs) {
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
    for (tag, _) in sides {
        pardo.inputs.insert(tag.to_string(), format!("side-{tag}"));
    }
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
        timer_family: None,
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

/// A pipeline with state-using DoFns, pickled by the pinned apache-beam.
fn state_pipeline(dir: &std::path::Path) -> pb::Pipeline {
    let out = dir.join("state.pb");
    let status = std::process::Command::new(python())
        .arg(repo().join("tests/e2e/fnapi_state_pipeline.py"))
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "tests/e2e/fnapi_state_pipeline.py failed");
    wasmbeam_proto::load::pipeline_from_file(&out).unwrap().0
}

fn strings(bytes: &[u8]) -> Vec<String> {
    decode(bytes, Coder::StringUtf8)
        .into_iter()
        .map(|(v, _)| match v {
            Value::String(s) => s,
            other => panic!("{other:?}"),
        })
        .collect()
}

fn nested(coder: &Coder, values: &[Value]) -> StateValue {
    let encoded: Vec<Vec<u8>> = values
        .iter()
        .map(|v| coder.encode_to_vec(v, Context::Nested).unwrap())
        .collect();
    StateValue::from_elements(encoded.iter().map(Vec::as_slice))
}

fn side_key(tag: &str) -> fn_api::StateKey {
    fn_api::StateKey {
        r#type: Some(fn_api::state_key::Type::IterableSideInput(
            fn_api::state_key::IterableSideInput {
                transform_id: "udf".into(),
                side_input_id: tag.into(),
                window: vec![], // the global window encodes as nothing
            },
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_inputs_and_bag_state_are_served_to_the_python_harness() {
    let dir = tempfile::tempdir().unwrap();
    let p = state_pipeline(dir.path());
    let server = FnApiServer::start(None).await.unwrap();
    let ep = server.endpoint();
    let side = [("python_side_input0", "str")];
    let kv_side = [("python_side_input0", "kv_ss")];
    let mut with_dict = descriptor_from(
        p.clone(),
        "with-dict",
        &ep,
        "WithDict",
        "str",
        "str",
        &kv_side,
    );
    with_dict
        .coders
        .insert("kv_ss".into(), coder("beam:coder:kv:v1", &["str", "str"]));
    server.register(descriptor_from(
        p.clone(),
        "with-side",
        &ep,
        "WithSide",
        "str",
        "str",
        &side,
    ));
    server.register(with_dict);
    let mut stateful = descriptor_from(p, "stateful", &ep, "Stateful", "kv_ss", "str", &[]);
    stateful
        .coders
        .insert("kv_ss".into(), coder("beam:coder:kv:v1", &["str", "str"]));
    stateful.coders.insert(
        "wv_in".into(),
        coder("beam:coder:windowed_value:v1", &["kv_ss", "gw"]),
    );
    server.register(stateful);
    let _harness = harness(&server, "py-state", dir.path());
    let worker = server
        .worker("py-state", Duration::from_secs(120))
        .await
        .unwrap();

    // An iterable side input (AsList), large enough to need several pages.
    let state = std::sync::Arc::new(MemoryState::default());
    let mut side_values: Vec<Value> = vec![Value::string("x"), Value::string("y")];
    let filler = "f".repeat(1000);
    side_values.extend((0..3000).map(|i| Value::string(format!("z{i:04}{filler}"))));
    state.put(
        &side_key("python_side_input0"),
        nested(&Coder::StringUtf8, &side_values),
    );
    let out = worker
        .process_bundle_with_state(
            "with-side",
            encode(&[Value::string("a")], Coder::StringUtf8),
            Some(state.clone()),
        )
        .await
        .unwrap();
    let got = strings(&out.outputs["sink"]);
    assert_eq!(got.len(), 1);
    let seen: Vec<&str> = got[0].trim_start_matches("a:").split('|').collect();
    assert_eq!(
        seen.len(),
        3002,
        "every side input element arrived, across pages"
    );
    assert_eq!(&seen[..2], ["x", "y"]);

    // AsDict: an iterable side input of KVs.
    let kv = Coder::Kv(Box::new(Coder::StringUtf8), Box::new(Coder::StringUtf8));
    let dict = MemoryState::default();
    dict.put(
        &side_key("python_side_input0"),
        nested(&kv, &[Value::kv(Value::string("k"), Value::string("v"))]),
    );
    let dict = std::sync::Arc::new(dict);
    let out = worker
        .process_bundle_with_state(
            "with-dict",
            encode(&[Value::string("k"), Value::string("a")], Coder::StringUtf8),
            Some(dict),
        )
        .await
        .unwrap();
    assert_eq!(strings(&out.outputs["sink"]), ["k:v", "a:none"]);

    // Bag state persists across bundles in the provider, per key, and clears.
    let bags = std::sync::Arc::new(MemoryState::default());
    let pairs = |ps: &[(&str, &str)]| -> Vec<Value> {
        ps.iter()
            .map(|(k, v)| Value::kv(Value::string(*k), Value::string(*v)))
            .collect()
    };
    let mut results = Vec::new();
    for bundle in [
        &[("k", "v1"), ("j", "w")][..],
        &[("k", "v2")][..],
        &[("k", "reset")][..],
        &[("k", "v3"), ("j", "w2")][..],
    ] {
        let out = worker
            .process_bundle_with_state(
                "stateful",
                encode(&pairs(bundle), kv.clone()),
                Some(bags.clone()),
            )
            .await
            .unwrap();
        results.extend(strings(&out.outputs["sink"]));
    }
    assert_eq!(
        results,
        ["k=v1", "j=w", "k=v1,v2", "k=reset", "k=v3", "j=w,w2"]
    );
}

/// Counts the side-input reads it answers.
struct CountingState {
    inner: MemoryState,
    gets: std::sync::atomic::AtomicUsize,
}

impl StateProvider for CountingState {
    fn get(&self, key: &fn_api::StateKey) -> Result<StateValue, String> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.get(key)
    }
    fn append(&self, key: &fn_api::StateKey, data: Vec<u8>) -> Result<(), String> {
        self.inner.append(key, data)
    }
    fn clear(&self, key: &fn_api::StateKey) -> Result<(), String> {
        self.inner.clear(key)
    }
    fn cache_tokens(&self, worker_id: &str) -> Vec<wasmbeam_fnapi::CacheToken> {
        self.inner.cache_tokens(worker_id)
    }
}

/// With a user-state cache token that stays the same across bundles, a
/// harness whose state cache is on (`--max_cache_memory_usage_mb`) reads a
/// key's bag state once and then serves it, and its own appends, from its
/// cache; with no token it reads the bag again in every bundle. The values
/// are the same either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_state_cache_token_lets_the_harness_keep_state_across_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let p = state_pipeline(dir.path());
    let server = FnApiServer::start(None).await.unwrap();
    let ep = server.endpoint();
    let mut stateful = descriptor_from(p, "stateful", &ep, "Stateful", "kv_ss", "str", &[]);
    stateful
        .coders
        .insert("kv_ss".into(), coder("beam:coder:kv:v1", &["str", "str"]));
    stateful.coders.insert(
        "wv_in".into(),
        coder("beam:coder:windowed_value:v1", &["kv_ss", "gw"]),
    );
    server.register(stateful);
    let endpoints = Endpoints::all_at(&ep.url);
    let _harness = ProcessWorker::python(
        &python(),
        "py-cache",
        &endpoints,
        r#"{"max_cache_memory_usage_mb": 16}"#,
        dir.path(),
    )
    .unwrap();
    let worker = server
        .worker("py-cache", Duration::from_secs(120))
        .await
        .unwrap();
    let kv = Coder::Kv(Box::new(Coder::StringUtf8), Box::new(Coder::StringUtf8));
    for (token, want_reads) in [(true, 1), (false, 4)] {
        let state = std::sync::Arc::new(CountingState {
            inner: MemoryState::default(),
            gets: Default::default(),
        });
        if token {
            state
                .inner
                .set_cache_tokens(vec![wasmbeam_fnapi::user_state_token(
                    wasmbeam_fnapi::fresh_cache_token(),
                )]);
        }
        let mut results = Vec::new();
        for v in ["v1", "v2", "v3", "v4"] {
            let out = worker
                .process_bundle_with_state(
                    "stateful",
                    encode(
                        &[Value::kv(Value::string("k"), Value::string(v))],
                        kv.clone(),
                    ),
                    Some(state.clone()),
                )
                .await
                .unwrap();
            results.extend(strings(&out.outputs["sink"]));
        }
        assert_eq!(
            results,
            ["k=v1", "k=v1,v2", "k=v1,v2,v3", "k=v1,v2,v3,v4"],
            "token {token}"
        );
        assert_eq!(
            state.gets.load(std::sync::atomic::Ordering::SeqCst),
            want_reads,
            "bag state reads over 4 bundles, user-state token {token}"
        );
    }
}
