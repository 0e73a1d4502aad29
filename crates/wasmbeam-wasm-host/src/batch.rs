//! Building input batches and checking output batches.

use crate::{InputBatch, OutputBatch, Values};

/// `output-batch.sources` entry for an output with no input element.
pub const NO_SOURCE: u32 = u32::MAX;
/// `output-batch.timestamps` entry meaning "the source element's timestamp".
pub const INHERIT_TIMESTAMP: i64 = i64::MIN;

/// Side input access pattern (WIT `side-input-kind`).
pub type SideInputKind = crate::bindings::dofn::wasmbeam::udf::types::SideInputKind;

/// Beam's minimum timestamp in milliseconds (start of the global window).
pub const MIN_TIMESTAMP_MS: i64 = -9_223_372_036_854_775;
/// The end of Beam's global window in milliseconds.
pub const GLOBAL_WINDOW_END_MS: i64 = 9_223_371_950_454_775 + 1;

/// Pane byte for the only, on-time pane of batch processing.
pub const PANE_ON_TIME_ONLY: u8 = 0b0111;

/// Incrementally builds an [`InputBatch`] without per-element allocation.
#[derive(Debug, Default, Clone)]
pub struct InputBatchBuilder {
    batch: InputBatch,
}

impl Default for InputBatch {
    fn default() -> Self {
        InputBatch {
            values: Values::default(),
            timestamps: Vec::new(),
            window_offsets: vec![0],
            window_starts: Vec::new(),
            window_ends: Vec::new(),
            panes: Vec::new(),
        }
    }
}

impl Default for Values {
    fn default() -> Self {
        Values {
            data: Vec::new(),
            offsets: vec![0],
        }
    }
}

impl Values {
    /// Build from a list of byte strings.
    pub fn from_slices<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Values {
        let mut v = Values::default();
        for i in items {
            v.push(i);
        }
        v
    }
    /// Append one value.
    pub fn push(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.offsets.push(self.data.len() as u32);
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Value `i` (panics when out of range or on malformed offsets: call
    /// [`Values::check`] on untrusted batches first).
    pub fn get(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
    /// Iterate over the values.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.offsets
            .windows(2)
            .map(|w| &self.data[w[0] as usize..w[1] as usize])
    }
    /// Check that offsets start at 0, never decrease, and end at `data.len()`.
    pub fn check(&self) -> Result<(), String> {
        match self.offsets.first() {
            Some(0) => {}
            Some(x) => return Err(format!("offsets must start at 0, not {x}")),
            None => return Err("offsets must have n+1 entries, found none".into()),
        }
        if let Some(i) = self.offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(format!("offsets decrease at index {}", i + 1));
        }
        let last = *self.offsets.last().unwrap_or(&0) as usize;
        if last != self.data.len() {
            return Err(format!(
                "last offset is {last} but data holds {} bytes",
                self.data.len()
            ));
        }
        Ok(())
    }
}

impl InputBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Append an element in the global window at `timestamp`.
    pub fn push_global(&mut self, value: &[u8], timestamp: i64) {
        self.push(
            value,
            timestamp,
            &[(MIN_TIMESTAMP_MS, GLOBAL_WINDOW_END_MS)],
            PANE_ON_TIME_ONLY,
        );
    }
    /// Append an element with explicit windows `(start, end)` and pane byte.
    pub fn push(&mut self, value: &[u8], timestamp: i64, windows: &[(i64, i64)], pane: u8) {
        let b = &mut self.batch;
        b.values.push(value);
        b.timestamps.push(timestamp);
        for &(s, e) in windows {
            b.window_starts.push(s);
            b.window_ends.push(e);
        }
        b.window_offsets.push(b.window_starts.len() as u32);
        b.panes.push(pane);
    }
    /// Number of elements so far.
    pub fn len(&self) -> usize {
        self.batch.timestamps.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Remove all elements, keeping the allocations.
    pub fn clear(&mut self) {
        let b = &mut self.batch;
        b.values.data.clear();
        b.values.offsets.truncate(1);
        b.timestamps.clear();
        b.window_offsets.truncate(1);
        b.window_starts.clear();
        b.window_ends.clear();
        b.panes.clear();
    }
    /// The batch built so far.
    pub fn batch(&self) -> &InputBatch {
        &self.batch
    }
    /// Finish.
    pub fn build(self) -> InputBatch {
        self.batch
    }
}

/// Check a guest's output against the contract.
pub(crate) fn check_output(out: &OutputBatch, inputs: usize, outputs: usize) -> Result<(), String> {
    out.values.check()?;
    let n = out.values.len();
    for (what, len) in [
        ("tags", out.tags.len()),
        ("sources", out.sources.len()),
        ("timestamps", out.timestamps.len()),
    ] {
        if len != n {
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
    for (i, (&s, &ts)) in out.sources.iter().zip(&out.timestamps).enumerate() {
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
    }
    Ok(())
}
