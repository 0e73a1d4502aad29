//! Jobs: preparation, staging bookkeeping, running on worker threads,
//! state and message broadcasting, cancellation, quotas, and recovery after
//! a restart.
//!
//! Lifecycle (Beam's `JobState`): `STOPPED` after Prepare → `STARTING` →
//! `RUNNING` → `DONE` | `FAILED` | `CANCELLED` (via `CANCELLING`). Every
//! change is written to the [`Store`] before it is broadcast, so what a
//! client saw is never lost by a crash. On start, jobs found in a
//! non-terminal state are marked `FAILED` with the reason.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;
use tokio::sync::{broadcast, watch};
use wasmbeam_plan::PipelineView;
use wasmbeam_proto::job_management::v1::{job_message::MessageImportance, job_state};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::{standard_artifacts, standard_environments::environments};
use wasmbeam_proto::wasmbeam_urns;
use wasmbeam_runner::{HostConfig, Progress, RunOptions, RunnerError};

use crate::artifacts::ArtifactStore;
use crate::config::{ServerConfig, Tenant};
use crate::metrics;
use crate::policy;
use crate::store::{JobRecord, MessageRecord, Store, StoreError};

/// A refusal for the client, mapped onto a gRPC status by the service.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request is malformed or the pipeline cannot run here.
    #[error("{0}")]
    Invalid(String),
    /// No such job for this tenant (also when it belongs to another one).
    #[error("no job {0:?}")]
    NotFound(String),
    /// The job is in the wrong state for the request.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The server could not do its part.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Internal(e.to_string())
    }
}

/// Current time, ms since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn is_terminal(state: i32) -> bool {
    use job_state::Enum::*;
    [Done, Failed, Cancelled, Drained, Updated]
        .iter()
        .any(|s| *s as i32 == state)
}

/// An unguessable hex token (128 bits from the OS).
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source is unavailable");
    hex::encode(b)
}

/// One job, live.
pub struct Job {
    /// Job id.
    pub id: String,
    /// Owning tenant's name.
    pub tenant: String,
    staging_token: String,
    rec: Mutex<JobRecord>,
    state_tx: watch::Sender<i32>,
    msg_tx: broadcast::Sender<MessageRecord>,
    cancel: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    progress: Arc<Progress>,
    staged: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Job {
    fn new(rec: JobRecord, staging_token: String) -> Job {
        let (state_tx, _) = watch::channel(rec.state);
        let (msg_tx, _) = broadcast::channel(256);
        Job {
            id: rec.id.clone(),
            tenant: rec.tenant.clone(),
            staging_token,
            rec: Mutex::new(rec),
            state_tx,
            msg_tx,
            cancel: Arc::new(AtomicBool::new(false)),
            drain: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Progress::default()),
            staged: AtomicBool::new(false),
            thread: Mutex::new(None),
        }
    }

    /// A copy of the record.
    pub fn record(&self) -> JobRecord {
        self.rec.lock().unwrap().clone()
    }

    /// Current state.
    pub fn state(&self) -> i32 {
        *self.state_tx.borrow()
    }

    /// State changes from now on (the current value first).
    pub fn watch_state(&self) -> watch::Receiver<i32> {
        self.state_tx.subscribe()
    }

    /// Messages: the ones so far and a receiver for the next.
    pub fn messages(&self) -> (Vec<MessageRecord>, broadcast::Receiver<MessageRecord>) {
        let rec = self.rec.lock().unwrap();
        (rec.messages.clone(), self.msg_tx.subscribe())
    }

    /// Have its components been staged (or did it need none)?
    pub fn is_staged(&self) -> bool {
        self.staged.load(Ordering::SeqCst)
    }

    /// Elements produced so far (live progress).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

/// All jobs of the server.
pub struct Jobs {
    cfg: Arc<ServerConfig>,
    store: Store,
    /// The content-addressed artifact store.
    pub artifacts: ArtifactStore,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    shutting_down: AtomicBool,
}

impl Jobs {
    /// Open the store and artifacts under the config's state dir, and fail
    /// any job a previous server left unfinished.
    pub fn open(cfg: Arc<ServerConfig>) -> Result<Arc<Jobs>, String> {
        let store = Store::open(&cfg.state_dir).map_err(|e| e.to_string())?;
        let artifacts = ArtifactStore::new(cfg.state_dir.join("artifacts")).map_err(|e| {
            format!(
                "cannot use artifact dir {}: {e}",
                cfg.state_dir.join("artifacts").display()
            )
        })?;
        let mut map = HashMap::new();
        for mut rec in store.all_jobs().map_err(|e| e.to_string())? {
            if !is_terminal(rec.state) {
                let was = job_state::Enum::try_from(rec.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("UNKNOWN");
                let text = format!(
                    "the wasmbeam server stopped while this job was {was}; it did not finish and no output was committed. Submit it again."
                );
                rec.messages.push(MessageRecord {
                    id: format!("{}", rec.messages.len() + 1),
                    time_ms: now_ms(),
                    importance: MessageImportance::JobMessageError as i32,
                    text,
                });
                rec.state = job_state::Enum::Failed as i32;
                rec.state_ms = now_ms();
                store.update(&rec).map_err(|e| e.to_string())?;
            }
            let job = Job::new(rec, random_token());
            map.insert(job.id.clone(), Arc::new(job));
        }
        Ok(Arc::new(Jobs {
            cfg,
            store,
            artifacts,
            jobs: Mutex::new(map),
            shutting_down: AtomicBool::new(false),
        }))
    }

    /// The server's configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// The store (for artifact ownership).
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn tenant(&self, name: &str) -> Result<&Tenant, JobError> {
        self.cfg
            .tenants
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| JobError::Internal(format!("tenant {name:?} is not configured")))
    }

    /// Check and record a submitted pipeline. Returns the job id and the
    /// staging token.
    pub fn prepare(
        &self,
        tenant: &Tenant,
        name: &str,
        pipeline: pb::Pipeline,
        options: prost_types::Struct,
    ) -> Result<(String, String), JobError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(JobError::FailedPrecondition(
                "the server is shutting down".into(),
            ));
        }
        check_pipeline(tenant, &pipeline, &options).map_err(JobError::Invalid)?;
        let id = format!("{}-{}", sanitize(name), random_token());
        let rec = JobRecord {
            id: id.clone(),
            tenant: tenant.name.clone(),
            name: name.to_string(),
            state: job_state::Enum::Stopped as i32,
            state_ms: now_ms(),
            created_ms: now_ms(),
            messages: vec![],
        };
        self.store
            .insert(&rec, &pipeline.encode_to_vec(), &options.encode_to_vec())?;
        let job = Arc::new(Job::new(rec, random_token()));
        if !needs_staging(&pipeline) {
            job.staged.store(true, Ordering::SeqCst);
        }
        let token = job.staging_token.clone();
        self.jobs.lock().unwrap().insert(id.clone(), job);
        tracing::info!(job = %id, tenant = %tenant.name, "prepared");
        Ok((id, token))
    }

    /// A job of `tenant`; other tenants' jobs are reported as missing.
    pub fn get(&self, tenant: &str, id: &str) -> Result<Arc<Job>, JobError> {
        self.jobs
            .lock()
            .unwrap()
            .get(id)
            .filter(|j| j.tenant == tenant)
            .cloned()
            .ok_or_else(|| JobError::NotFound(id.to_string()))
    }

    /// `tenant`'s jobs, oldest first.
    pub fn list(&self, tenant: &str) -> Vec<Arc<Job>> {
        let mut v: Vec<Arc<Job>> = self
            .jobs
            .lock()
            .unwrap()
            .values()
            .filter(|j| j.tenant == tenant)
            .cloned()
            .collect();
        v.sort_by_key(|j| (j.rec.lock().unwrap().created_ms, j.id.clone()));
        v
    }

    /// The job a staging token belongs to, while it waits to run.
    pub fn by_staging_token(&self, token: &str) -> Option<Arc<Job>> {
        if token.is_empty() {
            return None;
        }
        self.jobs
            .lock()
            .unwrap()
            .values()
            .find(|j| j.staging_token == token && j.state() == job_state::Enum::Stopped as i32)
            .cloned()
    }

    /// The stored pipeline of a job.
    pub fn pipeline(&self, job: &Job) -> Result<pb::Pipeline, JobError> {
        let bytes = self
            .store
            .pipeline(&job.id)?
            .ok_or_else(|| JobError::Internal(format!("job {} has no stored pipeline", job.id)))?;
        pb::Pipeline::decode(bytes.as_slice())
            .map_err(|e| JobError::Internal(format!("stored pipeline of {}: {e}", job.id)))
    }

    /// The stored options of a job.
    pub fn options(&self, job: &Job) -> Result<prost_types::Struct, JobError> {
        let bytes = self.store.options(&job.id)?.unwrap_or_default();
        prost_types::Struct::decode(bytes.as_slice())
            .map_err(|e| JobError::Internal(format!("stored options of {}: {e}", job.id)))
    }

    /// Staging finished: keep the rewritten pipeline.
    pub fn staged(&self, job: &Job, pipeline: &pb::Pipeline) -> Result<(), JobError> {
        self.store
            .set_pipeline(&job.id, &pipeline.encode_to_vec())?;
        job.staged.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Append a message (persisted, then broadcast).
    pub fn message(&self, job: &Job, importance: MessageImportance, text: String) {
        let m = {
            let mut rec = job.rec.lock().unwrap();
            let m = MessageRecord {
                id: format!("{}", rec.messages.len() + 1),
                time_ms: now_ms(),
                importance: importance as i32,
                text,
            };
            rec.messages.push(m.clone());
            if let Err(e) = self.store.update(&rec) {
                tracing::error!(job = %job.id, "{e}");
            }
            m
        };
        let _ = job.msg_tx.send(m);
    }

    /// Move to `state` (persisted, then broadcast). Terminal states stick.
    fn set_state(&self, job: &Job, state: job_state::Enum) -> bool {
        {
            let mut rec = job.rec.lock().unwrap();
            if is_terminal(rec.state) {
                return false;
            }
            rec.state = state as i32;
            rec.state_ms = now_ms();
            if let Err(e) = self.store.update(&rec) {
                tracing::error!(job = %job.id, "{e}");
            }
        }
        job.state_tx.send_replace(state as i32);
        tracing::info!(job = %job.id, state = state.as_str_name(), "state");
        true
    }

    /// Fail a job that has not run (staging went wrong).
    pub fn fail_prepared(&self, job: &Job, text: String) {
        if job.state() == job_state::Enum::Stopped as i32 {
            self.fail(job, text);
        }
    }

    fn fail(&self, job: &Job, text: String) {
        self.message(job, MessageImportance::JobMessageError, text);
        self.set_state(job, job_state::Enum::Failed);
    }

    /// Start a prepared job. Quota refusals fail the job (with a message
    /// naming the quota) rather than the call, so the client sees them as
    /// the job's failure.
    pub fn run(self: &Arc<Self>, tenant: &str, id: &str) -> Result<Arc<Job>, JobError> {
        let job = self.get(tenant, id)?;
        if job.state() != job_state::Enum::Stopped as i32 {
            return Err(JobError::FailedPrecondition(format!(
                "job {id} was already run (it is {})",
                state_name(job.state())
            )));
        }
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(JobError::FailedPrecondition(
                "the server is shutting down".into(),
            ));
        }
        if !job.staged.load(Ordering::SeqCst) {
            return Err(JobError::FailedPrecondition(format!(
                "job {id}: its artifacts (WASM components, SDK staged files) were not staged; open ArtifactStagingService.ReverseArtifactRetrievalService with the staging token from Prepare first"
            )));
        }
        let t = self.tenant(tenant)?.clone();
        // Count and start under the jobs lock, so two Runs cannot both take
        // the last slot.
        let over_quota = {
            let jobs = self.jobs.lock().unwrap();
            let running = jobs
                .values()
                .filter(|j| {
                    j.tenant == tenant && {
                        let s = j.state();
                        s == job_state::Enum::Starting as i32
                            || s == job_state::Enum::Running as i32
                            || s == job_state::Enum::Cancelling as i32
                    }
                })
                .count();
            if running >= t.quotas.concurrent_jobs {
                Some(running)
            } else {
                self.set_state(&job, job_state::Enum::Starting);
                None
            }
        };
        if let Some(running) = over_quota {
            self.fail(
                &job,
                format!(
                    "tenant {:?} already has {running} job(s) running; quota concurrent_jobs={} is reached. Wait for one to finish or ask the operator to raise the quota.",
                    t.name, t.quotas.concurrent_jobs
                ),
            );
            return Ok(job);
        }
        let me = self.clone();
        let j2 = job.clone();
        let handle = std::thread::Builder::new()
            .name(format!("job-{}", &id[..id.len().min(24)]))
            .spawn(move || me.execute(&t, &j2))
            .map_err(|e| JobError::Internal(format!("cannot start a job thread: {e}")))?;
        *job.thread.lock().unwrap() = Some(handle);
        Ok(job)
    }

    fn execute(&self, tenant: &Tenant, job: &Arc<Job>) {
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.execute_inner(tenant, job)));
        match outcome {
            Ok(Ok(summary)) => {
                let m = metrics::from_summary(&summary, now_ms());
                if let Err(e) = self.store.set_metrics(&job.id, &m.encode_to_vec()) {
                    tracing::error!(job = %job.id, "{e}");
                }
                let drained = job.drain.load(Ordering::SeqCst);
                self.message(
                    job,
                    MessageImportance::JobMessageBasic,
                    format!(
                        "job {}: {} stage(s), {} file(s) written",
                        if drained { "drained" } else { "finished" },
                        summary.stages,
                        summary.outputs.len()
                    ),
                );
                self.set_state(
                    job,
                    if drained {
                        job_state::Enum::Drained
                    } else {
                        job_state::Enum::Done
                    },
                );
            }
            Ok(Err(RunnerError::Cancelled)) => {
                let why = if self.shutting_down.load(Ordering::SeqCst) {
                    "the server shut down"
                } else {
                    "Cancel was requested"
                };
                self.message(
                    job,
                    MessageImportance::JobMessageWarning,
                    format!("job cancelled because {why}; no output was committed"),
                );
                self.set_state(job, job_state::Enum::Cancelled);
            }
            Ok(Err(e)) => {
                let text = match e {
                    RunnerError::Unsupported(f) => format!(
                        "{} transform(s) cannot run on wasmbeam:\n{}",
                        f.len(),
                        f.iter()
                            .map(|x| format!("  - {x}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    ),
                    other => other.to_string(),
                };
                self.fail(job, format!("job failed: {text}"));
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                self.fail(
                    job,
                    format!("job failed: internal error in wasmbeam ({what}); please report it"),
                );
            }
        }
    }

    fn execute_inner(
        &self,
        tenant: &Tenant,
        job: &Arc<Job>,
    ) -> Result<wasmbeam_runner::RunSummary, RunnerError> {
        let pipeline = self
            .pipeline(job)
            .map_err(|e| RunnerError::Invalid(e.to_string()))?;
        let options = self
            .options(job)
            .map_err(|e| RunnerError::Invalid(e.to_string()))?;
        let limits = policy::job_limits(tenant, &options).map_err(RunnerError::Invalid)?;
        if job.cancel.load(Ordering::SeqCst) {
            return Err(RunnerError::Cancelled);
        }
        self.set_state(job, job_state::Enum::Running);
        let opts = RunOptions {
            workers: limits.workers,
            limits: limits.limits,
            udf_memory_budget: limits.udf_memory_budget,
            grants: limits.grants,
            sdk_workers: limits.sdk_workers,
            host: HostConfig {
                cache_dir: Some(self.cfg.state_dir.join("wasm-cache")),
                ..HostConfig::default()
            },
            cancel: job.cancel.clone(),
            drain: job.drain.clone(),
            progress: job.progress.clone(),
            pipeline_options: options,
            sdk_python: self.cfg.sdk_python.clone(),
            ..RunOptions::default()
        };
        wasmbeam_runner::run(&pipeline, &opts)
    }

    /// Ask a job to stop. Returns the state after the request.
    pub fn cancel(&self, tenant: &str, id: &str) -> Result<i32, JobError> {
        let job = self.get(tenant, id)?;
        let s = job.state();
        if is_terminal(s) {
            return Ok(s);
        }
        job.cancel.store(true, Ordering::SeqCst);
        if s == job_state::Enum::Stopped as i32 {
            self.message(
                &job,
                MessageImportance::JobMessageWarning,
                "job cancelled before it ran".into(),
            );
            self.set_state(&job, job_state::Enum::Cancelled);
        } else {
            self.set_state(&job, job_state::Enum::Cancelling);
        }
        Ok(job.state())
    }

    /// Drain a running streaming job: its sources stop, every pending
    /// window and timer fires, its sinks commit, and it ends DRAINED. A job
    /// that already ended keeps its state; a batch job is refused (it ends
    /// by itself; Cancel stops it).
    pub fn drain(&self, tenant: &str, id: &str) -> Result<i32, JobError> {
        let job = self.get(tenant, id)?;
        let pipeline = self.pipeline(&job)?;
        if !wasmbeam_runner::is_streaming(&pipeline) {
            return Err(JobError::FailedPrecondition(format!(
                "job {id} is a batch job (no unbounded source or TestStream): it ends by itself, and Drain does not apply; use Cancel to stop it"
            )));
        }
        let s = job.state();
        if is_terminal(s) {
            return Ok(s);
        }
        job.drain.store(true, Ordering::SeqCst);
        self.message(
            &job,
            MessageImportance::JobMessageBasic,
            "drain requested: sources stop, pending windows fire, then the job ends".into(),
        );
        self.set_state(&job, job_state::Enum::Draining);
        Ok(job.state())
    }

    /// Final metrics of a finished job, or live counts of a running one.
    pub fn metrics(
        &self,
        job: &Job,
    ) -> Result<wasmbeam_proto::job_management::v1::GetJobMetricsResponse, JobError> {
        if let Some(bytes) = self.store.metrics(&job.id)? {
            return wasmbeam_proto::job_management::v1::GetJobMetricsResponse::decode(
                bytes.as_slice(),
            )
            .map_err(|e| JobError::Internal(format!("stored metrics of {}: {e}", job.id)));
        }
        Ok(metrics::live(job.progress(), now_ms()))
    }

    /// Stop accepting work, cancel running jobs and wait for them. Nothing
    /// partial is committed: cancelled jobs discard their staged output.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Job>> = self.jobs.lock().unwrap().values().cloned().collect();
        for j in &all {
            if !is_terminal(j.state()) {
                j.cancel.store(true, Ordering::SeqCst);
                if j.state() == job_state::Enum::Stopped as i32 {
                    self.message(
                        j,
                        MessageImportance::JobMessageWarning,
                        "the server shut down before this job ran".into(),
                    );
                    self.set_state(j, job_state::Enum::Cancelled);
                } else {
                    self.set_state(j, job_state::Enum::Cancelling);
                }
            }
        }
        for j in &all {
            let h = j.thread.lock().unwrap().take();
            if let Some(h) = h {
                let _ = h.join();
            }
        }
    }
}

/// Beam's name for a state value.
pub fn state_name(s: i32) -> &'static str {
    job_state::Enum::try_from(s)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN")
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "job".into()
    } else {
        s
    }
}

/// Everything that can be checked before any byte is staged.
pub fn check_pipeline(
    tenant: &Tenant,
    pipeline: &pb::Pipeline,
    options: &prost_types::Struct,
) -> Result<(), String> {
    let view = PipelineView::new(pipeline).map_err(|e| format!("invalid pipeline: {e}"))?;
    let mut findings = view.unsupported();
    findings.extend(policy::sdk_environment_findings(tenant, &view));
    if !findings.is_empty() {
        let mut msg = format!(
            "wasmbeam cannot run this pipeline: {} transform(s) are not supported:",
            findings.len()
        );
        for f in &findings {
            msg.push_str(&format!("\n  - {f}"));
        }
        return Err(msg);
    }
    policy::check_io_paths(tenant, pipeline)?;
    policy::job_limits(tenant, options)?;
    // Components must come through staging (or be embedded): a file path in
    // a submitted pipeline names a file on the client's machine.
    for (env_id, env) in wasm_environments(pipeline) {
        for d in &env.dependencies {
            let t = d.type_urn.as_str();
            if t != standard_artifacts::types::FILE
                && t != standard_artifacts::types::URL
                && t != standard_artifacts::types::EMBEDDED
            {
                return Err(format!(
                    "environment {env_id:?}: artifact type {t} cannot be staged (file, url and embedded can)"
                ));
            }
        }
    }
    Ok(())
}

/// The WASM environments of a pipeline, by id (sorted).
pub fn wasm_environments(pipeline: &pb::Pipeline) -> Vec<(String, pb::Environment)> {
    environments_where(pipeline, |e| e.urn == wasmbeam_urns::WASM_ENVIRONMENT)
}

/// The environments whose dependencies the server stages from the client:
/// WASM ones (their components) and the SDK environments it starts or
/// reaches (EXTERNAL, PROCESS), whose harnesses fetch their staged files
/// (a pickled main session, `requirements.txt`, ...) from the runner.
pub fn staged_environments(pipeline: &pb::Pipeline) -> Vec<(String, pb::Environment)> {
    environments_where(pipeline, |e| {
        e.urn == wasmbeam_urns::WASM_ENVIRONMENT
            || e.urn == environments::EXTERNAL
            || e.urn == environments::PROCESS
    })
}

/// The pipeline's environments that `keep` accepts, by id (sorted).
fn environments_where(
    pipeline: &pb::Pipeline,
    keep: impl Fn(&pb::Environment) -> bool,
) -> Vec<(String, pb::Environment)> {
    let mut v: Vec<(String, pb::Environment)> = pipeline
        .components
        .iter()
        .flat_map(|c| c.environments.iter())
        .filter(|(_, e)| keep(e))
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn needs_staging(pipeline: &pb::Pipeline) -> bool {
    staged_environments(pipeline).iter().any(|(_, e)| {
        e.dependencies
            .iter()
            .any(|d| d.type_urn != standard_artifacts::types::EMBEDDED)
    })
}
