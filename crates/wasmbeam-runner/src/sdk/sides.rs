//! Side inputs of an SDK step, materialised by the engine and served to
//! the harness over the State API from memory.

use std::collections::HashMap;
use std::sync::Arc;

use wasmbeam_coders::{Coder, Context, Value};
use wasmbeam_engine::{Batch, OpResult};
use wasmbeam_fnapi::{MemoryState, StateValue};
use wasmbeam_proto::fn_execution::v1 as fn_api;

use super::SdkDoFn;

impl SdkDoFn {
    /// Materialise the side inputs the way the harness asks for them:
    /// every element under (tag, window) for an iterable side input; for a
    /// multimap one, the keys under (tag, window) and each key's values
    /// under (tag, window, key). The harness maps a main input window to a
    /// side input window itself and asks for that one.
    pub(super) fn load_side_inputs(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()> {
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
        let mut tokens = Vec::new();
        for (tag, batch) in side_inputs {
            // Loaded once for the job, a side input never changes: harnesses
            // may cache it across bundles.
            tokens.push(wasmbeam_fnapi::side_input_token(
                &self.transform_id,
                &tag,
                wasmbeam_fnapi::fresh_cache_token(),
            ));
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
        state.set_cache_tokens(tokens);
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(state));
        Ok(())
    }
}
