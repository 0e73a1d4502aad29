//! The host's side of a bundle: [`Batch`] and [`Values`] are the shared
//! bundle shape (`wasmbeam-bundle`); [`OutputBatch`] is what a DoFn emits.
//! This module converts them to and from the contract's wire records, whose per-element arrays are
//! packed little-endian byte lists (`packed-u32`, `packed-s64`).
//!
//! Guests are untrusted: [`output_from_wire`] checks that every packed list
//! holds whole entries, expands the contract's shorthands (empty `tags` =
//! all main output, empty `timestamps` = all inherit), and
//! [`check_output`] then checks offsets, tags and sources against the
//! bundle, so the runner only ever sees well-formed batches.

use crate::bindings::dofn::wasmbeam::udf::types as wit;
pub use wasmbeam_bundle::{
    Batch, Values, GLOBAL_WINDOW_END, INHERIT_TIMESTAMP, MAX_TIMESTAMP, MIN_TIMESTAMP, NO_SOURCE,
};

/// What a DoFn emitted (WIT `output-batch`). As on the wire, empty `tags`
/// mean "all main output" and empty `timestamps` "all inherit": read them
/// with [`OutputBatch::tag`] and [`OutputBatch::timestamp`]. Batches from a
/// guest are checked: every other field has one entry per value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputBatch {
    /// The m encoded output values.
    pub values: Values,
    /// m output indexes (0 is the main output), or none.
    pub tags: Vec<u32>,
    /// m source element indexes, or [`NO_SOURCE`].
    pub sources: Vec<u32>,
    /// m timestamps (ms), or [`INHERIT_TIMESTAMP`]; or none.
    pub timestamps: Vec<i64>,
    /// What this batch holds of the job's memory budget; given back when the
    /// batch is dropped (a clone holds nothing).
    pub reservation: crate::config::Reservation,
}

impl OutputBatch {
    /// Output index of value `i`.
    pub fn tag(&self, i: usize) -> u32 {
        self.tags.get(i).copied().unwrap_or(0)
    }
    /// Timestamp of value `i`, or [`INHERIT_TIMESTAMP`].
    pub fn timestamp(&self, i: usize) -> i64 {
        self.timestamps.get(i).copied().unwrap_or(INHERIT_TIMESTAMP)
    }
    /// What the host holds for this batch, as counted against
    /// [`crate::Limits::max_output_bytes`]: the values' bytes plus
    /// [`crate::OUTPUT_ELEMENT_COST`] per element.
    pub fn host_cost(&self) -> usize {
        host_cost(self.values.data.len(), self.values.len())
    }
}

/// Host bytes counted for an output of `data` value bytes and `n` elements.
pub(crate) fn host_cost(data: usize, n: usize) -> usize {
    data.saturating_add(n.saturating_mul(crate::config::OUTPUT_ELEMENT_COST))
}

/// Side input access pattern (WIT `side-input-kind`).
pub type SideInputKind = wit::SideInputKind;

/// Append `v` to `out` as little-endian u32s.
pub(crate) fn pack_u32(out: &mut Vec<u8>, v: &[u32]) {
    out.clear();
    out.reserve(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Append `v` to `out` as little-endian s64s.
pub(crate) fn pack_s64(out: &mut Vec<u8>, v: &[i64]) {
    out.clear();
    out.reserve(v.len() * 8);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

fn unpack<const N: usize, T>(
    field: &str,
    bytes: &[u8],
    what: &str,
    from: fn([u8; N]) -> T,
) -> Result<Vec<T>, String> {
    if bytes.len() % N != 0 {
        return Err(format!(
            "{field} holds {} bytes, which is not a whole number of {N}-byte {what} values",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| from(c.try_into().expect("chunks_exact yields N bytes")))
        .collect())
}

pub(crate) fn unpack_u32(field: &str, bytes: &[u8]) -> Result<Vec<u32>, String> {
    unpack(field, bytes, "u32", u32::from_le_bytes)
}

fn unpack_s64(field: &str, bytes: &[u8]) -> Result<Vec<i64>, String> {
    unpack(field, bytes, "s64", i64::from_le_bytes)
}

/// Reusable wire records for the calls of one instance, so that packing a
/// bundle allocates nothing once the buffers have grown.
#[derive(Default)]
pub(crate) struct WireScratch {
    input: Option<wit::InputBatch>,
    values: Vec<wit::Values>,
}

impl WireScratch {
    /// `b` as the wire record (reusing this scratch's buffers).
    pub(crate) fn input(&mut self, b: &Batch) -> &wit::InputBatch {
        let w = self.input.get_or_insert_with(|| wit::InputBatch {
            values: wit::Values {
                data: Vec::new(),
                offsets: Vec::new(),
            },
            timestamps: Vec::new(),
            window_offsets: Vec::new(),
            window_starts: Vec::new(),
            window_ends: Vec::new(),
            panes: Vec::new(),
        });
        fill_values(&mut w.values, &b.values);
        pack_s64(&mut w.timestamps, &b.timestamps);
        pack_u32(&mut w.window_offsets, &b.window_offsets);
        pack_s64(&mut w.window_starts, &b.window_starts);
        pack_s64(&mut w.window_ends, &b.window_ends);
        w.panes.clear();
        w.panes.extend_from_slice(&b.panes);
        w
    }

    /// `vs` as wire records, in order (reusing buffers).
    pub(crate) fn values<const K: usize>(&mut self, vs: [&Values; K]) -> &[wit::Values; K] {
        while self.values.len() < K {
            self.values.push(wit::Values {
                data: Vec::new(),
                offsets: Vec::new(),
            });
        }
        for (w, v) in self.values.iter_mut().zip(vs) {
            fill_values(w, v);
        }
        self.values[..K]
            .try_into()
            .expect("the scratch holds at least K records")
    }
}

fn fill_values(w: &mut wit::Values, v: &Values) {
    w.data.clear();
    w.data.extend_from_slice(&v.data);
    pack_u32(&mut w.offsets, &v.offsets);
}

/// A guest's `values` record, unpacked (not yet checked: see [`Values::check`]).
pub(crate) fn values_from_wire(w: wit::Values) -> Result<Values, String> {
    Ok(Values {
        offsets: unpack_u32("values.offsets", &w.offsets)?,
        data: w.data,
    })
}

/// A guest's `output-batch`, unpacked (shorthands kept: empty `tags` and
/// `timestamps` stay empty). Each packed list is unpacked and dropped in
/// turn, so the host never holds two copies of the whole output.
pub(crate) fn output_from_wire(w: wit::OutputBatch) -> Result<OutputBatch, String> {
    let wit::OutputBatch {
        values,
        tags,
        sources,
        timestamps,
    } = w;
    let values = values_from_wire(values)?;
    let sources = unpack_u32("sources", &sources)?;
    let tags = unpack_u32("tags", &tags)?;
    let timestamps = unpack_s64("timestamps", &timestamps)?;
    Ok(OutputBatch {
        values,
        tags,
        sources,
        timestamps,
        reservation: Default::default(),
    })
}

/// Check a guest's output against the contract and against the bundle it
/// answers (`input`; `None` for calls without input elements).
pub(crate) fn check_output(
    out: &OutputBatch,
    input: Option<&Batch>,
    outputs: usize,
) -> Result<(), String> {
    out.values.check()?;
    let inputs = input.map_or(0, |b| b.timestamps.len());
    let n = out.values.len();
    for (what, len, optional) in [
        ("tags", out.tags.len(), true),
        ("sources", out.sources.len(), false),
        ("timestamps", out.timestamps.len(), true),
    ] {
        if len != n && !(optional && len == 0) {
            return Err(format!("{n} values but {len} {what}"));
        }
    }
    if let Some((i, t)) = out
        .tags
        .iter()
        .enumerate()
        .find(|(_, &t)| t as usize >= outputs)
    {
        return Err(format!(
            "output {i} names output tag index {t}, but the transform has {outputs} outputs"
        ));
    }
    for (i, &s) in out.sources.iter().enumerate() {
        let ts = out.timestamp(i);
        if s == NO_SOURCE {
            if ts == INHERIT_TIMESTAMP {
                return Err(format!(
                    "output {i} has no source element, so it must set a timestamp"
                ));
            }
        } else if s as usize >= inputs {
            return Err(format!(
                "output {i} names source element {s}, but the bundle has {inputs} elements"
            ));
        }
        if ts == INHERIT_TIMESTAMP {
            continue;
        }
        let from = if s == NO_SOURCE {
            "emitted in finish-bundle".to_string()
        } else {
            format!("from input element {s} of the bundle")
        };
        if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&ts) {
            return Err(format!(
                "output {i} ({from}) has timestamp {ts} ms, outside Beam's range [{MIN_TIMESTAMP}, {MAX_TIMESTAMP}] ms"
            ));
        }
        // Outputs without a source land in the global window; others keep
        // their source's windows.
        let global = match input.filter(|_| s != NO_SOURCE) {
            None => true,
            Some(b) => {
                let s = s as usize;
                let (a, z) = (
                    b.window_offsets[s] as usize,
                    b.window_offsets[s + 1] as usize,
                );
                b.window_starts[a..z]
                    .iter()
                    .zip(&b.window_ends[a..z])
                    .any(|(&st, &en)| st == MIN_TIMESTAMP && en == GLOBAL_WINDOW_END)
            }
        };
        if global && ts >= GLOBAL_WINDOW_END {
            return Err(format!(
                "output {i} ({from}) has timestamp {ts} ms, past the end of the global window it belongs to (its last timestamp is {} ms)",
                GLOBAL_WINDOW_END - 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmbeam_bundle::{Window, PANE_ON_TIME_ONLY};

    fn wire_output(
        offsets: &[u32],
        tags: &[u8],
        sources: &[u32],
        times: &[u8],
    ) -> wit::OutputBatch {
        let mut o = Vec::new();
        pack_u32(&mut o, offsets);
        let mut s = Vec::new();
        pack_u32(&mut s, sources);
        wit::OutputBatch {
            values: wit::Values {
                data: vec![7; *offsets.last().unwrap() as usize],
                offsets: o,
            },
            tags: tags.to_vec(),
            sources: s,
            timestamps: times.to_vec(),
        }
    }

    fn global(n: usize) -> Batch {
        let mut b = Batch::default();
        for i in 0..n {
            b.push_global(b"x", i as i64);
        }
        b
    }

    fn with_times(sources: &[u32], times: &[i64]) -> OutputBatch {
        let mut t = Vec::new();
        pack_s64(&mut t, times);
        let offsets: Vec<u32> = (0..=sources.len() as u32).collect();
        output_from_wire(wire_output(&offsets, &[], sources, &t)).unwrap()
    }

    #[test]
    fn timestamps_outside_beams_range_are_refused_naming_the_element() {
        let mut windowed = Batch::default();
        windowed.push(b"w", 5, [Window { start: 0, end: 10 }], PANE_ON_TIME_ONLY);
        let input = global(2);
        // In range: Beam's extremes themselves, and past the global window's
        // end for an element in a bounded window.
        check_output(
            &with_times(&[0, 1], &[MIN_TIMESTAMP, GLOBAL_WINDOW_END - 1]),
            Some(&input),
            1,
        )
        .unwrap();
        check_output(&with_times(&[0], &[MAX_TIMESTAMP]), Some(&windowed), 1).unwrap();
        for (ts, what) in [
            (MIN_TIMESTAMP - 1, "outside Beam's range"),
            (i64::MIN + 60_001, "outside Beam's range"),
            (MAX_TIMESTAMP + 1, "outside Beam's range"),
            (i64::MAX, "outside Beam's range"),
            (GLOBAL_WINDOW_END, "past the end of the global window"),
        ] {
            let err = check_output(&with_times(&[0, 1], &[0, ts]), Some(&input), 1).unwrap_err();
            assert!(
                err.contains(what) && err.contains("output 1 (from input element 1"),
                "{ts}: {err}"
            );
            assert!(err.contains(&format!("timestamp {ts} ms")), "{err}");
        }
        // Finish-bundle outputs go to the global window.
        let err =
            check_output(&with_times(&[NO_SOURCE], &[GLOBAL_WINDOW_END]), None, 1).unwrap_err();
        assert!(
            err.contains("emitted in finish-bundle") && err.contains("global window"),
            "{err}"
        );
        let err =
            check_output(&with_times(&[0], &[MAX_TIMESTAMP + 1]), Some(&windowed), 1).unwrap_err();
        assert!(err.contains("outside Beam's range"), "{err}");
    }

    #[test]
    fn input_batches_pack_little_endian_and_reuse_buffers() {
        let mut b = Batch::default();
        b.push(
            b"ab",
            -2,
            [Window {
                start: 1,
                end: 0x0102_0304_0506_0708,
            }],
            5,
        );
        b.push(b"c", 3, [], 6);
        let mut scratch = WireScratch::default();
        let w = scratch.input(&b);
        assert_eq!(w.values.data, b"abc");
        assert_eq!(w.values.offsets, [0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&w.timestamps[..8], &(-2i64).to_le_bytes());
        assert_eq!(&w.timestamps[8..], &3i64.to_le_bytes());
        assert_eq!(w.window_offsets, [0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(w.window_ends, [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(w.panes, [5, 6]);
        // A second, smaller batch leaves nothing of the first behind.
        let mut small = Batch::default();
        small.push_global(b"z", 9);
        let w = scratch.input(&small);
        assert_eq!(w.values.data, b"z");
        assert_eq!(w.timestamps, 9i64.to_le_bytes());
        assert_eq!(w.window_offsets.len(), 8);
    }

    #[test]
    fn empty_tags_and_timestamps_mean_main_output_and_inherit() {
        let out = output_from_wire(wire_output(&[0, 1, 3], &[], &[0, 0], &[])).unwrap();
        assert!(out.tags.is_empty() && out.timestamps.is_empty());
        assert_eq!((out.tag(1), out.timestamp(1)), (0, INHERIT_TIMESTAMP));
        assert_eq!(out.sources, [0, 0]);
        assert_eq!(out.values.get(1), [7, 7]);
        check_output(&out, Some(&global(1)), 1).unwrap();
    }

    #[test]
    fn explicit_tags_and_timestamps_are_unpacked() {
        let mut tags = Vec::new();
        pack_u32(&mut tags, &[1, 0]);
        let mut times = Vec::new();
        pack_s64(&mut times, &[-5, INHERIT_TIMESTAMP]);
        let out =
            output_from_wire(wire_output(&[0, 1, 2], &tags, &[NO_SOURCE, 0], &times)).unwrap();
        assert_eq!(out.tags, [1, 0]);
        assert_eq!(out.timestamps, [-5, INHERIT_TIMESTAMP]);
        check_output(&out, Some(&global(1)), 2).unwrap();
        let err = check_output(&out, Some(&global(1)), 1).unwrap_err();
        assert!(err.contains("names output tag index 1"), "{err}");
    }

    #[test]
    fn ragged_packed_lists_are_refused_naming_the_field() {
        let mut w = wire_output(&[0, 1], &[], &[0], &[]);
        w.values.offsets.pop();
        let err = output_from_wire(w).unwrap_err();
        assert!(err.contains("values.offsets holds 7 bytes"), "{err}");

        let err = output_from_wire(wire_output(&[0, 1], &[1, 0, 0], &[0], &[])).unwrap_err();
        assert!(
            err.contains("tags holds 3 bytes") && err.contains("4-byte u32"),
            "{err}"
        );

        let err = output_from_wire(wire_output(&[0, 1], &[], &[0], &[0; 12])).unwrap_err();
        assert!(
            err.contains("timestamps holds 12 bytes") && err.contains("8-byte s64"),
            "{err}"
        );

        // Whole entries, but the wrong number of them.
        let out = output_from_wire(wire_output(&[0, 1], &[], &[0, 0], &[])).unwrap();
        let err = check_output(&out, Some(&global(1)), 1).unwrap_err();
        assert!(err.contains("1 values but 2 sources"), "{err}");
    }
}
