//! Grouping: per-worker precombine tables (combiner lifting) and grouping
//! one shuffle partition into (key, window) groups.

use super::*;

/// A worker's precombined accumulators of one GroupByKey, by window then key.
/// Pipelines have few distinct windows per bundle, so windows are a short
/// list searched from the most recent; keys use a fast non-cryptographic hash.
#[derive(Default)]
pub(super) struct Table {
    pub(super) windows: Vec<(Window, rustc_hash::FxHashMap<Vec<u8>, Vec<u8>>)>,
}

impl Table {
    pub(super) fn window(&mut self, w: Window) -> &mut rustc_hash::FxHashMap<Vec<u8>, Vec<u8>> {
        let i = match self.windows.iter().rposition(|(x, _)| *x == w) {
            Some(i) => i,
            None => {
                self.windows.push((w, Default::default()));
                self.windows.len() - 1
            }
        };
        &mut self.windows[i].1
    }

    pub(super) fn drain(&mut self) -> Vec<((Vec<u8>, Window), Vec<u8>)> {
        let mut out = Vec::new();
        for (w, m) in self.windows.drain(..) {
            out.extend(m.into_iter().map(|(k, a)| ((k, w), a)));
        }
        out
    }
}

/// Per-worker buffers for shuffles (and precombine tables).
#[derive(Default)]
pub(super) struct Local {
    pub(super) bufs: HashMap<usize, Vec<Vec<u8>>>,
    pub(super) precombine: HashMap<usize, Table>,
    pub(super) precombine_bytes: HashMap<usize, usize>,
}

pub(super) const LOCAL_FLUSH: usize = 256 << 10;

/// Fold a bundle into the worker's precombine table: one `add_inputs` call
/// for all of the bundle's (key, window) groups.
pub(super) fn precombine_bundle(
    sh: &Shared<'_>,
    op: usize,
    codec: &dyn KvCodec,
    comb: &dyn CombineExec,
    batch: &Batch,
    local: &mut Local,
) -> Result<(), EngineError> {
    if comb.supports_in_place() {
        let mut fresh: Option<Vec<u8>> = None;
        let table = local.precombine.entry(op).or_default();
        let bytes = local.precombine_bytes.entry(op).or_insert(0);
        for (i, e) in batch.iter().enumerate() {
            let (key, value) = codec
                .split(e.value)
                .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
            for w in e.windows() {
                let map = table.window(w);
                let acc = match map.get_mut(key) {
                    Some(a) => a,
                    None => {
                        if fresh.is_none() {
                            fresh = Some(comb.create().map_err(|m| sh.op_err(op, m))?);
                        }
                        *bytes += key.len() + 64;
                        map.entry(key.to_vec())
                            .or_insert_with(|| fresh.clone().unwrap_or_default())
                    }
                };
                comb.add_input_in_place(acc, value)
                    .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
            }
        }
        if *bytes > sh.opts.memory_budget / (4 * sh.opts.workers.max(1)) {
            flush_precombine(sh, op, local)?;
        }
        return Ok(());
    }
    let mut group_of: rustc_hash::FxHashMap<(&[u8], Window), u32> = Default::default();
    let mut keys: Vec<(&[u8], Window)> = Vec::new();
    let mut members: Vec<(u32, &[u8])> = Vec::with_capacity(batch.len());
    for (i, e) in batch.iter().enumerate() {
        let (key, value) = codec
            .split(e.value)
            .map_err(|m| sh.op_err(op, format!("element {i}: {m}")))?;
        for w in e.windows() {
            let next = keys.len() as u32;
            let gi = *group_of.entry((key, w)).or_insert_with(|| {
                keys.push((key, w));
                next
            });
            members.push((gi, value));
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    // Counting sort of values by group.
    let mut counts = vec![0u32; keys.len()];
    for (gi, _) in &members {
        counts[*gi as usize] += 1;
    }
    let mut ends = Vec::with_capacity(keys.len());
    let mut acc = 0u32;
    for c in &counts {
        acc += c;
        ends.push(acc);
    }
    let mut slots: Vec<&[u8]> = vec![&[]; members.len()];
    let mut fill: Vec<u32> = ends.iter().zip(&counts).map(|(e, c)| e - c).collect();
    for (gi, v) in &members {
        slots[fill[*gi as usize] as usize] = v;
        fill[*gi as usize] += 1;
    }
    let mut inputs = Values::default();
    for v in &slots {
        inputs.push(v);
    }
    let table = local.precombine.entry(op).or_default();
    let mut accs = Values::default();
    let mut fresh: Option<Vec<u8>> = None;
    for (k, w) in &keys {
        match table.window(*w).get(*k) {
            Some(a) => accs.push(a),
            None => {
                if fresh.is_none() {
                    fresh = Some(comb.create().map_err(|m| sh.op_err(op, m))?);
                }
                accs.push(fresh.as_deref().unwrap_or(&[]));
            }
        }
    }
    let out = comb
        .add_inputs(&accs, &inputs, &ends)
        .map_err(|m| sh.op_err(op, m))?;
    if out.len() != keys.len() {
        return Err(sh.op_err(
            op,
            format!(
                "the CombineFn returned {} accumulators for {} groups",
                out.len(),
                keys.len()
            ),
        ));
    }
    let bytes = local.precombine_bytes.entry(op).or_insert(0);
    for (i, (k, w)) in keys.iter().enumerate() {
        let a = out.get(i).to_vec();
        *bytes += a.len() + k.len() + 48;
        table.window(*w).insert(k.to_vec(), a);
    }
    // Keep the table within a share of the budget.
    if *bytes > sh.opts.memory_budget / (4 * sh.opts.workers.max(1)) {
        flush_precombine(sh, op, local)?;
    }
    Ok(())
}

pub(super) fn flush_precombine(
    sh: &Shared<'_>,
    op: usize,
    local: &mut Local,
) -> Result<(), EngineError> {
    let Some(table) = local.precombine.get_mut(&op) else {
        return Ok(());
    };
    let shuffle = &sh.shuffles[&op];
    let parts = shuffle.partitions();
    let mut bufs = vec![Vec::new(); parts];
    let mut entries = table.drain();
    entries.sort();
    for (i, ((k, w), acc)) in entries.iter().enumerate() {
        let p = partition_of(k, parts);
        let seq = Seq {
            stage: u32::MAX,
            source: 0,
            sub: 0,
            index: i as u32,
        };
        encode_record(
            &mut bufs[p],
            &Record {
                key: k,
                window: *w,
                timestamp: w.max_timestamp(),
                seq,
                value: acc,
            },
        );
    }
    for (p, b) in bufs.iter().enumerate() {
        shuffle.append(p, b).map_err(|m| sh.op_err(op, m))?;
    }
    local.precombine_bytes.insert(op, 0);
    Ok(())
}

/// Groups per output bundle when reading a shuffle.
pub(super) const GROUPS_PER_BUNDLE: usize = 4096;

/// Read, sort and group one shuffle partition, emitting output bundles.
pub(super) fn group_partition(
    sh: &Shared<'_>,
    op: usize,
    p: usize,
    mut emit: impl FnMut(Batch) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let OpKind::GroupByKey {
        codec,
        window_fn,
        combine,
        ..
    } = &sh.g.ops[op].kind
    else {
        return Ok(());
    };
    let buf = sh.shuffles[&op]
        .take_partition(p)
        .map_err(|m| sh.op_err(op, m))?;
    let recs = sorted_records(&buf).map_err(|m| sh.op_err(op, m))?;
    // Groups as (key, window, member record indexes in seq order).
    let mut groups: Vec<(&[u8], Window, Vec<usize>)> = Vec::new();
    if window_fn.is_merging() {
        let mut i = 0;
        while i < recs.len() {
            let mut j = i;
            while j < recs.len() && recs[j].key == recs[i].key {
                j += 1;
            }
            let merged = merge_windows(recs[i..j].iter().map(|r| r.window).collect());
            let mut per: Vec<Vec<usize>> = vec![Vec::new(); merged.len()];
            for (k, r) in recs[i..j].iter().enumerate() {
                let mi = merged
                    .partition_point(|m| m.start <= r.window.start)
                    .saturating_sub(1);
                per[mi].push(i + k);
            }
            for (mi, mut members) in per.into_iter().enumerate() {
                if members.is_empty() {
                    continue;
                }
                members.sort_by_key(|&x| recs[x].seq);
                groups.push((recs[i].key, merged[mi], members));
            }
            i = j;
        }
    } else {
        let mut i = 0;
        while i < recs.len() {
            let mut j = i;
            while j < recs.len() && recs[j].key == recs[i].key && recs[j].window == recs[i].window {
                j += 1;
            }
            groups.push((recs[i].key, recs[i].window, (i..j).collect()));
            i = j;
        }
    }
    for chunk in groups.chunks(GROUPS_PER_BUNDLE) {
        let mut out = Batch::with_capacity(chunk.len(), 0);
        match combine {
            None => {
                let mut v = Vec::new();
                for (key, w, members) in chunk {
                    v.clear();
                    v.extend_from_slice(key);
                    v.extend_from_slice(&(members.len() as i32).to_be_bytes());
                    for &m in members {
                        codec
                            .value_to_nested(recs[m].value, &mut v)
                            .map_err(|e| sh.op_err(op, e))?;
                    }
                    out.push(&v, w.max_timestamp(), [*w], PANE_ON_TIME_ONLY);
                }
            }
            Some(comb) => {
                let mut vals = Values::default();
                let mut ends = Vec::with_capacity(chunk.len());
                for (_, _, members) in chunk {
                    for &m in members {
                        vals.push(recs[m].value);
                    }
                    ends.push(vals.len() as u32);
                }
                let accs = if window_fn.is_merging() {
                    let fresh = comb.create().map_err(|m| sh.op_err(op, m))?;
                    let mut empties = Values::default();
                    for _ in chunk {
                        empties.push(&fresh);
                    }
                    comb.add_inputs(&empties, &vals, &ends)
                        .map_err(|m| sh.op_err(op, m))?
                } else {
                    comb.merge(&vals, &ends).map_err(|m| sh.op_err(op, m))?
                };
                let outs = comb.extract(&accs).map_err(|m| sh.op_err(op, m))?;
                if outs.len() != chunk.len() {
                    return Err(sh.op_err(
                        op,
                        format!(
                            "the CombineFn returned {} outputs for {} groups",
                            outs.len(),
                            chunk.len()
                        ),
                    ));
                }
                let mut v = Vec::new();
                for (gi, (key, w, _)) in chunk.iter().enumerate() {
                    v.clear();
                    v.extend_from_slice(key);
                    v.extend_from_slice(outs.get(gi));
                    out.push(&v, w.max_timestamp(), [*w], PANE_ON_TIME_ONLY);
                }
            }
        }
        emit(out)?;
    }
    Ok(())
}
