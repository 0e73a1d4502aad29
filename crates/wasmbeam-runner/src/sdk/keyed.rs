//! Stateful SDK DoFns: user state and timers of a ParDo that runs in a
//! harness, on the engine's keyed runs.
//!
//! The engine shuffles the ParDo's input by key and gives each partition
//! one [`SdkKeyedRun`]. The run answers the harness's user-state requests
//! (bag state, and the combining and value states SDKs build on it) from
//! its own store, which holds only that partition's keys, and keeps the
//! timers the harness sets. Timers come back from the harness on the data
//! channel, in each family's timer coder; the last set or clear of a timer
//! (key, tag, windows) wins. `fire` hands every due timer back to the
//! harness in one bundle, earliest first, and the harness may set new ones
//! while it fires them; the engine calls `fire` until none is due.
//!
//! In batch the watermark reaches the end of time once the input is done,
//! so every timer fires then, event-time and processing-time alike. The
//! watermark is an argument, so streaming can fire timers earlier.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmbeam_coders::{Coder, Context, Reader, Value};
use wasmbeam_engine::{Batch, KeyedDoFnExec, KeyedRun, OpResult};
use wasmbeam_fnapi::{BundleInput, MemoryState, StateProvider, StateValue};
use wasmbeam_proto::fn_execution::v1 as fn_api;

use super::SdkDoFn;

/// A stateful ParDo in an SDK harness.
pub struct SdkStatefulDoFn(pub Arc<SdkDoFn>);

impl KeyedDoFnExec for SdkStatefulDoFn {
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
        self.0.load_side_inputs(side_inputs)
    }

    fn open(&self) -> OpResult<Box<dyn KeyedRun>> {
        Ok(Box::new(SdkKeyedRun {
            dofn: self.0.clone(),
            state: Arc::new(KeyedState {
                sides: self.0.side_state(),
                user: MemoryState::default(),
                user_token: UserToken::default(),
            }),
            timers: BTreeMap::new(),
        }))
    }
}

/// A timer the harness set and that has not fired yet.
struct Pending {
    /// Index of its family in the ParDo's timer families.
    family: usize,
    /// When it fires.
    fire: i64,
    /// The timer as the harness encoded it (handed back when it fires).
    encoded: Vec<u8>,
}

/// The state and timers of one partition's keys.
pub struct SdkKeyedRun {
    dofn: Arc<SdkDoFn>,
    state: Arc<KeyedState>,
    /// By (family, the timer's key, tag and windows encoded).
    timers: BTreeMap<(usize, Vec<u8>), Pending>,
}

impl SdkKeyedRun {
    fn run(&mut self, inputs: Vec<BundleInput>) -> OpResult<Vec<Batch>> {
        // A retried bundle starts from the state the failed attempt saw.
        let saved = self.state.user.copy();
        let state = &self.state;
        let out = self.dofn.bundle(
            inputs,
            Some(self.state.clone() as Arc<dyn StateProvider>),
            &mut || {
                state.user.restore(saved.copy());
                state.user_token.invalidate();
                true
            },
        )?;
        let dofn = self.dofn.clone();
        for (fi, (family, coder)) in dofn.timer_families.iter().enumerate() {
            let key = (dofn.transform_id.clone(), family.clone());
            if let Some(bytes) = out.timers.get(&key) {
                self.note_timers(fi, coder, bytes)
                    .map_err(|e| format!("timer family {family}: {e}"))?;
            }
        }
        self.dofn.batches(&out)
    }

    /// Record the timers the harness set or cleared.
    fn note_timers(&mut self, family: usize, coder: &Coder, bytes: &[u8]) -> Result<(), String> {
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let start = r.position();
            let v = coder
                .decode_from(&mut r, Context::Nested)
                .map_err(|e| format!("cannot decode a timer from the harness: {e}"))?;
            let Value::Timer(mut t) = v else {
                return Err("a timer from the harness is not a timer".into());
            };
            let encoded = bytes[start..r.position()].to_vec();
            let firing = t.firing.take();
            // The timer's identity: its encoding with the clear bit set.
            let mut id = Vec::new();
            coder
                .encode(&Value::Timer(t), Context::Nested, &mut id)
                .map_err(|e| format!("cannot encode a timer's identity: {e}"))?;
            match firing {
                Some(f) => {
                    self.timers.insert(
                        (family, id),
                        Pending {
                            family,
                            fire: f.fire_timestamp,
                            encoded,
                        },
                    );
                }
                None => {
                    self.timers.remove(&(family, id));
                }
            }
        }
        Ok(())
    }
}

impl KeyedRun for SdkKeyedRun {
    fn process(&mut self, input: Batch) -> OpResult<Vec<Batch>> {
        let bundle = self.dofn.encode(&input)?;
        self.run(vec![bundle])
    }

    fn fire(&mut self, watermark: i64, _processing: i64) -> OpResult<Option<Vec<Batch>>> {
        let due: Vec<(usize, Vec<u8>)> = self
            .timers
            .iter()
            .filter(|(_, p)| p.fire <= watermark)
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return Ok(None);
        }
        let mut fired: Vec<Pending> = due
            .into_iter()
            .filter_map(|k| self.timers.remove(&k))
            .collect();
        fired.sort_by_key(|p| p.fire);
        let mut inputs = vec![BundleInput {
            transform_id: super::SOURCE.into(),
            ..BundleInput::default()
        }];
        for (fi, (family, _)) in self.dofn.timer_families.iter().enumerate() {
            let mut input = BundleInput {
                transform_id: self.dofn.transform_id.clone(),
                timer_family: Some(family.clone()),
                ..BundleInput::default()
            };
            for p in fired.iter().filter(|p| p.family == fi) {
                input.data.extend_from_slice(&p.encoded);
                input.element_ends.push(input.data.len());
            }
            if !input.data.is_empty() {
                inputs.push(input);
            }
        }
        self.run(inputs).map(Some)
    }
}

/// What a keyed bundle's state requests read: the side inputs, and the
/// user state of the run's keys.
struct KeyedState {
    sides: Option<Arc<MemoryState>>,
    user: MemoryState,
    user_token: UserToken,
}

/// The user-state cache token of one partition's keys. A harness may keep
/// the user state it cached for as long as the token stands, so the token
/// changes whenever the state may have changed behind that harness's back:
/// when a bundle of the partition runs on another harness than the last
/// one, and when a retry restores the state.
#[derive(Default)]
struct UserToken(std::sync::Mutex<Option<(String, Vec<u8>)>>);

impl UserToken {
    /// The token for a bundle about to run on `worker`.
    fn for_worker(&self, worker: &str) -> Vec<u8> {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*t {
            Some((w, token)) if w == worker => token.clone(),
            _ => {
                let token = wasmbeam_fnapi::fresh_cache_token();
                *t = Some((worker.to_string(), token.clone()));
                token
            }
        }
    }

    /// Forget the token: the state was changed outside every harness.
    fn invalidate(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn is_side_input(key: &fn_api::StateKey) -> bool {
    use fn_api::state_key::Type;
    matches!(
        key.r#type,
        Some(
            Type::IterableSideInput(_)
                | Type::MultimapSideInput(_)
                | Type::MultimapKeysSideInput(_)
                | Type::MultimapKeysValuesSideInput(_)
        )
    )
}

impl StateProvider for KeyedState {
    fn get(&self, key: &fn_api::StateKey) -> Result<StateValue, String> {
        if is_side_input(key) {
            return match &self.sides {
                Some(s) => s.get(key),
                None => Ok(StateValue::default()),
            };
        }
        self.user.get(key)
    }

    fn append(&self, key: &fn_api::StateKey, data: Vec<u8>) -> Result<(), String> {
        if is_side_input(key) {
            return Err("side inputs are read-only".into());
        }
        self.user.append(key, data)
    }

    fn clear(&self, key: &fn_api::StateKey) -> Result<(), String> {
        if is_side_input(key) {
            return Err("side inputs are read-only".into());
        }
        self.user.clear(key)
    }

    /// The side inputs' tokens, and the partition's user-state token for
    /// `worker_id` (see [`UserToken`]).
    fn cache_tokens(&self, worker_id: &str) -> Vec<wasmbeam_fnapi::CacheToken> {
        let mut tokens = self
            .sides
            .as_ref()
            .map(|s| s.cache_tokens(worker_id))
            .unwrap_or_default();
        tokens.push(wasmbeam_fnapi::user_state_token(
            self.user_token.for_worker(worker_id),
        ));
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::UserToken;

    #[test]
    fn the_user_state_token_changes_with_the_harness_and_after_a_restore() {
        let t = UserToken::default();
        let a1 = t.for_worker("a");
        assert_eq!(t.for_worker("a"), a1, "same harness, same token");
        let b = t.for_worker("b");
        assert_ne!(b, a1);
        let a2 = t.for_worker("a");
        assert_ne!(a2, a1, "b may have written since a cached");
        t.invalidate();
        assert_ne!(t.for_worker("a"), a2, "a retry restored the state");
    }
}
