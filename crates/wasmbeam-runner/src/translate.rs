//! From a validated Beam `Pipeline` to the engine's graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use wasmbeam_coders::coder_from_proto;
use wasmbeam_engine::{Graph, OpKind, PcId, TextSink, WindowFn};
use wasmbeam_plan::step::{CombineFn, SideInputKind as PlanSideInput};
use wasmbeam_plan::{PipelineView, Step, Verdict, Windowing};
use wasmbeam_proto::pipeline::v1 as pb;

use crate::streaming::{retype_test_streams, stream_events, triggering};
use wasmbeam_proto::urns::standard_artifacts;
use wasmbeam_proto::wasmbeam::v1 as ours;
use wasmbeam_proto::wasmbeam_urns;
use wasmbeam_wasm_host::{
    CombineFnPool, DoFnSpec, Grants, Limits, SideInputKind, UdfComponent, UdfHost, UdfKind,
};

use crate::builtin::Builtin;
use crate::codec::CoderKv;
use crate::sdk::{self, SdkHarnesses};
use crate::udf::{WasmCombine, WasmDoFn};
use crate::RunnerError;

/// Settings that shape translation.
#[derive(Clone)]
pub struct TranslateOptions {
    /// Where relative artifact paths are resolved.
    pub base_dir: PathBuf,
    /// Limits for every UDF instance.
    pub limits: Limits,
    /// Grants for every UDF instance.
    pub grants: Grants,
    /// How many times a failed SDK harness bundle is tried in all.
    pub bundle_attempts: u32,
    /// SDK harnesses per environment.
    pub sdk_workers: usize,
    /// The job's pipeline options, for harnesses.
    pub pipeline_options: prost_types::Struct,
    /// The interpreter of the built-in Python PROCESS command.
    pub sdk_python: Option<PathBuf>,
}

/// The engine graph plus handles for metrics.
pub struct Translated {
    /// The graph to run.
    pub graph: Graph,
    /// PCollection ids of the graph, by Beam PCollection id.
    pub pcollections: HashMap<String, PcId>,
    /// WASM DoFns by transform unique name, for user metrics.
    pub dofns: Vec<(String, Arc<WasmDoFn>)>,
    /// The job's SDK harnesses, when it has SDK ParDos; they stop when
    /// this is dropped.
    pub sdk: Option<Arc<SdkHarnesses>>,
}

fn err(id: &str, t: &pb::PTransform, msg: impl Into<String>) -> RunnerError {
    RunnerError::Transform {
        id: id.to_string(),
        name: t.unique_name.clone(),
        message: msg.into(),
    }
}

/// The engine window function for the plan's windowing, checked.
pub fn window_fn(w: Windowing) -> Result<WindowFn, String> {
    let wf = match w {
        Windowing::Global => WindowFn::Global,
        Windowing::Fixed { size_ms, offset_ms } => WindowFn::Fixed {
            size: size_ms,
            offset: offset_ms,
        },
        Windowing::Sliding {
            size_ms,
            period_ms,
            offset_ms,
        } => WindowFn::Sliding {
            size: size_ms,
            period: period_ms,
            offset: offset_ms,
        },
        Windowing::Sessions { gap_ms } => WindowFn::Sessions { gap: gap_ms },
    };
    wf.check().map(|()| wf)
}

/// Loads components named by WASM payloads, once per content hash.
pub struct Components<'a> {
    host: &'a UdfHost,
    base_dir: PathBuf,
    loaded: HashMap<String, UdfComponent>,
}

impl<'a> Components<'a> {
    /// A loader resolving relative paths against `base_dir`.
    pub fn new(host: &'a UdfHost, base_dir: PathBuf) -> Self {
        Components {
            host,
            base_dir,
            loaded: HashMap::new(),
        }
    }

    fn bytes_of(&self, dep: &pb::ArtifactInformation) -> Result<(String, Vec<u8>, String), String> {
        let t = dep.type_urn.as_str();
        if t == standard_artifacts::types::FILE {
            let p = pb::ArtifactFilePayload::decode(dep.type_payload.as_slice())
                .map_err(|e| format!("bad file artifact payload: {e}"))?;
            let path = if Path::new(&p.path).is_absolute() {
                PathBuf::from(&p.path)
            } else {
                self.base_dir.join(&p.path)
            };
            let bytes = std::fs::read(&path)
                .map_err(|e| format!("cannot read component {}: {e}", path.display()))?;
            Ok((path.display().to_string(), bytes, p.sha256))
        } else if t == standard_artifacts::types::URL {
            let p = pb::ArtifactUrlPayload::decode(dep.type_payload.as_slice())
                .map_err(|e| format!("bad url artifact payload: {e}"))?;
            let path = p.url.strip_prefix("file://").ok_or_else(|| {
                format!("cannot fetch {}: only file:// URLs are supported", p.url)
            })?;
            let bytes =
                std::fs::read(path).map_err(|e| format!("cannot read component {path}: {e}"))?;
            Ok((p.url.clone(), bytes, p.sha256))
        } else if t == standard_artifacts::types::EMBEDDED {
            let p = pb::EmbeddedFilePayload::decode(dep.type_payload.as_slice())
                .map_err(|e| format!("bad embedded artifact payload: {e}"))?;
            Ok(("<embedded component>".into(), p.data, String::new()))
        } else {
            Err(format!(
                "artifact type {t} is not supported for components (file, url and embedded are)"
            ))
        }
    }

    /// The component a payload names, from the environment's dependencies.
    pub fn resolve(
        &mut self,
        env: Option<&pb::Environment>,
        payload: &ours::WasmUdfPayload,
    ) -> Result<UdfComponent, String> {
        let env = env.ok_or("the transform has no environment to hold its component")?;
        if env.urn != wasmbeam_urns::WASM_ENVIRONMENT {
            return Err(format!(
                "its environment is {:?}, not a WASM environment ({})",
                env.urn,
                wasmbeam_urns::WASM_ENVIRONMENT
            ));
        }
        let staged_name = |d: &pb::ArtifactInformation| {
            pb::ArtifactStagingToRolePayload::decode(d.role_payload.as_slice())
                .map(|r| r.staged_name)
                .unwrap_or_default()
        };
        let dep = if payload.artifact.is_empty() && env.dependencies.len() == 1 {
            &env.dependencies[0]
        } else {
            env.dependencies.iter().find(|d| staged_name(d) == payload.artifact).ok_or_else(|| {
                let names: Vec<String> = env.dependencies.iter().map(staged_name).collect();
                format!("component artifact {:?} is not among the environment's dependencies {names:?}", payload.artifact)
            })?
        };
        let (name, bytes, dep_sha) = self.bytes_of(dep)?;
        let sha = hex::encode(Sha256::digest(&bytes));
        for want in [&payload.sha256, &dep_sha] {
            if !want.is_empty() && !want.eq_ignore_ascii_case(&sha) {
                return Err(format!(
                    "component {name} has sha256 {sha}, but the pipeline expects {want}"
                ));
            }
        }
        if let Some(c) = self.loaded.get(&sha) {
            return Ok(c.clone());
        }
        let c = self.host.load(&name, &bytes).map_err(|e| e.to_string())?;
        self.loaded.insert(sha, c.clone());
        Ok(c)
    }
}

/// Translate `pipeline`. Every unsupported transform is reported at once.
pub fn translate(
    pipeline: &pb::Pipeline,
    host: &UdfHost,
    opts: &TranslateOptions,
) -> Result<Translated, RunnerError> {
    let view = PipelineView::new(pipeline).map_err(|e| RunnerError::Invalid(e.to_string()))?;
    let findings = view.unsupported();
    if !findings.is_empty() {
        return Err(RunnerError::Unsupported(findings));
    }
    // A TestStream's elements are encoded in its payload's coder, which
    // SDKs do not always declare on its output: declare it there.
    let retyped = retype_test_streams(pipeline);
    let pipeline = retyped.as_ref().unwrap_or(pipeline);
    // Physical plan: splittable DoFns become their three harness steps.
    let expanded = sdk::expand_splittable(pipeline).map_err(RunnerError::Invalid)?;
    let pipeline = expanded.as_ref().unwrap_or(pipeline);
    let view = PipelineView::new(pipeline).map_err(|e| RunnerError::Invalid(e.to_string()))?;
    let fused = {
        let units = view.execution_units();
        let units: Vec<(&str, &pb::PTransform, bool)> = units
            .iter()
            .map(|(id, t, v)| (*id, *t, matches!(v, Verdict::Run(Step::Sdk(_)))))
            .collect();
        sdk::fuse(&units)
    };
    let c = view.components;
    let mut graph = Graph::default();
    let mut pcs: HashMap<String, PcId> = HashMap::new();
    let mut pc = |graph: &mut Graph, id: &str| -> PcId {
        if let Some(&x) = pcs.get(id) {
            return x;
        }
        let name = c
            .pcollections
            .get(id)
            .map(|p| p.unique_name.clone())
            .unwrap_or_else(|| id.to_string());
        let x = graph.add_pcollection(name);
        pcs.insert(id.to_string(), x);
        x
    };
    let mut comps = Components::new(host, opts.base_dir.clone());
    let mut dofns = Vec::new();
    let mut sdk: Option<Arc<SdkHarnesses>> = None;
    let coder_of = |pc_id: &str| -> Result<wasmbeam_coders::Coder, String> {
        let p = &c.pcollections[pc_id];
        coder_from_proto(&p.coder_id, &c.coders).map_err(|e| e.to_string())
    };
    // write_text may declare an output (Beam's client drops leaf transforms
    // without one); nothing fills it, so nothing may read it.
    let mut written: HashMap<&String, &str> = HashMap::new();
    for (_, t, v) in view.execution_units() {
        if matches!(v, Verdict::Run(Step::WriteText { .. })) {
            for o in t.outputs.values() {
                written.insert(o, t.unique_name.as_str());
            }
        }
    }
    for (id, t, verdict) in view.execution_units() {
        let step = match verdict {
            Verdict::Unsupported(reason) => return Err(err(id, t, reason)),
            Verdict::Composite => continue,
            Verdict::Run(step) => step,
        };
        let mut inputs: Vec<(&String, &String)> = t.inputs.iter().collect();
        inputs.sort();
        if let Some((_, w)) = inputs.iter().find_map(|(_, p)| written.get_key_value(p)) {
            return Err(err(
                id,
                t,
                format!(
                    "it reads the output of write_text {w:?}, which wasmbeam does not produce yet"
                ),
            ));
        }
        let mut outputs: Vec<(&String, &String)> = t.outputs.iter().collect();
        outputs.sort();
        let single_in = |what: &str| -> Result<String, RunnerError> {
            match inputs.as_slice() {
                [(_, p)] => Ok((*p).clone()),
                _ => Err(err(
                    id,
                    t,
                    format!("{what} needs exactly one input, found {}", inputs.len()),
                )),
            }
        };
        let single_out = |what: &str| -> Result<String, RunnerError> {
            match outputs.as_slice() {
                [(_, p)] => Ok((*p).clone()),
                _ => Err(err(
                    id,
                    t,
                    format!("{what} needs exactly one output, found {}", outputs.len()),
                )),
            }
        };
        let name = t.unique_name.clone();
        match step {
            Step::Impulse => {
                let o = pc(&mut graph, &single_out("impulse")?);
                graph.add_op(name, OpKind::Impulse, vec![], vec![o]);
            }
            Step::GenerateSequence {
                start,
                stop,
                period_ms,
            } => {
                let o = pc(&mut graph, &single_out("generate_sequence")?);
                graph.add_op(
                    name,
                    OpKind::GenerateSequence {
                        start,
                        stop,
                        period_ms,
                    },
                    vec![],
                    vec![o],
                );
            }
            Step::TestStream { events } => {
                // One engine source with an output per tag, so events keep
                // their order across tags and processing time moves once.
                let tags: Vec<&str> = outputs.iter().map(|(tag, _)| tag.as_str()).collect();
                let events = stream_events(&events, &tags).map_err(|e| err(id, t, e))?;
                let outs: Vec<PcId> = outputs.iter().map(|(_, p)| pc(&mut graph, p)).collect();
                graph.add_op(name, OpKind::TestStream(events), vec![], outs);
            }
            Step::ReadText { patterns, watch_ms } => {
                let o = pc(&mut graph, &single_out("read_text")?);
                let kind = match watch_ms {
                    Some(poll_ms) => OpKind::WatchText { patterns, poll_ms },
                    None => OpKind::ReadText { patterns },
                };
                graph.add_op(name, kind, vec![], vec![o]);
            }
            Step::WriteText {
                prefix,
                suffix,
                shards,
            } => {
                let i = pc(&mut graph, &single_in("write_text")?);
                let sink = TextSink {
                    prefix,
                    suffix,
                    shards,
                };
                graph.add_op(name, OpKind::WriteText(sink), vec![i], vec![]);
            }
            Step::Flatten => {
                let out = single_out("flatten")?;
                let mut ins: Vec<PcId> = Vec::new();
                for (_, p) in &inputs {
                    // An input in another encoding is re-encoded first.
                    let start = |sdk: &mut Option<Arc<SdkHarnesses>>| -> Result<_, String> {
                        Ok(harnesses(sdk, opts)?.clone())
                    };
                    match sdk::transcode_step(|| start(&mut sdk), c, id, p, &out)
                        .map_err(|m| err(id, t, m))?
                    {
                        Some(step) => {
                            let i = pc(&mut graph, &step.input);
                            let o = pc(&mut graph, &step.outputs[0]);
                            graph.add_op(step.name, step.kind, vec![i], vec![o]);
                            ins.push(o);
                        }
                        None => ins.push(pc(&mut graph, p)),
                    }
                }
                let o = pc(&mut graph, &out);
                graph.add_op(name, OpKind::Flatten, ins, vec![o]);
            }
            Step::Reshuffle => {
                let i = pc(&mut graph, &single_in("reshuffle")?);
                let o = pc(&mut graph, &single_out("reshuffle")?);
                graph.add_op(name, OpKind::Reshuffle, vec![i], vec![o]);
            }
            Step::AssignWindows(w) => {
                let wf = window_fn(w).map_err(|e| err(id, t, e))?;
                let i = pc(&mut graph, &single_in("window_into")?);
                let o = pc(&mut graph, &single_out("window_into")?);
                graph.add_op(name, OpKind::AssignWindows(wf), vec![i], vec![o]);
            }
            Step::GroupByKey {
                ref windowing,
                triggering: ref trig,
            }
            | Step::CombinePerKey {
                ref windowing,
                triggering: ref trig,
                ..
            } => {
                let windowing = windowing.clone();
                let trig = triggering(trig).map_err(|e| err(id, t, e))?;
                let input = single_in("grouping")?;
                let codec = CoderKv::new(coder_of(&input).map_err(|e| err(id, t, e))?)
                    .map_err(|e| err(id, t, e))?;
                let wf = window_fn(windowing).map_err(|e| err(id, t, e))?;
                let combine: Option<Arc<dyn wasmbeam_engine::CombineExec>> = match &step {
                    Step::CombinePerKey {
                        combine: CombineFn::Builtin(b),
                        ..
                    } => Some(Arc::new(Builtin::from_name(b).map_err(|e| err(id, t, e))?)),
                    Step::CombinePerKey {
                        combine: CombineFn::Wasm(w),
                        ..
                    } => {
                        let comp = comps
                            .resolve(c.environments.get(&t.environment_id), w)
                            .map_err(|e| err(id, t, e))?;
                        if comp.kind() != UdfKind::CombineFn {
                            return Err(err(
                                id,
                                t,
                                format!(
                                    "component {} is a {}, but combine_per_key needs a CombineFn",
                                    comp.name(),
                                    comp.kind()
                                ),
                            ));
                        }
                        let pool = CombineFnPool::new(
                            comp,
                            w.config.clone(),
                            opts.limits.clone(),
                            opts.grants.clone(),
                        )
                        .map_err(|e| err(id, t, e.to_string()))?;
                        Some(Arc::new(WasmCombine::new(pool)))
                    }
                    _ => None,
                };
                let i = pc(&mut graph, &input);
                let o = pc(&mut graph, &single_out("grouping")?);
                graph.add_op(
                    name,
                    OpKind::GroupByKey {
                        codec: Arc::new(codec),
                        window_fn: wf,
                        combine,
                        triggering: trig,
                    },
                    vec![i],
                    vec![o],
                );
            }
            Step::Sdk(_) => {
                // A transform fused into another's step is run by that step.
                if fused.head_of.get(id).is_some_and(|h| h != id) {
                    continue;
                }
                let side_tags = sdk::side_tags(t).map_err(|m| err(id, t, m))?;
                let mut side_inputs = Vec::new();
                for tag in &side_tags {
                    let pcid = t.inputs.get(tag).ok_or_else(|| {
                        err(
                            id,
                            t,
                            format!("side input {tag:?} has no input PCollection"),
                        )
                    })?;
                    side_inputs.push((tag.clone(), pc(&mut graph, pcid)));
                }
                let harnesses = harnesses(&mut sdk, opts).map_err(RunnerError::Host)?;
                let one = [id.to_string()];
                let members = fused.members.get(id).map(|m| m.as_slice()).unwrap_or(&one);
                let exported = fused.exported.get(id).map(|e| e.as_slice()).unwrap_or(&[]);
                let x = sdk::Transform {
                    id,
                    name: &name,
                    side_tags: &side_tags,
                    side_inputs,
                    members,
                    exported,
                };
                for step in sdk::steps(harnesses, c, x).map_err(|m| err(id, t, m))? {
                    let i = pc(&mut graph, &step.input);
                    let outs = step.outputs.iter().map(|o| pc(&mut graph, o)).collect();
                    graph.add_op(step.name, step.kind, vec![i], outs);
                }
            }
            Step::WasmParDo { udf, side_inputs } => {
                let comp = comps
                    .resolve(c.environments.get(&t.environment_id), &udf)
                    .map_err(|e| err(id, t, e))?;
                if comp.kind() != UdfKind::DoFn {
                    return Err(err(
                        id,
                        t,
                        format!(
                            "component {} is a {}, but a ParDo needs a DoFn",
                            comp.name(),
                            comp.kind()
                        ),
                    ));
                }
                let main: Vec<_> = inputs
                    .iter()
                    .filter(|(tag, _)| !side_inputs.iter().any(|(s, _)| s == *tag))
                    .collect();
                let [(_, main)] = main.as_slice() else {
                    return Err(err(
                        id,
                        t,
                        format!("a ParDo needs exactly one main input, found {}", main.len()),
                    ));
                };
                let mut side_pcs = Vec::new();
                let mut side_kinds = Vec::new();
                for (tag, kind) in side_inputs {
                    let pcid = t.inputs.get(&tag).ok_or_else(|| {
                        err(
                            id,
                            t,
                            format!("side input {tag:?} has no input PCollection"),
                        )
                    })?;
                    let kind = match kind {
                        PlanSideInput::Multimap => SideInputKind::Multimap,
                        PlanSideInput::Iterable => SideInputKind::Iterable,
                    };
                    side_pcs.push((tag.clone(), pc(&mut graph, pcid)));
                    side_kinds.push((tag, kind));
                }
                // Output order: the payload's list (main first), else the only output, else by tag.
                let tags: Vec<String> = if !udf.outputs.is_empty() {
                    udf.outputs.clone()
                } else {
                    outputs.iter().map(|(tag, _)| (*tag).clone()).collect()
                };
                let mut outs = Vec::new();
                for tag in &tags {
                    let pcid = t.outputs.get(tag).ok_or_else(|| {
                        err(
                            id,
                            t,
                            format!(
                                "the UDF names output {tag:?}, which the transform does not have"
                            ),
                        )
                    })?;
                    outs.push(pc(&mut graph, pcid));
                }
                let spec = DoFnSpec {
                    config: udf.config,
                    outputs: tags,
                    side_inputs: vec![],
                    limits: opts.limits.clone(),
                    grants: opts.grants.clone(),
                };
                let info = comp
                    .describe(&spec.config, &opts.limits)
                    .map_err(|e| err(id, t, e.to_string()))?;
                let n_outputs = spec.outputs.len();
                let exec = Arc::new(WasmDoFn::new(comp, spec, side_kinds));
                dofns.push((name.clone(), exec.clone()));
                let i = pc(&mut graph, main);
                let kind = if info.is_stateful() {
                    crate::stateful::keyed_op(c, main, exec, info, n_outputs, side_pcs)
                        .map_err(|m| err(id, t, m))?
                } else {
                    OpKind::ParDo {
                        exec,
                        side_inputs: side_pcs,
                    }
                };
                graph.add_op(name, kind, vec![i], outs);
            }
        }
    }
    Ok(Translated {
        graph,
        pcollections: pcs,
        dofns,
        sdk,
    })
}

/// The job's SDK harnesses, started on first use.
fn harnesses<'s>(
    sdk: &'s mut Option<Arc<SdkHarnesses>>,
    opts: &TranslateOptions,
) -> Result<&'s Arc<SdkHarnesses>, String> {
    if sdk.is_none() {
        let cancel = opts.limits.interrupt.as_ref().map(|i| i.0.clone());
        *sdk = Some(Arc::new(SdkHarnesses::new(sdk::HarnessSettings {
            cancel,
            attempts: opts.bundle_attempts,
            parallelism: opts.sdk_workers,
            pipeline_options: opts.pipeline_options.clone(),
            python: opts.sdk_python.clone(),
        })?));
    }
    Ok(sdk.as_ref().expect("just set"))
}
