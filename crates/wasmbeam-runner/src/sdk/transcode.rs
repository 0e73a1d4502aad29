//! Flatten inputs whose coder differs from the Flatten's output coder.
//!
//! The runner's Flatten moves encoded elements as they are, so every input
//! must already be in the output's encoding. Beam allows a Flatten of
//! PCollections with different coders (Beam Python flattens a `KV[str,
//! int]` with a `str` into a pickled union, for instance). Such an input is
//! first re-encoded: by the runner when it knows both coders, otherwise by
//! an SDK harness, which decodes with one coder and encodes with the other
//! (a one-input Flatten in a bundle descriptor).

use std::sync::Arc;

use wasmbeam_coders::{coder_from_proto, Coder, Context};
use wasmbeam_engine::{Batch, DoFnExec, OpKind, OpResult};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_environments::environments;
use wasmbeam_proto::urns::standard_p_transforms::primitives;

use super::steps::Step;
use super::{SdkDoFn, SdkHarnesses};

/// True when coders `a` and `b` encode the same way (same URNs, payloads
/// and components, whatever their ids).
pub(crate) fn same_coder(c: &pb::Components, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (c.coders.get(a), c.coders.get(b)) {
        (Some(x), Some(y)) => {
            x.spec == y.spec
                && x.component_coder_ids.len() == y.component_coder_ids.len()
                && x.component_coder_ids
                    .iter()
                    .zip(&y.component_coder_ids)
                    .all(|(p, q)| same_coder(c, p, q))
        }
        _ => false,
    }
}

fn fully_known(coder: &Coder) -> bool {
    !matches!(coder, Coder::Opaque { .. }) && coder.components().into_iter().all(fully_known)
}

/// Re-encodes each element from one coder to another, in the runner.
struct Recode {
    from: Coder,
    to: Coder,
}

impl DoFnExec for Recode {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }

    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut out = Batch::with_capacity(input.len(), input.values.data.len());
        let mut buf = Vec::new();
        for e in input.iter() {
            let v = self
                .from
                .decode(e.value, Context::Outer)
                .map_err(|err| format!("cannot decode a Flatten input element: {err}"))?;
            buf.clear();
            self.to
                .encode(&v, Context::Outer, &mut buf)
                .map_err(|err| {
                    format!(
                        "cannot re-encode a Flatten input element as {}: {err}",
                        self.to.urn()
                    )
                })?;
            out.push_in_pane(&buf, e.timestamp, e.windows(), e.pane, e.pane_indexes);
        }
        Ok(vec![out])
    }
}

/// An SDK environment to re-encode in: the Flatten's own, else the one of
/// the input's producer, else any EXTERNAL or PROCESS environment.
fn sdk_environment<'a>(
    c: &'a pb::Components,
    flatten: &pb::PTransform,
    input: &str,
) -> Option<&'a str> {
    let is_sdk = |id: &str| {
        c.environments
            .get(id)
            .is_some_and(|e| e.urn == environments::EXTERNAL || e.urn == environments::PROCESS)
    };
    if is_sdk(&flatten.environment_id) {
        return c
            .environments
            .get_key_value(&flatten.environment_id)
            .map(|(k, _)| k.as_str());
    }
    let producer = c
        .transforms
        .values()
        .find(|t| t.subtransforms.is_empty() && t.outputs.values().any(|o| o == input));
    if let Some(p) = producer.filter(|p| is_sdk(&p.environment_id)) {
        return c
            .environments
            .get_key_value(&p.environment_id)
            .map(|(k, _)| k.as_str());
    }
    let mut ids: Vec<&String> = c.environments.keys().filter(|id| is_sdk(id)).collect();
    ids.sort();
    ids.first().map(|s| s.as_str())
}

/// The re-encoding step for input `input` of Flatten `flatten_id`, whose
/// output is `output`; `None` when the coders already agree. The step's
/// output is a new PCollection id, to feed the Flatten instead.
pub(crate) fn transcode_step(
    harnesses: impl FnOnce() -> Result<Arc<SdkHarnesses>, String>,
    c: &pb::Components,
    flatten_id: &str,
    input: &str,
    output: &str,
) -> Result<Option<Step>, String> {
    let pc = |id: &str| {
        c.pcollections
            .get(id)
            .ok_or_else(|| format!("unknown PCollection {id}"))
    };
    let (from_id, to_id) = (&pc(input)?.coder_id, &pc(output)?.coder_id);
    if same_coder(c, from_id, to_id) {
        return Ok(None);
    }
    let flatten = &c.transforms[flatten_id];
    let name = format!("{}/Recode {input}", flatten.unique_name);
    let mut comps = c.clone();
    let recoded = format!("{input}/recoded-for-{flatten_id}");
    comps.pcollections.insert(
        recoded.clone(),
        pb::PCollection {
            unique_name: name.clone(),
            coder_id: to_id.clone(),
            ..pc(input)?.clone()
        },
    );
    let from = coder_from_proto(from_id, &c.coders).map_err(|e| e.to_string())?;
    let to = coder_from_proto(to_id, &c.coders).map_err(|e| e.to_string())?;
    if fully_known(&from) && fully_known(&to) {
        return Ok(Some(Step {
            name,
            kind: OpKind::ParDo {
                exec: Arc::new(Recode { from, to }),
                side_inputs: vec![],
            },
            input: input.to_string(),
            outputs: vec![recoded],
        }));
    }
    let env = sdk_environment(c, flatten, input).ok_or_else(|| {
        format!(
            "input {input} has coder {from_id} and the output {output} has coder {to_id}; converting between them takes an SDK harness, and the pipeline has no EXTERNAL or PROCESS environment"
        )
    })?;
    let tid = format!("{flatten_id}/recode-{input}");
    comps.transforms.insert(
        tid.clone(),
        pb::PTransform {
            unique_name: name.clone(),
            spec: Some(pb::FunctionSpec {
                urn: primitives::FLATTEN.into(),
                payload: vec![],
            }),
            inputs: [("in".to_string(), input.to_string())].into(),
            outputs: [("out".to_string(), recoded.clone())].into(),
            environment_id: env.to_string(),
            ..Default::default()
        },
    );
    let exec = SdkDoFn::new(
        &harnesses()?,
        &comps,
        std::slice::from_ref(&tid),
        input,
        std::slice::from_ref(&recoded),
        &[],
    )?;
    Ok(Some(Step {
        name,
        kind: OpKind::ParDo {
            exec: Arc::new(exec),
            side_inputs: vec![],
        },
        input: input.to_string(),
        outputs: vec![recoded],
    }))
}
