//! The Fn API server: its shared state, start-up and registrations, and
//! the types bundles use. The gRPC services are in `services.rs`; the
//! per-worker handle that runs bundles is in `worker.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
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

use crate::provision::Provisioning;
use crate::services::Services;
use crate::state::StateProvider;
use crate::worker::Worker;
use wasmbeam_proto::fn_execution::v1::provision_service_server::ProvisionServiceServer;
use wasmbeam_proto::job_management::v1::artifact_retrieval_service_server::ArtifactRetrievalServiceServer;

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
    /// Options and dependencies for the provision and artifact services.
    pub(crate) provisioning: Mutex<Provisioning>,
    /// The server's own address (the endpoint of every service).
    pub(crate) addr: SocketAddr,
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
            provisioning: Mutex::default(),
            addr,
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
                    BeamFnLoggingServer::new(svc.clone())
                        .max_decoding_message_size(max)
                        .max_encoding_message_size(max),
                )
                .add_service(ProvisionServiceServer::new(svc.clone()))
                .add_service(
                    ArtifactRetrievalServiceServer::new(svc).max_encoding_message_size(max),
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

    /// The pipeline options harnesses get from `GetProvisionInfo`.
    pub fn set_pipeline_options(&self, options: prost_types::Struct) {
        lock(&self.shared.provisioning).options = options;
    }

    /// Announce harness `id`, about to be started for an environment with
    /// these dependencies: it may then get its provision info, and fetch
    /// those artifacts.
    pub fn expect_worker(&self, id: &str, dependencies: Vec<pb::ArtifactInformation>) {
        lock(&self.shared.provisioning)
            .workers
            .insert(id.to_string(), dependencies);
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
