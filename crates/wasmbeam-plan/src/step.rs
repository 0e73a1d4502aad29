//! The typed plan: each transform the runner executes, decoded once into a
//! [`Step`].
//!
//! [`decode`] is the one place that reads transform URNs and payloads. Its
//! answer, a [`Verdict`], says both whether wasmbeam can run a transform and
//! what the transform is: a runner-native primitive with its parameters, a
//! WASM ParDo or combine with its UDF payload, or a step for an SDK harness
//! with its environment kind. `inspect` ([`Verdict::support`]), the job
//! server's tenant policy and the runner's translation all read these steps,
//! so a new transform family is taught to wasmbeam here, in one module.
//!
//! The steps stay logical: windowing is a [`Windowing`] in milliseconds, not
//! the engine's window function; the runner maps steps to physical
//! operators.

use std::collections::HashMap;

use prost::Message;
use wasmbeam_proto::pipeline::v1::{
    CombinePayload, Components, Environment, FixedWindowsPayload, FunctionSpec, PTransform,
    ParDoPayload, SessionWindowsPayload, SlidingWindowsPayload, WindowIntoPayload,
};
use wasmbeam_proto::urns::{
    fixed_windows_payload, global_windows_payload, session_windows_payload,
    sliding_windows_payload,
    standard_environments::environments,
    standard_p_transforms::{
        combine_components, composites, deprecated_primitives, primitives,
        splittable_par_do_components as sdf,
    },
    standard_side_input_types::enum_ as side_inputs,
};
use wasmbeam_proto::wasmbeam::v1::{
    BuiltinCombinePayload, GenerateSequencePayload, ReadTextPayload, WasmUdfPayload,
    WriteTextPayload,
};
use wasmbeam_proto::wasmbeam_urns as ours;

use crate::triggering::{decode_test_stream, TestStreamEvent, Triggering};

/// One executable transform, as the runner needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Beam's Impulse: one empty element in the global window.
    Impulse,
    /// wasmbeam's text reader.
    ReadText {
        /// File paths or glob patterns (never empty).
        patterns: Vec<String>,
        /// Keep watching the patterns, polling every this many ms: an
        /// unbounded read (the job runs as a stream).
        watch_ms: Option<i64>,
    },
    /// wasmbeam's text writer.
    WriteText {
        /// Output prefix (never empty).
        prefix: String,
        /// Output suffix.
        suffix: String,
        /// Number of shards (at least 1).
        shards: usize,
    },
    /// Flatten of its inputs.
    Flatten,
    /// Reshuffle (runner-native redistribution).
    Reshuffle,
    /// Window assignment done by the runner.
    AssignWindows(Windowing),
    /// GroupByKey; `windowing` and `triggering` are its input's.
    GroupByKey {
        /// How the input is windowed.
        windowing: Windowing,
        /// When its panes fire.
        triggering: Triggering,
    },
    /// CombinePerKey taken whole, with a combine function the runner runs.
    CombinePerKey {
        /// The combine function.
        combine: CombineFn,
        /// How the input is windowed.
        windowing: Windowing,
        /// When its panes fire.
        triggering: Triggering,
    },
    /// wasmbeam's generated sequence (unbounded without `stop`: the job
    /// runs as a stream).
    GenerateSequence {
        /// The first integer.
        start: i64,
        /// The end (exclusive), if any.
        stop: Option<i64>,
        /// Milliseconds between elements (at least 1).
        period_ms: i64,
    },
    /// Beam's TestStream: scripted elements, watermarks and processing
    /// time (the job runs as a stream).
    TestStream {
        /// The events, in order.
        events: Vec<TestStreamEvent>,
    },
    /// A ParDo whose DoFn is a WASM component.
    WasmParDo {
        /// The UDF payload.
        udf: WasmUdfPayload,
        /// Side inputs by tag, sorted by tag.
        side_inputs: Vec<(String, SideInputKind)>,
    },
    /// A transform run in an SDK harness over the Fn API.
    Sdk(SdkStep),
}

/// How a side input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideInputKind {
    /// All values, in one iterable.
    Iterable,
    /// Values by key.
    Multimap,
}

/// A combine function the runner runs itself.
#[derive(Debug, Clone, PartialEq)]
pub enum CombineFn {
    /// One of the runner's built-in combines, by name.
    Builtin(String),
    /// A WASM CombineFn component.
    Wasm(WasmUdfPayload),
}

/// What an SDK harness runs for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkStep {
    /// The kind of step.
    pub kind: SdkKind,
    /// How its harness is reached.
    pub environment: SdkEnvironment,
    /// The user function's URN (a DoFn's or CombineFn's), for messages.
    pub function_urn: String,
}

/// The kinds of SDK harness step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkKind {
    /// A plain DoFn (possibly with side inputs).
    DoFn,
    /// A DoFn with user state or timers: its input is keyed.
    StatefulDoFn,
    /// A splittable DoFn, or one of its expanded steps.
    SplittableDoFn,
    /// A lifted CombineFn phase (precombine, merge, extract, grouped values).
    CombinePhase,
    /// A window assignment that re-types its elements.
    WindowInto,
}

/// How an SDK harness is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkEnvironment {
    /// EXTERNAL (LOOPBACK included): a worker pool's `StartWorker`.
    External,
    /// PROCESS: a command the runner starts.
    Process,
}

impl SdkEnvironment {
    /// The tenant-policy name of the environment kind.
    pub fn policy_name(self) -> &'static str {
        match self {
            SdkEnvironment::External => "external",
            SdkEnvironment::Process => "process",
        }
    }
}

/// Beam's standard window functions, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windowing {
    /// The global window.
    Global,
    /// Fixed windows.
    Fixed {
        /// Window length.
        size_ms: i64,
        /// Offset from the epoch.
        offset_ms: i64,
    },
    /// Sliding windows.
    Sliding {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        period_ms: i64,
        /// Offset from the epoch.
        offset_ms: i64,
    },
    /// Session windows.
    Sessions {
        /// Gap duration.
        gap_ms: i64,
    },
}

fn millis(d: Option<&prost_types::Duration>) -> i64 {
    d.map_or(0, |d| {
        d.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(d.nanos) / 1_000_000)
    })
}

fn offset_millis(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos) / 1_000_000)
    })
}

impl Windowing {
    /// Decode a windowing strategy's `window_fn` (absent means global).
    pub fn decode(spec: Option<&FunctionSpec>) -> Result<Windowing, String> {
        let Some(f) = spec else {
            return Ok(Windowing::Global);
        };
        let bad =
            |e: prost::DecodeError| format!("window fn payload of {} does not decode: {e}", f.urn);
        let u = f.urn.as_str();
        Ok(
            if u == global_windows_payload::enum_::PROPERTIES || u.is_empty() {
                Windowing::Global
            } else if u == fixed_windows_payload::enum_::PROPERTIES {
                let p = FixedWindowsPayload::decode(f.payload.as_slice()).map_err(bad)?;
                Windowing::Fixed {
                    size_ms: millis(p.size.as_ref()),
                    offset_ms: offset_millis(p.offset.as_ref()),
                }
            } else if u == sliding_windows_payload::enum_::PROPERTIES {
                let p = SlidingWindowsPayload::decode(f.payload.as_slice()).map_err(bad)?;
                Windowing::Sliding {
                    size_ms: millis(p.size.as_ref()),
                    period_ms: millis(p.period.as_ref()),
                    offset_ms: offset_millis(p.offset.as_ref()),
                }
            } else if u == session_windows_payload::enum_::PROPERTIES {
                let p = SessionWindowsPayload::decode(f.payload.as_slice()).map_err(bad)?;
                Windowing::Sessions {
                    gap_ms: millis(p.gap_size.as_ref()),
                }
            } else if u.contains("pickled_python") {
                return Err(format!(
                "window fn {u} is a pickled Python WindowFn; the runner groups only Beam's standard windows (global, fixed, sliding, sessions)"
            ));
            } else {
                return Err(format!(
                    "window fn {u} is not supported (global, fixed, sliding and sessions are)"
                ));
            },
        )
    }

    /// The windowing of PCollection `pc_id`.
    pub fn of_pcollection(c: &Components, pc_id: &str) -> Result<Windowing, String> {
        let pc = c
            .pcollections
            .get(pc_id)
            .ok_or_else(|| format!("PCollection {pc_id:?} does not exist"))?;
        let ws = c
            .windowing_strategies
            .get(&pc.windowing_strategy_id)
            .ok_or_else(|| {
                format!(
                    "windowing strategy {:?} of PCollection {pc_id:?} does not exist",
                    pc.windowing_strategy_id
                )
            })?;
        Windowing::decode(ws.window_fn.as_ref())
    }
}

/// What the runner makes of one transform.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The runner executes it as this step.
    Run(Step),
    /// A composite, judged by its parts.
    Composite,
    /// It cannot run; the reason is for humans.
    Unsupported(String),
}

fn sdk_environment(t: &PTransform, envs: &HashMap<String, Environment>) -> Option<SdkEnvironment> {
    match envs.get(&t.environment_id).map(|e| e.urn.as_str()) {
        Some(u) if u == environments::EXTERNAL => Some(SdkEnvironment::External),
        Some(u) if u == environments::PROCESS => Some(SdkEnvironment::Process),
        _ => None,
    }
}

/// Decode `t` (a transform of the pipeline whose components are `c`).
pub fn decode(t: &PTransform, c: &Components) -> Verdict {
    let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
    let payload = t.spec.as_ref().map(|s| s.payload.as_slice()).unwrap_or(&[]);
    let has_parts = !t.subtransforms.is_empty();
    let sdk_env = sdk_environment(t, &c.environments);
    let input_windowing = || match t.inputs.values().next() {
        Some(pc) => Windowing::of_pcollection(c, pc)
            .and_then(|w| Ok((w, Triggering::of_pcollection(c, pc)?)))
            .map_err(|e| format!("its input: {e}")),
        None => Err("it has no input".into()),
    };
    let run = Verdict::Run;
    match urn {
        u if u == primitives::IMPULSE => run(Step::Impulse),
        u if u == primitives::FLATTEN => run(Step::Flatten),
        u if u == composites::RESHUFFLE => run(Step::Reshuffle),
        u if u == primitives::GROUP_BY_KEY => match input_windowing() {
            Ok((windowing, triggering)) => run(Step::GroupByKey {
                windowing,
                triggering,
            }),
            Err(e) => Verdict::Unsupported(e),
        },
        u if u == primitives::ASSIGN_WINDOWS => decode_window_into(t, c, payload, sdk_env),
        u if u == ours::READ_TEXT => match ReadTextPayload::decode(payload) {
            Ok(p) if p.patterns.is_empty() => {
                Verdict::Unsupported("read_text needs at least one file pattern".into())
            }
            Ok(p) => run(Step::ReadText {
                patterns: p.patterns,
                watch_ms: (p.watch_period_ms > 0).then_some(p.watch_period_ms),
            }),
            Err(e) => Verdict::Unsupported(format!("bad read_text payload: {e}")),
        },
        u if u == ours::GENERATE_SEQUENCE => match GenerateSequencePayload::decode(payload) {
            Ok(p) if p.period_ms < 1 => Verdict::Unsupported(format!(
                "generate_sequence needs period_ms of at least 1, not {}",
                p.period_ms
            )),
            Ok(p) if p.stop.is_some_and(|s| s < p.start) => Verdict::Unsupported(format!(
                "generate_sequence stops at {} before its start {}",
                p.stop.unwrap_or_default(),
                p.start
            )),
            Ok(p) => run(Step::GenerateSequence {
                start: p.start,
                stop: p.stop,
                period_ms: p.period_ms,
            }),
            Err(e) => Verdict::Unsupported(format!("bad generate_sequence payload: {e}")),
        },
        u if u == ours::WRITE_TEXT => match WriteTextPayload::decode(payload) {
            Ok(p) if p.prefix.is_empty() => {
                Verdict::Unsupported("write_text needs an output prefix".into())
            }
            Ok(p) => run(Step::WriteText {
                prefix: p.prefix,
                suffix: p.suffix,
                shards: p.num_shards.max(1) as usize,
            }),
            Err(e) => Verdict::Unsupported(format!("bad write_text payload: {e}")),
        },
        u if u == primitives::PAR_DO
            || u == sdf::PAIR_WITH_RESTRICTION
            || u == sdf::SPLIT_AND_SIZE_RESTRICTIONS
            || u == sdf::PROCESS_SIZED_ELEMENTS_AND_RESTRICTIONS =>
        {
            decode_pardo(payload, c.environments.get(&t.environment_id), sdk_env)
        }
        u if u == composites::COMBINE_PER_KEY => match combine_fn(payload) {
            Ok(combine) => match input_windowing() {
                Ok((windowing, triggering)) => run(Step::CombinePerKey {
                    combine,
                    windowing,
                    triggering,
                }),
                Err(_) if has_parts => Verdict::Composite,
                Err(e) => Verdict::Unsupported(e),
            },
            Err(_) if has_parts => Verdict::Composite,
            Err(r) => Verdict::Unsupported(r),
        },
        u if u == combine_components::COMBINE_PER_KEY_PRECOMBINE
            || u == combine_components::COMBINE_PER_KEY_MERGE_ACCUMULATORS
            || u == combine_components::COMBINE_PER_KEY_EXTRACT_OUTPUTS
            || u == combine_components::COMBINE_GROUPED_VALUES
            || u == composites::COMBINE_GLOBALLY =>
        {
            match combine_fn(payload) {
                _ if has_parts => Verdict::Composite,
                // A lifted phase of an SDK's CombineFn runs in its harness;
                // the GroupByKey between the phases is the runner's.
                Err(_) if u != composites::COMBINE_GLOBALLY && sdk_env.is_some() => {
                    run(Step::Sdk(SdkStep {
                        kind: SdkKind::CombinePhase,
                        environment: sdk_env.expect("checked"),
                        function_urn: CombinePayload::decode(payload)
                            .ok()
                            .and_then(|p| p.combine_fn)
                            .map(|f| f.urn)
                            .unwrap_or_default(),
                    }))
                }
                Err(r) => Verdict::Unsupported(r),
                Ok(_) => Verdict::Unsupported(format!(
                    "{u} outside its combine_per_key composite is not supported yet; submit the composite"
                )),
            }
        }
        _ if has_parts => Verdict::Composite,
        "" => Verdict::Unsupported("a leaf transform without a spec URN".into()),
        u if u == primitives::TEST_STREAM => match decode_test_stream(payload) {
            Ok(events) => run(Step::TestStream { events }),
            Err(e) => Verdict::Unsupported(e),
        },
        u if u == primitives::MAP_WINDOWS => {
            Verdict::Unsupported(format!("the primitive {u} is not implemented yet"))
        }
        u if u == deprecated_primitives::READ => Verdict::Unsupported(
            "Beam's deprecated Read primitive (a source object in an SDK's language) cannot run without that SDK; use wasmbeam's read_text transform".into(),
        ),
        u => Verdict::Unsupported(format!("unknown transform URN {u}")),
    }
}

/// A window assignment whose input and output PCollections have different
/// coders (Beam Python's `WindowInto` re-types a pickled tuple as a KV, for
/// instance), or whose window function only its SDK knows, runs in its SDK
/// harness; the runner assigns Beam's standard windows itself.
fn decode_window_into(
    t: &PTransform,
    c: &Components,
    payload: &[u8],
    sdk_env: Option<SdkEnvironment>,
) -> Verdict {
    let p = match WindowIntoPayload::decode(payload) {
        Ok(p) => p,
        Err(e) => return Verdict::Unsupported(format!("bad window_into payload: {e}")),
    };
    let coder = |pc: Option<&String>| {
        pc.and_then(|id| c.pcollections.get(id))
            .map(|p| p.coder_id.as_str())
    };
    let retyped = coder(t.inputs.values().next()) != coder(t.outputs.values().next());
    let fn_urn = p
        .window_fn
        .as_ref()
        .map(|f| f.urn.clone())
        .unwrap_or_default();
    match (Windowing::decode(p.window_fn.as_ref()), sdk_env) {
        (Ok(w), _) if !retyped || sdk_env.is_none() => Verdict::Run(Step::AssignWindows(w)),
        (_, Some(environment)) => Verdict::Run(Step::Sdk(SdkStep {
            kind: SdkKind::WindowInto,
            environment,
            function_urn: fn_urn,
        })),
        (Err(e), None) => Verdict::Unsupported(e),
        (Ok(_), None) => unreachable!("the first arm takes every runner-side case"),
    }
}

fn decode_pardo(
    payload: &[u8],
    env: Option<&Environment>,
    sdk_env: Option<SdkEnvironment>,
) -> Verdict {
    let p = match ParDoPayload::decode(payload) {
        Ok(p) => p,
        Err(e) => return Verdict::Unsupported(format!("ParDoPayload does not decode: {e}")),
    };
    let fn_urn = p.do_fn.as_ref().map(|f| f.urn.as_str()).unwrap_or("");
    let mut sides = Vec::new();
    let mut tags: Vec<_> = p.side_inputs.iter().collect();
    tags.sort_by(|a, b| a.0.cmp(b.0));
    for (tag, si) in tags {
        let access = si
            .access_pattern
            .as_ref()
            .map(|a| a.urn.as_str())
            .unwrap_or("");
        let kind = if access == side_inputs::ITERABLE {
            SideInputKind::Iterable
        } else if access == side_inputs::MULTIMAP {
            SideInputKind::Multimap
        } else {
            return Verdict::Unsupported(format!(
                "side input {tag} uses the unknown access pattern {access:?}"
            ));
        };
        sides.push((tag.clone(), kind));
    }
    let stateful = !p.state_specs.is_empty() || !p.timer_family_specs.is_empty();
    let splittable = !p.restriction_coder_id.is_empty();
    if fn_urn != ours::WASM_DOFN {
        if let Some(environment) = sdk_env {
            let kind = if splittable {
                SdkKind::SplittableDoFn
            } else if stateful {
                SdkKind::StatefulDoFn
            } else {
                SdkKind::DoFn
            };
            return Verdict::Run(Step::Sdk(SdkStep {
                kind,
                environment,
                function_urn: fn_urn.to_string(),
            }));
        }
        if env.is_some_and(|e| e.urn == environments::DOCKER) {
            return Verdict::Unsupported(format!(
                "{}; DOCKER environments cannot start here (no Docker): use --environment_type=LOOPBACK, EXTERNAL or PROCESS",
                foreign_fn(fn_urn, "DoFn")
            ));
        }
        return Verdict::Unsupported(foreign_fn(fn_urn, "DoFn"));
    }
    if stateful {
        return Verdict::Unsupported("user state and timers are not supported yet".into());
    }
    if splittable {
        return Verdict::Unsupported("splittable DoFns are not supported yet".into());
    }
    let spec = p.do_fn.unwrap_or_default();
    match WasmUdfPayload::decode(spec.payload.as_slice()) {
        Ok(udf) => Verdict::Run(Step::WasmParDo {
            udf,
            side_inputs: sides,
        }),
        Err(e) => Verdict::Unsupported(format!("bad WASM UDF payload: {e}")),
    }
}

fn combine_fn(payload: &[u8]) -> Result<CombineFn, String> {
    let p = CombinePayload::decode(payload)
        .map_err(|e| format!("CombinePayload does not decode: {e}"))?;
    let f = p.combine_fn.unwrap_or_default();
    if f.urn == ours::WASM_COMBINEFN {
        WasmUdfPayload::decode(f.payload.as_slice())
            .map(CombineFn::Wasm)
            .map_err(|e| format!("bad WASM UDF payload: {e}"))
    } else if f.urn == ours::BUILTIN_COMBINEFN {
        BuiltinCombinePayload::decode(f.payload.as_slice())
            .map(|b| CombineFn::Builtin(b.name))
            .map_err(|e| format!("bad built-in combine payload: {e}"))
    } else {
        Err(foreign_fn(&f.urn, "CombineFn"))
    }
}

/// Why a user function in another language cannot run without its SDK.
pub fn foreign_fn(fn_urn: &str, what: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbeam_proto::pipeline::v1::{PCollection, SideInput, WindowingStrategy};

    fn spec(urn: &str, payload: Vec<u8>) -> Option<FunctionSpec> {
        Some(FunctionSpec {
            urn: urn.into(),
            payload,
        })
    }

    /// Components with PCollections `in` (windowed by `window_fn`) and
    /// `out`, and environments `py` (EXTERNAL) and `docker`.
    fn components(window_fn: Option<FunctionSpec>, in_coder: &str) -> Components {
        let mut c = Components::default();
        c.windowing_strategies.insert(
            "ws".into(),
            WindowingStrategy {
                window_fn,
                ..Default::default()
            },
        );
        for (id, coder) in [("in", in_coder), ("out", "c")] {
            c.pcollections.insert(
                id.into(),
                PCollection {
                    coder_id: coder.into(),
                    windowing_strategy_id: "ws".into(),
                    ..Default::default()
                },
            );
        }
        for (id, urn) in [
            ("py", environments::EXTERNAL),
            ("docker", environments::DOCKER),
        ] {
            c.environments.insert(
                id.into(),
                Environment {
                    urn: urn.into(),
                    ..Default::default()
                },
            );
        }
        c
    }

    fn transform(urn: &str, payload: Vec<u8>, env: &str) -> PTransform {
        PTransform {
            spec: spec(urn, payload),
            inputs: [("i".to_string(), "in".to_string())].into(),
            outputs: [("o".to_string(), "out".to_string())].into(),
            environment_id: env.into(),
            ..Default::default()
        }
    }

    fn pickled_window_fn() -> Option<FunctionSpec> {
        spec("beam:window_fn:pickled_python:v1", b"opaque".to_vec())
    }

    #[test]
    fn group_by_key_carries_its_input_windowing_and_refuses_pickled_windows() {
        let fixed = FixedWindowsPayload {
            size: Some(prost_types::Duration {
                seconds: 60,
                nanos: 0,
            }),
            offset: None,
        };
        let c = components(
            spec(
                fixed_windows_payload::enum_::PROPERTIES,
                fixed.encode_to_vec(),
            ),
            "c",
        );
        let gbk = transform(primitives::GROUP_BY_KEY, vec![], "");
        assert_eq!(
            decode(&gbk, &c),
            Verdict::Run(Step::GroupByKey {
                windowing: Windowing::Fixed {
                    size_ms: 60_000,
                    offset_ms: 0
                },
                triggering: Triggering::default(),
            })
        );
        let c = components(pickled_window_fn(), "c");
        match decode(&gbk, &c) {
            Verdict::Unsupported(r) => {
                assert!(r.contains("pickled Python WindowFn"), "{r}")
            }
            v => panic!("expected a refusal, got {v:?}"),
        }
    }

    #[test]
    fn window_into_runs_in_the_runner_unless_its_sdk_must() {
        let payload = |wf| WindowIntoPayload { window_fn: wf }.encode_to_vec();
        // Standard windows, same coder: the runner assigns them.
        let c = components(None, "c");
        let global = spec(global_windows_payload::enum_::PROPERTIES, vec![]);
        let t = transform(primitives::ASSIGN_WINDOWS, payload(global.clone()), "py");
        assert_eq!(
            decode(&t, &c),
            Verdict::Run(Step::AssignWindows(Windowing::Global))
        );
        // A re-typing WindowInto, or a pickled WindowFn, runs in the harness.
        let c2 = components(None, "pickled");
        let sdk = |v: Verdict| {
            matches!(
                v,
                Verdict::Run(Step::Sdk(SdkStep {
                    kind: SdkKind::WindowInto,
                    environment: SdkEnvironment::External,
                    ..
                }))
            )
        };
        assert!(sdk(decode(&t, &c2)));
        let t = transform(
            primitives::ASSIGN_WINDOWS,
            payload(pickled_window_fn()),
            "py",
        );
        assert!(sdk(decode(&t, &c)));
        // Without an SDK environment, a pickled WindowFn cannot run.
        let t = transform(primitives::ASSIGN_WINDOWS, payload(pickled_window_fn()), "");
        assert!(matches!(decode(&t, &c), Verdict::Unsupported(r) if r.contains("pickled")));
    }

    #[test]
    fn pardos_are_typed_by_function_and_environment() {
        let c = components(None, "c");
        let pickled = |state: bool| {
            let mut p = ParDoPayload {
                do_fn: spec("beam:dofn:pickled_python_info:v1", vec![]),
                ..Default::default()
            };
            if state {
                p.state_specs.insert("s".into(), Default::default());
            }
            p.encode_to_vec()
        };
        let kind = |v: Verdict| match v {
            Verdict::Run(Step::Sdk(s)) => Some(s.kind),
            _ => None,
        };
        let t = transform(primitives::PAR_DO, pickled(false), "py");
        assert_eq!(kind(decode(&t, &c)), Some(SdkKind::DoFn));
        let t = transform(primitives::PAR_DO, pickled(true), "py");
        assert_eq!(kind(decode(&t, &c)), Some(SdkKind::StatefulDoFn));
        let t = transform(primitives::PAR_DO, pickled(false), "docker");
        assert!(
            matches!(decode(&t, &c), Verdict::Unsupported(r) if r.contains("DOCKER") && r.contains("LOOPBACK"))
        );
        // A WASM DoFn keeps its payload and its side inputs, sorted by tag.
        let side = |urn: &str| SideInput {
            access_pattern: spec(urn, vec![]),
            ..Default::default()
        };
        let udf = WasmUdfPayload {
            config: b"cfg".to_vec(),
            ..Default::default()
        };
        let p = ParDoPayload {
            do_fn: spec(ours::WASM_DOFN, udf.encode_to_vec()),
            side_inputs: [
                ("z".to_string(), side(side_inputs::ITERABLE)),
                ("a".to_string(), side(side_inputs::MULTIMAP)),
            ]
            .into(),
            ..Default::default()
        };
        let t = transform(primitives::PAR_DO, p.encode_to_vec(), "");
        assert_eq!(
            decode(&t, &c),
            Verdict::Run(Step::WasmParDo {
                udf,
                side_inputs: vec![
                    ("a".into(), SideInputKind::Multimap),
                    ("z".into(), SideInputKind::Iterable)
                ]
            })
        );
    }

    #[test]
    fn text_io_without_paths_is_refused_at_planning() {
        let c = components(None, "c");
        let t = transform(
            ours::READ_TEXT,
            ReadTextPayload::default().encode_to_vec(),
            "",
        );
        assert!(matches!(decode(&t, &c), Verdict::Unsupported(r) if r.contains("file pattern")));
        let w = WriteTextPayload {
            prefix: "/tmp/x".into(),
            num_shards: 0,
            ..Default::default()
        };
        let t = transform(ours::WRITE_TEXT, w.encode_to_vec(), "");
        assert_eq!(
            decode(&t, &c),
            Verdict::Run(Step::WriteText {
                prefix: "/tmp/x".into(),
                suffix: String::new(),
                shards: 1
            })
        );
    }
}
