//! # wasmbeam-jobserver
//!
//! `wasmbeam serve`: Beam's Job API over gRPC, so that an SDK's
//! `PortableRunner` (or any Job API client) can submit pipelines to
//! wasmbeam, and several teams can share one server safely.
//!
//! ## Map
//! * [`config`]: the config file: tenants, bearer tokens (stored as sha256),
//!   quotas and IO/grant policy; single-user mode without a file.
//! * [`store`]: the persistent job store (embedded `redb`): job records,
//!   pipelines, options, final metrics, artifact ownership.
//! * [`artifacts`]: the content-addressed artifact store.
//! * [`policy`]: quotas and policy applied to a pipeline and its options.
//! * [`jobs`]: job lifecycle: prepare, run on a thread through
//!   `wasmbeam-runner`, cancel, messages, recovery after restart, shutdown.
//! * [`metrics`]: run summaries as Beam `MonitoringInfo`s.
//! * [`service`]: the tonic services (`JobService`,
//!   `ArtifactStagingService`, `ArtifactRetrievalService`) and auth.
//!
//! ## Flow of a submission (as Beam's Python client does it)
//! `DescribePipelineOptions` → `Prepare` (the pipeline is checked at once:
//! unsupported transforms, IO paths, requested limits; the response names
//! this server as the staging endpoint) → `ReverseArtifactRetrievalService`
//! (the server asks the client for each component of each WASM environment,
//! stores it by sha256 and rewrites the environment to point at the store)
//! → `GetStateStream` / `GetMessageStream` → `Run` → states until DONE,
//! FAILED or CANCELLED. A failure's cause is sent as a message before the
//! FAILED state.
//!
//! Dependency rule: this crate depends on the runner, the plan and the
//! protos; nothing depends on it but the CLI.

#![warn(missing_docs)]

pub mod artifacts;
pub mod config;
pub mod jobs;
pub mod metrics;
pub mod policy;
pub mod service;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use wasmbeam_proto::job_management::v1::{
    artifact_retrieval_service_server::ArtifactRetrievalServiceServer,
    artifact_staging_service_server::ArtifactStagingServiceServer,
    job_service_server::JobServiceServer,
};

pub use config::ServerConfig;
pub use jobs::Jobs;
pub use service::Services;

/// Serve on `listener` until `shutdown` resolves; then cancel running jobs
/// (committing nothing partial), wait for them, and return.
pub async fn serve(
    jobs: Arc<Jobs>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let max = jobs.config().max_message_bytes;
    let svc = Services::new(jobs.clone());
    let j2 = jobs.clone();
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down: cancelling running jobs");
        // Jobs end first, so their open state streams finish and the
        // server can close gracefully.
        let _ = tokio::task::spawn_blocking(move || j2.shutdown()).await;
    };
    tonic::transport::Server::builder()
        .add_service(
            JobServiceServer::new(svc.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            ArtifactStagingServiceServer::new(svc.clone())
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .add_service(
            ArtifactRetrievalServiceServer::new(svc)
                .max_decoding_message_size(max)
                .max_encoding_message_size(max),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
        .await
        .map_err(|e| format!("gRPC server: {e}"))
}
