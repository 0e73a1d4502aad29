//! Graph-building shorthands shared by the engine's test files.

use std::path::Path;
use std::sync::Arc;

use wasmbeam_engine::panes::Triggering;
use wasmbeam_engine::{DoFnExec, Graph, KvCodec, OpKind, OpResult, PcId, WindowFn};

/// Keys are the bytes before `\0` (`key \0 value`, outer); a nested value
/// is one length byte and the bytes.
pub struct NulCodec;
impl KvCodec for NulCodec {
    fn split<'a>(&self, kv: &'a [u8]) -> OpResult<(&'a [u8], &'a [u8])> {
        let i = kv.iter().position(|&b| b == 0).ok_or("no separator")?;
        Ok((&kv[..i], &kv[i + 1..]))
    }
    fn value_to_nested(&self, outer: &[u8], out: &mut Vec<u8>) -> OpResult<()> {
        out.push(outer.len() as u8);
        out.extend_from_slice(outer);
        Ok(())
    }
}

/// Add window assignment with `wf`, then a GroupByKey (NulCodec keys, no
/// combine) with `triggering`; returns the grouped PCollection.
#[allow(dead_code)] // not every test file groups
pub fn window_and_group(
    g: &mut Graph,
    name: &str,
    input: PcId,
    wf: WindowFn,
    triggering: Triggering,
) -> PcId {
    let windowed = g.add_pcollection(format!("{name}.windowed"));
    g.add_op(
        format!("{name}/Window"),
        OpKind::AssignWindows(wf.clone()),
        vec![input],
        vec![windowed],
    );
    let grouped = g.add_pcollection(format!("{name}.grouped"));
    g.add_op(
        format!("{name}/Group"),
        OpKind::GroupByKey {
            codec: std::sync::Arc::new(NulCodec),
            window_fn: wf,
            combine: None,
            triggering,
        },
        vec![windowed],
        vec![grouped],
    );
    grouped
}

/// Add a text read of `path`; returns its lines.
#[allow(dead_code)] // not every test file reads
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
#[allow(dead_code)]
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
