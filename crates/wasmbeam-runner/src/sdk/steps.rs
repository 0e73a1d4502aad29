//! The engine ops for one transform that runs in an SDK harness: a plain
//! ParDo (or lifted combine phase, or window assignment), a stateful ParDo
//! on the engine's keyed runs, or a splittable ParDo expanded into its
//! three steps.

use std::sync::Arc;

use prost::Message;
use wasmbeam_coders::coder_from_proto;
use wasmbeam_engine::{OpKind, PcId};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_p_transforms::primitives;

use super::{expand_splittable, SdkDoFn, SdkHarnesses, SdkStatefulDoFn};
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

/// What the translator knows of the transform.
pub(crate) struct Transform<'a> {
    /// Its id.
    pub(crate) id: &'a str,
    /// Its unique name.
    pub(crate) name: &'a str,
    /// The side inputs' tags, sorted.
    pub(crate) side_tags: &'a [String],
    /// The side inputs as engine PCollections, by tag.
    pub(crate) side_inputs: Vec<(String, PcId)>,
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

/// The engine ops of SDK transform `x`.
pub(crate) fn steps(
    harnesses: &Arc<SdkHarnesses>,
    c: &pb::Components,
    x: Transform<'_>,
) -> Result<Vec<Step>, String> {
    let t = &c.transforms[x.id];
    let mains: Vec<(&String, &String)> = t
        .inputs
        .iter()
        .filter(|(tag, _)| !x.side_tags.contains(tag))
        .collect();
    let [(main_tag, main)] = mains.as_slice() else {
        return Err(format!(
            "an SDK harness step needs exactly one main input, found {}",
            mains.len()
        ));
    };
    let mut tags: Vec<String> = t.outputs.keys().cloned().collect();
    tags.sort();
    let outputs: Vec<String> = tags.iter().map(|tag| t.outputs[tag].clone()).collect();
    let payload = match t.spec.as_ref().filter(|s| s.urn == primitives::PAR_DO) {
        Some(spec) => Some(
            pb::ParDoPayload::decode(spec.payload.as_slice())
                .map_err(|e| format!("bad ParDoPayload: {e}"))?,
        ),
        None => None,
    };
    let p = payload.unwrap_or_default();
    if !p.restriction_coder_id.is_empty() {
        let e = expand_splittable(c, x.id, main_tag, main, &p.restriction_coder_id)?;
        let [pair, split, process] = &e.steps;
        let [paired, sized] = &e.between;
        let out = ["out".to_string()];
        let step = |sid: &str, input: &str, tags: &[String], outputs: Vec<String>, what: &str| {
            let exec = SdkDoFn::new(harnesses, &e.components, sid, input, tags, x.side_tags)?;
            Ok::<_, String>(Step {
                name: format!("{}/{what}", x.name),
                kind: OpKind::ParDo {
                    exec: Arc::new(exec),
                    side_inputs: x.side_inputs.clone(),
                },
                input: input.to_string(),
                outputs,
            })
        };
        return Ok(vec![
            step(
                pair,
                main,
                &out,
                vec![paired.clone()],
                "PairWithRestriction",
            )?,
            step(
                split,
                paired,
                &out,
                vec![sized.clone()],
                "SplitAndSizeRestrictions",
            )?,
            step(process, sized, &tags, outputs, "Process")?,
        ]);
    }
    let exec = Arc::new(SdkDoFn::new(harnesses, c, x.id, main, &tags, x.side_tags)?);
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
    Ok(vec![Step {
        name: x.name.to_string(),
        kind,
        input: main.to_string(),
        outputs,
    }])
}
