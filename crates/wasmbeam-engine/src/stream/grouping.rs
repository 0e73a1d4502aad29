//! The streaming executor's GroupByKeys: processing-time firings, and
//! turning fired panes into output elements.

use super::*;

impl Streamer<'_> {
    /// Fire processing-time triggers, and stateful ParDos'
    /// processing-time timers, due at the clock.
    pub(super) fn fire_processing_time(&mut self) -> Result<(), EngineError> {
        let g = self.g;
        for i in 0..g.ops.len() {
            if let OpState::Keyed {
                run: Some(run),
                input_watermark,
            } = &self.states[i]
            {
                if run.next_processing_timer().is_some_and(|t| t <= self.clock) {
                    let wm = *input_watermark;
                    self.fire_keyed(i, wm, self.clock)?;
                }
                continue;
            }
            let OpState::Group {
                drivers,
                input_watermark,
                ..
            } = &mut self.states[i]
            else {
                continue;
            };
            let t = Times {
                watermark: *input_watermark,
                processing: self.clock,
            };
            let panes = advance_drivers(drivers, t);
            self.emit_panes(i, panes)?;
        }
        Ok(())
    }
}

impl Streamer<'_> {
    /// Encode the panes GroupByKey `i` fired and hand them on; the earliest
    /// output timestamp among them.
    pub(super) fn emit_panes(
        &mut self,
        i: usize,
        panes: Vec<(Vec<u8>, Pane<Vec<u8>>)>,
    ) -> Result<Option<i64>, EngineError> {
        if panes.is_empty() {
            return Ok(None);
        }
        let g = self.g;
        let OpKind::GroupByKey { codec, combine, .. } = &g.ops[i].kind else {
            unreachable!("group state belongs to a GroupByKey")
        };
        let out = encode_panes(g, i, codec.as_ref(), combine.as_deref(), panes)?;
        let earliest = out.timestamps.iter().copied().min();
        self.emit(g.ops[i].outputs[0], out);
        Ok(earliest)
    }
}

/// Advance every key's driver to `t`; the panes fired, in key order, and
/// the keys left with no state dropped.
pub(super) fn advance_drivers(
    drivers: &mut HashMap<Vec<u8>, PaneDriver<Vec<u8>>>,
    t: Times,
) -> Vec<(Vec<u8>, Pane<Vec<u8>>)> {
    let mut due: Vec<&Vec<u8>> = drivers
        .iter()
        .filter(|(_, d)| {
            d.next_event_timer().is_some_and(|x| x <= t.watermark)
                || d.next_processing_timer().is_some_and(|x| x <= t.processing)
        })
        .map(|(k, _)| k)
        .collect();
    due.sort();
    let due: Vec<Vec<u8>> = due.into_iter().cloned().collect();
    let mut out = Vec::new();
    for k in due {
        let d = drivers.get_mut(&k).expect("a due key");
        let mut panes = Vec::new();
        d.advance(t, &mut panes);
        if d.is_empty() {
            drivers.remove(&k);
        }
        out.extend(panes.into_iter().map(|p| (k.clone(), p)));
    }
    out
}

/// GroupByKey output for fired panes: `KV<key, iterable>` (or the combined
/// value), in the pane's window, at its timestamp, with its pane info.
fn encode_panes(
    g: &Graph,
    op: usize,
    codec: &dyn crate::graph::KvCodec,
    combine: Option<&dyn crate::graph::CombineExec>,
    panes: Vec<(Vec<u8>, Pane<Vec<u8>>)>,
) -> Result<Batch, EngineError> {
    let mut out = Batch::with_capacity(panes.len(), 0);
    let mut v = Vec::new();
    let combined = match combine {
        None => None,
        Some(c) => {
            let fresh = c.create().map_err(|m| op_err(g, op, m))?;
            let mut empties = Values::default();
            let mut vals = Values::default();
            let mut ends = Vec::with_capacity(panes.len());
            for (_, p) in &panes {
                empties.push(&fresh);
                for x in &p.values {
                    vals.push(x);
                }
                ends.push(vals.len() as u32);
            }
            let accs = c
                .add_inputs(&empties, &vals, &ends)
                .map_err(|m| op_err(g, op, m))?;
            let outs = c.extract(&accs).map_err(|m| op_err(g, op, m))?;
            if outs.len() != panes.len() {
                return Err(op_err(
                    g,
                    op,
                    format!(
                        "the CombineFn returned {} outputs for {} panes",
                        outs.len(),
                        panes.len()
                    ),
                ));
            }
            Some(outs)
        }
    };
    for (n, (key, p)) in panes.iter().enumerate() {
        v.clear();
        v.extend_from_slice(key);
        match &combined {
            Some(outs) => v.extend_from_slice(outs.get(n)),
            None => {
                v.extend_from_slice(&(p.values.len() as i32).to_be_bytes());
                for x in &p.values {
                    codec
                        .value_to_nested(x, &mut v)
                        .map_err(|m| op_err(g, op, m))?;
                }
            }
        }
        out.push_in_pane(
            &v,
            p.timestamp,
            [p.window],
            p.info.byte(),
            [p.info.index, p.info.nonspeculative_index],
        );
    }
    Ok(out)
}
