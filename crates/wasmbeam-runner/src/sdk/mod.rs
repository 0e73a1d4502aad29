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
pub use harnesses::{HarnessSettings, SdkHarnesses, BUILTIN_PYTHON_COMMAND};
pub use keyed::SdkStatefulDoFn;
pub(crate) use sdf::expand_pipeline as expand_splittable;
pub(crate) use steps::{side_tags, steps, Transform};
pub(crate) use transcode::transcode_step;
mod coding;
mod fusion;
mod harnesses;
mod sdf;
mod sides;
mod split;
mod steps;
mod stream;
mod transcode;

use coding::{decode_into, wire, wire_coder_id, Wire};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use wasmbeam_coders::{coder_from_proto, Coder, Context, PaneInfo, Value};
use wasmbeam_engine::{emit_batches, Batch, DoFnExec, OpError, OpResult};
use wasmbeam_fnapi::{BundleInput, MemoryState, StateProvider, Worker};
use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_p_transforms::primitives;
use wasmbeam_proto::urns::standard_p_transforms::splittable_par_do_components as sdf_urns;

/// The access pattern of a side input read by key.
const MULTIMAP_ACCESS: &str = "beam:side_input:multimap:v1";

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
        self.bundle_succeeded(&worker, &out)?;
        Ok(out)
    }

    /// What follows every successful bundle: its metrics join the job's,
    /// and, since batch commits a bundle's output as soon as it is back, a
    /// bundle that asks for finalization gets it right away.
    fn bundle_succeeded(
        &self,
        worker: &Worker,
        out: &wasmbeam_fnapi::BundleOutput,
    ) -> OpResult<()> {
        self.harnesses.metrics.merge(&out.response.monitoring_infos);
        if out.response.requires_finalization {
            self.harnesses
                .rt
                .block_on(worker.finalize_bundle(&out.instruction_id))
                .map_err(OpError::new)?;
        }
        Ok(())
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
        let mut data = Vec::with_capacity(input.values.data.len() + input.len() * 16);
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
            let pane = PaneInfo::from_parts(e.pane, e.pane_indexes[0], e.pane_indexes[1]);
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
        let mut next = self.encode(&input)?;
        if self.resumes && self.harnesses.parallelism > 1 {
            // Splits over several harnesses: whole bundles (see `split.rs`).
            return emit_batches(self.process_splitting(next)?, outputs, emit);
        }
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
        let mut outs = vec![Batch::default(); self.outputs.len()];
        self.process_into(input, outs.len(), &mut |i, b| {
            outs[i].extend_from(&b);
            Ok(())
        })?;
        Ok(outs)
    }
}
