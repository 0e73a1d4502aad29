//! What wasmbeam can run: one table, consulted by `inspect`, by validation
//! before a run, and by the job service before it accepts a job.
//!
//! Each transform in the tree gets a [`Support`] verdict. Composites that the
//! runner implements directly (combine-per-key with a WASM CombineFn,
//! reshuffle) are taken whole; other composites are judged by their parts.

use prost::Message;
use wasmbeam_proto::pipeline::v1::{
    CombinePayload, Components, Environment, PTransform, ParDoPayload,
};
use wasmbeam_proto::urns::{
    standard_environments::environments,
    standard_p_transforms::{
        combine_components, composites, deprecated_primitives, primitives,
        splittable_par_do_components as sdf,
    },
    standard_side_input_types::enum_ as side_inputs,
};
use wasmbeam_proto::wasmbeam_urns as ours;

/// How the runner handles one transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// A Beam primitive or IO that the runner executes itself.
    Native(&'static str),
    /// A ParDo or combine whose user function is a WASM component.
    Wasm(&'static str),
    /// A ParDo run in an SDK harness (a Python, Go or Java worker) over the
    /// Fn API.
    Sdk(&'static str),
    /// A composite judged by its subtransforms.
    Composite,
    /// Not runnable; the reason is for humans.
    Unsupported(String),
}

impl Support {
    /// True unless [`Support::Unsupported`].
    pub fn is_supported(&self) -> bool {
        !matches!(self, Support::Unsupported(_))
    }
}

/// The verdict for one transform, looking only at the transform itself.
pub fn classify(t: &PTransform) -> Support {
    classify_in(t, &std::collections::HashMap::new())
}

/// [`classify_in`], knowing the whole pipeline: a window assignment whose
/// input and output PCollections have different coders (Beam Python's
/// `WindowInto` re-types a pickled tuple as a KV, for instance) runs in its
/// SDK harness, which can re-encode elements the runner holds as opaque
/// bytes.
pub fn classify_with(t: &PTransform, c: &Components) -> Support {
    let s = classify_in(t, &c.environments);
    let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
    if urn != primitives::ASSIGN_WINDOWS || !s.is_supported() {
        return s;
    }
    let sdk_env = environments_of(t, &c.environments)
        .is_some_and(|e| e.urn == environments::EXTERNAL || e.urn == environments::PROCESS);
    let coder = |pc: Option<&String>| {
        pc.and_then(|id| c.pcollections.get(id))
            .map(|p| p.coder_id.as_str())
    };
    let (input, output) = (
        coder(t.inputs.values().next()),
        coder(t.outputs.values().next()),
    );
    if sdk_env && input != output {
        return Support::Sdk(
            "window assignment in an SDK harness (its output coder differs from its input's)",
        );
    }
    s
}

/// [`classify`], knowing the pipeline's environments: a ParDo whose DoFn
/// is not WASM runs in an SDK harness when its environment can be started
/// here (EXTERNAL, including LOOPBACK, or PROCESS).
pub fn classify_in(
    t: &PTransform,
    environments: &std::collections::HashMap<String, Environment>,
) -> Support {
    let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
    let payload = t.spec.as_ref().map(|s| s.payload.as_slice()).unwrap_or(&[]);
    let has_parts = !t.subtransforms.is_empty();
    match urn {
        u if u == primitives::IMPULSE => Support::Native("impulse"),
        u if u == primitives::GROUP_BY_KEY => Support::Native("group by key"),
        u if u == primitives::FLATTEN => Support::Native("flatten"),
        u if u == primitives::ASSIGN_WINDOWS => Support::Native("assign windows"),
        u if u == composites::RESHUFFLE => Support::Native("reshuffle"),
        u if u == ours::READ_TEXT => Support::Native("read text files"),
        u if u == ours::WRITE_TEXT => Support::Native("write text files"),
        u if u == primitives::PAR_DO
            || u == sdf::PAIR_WITH_RESTRICTION
            || u == sdf::SPLIT_AND_SIZE_RESTRICTIONS
            || u == sdf::PROCESS_SIZED_ELEMENTS_AND_RESTRICTIONS =>
        {
            classify_pardo(payload, environments.get(&t.environment_id))
        }
        u if u == composites::COMBINE_PER_KEY => match classify_combine(payload) {
            Support::Unsupported(_) if has_parts => Support::Composite,
            s => s,
        },
        u if u == combine_components::COMBINE_PER_KEY_PRECOMBINE
            || u == combine_components::COMBINE_PER_KEY_MERGE_ACCUMULATORS
            || u == combine_components::COMBINE_PER_KEY_EXTRACT_OUTPUTS
            || u == combine_components::COMBINE_GROUPED_VALUES
            || u == composites::COMBINE_GLOBALLY =>
        {
            match classify_combine(payload) {
                _ if has_parts => Support::Composite,
                // A lifted phase of an SDK's CombineFn runs in its harness;
                // the GroupByKey between the phases is the runner's.
                Support::Unsupported(_)
                    if u != composites::COMBINE_GLOBALLY
                        && environments_of(t, environments).is_some_and(|e| {
                            e.urn == environments::EXTERNAL || e.urn == environments::PROCESS
                        }) =>
                {
                    Support::Sdk("CombineFn phase in an SDK harness (Fn API)")
                }
                Support::Unsupported(r) => Support::Unsupported(r),
                _ => Support::Unsupported(format!(
                    "{u} outside its combine_per_key composite is not supported yet; submit the composite"
                )),
            }
        }
        _ if has_parts => Support::Composite,
        "" => Support::Unsupported("a leaf transform without a spec URN".into()),
        u if u == primitives::TEST_STREAM || u == primitives::MAP_WINDOWS => {
            Support::Unsupported(format!("the primitive {u} is not implemented yet"))
        }
        u if u == deprecated_primitives::READ => Support::Unsupported(
            "Beam's deprecated Read primitive (a source object in an SDK's language) cannot run without that SDK; use wasmbeam's read_text transform".into(),
        ),
        u => Support::Unsupported(format!("unknown transform URN {u}")),
    }
}

fn classify_pardo(payload: &[u8], env: Option<&Environment>) -> Support {
    let p = match ParDoPayload::decode(payload) {
        Ok(p) => p,
        Err(e) => return Support::Unsupported(format!("ParDoPayload does not decode: {e}")),
    };
    let fn_urn = p.do_fn.as_ref().map(|f| f.urn.as_str()).unwrap_or("");
    if fn_urn != ours::WASM_DOFN {
        return match env.map(|e| e.urn.as_str()) {
            Some(u) if u == environments::EXTERNAL || u == environments::PROCESS => {
                let access = |si: &wasmbeam_proto::pipeline::v1::SideInput| {
                    si.access_pattern.as_ref().map(|a| a.urn.clone()).unwrap_or_default()
                };
                if !p.restriction_coder_id.is_empty() {
                    Support::Sdk("splittable DoFn in an SDK harness (Fn API)")
                } else if let Some((tag, si)) = p.side_inputs.iter().find(|(_, si)| {
                    let a = access(si);
                    a != side_inputs::ITERABLE && a != side_inputs::MULTIMAP
                }) {
                    Support::Unsupported(format!(
                        "side input {tag} of an SDK harness DoFn uses the unknown access pattern {:?}",
                        access(si)
                    ))
                } else if !p.state_specs.is_empty() || !p.timer_family_specs.is_empty() {
                    Support::Sdk("stateful DoFn in an SDK harness (Fn API)")
                } else {
                    Support::Sdk("DoFn in an SDK harness (Fn API)")
                }
            }
            Some(u) if u == environments::DOCKER => Support::Unsupported(format!(
                "{}; DOCKER environments cannot start here (no Docker): use --environment_type=LOOPBACK, EXTERNAL or PROCESS",
                foreign_fn(fn_urn, "DoFn")
            )),
            _ => Support::Unsupported(foreign_fn(fn_urn, "DoFn")),
        };
    }
    if !p.state_specs.is_empty() || !p.timer_family_specs.is_empty() {
        return Support::Unsupported("user state and timers are not supported yet".into());
    }
    if !p.restriction_coder_id.is_empty() {
        return Support::Unsupported("splittable DoFns are not supported yet".into());
    }
    for (tag, si) in &p.side_inputs {
        let access = si
            .access_pattern
            .as_ref()
            .map(|a| a.urn.as_str())
            .unwrap_or("");
        if access != side_inputs::ITERABLE && access != side_inputs::MULTIMAP {
            return Support::Unsupported(format!(
                "side input {tag} uses unknown access pattern {access:?}"
            ));
        }
    }
    Support::Wasm("WASM DoFn")
}

fn environments_of<'a>(
    t: &PTransform,
    environments: &'a std::collections::HashMap<String, Environment>,
) -> Option<&'a Environment> {
    environments.get(&t.environment_id)
}

fn classify_combine(payload: &[u8]) -> Support {
    let p = match CombinePayload::decode(payload) {
        Ok(p) => p,
        Err(e) => return Support::Unsupported(format!("CombinePayload does not decode: {e}")),
    };
    let fn_urn = p.combine_fn.as_ref().map(|f| f.urn.as_str()).unwrap_or("");
    if fn_urn == ours::WASM_COMBINEFN {
        Support::Wasm("WASM CombineFn")
    } else if fn_urn == ours::BUILTIN_COMBINEFN {
        Support::Native("built-in combine")
    } else {
        Support::Unsupported(foreign_fn(fn_urn, "CombineFn"))
    }
}

fn foreign_fn(fn_urn: &str, what: &str) -> String {
    if fn_urn.contains("pickled_python") {
        format!(
            "pickled Python {what} ({fn_urn}): it needs a Python SDK harness; wasmbeam runs user functions compiled to WebAssembly components (use wasmbeam's Python transforms, or a guest SDK)"
        )
    } else if fn_urn.contains("java") {
        format!("Java {what} ({fn_urn}): it needs a Java SDK harness; wasmbeam runs user functions compiled to WebAssembly components")
    } else if fn_urn.is_empty() {
        format!("the {what} has no FunctionSpec URN")
    } else {
        format!(
            "{what} of unknown kind {fn_urn}; wasmbeam runs {} functions",
            ours::WASM_DOFN
        )
    }
}
