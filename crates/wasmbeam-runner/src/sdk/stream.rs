//! A bundle's output handed to the engine while the harness still sends it,
//! so a bundle over a whole file (Beam's `ReadFromText` in one bundle) does
//! not hold all its output in the runner at once.
//!
//! Output is held until it passes [`HOLD_BYTES`]: a bundle that fails
//! before then is retried on a fresh harness, with nothing sent on. Past
//! it, output goes downstream as it arrives (and the stage's shuffle spills
//! it past its budget); a bundle that fails after that fails the job, since
//! part of its output is already on its way.

use std::sync::Arc;

use tokio::sync::mpsc;
use wasmbeam_engine::{Batch, OpError, OpResult};
use wasmbeam_fnapi::BundleInput;
use wasmbeam_proto::fn_execution::v1 as fn_api;

use super::coding::decode_into;
use super::{cancelled, SdkDoFn};

/// Output held per bundle before it streams (and can no longer be retried).
const HOLD_BYTES: usize = 32 << 20;

/// Data messages in flight between the Fn API server and the engine before
/// the harness is held back.
const STREAM_PARTS: usize = 8;

/// Output parts of one bundle attempt: held, or already sent on.
struct Parts<'e> {
    held: Vec<(usize, Batch)>,
    held_bytes: usize,
    streaming: bool,
    emit: &'e mut dyn FnMut(usize, Batch) -> OpResult<()>,
}

impl Parts<'_> {
    fn add(&mut self, output: usize, batch: Batch) -> OpResult<()> {
        if self.streaming {
            return (self.emit)(output, batch);
        }
        self.held_bytes += batch.byte_size();
        self.held.push((output, batch));
        if self.held_bytes > HOLD_BYTES {
            self.streaming = true;
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> OpResult<()> {
        for (i, b) in std::mem::take(&mut self.held) {
            (self.emit)(i, b)?;
        }
        self.held_bytes = 0;
        Ok(())
    }
}

impl SdkDoFn {
    /// Run one bundle, handing its output parts to `emit` (see the module
    /// docs for when they go on); returns the harness's response.
    pub(super) fn stream_bundle(
        &self,
        input: BundleInput,
        emit: &mut dyn FnMut(usize, Batch) -> OpResult<()>,
    ) -> OpResult<fn_api::ProcessBundleResponse> {
        let state = self
            .side_state()
            .map(|s| s as Arc<dyn wasmbeam_fnapi::StateProvider>);
        let mut parts = Parts {
            held: Vec::new(),
            held_bytes: 0,
            streaming: false,
            emit,
        };
        let mut attempt = 1;
        loop {
            parts.held.clear();
            parts.held_bytes = 0;
            let worker = self.harnesses.worker(&self.env.0, &self.env.1)?;
            let id = worker.new_instruction_id();
            let (tx, mut rx) = mpsc::channel::<(String, Vec<u8>)>(STREAM_PARTS);
            let cancel = self.harnesses.cancel.clone();
            let result = self.harnesses.rt.block_on(async {
                let run = worker.process_bundle_streaming(
                    &id,
                    &self.descriptor_id,
                    vec![input.clone()],
                    state.clone(),
                    Some(tx),
                );
                tokio::pin!(run);
                let stop = cancelled(cancel);
                tokio::pin!(stop);
                loop {
                    tokio::select! {
                        r = &mut run => {
                            while let Ok((sink, bytes)) = rx.try_recv() {
                                self.take_part(&mut parts, &sink, &bytes)?;
                            }
                            return Ok(Some(r));
                        }
                        Some((sink, bytes)) = rx.recv() => {
                            self.take_part(&mut parts, &sink, &bytes)?;
                        }
                        () = &mut stop => return Ok::<_, OpError>(None),
                    }
                }
            })?;
            let Some(result) = result else {
                return Err(OpError::from("the job was cancelled"));
            };
            match result {
                Ok(out) => {
                    self.bundle_succeeded(&worker, &out)?;
                    parts.flush()?;
                    return Ok(out.response);
                }
                Err(e) => {
                    if parts.streaming {
                        return Err(OpError::from(format!(
                            "{e} (not retried: part of the bundle's output had already gone downstream)"
                        )));
                    }
                    self.retry_or_fail(e, attempt, true, &worker)?;
                    attempt += 1;
                }
            }
        }
    }

    /// Decode one part of sink `sink`'s data and add it to `parts`.
    fn take_part(&self, parts: &mut Parts<'_>, sink: &str, bytes: &[u8]) -> OpResult<()> {
        let Some(i) = self.outputs.iter().position(|(s, _)| s == sink) else {
            return Ok(());
        };
        let mut b = Batch::default();
        decode_into(bytes, &self.outputs[i].1, &mut b)?;
        parts.add(i, b)
    }
}
