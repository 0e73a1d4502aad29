//! Runner-initiated splits of a splittable DoFn's restrictions, so that one
//! large restriction (a big file read by Beam's `ReadFromText`) is spread
//! over an environment's harnesses.
//!
//! With several harnesses, the process step of a splittable DoFn runs its
//! bundles on as many threads. A thread with nothing to do asks the oldest
//! running bundle to split at half its remainder
//! (`ProcessBundleSplitRequest`). The harness answers with the residual:
//! the rest of the restriction in progress (residual roots) and the input
//! elements it will not reach (a channel split). That residual becomes a new
//! bundle, which the idle thread runs on another harness, and may split in
//! turn. Checkpoints (residuals in a bundle's own response) are resumed as
//! before. A bundle that was split is not retried when it fails, since its
//! residual already runs elsewhere: the job fails instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmbeam_engine::{Batch, OpError, OpResult};
use wasmbeam_fnapi::{BundleInput, Worker};
use wasmbeam_proto::fn_execution::v1 as fn_api;

use super::{append, residual_input, SdkDoFn, SOURCE};

/// How long a bundle runs before an idle thread asks it to split, and how
/// long after a split attempt that found nothing to split it asks again.
const SPLIT_AFTER: Duration = Duration::from_millis(300);

/// A bundle in flight that may be split.
struct Running {
    worker: Worker,
    instruction: String,
    input: BundleInput,
    /// When it started, or when a split was last asked for.
    since: Instant,
    /// A split happened, so the bundle is no longer the whole input.
    split: bool,
    /// Input elements still the bundle's: earlier splits gave the rest
    /// away.
    end: usize,
}

struct Shared {
    queue: Mutex<VecDeque<BundleInput>>,
    running: Mutex<Vec<Running>>,
    outputs: Mutex<Vec<Batch>>,
    error: Mutex<Option<OpError>>,
    /// Bundles taken from the queue and not finished.
    active: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The input elements `from..to`.
fn elements(input: &BundleInput, from: usize, to: usize) -> BundleInput {
    let to = to.min(input.element_ends.len());
    let from = from.min(to);
    let offset = |i: usize| match i {
        0 => 0,
        i => input.element_ends[i - 1],
    };
    let (start, stop) = (offset(from), offset(to));
    BundleInput {
        transform_id: input.transform_id.clone(),
        timer_family: None,
        data: input.data[start..stop].to_vec(),
        element_ends: input.element_ends[from..to]
            .iter()
            .map(|e| e - start)
            .collect(),
    }
}

impl SdkDoFn {
    /// Run the process step of a splittable DoFn over `first` on all the
    /// environment's harnesses, splitting restrictions as threads go idle.
    pub(super) fn process_splitting(&self, first: BundleInput) -> OpResult<Vec<Batch>> {
        let sh = Shared {
            queue: Mutex::new(VecDeque::from([first])),
            running: Mutex::default(),
            outputs: Mutex::default(),
            error: Mutex::default(),
            active: AtomicUsize::new(0),
        };
        std::thread::scope(|scope| {
            for _ in 0..self.harnesses.parallelism {
                scope.spawn(|| self.split_worker(&sh));
            }
        });
        if let Some(e) = lock(&sh.error).take() {
            return Err(e);
        }
        let outputs = std::mem::take(&mut *lock(&sh.outputs));
        Ok(outputs)
    }

    fn split_worker(&self, sh: &Shared) {
        loop {
            if lock(&sh.error).is_some() {
                return;
            }
            let next = {
                let mut q = lock(&sh.queue);
                let n = q.pop_front();
                if n.is_some() {
                    sh.active.fetch_add(1, Ordering::SeqCst);
                }
                n
            };
            let Some(input) = next else {
                if sh.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                if let Err(e) = self.split_one(sh) {
                    *lock(&sh.error) = Some(e);
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let r = self.run_split_bundle(sh, input);
            sh.active.fetch_sub(1, Ordering::SeqCst);
            if let Err(e) = r {
                lock(&sh.error).get_or_insert(e);
                return;
            }
        }
    }

    /// Run one bundle, registered so idle threads can split it; queue its
    /// checkpointed residuals once their delay has passed.
    fn run_split_bundle(&self, sh: &Shared, input: BundleInput) -> OpResult<()> {
        let registered: Mutex<Option<String>> = Mutex::default();
        let on_start = |w: &Worker, id: &str| {
            let mut running = lock(&sh.running);
            running.retain(|r| Some(&r.instruction) != lock(&registered).as_ref());
            running.push(Running {
                worker: w.clone(),
                instruction: id.to_string(),
                input: input.clone(),
                since: Instant::now(),
                split: false,
                end: input.element_ends.len(),
            });
            *lock(&registered) = Some(id.to_string());
        };
        let was_split = || {
            let id = lock(&registered).clone();
            lock(&sh.running)
                .iter()
                .any(|r| Some(&r.instruction) == id.as_ref() && r.split)
        };
        let out = self.bundle_tracked(vec![input.clone()], None, &mut || !was_split(), &on_start);
        let id = lock(&registered).clone();
        lock(&sh.running).retain(|r| Some(&r.instruction) != id.as_ref());
        let out = out?;
        append(&mut lock(&sh.outputs), self.batches(&out)?);
        let residuals = &out.response.residual_roots;
        if !residuals.is_empty() {
            self.wait_for_resume(residuals)?;
            lock(&sh.queue).push_back(residual_input(
                residuals.iter().filter_map(|r| r.application.as_ref()),
            ));
        }
        Ok(())
    }

    /// Ask the longest-running bundle (that has run long enough) to split
    /// at half its remainder, and queue the residual.
    fn split_one(&self, sh: &Shared) -> OpResult<()> {
        let target = {
            let mut running = lock(&sh.running);
            let now = Instant::now();
            let pick = running
                .iter_mut()
                .filter(|r| now.duration_since(r.since) >= SPLIT_AFTER)
                .min_by_key(|r| r.since);
            pick.map(|r| {
                r.since = now;
                (
                    r.worker.clone(),
                    r.instruction.clone(),
                    r.input.element_ends.len(),
                )
            })
        };
        let Some((worker, instruction, elements)) = target else {
            return Ok(());
        };
        let answer =
            self.harnesses
                .rt
                .block_on(worker.split(&instruction, SOURCE, 0.5, elements as i64));
        // A bundle that finished meanwhile cannot split: nothing to do.
        let Ok(resp) = answer else { return Ok(()) };
        let residual = self.residual_of(sh, &instruction, &resp);
        if let Some(r) = residual {
            lock(&sh.queue).push_back(r);
        }
        Ok(())
    }

    /// The residual a split answer describes, as a bundle input; marks the
    /// bundle as split.
    fn residual_of(
        &self,
        sh: &Shared,
        instruction: &str,
        resp: &fn_api::ProcessBundleSplitResponse,
    ) -> Option<BundleInput> {
        let mut running = lock(&sh.running);
        let r = running.iter_mut().find(|r| r.instruction == instruction)?;
        let mut residual = residual_input(
            resp.residual_roots
                .iter()
                .filter_map(|d| d.application.as_ref()),
        );
        for c in resp
            .channel_splits
            .iter()
            .filter(|c| c.transform_id == SOURCE)
        {
            let first = (c.first_residual_element.max(0) as usize).min(r.end);
            let rest = elements(&r.input, first, r.end);
            r.end = first;
            let base = residual.data.len();
            residual.data.extend_from_slice(&rest.data);
            residual
                .element_ends
                .extend(rest.element_ends.iter().map(|e| e + base));
        }
        if residual.element_ends.is_empty() {
            return None;
        }
        r.split = true;
        Some(residual)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_cuts_at_element_boundaries() {
        let input = BundleInput {
            transform_id: SOURCE.into(),
            timer_family: None,
            data: b"aabbbc".to_vec(),
            element_ends: vec![2, 5, 6],
        };
        let rest = elements(&input, 1, 3);
        assert_eq!(rest.data, b"bbbc");
        assert_eq!(rest.element_ends, vec![3, 4]);
        let middle = elements(&input, 1, 2);
        assert_eq!(
            (middle.data.as_slice(), middle.element_ends),
            (&b"bbb"[..], vec![3])
        );
        assert!(elements(&input, 3, 3).data.is_empty());
        assert_eq!(elements(&input, 0, 9).element_ends, vec![2, 5, 6]);
    }
}
