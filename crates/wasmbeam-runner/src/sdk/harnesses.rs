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
    /// Kept only to be killed when dropped.
    Process {
        _worker: ProcessWorker,
    },
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
}

impl SdkHarnesses {
    /// Start the Fn API server (no harness yet); `cancel` is the job's
    /// cancel flag; a failed bundle is tried `attempts` times in all; each
    /// environment gets up to `parallelism` harnesses, which share its
    /// bundles.
    pub fn new(
        cancel: Option<Arc<AtomicBool>>,
        attempts: u32,
        parallelism: usize,
    ) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wasmbeam-fnapi")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Fn API runtime: {e}"))?;
        let server = rt
            .block_on(FnApiServer::start(None))
            .map_err(|e| e.to_string())?;
        Ok(SdkHarnesses {
            rt,
            cancel,
            metrics: MetricsAggregate::default(),
            server,
            workers: Mutex::default(),
            parallelism: parallelism.max(1),
            turn: Default::default(),
            started: Mutex::default(),
            next_worker: AtomicU64::new(1),
            attempts: attempts.max(1),
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
            let w = ProcessWorker::boot(&p.command, &p.env, &worker_id, &endpoints)
                .map_err(|e| format!("environment {env_id}: {e}"))?;
            Started::Process { _worker: w }
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
                    if let Started::Process { _worker: p } = &mut started {
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

impl Drop for SdkHarnesses {
    fn drop(&mut self) {
        let started = std::mem::take(&mut *self.started.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, s) in started {
            s.stop(&self.rt, &self.server);
        }
    }
}
