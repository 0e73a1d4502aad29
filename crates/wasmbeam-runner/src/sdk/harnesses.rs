//! The Fn API server and SDK harnesses of one job: harnesses started per
//! environment (worker pool `StartWorker`, or a PROCESS command), up to
//! `sdk_workers` each, replaced when a bundle fails, and stopped when the
//! job ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use wasmbeam_fnapi::{
    Endpoints, ExternalWorkerPool, FnApiServer, MetricsAggregate, ProcessWorker, Worker,
};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_environments::environments;

/// How long a harness may take to connect after it was started.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

enum Started {
    Pool(ExternalWorkerPool, String),
    /// Kept only to be killed when dropped; its scratch directory (Beam's
    /// semi-persistent directory) goes with it.
    Process {
        _worker: ProcessWorker,
        _scratch: tempfile::TempDir,
    },
}

/// The PROCESS command that starts the Beam Python SDK harness of
/// [`HarnessSettings::python`] directly, with no boot program: the runner
/// itself puts the environment's staged files (a pickled main session, for
/// one) in the harness's `staged` directory and hands it the options.
pub const BUILTIN_PYTHON_COMMAND: &str = "wasmbeam:python";

/// How a job's harnesses are started and driven.
#[derive(Clone, Default)]
pub struct HarnessSettings {
    /// The job's cancel flag: checkpointed restrictions are not resumed
    /// once it is set.
    pub cancel: Option<Arc<AtomicBool>>,
    /// How many times a failed bundle is tried in all.
    pub attempts: u32,
    /// Harnesses per environment, sharing its bundles.
    pub parallelism: usize,
    /// The job's pipeline options, which harnesses get through the
    /// provision service.
    pub pipeline_options: prost_types::Struct,
    /// The Python interpreter (with apache-beam) that
    /// [`BUILTIN_PYTHON_COMMAND`] runs; `python3` on the PATH when unset.
    pub python: Option<std::path::PathBuf>,
}

impl Started {
    /// Stop the harness: `StopWorker` on its pool, or kill its process.
    fn stop(self, rt: &tokio::runtime::Runtime, server: &FnApiServer) {
        if let Started::Pool(mut pool, id) = self {
            let stop = pool.stop_worker(&id);
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), stop).await;
                // Let the harness hang up first, so it does not see the
                // server vanish under its open streams.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                while server.is_connected(&id) && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        // A process worker is killed when dropped here.
    }
}

/// The Fn API server and SDK harnesses of one job.
pub struct SdkHarnesses {
    pub(super) rt: tokio::runtime::Runtime,
    /// Set when the job is cancelled: checkpointed restrictions are not
    /// resumed then.
    pub(super) cancel: Option<Arc<AtomicBool>>,
    /// User metrics from every bundle's response.
    pub(super) metrics: MetricsAggregate,
    pub(super) server: FnApiServer,
    /// The harnesses of each environment (up to `parallelism` each).
    workers: Mutex<HashMap<String, Vec<Worker>>>,
    /// Harnesses per environment.
    pub(super) parallelism: usize,
    /// Round-robin position for picking a harness.
    turn: std::sync::atomic::AtomicUsize,
    /// Every harness started, by worker id.
    started: Mutex<Vec<(String, Started)>>,
    /// Worker ids handed out so far.
    next_worker: AtomicU64,
    /// How many times a failed bundle is tried in all.
    pub(super) attempts: u32,
    settings: HarnessSettings,
}

impl SdkHarnesses {
    /// Start the Fn API server (no harness yet).
    pub fn new(settings: HarnessSettings) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmbeam-fnapi")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Fn API runtime: {e}"))?;
        let server = rt
            .block_on(FnApiServer::start(None))
            .map_err(|e| e.to_string())?;
        server.set_pipeline_options(settings.pipeline_options.clone());
        Ok(SdkHarnesses {
            rt,
            cancel: settings.cancel.clone(),
            metrics: MetricsAggregate::default(),
            server,
            workers: Mutex::default(),
            parallelism: settings.parallelism.max(1),
            turn: Default::default(),
            started: Mutex::default(),
            next_worker: AtomicU64::new(1),
            attempts: settings.attempts.max(1),
            settings,
        })
    }

    /// Replace harness `failed` of environment `env_id` with a fresh one
    /// (unless another bundle replaced it already), stopping the old one.
    pub(super) fn replace(
        &self,
        env_id: &str,
        env: &pb::Environment,
        failed: &Worker,
    ) -> Result<(), String> {
        {
            let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(list) = workers.get_mut(env_id) {
                list.retain(|w| w.id() != failed.id());
            }
        }
        let old = {
            let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
            started
                .iter()
                .position(|(id, _)| id == failed.id())
                .map(|i| started.remove(i).1)
        };
        if let Some(old) = old {
            old.stop(&self.rt, &self.server);
        }
        self.worker(env_id, env).map(|_| ())
    }

    /// The user metrics the harnesses reported, merged.
    pub fn metrics(&self) -> Vec<wasmbeam_proto::pipeline::v1::MonitoringInfo> {
        self.metrics.snapshot()
    }

    /// A harness of environment `env_id` for the next bundle: a new one
    /// while the environment has fewer than `parallelism`, else the next in
    /// turn.
    pub(super) fn worker(&self, env_id: &str, env: &pb::Environment) -> Result<Worker, String> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = workers.get(env_id).filter(|l| l.len() >= self.parallelism) {
            let i = self.turn.fetch_add(1, Ordering::Relaxed) % list.len();
            return Ok(list[i].clone());
        }
        let n = self.next_worker.fetch_add(1, Ordering::Relaxed);
        let worker_id = format!("wasmbeam-{}-{n}", std::process::id());
        let endpoints = Endpoints::all_at(&self.server.endpoint().url);
        // Its provision info and staged files are served once announced.
        self.server
            .expect_worker(&worker_id, env.dependencies.clone());
        let started = if env.urn == environments::EXTERNAL {
            let p = pb::ExternalPayload::decode(env.payload.as_slice())
                .map_err(|e| format!("environment {env_id}: bad EXTERNAL payload: {e}"))?;
            let url = p.endpoint.map(|e| e.url).unwrap_or_default();
            if url.is_empty() {
                return Err(format!(
                    "environment {env_id}: EXTERNAL without a worker pool address"
                ));
            }
            let mut pool = self
                .rt
                .block_on(ExternalWorkerPool::connect(&url, Duration::from_secs(10)))
                .map_err(|e| format!("environment {env_id}: {e}"))?;
            self.rt
                .block_on(pool.start_worker(&worker_id, &endpoints, p.params))
                .map_err(|e| format!("environment {env_id}: {e}"))?;
            Started::Pool(pool, worker_id.clone())
        } else if env.urn == environments::PROCESS {
            let p = pb::ProcessPayload::decode(env.payload.as_slice())
                .map_err(|e| format!("environment {env_id}: bad PROCESS payload: {e}"))?;
            let scratch = tempfile::Builder::new()
                .prefix("wasmbeam-harness-")
                .tempdir()
                .map_err(|e| {
                    format!("environment {env_id}: cannot make a scratch directory: {e}")
                })?;
            let w = if p.command.trim() == BUILTIN_PYTHON_COMMAND {
                self.builtin_python(env, &worker_id, &endpoints, scratch.path())
            } else {
                ProcessWorker::boot(&p.command, &p.env, &worker_id, &endpoints, scratch.path())
                    .map_err(|e| e.to_string())
            }
            .map_err(|e| format!("environment {env_id}: {e}"))?;
            Started::Process {
                _worker: w,
                _scratch: scratch,
            }
        } else {
            return Err(format!(
                "environment {env_id} ({}) cannot be started here: use LOOPBACK, EXTERNAL or PROCESS",
                env.urn
            ));
        };
        let mut started = started;
        // A harness process that exits before it connects fails at once,
        // with its own last words, instead of after the connect timeout.
        let waited = std::time::Instant::now();
        let w = loop {
            let attempt = self
                .rt
                .block_on(self.server.worker(&worker_id, Duration::from_millis(250)));
            match attempt {
                Ok(w) => break w,
                Err(_) if waited.elapsed() < CONNECT_TIMEOUT => {
                    if let Started::Process { _worker: p, .. } = &mut started {
                        if let Some(why) = p.exit_report() {
                            started.stop(&self.rt, &self.server);
                            return Err(format!("environment {env_id}: {why}"));
                        }
                    }
                }
                Err(_) => {
                    let e = wasmbeam_fnapi::FnApiError::NoWorker {
                        worker: worker_id.clone(),
                        waited: CONNECT_TIMEOUT,
                        endpoint: self.server.endpoint().url,
                    };
                    started.stop(&self.rt, &self.server);
                    return Err(format!("environment {env_id}: {e}"));
                }
            }
        };
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((worker_id.clone(), started));
        workers
            .entry(env_id.to_string())
            .or_default()
            .push(w.clone());
        Ok(w)
    }
}

impl SdkHarnesses {
    /// Start the Python SDK harness of the configured interpreter, with the
    /// environment's staged files in `scratch/staged` (where the harness
    /// looks for a pickled main session, and which it puts on `sys.path`).
    fn builtin_python(
        &self,
        env: &pb::Environment,
        worker_id: &str,
        endpoints: &Endpoints,
        scratch: &std::path::Path,
    ) -> Result<ProcessWorker, String> {
        let staged = scratch.join("staged");
        std::fs::create_dir_all(&staged)
            .map_err(|e| format!("cannot make {}: {e}", staged.display()))?;
        for (i, dep) in env.dependencies.iter().enumerate() {
            let name = staged_file_name(dep).unwrap_or_else(|| format!("artifact-{i}"));
            let bytes = wasmbeam_fnapi::artifact_bytes(dep)
                .map_err(|e| format!("staged file {name:?}: {e}"))?;
            let path = staged.join(&name);
            std::fs::write(&path, bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let options = struct_json(&self.settings.pipeline_options).to_string();
        let python = self
            .settings
            .python
            .clone()
            .unwrap_or_else(|| "python3".into());
        ProcessWorker::python(&python, worker_id, endpoints, &options, scratch)
            .map_err(|e| e.to_string())
    }
}

/// A protobuf `Struct` as the JSON object it stands for.
fn struct_json(s: &prost_types::Struct) -> serde_json::Value {
    use prost_types::value::Kind;
    fn value(v: &prost_types::Value) -> serde_json::Value {
        match &v.kind {
            None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
            Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
            Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
            Some(Kind::StructValue(s)) => struct_json(s),
            Some(Kind::ListValue(l)) => l.values.iter().map(value).collect(),
        }
    }
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value(v)))
            .collect(),
    )
}

/// The plain file name a dependency is staged under: its staging role's
/// name, else the last part of its file path. Never a path, so a staged
/// name cannot point outside the harness's directory.
fn staged_file_name(dep: &pb::ArtifactInformation) -> Option<String> {
    let name = wasmbeam_fnapi::staged_name(dep).or_else(|| {
        pb::ArtifactFilePayload::decode(dep.type_payload.as_slice())
            .ok()
            .map(|p| p.path)
    })?;
    std::path::Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
}

impl Drop for SdkHarnesses {
    fn drop(&mut self) {
        let started = std::mem::take(&mut *self.started.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, s) in started {
            s.stop(&self.rt, &self.server);
        }
    }
}
