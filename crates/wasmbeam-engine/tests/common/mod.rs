//! Graph-building shorthands shared by the engine's test files.

use std::path::Path;
use std::sync::Arc;

use wasmbeam_engine::{DoFnExec, Graph, OpKind, PcId};

/// Add a text read of `path`; returns its lines.
pub fn read(g: &mut Graph, path: &Path) -> PcId {
    let lines = g.add_pcollection("lines");
    g.add_op(
        "Read",
        OpKind::ReadText {
            patterns: vec![path.display().to_string()],
        },
        vec![],
        vec![lines],
    );
    lines
}

/// Add a one-output ParDo without side inputs; returns its output.
pub fn pardo(g: &mut Graph, name: &str, exec: Arc<dyn DoFnExec>, input: PcId) -> PcId {
    let out = g.add_pcollection(name);
    g.add_op(
        name,
        OpKind::ParDo {
            exec,
            side_inputs: vec![],
        },
        vec![input],
        vec![out],
    );
    out
}
