//! The engine op for one fused SDK step (`fusion.rs`): a plain ParDo-like
//! op (ParDos, lifted combine phases, window assignment, the steps of a
//! splittable DoFn), or a stateful ParDo on the engine's keyed runs when
//! the step's head has user state or timers.

use std::sync::Arc;

use prost::Message;
use wasmbeam_coders::coder_from_proto;
use wasmbeam_engine::{OpKind, PcId};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_p_transforms::primitives;

use super::{SdkDoFn, SdkHarnesses, SdkStatefulDoFn};
use crate::codec::CoderKv;

/// One engine op to add, with Beam PCollection ids for its edges.
pub(crate) struct Step {
    /// Name for progress and errors.
    pub(crate) name: String,
    /// The op.
    pub(crate) kind: OpKind,
    /// Its main input.
    pub(crate) input: String,
    /// Its outputs, in the order the op returns them.
    pub(crate) outputs: Vec<String>,
}

/// What the translator knows of a fused SDK step.
pub(crate) struct Transform<'a> {
    /// Its head's id.
    pub(crate) id: &'a str,
    /// Its head's unique name.
    pub(crate) name: &'a str,
    /// The head's side inputs' tags, sorted.
    pub(crate) side_tags: &'a [String],
    /// The side inputs as engine PCollections, by tag.
    pub(crate) side_inputs: Vec<(String, PcId)>,
    /// Its transforms, head first.
    pub(crate) members: &'a [String],
    /// Its outputs: the PCollections read outside it.
    pub(crate) exported: &'a [String],
}

/// The side input tags of `t` (sorted): those its ParDo payload names.
pub(crate) fn side_tags(t: &pb::PTransform) -> Result<Vec<String>, String> {
    let Some(spec) = t.spec.as_ref().filter(|s| s.urn == primitives::PAR_DO) else {
        return Ok(vec![]);
    };
    let p = pb::ParDoPayload::decode(spec.payload.as_slice())
        .map_err(|e| format!("bad ParDoPayload: {e}"))?;
    let mut tags: Vec<String> = p.side_inputs.keys().cloned().collect();
    tags.sort();
    Ok(tags)
}

/// The engine op of fused SDK step `x`.
pub(crate) fn steps(
    harnesses: &Arc<SdkHarnesses>,
    c: &pb::Components,
    x: Transform<'_>,
) -> Result<Vec<Step>, String> {
    let t = &c.transforms[x.id];
    let mains: Vec<&String> = t
        .inputs
        .iter()
        .filter(|(tag, _)| !x.side_tags.contains(tag))
        .map(|(_, pc)| pc)
        .collect();
    let [main] = mains.as_slice() else {
        return Err(format!(
            "an SDK harness step needs exactly one main input, found {}",
            mains.len()
        ));
    };
    let p = match t.spec.as_ref().filter(|s| s.urn == primitives::PAR_DO) {
        Some(spec) => pb::ParDoPayload::decode(spec.payload.as_slice())
            .map_err(|e| format!("bad ParDoPayload: {e}"))?,
        None => pb::ParDoPayload::default(),
    };
    let exec = Arc::new(SdkDoFn::new(
        harnesses,
        c,
        x.members,
        main,
        x.exported,
        x.side_tags,
    )?);
    let kind = if !p.state_specs.is_empty() || !p.timer_family_specs.is_empty() {
        // State and timers are per key: the engine shuffles the input by
        // key first.
        let pc = &c.pcollections[main.as_str()];
        let coder = coder_from_proto(&pc.coder_id, &c.coders).map_err(|e| e.to_string())?;
        let codec = CoderKv::new(coder)
            .map_err(|e| format!("a DoFn with state or timers needs KV input: {e}"))?;
        OpKind::StatefulParDo {
            exec: Arc::new(SdkStatefulDoFn(exec)),
            codec: Arc::new(codec),
            side_inputs: x.side_inputs,
        }
    } else {
        OpKind::ParDo {
            exec,
            side_inputs: x.side_inputs,
        }
    };
    let name = match x.members.len() {
        1 => x.name.to_string(),
        n => format!("{} (+{} fused)", x.name, n - 1),
    };
    Ok(vec![Step {
        name,
        kind,
        input: main.to_string(),
        outputs: x.exported.to_vec(),
    }])
}
