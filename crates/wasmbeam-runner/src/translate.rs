//! From a validated Beam `Pipeline` to the engine's graph.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use sha2::{Digest, Sha256};
use wasmbeam_coders::coder_from_proto;
use wasmbeam_engine::{Graph, OpKind, PcId, TextSink, WindowFn};
use wasmbeam_plan::{PipelineView, Support};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::{
    fixed_windows_payload, global_windows_payload, session_windows_payload,
    sliding_windows_payload, standard_artifacts,
    standard_p_transforms::{composites, primitives},
    standard_side_input_types,
};
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

/// The engine window function for a windowing strategy's `window_fn`.
pub fn window_fn(spec: Option<&pb::FunctionSpec>) -> Result<WindowFn, String> {
    let Some(f) = spec else {
        return Ok(WindowFn::Global);
    };
    let bad =
        |e: prost::DecodeError| format!("window fn payload of {} does not decode: {e}", f.urn);
    let u = f.urn.as_str();
    if u == global_windows_payload::enum_::PROPERTIES || u.is_empty() {
        Ok(WindowFn::Global)
    } else if u == fixed_windows_payload::enum_::PROPERTIES {
        let p = pb::FixedWindowsPayload::decode(f.payload.as_slice()).map_err(bad)?;
        let wf = WindowFn::Fixed {
            size: millis(p.size.as_ref()),
            offset: offset_millis(p.offset.as_ref()),
        };
        wf.check().map(|()| wf)
    } else if u == sliding_windows_payload::enum_::PROPERTIES {
        let p = pb::SlidingWindowsPayload::decode(f.payload.as_slice()).map_err(bad)?;
        let wf = WindowFn::Sliding {
            size: millis(p.size.as_ref()),
            period: millis(p.period.as_ref()),
            offset: offset_millis(p.offset.as_ref()),
        };
        wf.check().map(|()| wf)
    } else if u == session_windows_payload::enum_::PROPERTIES {
        let p = pb::SessionWindowsPayload::decode(f.payload.as_slice()).map_err(bad)?;
        let wf = WindowFn::Sessions {
            gap: millis(p.gap_size.as_ref()),
        };
        wf.check().map(|()| wf)
    } else {
        Err(format!(
            "window fn {u} is not supported (global, fixed, sliding and sessions are)"
        ))
    }
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
    // Physical plan: splittable DoFns become their three harness steps.
    let expanded = sdk::expand_splittable(pipeline).map_err(RunnerError::Invalid)?;
    let pipeline = expanded.as_ref().unwrap_or(pipeline);
    let view = PipelineView::new(pipeline).map_err(|e| RunnerError::Invalid(e.to_string()))?;
    let fused = {
        let units = view.execution_units();
        let units: Vec<(&str, &pb::PTransform, bool)> = units
            .iter()
            .map(|(id, t, s)| (*id, *t, matches!(s, Support::Sdk(_))))
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
    let window_of = |pc_id: &str| -> Result<WindowFn, String> {
        let p = &c.pcollections[pc_id];
        window_fn(
            c.windowing_strategies[&p.windowing_strategy_id]
                .window_fn
                .as_ref(),
        )
    };
    // write_text may declare an output (Beam's client drops leaf transforms
    // without one); nothing fills it, so nothing may read it.
    let mut written: HashMap<&String, &str> = HashMap::new();
    for (_, t, _) in view.execution_units() {
        if t.spec
            .as_ref()
            .is_some_and(|s| s.urn == wasmbeam_urns::WRITE_TEXT)
        {
            for o in t.outputs.values() {
                written.insert(o, t.unique_name.as_str());
            }
        }
    }
    for (id, t, support) in view.execution_units() {
        let spec = t.spec.clone().unwrap_or_default();
        let urn = spec.urn.as_str();
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
        match support {
            Support::Unsupported(reason) => return Err(err(id, t, reason)),
            Support::Composite => continue,
            _ => {}
        }
        if urn == primitives::IMPULSE {
            let o = pc(&mut graph, &single_out("impulse")?);
            graph.add_op(name, OpKind::Impulse, vec![], vec![o]);
        } else if urn == wasmbeam_urns::READ_TEXT {
            let p = ours::ReadTextPayload::decode(spec.payload.as_slice())
                .map_err(|e| err(id, t, format!("bad read_text payload: {e}")))?;
            if p.patterns.is_empty() {
                return Err(err(id, t, "read_text needs at least one file pattern"));
            }
            let o = pc(&mut graph, &single_out("read_text")?);
            graph.add_op(
                name,
                OpKind::ReadText {
                    patterns: p.patterns,
                },
                vec![],
                vec![o],
            );
        } else if urn == wasmbeam_urns::WRITE_TEXT {
            let p = ours::WriteTextPayload::decode(spec.payload.as_slice())
                .map_err(|e| err(id, t, format!("bad write_text payload: {e}")))?;
            if p.prefix.is_empty() {
                return Err(err(id, t, "write_text needs an output prefix"));
            }
            let i = pc(&mut graph, &single_in("write_text")?);
            let sink = TextSink {
                prefix: p.prefix,
                suffix: p.suffix,
                shards: p.num_shards.max(1) as usize,
            };
            graph.add_op(name, OpKind::WriteText(sink), vec![i], vec![]);
        } else if urn == primitives::FLATTEN {
            let out = single_out("flatten")?;
            let mut ins: Vec<PcId> = Vec::new();
            for (_, p) in &inputs {
                // An input in another encoding is re-encoded first.
                let start = |sdk: &mut Option<Arc<SdkHarnesses>>| -> Result<_, String> {
                    if sdk.is_none() {
                        let cancel = opts.limits.interrupt.as_ref().map(|i| i.0.clone());
                        *sdk = Some(Arc::new(SdkHarnesses::new(
                            cancel,
                            opts.bundle_attempts,
                            opts.sdk_workers,
                        )?));
                    }
                    Ok(sdk.clone().expect("just set"))
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
        } else if urn == composites::RESHUFFLE {
            let i = pc(&mut graph, &single_in("reshuffle")?);
            let o = pc(&mut graph, &single_out("reshuffle")?);
            graph.add_op(name, OpKind::Reshuffle, vec![i], vec![o]);
        } else if urn == primitives::ASSIGN_WINDOWS && !matches!(support, Support::Sdk(_)) {
            let p = pb::WindowIntoPayload::decode(spec.payload.as_slice())
                .map_err(|e| err(id, t, format!("bad window_into payload: {e}")))?;
            let wf = window_fn(p.window_fn.as_ref()).map_err(|e| err(id, t, e))?;
            let i = pc(&mut graph, &single_in("window_into")?);
            let o = pc(&mut graph, &single_out("window_into")?);
            graph.add_op(name, OpKind::AssignWindows(wf), vec![i], vec![o]);
        } else if urn == primitives::GROUP_BY_KEY || urn == composites::COMBINE_PER_KEY {
            let input = single_in("grouping")?;
            let codec = CoderKv::new(coder_of(&input).map_err(|e| err(id, t, e))?)
                .map_err(|e| err(id, t, e))?;
            let wf = window_of(&input).map_err(|e| err(id, t, e))?;
            let combine: Option<Arc<dyn wasmbeam_engine::CombineExec>> = if urn
                == composites::COMBINE_PER_KEY
            {
                let p = pb::CombinePayload::decode(spec.payload.as_slice())
                    .map_err(|e| err(id, t, format!("bad CombinePayload: {e}")))?;
                let f = p.combine_fn.unwrap_or_default();
                if f.urn == wasmbeam_urns::BUILTIN_COMBINEFN {
                    let b = ours::BuiltinCombinePayload::decode(f.payload.as_slice())
                        .map_err(|e| err(id, t, format!("bad built-in combine payload: {e}")))?;
                    Some(Arc::new(
                        Builtin::from_name(&b.name).map_err(|e| err(id, t, e))?,
                    ))
                } else {
                    let w = ours::WasmUdfPayload::decode(f.payload.as_slice())
                        .map_err(|e| err(id, t, format!("bad WASM UDF payload: {e}")))?;
                    let comp = comps
                        .resolve(c.environments.get(&t.environment_id), &w)
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
                        w.config,
                        opts.limits.clone(),
                        opts.grants.clone(),
                    )
                    .map_err(|e| err(id, t, e.to_string()))?;
                    Some(Arc::new(WasmCombine::new(pool)))
                }
            } else {
                None
            };
            let i = pc(&mut graph, &input);
            let o = pc(&mut graph, &single_out("grouping")?);
            graph.add_op(
                name,
                OpKind::GroupByKey {
                    codec: Arc::new(codec),
                    window_fn: wf,
                    combine,
                },
                vec![i],
                vec![o],
            );
        } else if matches!(support, Support::Sdk(_)) {
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
            if sdk.is_none() {
                let cancel = opts.limits.interrupt.as_ref().map(|i| i.0.clone());
                sdk = Some(Arc::new(
                    SdkHarnesses::new(cancel, opts.bundle_attempts, opts.sdk_workers)
                        .map_err(RunnerError::Host)?,
                ));
            }
            let harnesses = sdk.as_ref().expect("just set");
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
        } else if urn == primitives::PAR_DO {
            let p = pb::ParDoPayload::decode(spec.payload.as_slice())
                .map_err(|e| err(id, t, format!("bad ParDoPayload: {e}")))?;
            let f = p.do_fn.clone().unwrap_or_default();
            let w = ours::WasmUdfPayload::decode(f.payload.as_slice())
                .map_err(|e| err(id, t, format!("bad WASM UDF payload: {e}")))?;
            let comp = comps
                .resolve(c.environments.get(&t.environment_id), &w)
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
                .filter(|(tag, _)| !p.side_inputs.contains_key(*tag))
                .collect();
            let [(_, main)] = main.as_slice() else {
                return Err(err(
                    id,
                    t,
                    format!("a ParDo needs exactly one main input, found {}", main.len()),
                ));
            };
            let mut side_inputs = Vec::new();
            let mut side_kinds = Vec::new();
            let mut side_tags: Vec<_> = p.side_inputs.iter().collect();
            side_tags.sort_by(|a, b| a.0.cmp(b.0));
            for (tag, si) in side_tags {
                let pcid = t.inputs.get(tag).ok_or_else(|| {
                    err(
                        id,
                        t,
                        format!("side input {tag:?} has no input PCollection"),
                    )
                })?;
                let access = si
                    .access_pattern
                    .as_ref()
                    .map(|a| a.urn.as_str())
                    .unwrap_or("");
                let kind = if access == standard_side_input_types::enum_::MULTIMAP {
                    SideInputKind::Multimap
                } else {
                    SideInputKind::Iterable
                };
                side_inputs.push((tag.clone(), pc(&mut graph, pcid)));
                side_kinds.push((tag.clone(), kind));
            }
            // Output order: the payload's list (main first), else the only output, else by tag.
            let tags: Vec<String> = if !w.outputs.is_empty() {
                w.outputs.clone()
            } else {
                outputs.iter().map(|(tag, _)| (*tag).clone()).collect()
            };
            let mut outs = Vec::new();
            for tag in &tags {
                let pcid = t.outputs.get(tag).ok_or_else(|| {
                    err(
                        id,
                        t,
                        format!("the UDF names output {tag:?}, which the transform does not have"),
                    )
                })?;
                outs.push(pc(&mut graph, pcid));
            }
            let spec = DoFnSpec {
                config: w.config,
                outputs: tags,
                side_inputs: vec![],
                limits: opts.limits.clone(),
                grants: opts.grants.clone(),
            };
            let exec = Arc::new(WasmDoFn::new(comp, spec, side_kinds));
            dofns.push((name.clone(), exec.clone()));
            let i = pc(&mut graph, main);
            graph.add_op(name, OpKind::ParDo { exec, side_inputs }, vec![i], outs);
        } else {
            return Err(err(
                id,
                t,
                format!("the runner has no implementation for {urn}"),
            ));
        }
    }
    Ok(Translated {
        graph,
        pcollections: pcs,
        dofns,
        sdk,
    })
}
