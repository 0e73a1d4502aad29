//! A checked view of a `Pipeline`: every id it references resolves, and the
//! transform tree is a tree. Errors name the transform, PCollection, coder or
//! windowing strategy at fault, so a user can find it in their pipeline.

use std::collections::HashSet;

use wasmbeam_proto::pipeline::v1::{Components, PTransform, Pipeline};

use crate::step::{decode, Verdict};

/// A pipeline that failed validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The pipeline has no `components`.
    #[error("the pipeline has no components (field Pipeline.components is empty)")]
    NoComponents,
    /// A reference that does not resolve.
    #[error("{owner}: {field} refers to {kind} {id:?}, which the pipeline does not define")]
    Dangling {
        /// Who holds the reference, e.g. `transform "x" (Count/Map)`.
        owner: String,
        /// The field, e.g. `inputs["0"]`.
        field: String,
        /// What kind of component is missing.
        kind: &'static str,
        /// The missing id.
        id: String,
    },
    /// The transform graph is not a tree.
    #[error(
        "transform {id:?} appears twice in the transform tree (a cycle or a shared subtransform)"
    )]
    NotATree {
        /// The repeated transform.
        id: String,
    },
}

/// One transform that the runner cannot execute, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The transform's id in `components.transforms`.
    pub transform_id: String,
    /// Its unique (user-visible) name.
    pub unique_name: String,
    /// Its spec URN.
    pub urn: String,
    /// Why it cannot run.
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} [{}] (id {}): {}",
            self.unique_name, self.urn, self.transform_id, self.reason
        )
    }
}

/// A validated pipeline.
#[derive(Debug, Clone, Copy)]
pub struct PipelineView<'a> {
    /// The pipeline proto.
    pub pipeline: &'a Pipeline,
    /// Its components (present, by validation).
    pub components: &'a Components,
}

fn owner_of(id: &str, t: &PTransform) -> String {
    format!("transform {id:?} ({})", t.unique_name)
}

impl<'a> PipelineView<'a> {
    /// Check every reference in `pipeline` and return the view.
    pub fn new(pipeline: &'a Pipeline) -> Result<Self, PlanError> {
        let c = pipeline
            .components
            .as_ref()
            .ok_or(PlanError::NoComponents)?;
        let dangling = |owner: String, field: String, kind, id: &str| PlanError::Dangling {
            owner,
            field,
            kind,
            id: id.to_string(),
        };
        for (i, root) in pipeline.root_transform_ids.iter().enumerate() {
            if !c.transforms.contains_key(root) {
                return Err(dangling(
                    "the pipeline".into(),
                    format!("root_transform_ids[{i}]"),
                    "transform",
                    root,
                ));
            }
        }
        let mut ids: Vec<_> = c.transforms.keys().collect();
        ids.sort();
        for id in ids {
            let t = &c.transforms[id];
            for (i, sub) in t.subtransforms.iter().enumerate() {
                if !c.transforms.contains_key(sub) {
                    return Err(dangling(
                        owner_of(id, t),
                        format!("subtransforms[{i}]"),
                        "transform",
                        sub,
                    ));
                }
            }
            for (dir, map) in [("inputs", &t.inputs), ("outputs", &t.outputs)] {
                for (tag, pc) in map {
                    if !c.pcollections.contains_key(pc) {
                        return Err(dangling(
                            owner_of(id, t),
                            format!("{dir}[{tag:?}]"),
                            "PCollection",
                            pc,
                        ));
                    }
                }
            }
            if !t.environment_id.is_empty() && !c.environments.contains_key(&t.environment_id) {
                return Err(dangling(
                    owner_of(id, t),
                    "environment_id".into(),
                    "environment",
                    &t.environment_id,
                ));
            }
        }
        for (id, pc) in &c.pcollections {
            let owner = format!("PCollection {id:?} ({})", pc.unique_name);
            if !c.coders.contains_key(&pc.coder_id) {
                return Err(dangling(owner, "coder_id".into(), "coder", &pc.coder_id));
            }
            if !c
                .windowing_strategies
                .contains_key(&pc.windowing_strategy_id)
            {
                return Err(dangling(
                    owner,
                    "windowing_strategy_id".into(),
                    "windowing strategy",
                    &pc.windowing_strategy_id,
                ));
            }
        }
        for (id, coder) in &c.coders {
            for (i, comp) in coder.component_coder_ids.iter().enumerate() {
                if !c.coders.contains_key(comp) {
                    return Err(dangling(
                        format!("coder {id:?}"),
                        format!("component_coder_ids[{i}]"),
                        "coder",
                        comp,
                    ));
                }
            }
        }
        for (id, ws) in &c.windowing_strategies {
            if !c.coders.contains_key(&ws.window_coder_id) {
                return Err(dangling(
                    format!("windowing strategy {id:?}"),
                    "window_coder_id".into(),
                    "coder",
                    &ws.window_coder_id,
                ));
            }
        }
        let view = PipelineView {
            pipeline,
            components: c,
        };
        let mut seen = HashSet::new();
        let mut err = None;
        view.walk(|_, id, _| {
            if !seen.insert(id.to_string()) && err.is_none() {
                err = Some(PlanError::NotATree { id: id.to_string() });
                return false;
            }
            true
        });
        match err {
            Some(e) => Err(e),
            None => Ok(view),
        }
    }

    /// Depth-first walk of the transform tree from the roots. The visitor
    /// gets (depth, id, transform) and returns whether to descend.
    pub fn walk(&self, mut visit: impl FnMut(usize, &str, &'a PTransform) -> bool) {
        fn go<'a>(
            c: &'a Components,
            id: &str,
            depth: usize,
            visit: &mut dyn FnMut(usize, &str, &'a PTransform) -> bool,
        ) {
            let Some(t) = c.transforms.get(id) else {
                return;
            };
            // The depth cap also stops cycles before `new` has rejected them.
            if depth > 256 || !visit(depth, id, t) {
                return;
            }
            for sub in &t.subtransforms {
                go(c, sub, depth + 1, visit);
            }
        }
        for root in &self.pipeline.root_transform_ids {
            go(self.components, root, 0, &mut visit);
        }
    }

    /// The transforms the runner executes, with their typed verdicts:
    /// composites are opened unless the runner handles them whole.
    pub fn execution_units(&self) -> Vec<(&'a str, &'a PTransform, Verdict)> {
        let mut out = Vec::new();
        let c = self.components;
        self.walk(|_, id, t| {
            let s = decode(t, c);
            if s == Verdict::Composite {
                return true;
            }
            let (key, _) = c.transforms.get_key_value(id).expect("walked ids exist");
            out.push((key.as_str(), t, s));
            false
        });
        out
    }

    /// Every transform the runner cannot execute, in tree order.
    pub fn unsupported(&self) -> Vec<Finding> {
        self.execution_units()
            .into_iter()
            .filter_map(|(id, t, s)| match s {
                Verdict::Unsupported(reason) => Some(Finding {
                    transform_id: id.to_string(),
                    unique_name: t.unique_name.clone(),
                    urn: t.spec.as_ref().map(|s| s.urn.clone()).unwrap_or_default(),
                    reason,
                }),
                _ => None,
            })
            .collect()
    }
}
