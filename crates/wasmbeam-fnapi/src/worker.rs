//! The handle to one connected harness: running bundles (inputs and
//! timers out, sink data and timers back), splits and finalization.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tonic::Status;

use wasmbeam_proto::fn_execution::v1 as fn_api;

use crate::server::{lock, BundleInput, BundleOutput, FnApiError, Inbound, Shared, WorkerConn};
use crate::state::StateProvider;
use crate::DATA_CHUNK_BYTES;

/// A connected SDK harness.
#[derive(Clone)]
pub struct Worker {
    pub(crate) id: String,
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<WorkerConn>,
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
        let cache_tokens = state
            .as_ref()
            .map(|s| s.cache_tokens(self.id()))
            .unwrap_or_default();
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
                (descriptor_id, cache_tokens),
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
        (descriptor_id, cache_tokens): (&str, Vec<crate::state::CacheToken>),
        inputs: Vec<BundleInput>,
        (sinks, families): (&[String], &[(String, String)]),
        wake: &Notify,
    ) -> Result<BundleOutput, FnApiError> {
        let mut response = self.send(
            instruction_id,
            fn_api::instruction_request::Request::ProcessBundle(fn_api::ProcessBundleRequest {
                process_bundle_descriptor_id: descriptor_id.to_string(),
                cache_tokens,
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
