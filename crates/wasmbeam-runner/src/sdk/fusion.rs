//! Fusing SDK harness steps: consecutive transforms of one environment run
//! as one bundle descriptor, so their elements stay inside the harness
//! instead of crossing the Fn API (and being re-encoded) between steps.
//!
//! A transform joins the fused step of the transform that produces its
//! main input when both run in the same SDK environment, and it has no
//! side inputs, no user state or timers, and is not the process step of a
//! splittable DoFn (those start a step of their own: side inputs and state
//! belong to the step's head, and a checkpoint's residual is re-fed to the
//! head's input). Every PCollection a step produces that something outside
//! it reads (as main or side input) leaves the step through a data sink.

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_p_transforms::{primitives, splittable_par_do_components};

/// The fused steps of a pipeline's SDK transforms.
#[derive(Debug, Default)]
pub(crate) struct Fused {
    /// The head of the step each SDK transform belongs to.
    pub(crate) head_of: HashMap<String, String>,
    /// Each step's transforms, head first, by head.
    pub(crate) members: HashMap<String, Vec<String>>,
    /// Each step's outputs (PCollections read outside it), by head.
    pub(crate) exported: HashMap<String, Vec<String>>,
}

/// Whether transform `t` may only head a step, and its side input tags.
fn head_only(t: &pb::PTransform) -> (bool, Vec<String>) {
    let Some(spec) = t.spec.as_ref() else {
        return (true, vec![]);
    };
    if spec.urn == splittable_par_do_components::PROCESS_SIZED_ELEMENTS_AND_RESTRICTIONS {
        return (true, vec![]);
    }
    let pardo_like = spec.urn == primitives::PAR_DO
        || spec.urn == splittable_par_do_components::PAIR_WITH_RESTRICTION
        || spec.urn == splittable_par_do_components::SPLIT_AND_SIZE_RESTRICTIONS;
    if !pardo_like {
        return (false, vec![]);
    }
    match pb::ParDoPayload::decode(spec.payload.as_slice()) {
        Ok(p) => {
            let sides: Vec<String> = p.side_inputs.keys().cloned().collect();
            let keyed = !p.state_specs.is_empty() || !p.timer_family_specs.is_empty();
            (keyed || !sides.is_empty(), sides)
        }
        Err(_) => (true, vec![]),
    }
}

/// Fuse the SDK transforms among `units` (id, transform, runs in an SDK
/// harness), taken in order.
pub(crate) fn fuse(units: &[(&str, &pb::PTransform, bool)]) -> Fused {
    let mut producer: HashMap<&str, &str> = HashMap::new();
    let mut readers: HashMap<&str, Vec<(&str, bool)>> = HashMap::new();
    for (id, t, _) in units {
        let (_, sides) = head_only(t);
        for (tag, pc) in &t.inputs {
            readers
                .entry(pc.as_str())
                .or_default()
                .push((id, sides.contains(tag)));
        }
        for pc in t.outputs.values() {
            producer.insert(pc.as_str(), id);
        }
    }
    let mut f = Fused::default();
    for (id, t, sdk) in units {
        if !sdk {
            continue;
        }
        let (only_head, sides) = head_only(t);
        let mains: Vec<&String> = t
            .inputs
            .iter()
            .filter(|(tag, _)| !sides.contains(tag))
            .map(|(_, pc)| pc)
            .collect();
        let joins = match mains.as_slice() {
            [main] if !only_head => producer
                .get(main.as_str())
                .and_then(|p| f.head_of.get(*p))
                .filter(|head| {
                    units
                        .iter()
                        .find(|(hid, _, _)| hid == head)
                        .is_some_and(|(_, ht, _)| ht.environment_id == t.environment_id)
                })
                .cloned(),
            _ => None,
        };
        let head = joins.unwrap_or_else(|| id.to_string());
        f.head_of.insert(id.to_string(), head.clone());
        f.members.entry(head).or_default().push(id.to_string());
    }
    for (head, members) in &f.members {
        let mut out = BTreeSet::new();
        for m in members {
            let t = units
                .iter()
                .find(|(id, _, _)| id == m)
                .map(|(_, t, _)| *t)
                .expect("members are units");
            for pc in t.outputs.values() {
                let outside = readers.get(pc.as_str()).is_some_and(|rs| {
                    rs.iter()
                        .any(|(r, side)| *side || f.head_of.get(*r) != Some(head))
                });
                if outside {
                    out.insert(pc.clone());
                }
            }
        }
        f.exported.insert(head.clone(), out.into_iter().collect());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pardo(env: &str, input: &str, output: &str, side: Option<&str>) -> pb::PTransform {
        let mut p = pb::ParDoPayload::default();
        let mut inputs: std::collections::HashMap<String, String> =
            [("in".to_string(), input.to_string())].into();
        if let Some(s) = side {
            p.side_inputs
                .insert("side".into(), pb::SideInput::default());
            inputs.insert("side".into(), s.into());
        }
        pb::PTransform {
            spec: Some(pb::FunctionSpec {
                urn: primitives::PAR_DO.into(),
                payload: p.encode_to_vec(),
            }),
            inputs,
            outputs: [("out".to_string(), output.to_string())].into(),
            environment_id: env.into(),
            ..Default::default()
        }
    }

    #[test]
    fn chains_fuse_until_a_side_input_another_environment_or_a_runner_step() {
        let a = pardo("py", "p0", "p1", None);
        let b = pardo("py", "p1", "p2", None);
        let gbk = pb::PTransform {
            spec: Some(pb::FunctionSpec {
                urn: primitives::GROUP_BY_KEY.into(),
                payload: vec![],
            }),
            inputs: [("in".to_string(), "p2".to_string())].into(),
            outputs: [("out".to_string(), "p3".to_string())].into(),
            ..Default::default()
        };
        let c = pardo("py", "p3", "p4", None);
        let d = pardo("py", "p4", "p5", Some("p2"));
        let e = pardo("go", "p5", "p6", None);
        let g = pardo("py", "p1", "p7", None);
        let units = [
            ("a", &a, true),
            ("b", &b, true),
            ("gbk", &gbk, false),
            ("c", &c, true),
            ("d", &d, true),
            ("e", &e, true),
            ("g", &g, true),
        ];
        let f = fuse(&units);
        assert_eq!(f.members["a"], ["a", "b", "g"]);
        assert_eq!(f.members["c"], ["c"]);
        assert_eq!(f.members["d"], ["d"], "a side input starts a step");
        assert_eq!(f.members["e"], ["e"], "another environment starts a step");
        // p1 is read only inside; p2 by the GroupByKey and as a side input;
        // p7 by nobody.
        assert_eq!(f.exported["a"], ["p2"]);
        assert_eq!(f.exported["c"], ["p4"]);
        assert_eq!(f.exported["d"], ["p5"]);
        assert!(f.exported["e"].is_empty());
    }
}
