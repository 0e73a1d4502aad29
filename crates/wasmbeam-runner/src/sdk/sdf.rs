//! Splittable DoFns in SDK harnesses, expanded the way Beam's portable
//! runners do: one SDF ParDo becomes three harness steps,
//!
//! ```text
//! main input ─> PairWithRestriction ─> KV(element, restriction)
//!            ─> SplitAndSizeRestrictions ─> KV(KV(element, restriction), size)
//!            ─> ProcessSizedElementsAndRestrictions ─> the ParDo's outputs
//! ```
//!
//! Each step keeps the ParDo's payload and side inputs; only the URN and
//! the main input and output change. The last step may checkpoint: the
//! harness then returns residual roots (the rest of a restriction, encoded
//! in the step's input coder, with a requested delay), which are processed
//! again as new input until none is left (`SdkDoFn::process`).
//!
//! [`expand_pipeline`] does this for every splittable ParDo of a pipeline
//! before it is translated (a physical-plan rewrite: the three steps take
//! the ParDo's place in the transform tree), so fusion sees them as
//! ordinary harness steps.

use prost::Message;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_environments::environments;
use wasmbeam_proto::urns::standard_p_transforms::primitives;
use wasmbeam_proto::urns::standard_p_transforms::splittable_par_do_components as sdf_components;

/// `pipeline` with every splittable ParDo of an SDK environment replaced by
/// its three steps, or `None` when it has none.
pub(crate) fn expand_pipeline(pipeline: &pb::Pipeline) -> Result<Option<pb::Pipeline>, String> {
    let Some(c) = pipeline.components.as_ref() else {
        return Ok(None);
    };
    let mut splittable: Vec<(String, String, String, String)> = Vec::new();
    for (id, t) in &c.transforms {
        let Some(spec) = t.spec.as_ref().filter(|s| s.urn == primitives::PAR_DO) else {
            continue;
        };
        let in_sdk = c
            .environments
            .get(&t.environment_id)
            .is_some_and(|e| e.urn == environments::EXTERNAL || e.urn == environments::PROCESS);
        if !t.subtransforms.is_empty() || !in_sdk {
            continue;
        }
        let p = pb::ParDoPayload::decode(spec.payload.as_slice())
            .map_err(|e| format!("transform {id}: bad ParDoPayload: {e}"))?;
        if p.restriction_coder_id.is_empty() {
            continue;
        }
        let mains: Vec<_> = t
            .inputs
            .iter()
            .filter(|(tag, _)| !p.side_inputs.contains_key(*tag))
            .collect();
        let [(tag, pc)] = mains.as_slice() else {
            return Err(format!(
                "splittable ParDo {id} needs exactly one main input, found {}",
                mains.len()
            ));
        };
        splittable.push((
            id.clone(),
            (*tag).clone(),
            (*pc).clone(),
            p.restriction_coder_id,
        ));
    }
    if splittable.is_empty() {
        return Ok(None);
    }
    splittable.sort();
    let mut out = pipeline.clone();
    let mut comps = c.clone();
    for (id, tag, pc, restriction) in splittable {
        let e = expand(&comps, &id, &tag, &pc, &restriction)?;
        comps = e.components;
        comps.transforms.remove(&id);
        let replace = |list: &mut Vec<String>| {
            if let Some(i) = list.iter().position(|x| *x == id) {
                list.splice(i..=i, e.steps.iter().cloned());
            }
        };
        for t in comps.transforms.values_mut() {
            replace(&mut t.subtransforms);
        }
        replace(&mut out.root_transform_ids);
    }
    out.components = Some(comps);
    Ok(Some(out))
}

/// The three steps of an expanded splittable ParDo, in order.
pub(crate) struct Expanded {
    /// The components with the steps, their PCollections and coders added.
    pub(crate) components: pb::Components,
    /// Transform ids of pair, split-and-size and process.
    pub(crate) steps: [String; 3],
}

/// Expand splittable ParDo `transform_id`, whose main input is tag
/// `main_tag` with PCollection `main_input`.
pub(crate) fn expand(
    c: &pb::Components,
    transform_id: &str,
    main_tag: &str,
    main_input: &str,
    restriction_coder_id: &str,
) -> Result<Expanded, String> {
    let mut c = c.clone();
    let t = c
        .transforms
        .get(transform_id)
        .cloned()
        .ok_or_else(|| format!("unknown transform {transform_id}"))?;
    let input = c
        .pcollections
        .get(main_input)
        .cloned()
        .ok_or_else(|| format!("unknown PCollection {main_input}"))?;
    let fresh = |c: &pb::Components, base: &str| {
        let mut id = base.to_string();
        let mut n = 1;
        while c.coders.contains_key(&id)
            || c.pcollections.contains_key(&id)
            || c.transforms.contains_key(&id)
        {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    };
    let kv = |a: String, b: String| pb::Coder {
        spec: Some(pb::FunctionSpec {
            urn: "beam:coder:kv:v1".into(),
            payload: vec![],
        }),
        component_coder_ids: vec![a, b],
    };
    let paired_coder = fresh(&c, &format!("{transform_id}/paired-coder"));
    c.coders.insert(
        paired_coder.clone(),
        kv(input.coder_id.clone(), restriction_coder_id.to_string()),
    );
    let double = fresh(&c, "wasmbeam-double");
    c.coders.insert(
        double.clone(),
        pb::Coder {
            spec: Some(pb::FunctionSpec {
                urn: "beam:coder:double:v1".into(),
                payload: vec![],
            }),
            component_coder_ids: vec![],
        },
    );
    let sized_coder = fresh(&c, &format!("{transform_id}/sized-coder"));
    c.coders
        .insert(sized_coder.clone(), kv(paired_coder.clone(), double));
    let pcollection = |c: &mut pb::Components, suffix: &str, coder: &str| {
        let id = fresh(c, &format!("{main_input}/{suffix}"));
        c.pcollections.insert(
            id.clone(),
            pb::PCollection {
                unique_name: format!("{}/{suffix}", input.unique_name),
                coder_id: coder.to_string(),
                ..input.clone()
            },
        );
        id
    };
    let paired = pcollection(&mut c, "paired", &paired_coder);
    let sized = pcollection(&mut c, "sized", &sized_coder);
    let step =
        |c: &mut pb::Components, suffix: &str, urn: &str, input: &str, outputs: Option<&str>| {
            let id = fresh(c, &format!("{transform_id}/{suffix}"));
            let mut s = t.clone();
            s.unique_name = format!("{}/{suffix}", t.unique_name);
            if let Some(spec) = s.spec.as_mut() {
                spec.urn = urn.to_string();
            }
            s.inputs.insert(main_tag.to_string(), input.to_string());
            if let Some(out) = outputs {
                s.outputs = [("out".to_string(), out.to_string())].into();
            }
            s.subtransforms.clear();
            c.transforms.insert(id.clone(), s);
            id
        };
    let pair = step(
        &mut c,
        "PairWithRestriction",
        sdf_components::PAIR_WITH_RESTRICTION,
        main_input,
        Some(&paired),
    );
    let split = step(
        &mut c,
        "SplitAndSizeRestrictions",
        sdf_components::SPLIT_AND_SIZE_RESTRICTIONS,
        &paired,
        Some(&sized),
    );
    let process = step(
        &mut c,
        "Process",
        sdf_components::PROCESS_SIZED_ELEMENTS_AND_RESTRICTIONS,
        &sized,
        None,
    );
    Ok(Expanded {
        components: c,
        steps: [pair, split, process],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_steps_chain_through_kv_coders_and_keep_side_inputs() {
        let mut c = pb::Components::default();
        c.coders.insert("elem".into(), pb::Coder::default());
        c.pcollections.insert(
            "in".into(),
            pb::PCollection {
                unique_name: "In".into(),
                coder_id: "elem".into(),
                windowing_strategy_id: "w".into(),
                ..Default::default()
            },
        );
        c.transforms.insert(
            "sdf".into(),
            pb::PTransform {
                unique_name: "Read".into(),
                spec: Some(pb::FunctionSpec {
                    urn: "beam:transform:pardo:v1".into(),
                    payload: vec![1, 2],
                }),
                inputs: [
                    ("main".to_string(), "in".to_string()),
                    ("side".to_string(), "s".to_string()),
                ]
                .into(),
                outputs: [("o".to_string(), "out".to_string())].into(),
                ..Default::default()
            },
        );
        let e = expand(&c, "sdf", "main", "in", "restr").unwrap();
        let [pair, split, process] = &e.steps;
        let t = |id: &str| &e.components.transforms[id];
        let (paired, sized) = (&t(pair).outputs["out"], &t(split).outputs["out"]);
        assert_eq!(
            t(pair).spec.as_ref().unwrap().urn,
            sdf_components::PAIR_WITH_RESTRICTION
        );
        assert_eq!(t(split).inputs["main"], *paired);
        assert_eq!(t(split).outputs["out"], *sized);
        assert_eq!(t(process).inputs["main"], *sized);
        assert_eq!(t(process).outputs["o"], "out");
        for s in &e.steps {
            assert_eq!(t(s).inputs["side"], "s", "side inputs stay on every step");
            assert_eq!(t(s).spec.as_ref().unwrap().payload, vec![1, 2]);
        }
        let coder = |pc: &str| &e.components.coders[&e.components.pcollections[pc].coder_id];
        assert_eq!(coder(paired).component_coder_ids, vec!["elem", "restr"]);
        let sized_parts = &coder(sized).component_coder_ids;
        assert_eq!(sized_parts[0], e.components.pcollections[paired].coder_id);
        assert_eq!(
            e.components.coders[&sized_parts[1]]
                .spec
                .as_ref()
                .unwrap()
                .urn,
            "beam:coder:double:v1"
        );
        assert_eq!(e.components.pcollections[sized].windowing_strategy_id, "w");
    }
}
