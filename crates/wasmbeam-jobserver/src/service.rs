//! The gRPC services: Beam's `JobService`, `ArtifactStagingService` and
//! `ArtifactRetrievalService`, with bearer-token tenants.
//!
//! Authentication: every `JobService` and `ArtifactRetrievalService` call
//! carries `authorization: Bearer TOKEN`; the token's sha256 picks the
//! tenant. A wrong or missing token gets `UNAUTHENTICATED` with the same
//! message whatever the reason. Staging is authorised by the staging token
//! that Prepare returned to the tenant (unguessable, one job, valid until
//! the job runs), because Beam's client opens the staging channel without
//! call metadata. Another tenant's jobs and artifacts are reported as not
//! found, so their existence is not revealed.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use wasmbeam_proto::job_management::v1 as jm;
use wasmbeam_proto::job_management::v1::{
    artifact_request_wrapper, artifact_response_wrapper, job_message, job_messages_response,
    pipeline_option_type,
};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_artifacts;

use crate::config::Tenant;
use crate::jobs::{now_ms, JobError, Jobs};
use crate::store::MessageRecord;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// How long staging waits for the client's next message.
const STAGING_IDLE: Duration = Duration::from_secs(120);
/// Chunk size when serving artifacts.
const CHUNK: usize = 2 << 20;

impl From<JobError> for Status {
    fn from(e: JobError) -> Status {
        match e {
            JobError::Invalid(m) => Status::invalid_argument(m),
            JobError::NotFound(_) => Status::not_found(e.to_string()),
            JobError::FailedPrecondition(m) => Status::failed_precondition(m),
            JobError::Internal(m) => Status::internal(m),
        }
    }
}

/// All three services share this.
#[derive(Clone)]
pub struct Services {
    jobs: Arc<Jobs>,
}

impl Services {
    /// Services over `jobs`.
    pub fn new(jobs: Arc<Jobs>) -> Self {
        Services { jobs }
    }

    fn tenant<T>(&self, req: &Request<T>) -> Result<Tenant, Status> {
        let cfg = self.jobs.config();
        if cfg.single_user {
            return Ok(cfg.tenants[0].clone());
        }
        let denied = || Status::unauthenticated("a valid bearer token is required");
        let v = req
            .metadata()
            .get("authorization")
            .ok_or_else(denied)?
            .to_str()
            .map_err(|_| denied())?;
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .ok_or_else(denied)?;
        cfg.tenant_by_token(token.trim())
            .cloned()
            .ok_or_else(denied)
    }
}

fn event(state: i32) -> jm::JobStateEvent {
    let ms = now_ms();
    jm::JobStateEvent {
        state,
        timestamp: Some(prost_types::Timestamp {
            seconds: ms.div_euclid(1000),
            nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
        }),
    }
}

fn message(m: &MessageRecord) -> jm::JobMessage {
    jm::JobMessage {
        message_id: m.id.clone(),
        time: m.time_ms.to_string(),
        importance: m.importance,
        message_text: m.text.clone(),
    }
}

fn terminal(s: i32) -> bool {
    use jm::job_state::Enum::*;
    [Done, Failed, Cancelled, Drained, Updated]
        .iter()
        .any(|x| *x as i32 == s)
}

#[tonic::async_trait]
impl jm::job_service_server::JobService for Services {
    async fn prepare(
        &self,
        req: Request<jm::PrepareJobRequest>,
    ) -> Result<Response<jm::PrepareJobResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let endpoint = req.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let r = req.into_inner();
        let pipeline = r
            .pipeline
            .ok_or_else(|| Status::invalid_argument("PrepareJobRequest.pipeline is missing"))?;
        let mut options = r.pipeline_options.unwrap_or_default();
        // Never keep a credential in the job store.
        options.fields.retain(|k, _| !k.contains("wasmbeam_token"));
        let jobs = self.jobs.clone();
        let name = r.job_name;
        let (id, token) =
            tokio::task::spawn_blocking(move || jobs.prepare(&tenant, &name, pipeline, options))
                .await
                .map_err(|e| Status::internal(format!("prepare: {e}")))??;
        Ok(Response::new(jm::PrepareJobResponse {
            preparation_id: id,
            artifact_staging_endpoint: Some(pb::ApiServiceDescriptor {
                url: endpoint,
                authentication: None,
            }),
            staging_session_token: token,
        }))
    }

    async fn run(
        &self,
        req: Request<jm::RunJobRequest>,
    ) -> Result<Response<jm::RunJobResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        let job = self.jobs.run(&tenant.name, &r.preparation_id)?;
        Ok(Response::new(jm::RunJobResponse {
            job_id: job.id.clone(),
        }))
    }

    async fn get_jobs(
        &self,
        req: Request<jm::GetJobsRequest>,
    ) -> Result<Response<jm::GetJobsResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let mut infos = Vec::new();
        for j in self.jobs.list(&tenant.name) {
            let rec = j.record();
            infos.push(jm::JobInfo {
                job_id: rec.id,
                job_name: rec.name,
                pipeline_options: self.jobs.options(&j).ok(),
                state: rec.state,
            });
        }
        Ok(Response::new(jm::GetJobsResponse { job_info: infos }))
    }

    async fn get_state(
        &self,
        req: Request<jm::GetJobStateRequest>,
    ) -> Result<Response<jm::JobStateEvent>, Status> {
        let tenant = self.tenant(&req)?;
        let job = self.jobs.get(&tenant.name, &req.get_ref().job_id)?;
        Ok(Response::new(event(job.state())))
    }

    async fn get_pipeline(
        &self,
        req: Request<jm::GetJobPipelineRequest>,
    ) -> Result<Response<jm::GetJobPipelineResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let job = self.jobs.get(&tenant.name, &req.get_ref().job_id)?;
        Ok(Response::new(jm::GetJobPipelineResponse {
            pipeline: Some(self.jobs.pipeline(&job)?),
        }))
    }

    async fn cancel(
        &self,
        req: Request<jm::CancelJobRequest>,
    ) -> Result<Response<jm::CancelJobResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let state = self.jobs.cancel(&tenant.name, &req.get_ref().job_id)?;
        Ok(Response::new(jm::CancelJobResponse { state }))
    }

    async fn drain(
        &self,
        req: Request<jm::DrainJobRequest>,
    ) -> Result<Response<jm::DrainJobResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let state = self.jobs.drain(&tenant.name, &req.get_ref().job_id)?;
        Ok(Response::new(jm::DrainJobResponse { state }))
    }

    type GetStateStreamStream = BoxStream<jm::JobStateEvent>;

    async fn get_state_stream(
        &self,
        req: Request<jm::GetJobStateRequest>,
    ) -> Result<Response<Self::GetStateStreamStream>, Status> {
        let tenant = self.tenant(&req)?;
        let job = self.jobs.get(&tenant.name, &req.get_ref().job_id)?;
        let mut rx = job.watch_state();
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let s = *rx.borrow_and_update();
                if tx.send(Ok(event(s))).await.is_err() || terminal(s) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    type GetMessageStreamStream = BoxStream<jm::JobMessagesResponse>;

    async fn get_message_stream(
        &self,
        req: Request<jm::JobMessagesRequest>,
    ) -> Result<Response<Self::GetMessageStreamStream>, Status> {
        let tenant = self.tenant(&req)?;
        let job = self.jobs.get(&tenant.name, &req.get_ref().job_id)?;
        let (tx, out) = mpsc::channel(64);
        let mut states = job.watch_state();
        let (backlog, mut msgs) = job.messages();
        tokio::spawn(async move {
            let msg = |m: &MessageRecord| jm::JobMessagesResponse {
                response: Some(job_messages_response::Response::MessageResponse(message(m))),
            };
            let state = |s: i32| jm::JobMessagesResponse {
                response: Some(job_messages_response::Response::StateResponse(event(s))),
            };
            let mut sent = 0usize;
            for m in &backlog {
                if tx.send(Ok(msg(m))).await.is_err() {
                    return;
                }
                sent += 1;
            }
            let mut last_state = *states.borrow_and_update();
            if tx.send(Ok(state(last_state))).await.is_err() || terminal(last_state) {
                return;
            }
            loop {
                tokio::select! {
                    m = msgs.recv() => match m {
                        Ok(m) => {
                            if m.id.parse::<usize>().unwrap_or(usize::MAX) <= sent { continue; }
                            sent += 1;
                            if tx.send(Ok(msg(&m))).await.is_err() { return; }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    },
                    c = states.changed() => {
                        if c.is_err() { return; }
                        let s = *states.borrow_and_update();
                        if s == last_state { continue; }
                        last_state = s;
                        // Deliver messages written before this state first
                        // (the cause of a failure precedes FAILED).
                        while let Ok(m) = msgs.try_recv() {
                            if m.id.parse::<usize>().unwrap_or(usize::MAX) <= sent { continue; }
                            sent += 1;
                            if tx.send(Ok(msg(&m))).await.is_err() { return; }
                        }
                        if tx.send(Ok(state(s))).await.is_err() || terminal(s) { return; }
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn get_job_metrics(
        &self,
        req: Request<jm::GetJobMetricsRequest>,
    ) -> Result<Response<jm::GetJobMetricsResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let job = self.jobs.get(&tenant.name, &req.get_ref().job_id)?;
        Ok(Response::new(self.jobs.metrics(&job)?))
    }

    async fn describe_pipeline_options(
        &self,
        _req: Request<jm::DescribePipelineOptionsRequest>,
    ) -> Result<Response<jm::DescribePipelineOptionsResponse>, Status> {
        let options = crate::policy::OPTIONS
            .iter()
            .map(|(name, description)| jm::PipelineOptionDescriptor {
                name: name.to_string(),
                r#type: if name.ends_with("grant_read") {
                    pipeline_option_type::Enum::Array as i32
                } else {
                    pipeline_option_type::Enum::Integer as i32
                },
                description: description.to_string(),
                default_value: String::new(),
                group: "wasmbeam".into(),
            })
            .collect();
        Ok(Response::new(jm::DescribePipelineOptionsResponse {
            options,
        }))
    }
}

type StagingTx = mpsc::Sender<Result<jm::ArtifactRequestWrapper, Status>>;

async fn next(
    inbound: &mut Streaming<jm::ArtifactResponseWrapper>,
) -> Result<jm::ArtifactResponseWrapper, Status> {
    match tokio::time::timeout(STAGING_IDLE, inbound.message()).await {
        Err(_) => Err(Status::deadline_exceeded(format!(
            "staging: the client sent nothing for {} s",
            STAGING_IDLE.as_secs()
        ))),
        Ok(Err(s)) => Err(s),
        Ok(Ok(None)) => Err(Status::cancelled(
            "staging: the client closed the stream early",
        )),
        Ok(Ok(Some(m))) => Ok(m),
    }
}

async fn send(tx: &StagingTx, r: artifact_request_wrapper::Request) -> Result<(), Status> {
    tx.send(Ok(jm::ArtifactRequestWrapper { request: Some(r) }))
        .await
        .map_err(|_| Status::cancelled("staging: the client went away"))
}

/// Drive one staging session: resolve, then fetch every component of every
/// WASM environment into the artifact store, and point the pipeline at it.
async fn stage(
    jobs: Arc<Jobs>,
    inbound: &mut Streaming<jm::ArtifactResponseWrapper>,
    tx: &StagingTx,
) -> Result<(), Status> {
    let first = next(inbound).await?;
    let job = jobs
        .by_staging_token(&first.staging_token)
        .ok_or_else(|| Status::unauthenticated("unknown or expired staging token"))?;
    if job.is_staged() {
        return Ok(());
    }
    let tenant = jobs
        .config()
        .tenants
        .iter()
        .find(|t| t.name == job.tenant)
        .cloned()
        .ok_or_else(|| Status::internal("the job's tenant is not configured"))?;
    let quota = tenant.quotas.artifact_mb.saturating_mul(1 << 20);
    let mut pipeline = jobs.pipeline(&job)?;
    let envs = crate::jobs::staged_environments(&pipeline);
    let mut replaced = Vec::new();
    for (env_id, env) in envs {
        send(
            tx,
            artifact_request_wrapper::Request::ResolveArtifact(jm::ResolveArtifactsRequest {
                artifacts: env.dependencies.clone(),
                preferred_urns: vec![],
            }),
        )
        .await?;
        let resolved = match next(inbound).await?.response {
            Some(artifact_response_wrapper::Response::ResolveArtifactResponse(r)) => r.replacements,
            _ => {
                return Err(Status::invalid_argument(
                    "staging: expected a resolve_artifact_response",
                ))
            }
        };
        // Keep each original dependency's role (its staged name).
        let role = env
            .dependencies
            .first()
            .map(|d| (d.role_urn.clone(), d.role_payload.clone()));
        let mut deps = Vec::new();
        for (i, art) in resolved.into_iter().enumerate() {
            let (role_urn, role_payload) = env
                .dependencies
                .get(i)
                .map(|d| (d.role_urn.clone(), d.role_payload.clone()))
                .or_else(|| role.clone())
                .unwrap_or_default();
            if art.type_urn == standard_artifacts::types::EMBEDDED {
                deps.push(pb::ArtifactInformation {
                    role_urn,
                    role_payload,
                    ..art
                });
                continue;
            }
            let expected = expected_sha(&art);
            send(
                tx,
                artifact_request_wrapper::Request::GetArtifact(jm::GetArtifactRequest {
                    artifact: Some(art.clone()),
                }),
            )
            .await?;
            let used = jobs
                .store()
                .artifact_bytes(&tenant.name)
                .map_err(|e| Status::internal(e.to_string()))?;
            let mut incoming = jobs
                .artifacts
                .begin()
                .map_err(|e| Status::internal(format!("staging: {e}")))?;
            loop {
                let m = next(inbound).await?;
                match m.response {
                    Some(artifact_response_wrapper::Response::GetArtifactResponse(r)) => {
                        incoming
                            .write(&r.data)
                            .map_err(|e| Status::internal(format!("staging: {e}")))?;
                        if used + incoming.size() > quota {
                            let text = format!(
                                "staging environment {env_id:?}: tenant {:?} would keep more than its quota artifact_mb={} of staged artifacts ({} MiB already stored)",
                                tenant.name,
                                tenant.quotas.artifact_mb,
                                used >> 20
                            );
                            jobs.fail_prepared(&job, text.clone());
                            return Err(Status::resource_exhausted(text));
                        }
                    }
                    _ => {
                        return Err(Status::invalid_argument(
                            "staging: expected get_artifact_response data",
                        ))
                    }
                }
                if m.is_last {
                    break;
                }
            }
            let arts = &jobs.artifacts;
            let (sha, size) = arts.finish(incoming, &expected).map_err(|e| {
                Status::invalid_argument(format!("staging environment {env_id:?}: {e}"))
            })?;
            jobs.store()
                .own_artifact(&tenant.name, &sha, size)
                .map_err(|e| Status::internal(e.to_string()))?;
            deps.push(pb::ArtifactInformation {
                type_urn: standard_artifacts::types::FILE.into(),
                type_payload: prost::Message::encode_to_vec(&pb::ArtifactFilePayload {
                    path: arts.path_of(&sha).display().to_string(),
                    sha256: sha,
                }),
                role_urn,
                role_payload,
            });
        }
        replaced.push((env_id, deps));
    }
    if let Some(c) = pipeline.components.as_mut() {
        for (env_id, deps) in replaced {
            if let Some(e) = c.environments.get_mut(&env_id) {
                e.dependencies = deps;
            }
        }
    }
    jobs.staged(&job, &pipeline)?;
    tracing::info!(job = %job.id, "staged");
    Ok(())
}

fn expected_sha(a: &pb::ArtifactInformation) -> String {
    if a.type_urn == standard_artifacts::types::FILE {
        prost::Message::decode(a.type_payload.as_slice())
            .map(|p: pb::ArtifactFilePayload| p.sha256)
            .unwrap_or_default()
    } else if a.type_urn == standard_artifacts::types::URL {
        prost::Message::decode(a.type_payload.as_slice())
            .map(|p: pb::ArtifactUrlPayload| p.sha256)
            .unwrap_or_default()
    } else {
        String::new()
    }
}

#[tonic::async_trait]
impl jm::artifact_staging_service_server::ArtifactStagingService for Services {
    type ReverseArtifactRetrievalServiceStream = BoxStream<jm::ArtifactRequestWrapper>;

    async fn reverse_artifact_retrieval_service(
        &self,
        req: Request<Streaming<jm::ArtifactResponseWrapper>>,
    ) -> Result<Response<Self::ReverseArtifactRetrievalServiceStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let jobs = self.jobs.clone();
        tokio::spawn(async move {
            if let Err(s) = stage(jobs, &mut inbound, &tx).await {
                tracing::warn!("staging failed: {}", s.message());
                let _ = tx.send(Err(s)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl Services {
    /// The store sha of an artifact this tenant may read, or NOT_FOUND.
    fn owned_sha(&self, tenant: &Tenant, a: &pb::ArtifactInformation) -> Result<String, Status> {
        let missing = || Status::not_found("artifact not found");
        if a.type_urn != standard_artifacts::types::FILE {
            return Err(missing());
        }
        let p: pb::ArtifactFilePayload =
            prost::Message::decode(a.type_payload.as_slice()).map_err(|_| missing())?;
        let sha = self
            .jobs
            .artifacts
            .sha_of_path(std::path::Path::new(&p.path))
            .ok_or_else(missing)?;
        match self.jobs.store().owns_artifact(&tenant.name, &sha) {
            Ok(true) => Ok(sha),
            _ => Err(missing()),
        }
    }
}

#[tonic::async_trait]
impl jm::artifact_retrieval_service_server::ArtifactRetrievalService for Services {
    async fn resolve_artifacts(
        &self,
        req: Request<jm::ResolveArtifactsRequest>,
    ) -> Result<Response<jm::ResolveArtifactsResponse>, Status> {
        let tenant = self.tenant(&req)?;
        let r = req.into_inner();
        for a in &r.artifacts {
            self.owned_sha(&tenant, a)?;
        }
        Ok(Response::new(jm::ResolveArtifactsResponse {
            replacements: r.artifacts,
        }))
    }

    type GetArtifactStream = BoxStream<jm::GetArtifactResponse>;

    async fn get_artifact(
        &self,
        req: Request<jm::GetArtifactRequest>,
    ) -> Result<Response<Self::GetArtifactStream>, Status> {
        let tenant = self.tenant(&req)?;
        let a = req
            .into_inner()
            .artifact
            .ok_or_else(|| Status::invalid_argument("GetArtifactRequest.artifact is missing"))?;
        let sha = self.owned_sha(&tenant, &a)?;
        let path = self.jobs.artifacts.path_of(&sha);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Status::internal(format!("artifact {sha}: {e}")))?;
        let chunks: Vec<Result<jm::GetArtifactResponse, Status>> = bytes
            .chunks(CHUNK)
            .map(|c| Ok(jm::GetArtifactResponse { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

/// Beam message importance for errors (used by tests and the CLI).
pub const ERROR_IMPORTANCE: i32 = job_message::MessageImportance::JobMessageError as i32;
