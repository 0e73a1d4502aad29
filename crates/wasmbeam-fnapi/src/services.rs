//! The Fn API's gRPC services: Control (by `worker_id`), Data (routed by
//! instruction id), State (answered from each bundle's provider) and
//! Logging (kept per worker).

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use wasmbeam_proto::fn_execution::v1 as fn_api;
use wasmbeam_proto::fn_execution::v1::beam_fn_control_server::BeamFnControl;
use wasmbeam_proto::fn_execution::v1::beam_fn_data_server::BeamFnData;
use wasmbeam_proto::fn_execution::v1::beam_fn_logging_server::BeamFnLogging;
use wasmbeam_proto::fn_execution::v1::beam_fn_state_server::BeamFnState;

use crate::server::{lock, LogLine, Shared, WorkerConn};
use crate::state::answer;
use crate::LOG_LINES_KEPT;

pub(crate) type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

pub(crate) fn worker_id<T>(req: &Request<T>) -> Result<String, Status> {
    req.metadata()
        .get("worker_id")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| {
            Status::invalid_argument("the Fn API needs `worker_id` metadata on every stream")
        })
}

/// The gRPC services, over the server's shared state.
#[derive(Clone)]
pub(crate) struct Services(Arc<Shared>);

impl Services {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Services(shared)
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.0
    }
}

#[tonic::async_trait]
impl BeamFnControl for Services {
    type ControlStream = BoxStream<fn_api::InstructionRequest>;

    async fn control(
        &self,
        request: Request<Streaming<fn_api::InstructionResponse>>,
    ) -> Result<Response<Self::ControlStream>, Status> {
        let id = worker_id(&request)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(WorkerConn {
            requests: Mutex::new(Some(tx)),
            pending: Mutex::default(),
        });
        lock(&self.0.control).insert(id.clone(), conn.clone());
        self.0.arrived.notify_waiters();
        tracing::debug!(worker = %id, "SDK harness connected its control stream");
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                match msg {
                    Ok(resp) => {
                        if let Some(tx) = lock(&conn.pending).remove(&resp.instruction_id) {
                            let _ = tx.send(resp);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(worker = %id, "control stream ended: {e}");
                        break;
                    }
                }
            }
            // Waiting instructions fail (their senders drop); the worker is
            // gone; our side of the stream ends too.
            lock(&conn.pending).clear();
            lock(&conn.requests).take();
            let mut control = lock(&shared.control);
            if control.get(&id).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                control.remove(&id);
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn get_process_bundle_descriptor(
        &self,
        request: Request<fn_api::GetProcessBundleDescriptorRequest>,
    ) -> Result<Response<fn_api::ProcessBundleDescriptor>, Status> {
        let id = request.into_inner().process_bundle_descriptor_id;
        lock(&self.0.descriptors)
            .get(&id)
            .map(|d| Response::new(d.proto.clone()))
            .ok_or_else(|| Status::not_found(format!("no process bundle descriptor {id:?}")))
    }
}

#[tonic::async_trait]
impl BeamFnData for Services {
    type DataStream = BoxStream<fn_api::Elements>;

    async fn data(
        &self,
        request: Request<Streaming<fn_api::Elements>>,
    ) -> Result<Response<Self::DataStream>, Status> {
        let id = worker_id(&request)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.0.data_out).insert(id.clone(), tx.clone());
        self.0.arrived.notify_waiters();
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Some(Ok(elements)) = inbound.next().await {
                // Streamed data goes out after the lock is released, and a
                // sink of a streamed bundle is done only once its data is
                // out: a full stream holds this harness's data stream back
                // (backpressure) rather than piling data up here.
                let mut sends = Vec::new();
                let mut finished = Vec::new();
                {
                    let mut inbound = lock(&shared.inbound);
                    for d in elements.data {
                        if let Some((bundle, wake)) = inbound.get_mut(&d.instruction_id) {
                            match &bundle.stream {
                                Some(tx) => {
                                    if !d.data.is_empty() {
                                        sends.push((tx.clone(), (d.transform_id.clone(), d.data)));
                                    }
                                    if d.is_last {
                                        finished.push((d.instruction_id, d.transform_id));
                                    }
                                    continue;
                                }
                                None => bundle
                                    .data
                                    .entry(d.transform_id.clone())
                                    .or_default()
                                    .extend_from_slice(&d.data),
                            }
                            if d.is_last {
                                bundle.done.insert(d.transform_id);
                            }
                            wake.notify_one();
                        }
                    }
                }
                for (tx, item) in sends {
                    let _ = tx.send(item).await;
                }
                let mut inbound = lock(&shared.inbound);
                for (instruction, sink) in finished {
                    if let Some((bundle, wake)) = inbound.get_mut(&instruction) {
                        bundle.done.insert(sink);
                        wake.notify_one();
                    }
                }
                for t in elements.timers {
                    if let Some((bundle, wake)) = inbound.get_mut(&t.instruction_id) {
                        let id = (t.transform_id, t.timer_family_id);
                        bundle
                            .timers
                            .entry(id.clone())
                            .or_default()
                            .extend_from_slice(&t.timers);
                        if t.is_last {
                            bundle.timers_done.insert(id);
                        }
                        wake.notify_one();
                    }
                }
            }
            let mut out = lock(&shared.data_out);
            if out.get(&id).is_some_and(|t| t.same_channel(&tx)) {
                out.remove(&id);
            }
            // Bundles waiting on this worker notice the closed stream.
            for (_, wake) in lock(&shared.inbound).values() {
                wake.notify_one();
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl BeamFnState for Services {
    type StateStream = BoxStream<fn_api::StateResponse>;

    async fn state(
        &self,
        request: Request<Streaming<fn_api::StateRequest>>,
    ) -> Result<Response<Self::StateStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.0.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = inbound.next().await {
                let provider = lock(&shared.states).get(&req.instruction_id).cloned();
                let resp = answer(provider.as_deref(), req);
                if tx.send(Ok(resp)).is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}

#[tonic::async_trait]
impl BeamFnLogging for Services {
    type LoggingStream = BoxStream<fn_api::LogControl>;

    async fn logging(
        &self,
        request: Request<Streaming<fn_api::log_entry::List>>,
    ) -> Result<Response<Self::LoggingStream>, Status> {
        let id = worker_id(&request).unwrap_or_else(|_| "unknown".into());
        let mut inbound = request.into_inner();
        let shared = self.0.clone();
        // Nothing is sent back; the reply stream stays open while the
        // harness logs, and closes when its log stream ends.
        let (keep_open, rx) = mpsc::unbounded_channel::<Result<fn_api::LogControl, Status>>();
        tokio::spawn(async move {
            let _keep_open = keep_open;
            while let Some(Ok(list)) = inbound.next().await {
                let mut logs = lock(&shared.logs);
                let q = logs.entry(id.clone()).or_default();
                for e in list.log_entries {
                    let mut message = e.message;
                    if !e.trace.is_empty() {
                        message.push('\n');
                        message.push_str(&e.trace);
                    }
                    tracing::info!(target: "wasmbeam::sdk", worker = %id, transform = %e.transform_id, severity = e.severity, "{message}");
                    if q.len() >= LOG_LINES_KEPT {
                        q.pop_front();
                    }
                    q.push_back(LogLine {
                        severity: e.severity,
                        message,
                        transform_id: e.transform_id,
                    });
                }
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}
