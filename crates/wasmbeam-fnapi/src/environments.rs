//! Starting SDK harnesses the ways Beam environments describe:
//!
//! * **PROCESS** ([`ProcessWorker::boot`]): a command started with Beam's
//!   boot flags (`--id`, `--control_endpoint`, `--logging_endpoint`,
//!   `--artifact_endpoint`, `--provision_endpoint`).
//! * **Python from a venv** ([`ProcessWorker::python`]): the Beam Python SDK
//!   harness module started directly with its environment variables, so a
//!   user needs no wrapper script.
//! * **EXTERNAL / LOOPBACK** ([`ExternalWorkerPool`]): `StartWorker` and
//!   `StopWorker` on a `BeamFnExternalWorkerPool` service (the one the
//!   Python client starts for `--environment_type=LOOPBACK`, or a pool the
//!   user runs).
//!
//! A process worker is killed when its handle is dropped, so no harness
//! outlives the job that started it.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::fn_execution::v1::beam_fn_external_worker_pool_client::BeamFnExternalWorkerPoolClient;
use wasmbeam_proto::pipeline::v1 as pb;

use crate::FnApiError;

/// The runner endpoints a harness is given.
#[derive(Debug, Clone, Default)]
pub struct Endpoints {
    /// Control (and, in wasmbeam, data, logging and state) endpoint.
    pub control: String,
    /// Logging endpoint.
    pub logging: String,
    /// Artifact retrieval endpoint, when the runner serves one.
    pub artifact: Option<String>,
    /// Provision endpoint, when the runner serves one.
    pub provision: Option<String>,
}

impl Endpoints {
    /// Every service at one address (what [`crate::FnApiServer`] serves).
    pub fn all_at(addr: &str) -> Self {
        Endpoints {
            control: addr.into(),
            logging: addr.into(),
            artifact: Some(addr.into()),
            provision: Some(addr.into()),
        }
    }
}

fn descriptor(url: &str) -> pb::ApiServiceDescriptor {
    pb::ApiServiceDescriptor {
        url: url.into(),
        authentication: None,
    }
}

/// A harness running as a child process; killed on drop.
pub struct ProcessWorker {
    worker_id: String,
    child: Child,
    /// The last lines the harness wrote to stderr.
    stderr_tail: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

/// Stderr lines kept per harness process, to explain a failed start.
const STDERR_TAIL: usize = 12;

impl ProcessWorker {
    /// Start `command` (split on whitespace: program then arguments) with
    /// Beam's boot flags, as a PROCESS environment does, `semi_persist_dir`
    /// being the harness's own scratch directory. `env` is added to the
    /// child's environment.
    pub fn boot(
        command: &str,
        env: &HashMap<String, String>,
        worker_id: &str,
        endpoints: &Endpoints,
        semi_persist_dir: &Path,
    ) -> Result<Self, FnApiError> {
        let mut parts = command.split_whitespace();
        let program = parts.next().ok_or_else(|| {
            FnApiError::Start("the PROCESS environment's command is empty".into())
        })?;
        let mut c = Command::new(program);
        c.args(parts)
            .arg(format!("--id={worker_id}"))
            .arg(format!("--control_endpoint={}", endpoints.control))
            .arg(format!("--logging_endpoint={}", endpoints.logging));
        if let Some(a) = &endpoints.artifact {
            c.arg(format!("--artifact_endpoint={a}"));
        }
        if let Some(p) = &endpoints.provision {
            c.arg(format!("--provision_endpoint={p}"));
        }
        c.arg(format!("--semi_persist_dir={}", semi_persist_dir.display()));
        c.envs(env).stdin(Stdio::null());
        Self::spawn(c, worker_id, command)
    }

    /// Start the Beam Python SDK harness of `python` (an interpreter with
    /// apache-beam installed) for `worker_id`, with the pipeline options as
    /// JSON and a scratch directory.
    pub fn python(
        python: &Path,
        worker_id: &str,
        endpoints: &Endpoints,
        options_json: &str,
        scratch: &Path,
    ) -> Result<Self, FnApiError> {
        let mut c = Command::new(python);
        c.args(["-m", "apache_beam.runners.worker.sdk_worker_main"])
            .env(
                "CONTROL_API_SERVICE_DESCRIPTOR",
                format!("url: \"{}\"", endpoints.control),
            )
            .env(
                "LOGGING_API_SERVICE_DESCRIPTOR",
                format!("url: \"{}\"", endpoints.logging),
            )
            .env("WORKER_ID", worker_id)
            .env("PIPELINE_OPTIONS", options_json)
            .env("SEMI_PERSISTENT_DIRECTORY", scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Self::spawn(c, worker_id, &python.display().to_string())
    }

    fn spawn(mut c: Command, worker_id: &str, what: &str) -> Result<Self, FnApiError> {
        c.stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| {
            FnApiError::Start(format!(
                "cannot start SDK harness {worker_id:?} with {what}: {e}"
            ))
        })?;
        // The harness's stderr goes to the log (target `wasmbeam::sdk`);
        // its last lines are kept to explain a failed start.
        let stderr_tail =
            std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        if let Some(err) = child.stderr.take() {
            let id = worker_id.to_string();
            let tail = stderr_tail.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                    tracing::debug!(target: "wasmbeam::sdk", worker = %id, "{line}");
                    let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
                    if t.len() == STDERR_TAIL {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            });
        }
        Ok(ProcessWorker {
            worker_id: worker_id.into(),
            child,
            stderr_tail,
        })
    }

    /// When the harness process has exited: how, with the last lines it
    /// wrote to stderr.
    pub fn exit_report(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        // Let the stderr reader catch the last lines.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
        Some(if lines.is_empty() {
            format!(
                "SDK harness {:?} exited ({status}) before connecting",
                self.worker_id
            )
        } else {
            format!(
                "SDK harness {:?} exited ({status}) before connecting; its last stderr lines:\n{}",
                self.worker_id,
                lines.join("\n")
            )
        })
    }

    /// The worker id it was started with.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ProcessWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of a `BeamFnExternalWorkerPool` (EXTERNAL and LOOPBACK
/// environments).
pub struct ExternalWorkerPool {
    address: String,
    client: BeamFnExternalWorkerPoolClient<tonic::transport::Channel>,
}

impl ExternalWorkerPool {
    /// Connect to the pool at `address` (`HOST:PORT`).
    pub async fn connect(address: &str, timeout: Duration) -> Result<Self, FnApiError> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let unreachable = |e: String| {
            FnApiError::Start(format!(
                "cannot reach the external worker pool at {address} (the environment_config of an EXTERNAL or LOOPBACK environment): {e}"
            ))
        };
        let endpoint = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(ExternalWorkerPool {
            address: address.into(),
            client: BeamFnExternalWorkerPoolClient::new(channel),
        })
    }

    /// Ask the pool to start harness `worker_id` against `endpoints`.
    pub async fn start_worker(
        &mut self,
        worker_id: &str,
        endpoints: &Endpoints,
        params: HashMap<String, String>,
    ) -> Result<(), FnApiError> {
        let req = fn_api::StartWorkerRequest {
            worker_id: worker_id.into(),
            control_endpoint: Some(descriptor(&endpoints.control)),
            logging_endpoint: Some(descriptor(&endpoints.logging)),
            artifact_endpoint: endpoints.artifact.as_deref().map(descriptor),
            provision_endpoint: endpoints.provision.as_deref().map(descriptor),
            params,
        };
        let resp = self.client.start_worker(req).await;
        self.answered("StartWorker", worker_id, resp.map(|r| r.into_inner().error))
    }

    /// Ask the pool to stop harness `worker_id`.
    pub async fn stop_worker(&mut self, worker_id: &str) -> Result<(), FnApiError> {
        let req = fn_api::StopWorkerRequest {
            worker_id: worker_id.into(),
        };
        let resp = self.client.stop_worker(req).await;
        self.answered("StopWorker", worker_id, resp.map(|r| r.into_inner().error))
    }

    /// A pool's answer to `call`: a gRPC failure, or the error text of its
    /// response, becomes an error naming the pool and the worker.
    fn answered(
        &self,
        call: &str,
        worker_id: &str,
        error: Result<String, tonic::Status>,
    ) -> Result<(), FnApiError> {
        let why = match error {
            Ok(e) if e.is_empty() => return Ok(()),
            Ok(e) => e,
            Err(s) => s.message().to_string(),
        };
        Err(FnApiError::Start(format!(
            "the external worker pool at {} failed {call} for {worker_id:?}: {why}",
            self.address
        )))
    }
}
