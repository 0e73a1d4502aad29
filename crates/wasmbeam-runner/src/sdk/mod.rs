//! ParDos whose DoFns run in SDK harnesses (Python, Go, Java) over the Fn
//! API, as engine operations beside WASM and runner-native ones.
//!
//! * [`SdkHarnesses`] belongs to one job: a Fn API server on loopback, and
//!   one harness per environment, started on first use the way the
//!   environment says (EXTERNAL/LOOPBACK: `StartWorker` on its worker pool;
//!   PROCESS: its command with Beam's boot flags). Dropping it stops them
//!   all, so no harness outlives its job.
//! * [`SdkDoFn`] runs one ParDo: its bundle descriptor is
//!   `source -> ParDo -> one sink per output`, and each engine bundle goes to
//!   the harness as one Fn API bundle. Elements cross as windowed values;
//!   a coder the runner does not know is wrapped in `length_prefix`, so the
//!   runner keeps its values as opaque bytes.
//!
//! * Side inputs are materialised by the engine and served over the State
//!   API from memory: iterable ones by window, multimap ones by window and
//!   key (with the key list).
//! * A ParDo with user state or timers runs as the engine's stateful ParDo
//!   ([`SdkStatefulDoFn`], in `keyed.rs`): its input is shuffled by key and
//!   each partition gets its own state store and timer queue.
//! * A splittable ParDo is expanded into its three harness steps
//!   (`sdf.rs`); the last one's checkpointed residuals are processed again
//!   until none is left, and bundles that ask for finalization get it.
//! * `steps.rs` turns one SDK transform into its engine ops; `coding.rs`
//!   holds the wire coders and the decoding of harness output.
//!
//! * A bundle that fails, or whose harness dies, is tried again on a fresh
//!   harness (the job's `bundle_attempts`); a keyed run restores its state
//!   first. Cancelling the job abandons the bundle in flight.
//!
//! * An environment gets up to `sdk_workers` harnesses, started as bundles
//!   come, which take its bundles in turn. With more than one, a splittable
//!   DoFn's restrictions are split while they run (`split.rs`).
//! * A bundle's output goes on to the engine while the harness still sends
//!   it, past a small held part (`stream.rs`), with backpressure.

mod keyed;

pub(crate) use fusion::fuse;
pub use keyed::SdkStatefulDoFn;
pub(crate) use sdf::expand_pipeline as expand_splittable;
pub(crate) use steps::{side_tags, steps, Transform};
pub(crate) use transcode::transcode_step;
mod coding;
mod fusion;
mod sdf;
mod split;
mod steps;
mod stream;
mod transcode;

use coding::{decode_into, wire, wire_coder_id, Wire};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use wasmbeam_coders::{coder_from_proto, Coder, Context, PaneInfo, Reader, Value};
use wasmbeam_engine::{Batch, DoFnExec, OpError, OpResult};
use wasmbeam_fnapi::{
    BundleInput, Endpoints, ExternalWorkerPool, FnApiServer, MemoryState, MetricsAggregate,
    ProcessWorker, StateProvider, StateValue, Worker,
};
use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_environments::environments;
use wasmbeam_proto::urns::standard_p_transforms::primitives;
use wasmbeam_proto::urns::standard_p_transforms::splittable_par_do_components as sdf_urns;

/// The access pattern of a side input read by key.
const MULTIMAP_ACCESS: &str = "beam:side_input:multimap:v1";

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
    rt: tokio::runtime::Runtime,
    /// Set when the job is cancelled: checkpointed restrictions are not
    /// resumed then.
    cancel: Option<Arc<AtomicBool>>,
    /// User metrics from every bundle's response.
    metrics: MetricsAggregate,
    server: FnApiServer,
    /// The harnesses of each environment (up to `parallelism` each).
    workers: Mutex<HashMap<String, Vec<Worker>>>,
    /// Harnesses per environment.
    parallelism: usize,
    /// Round-robin position for picking a harness.
    turn: std::sync::atomic::AtomicUsize,
    /// Every harness started, by worker id.
    started: Mutex<Vec<(String, Started)>>,
    /// Worker ids handed out so far.
    next_worker: AtomicU64,
    /// How many times a failed bundle is tried in all.
    attempts: u32,
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
    fn replace(&self, env_id: &str, env: &pb::Environment, failed: &Worker) -> Result<(), String> {
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
    fn worker(&self, env_id: &str, env: &pb::Environment) -> Result<Worker, String> {
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

/// One ParDo run in an SDK harness.
pub struct SdkDoFn {
    harnesses: Arc<SdkHarnesses>,
    /// The environment (id and proto) whose harness runs the bundles.
    env: (String, pb::Environment),
    descriptor_id: String,
    transform_id: String,
    input: Wire,
    /// Side inputs by tag: how their elements are encoded for the harness,
    /// and whether the harness reads them as a multimap (by key).
    sides: Vec<(String, Wire, bool)>,
    /// The side inputs, materialised by `prepare`, served over State.
    state: Mutex<Option<Arc<MemoryState>>>,
    /// (sink transform id, wire) per output, in the engine's output order.
    outputs: Vec<(String, Wire)>,
    /// The ParDo's timer families and their timer coders on the wire
    /// (empty for a DoFn without timers).
    timer_families: Vec<(String, Coder)>,
    /// The step processes restrictions of a splittable DoFn: it may
    /// checkpoint, and its residuals are processed again.
    resumes: bool,
}

/// Add a bundle's output batches to those so far.
fn append(all: &mut Vec<Batch>, batches: Vec<Batch>) {
    if all.is_empty() {
        *all = batches;
    } else {
        for (a, b) in all.iter_mut().zip(&batches) {
            a.extend_from(b);
        }
    }
}

/// A bundle input of residual applications' elements (encoded in the data
/// source's wire coder).
fn residual_input<'a>(apps: impl Iterator<Item = &'a fn_api::BundleApplication>) -> BundleInput {
    let mut input = BundleInput {
        transform_id: SOURCE.into(),
        ..BundleInput::default()
    };
    for app in apps {
        input.data.extend_from_slice(&app.element);
        input.element_ends.push(input.data.len());
    }
    input
}

/// The data source transform of every SDK bundle descriptor.
const SOURCE: &str = "wasmbeam-source";

/// Resolves once `cancel` is set (never without a flag).
async fn cancelled(cancel: Option<Arc<AtomicBool>>) {
    let Some(flag) = cancel else {
        return std::future::pending().await;
    };
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The longest wait honoured before a checkpointed restriction resumes.
const MAX_RESUME_DELAY: Duration = Duration::from_secs(10);

impl SdkDoFn {
    /// Build the descriptor of ParDo `transform_id` (outputs in `tags`
    /// order), register it, and start (or reuse) its environment's harness.
    pub fn new(
        harnesses: &Arc<SdkHarnesses>,
        components: &pb::Components,
        members: &[String],
        main_input: &str,
        exported: &[String],
        side_tags: &[String],
    ) -> Result<Self, String> {
        let transform_id = members
            .first()
            .ok_or("an SDK step needs at least one transform")?
            .as_str();
        let t = &components.transforms[transform_id];
        let env = components
            .environments
            .get(&t.environment_id)
            .ok_or_else(|| format!("unknown environment {:?}", t.environment_id))?;
        let endpoint = harnesses.server.endpoint();
        let mut d = fn_api::ProcessBundleDescriptor {
            id: format!("sdk-{transform_id}"),
            coders: components.coders.clone(),
            state_api_service_descriptor: Some(endpoint.clone()),
            ..Default::default()
        };
        d.environments.insert(t.environment_id.clone(), env.clone());
        let add_pc = |d: &mut fn_api::ProcessBundleDescriptor, id: &str| {
            if let Some(pc) = components.pcollections.get(id) {
                d.pcollections.insert(id.to_string(), pc.clone());
                if let Some(ws) = components
                    .windowing_strategies
                    .get(&pc.windowing_strategy_id)
                {
                    d.windowing_strategies
                        .insert(pc.windowing_strategy_id.clone(), ws.clone());
                }
            }
        };
        add_pc(&mut d, main_input);
        let input = wire(main_input, components, &mut d.coders)?;
        // A splittable DoFn's residuals come back encoded in its main
        // input's PCollection coder, and go out again on the data source:
        // both must be the wire coder.
        let resumes = t
            .spec
            .as_ref()
            .is_some_and(|s| s.urn == sdf_urns::PROCESS_SIZED_ELEMENTS_AND_RESTRICTIONS);
        if resumes {
            let id = wire_coder_id(&components.pcollections[main_input].coder_id, &mut d.coders)?;
            if let Some(pc) = d.pcollections.get_mut(main_input) {
                pc.coder_id = id;
            }
        }
        // Side inputs: the harness decodes them with their PCollection's
        // coder, so that coder is the wire one (unknown parts prefixed).
        let mut sides = Vec::new();
        for tag in side_tags {
            let pc_id = t
                .inputs
                .get(tag)
                .ok_or_else(|| format!("side input {tag:?} has no PCollection"))?;
            add_pc(&mut d, pc_id);
            let w = wire(pc_id, components, &mut d.coders)?;
            let on_wire = wire_coder_id(&components.pcollections[pc_id].coder_id, &mut d.coders)?;
            if let Some(pc) = d.pcollections.get_mut(pc_id) {
                pc.coder_id = on_wire;
            }
            let multimap = pb::ParDoPayload::decode(
                t.spec.as_ref().map(|s| s.payload.as_slice()).unwrap_or(&[]),
            )
            .ok()
            .and_then(|p| p.side_inputs.get(tag).cloned())
            .and_then(|si| si.access_pattern)
            .is_some_and(|a| a.urn == MULTIMAP_ACCESS);
            sides.push((tag.clone(), w, multimap));
        }
        let port = |coder_id: &str| {
            fn_api::RemoteGrpcPort {
                api_service_descriptor: Some(endpoint.clone()),
                coder_id: coder_id.into(),
            }
            .encode_to_vec()
        };
        let transform = |urn: &str,
                         payload: Vec<u8>,
                         inputs: Vec<(String, String)>,
                         outputs: Vec<(String, String)>| pb::PTransform {
            unique_name: urn.into(),
            spec: Some(pb::FunctionSpec {
                urn: urn.into(),
                payload,
            }),
            inputs: inputs.into_iter().collect(),
            outputs: outputs.into_iter().collect(),
            ..Default::default()
        };
        d.transforms.insert(
            SOURCE.into(),
            transform(
                "beam:runner:source:v1",
                port(&input.coder_id),
                vec![],
                vec![("out".into(), main_input.to_string())],
            ),
        );
        // Timers cross in their family's coder, with the key coder as on
        // the main input's wire (unknown coders length-prefixed), so the
        // runner can tell timers apart.
        let mut t = t.clone();
        let mut timer_families = Vec::new();
        if let Some(spec) = t.spec.as_mut().filter(|s| s.urn == primitives::PAR_DO) {
            let mut p = pb::ParDoPayload::decode(spec.payload.as_slice())
                .map_err(|e| format!("bad ParDoPayload: {e}"))?;
            if !p.timer_family_specs.is_empty() {
                d.timer_api_service_descriptor = Some(endpoint.clone());
            }
            let mut families: Vec<_> = p.timer_family_specs.iter_mut().collect();
            families.sort_by(|a, b| a.0.cmp(b.0));
            for (family, tf) in families {
                let id = wire_coder_id(&tf.timer_family_coder_id, &mut d.coders)?;
                let coder = coder_from_proto(&id, &d.coders)
                    .map_err(|e| format!("timer family {family}: {e}"))?;
                if !matches!(coder, Coder::Timer { .. }) {
                    return Err(format!(
                        "timer family {family}: its coder is {}, not beam:coder:timer:v1",
                        coder.urn()
                    ));
                }
                tf.timer_family_coder_id = id;
                timer_families.push((family.clone(), coder));
            }
            spec.payload = p.encode_to_vec();
        }
        let t = &t;
        d.transforms.insert(transform_id.to_string(), t.clone());
        // The rest of a fused step: transforms fed, through their main
        // input, from inside the step.
        for m in &members[1..] {
            let mt = components
                .transforms
                .get(m)
                .ok_or_else(|| format!("unknown transform {m}"))?;
            for pc in mt.inputs.values().chain(mt.outputs.values()) {
                add_pc(&mut d, pc);
            }
            d.transforms.insert(m.clone(), mt.clone());
        }
        for pc in t.outputs.values() {
            add_pc(&mut d, pc);
        }
        let mut outputs = Vec::new();
        for (i, pc) in exported.iter().enumerate() {
            add_pc(&mut d, pc);
            let w = wire(pc, components, &mut d.coders)?;
            let sink = format!("wasmbeam-sink-{i}");
            d.transforms.insert(
                sink.clone(),
                transform(
                    "beam:runner:sink:v1",
                    port(&w.coder_id),
                    vec![("in".into(), pc.clone())],
                    vec![],
                ),
            );
            outputs.push((sink, w));
        }
        harnesses.worker(&t.environment_id, env)?;
        let descriptor_id = d.id.clone();
        harnesses.server.register(d);
        Ok(SdkDoFn {
            harnesses: harnesses.clone(),
            env: (t.environment_id.clone(), env.clone()),
            descriptor_id,
            transform_id: transform_id.to_string(),
            input,
            sides,
            state: Mutex::default(),
            outputs,
            timer_families,
            resumes,
        })
    }

    /// After attempt `attempt` of a bundle failed with `e` on `worker`:
    /// replace the harness and return `Ok` to try again, or the error to
    /// fail with (out of attempts, cancelled, or `may_retry` false).
    fn retry_or_fail(
        &self,
        e: wasmbeam_fnapi::FnApiError,
        attempt: u32,
        may_retry: bool,
        worker: &Worker,
    ) -> OpResult<()> {
        let attempts = self.harnesses.attempts;
        if attempt >= attempts || self.cancelled() || !may_retry {
            let tries = if attempt > 1 {
                format!(" (attempt {attempt} of {attempts})")
            } else {
                String::new()
            };
            return Err(OpError::from(format!("{e}{tries}")));
        }
        tracing::warn!(
            "bundle of {} failed (attempt {attempt} of {attempts}); retrying on a fresh harness: {e}",
            self.transform_id
        );
        self.harnesses
            .replace(&self.env.0, &self.env.1, worker)
            .map_err(OpError::from)
    }

    /// Wait the shortest delay checkpointed `residuals` asked for (capped),
    /// unless the job is cancelled.
    fn wait_for_resume(&self, residuals: &[fn_api::DelayedBundleApplication]) -> OpResult<()> {
        let delay = residuals
            .iter()
            .filter_map(|r| r.requested_time_delay.as_ref())
            .map(|d| {
                Duration::from_secs(d.seconds.max(0) as u64)
                    + Duration::from_nanos(d.nanos.max(0) as u64)
            })
            .min()
            .unwrap_or_default()
            .min(MAX_RESUME_DELAY);
        let until = std::time::Instant::now() + delay;
        loop {
            if self.cancelled() {
                return Err(OpError::from("the job was cancelled"));
            }
            if std::time::Instant::now() >= until {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20).min(delay));
        }
    }

    fn cancelled(&self) -> bool {
        self.harnesses
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// True when the ParDo declares timer families.
    pub fn has_timers(&self) -> bool {
        !self.timer_families.is_empty()
    }

    /// Run one bundle in the harness, with `state` answering its state
    /// requests (the side inputs alone when `None`). A bundle that fails,
    /// or whose harness dies, is tried again on a fresh harness (up to the
    /// job's attempts); `before_retry` undoes what the failed attempt did
    /// (a keyed run restores its state), or says no retry may happen.
    fn bundle(
        &self,
        inputs: Vec<BundleInput>,
        state: Option<Arc<dyn StateProvider>>,
        before_retry: &mut dyn FnMut() -> bool,
    ) -> OpResult<wasmbeam_fnapi::BundleOutput> {
        self.bundle_tracked(inputs, state, before_retry, &|_, _| {})
    }

    /// [`SdkDoFn::bundle`], telling `on_start` the harness and instruction
    /// id of each attempt as it starts (to ask for splits).
    fn bundle_tracked(
        &self,
        inputs: Vec<BundleInput>,
        state: Option<Arc<dyn StateProvider>>,
        before_retry: &mut dyn FnMut() -> bool,
        on_start: &(dyn Fn(&Worker, &str) + Sync),
    ) -> OpResult<wasmbeam_fnapi::BundleOutput> {
        let state = state.or_else(|| {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .map(|s| s as Arc<dyn StateProvider>)
        });
        let mut attempt = 1;
        let out = loop {
            let worker = self.harnesses.worker(&self.env.0, &self.env.1)?;
            let cancel = self.harnesses.cancel.clone();
            let id = worker.new_instruction_id();
            on_start(&worker, &id);
            let result = self.harnesses.rt.block_on(async {
                let run = worker.process_bundle_as(
                    &id,
                    &self.descriptor_id,
                    inputs.clone(),
                    state.clone(),
                );
                tokio::select! {
                    r = run => Some(r),
                    () = cancelled(cancel) => None,
                }
            });
            // Cancelling the job abandons the bundle; the harness is
            // stopped with the job.
            let Some(result) = result else {
                return Err(OpError::from("the job was cancelled"));
            };
            match result {
                Ok(out) => break (out, worker),
                Err(e) => {
                    let may = before_retry();
                    self.retry_or_fail(e, attempt, may, &worker)?;
                    attempt += 1;
                }
            }
        };
        let (out, worker) = out;
        self.harnesses.metrics.merge(&out.response.monitoring_infos);
        // Batch commits a bundle's output as soon as it is back, so a
        // bundle that asks for finalization gets it right away.
        if out.response.requires_finalization {
            self.harnesses
                .rt
                .block_on(worker.finalize_bundle(&out.instruction_id))
                .map_err(OpError::new)?;
        }
        Ok(out)
    }

    /// A bundle's output data as one engine batch per output.
    fn batches(&self, out: &wasmbeam_fnapi::BundleOutput) -> OpResult<Vec<Batch>> {
        let mut batches = Vec::with_capacity(self.outputs.len());
        for (sink, w) in &self.outputs {
            let mut b = Batch::default();
            if let Some(bytes) = out.outputs.get(sink) {
                decode_into(bytes, w, &mut b)?;
            }
            batches.push(b);
        }
        Ok(batches)
    }

    /// The side inputs, as the harness will ask for them.
    fn side_state(&self) -> Option<Arc<MemoryState>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The engine bundle as windowed values on the wire.
    fn encode(&self, input: &Batch) -> Result<BundleInput, String> {
        let mut data = Vec::with_capacity(input.data.len() + input.len() * 16);
        let mut ends = Vec::with_capacity(input.len());
        for e in input.iter() {
            let value = self
                .input
                .element
                .decode(e.value, Context::Outer)
                .map_err(|err| format!("cannot decode an input element: {err}"))?;
            let windows = e
                .windows()
                .map(|w| {
                    if w.is_global() {
                        Value::GlobalWindow
                    } else {
                        Value::IntervalWindow(wasmbeam_coders::IntervalWindow {
                            start: w.start,
                            end: w.end,
                        })
                    }
                })
                .collect();
            let pane = PaneInfo::decode(&mut Reader::new(&[e.pane])).unwrap_or_default();
            let wv = Value::windowed(value, e.timestamp, windows, pane);
            self.input
                .windowed
                .encode(&wv, Context::Nested, &mut data)
                .map_err(|err| format!("cannot encode an input element for the harness: {err}"))?;
            ends.push(data.len());
        }
        Ok(BundleInput {
            transform_id: SOURCE.into(),
            timer_family: None,
            data,
            element_ends: ends,
        })
    }
}

impl SdkDoFn {
    /// Materialise the side inputs the way the harness asks for them:
    /// every element under (tag, window) for an iterable side input; for a
    /// multimap one, the keys under (tag, window) and each key's values
    /// under (tag, window, key). The harness maps a main input window to a
    /// side input window itself and asks for that one.
    fn load_side_inputs(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
        if side_inputs.is_empty() {
            return Ok(());
        }
        let mut values: HashMap<fn_api::StateKey, StateValue> = HashMap::new();
        let mut append = |key: fn_api::state_key::Type, bytes: &[u8]| {
            let v = values
                .entry(fn_api::StateKey { r#type: Some(key) })
                .or_default();
            v.data.extend_from_slice(bytes);
            v.element_ends.push(v.data.len());
        };
        for (tag, batch) in side_inputs {
            let (_, w, multimap) = self
                .sides
                .iter()
                .find(|(t, _, _)| *t == tag)
                .ok_or_else(|| format!("unknown side input {tag:?}"))?;
            let Coder::WindowedValue { value: on_wire, .. } = &w.windowed else {
                return Err("side input wire coder is not a windowed value".into());
            };
            let kv_coders = match (&**on_wire, multimap) {
                (Coder::Kv(k, v), true) => Some((k, v)),
                (_, true) => {
                    return Err(format!(
                        "side input {tag} is read as a multimap, but its elements are not KVs ({})",
                        on_wire.urn()
                    )
                    .into())
                }
                _ => None,
            };
            // Keys already listed, per window.
            let mut seen: std::collections::HashSet<(Vec<u8>, Vec<u8>)> = Default::default();
            let mut enc = Vec::new();
            let mut key_enc = Vec::new();
            for e in batch.iter() {
                let v = w
                    .element
                    .decode(e.value, Context::Outer)
                    .map_err(|err| format!("side input {tag}: cannot decode an element: {err}"))?;
                enc.clear();
                key_enc.clear();
                match (&kv_coders, &v) {
                    (Some((kc, vc)), Value::Kv(k, val)) => {
                        kc.encode(k, Context::Nested, &mut key_enc)
                            .and_then(|()| vc.encode(val, Context::Nested, &mut enc))
                            .map_err(|err| {
                                format!("side input {tag}: cannot encode an element: {err}")
                            })?;
                    }
                    _ => on_wire
                        .encode(&v, Context::Nested, &mut enc)
                        .map_err(|err| {
                            format!("side input {tag}: cannot encode an element: {err}")
                        })?,
                }
                for win in e.windows() {
                    let mut window = Vec::new();
                    if !win.is_global() {
                        wasmbeam_coders::encode_interval_window(
                            &wasmbeam_coders::IntervalWindow {
                                start: win.start,
                                end: win.end,
                            },
                            &mut window,
                        );
                    }
                    use fn_api::state_key::{
                        IterableSideInput, MultimapKeysSideInput, MultimapSideInput, Type,
                    };
                    if kv_coders.is_none() {
                        append(
                            Type::IterableSideInput(IterableSideInput {
                                transform_id: self.transform_id.clone(),
                                side_input_id: tag.clone(),
                                window,
                            }),
                            &enc,
                        );
                        continue;
                    }
                    if seen.insert((window.clone(), key_enc.clone())) {
                        append(
                            Type::MultimapKeysSideInput(MultimapKeysSideInput {
                                transform_id: self.transform_id.clone(),
                                side_input_id: tag.clone(),
                                window: window.clone(),
                            }),
                            &key_enc,
                        );
                    }
                    append(
                        Type::MultimapSideInput(MultimapSideInput {
                            transform_id: self.transform_id.clone(),
                            side_input_id: tag.clone(),
                            window,
                            key: key_enc.clone(),
                        }),
                        &enc,
                    );
                }
            }
        }
        let state = MemoryState::default();
        for (key, value) in values {
            state.put(&key, value);
        }
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(state));
        Ok(())
    }
}

impl DoFnExec for SdkDoFn {
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
        self.load_side_inputs(side_inputs)
    }

    fn process_into(
        &self,
        input: Batch,
        outputs: usize,
        emit: &mut dyn FnMut(usize, Batch) -> OpResult<()>,
    ) -> OpResult<()> {
        if self.resumes && self.harnesses.parallelism > 1 {
            // Splits over several harnesses: whole bundles (see `split.rs`).
            for (i, b) in self.process(input)?.into_iter().enumerate().take(outputs) {
                emit(i, b)?;
            }
            return Ok(());
        }
        let mut next = self.encode(&input)?;
        loop {
            let response = self.stream_bundle(next, emit)?;
            let residuals = &response.residual_roots;
            if !self.resumes || residuals.is_empty() {
                return Ok(());
            }
            // A checkpointed restriction resumes once its delay has passed.
            self.wait_for_resume(residuals)?;
            next = residual_input(residuals.iter().filter_map(|r| r.application.as_ref()));
        }
    }

    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let first = self.encode(&input)?;
        if self.resumes && self.harnesses.parallelism > 1 {
            return self.process_splitting(first);
        }
        let mut inputs = vec![first];
        let mut all: Vec<Batch> = Vec::new();
        loop {
            let out = self.bundle(inputs, None, &mut || true)?;
            append(&mut all, self.batches(&out)?);
            let residuals = &out.response.residual_roots;
            if !self.resumes || residuals.is_empty() {
                return Ok(all);
            }
            // The rest of each checkpointed restriction is new input, once
            // the delay the DoFn asked for has passed.
            self.wait_for_resume(residuals)?;
            inputs = vec![residual_input(
                residuals.iter().filter_map(|r| r.application.as_ref()),
            )];
        }
    }
}
