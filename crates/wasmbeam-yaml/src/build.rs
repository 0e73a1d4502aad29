//! Parsing the YAML and building the `Pipeline`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use prost::Message;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::{
    standard_artifacts,
    standard_p_transforms::{composites, primitives},
    standard_side_input_types,
};
use wasmbeam_proto::wasmbeam::v1 as ours;
use wasmbeam_proto::wasmbeam_urns;

use crate::windowing::{self, cfg_str, Windowing};

/// A YAML pipeline that could not be built. The message names the file,
/// and the transform or field at fault.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct YamlError {
    /// The YAML file.
    pub file: String,
    /// What is wrong and where.
    pub message: String,
}

/// Turns a guest source directory into a component file (the CLI builds it).
pub type GuestResolver<'a> = &'a dyn Fn(&Path) -> Result<PathBuf, String>;

/// The result of parsing.
#[derive(Debug, Clone)]
pub struct Built {
    /// The pipeline.
    pub pipeline: pb::Pipeline,
    /// `options.workers`, if given.
    pub workers: Option<usize>,
    /// `options.memory_budget_mb`, if given.
    pub memory_budget_mb: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    pipeline: PipelineDoc,
    #[serde(default)]
    options: Options,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    workers: Option<usize>,
    memory_budget_mb: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineDoc {
    transforms: Vec<TransformDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformDoc {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    #[serde(default)]
    input: Inputs,
    #[serde(default)]
    config: serde_yaml::Mapping,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Inputs {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

/// Substitute `{{ name }}` from `vars`; an unset name is an error.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed {{ in the pipeline")?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .ok_or_else(|| format!("the pipeline uses {{{{ {name} }}}} but no value was given: pass --set {name}=VALUE"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

struct Builder<'a> {
    file: String,
    base: PathBuf,
    resolver: GuestResolver<'a>,
    c: pb::Components,
    roots: Vec<String>,
    /// Output PCollection ids by "Name" / "Name.tag".
    outputs: HashMap<String, String>,
    /// Windowing strategy per PCollection id.
    coder_ids: HashMap<String, String>,
    envs: HashMap<String, String>,
}

impl<'a> Builder<'a> {
    fn fail(&self, message: impl Into<String>) -> YamlError {
        YamlError {
            file: self.file.clone(),
            message: message.into(),
        }
    }

    /// Coder id for a type expression like `kv<string_utf8, iterable<varint>>`.
    fn coder(&mut self, expr: &str) -> Result<String, String> {
        let expr = expr.split_whitespace().collect::<Vec<_>>().join("");
        if let Some(id) = self.coder_ids.get(&expr) {
            return Ok(id.clone());
        }
        let (name, args) = match expr.find('<') {
            Some(i) if expr.ends_with('>') => {
                (&expr[..i], split_args(&expr[i + 1..expr.len() - 1])?)
            }
            Some(_) => return Err(format!("unbalanced <> in coder {expr:?}")),
            None => (expr.as_str(), vec![]),
        };
        let (urn, arity) = match name {
            "bytes" => ("beam:coder:bytes:v1", 0),
            "string_utf8" | "str" | "string" => ("beam:coder:string_utf8:v1", 0),
            "varint" | "int" | "int64" => ("beam:coder:varint:v1", 0),
            "double" | "float" | "float64" => ("beam:coder:double:v1", 0),
            "bool" => ("beam:coder:bool:v1", 0),
            "kv" => ("beam:coder:kv:v1", 2),
            "iterable" => ("beam:coder:iterable:v1", 1),
            "nullable" => ("beam:coder:nullable:v1", 1),
            "length_prefix" => ("beam:coder:length_prefix:v1", 1),
            "global_window" => ("beam:coder:global_window:v1", 0),
            "interval_window" => ("beam:coder:interval_window:v1", 0),
            other => {
                return Err(format!(
                    "unknown coder {other:?}; use bytes, string_utf8, varint, double, bool, kv<K,V>, iterable<T>, nullable<T>"
                ))
            }
        };
        if args.len() != arity {
            return Err(format!(
                "coder {name} takes {arity} component(s), got {} in {expr:?}",
                args.len()
            ));
        }
        let mut comps = Vec::new();
        for a in args {
            comps.push(self.coder(&a)?);
        }
        let id = format!("c{}_{}", self.c.coders.len(), name);
        self.c.coders.insert(
            id.clone(),
            pb::Coder {
                spec: Some(pb::FunctionSpec {
                    urn: urn.into(),
                    payload: vec![],
                }),
                component_coder_ids: comps,
            },
        );
        self.coder_ids.insert(expr, id.clone());
        Ok(id)
    }

    fn coder_urn(&self, id: &str) -> &str {
        self.c
            .coders
            .get(id)
            .and_then(|c| c.spec.as_ref())
            .map(|s| s.urn.as_str())
            .unwrap_or("")
    }

    fn windowing(&mut self, w: &Windowing) -> Result<String, String> {
        let wc = self.coder(w.window_coder)?;
        let id = format!("w{}", self.c.windowing_strategies.len());
        self.c.windowing_strategies.insert(
            id.clone(),
            pb::WindowingStrategy {
                window_fn: Some(w.window_fn.clone()),
                merge_status: if w.merging { 2 } else { 1 },
                window_coder_id: wc,
                trigger: Some(w.trigger.clone()),
                accumulation_mode: if w.accumulating { 2 } else { 1 },
                output_time: 1,
                closing_behavior: 1,
                allowed_lateness: w.allowed_lateness_ms,
                on_time_behavior: 1,
                assigns_to_one_window: !w.merging,
                environment_id: String::new(),
            },
        );
        Ok(id)
    }

    fn new_pc(&mut self, name: &str, coder: String, ws: String) -> String {
        let id = format!("pc{}", self.c.pcollections.len());
        self.c.pcollections.insert(
            id.clone(),
            pb::PCollection {
                unique_name: name.into(),
                coder_id: coder,
                is_bounded: 2,
                windowing_strategy_id: ws,
                display_data: vec![],
            },
        );
        id
    }

    fn input_pc(&self, who: &str, reference: &str) -> Result<String, YamlError> {
        self.outputs.get(reference).cloned().ok_or_else(|| {
            let mut known: Vec<_> = self.outputs.keys().cloned().collect();
            known.sort();
            self.fail(format!("transform {who:?}: input {reference:?} is not defined by an earlier transform (defined: {})", known.join(", ")))
        })
    }

    /// Environment with the component at `path` (a .wasm file or a guest dir).
    fn environment(&mut self, who: &str, udf: &str) -> Result<(String, String, String), YamlError> {
        let p = self.base.join(udf);
        let wasm = if p.is_dir() {
            (self.resolver)(&p).map_err(|e| {
                self.fail(format!(
                    "transform {who:?}: building the UDF in {}: {e}",
                    p.display()
                ))
            })?
        } else {
            p
        };
        let wasm = wasm.canonicalize().map_err(|e| {
            self.fail(format!(
                "transform {who:?}: component {}: {e}",
                wasm.display()
            ))
        })?;
        let bytes = std::fs::read(&wasm).map_err(|e| {
            self.fail(format!(
                "transform {who:?}: cannot read {}: {e}",
                wasm.display()
            ))
        })?;
        let sha = hex::encode(Sha256::digest(&bytes));
        let staged = wasm
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(id) = self.envs.get(&sha) {
            return Ok((id.clone(), staged, sha));
        }
        let id = format!("env{}", self.c.environments.len());
        let dep = pb::ArtifactInformation {
            type_urn: standard_artifacts::types::FILE.into(),
            type_payload: pb::ArtifactFilePayload {
                path: wasm.display().to_string(),
                sha256: sha.clone(),
            }
            .encode_to_vec(),
            role_urn: standard_artifacts::roles::STAGING_TO.into(),
            role_payload: pb::ArtifactStagingToRolePayload {
                staged_name: staged.clone(),
            }
            .encode_to_vec(),
        };
        self.c.environments.insert(
            id.clone(),
            pb::Environment {
                urn: wasmbeam_urns::WASM_ENVIRONMENT.into(),
                dependencies: vec![dep],
                ..Default::default()
            },
        );
        self.envs.insert(sha.clone(), id.clone());
        Ok((id, staged, sha))
    }

    fn add(
        &mut self,
        name: &str,
        urn: &str,
        payload: Vec<u8>,
        inputs: Vec<(String, String)>,
        outputs: Vec<(String, String)>,
        env: String,
    ) {
        let id = format!(
            "t{}_{}",
            self.roots.len(),
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        );
        self.c.transforms.insert(
            id.clone(),
            pb::PTransform {
                unique_name: name.into(),
                spec: Some(pb::FunctionSpec {
                    urn: urn.into(),
                    payload,
                }),
                subtransforms: vec![],
                inputs: inputs.into_iter().collect(),
                outputs: outputs.into_iter().collect(),
                display_data: vec![],
                environment_id: env,
                annotations: Default::default(),
            },
        );
        self.roots.push(id);
    }
}

fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for ch in s.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced <> in {s:?}"));
        }
        cur.push(ch);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// Parse YAML `text` (from `file`, whose directory anchors relative paths)
/// with `--set` variables, into a Beam `Pipeline`.
pub fn parse(
    file: &Path,
    text: &str,
    vars: &BTreeMap<String, String>,
    resolver: GuestResolver<'_>,
) -> Result<Built, YamlError> {
    let fname = file.display().to_string();
    let fail = |m: String| YamlError {
        file: fname.clone(),
        message: m,
    };
    let text = substitute(text, vars).map_err(fail)?;
    let doc: Doc = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("line {} column {}: ", l.line(), l.column()))
            .unwrap_or_default();
        fail(format!("{at}{e}"))
    })?;
    if doc.pipeline.transforms.is_empty() {
        return Err(fail("pipeline.transforms is empty".into()));
    }
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut b = Builder {
        file: fname.clone(),
        base,
        resolver,
        c: pb::Components::default(),
        roots: vec![],
        outputs: HashMap::new(),
        coder_ids: HashMap::new(),
        envs: HashMap::new(),
    };
    let global_ws = b.windowing(&Windowing::global()).map_err(fail)?;
    let mut names = std::collections::HashSet::new();
    for (i, t) in doc.pipeline.transforms.iter().enumerate() {
        let name = t.name.clone().unwrap_or_else(|| format!("{}{}", t.kind, i));
        if !names.insert(name.clone()) {
            return Err(b.fail(format!("transform #{} ({name:?}): the name is used twice; give each transform a unique name", i + 1)));
        }
        let bad = |m: String| YamlError {
            file: fname.clone(),
            message: format!("transform {name:?} ({}): {m}", t.kind),
        };
        let refs: Vec<String> = match &t.input {
            Inputs::None => vec![],
            Inputs::One(s) => vec![s.clone()],
            Inputs::Many(v) => v.clone(),
        };
        let mut ins = Vec::new();
        for r in &refs {
            ins.push(b.input_pc(&name, r)?);
        }
        let need_inputs = |n: usize| -> Result<(), YamlError> {
            if ins.len() == n {
                Ok(())
            } else {
                Err(bad(format!("needs {n} input(s), got {}", ins.len())))
            }
        };
        let cfg = &t.config;
        let in_ws = ins
            .first()
            .map(|p| b.c.pcollections[p].windowing_strategy_id.clone())
            .unwrap_or(global_ws.clone());
        let in_coder = ins
            .first()
            .map(|p| b.c.pcollections[p].coder_id.clone())
            .unwrap_or_default();
        let known_keys = |keys: &[&str]| -> Result<(), YamlError> {
            for k in cfg.keys() {
                let k = k.as_str().unwrap_or("");
                if !keys.contains(&k) {
                    return Err(bad(format!(
                        "unknown config field {k:?}; known: {}",
                        keys.join(", ")
                    )));
                }
            }
            Ok(())
        };
        match t.kind.as_str() {
            "Impulse" => {
                need_inputs(0)?;
                known_keys(&[])?;
                let coder = b.coder("bytes").map_err(bad)?;
                let o = b.new_pc(&format!("{name}.out"), coder, global_ws.clone());
                b.add(&name, primitives::IMPULSE, vec![], vec![], vec![("out".into(), o.clone())], String::new());
                b.outputs.insert(name.clone(), o);
            }
            "ReadFromText" => {
                need_inputs(0)?;
                known_keys(&["path", "watch_secs"])?;
                let watch_period_ms = match cfg.get("watch_secs") {
                    None => 0,
                    Some(v) => match v.as_f64() {
                        Some(s) if s >= 0.001 => (s * 1000.0).round() as i64,
                        _ => return Err(bad("config.watch_secs must be a number of seconds, at least 0.001".into())),
                    },
                };
                let patterns: Vec<String> = match cfg.get("path") {
                    Some(serde_yaml::Value::String(s)) => vec![s.clone()],
                    Some(serde_yaml::Value::Sequence(v)) => v.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                    _ => return Err(bad("config.path (a file, glob or list of them) is required".into())),
                };
                let coder = b.coder("string_utf8").map_err(bad)?;
                let o = b.new_pc(&format!("{name}.out"), coder, global_ws.clone());
                let payload = ours::ReadTextPayload { patterns, watch_period_ms }.encode_to_vec();
                b.add(&name, wasmbeam_urns::READ_TEXT, payload, vec![], vec![("out".into(), o.clone())], String::new());
                b.outputs.insert(name.clone(), o);
            }
            "WriteToText" => {
                need_inputs(1)?;
                known_keys(&["path", "suffix", "num_shards"])?;
                let prefix = cfg_str(cfg, "path").ok_or_else(|| bad("config.path (the output prefix) is required".into()))?;
                let num_shards = match cfg_str(cfg, "num_shards") {
                    Some(s) => s.parse::<i32>().ok().filter(|n| *n > 0).ok_or_else(|| bad(format!("num_shards must be a positive integer, not {s:?}")))?,
                    None => 1,
                };
                if !b.coder_urn(&in_coder).contains("string_utf8") {
                    return Err(bad(format!("writes text, so its input must be string_utf8, not {}", b.coder_urn(&in_coder))));
                }
                let payload = ours::WriteTextPayload { prefix, suffix: cfg_str(cfg, "suffix").unwrap_or_default(), num_shards }.encode_to_vec();
                b.add(&name, wasmbeam_urns::WRITE_TEXT, payload, vec![("in".into(), ins[0].clone())], vec![], String::new());
            }
            "ParDo" => {
                need_inputs(1)?;
                known_keys(&["udf", "config", "output_coder", "outputs", "side_inputs"])?;
                let udf = cfg_str(cfg, "udf").ok_or_else(|| bad("config.udf (a .wasm component or a guest source directory) is required".into()))?;
                let (env, staged, sha) = b.environment(&name, &udf)?;
                // output_coder: one coder for every output, or a map from tag to coder.
                let coder_map: Option<serde_yaml::Mapping> = cfg.get("output_coder").and_then(|v| v.as_mapping().cloned());
                let default_coder = cfg_str(cfg, "output_coder").unwrap_or_else(|| "bytes".into());
                let tags: Vec<String> = match cfg.get("outputs") {
                    None => vec!["out".into()],
                    Some(serde_yaml::Value::Sequence(v)) => v.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
                    Some(_) => return Err(bad("config.outputs must be a list of tags, main first".into())),
                };
                let mut outs = Vec::new();
                for (k, tag) in tags.iter().enumerate() {
                    let expr = match &coder_map {
                        Some(m) => cfg_str(m, tag).ok_or_else(|| bad(format!("output_coder has no coder for output {tag:?}")))?,
                        None => default_coder.clone(),
                    };
                    let out_coder = b.coder(&expr).map_err(bad)?;
                    let o = b.new_pc(&format!("{name}.{tag}"), out_coder, in_ws.clone());
                    if k == 0 {
                        b.outputs.insert(name.clone(), o.clone());
                    }
                    b.outputs.insert(format!("{name}.{tag}"), o.clone());
                    outs.push((tag.clone(), o));
                }
                let mut inputs = vec![("in".to_string(), ins[0].clone())];
                let mut side_inputs = std::collections::HashMap::new();
                if let Some(si) = cfg.get("side_inputs") {
                    let m = si.as_mapping().ok_or_else(|| bad("config.side_inputs must map tags to {input, kind}".into()))?;
                    for (tag, spec) in m {
                        let tag = tag.as_str().unwrap_or("").to_string();
                        let (input, kind) = match spec {
                            serde_yaml::Value::String(s) => (s.clone(), "iterable".to_string()),
                            serde_yaml::Value::Mapping(m) => (
                                cfg_str(m, "input").ok_or_else(|| bad(format!("side input {tag:?} needs an input")))?,
                                cfg_str(m, "kind").unwrap_or_else(|| "iterable".into()),
                            ),
                            _ => return Err(bad(format!("side input {tag:?} must be a transform name or {{input, kind}}"))),
                        };
                        let access = match kind.as_str() {
                            "iterable" => standard_side_input_types::enum_::ITERABLE,
                            "multimap" => standard_side_input_types::enum_::MULTIMAP,
                            k => return Err(bad(format!("side input {tag:?}: kind {k:?} is not iterable or multimap"))),
                        };
                        let pcid = b.input_pc(&name, &input)?;
                        inputs.push((tag.clone(), pcid));
                        side_inputs.insert(
                            tag,
                            pb::SideInput {
                                access_pattern: Some(pb::FunctionSpec { urn: access.into(), payload: vec![] }),
                                view_fn: None,
                                window_mapping_fn: None,
                            },
                        );
                    }
                }
                let config = match cfg.get("config") {
                    None => vec![],
                    Some(serde_yaml::Value::String(s)) => s.clone().into_bytes(),
                    Some(other) => serde_yaml::to_string(other).map_err(|e| bad(e.to_string()))?.into_bytes(),
                };
                let udf_payload = ours::WasmUdfPayload { artifact: staged, sha256: sha, export: "dofn".into(), config, outputs: tags };
                let pardo = pb::ParDoPayload {
                    do_fn: Some(pb::FunctionSpec { urn: wasmbeam_urns::WASM_DOFN.into(), payload: udf_payload.encode_to_vec() }),
                    side_inputs,
                    ..Default::default()
                };
                b.add(&name, primitives::PAR_DO, pardo.encode_to_vec(), inputs, outs, env);
            }
            "GroupByKey" | "CombinePerKey" => {
                need_inputs(1)?;
                let in_c = b.c.coders[&in_coder].clone();
                if b.coder_urn(&in_coder) != "beam:coder:kv:v1" {
                    return Err(bad(format!("groups by key, so its input must be kv<K, V>, not {}", b.coder_urn(&in_coder))));
                }
                let (k, v) = (in_c.component_coder_ids[0].clone(), in_c.component_coder_ids[1].clone());
                let kv = |b: &mut Builder, k: &str, v: &str| -> String {
                    let id = format!("c{}_kv", b.c.coders.len());
                    b.c.coders.insert(
                        id.clone(),
                        pb::Coder { spec: Some(pb::FunctionSpec { urn: "beam:coder:kv:v1".into(), payload: vec![] }), component_coder_ids: vec![k.into(), v.into()] },
                    );
                    id
                };
                if t.kind == "GroupByKey" {
                    known_keys(&[])?;
                    let it = format!("c{}_iterable", b.c.coders.len());
                    b.c.coders.insert(
                        it.clone(),
                        pb::Coder { spec: Some(pb::FunctionSpec { urn: "beam:coder:iterable:v1".into(), payload: vec![] }), component_coder_ids: vec![v] },
                    );
                    let oc = kv(&mut b, &k, &it);
                    let o = b.new_pc(&format!("{name}.out"), oc, in_ws.clone());
                    b.add(&name, primitives::GROUP_BY_KEY, vec![], vec![("in".into(), ins[0].clone())], vec![("out".into(), o.clone())], String::new());
                    b.outputs.insert(name.clone(), o);
                } else {
                    known_keys(&["combine", "udf", "config", "output_coder"])?;
                    let (fn_spec, out_v, env) = if let Some(builtin) = cfg_str(cfg, "combine") {
                        let urn = match builtin.as_str() {
                            "count" | "sum" | "sum_int64" | "min" | "max" | "min_int64" | "max_int64" => "varint",
                            "sum_double" | "mean" | "min_double" | "max_double" => "double",
                            other => return Err(bad(format!("unknown built-in combine {other:?}; use count, sum, sum_double, mean, min, max, min_double, max_double, or a udf"))),
                        };
                        let p = ours::BuiltinCombinePayload { name: builtin }.encode_to_vec();
                        let out = b.coder(urn).map_err(bad)?;
                        (pb::FunctionSpec { urn: wasmbeam_urns::BUILTIN_COMBINEFN.into(), payload: p }, out, String::new())
                    } else {
                        let udf = cfg_str(cfg, "udf").ok_or_else(|| bad("config needs combine (a built-in name) or udf (a CombineFn component)".into()))?;
                        let (env, staged, sha) = b.environment(&name, &udf)?;
                        let out = b.coder(&cfg_str(cfg, "output_coder").unwrap_or_else(|| "bytes".into())).map_err(bad)?;
                        let config = cfg_str(cfg, "config").unwrap_or_default().into_bytes();
                        let p = ours::WasmUdfPayload { artifact: staged, sha256: sha, export: "combinefn".into(), config, outputs: vec![] };
                        (pb::FunctionSpec { urn: wasmbeam_urns::WASM_COMBINEFN.into(), payload: p.encode_to_vec() }, out, env)
                    };
                    let acc = b.coder("bytes").map_err(bad)?;
                    let payload = pb::CombinePayload { combine_fn: Some(fn_spec), accumulator_coder_id: acc }.encode_to_vec();
                    let oc = kv(&mut b, &k, &out_v);
                    let o = b.new_pc(&format!("{name}.out"), oc, in_ws.clone());
                    b.add(&name, composites::COMBINE_PER_KEY, payload, vec![("in".into(), ins[0].clone())], vec![("out".into(), o.clone())], env);
                    b.outputs.insert(name.clone(), o);
                }
            }
            "Flatten" => {
                if ins.is_empty() {
                    return Err(bad("needs at least one input".into()));
                }
                known_keys(&[])?;
                let o = b.new_pc(&format!("{name}.out"), in_coder.clone(), in_ws.clone());
                let inputs = ins.iter().enumerate().map(|(i, p)| (format!("in{i}"), p.clone())).collect();
                b.add(&name, primitives::FLATTEN, vec![], inputs, vec![("out".into(), o.clone())], String::new());
                b.outputs.insert(name.clone(), o);
            }
            "Reshuffle" => {
                need_inputs(1)?;
                known_keys(&[])?;
                let o = b.new_pc(&format!("{name}.out"), in_coder.clone(), in_ws.clone());
                b.add(&name, composites::RESHUFFLE, vec![], vec![("in".into(), ins[0].clone())], vec![("out".into(), o.clone())], String::new());
                b.outputs.insert(name.clone(), o);
            }
            "WindowInto" => {
                need_inputs(1)?;
                known_keys(&["windowing"])?;
                let w = cfg.get("windowing").and_then(|v| v.as_mapping()).ok_or_else(|| bad("config.windowing {type, size, period, gap, offset} is required".into()))?;
                let w = windowing::parse(w).map_err(|e| bad(format!("config.{e}")))?;
                let spec = w.window_fn.clone();
                let ws = b.windowing(&w).map_err(bad)?;
                let o = b.new_pc(&format!("{name}.out"), in_coder.clone(), ws);
                let payload = pb::WindowIntoPayload { window_fn: Some(spec) }.encode_to_vec();
                b.add(&name, primitives::ASSIGN_WINDOWS, payload, vec![("in".into(), ins[0].clone())], vec![("out".into(), o.clone())], String::new());
                b.outputs.insert(name.clone(), o);
            }
            other => {
                return Err(bad(format!(
                    "unknown transform type {other:?}; known: Impulse, ReadFromText, WriteToText, ParDo, CombinePerKey, GroupByKey, Flatten, WindowInto, Reshuffle"
                )))
            }
        }
    }
    let pipeline = pb::Pipeline {
        components: Some(b.c),
        root_transform_ids: b.roots,
        display_data: vec![],
        requirements: vec![],
    };
    Ok(Built {
        pipeline,
        workers: doc.options.workers,
        memory_budget_mb: doc.options.memory_budget_mb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_guests(_: &Path) -> Result<PathBuf, String> {
        Err("no guest builds in this test".into())
    }

    fn parse_str(text: &str, vars: &[(&str, &str)]) -> Result<Built, YamlError> {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(Path::new("/tmp/p.yaml"), text, &vars, &no_guests)
    }

    #[test]
    fn builds_read_group_write() {
        let b = parse_str(
            "pipeline:\n  transforms:\n    - type: ReadFromText\n      name: R\n      config: {path: '{{ input }}'}\n    - type: WriteToText\n      input: R\n      config: {path: /tmp/out, num_shards: 2}\n",
            &[("input", "/data/*.txt")],
        )
        .unwrap();
        let c = b.pipeline.components.unwrap();
        assert_eq!(c.transforms.len(), 2);
        let read = c
            .transforms
            .values()
            .find(|t| t.unique_name == "R")
            .unwrap();
        let p =
            ours::ReadTextPayload::decode(read.spec.as_ref().unwrap().payload.as_slice()).unwrap();
        assert_eq!(p.patterns, ["/data/*.txt"]);
    }

    #[test]
    fn errors_name_the_file_line_transform_and_field() {
        let e = parse_str("pipeline:\n  transforms:\n    - type: ReadFromText\n      config: {path: x}\n     bad: [\n", &[]).unwrap_err();
        assert!(e.to_string().starts_with("/tmp/p.yaml: line "), "{e}");
        let e = parse_str(
            "pipeline:\n  transforms:\n    - type: ReadFromTxt\n      name: R\n",
            &[],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("transform \"R\" (ReadFromTxt): unknown transform type"),
            "{e}"
        );
        let e = parse_str("pipeline:\n  transforms:\n    - type: WriteToText\n      input: Nope\n      config: {path: o}\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("input \"Nope\" is not defined"),
            "{e}"
        );
        let e = parse_str("pipeline:\n  transforms:\n    - type: ReadFromText\n      config: {path: '{{ input }}'}\n", &[]).unwrap_err();
        assert!(e.to_string().contains("--set input=VALUE"), "{e}");
        let e = parse_str("pipeline:\n  transforms:\n    - type: ReadFromText\n      name: R\n      config: {path: x, colour: red}\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("unknown config field \"colour\""),
            "{e}"
        );
    }

    #[test]
    fn coder_expressions() {
        let mut text =
            String::from("pipeline:\n  transforms:\n    - type: Impulse\n      name: I\n");
        text.push_str("    - type: WindowInto\n      input: I\n      config: {windowing: {type: sliding, size: 1m, period: 30s}}\n");
        let b = parse_str(&text, &[]).unwrap();
        let c = b.pipeline.components.unwrap();
        let ws = c
            .windowing_strategies
            .values()
            .find(|w| w.window_fn.as_ref().unwrap().urn.contains("sliding"))
            .unwrap();
        let p =
            pb::SlidingWindowsPayload::decode(ws.window_fn.as_ref().unwrap().payload.as_slice())
                .unwrap();
        assert_eq!(p.size.unwrap().seconds, 60);
        assert_eq!(p.period.unwrap().seconds, 30);
    }
}
