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
//! Not yet: fusing consecutive SDK ParDos into one descriptor, several
//! harnesses per environment, side inputs, state and timers, splittable
//! DoFns, and bundle retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use wasmbeam_coders::{coder_from_proto, Coder, Context, PaneInfo, Reader, Value};
use wasmbeam_engine::{Batch, DoFnExec, OpError, OpResult, Window};
use wasmbeam_fnapi::{
    BundleInput, Endpoints, ExternalWorkerPool, FnApiServer, MemoryState, ProcessWorker,
    StateProvider, StateValue, Worker,
};
use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_environments::environments;
use wasmbeam_proto::urns::standard_p_transforms::primitives;

/// How long a harness may take to connect after it was started.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

enum Started {
    Pool(ExternalWorkerPool, String),
    /// Kept only to be killed when dropped.
    Process {
        _worker: ProcessWorker,
    },
}

/// The Fn API server and SDK harnesses of one job.
pub struct SdkHarnesses {
    rt: tokio::runtime::Runtime,
    server: FnApiServer,
    workers: Mutex<HashMap<String, Worker>>,
    started: Mutex<Vec<Started>>,
}

impl SdkHarnesses {
    /// Start the Fn API server (no harness yet).
    pub fn new() -> Result<Self, String> {
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
            server,
            workers: Mutex::default(),
            started: Mutex::default(),
        })
    }

    /// The harness of environment `env_id`, started on first use.
    fn worker(&self, env_id: &str, env: &pb::Environment) -> Result<Worker, String> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = workers.get(env_id) {
            return Ok(w.clone());
        }
        let worker_id = format!("wasmbeam-{}-{}", std::process::id(), workers.len() + 1);
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
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(started);
        let w = self
            .rt
            .block_on(self.server.worker(&worker_id, CONNECT_TIMEOUT))
            .map_err(|e| format!("environment {env_id}: {e}"))?;
        workers.insert(env_id.to_string(), w.clone());
        Ok(w)
    }
}

impl Drop for SdkHarnesses {
    fn drop(&mut self) {
        let started = std::mem::take(&mut *self.started.lock().unwrap_or_else(|p| p.into_inner()));
        for s in started {
            if let Started::Pool(mut pool, id) = s {
                let stop = pool.stop_worker(&id);
                let server = &self.server;
                self.rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(5), stop).await;
                    // Let the harness hang up first, so it does not see the
                    // server vanish under its open streams.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
                    while server.is_connected(&id) && tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
            }
            // Process workers are killed when dropped here.
        }
    }
}

/// How a PCollection's elements cross the Fn API: its coder, with every
/// coder the runner does not know wrapped in `length_prefix` (keys and
/// values of a KV separately, so the runner can still group by key).
#[derive(Clone)]
struct Wire {
    /// The runner's view of the element coder (unknown parts opaque).
    element: Coder,
    /// The windowed-value coder on the wire.
    windowed: Coder,
    /// The wire coder's id in the descriptor.
    coder_id: String,
}

fn is_known(c: &Coder) -> bool {
    !matches!(c, Coder::Opaque { .. }) && c.components().into_iter().all(is_known)
}

/// The id of coder `id` with its unknown parts length-prefixed, adding the
/// coders that takes to `coders`.
fn wire_coder_id(id: &str, coders: &mut HashMap<String, pb::Coder>) -> Result<String, String> {
    let c = coder_from_proto(id, coders).map_err(|e| e.to_string())?;
    if is_known(&c) {
        return Ok(id.to_string());
    }
    let proto = coders[id].clone();
    if matches!(c, Coder::Opaque { .. }) {
        let lp = format!("wasmbeam-lp-{id}");
        coders.insert(
            lp.clone(),
            pb::Coder {
                spec: Some(pb::FunctionSpec {
                    urn: "beam:coder:length_prefix:v1".into(),
                    payload: vec![],
                }),
                component_coder_ids: vec![id.to_string()],
            },
        );
        return Ok(lp);
    }
    let mut parts = Vec::with_capacity(proto.component_coder_ids.len());
    for part in &proto.component_coder_ids {
        parts.push(wire_coder_id(part, coders)?);
    }
    let w = format!("wasmbeam-w-{id}");
    coders.insert(
        w.clone(),
        pb::Coder {
            spec: proto.spec,
            component_coder_ids: parts,
        },
    );
    Ok(w)
}

/// Add the wire coder of PCollection `pc_id` to `coders`.
fn wire(
    pc_id: &str,
    c: &pb::Components,
    coders: &mut HashMap<String, pb::Coder>,
) -> Result<Wire, String> {
    let pc = c
        .pcollections
        .get(pc_id)
        .ok_or_else(|| format!("unknown PCollection {pc_id}"))?;
    let ws = c
        .windowing_strategies
        .get(&pc.windowing_strategy_id)
        .ok_or_else(|| format!("PCollection {pc_id}: unknown windowing strategy"))?;
    let element = coder_from_proto(&pc.coder_id, coders).map_err(|e| e.to_string())?;
    let element_id = wire_coder_id(&pc.coder_id, coders)?;
    let window_id = wire_coder_id(&ws.window_coder_id, coders)?;
    let on_wire = coder_from_proto(&element_id, coders).map_err(|e| e.to_string())?;
    let window = coder_from_proto(&window_id, coders).map_err(|e| e.to_string())?;
    let coder_id = format!("wasmbeam-wire-{pc_id}");
    coders.insert(
        coder_id.clone(),
        pb::Coder {
            spec: Some(pb::FunctionSpec {
                urn: "beam:coder:windowed_value:v1".into(),
                payload: vec![],
            }),
            component_coder_ids: vec![element_id, window_id],
        },
    );
    let windowed = Coder::WindowedValue {
        value: Box::new(on_wire),
        window: Box::new(window),
    };
    Ok(Wire {
        element,
        windowed,
        coder_id,
    })
}

/// The output PCollection of a Flatten that consumes `pc`, if one does.
fn flatten_output_of<'a>(c: &'a pb::Components, pc: &str) -> Option<&'a str> {
    c.transforms.values().find_map(|t| {
        let is_flatten = t.subtransforms.is_empty()
            && t.spec
                .as_ref()
                .is_some_and(|s| s.urn == primitives::FLATTEN);
        if is_flatten && t.inputs.values().any(|i| i == pc) {
            t.outputs.values().next().map(String::as_str)
        } else {
            None
        }
    })
}

/// One ParDo run in an SDK harness.
pub struct SdkDoFn {
    harnesses: Arc<SdkHarnesses>,
    worker: Worker,
    descriptor_id: String,
    transform_id: String,
    input: Wire,
    /// Side inputs by tag: how their elements are encoded for the harness.
    sides: Vec<(String, Wire)>,
    /// The side inputs, materialised by `prepare`, served over State.
    state: Mutex<Option<Arc<MemoryState>>>,
    /// (sink transform id, wire) per output, in the engine's output order.
    outputs: Vec<(String, Wire)>,
}

impl SdkDoFn {
    /// Build the descriptor of ParDo `transform_id` (outputs in `tags`
    /// order), register it, and start (or reuse) its environment's harness.
    pub fn new(
        harnesses: &Arc<SdkHarnesses>,
        components: &pb::Components,
        transform_id: &str,
        main_input: &str,
        tags: &[String],
        side_tags: &[String],
    ) -> Result<Self, String> {
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
            sides.push((tag.clone(), w));
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
            "wasmbeam-source".into(),
            transform(
                "beam:runner:source:v1",
                port(&input.coder_id),
                vec![],
                vec![("out".into(), main_input.to_string())],
            ),
        );
        d.transforms.insert(transform_id.to_string(), t.clone());
        let mut outputs = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            let pc = t
                .outputs
                .get(tag)
                .ok_or_else(|| format!("output {tag:?} has no PCollection"))?;
            add_pc(&mut d, pc);
            // Output that a Flatten consumes crosses in the Flatten's output
            // coder, so every input of the Flatten arrives in one encoding
            // (its inputs may have other coders that only the SDK can
            // translate, such as pickled ones).
            let coder_pc = flatten_output_of(components, pc).unwrap_or(pc.as_str());
            let w = wire(coder_pc, components, &mut d.coders)?;
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
        let worker = harnesses.worker(&t.environment_id, env)?;
        let descriptor_id = d.id.clone();
        harnesses.server.register(d);
        Ok(SdkDoFn {
            harnesses: harnesses.clone(),
            worker,
            descriptor_id,
            transform_id: transform_id.to_string(),
            input,
            sides,
            state: Mutex::default(),
            outputs,
        })
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
            transform_id: "wasmbeam-source".into(),
            data,
            element_ends: ends,
        })
    }
}

fn decode_into(bytes: &[u8], wire: &Wire, out: &mut Batch) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    let mut buf = Vec::new();
    while !r.is_empty() {
        let v = wire
            .windowed
            .decode_from(&mut r, Context::Nested)
            .map_err(|e| format!("cannot decode the harness's output: {e}"))?;
        let Value::WindowedValue(w) = v else {
            return Err("the harness's output is not a windowed value".into());
        };
        buf.clear();
        wire.element
            .encode(&w.value, Context::Outer, &mut buf)
            .map_err(|e| format!("cannot re-encode the harness's output: {e}"))?;
        let windows: Vec<Window> = w
            .windows
            .iter()
            .map(|win| match win {
                Value::IntervalWindow(iw) => Window {
                    start: iw.start,
                    end: iw.end,
                },
                _ => Window::GLOBAL,
            })
            .collect();
        let pane = w.pane.to_bytes().first().copied().unwrap_or(0x0f);
        out.push(&buf, w.timestamp, windows, pane);
    }
    Ok(())
}

impl DoFnExec for SdkDoFn {
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
        if side_inputs.is_empty() {
            return Ok(());
        }
        // Every side input element, under (tag, window), encoded for the
        // harness; the harness maps a main input window to a side input
        // window itself and asks for that one.
        let mut values: HashMap<(String, Vec<u8>), Vec<u8>> = HashMap::new();
        let mut ends: HashMap<(String, Vec<u8>), Vec<usize>> = HashMap::new();
        for (tag, batch) in side_inputs {
            let (_, w) = self
                .sides
                .iter()
                .find(|(t, _)| *t == tag)
                .ok_or_else(|| format!("unknown side input {tag:?}"))?;
            let Coder::WindowedValue { value: on_wire, .. } = &w.windowed else {
                return Err("side input wire coder is not a windowed value".into());
            };
            for e in batch.iter() {
                let v = w
                    .element
                    .decode(e.value, Context::Outer)
                    .map_err(|err| format!("side input {tag}: cannot decode an element: {err}"))?;
                let mut enc = Vec::new();
                on_wire
                    .encode(&v, Context::Nested, &mut enc)
                    .map_err(|err| format!("side input {tag}: cannot encode an element: {err}"))?;
                for win in e.windows() {
                    let mut key = Vec::new();
                    if !win.is_global() {
                        wasmbeam_coders::encode_interval_window(
                            &wasmbeam_coders::IntervalWindow {
                                start: win.start,
                                end: win.end,
                            },
                            &mut key,
                        );
                    }
                    let k = (tag.clone(), key);
                    let data = values.entry(k.clone()).or_default();
                    data.extend_from_slice(&enc);
                    ends.entry(k).or_default().push(data.len());
                }
            }
        }
        let state = MemoryState::default();
        for ((tag, window), data) in values {
            let element_ends = ends
                .remove(&(tag.clone(), window.clone()))
                .unwrap_or_default();
            let key = fn_api::StateKey {
                r#type: Some(fn_api::state_key::Type::IterableSideInput(
                    fn_api::state_key::IterableSideInput {
                        transform_id: self.transform_id.clone(),
                        side_input_id: tag,
                        window,
                    },
                )),
            };
            state.put(&key, StateValue { data, element_ends });
        }
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(state));
        Ok(())
    }

    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let bundle = self.encode(&input)?;
        let state = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|s| s as Arc<dyn StateProvider>);
        let out = self
            .harnesses
            .rt
            .block_on(self.worker.process_bundle_with_state(
                &self.descriptor_id,
                vec![bundle],
                state,
            ))
            .map_err(OpError::new)?;
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
}
