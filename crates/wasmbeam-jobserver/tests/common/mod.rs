//! An in-process `wasmbeam serve` on 127.0.0.1 and a Rust Job API client
//! that stages artifacts the way Beam's SDK clients do.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};
use wasmbeam_jobserver::{Jobs, ServerConfig};
use wasmbeam_proto::job_management::v1 as jm;
use wasmbeam_proto::job_management::v1::{
    artifact_request_wrapper, artifact_response_wrapper,
    artifact_staging_service_client::ArtifactStagingServiceClient,
    job_service_client::JobServiceClient,
};
use wasmbeam_proto::pipeline::v1 as pb;

#[path = "../../../wasmbeam-wasm-host/tests/common/mod.rs"]
mod guests;
pub use guests::{build_guest_crate, repo};

/// The test DoFn with modes (identity, loop, trap-on-boom, ...).
pub fn modes_udf() -> PathBuf {
    build_guest_crate(&repo().join("crates/wasmbeam-wasm-host/tests/udfs/modes"))
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub jobs: Arc<Jobs>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestServer {
    /// Start with `config` (YAML; `None` = single-user) and `state_dir`.
    pub async fn start(config: Option<&str>, state_dir: &Path) -> TestServer {
        let cfg = match config {
            Some(y) => ServerConfig::from_yaml(y, state_dir.to_path_buf()).unwrap(),
            None => ServerConfig::single_user(state_dir.to_path_buf()),
        };
        let jobs = Jobs::open(Arc::new(cfg)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(wasmbeam_jobserver::serve(jobs.clone(), listener, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            jobs,
            stop: Some(tx),
            done: Some(done),
        }
    }

    /// Graceful shutdown (what SIGTERM does).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(d) = self.done.take() {
            d.await.unwrap().unwrap();
        }
    }

    pub async fn client(&self, token: Option<&str>) -> Client {
        let ch = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Client {
            ch,
            addr: self.addr,
            token: token.map(String::from),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    ch: Channel,
    pub addr: SocketAddr,
    token: Option<String>,
}

impl Client {
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {t}")).unwrap(),
            );
        }
        r
    }

    pub fn jobs(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.ch.clone())
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub async fn prepare(
        &self,
        pipeline: pb::Pipeline,
        options: &[(&str, &str)],
    ) -> Result<jm::PrepareJobResponse, Status> {
        let opts = prost_types::Struct {
            fields: options
                .iter()
                .map(|(k, v)| {
                    (
                        format!("beam:option:{k}:v1"),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue(v.to_string())),
                        },
                    )
                })
                .collect(),
        };
        self.jobs()
            .prepare(self.req(jm::PrepareJobRequest {
                pipeline: Some(pipeline),
                pipeline_options: Some(opts),
                job_name: "test".into(),
            }))
            .await
            .map(|r| r.into_inner())
    }

    /// Serve artifacts from local files when the server asks, like Beam's
    /// client does; `Err` carries the server's status.
    pub async fn stage(&self, token: &str) -> Result<(), Status> {
        let mut c = ArtifactStagingServiceClient::new(self.ch.clone());
        let (tx, rx) = mpsc::channel(16);
        tx.send(jm::ArtifactResponseWrapper {
            staging_token: token.into(),
            is_last: false,
            response: None,
        })
        .await
        .unwrap();
        let mut inbound = c
            .reverse_artifact_retrieval_service(ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(req) = inbound.message().await? {
            match req.request {
                Some(artifact_request_wrapper::Request::ResolveArtifact(r)) => {
                    let _ = tx
                        .send(jm::ArtifactResponseWrapper {
                            staging_token: String::new(),
                            is_last: true,
                            response: Some(
                                artifact_response_wrapper::Response::ResolveArtifactResponse(
                                    jm::ResolveArtifactsResponse {
                                        replacements: r.artifacts,
                                    },
                                ),
                            ),
                        })
                        .await;
                }
                Some(artifact_request_wrapper::Request::GetArtifact(g)) => {
                    let a = g.artifact.unwrap();
                    let p: pb::ArtifactFilePayload =
                        prost::Message::decode(a.type_payload.as_slice()).unwrap();
                    let bytes = std::fs::read(&p.path).unwrap();
                    let chunks: Vec<&[u8]> = bytes.chunks(64 << 10).collect();
                    for (i, c) in chunks.iter().enumerate() {
                        let _ = tx
                            .send(jm::ArtifactResponseWrapper {
                                staging_token: String::new(),
                                is_last: i + 1 == chunks.len(),
                                response: Some(
                                    artifact_response_wrapper::Response::GetArtifactResponse(
                                        jm::GetArtifactResponse { data: c.to_vec() },
                                    ),
                                ),
                            })
                            .await;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    pub async fn run(&self, preparation_id: &str) -> Result<String, Status> {
        self.jobs()
            .run(self.req(jm::RunJobRequest {
                preparation_id: preparation_id.into(),
                retrieval_token: String::new(),
            }))
            .await
            .map(|r| r.into_inner().job_id)
    }

    /// Prepare, stage and run.
    pub async fn submit(
        &self,
        pipeline: pb::Pipeline,
        options: &[(&str, &str)],
    ) -> Result<String, Status> {
        let p = self.prepare(pipeline, options).await?;
        self.stage(&p.staging_session_token).await?;
        self.run(&p.preparation_id).await
    }

    /// Follow the state stream to a terminal state.
    pub async fn wait(&self, job_id: &str) -> jm::job_state::Enum {
        self.follow(job_id, None).await
    }

    /// Wait until the job reports `want` (or a terminal state).
    pub async fn wait_for(&self, job_id: &str, want: jm::job_state::Enum) -> jm::job_state::Enum {
        self.follow(job_id, Some(want)).await
    }

    /// The last state seen on the job's state stream, stopping early at `stop`.
    async fn follow(&self, job_id: &str, stop: Option<jm::job_state::Enum>) -> jm::job_state::Enum {
        let mut s = self
            .jobs()
            .get_state_stream(self.req(jm::GetJobStateRequest {
                job_id: job_id.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        let mut last = jm::job_state::Enum::Unspecified;
        while let Some(e) = s.message().await.unwrap() {
            last = jm::job_state::Enum::try_from(e.state).unwrap();
            if Some(last) == stop {
                break;
            }
        }
        last
    }

    /// All message texts of a finished job.
    pub async fn messages(&self, job_id: &str) -> Vec<String> {
        let mut s = self
            .jobs()
            .get_message_stream(self.req(jm::JobMessagesRequest {
                job_id: job_id.into(),
            }))
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(m) = s.message().await.unwrap() {
            if let Some(jm::job_messages_response::Response::MessageResponse(m)) = m.response {
                out.push(m.message_text);
            }
        }
        out
    }
}

/// A YAML pipeline (see wasmbeam-yaml) as a proto; `UDF` in the text is
/// replaced by the modes component's path.
pub fn yaml_pipeline(text: &str) -> pb::Pipeline {
    let udf = modes_udf();
    let text = text.replace("UDF", &udf.display().to_string());
    let resolver = |p: &Path| -> Result<PathBuf, String> {
        Err(format!("unexpected build of {}", p.display()))
    };
    wasmbeam_yaml::parse(Path::new("test.yaml"), &text, &BTreeMap::new(), &resolver)
        .unwrap()
        .pipeline
}

/// Read -> ParDo(mode) -> Write, in `dir`.
pub fn mode_pipeline(mode: &str, input: &Path, output_prefix: &Path) -> pb::Pipeline {
    yaml_pipeline(&format!(
        r#"
pipeline:
  transforms:
    - {{ type: ReadFromText, name: Read, config: {{ path: "{}" }} }}
    - {{ type: ParDo, name: Mode, input: Read, config: {{ udf: UDF, config: {mode}, output_coder: string_utf8 }} }}
    - {{ type: WriteToText, name: Write, input: Mode, config: {{ path: "{}", num_shards: 1 }} }}
"#,
        input.display(),
        output_prefix.display()
    ))
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
