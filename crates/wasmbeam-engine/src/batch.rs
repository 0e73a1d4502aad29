//! Columnar bundles of elements: values in one flat buffer plus per-element
//! event time, windows and pane. The layout matches the WASM contract's
//! `input-batch`, so handing a bundle to a UDF moves vectors, never elements.

use crate::window::Window;

/// Pane byte for the only, on-time pane of batch processing
/// (first | last | timing on-time).
pub const PANE_ON_TIME_ONLY: u8 = 0b0111;

/// Pane byte of an element no trigger produced (first | last | timing
/// unknown): Beam's `NO_FIRING`.
pub const PANE_NO_FIRING: u8 = 0b1111;

/// A bundle of windowed elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Concatenated encoded values (element coder, outer context).
    pub data: Vec<u8>,
    /// n+1 offsets into `data`.
    pub offsets: Vec<u32>,
    /// n event timestamps (ms).
    pub timestamps: Vec<i64>,
    /// n+1 offsets into the window columns.
    pub window_offsets: Vec<u32>,
    /// Window starts.
    pub window_starts: Vec<i64>,
    /// Window ends.
    pub window_ends: Vec<i64>,
    /// n pane bytes.
    pub panes: Vec<u8>,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            data: Vec::new(),
            offsets: vec![0],
            timestamps: Vec::new(),
            window_offsets: vec![0],
            window_starts: Vec::new(),
            window_ends: Vec::new(),
            panes: Vec::new(),
        }
    }
}

/// One element of a batch, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementRef<'a> {
    /// Encoded value.
    pub value: &'a [u8],
    /// Event time.
    pub timestamp: i64,
    /// Window starts (parallel to `window_ends`).
    pub window_starts: &'a [i64],
    /// Window ends.
    pub window_ends: &'a [i64],
    /// Pane byte.
    pub pane: u8,
}

impl ElementRef<'_> {
    /// The element's windows.
    pub fn windows(&self) -> impl Iterator<Item = Window> + '_ {
        self.window_starts
            .iter()
            .zip(self.window_ends)
            .map(|(&start, &end)| Window { start, end })
    }
}

impl Batch {
    /// An empty batch with room for `n` elements and `bytes` of data.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        let mut b = Batch {
            data: Vec::with_capacity(bytes),
            offsets: Vec::with_capacity(n + 1),
            timestamps: Vec::with_capacity(n),
            window_offsets: Vec::with_capacity(n + 1),
            window_starts: Vec::with_capacity(n),
            window_ends: Vec::with_capacity(n),
            panes: Vec::with_capacity(n),
        };
        b.offsets.push(0);
        b.window_offsets.push(0);
        b
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn byte_size(&self) -> usize {
        self.data.len() + self.timestamps.len() * 22 + self.window_starts.len() * 16
    }

    /// Append an element.
    #[inline]
    pub fn push(
        &mut self,
        value: &[u8],
        timestamp: i64,
        windows: impl IntoIterator<Item = Window>,
        pane: u8,
    ) {
        self.data.extend_from_slice(value);
        self.offsets.push(self.data.len() as u32);
        self.timestamps.push(timestamp);
        for w in windows {
            self.window_starts.push(w.start);
            self.window_ends.push(w.end);
        }
        self.window_offsets.push(self.window_starts.len() as u32);
        self.panes.push(pane);
    }

    /// Append an element in the global window.
    #[inline]
    pub fn push_global(&mut self, value: &[u8], timestamp: i64) {
        self.push(value, timestamp, [Window::GLOBAL], PANE_ON_TIME_ONLY);
    }

    /// Append a copy of another batch's element.
    #[inline]
    pub fn push_ref(&mut self, e: &ElementRef<'_>) {
        self.push(e.value, e.timestamp, e.windows(), e.pane);
    }

    /// Element `i`.
    #[inline]
    pub fn get(&self, i: usize) -> ElementRef<'_> {
        let (ws, we) = (
            self.window_offsets[i] as usize,
            self.window_offsets[i + 1] as usize,
        );
        ElementRef {
            value: &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize],
            timestamp: self.timestamps[i],
            window_starts: &self.window_starts[ws..we],
            window_ends: &self.window_ends[ws..we],
            pane: self.panes[i],
        }
    }

    /// Iterate over the elements.
    pub fn iter(&self) -> impl Iterator<Item = ElementRef<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Append all elements of `other`.
    pub fn extend_from(&mut self, other: &Batch) {
        for e in other.iter() {
            self.push_ref(&e);
        }
    }
}
