//! The Fn API server (its shared state, start-up and registrations) and the
//! per-worker handle that runs bundles. The gRPC services are in
//! `services.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::Status;

use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::fn_execution::v1::beam_fn_control_server::BeamFnControlServer;
use wasmbeam_proto::fn_execution::v1::beam_fn_data_server::BeamFnDataServer;
use wasmbeam_proto::fn_execution::v1::beam_fn_logging_server::BeamFnLoggingServer;
use wasmbeam_proto::fn_execution::v1::beam_fn_state_server::BeamFnStateServer;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::prost::Message;

use crate::services::Services;
use crate::state::StateProvider;
use crate::DATA_CHUNK_BYTES;

/// The URN of a runner-side data sink inside a bundle descriptor.
const DATA_SINK: &str = "beam:runner:sink:v1";
/// The ParDo URN, whose payload declares timer families.
const PAR_DO: &str = "beam:transform:pardo:v1";

/// Why talking to a harness failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FnApiError {
    /// The server could not start.
    #[error("cannot start the Fn API server: {0}")]
    Start(String),
    /// No harness with this id connected in time.
    #[error("SDK harness {worker:?} did not connect its control and data streams within {waited:?}; check that it started and can reach {endpoint}")]
    NoWorker {
        /// The worker id waited for.
        worker: String,
        /// How long.
        waited: Duration,
        /// The endpoint it was given.
        endpoint: String,
    },
    /// The harness went away mid-instruction.
    #[error("SDK harness {worker:?} disconnected during instruction {instruction} ({what})")]
    Disconnected {
        /// The worker id.
        worker: String,
        /// The instruction in progress.
        instruction: String,
        /// What was being waited for.
        what: String,
    },
    /// The harness answered with an error: its own text.
    #[error("SDK harness {worker:?} failed instruction {instruction}: {error}")]
    Harness {
        /// The worker id.
        worker: String,
        /// The instruction.
        instruction: String,
        /// The harness's error (for Python, the traceback).
        error: String,
    },
    /// The bundle referred to a descriptor that was never registered.
    #[error("no process bundle descriptor {0:?} is registered")]
    UnknownDescriptor(String),
}

/// One log line from a harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Beam's severity enum value.
    pub severity: i32,
    /// The message, with the trace when there is one.
    pub message: String,
    /// The transform the line came from, when known.
    pub transform_id: String,
}

/// A bundle's input for one data source transform, or the timers to fire
/// for one timer family of a transform.
#[derive(Debug, Clone, Default)]
pub struct BundleInput {
    /// The data source transform (`beam:runner:source:v1`) it feeds; for
    /// timers, the ParDo that declared the timer family.
    pub transform_id: String,
    /// For timers: the timer family; they go out as `Elements.Timers`.
    /// Families a bundle gets no timers for are closed empty, as harnesses
    /// wait for every family of the descriptor.
    pub timer_family: Option<String>,
    /// The elements, encoded with the source's wire coder (nested), back
    /// to back.
    pub data: Vec<u8>,
    /// The end offset of every element in `data`, ascending: messages are
    /// cut only there, since harnesses decode each message on its own.
    pub element_ends: Vec<usize>,
}

/// What one bundle produced.
#[derive(Debug, Clone, Default)]
pub struct BundleOutput {
    /// Encoded output for each data sink transform, by transform id: the
    /// concatenated elements, encoded with the sink's wire coder.
    pub outputs: HashMap<String, Vec<u8>>,
    /// Timers the harness set or cleared, by (transform id, timer family):
    /// concatenated, encoded with the family's timer coder.
    pub timers: HashMap<(String, String), Vec<u8>>,
    /// The harness's response (metrics, residual roots, ...).
    pub response: fn_api::ProcessBundleResponse,
    /// The bundle's instruction id (to finalize it).
    pub instruction_id: String,
}

/// Inbound data of one bundle.
#[derive(Default)]
pub(crate) struct Inbound {
    pub(crate) data: HashMap<String, Vec<u8>>,
    pub(crate) done: HashSet<String>,
    pub(crate) timers: HashMap<(String, String), Vec<u8>>,
    pub(crate) timers_done: HashSet<(String, String)>,
    /// Where sink data goes as it arrives, instead of being kept.
    pub(crate) stream: Option<mpsc::Sender<(String, Vec<u8>)>>,
}

pub(crate) struct WorkerConn {
    /// The outbound control stream; taken (closing the stream) once the
    /// harness hangs up, so its reader ends cleanly too.
    pub(crate) requests:
        Mutex<Option<mpsc::UnboundedSender<Result<fn_api::InstructionRequest, Status>>>>,
    pub(crate) pending: Mutex<HashMap<String, oneshot::Sender<fn_api::InstructionResponse>>>,
}

impl WorkerConn {
    pub(crate) fn is_open(&self) -> bool {
        lock(&self.requests)
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }
}

pub(crate) struct Shared {
    pub(crate) descriptors: Mutex<HashMap<String, Descriptor>>,
    pub(crate) control: Mutex<HashMap<String, Arc<WorkerConn>>>,
    pub(crate) data_out:
        Mutex<HashMap<String, mpsc::UnboundedSender<Result<fn_api::Elements, Status>>>>,
    /// Inbound data by instruction id, and a wake-up for its bundle.
    pub(crate) inbound: Mutex<HashMap<String, (Inbound, Arc<Notify>)>>,
    /// State of running bundles, by instruction id.
    pub(crate) states: Mutex<HashMap<String, Arc<dyn StateProvider>>>,
    pub(crate) logs: Mutex<HashMap<String, VecDeque<LogLine>>>,
    pub(crate) arrived: Notify,
    pub(crate) next_instruction: AtomicU64,
}

/// A registered descriptor, its data sink transforms and its timer
/// families (transform id, family id).
pub(crate) struct Descriptor {
    pub(crate) proto: fn_api::ProcessBundleDescriptor,
    pub(crate) sinks: Vec<String>,
    pub(crate) timer_families: Vec<(String, String)>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running Fn API server. Dropping it stops the server.
pub struct FnApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl FnApiServer {
    /// Bind `127.0.0.1:0` (or `addr`) and serve. Must be called inside a
    /// tokio runtime.
    pub async fn start(addr: Option<SocketAddr>) -> Result<Self, FnApiError> {
        let addr = addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| FnApiError::Start(format!("cannot bind {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| FnApiError::Start(e.to_string()))?;
        let shared = Arc::new(Shared {
            descriptors: Mutex::default(),
            control: Mutex::default(),
            data_out: Mutex::default(),
            inbound: Mutex::default(),
            states: Mutex::default(),
            logs: Mutex::default(),
            arrived: Notify::new(),
            next_instruction: AtomicU64::new(1),
        });
        let svc = Services::new(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let max = 64 << 20;
        tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .add_service(
                    BeamFnControlServer::new(svc.clone())
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    BeamFnDataServer::new(svc.clone())
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    BeamFnStateServer::new(svc.clone())
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .add_service(
                    BeamFnLoggingServer::new(svc)
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!("Fn API server: {e}");
            }
        });
        Ok(FnApiServer {
            shared,
            addr,
            _stop: stop,
        })
    }

    /// The address harnesses connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint as Beam's `ApiServiceDescriptor`.
    pub fn endpoint(&self) -> pb::ApiServiceDescriptor {
        pb::ApiServiceDescriptor {
            url: self.addr.to_string(),
            authentication: None,
        }
    }

    /// Make a descriptor available to harnesses (by its id).
    pub fn register(&self, d: fn_api::ProcessBundleDescriptor) {
        let mut sinks: Vec<String> = d
            .transforms
            .iter()
            .filter(|(_, t)| t.spec.as_ref().is_some_and(|s| s.urn == DATA_SINK))
            .map(|(id, _)| id.clone())
            .collect();
        sinks.sort();
        let mut timer_families = Vec::new();
        for (id, t) in &d.transforms {
            let Some(spec) = t.spec.as_ref().filter(|s| s.urn == PAR_DO) else {
                continue;
            };
            if let Ok(p) = pb::ParDoPayload::decode(spec.payload.as_slice()) {
                timer_families.extend(p.timer_family_specs.into_keys().map(|f| (id.clone(), f)));
            }
        }
        timer_families.sort();
        lock(&self.shared.descriptors).insert(
            d.id.clone(),
            Descriptor {
                proto: d,
                sinks,
                timer_families,
            },
        );
    }

    /// Wait until harness `id` has connected its control stream. (Its
    /// data stream follows with its first bundle: harnesses open it to the
    /// address in the descriptor's data ports.)
    pub async fn worker(&self, id: &str, timeout: Duration) -> Result<Worker, FnApiError> {
        let wait = async {
            loop {
                let notified = self.shared.arrived.notified();
                if let Some(conn) = lock(&self.shared.control).get(id).cloned() {
                    return Worker {
                        id: id.to_string(),
                        shared: self.shared.clone(),
                        conn,
                    };
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| FnApiError::NoWorker {
                worker: id.to_string(),
                waited: timeout,
                endpoint: self.addr.to_string(),
            })
    }

    /// True while harness `id` has its control or data stream open.
    pub fn is_connected(&self, id: &str) -> bool {
        lock(&self.shared.control)
            .get(id)
            .is_some_and(|c| c.is_open())
            || lock(&self.shared.data_out).contains_key(id)
    }

    /// The log lines harness `id` sent so far (the newest [`LOG_LINES_KEPT`]).
    pub fn logs(&self, id: &str) -> Vec<LogLine> {
        lock(&self.shared.logs)
            .get(id)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A connected SDK harness.
#[derive(Clone)]
pub struct Worker {
    id: String,
    shared: Arc<Shared>,
    conn: Arc<WorkerConn>,
}

impl Worker {
    /// The worker id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn next_id(&self) -> String {
        format!(
            "wb-{}",
            self.shared.next_instruction.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn gone(&self, instruction_id: &str, what: &str) -> FnApiError {
        FnApiError::Disconnected {
            worker: self.id.clone(),
            instruction: instruction_id.to_string(),
            what: what.into(),
        }
    }

    /// Send one instruction; the receiver yields its response.
    fn send(
        &self,
        instruction_id: &str,
        request: fn_api::instruction_request::Request,
    ) -> Result<oneshot::Receiver<fn_api::InstructionResponse>, FnApiError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.conn.pending).insert(instruction_id.to_string(), tx);
        let request = Ok(fn_api::InstructionRequest {
            instruction_id: instruction_id.to_string(),
            request: Some(request),
        });
        let sent = match lock(&self.conn.requests).as_ref() {
            Some(tx) => tx.send(request).is_ok(),
            None => false,
        };
        if !sent {
            lock(&self.conn.pending).remove(instruction_id);
            return Err(self.gone(instruction_id, "sending the instruction"));
        }
        Ok(rx)
    }

    /// A response, or the harness's error.
    fn answered(
        &self,
        instruction_id: &str,
        resp: Result<fn_api::InstructionResponse, oneshot::error::RecvError>,
    ) -> Result<fn_api::InstructionResponse, FnApiError> {
        let resp = resp.map_err(|_| self.gone(instruction_id, "waiting for the response"))?;
        if !resp.error.is_empty() {
            return Err(FnApiError::Harness {
                worker: self.id.clone(),
                instruction: instruction_id.to_string(),
                error: resp.error,
            });
        }
        Ok(resp)
    }

    /// The worker's data stream, once it has connected (or `None` while the
    /// control stream is still open but data has not come).
    fn data_stream(&self) -> Option<mpsc::UnboundedSender<Result<fn_api::Elements, Status>>> {
        lock(&self.shared.data_out)
            .get(&self.id)
            .filter(|t| !t.is_closed())
            .cloned()
    }

    /// Ask the harness to split running bundle `instruction_id` at
    /// `fraction` of the remainder of what data source `transform_id`
    /// delivers (it holds `elements` elements). The answer names the
    /// residual: elements the bundle will not process and, for a splittable
    /// DoFn, the rest of the restriction in progress. An empty answer means
    /// no split was possible (yet).
    pub async fn split(
        &self,
        instruction_id: &str,
        transform_id: &str,
        fraction: f64,
        elements: i64,
    ) -> Result<fn_api::ProcessBundleSplitResponse, FnApiError> {
        let id = self.next_id();
        let rx = self.send(
            &id,
            fn_api::instruction_request::Request::ProcessBundleSplit(
                fn_api::ProcessBundleSplitRequest {
                    instruction_id: instruction_id.to_string(),
                    desired_splits: [(
                        transform_id.to_string(),
                        fn_api::process_bundle_split_request::DesiredSplit {
                            fraction_of_remainder: fraction,
                            allowed_split_points: vec![],
                            estimated_input_elements: elements,
                        },
                    )]
                    .into(),
                },
            ),
        )?;
        let resp = self.answered(&id, rx.await)?;
        Ok(match resp.response {
            Some(fn_api::instruction_response::Response::ProcessBundleSplit(r)) => r,
            _ => Default::default(),
        })
    }

    /// Finalize bundle `instruction_id` once its output is committed (the
    /// harness asked for it with `requires_finalization`).
    pub async fn finalize_bundle(&self, instruction_id: &str) -> Result<(), FnApiError> {
        let id = self.next_id();
        let rx = self.send(
            &id,
            fn_api::instruction_request::Request::FinalizeBundle(fn_api::FinalizeBundleRequest {
                instruction_id: instruction_id.to_string(),
            }),
        )?;
        self.answered(&id, rx.await).map(|_| ())
    }

    /// Run one bundle of descriptor `descriptor_id` without state: `inputs`
    /// holds the encoded elements for each data source transform.
    pub async fn process_bundle(
        &self,
        descriptor_id: &str,
        inputs: Vec<BundleInput>,
    ) -> Result<BundleOutput, FnApiError> {
        self.process_bundle_with_state(descriptor_id, inputs, None)
            .await
    }

    /// Run one bundle whose side inputs and user state are answered by
    /// `state` (the descriptor must name this server as its state
    /// endpoint).
    pub async fn process_bundle_with_state(
        &self,
        descriptor_id: &str,
        inputs: Vec<BundleInput>,
        state: Option<Arc<dyn StateProvider>>,
    ) -> Result<BundleOutput, FnApiError> {
        let id = self.new_instruction_id();
        self.process_bundle_as(&id, descriptor_id, inputs, state)
            .await
    }

    /// A fresh instruction id, for [`Worker::process_bundle_as`].
    pub fn new_instruction_id(&self) -> String {
        self.next_id()
    }

    /// [`Worker::process_bundle_with_state`] under a given instruction id
    /// (from [`Worker::new_instruction_id`]), so that the caller can ask
    /// for splits of the bundle while it runs.
    pub async fn process_bundle_as(
        &self,
        instruction_id: &str,
        descriptor_id: &str,
        inputs: Vec<BundleInput>,
        state: Option<Arc<dyn StateProvider>>,
    ) -> Result<BundleOutput, FnApiError> {
        self.process_bundle_streaming(instruction_id, descriptor_id, inputs, state, None)
            .await
    }

    /// [`Worker::process_bundle_as`], sending each part of the sinks' data
    /// to `stream` as (sink transform id, encoded elements) while it
    /// arrives; the returned [`BundleOutput::outputs`] is then empty. A
    /// bounded `stream` that fills up holds the harness back.
    pub async fn process_bundle_streaming(
        &self,
        instruction_id: &str,
        descriptor_id: &str,
        inputs: Vec<BundleInput>,
        state: Option<Arc<dyn StateProvider>>,
        stream: Option<mpsc::Sender<(String, Vec<u8>)>>,
    ) -> Result<BundleOutput, FnApiError> {
        let (sinks, families) = lock(&self.shared.descriptors)
            .get(descriptor_id)
            .map(|d| (d.sinks.clone(), d.timer_families.clone()))
            .ok_or_else(|| FnApiError::UnknownDescriptor(descriptor_id.to_string()))?;
        let instruction_id = instruction_id.to_string();
        let wake = Arc::new(Notify::new());
        let inbound = Inbound {
            stream,
            ..Inbound::default()
        };
        lock(&self.shared.inbound).insert(instruction_id.clone(), (inbound, wake.clone()));
        if let Some(state) = state {
            lock(&self.shared.states).insert(instruction_id.clone(), state);
        }
        let result = self
            .run_bundle(
                &instruction_id,
                descriptor_id,
                inputs,
                (&sinks, &families),
                &wake,
            )
            .await;
        lock(&self.shared.inbound).remove(&instruction_id);
        lock(&self.shared.states).remove(&instruction_id);
        result
    }

    async fn run_bundle(
        &self,
        instruction_id: &str,
        descriptor_id: &str,
        inputs: Vec<BundleInput>,
        (sinks, families): (&[String], &[(String, String)]),
        wake: &Notify,
    ) -> Result<BundleOutput, FnApiError> {
        let mut response = self.send(
            instruction_id,
            fn_api::instruction_request::Request::ProcessBundle(fn_api::ProcessBundleRequest {
                process_bundle_descriptor_id: descriptor_id.to_string(),
                ..Default::default()
            }),
        )?;
        // The harness opens its data stream when it first needs it; wait
        // for it, unless the instruction ends first (an error, or a harness
        // that went away).
        let mut early = None;
        let data = loop {
            let notified = self.shared.arrived.notified();
            if let Some(d) = self.data_stream() {
                break Some(d);
            }
            tokio::select! {
                r = &mut response => { early = Some(r); break None; }
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if !self.conn.is_open() {
                        return Err(self.gone(instruction_id, "waiting for its data stream"));
                    }
                }
            }
        };
        if let Some(data) = &data {
            // Payload first; `is_last` goes in an entry of its own, as
            // harnesses ignore the data of an entry that ends the stream.
            let mut closed: HashSet<(String, String)> = HashSet::new();
            for input in inputs {
                let to = match &input.timer_family {
                    Some(f) => {
                        closed.insert((input.transform_id.clone(), f.clone()));
                        Target::Timers(&input.transform_id, f)
                    }
                    None => Target::Data(&input.transform_id),
                };
                let mut start = 0;
                let mut cut = 0;
                for &end in &input.element_ends {
                    if end - start > DATA_CHUNK_BYTES && cut > start {
                        let chunk = input.data[start..cut].to_vec();
                        send_data(data, instruction_id, to, chunk, false);
                        start = cut;
                    }
                    cut = end;
                }
                let rest = input.data[start..].to_vec();
                send_data(data, instruction_id, to, rest, true);
            }
            for (t, f) in families {
                if !closed.contains(&(t.clone(), f.clone())) {
                    send_data(data, instruction_id, Target::Timers(t, f), vec![], true);
                }
            }
        }
        let resp = match early {
            Some(r) => r,
            None => response.await,
        };
        let resp = self.answered(instruction_id, resp)?;
        let (outputs, timers) = self
            .await_sinks(instruction_id, sinks, families, wake)
            .await?;
        let response = match resp.response {
            Some(fn_api::instruction_response::Response::ProcessBundle(r)) => r,
            _ => Default::default(),
        };
        Ok(BundleOutput {
            outputs,
            timers,
            response,
            instruction_id: instruction_id.to_string(),
        })
    }

    /// Wait for `is_last` on every sink and timer family, then take the
    /// bundle's data and timers.
    #[allow(clippy::type_complexity)]
    async fn await_sinks(
        &self,
        instruction_id: &str,
        sinks: &[String],
        families: &[(String, String)],
        wake: &Notify,
    ) -> Result<(HashMap<String, Vec<u8>>, HashMap<(String, String), Vec<u8>>), FnApiError> {
        loop {
            let notified = wake.notified();
            {
                let mut inbound = lock(&self.shared.inbound);
                let Some((bundle, _)) = inbound.get_mut(instruction_id) else {
                    return Err(FnApiError::Disconnected {
                        worker: self.id.clone(),
                        instruction: instruction_id.to_string(),
                        what: "waiting for output data".into(),
                    });
                };
                if sinks.iter().all(|s| bundle.done.contains(s))
                    && families.iter().all(|f| bundle.timers_done.contains(f))
                {
                    return Ok((
                        std::mem::take(&mut bundle.data),
                        std::mem::take(&mut bundle.timers),
                    ));
                }
            }
            if self.data_stream().is_none() {
                return Err(FnApiError::Disconnected {
                    worker: self.id.clone(),
                    instruction: instruction_id.to_string(),
                    what: "waiting for output data".into(),
                });
            }
            // Wake at least now and then to notice a closed data stream.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
    }
}

/// Where outbound bytes go: a data source, or a timer family.
#[derive(Clone, Copy)]
enum Target<'a> {
    Data(&'a str),
    Timers(&'a str, &'a str),
}

fn send_data(
    data: &mpsc::UnboundedSender<Result<fn_api::Elements, Status>>,
    instruction_id: &str,
    to: Target<'_>,
    bytes: Vec<u8>,
    then_last: bool,
) {
    let mut message = fn_api::Elements::default();
    let mut parts = Vec::with_capacity(2);
    if !bytes.is_empty() {
        parts.push((bytes, false));
    }
    if then_last {
        parts.push((Vec::new(), true));
    }
    for (bytes, is_last) in parts {
        match to {
            Target::Data(t) => message.data.push(fn_api::elements::Data {
                instruction_id: instruction_id.to_string(),
                transform_id: t.to_string(),
                data: bytes,
                is_last,
            }),
            Target::Timers(t, f) => message.timers.push(fn_api::elements::Timers {
                instruction_id: instruction_id.to_string(),
                transform_id: t.to_string(),
                timer_family_id: f.to_string(),
                timers: bytes,
                is_last,
            }),
        }
    }
    let _ = data.send(Ok(message));
}
