//! How elements cross the Fn API: wire coders (unknown coders wrapped in
//! `length_prefix`) and decoding a harness's output into engine batches.

use std::collections::HashMap;

use wasmbeam_coders::{coder_from_proto, Coder, Context, Reader, Value};
use wasmbeam_engine::{Batch, Window};
use wasmbeam_proto::pipeline::v1 as pb;

/// How a PCollection's elements cross the Fn API: its coder, with every
/// coder the runner does not know wrapped in `length_prefix` (keys and
/// values of a KV separately, so the runner can still group by key).
#[derive(Clone)]
pub(crate) struct Wire {
    /// The runner's view of the element coder (unknown parts opaque).
    pub(crate) element: Coder,
    /// The windowed-value coder on the wire.
    pub(crate) windowed: Coder,
    /// The wire coder's id in the descriptor.
    pub(crate) coder_id: String,
}

fn is_known(c: &Coder) -> bool {
    !matches!(c, Coder::Opaque { .. }) && c.components().into_iter().all(is_known)
}

/// The id of coder `id` with its unknown parts length-prefixed, adding the
/// coders that takes to `coders`.
pub(crate) fn wire_coder_id(
    id: &str,
    coders: &mut HashMap<String, pb::Coder>,
) -> Result<String, String> {
    let c = coder_from_proto(id, coders).map_err(|e| e.to_string())?;
    if is_known(&c) {
        return Ok(id.to_string());
    }
    let proto = coders[id].clone();
    if matches!(c, Coder::Opaque { .. }) {
        let lp = format!("wasmbeam-lp-{id}");
        coders.insert(
            lp.clone(),
            pb::Coder {
                spec: Some(pb::FunctionSpec {
                    urn: "beam:coder:length_prefix:v1".into(),
                    payload: vec![],
                }),
                component_coder_ids: vec![id.to_string()],
            },
        );
        return Ok(lp);
    }
    let mut parts = Vec::with_capacity(proto.component_coder_ids.len());
    for part in &proto.component_coder_ids {
        parts.push(wire_coder_id(part, coders)?);
    }
    let w = format!("wasmbeam-w-{id}");
    coders.insert(
        w.clone(),
        pb::Coder {
            spec: proto.spec,
            component_coder_ids: parts,
        },
    );
    Ok(w)
}

/// Add the wire coder of PCollection `pc_id` to `coders`.
pub(crate) fn wire(
    pc_id: &str,
    c: &pb::Components,
    coders: &mut HashMap<String, pb::Coder>,
) -> Result<Wire, String> {
    let pc = c
        .pcollections
        .get(pc_id)
        .ok_or_else(|| format!("unknown PCollection {pc_id}"))?;
    let ws = c
        .windowing_strategies
        .get(&pc.windowing_strategy_id)
        .ok_or_else(|| format!("PCollection {pc_id}: unknown windowing strategy"))?;
    let element = coder_from_proto(&pc.coder_id, coders).map_err(|e| e.to_string())?;
    let element_id = wire_coder_id(&pc.coder_id, coders)?;
    let window_id = wire_coder_id(&ws.window_coder_id, coders)?;
    let on_wire = coder_from_proto(&element_id, coders).map_err(|e| e.to_string())?;
    let window = coder_from_proto(&window_id, coders).map_err(|e| e.to_string())?;
    let coder_id = format!("wasmbeam-wire-{pc_id}");
    coders.insert(
        coder_id.clone(),
        pb::Coder {
            spec: Some(pb::FunctionSpec {
                urn: "beam:coder:windowed_value:v1".into(),
                payload: vec![],
            }),
            component_coder_ids: vec![element_id, window_id],
        },
    );
    let windowed = Coder::WindowedValue {
        value: Box::new(on_wire),
        window: Box::new(window),
    };
    Ok(Wire {
        element,
        windowed,
        coder_id,
    })
}

pub(crate) fn decode_into(bytes: &[u8], wire: &Wire, out: &mut Batch) -> Result<(), String> {
    let mut r = Reader::new(bytes);
    let mut buf = Vec::new();
    while !r.is_empty() {
        let v = wire
            .windowed
            .decode_from(&mut r, Context::Nested)
            .map_err(|e| format!("cannot decode the harness's output: {e}"))?;
        let Value::WindowedValue(w) = v else {
            return Err("the harness's output is not a windowed value".into());
        };
        buf.clear();
        wire.element
            .encode(&w.value, Context::Outer, &mut buf)
            .map_err(|e| format!("cannot re-encode the harness's output: {e}"))?;
        let windows: Vec<Window> = w
            .windows
            .iter()
            .map(|win| match win {
                Value::IntervalWindow(iw) => Window {
                    start: iw.start,
                    end: iw.end,
                },
                _ => Window::GLOBAL,
            })
            .collect();
        out.push_in_pane(
            &buf,
            w.timestamp,
            windows,
            w.pane.flags(),
            [w.pane.index, w.pane.on_time_index],
        );
    }
    Ok(())
}
