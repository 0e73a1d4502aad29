//! The job server over real gRPC on 127.0.0.1: tenants, quotas, isolation,
//! concurrency, cancellation and the Prepare path under mutated input.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use wasmbeam_proto::job_management::v1 as jm;
use wasmbeam_proto::job_management::v1::artifact_retrieval_service_client::ArtifactRetrievalServiceClient;
use wasmbeam_proto::job_management::v1::job_state::Enum as State;

const TOKEN_A: &str = "token-of-tenant-a-0001";
const TOKEN_B: &str = "token-of-tenant-b-0002";
const TOKEN_C: &str = "token-of-tenant-c-0003";

fn config(data: &Path, extra_a: &str) -> String {
    format!(
        r#"
tenants:
  - name: a
    token: {TOKEN_A}
    quotas: {{ concurrent_jobs: 10, workers: 2, memory_mb: 64, bundle_deadline_secs: 30 {extra_a} }}
    data_dirs: ["{d}/a"]
    grant_read_dirs: ["{d}/a"]
  - name: b
    token: {TOKEN_B}
    quotas: {{ concurrent_jobs: 10, workers: 1 }}
    data_dirs: ["{d}/b"]
  - name: c
    token: {TOKEN_C}
    quotas: {{ concurrent_jobs: 10, workers: 1, bundle_deadline_secs: 1 }}
    data_dirs: ["{d}/c"]
"#,
        d = data.display()
    )
}

/// A state dir, and a data root (canonical) with a/b/c holding in.txt.
fn setup() -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let state = tempfile::tempdir().unwrap();
    let guard = tempfile::tempdir().unwrap();
    let data = guard.path().canonicalize().unwrap();
    data_dirs(&data);
    (state, guard, data)
}

fn data_dirs(root: &Path) {
    for t in ["a", "b", "c"] {
        std::fs::create_dir_all(root.join(t)).unwrap();
        std::fs::write(
            root.join(t).join("in.txt"),
            format!("hello from {t}\nsecond line\n"),
        )
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_jobs_and_artifacts() {
    let (state, _data_guard, data) = setup();
    let server = TestServer::start(Some(&config(&data, "")), state.path()).await;
    let a = server.client(Some(TOKEN_A)).await;
    let b = server.client(Some(TOKEN_B)).await;

    let id = a
        .submit(
            mode_pipeline("identity", &data.join("a/in.txt"), &data.join("a/out")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(a.wait(&id).await, State::Done);
    let out = std::fs::read_to_string(&files_with_prefix(&data.join("a"), "out")[0]).unwrap();
    assert_eq!(out, "hello from a\nsecond line\n");

    // a sees its job; b sees nothing and cannot touch it.
    let mine = a
        .jobs()
        .get_jobs(a.req(jm::GetJobsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.job_info.len(), 1);
    assert_eq!(mine.job_info[0].job_id, id);
    let theirs = b
        .jobs()
        .get_jobs(b.req(jm::GetJobsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(theirs.job_info.is_empty(), "{theirs:?}");
    let e = b
        .jobs()
        .get_state(b.req(jm::GetJobStateRequest { job_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .jobs()
        .cancel(b.req(jm::CancelJobRequest { job_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .jobs()
        .get_pipeline(b.req(jm::GetJobPipelineRequest { job_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .jobs()
        .get_job_metrics(b.req(jm::GetJobMetricsRequest { job_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = b
        .jobs()
        .get_message_stream(b.req(jm::JobMessagesRequest { job_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);

    // The staged component: a may fetch it, b may not.
    let p = a
        .jobs()
        .get_pipeline(a.req(jm::GetJobPipelineRequest { job_id: id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .pipeline
        .unwrap();
    let env = p
        .components
        .unwrap()
        .environments
        .into_values()
        .find(|e| e.urn == "wasmbeam:env:wasm:v1")
        .unwrap();
    let art = env.dependencies[0].clone();
    let fetch = |c: &Client| {
        let c = c.clone();
        let art = art.clone();
        async move {
            let ch = tonic::transport::Channel::from_shared(format!("http://{}", c.addr))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut r = ArtifactRetrievalServiceClient::new(ch);
            let mut s = r
                .get_artifact(c.req(jm::GetArtifactRequest {
                    artifact: Some(art),
                }))
                .await?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = s.message().await? {
                bytes.extend(chunk.data);
            }
            Ok::<Vec<u8>, tonic::Status>(bytes)
        }
    };
    let got = fetch(&a).await.unwrap();
    assert_eq!(got, std::fs::read(modes_udf()).unwrap());
    assert_eq!(fetch(&b).await.unwrap_err().code(), Code::NotFound);

    // Metrics: element counts per PCollection.
    let m = a
        .jobs()
        .get_job_metrics(a.req(jm::GetJobMetricsRequest { job_id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<_> = m
        .metrics
        .unwrap()
        .committed
        .into_iter()
        .filter(|i| i.urn == "beam:metric:element_count:v1")
        .map(|i| i.payload)
        .collect();
    assert!(
        counts.contains(&vec![2u8]),
        "two lines per PCollection: {counts:?}"
    );

    // Wrong or missing token: UNAUTHENTICATED, and the same message.
    let nobody = server.client(None).await;
    let e1 = nobody
        .jobs()
        .get_jobs(nobody.req(jm::GetJobsRequest {}))
        .await
        .unwrap_err();
    let wrong = server.client(Some("not-a-token-of-anyone")).await;
    let e2 = wrong
        .jobs()
        .get_state(wrong.req(jm::GetJobStateRequest { job_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e1.code(), Code::Unauthenticated);
    assert_eq!(e2.code(), Code::Unauthenticated);
    assert_eq!(e1.message(), e2.message());
    assert_eq!(
        fetch(&wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_policy_are_enforced_and_named() {
    let (state, _data_guard, data) = setup();
    let server = TestServer::start(Some(&config(&data, ", artifact_mb: 0")), state.path()).await;
    let a = server.client(Some(TOKEN_A)).await;
    let b = server.client(Some(TOKEN_B)).await;
    let c = server.client(Some(TOKEN_C)).await;
    let p = |t: &str| {
        mode_pipeline(
            "identity",
            &data.join(t).join("in.txt"),
            &data.join(t).join("out"),
        )
    };

    // Requested limits above the quota: refused at Prepare, naming the quota.
    let e = b
        .prepare(p("b"), &[("wasmbeam_workers", "4")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("quota workers=1"), "{}", e.message());
    let e = a
        .prepare(p("a"), &[("wasmbeam_memory_mb", "1024")])
        .await
        .unwrap_err();
    assert!(
        e.message().contains("quota memory_mb=64"),
        "{}",
        e.message()
    );
    let e = c
        .prepare(p("c"), &[("wasmbeam_bundle_deadline_secs", "60")])
        .await
        .unwrap_err();
    assert!(
        e.message().contains("quota bundle_deadline_secs=1"),
        "{}",
        e.message()
    );

    // WASI grants beyond the operator's policy.
    let e = a
        .prepare(p("a"), &[("wasmbeam_grant_read", "/etc")])
        .await
        .unwrap_err();
    assert!(e.message().contains("grant_read_dirs"), "{}", e.message());
    let e = b
        .prepare(
            p("b"),
            &[("wasmbeam_grant_read", &data.join("b").display().to_string())],
        )
        .await
        .unwrap_err();
    assert!(e.message().contains("grant_read_dirs"), "{}", e.message());

    // Text IO outside the tenant's data dirs, including another tenant's.
    let e = b
        .prepare(
            mode_pipeline("identity", &data.join("a/in.txt"), &data.join("b/out")),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        e.message().contains("data_dirs") && e.message().contains("\"Read\""),
        "{}",
        e.message()
    );
    let e = b
        .prepare(
            mode_pipeline("identity", &data.join("b/in.txt"), Path::new("/tmp/escape")),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        e.message().contains("data_dirs") && e.message().contains("\"Write\""),
        "{}",
        e.message()
    );

    // Artifact bytes: tenant a may keep none, so staging fails the job.
    let prep = a.prepare(p("a"), &[]).await.unwrap();
    let e = a.stage(&prep.staging_session_token).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(e.message().contains("artifact_mb=0"), "{}", e.message());
    let st = a
        .jobs()
        .get_state(a.req(jm::GetJobStateRequest {
            job_id: prep.preparation_id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.state, State::Failed as i32);

    // Run without staging is refused.
    let prep = b.prepare(p("b"), &[]).await.unwrap();
    let e = b.run(&prep.preparation_id).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().contains("staged"), "{}", e.message());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_quota_fails_the_extra_job_and_cancel_stops_a_busy_udf() {
    let (state, _data_guard, data) = setup();
    let cfg = config(&data, "").replace(
        "concurrent_jobs: 10, workers: 2",
        "concurrent_jobs: 1, workers: 2",
    );
    let server = TestServer::start(Some(&cfg), state.path()).await;
    let a = server.client(Some(TOKEN_A)).await;
    let looping = a
        .submit(
            mode_pipeline("loop", &data.join("a/in.txt"), &data.join("a/loop")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(a.wait_for(&looping, State::Running).await, State::Running);
    let second = a
        .submit(
            mode_pipeline("identity", &data.join("a/in.txt"), &data.join("a/second")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(a.wait(&second).await, State::Failed);
    let msgs = a.messages(&second).await;
    assert!(
        msgs.iter().any(|m| m.contains("quota concurrent_jobs=1")),
        "{msgs:?}"
    );

    // The loop would run for its 30 s deadline; Cancel stops it at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    a.jobs()
        .cancel(a.req(jm::CancelJobRequest {
            job_id: looping.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(a.wait(&looping).await, State::Cancelled);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    assert!(files_with_prefix(&data.join("a"), "loop").is_empty());
    assert!(files_with_prefix(&data.join("a"), "second").is_empty());

    // Drain is not for batch jobs.
    let e = a
        .jobs()
        .drain(a.req(jm::DrainJobRequest { job_id: looping }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("batch job") && e.message().contains("Cancel"),
        "{}",
        e.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_jobs_from_three_tenants_finish_correctly_beside_failing_and_looping_ones() {
    let (state, _data_guard, data) = setup();
    for t in ["a", "b"] {
        let body: String = (0..2000).map(|i| format!("{t} line {i}\n")).collect();
        std::fs::write(data.join(t).join("big.txt"), body).unwrap();
    }
    std::fs::write(data.join("c/boom.txt"), "ok\nboom\n").unwrap();
    let server = TestServer::start(Some(&config(&data, "")), state.path()).await;
    let clients = [
        server.client(Some(TOKEN_A)).await,
        server.client(Some(TOKEN_B)).await,
        server.client(Some(TOKEN_C)).await,
    ];
    // 8 jobs each for a and b (identity), 4 for c: two loops, two traps.
    let mut plan = Vec::new();
    for i in 0..8 {
        for (ti, t) in ["a", "b"].iter().enumerate() {
            plan.push((
                ti,
                "identity",
                data.join(t).join("big.txt"),
                data.join(t).join(format!("out{i}")),
            ));
        }
    }
    for i in 0..2 {
        plan.push((
            2,
            "loop",
            data.join("c/in.txt"),
            data.join("c").join(format!("loop{i}")),
        ));
        plan.push((
            2,
            "trap-on-boom",
            data.join("c/boom.txt"),
            data.join("c").join(format!("trap{i}")),
        ));
    }
    assert_eq!(plan.len(), 20);
    let mut handles = Vec::new();
    for (ti, mode, input, out) in plan {
        let c = clients[ti].clone();
        let p = mode_pipeline(mode, &input, &out);
        handles.push(tokio::spawn(async move {
            let id = c.submit(p, &[]).await.unwrap();
            let state = c.wait(&id).await;
            let msgs = c.messages(&id).await;
            (ti, mode, input, out, state, msgs)
        }));
    }
    for h in handles {
        let (ti, mode, input, out, state, msgs) = h.await.unwrap();
        match mode {
            "identity" => {
                assert_eq!(state, State::Done, "tenant {ti}: {msgs:?}");
                let dir = out.parent().unwrap();
                let name = out.file_name().unwrap().to_string_lossy().to_string();
                let files = files_with_prefix(dir, &name);
                assert_eq!(files.len(), 1);
                assert_eq!(
                    std::fs::read(&files[0]).unwrap(),
                    std::fs::read(&input).unwrap()
                );
            }
            "loop" => {
                assert_eq!(state, State::Failed);
                assert!(
                    msgs.iter()
                        .any(|m| m.contains("exceeded the bundle deadline of 1s")),
                    "{msgs:?}"
                );
            }
            _ => {
                assert_eq!(state, State::Failed);
                assert!(msgs.iter().any(|m| m.contains("boom")), "{msgs:?}");
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_running_jobs_and_a_restart_keeps_every_job() {
    let (state, _data_guard, data) = setup();
    let server = TestServer::start(None, state.path()).await;
    let c = server.client(None).await;
    let done = c
        .submit(
            mode_pipeline("identity", &data.join("a/in.txt"), &data.join("a/done")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(c.wait(&done).await, State::Done);
    let looping = c
        .submit(
            mode_pipeline("loop", &data.join("a/in.txt"), &data.join("a/loop")),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(c.wait_for(&looping, State::Running).await, State::Running);
    let prepared = c
        .prepare(
            mode_pipeline("identity", &data.join("a/in.txt"), &data.join("a/never")),
            &[],
        )
        .await
        .unwrap();
    let t = Instant::now();
    server.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        t.elapsed()
    );
    assert!(files_with_prefix(&data.join("a"), "loop").is_empty());

    let server = TestServer::start(None, state.path()).await;
    let c = server.client(None).await;
    let jobs = c
        .jobs()
        .get_jobs(c.req(jm::GetJobsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .job_info;
    let state_of = |id: &str| jobs.iter().find(|j| j.job_id == id).map(|j| j.state);
    assert_eq!(state_of(&done), Some(State::Done as i32));
    assert_eq!(state_of(&looping), Some(State::Cancelled as i32));
    assert_eq!(
        state_of(&prepared.preparation_id),
        Some(State::Cancelled as i32)
    );
    let msgs = c.messages(&looping).await;
    assert!(
        msgs.iter().any(|m| m.contains("server shut down")),
        "{msgs:?}"
    );
    server.stop().await;
}

mod prepare_fuzz {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;
    use wasmbeam_jobserver::Services;
    use wasmbeam_proto::job_management::v1::job_service_server::JobService;
    use wasmbeam_proto::pipeline::v1::Pipeline;

    fn fixtures() -> Vec<Vec<u8>> {
        let dir = repo().join("tests/fixtures/beam");
        let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pb"))
            .map(|e| std::fs::read(e.path()).unwrap())
            .collect();
        v.sort();
        v.push(yaml_pipeline(
            "pipeline:\n  transforms:\n    - { type: ReadFromText, name: R, config: { path: /nonexistent } }\n    - { type: ParDo, name: M, input: R, config: { udf: UDF, config: identity, output_coder: string_utf8 } }\n",
        ).encode_to_vec());
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn mutated_pipelines_get_a_clear_answer_never_a_panic(
            which in 0usize..8,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12),
        ) {
            let fx = fixtures();
            let mut bytes = fx[which % fx.len()].clone();
            for (at, byte, kind) in edits {
                if bytes.is_empty() { break; }
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => { bytes.remove(i); }
                    _ => bytes.insert(i, byte),
                }
            }
            // Bytes that are not a Pipeline never reach the service: gRPC's
            // decoder answers them. The rest must get OK or INVALID_ARGUMENT.
            if let Ok(p) = Pipeline::decode(bytes.as_slice()) {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                let state = tempfile::tempdir().unwrap();
                let jobs = wasmbeam_jobserver::Jobs::open(std::sync::Arc::new(
                    wasmbeam_jobserver::ServerConfig::single_user(state.path().to_path_buf()),
                )).unwrap();
                let svc = Services::new(jobs);
                let r = rt.block_on(svc.prepare(tonic::Request::new(jm::PrepareJobRequest {
                    pipeline: Some(p),
                    pipeline_options: None,
                    job_name: "fuzz".into(),
                })));
                if let Err(e) = r {
                    prop_assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
                    prop_assert!(!e.message().is_empty());
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_accepts_pipelines_above_grpc_default_4_mib() {
    use wasmbeam_proto::pipeline::v1 as pb;
    let (state, _data_guard, data) = setup();
    let server = TestServer::start(None, state.path()).await;
    let c = server.client(None).await;
    let mut p = mode_pipeline("identity", &data.join("a/in.txt"), &data.join("a/big"));
    // A 6 MiB embedded artifact in an environment nothing uses.
    p.components.as_mut().unwrap().environments.insert(
        "unused-env".into(),
        pb::Environment {
            urn: "beam:env:docker:v1".into(),
            dependencies: vec![pb::ArtifactInformation {
                type_urn: "beam:artifact:type:embedded:v1".into(),
                type_payload: prost::Message::encode_to_vec(&pb::EmbeddedFilePayload {
                    data: vec![7u8; 6 << 20],
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let id = c.submit(p, &[]).await.unwrap();
    assert_eq!(c.wait(&id).await, State::Done);
    server.stop().await;
}
