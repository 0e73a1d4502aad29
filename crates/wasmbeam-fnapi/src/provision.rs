//! What a harness needs before its first bundle: `ProvisionService`
//! (`GetProvisionInfo`: the job's pipeline options, the endpoints and its
//! environment's dependencies) and `ArtifactRetrievalService` (those
//! dependencies' bytes). Beam's boot programs call both to fetch staged
//! files (a pickled main session, `requirements.txt`, extra packages) and
//! to learn the options before they start the SDK harness.
//!
//! A worker is known by the `worker_id` metadata of its calls, and is
//! answered only after the runner has announced it with
//! [`crate::FnApiServer::expect_worker`]. Only artifacts among the announced
//! workers' dependencies are served: a harness cannot read other files of
//! the server through this service.

use std::collections::HashMap;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::fn_execution::v1::provision_service_server::ProvisionService;
use wasmbeam_proto::job_management::v1 as jm;
use wasmbeam_proto::job_management::v1::artifact_retrieval_service_server::ArtifactRetrievalService;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::prost::Message;

use crate::server::lock;
use crate::services::{worker_id, BoxStream, Services};

/// Chunk size of `GetArtifact` responses.
const CHUNK: usize = 1 << 20;

/// URN of a file artifact (`ArtifactFilePayload`).
const FILE: &str = "beam:artifact:type:file:v1";
/// URN of a URL artifact (`ArtifactUrlPayload`).
const URL: &str = "beam:artifact:type:url:v1";
/// URN of an embedded artifact (`EmbeddedFilePayload`).
const EMBEDDED: &str = "beam:artifact:type:embedded:v1";

/// What the server tells harnesses through the provision service.
#[derive(Default)]
pub(crate) struct Provisioning {
    /// The job's pipeline options.
    pub(crate) options: prost_types::Struct,
    /// Each announced worker's environment dependencies.
    pub(crate) workers: HashMap<String, Vec<pb::ArtifactInformation>>,
}

impl Provisioning {
    fn allowed(&self, a: &pb::ArtifactInformation) -> bool {
        self.workers.values().flatten().any(|d| d == a)
    }
}

/// The bytes of artifact `a`.
pub fn artifact_bytes(a: &pb::ArtifactInformation) -> Result<Vec<u8>, String> {
    let t = a.type_urn.as_str();
    if t == FILE {
        let p = pb::ArtifactFilePayload::decode(a.type_payload.as_slice())
            .map_err(|e| format!("bad file artifact payload: {e}"))?;
        std::fs::read(&p.path).map_err(|e| format!("cannot read artifact {}: {e}", p.path))
    } else if t == URL {
        let p = pb::ArtifactUrlPayload::decode(a.type_payload.as_slice())
            .map_err(|e| format!("bad url artifact payload: {e}"))?;
        let path = p
            .url
            .strip_prefix("file://")
            .ok_or_else(|| format!("cannot fetch {}: only file:// URLs are served", p.url))?;
        std::fs::read(path).map_err(|e| format!("cannot read artifact {path}: {e}"))
    } else if t == EMBEDDED {
        pb::EmbeddedFilePayload::decode(a.type_payload.as_slice())
            .map(|p| p.data)
            .map_err(|e| format!("bad embedded artifact payload: {e}"))
    } else {
        Err(format!(
            "artifact type {t} cannot be served (file, url and embedded can)"
        ))
    }
}

/// The name an artifact is staged under (its `staging_to` role), if any.
pub fn staged_name(a: &pb::ArtifactInformation) -> Option<String> {
    (a.role_urn == "beam:artifact:role:staging_to:v1")
        .then(|| pb::ArtifactStagingToRolePayload::decode(a.role_payload.as_slice()).ok())
        .flatten()
        .map(|r| r.staged_name)
        .filter(|n| !n.is_empty())
}

#[tonic::async_trait]
impl ProvisionService for Services {
    async fn get_provision_info(
        &self,
        req: Request<fn_api::GetProvisionInfoRequest>,
    ) -> Result<Response<fn_api::GetProvisionInfoResponse>, Status> {
        let id = worker_id(&req)?;
        let p = lock(&self.shared().provisioning);
        let deps = p.workers.get(&id).cloned().ok_or_else(|| {
            Status::not_found(format!(
                "no SDK harness {id:?} was started by this runner; provision info is only given to workers it starts"
            ))
        })?;
        let endpoint = Some(pb::ApiServiceDescriptor {
            url: self.shared().addr.to_string(),
            authentication: None,
        });
        Ok(Response::new(fn_api::GetProvisionInfoResponse {
            info: Some(fn_api::ProvisionInfo {
                pipeline_options: Some(p.options.clone()),
                retrieval_token: String::new(),
                status_endpoint: None,
                logging_endpoint: endpoint.clone(),
                artifact_endpoint: endpoint.clone(),
                control_endpoint: endpoint,
                dependencies: deps,
                runner_capabilities: vec![],
                metadata: HashMap::new(),
                sibling_worker_ids: vec![],
            }),
        }))
    }
}

#[tonic::async_trait]
impl ArtifactRetrievalService for Services {
    async fn resolve_artifacts(
        &self,
        req: Request<jm::ResolveArtifactsRequest>,
    ) -> Result<Response<jm::ResolveArtifactsResponse>, Status> {
        let r = req.into_inner();
        let p = lock(&self.shared().provisioning);
        if let Some(a) = r.artifacts.iter().find(|a| !p.allowed(a)) {
            return Err(Status::not_found(format!(
                "artifact {} is not a dependency of any SDK harness of this job",
                describe(a)
            )));
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
        let a = req
            .into_inner()
            .artifact
            .ok_or_else(|| Status::invalid_argument("GetArtifactRequest.artifact is missing"))?;
        if !lock(&self.shared().provisioning).allowed(&a) {
            return Err(Status::not_found(format!(
                "artifact {} is not a dependency of any SDK harness of this job",
                describe(&a)
            )));
        }
        let bytes = tokio::task::spawn_blocking(move || artifact_bytes(&a))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::not_found)?;
        let chunks: Vec<jm::GetArtifactResponse> = bytes
            .chunks(CHUNK)
            .map(|c| jm::GetArtifactResponse { data: c.to_vec() })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks).map(Ok))))
    }
}

fn describe(a: &pb::ArtifactInformation) -> String {
    match staged_name(a) {
        Some(n) => format!("{n:?} ({})", a.type_urn),
        None => a.type_urn.clone(),
    }
}
