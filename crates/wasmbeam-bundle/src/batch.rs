//! [`Batch`]: a bundle of windowed elements, as columns.

use crate::{Values, Window, PANE_ON_TIME_ONLY};

/// A bundle of windowed elements: element `i` is `values.get(i)` at
/// `timestamps[i]`, in the windows
/// `window_starts/ends[window_offsets[i]..window_offsets[i + 1]]`, with pane
/// byte `panes[i]` and pane indexes `pane_indexes[i]`. The layout is the
/// UDF contract's `input-batch`, so handing a bundle to a UDF moves
/// vectors, never elements.
///
/// Pane indexes (a pane's index among its window's panes, and among its
/// non-early ones) are kept only once some element needs them: while
/// `pane_indexes` is empty, every element is in the first pane its timing
/// allows ([`default_pane_indexes`]), as in batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The n encoded values (element coder, outer context).
    pub values: Values,
    /// n event timestamps (ms).
    pub timestamps: Vec<i64>,
    /// n+1 offsets into the window columns.
    pub window_offsets: Vec<u32>,
    /// Window starts (inclusive, ms).
    pub window_starts: Vec<i64>,
    /// Window ends (exclusive, ms).
    pub window_ends: Vec<i64>,
    /// n pane bytes.
    pub panes: Vec<u8>,
    /// n `[index, non-speculative index]` pairs, or none (see above).
    pub pane_indexes: Vec<[i64; 2]>,
}

/// The pane indexes of an element whose batch keeps none: index 0, and
/// non-speculative index -1 for an early pane, else 0.
#[inline]
pub fn default_pane_indexes(pane: u8) -> [i64; 2] {
    if (pane >> 2) & 0b11 == 0 {
        [0, -1]
    } else {
        [0, 0]
    }
}

impl Default for Batch {
    #[inline]
    fn default() -> Self {
        Batch {
            values: Values::default(),
            timestamps: Vec::new(),
            window_offsets: vec![0],
            window_starts: Vec::new(),
            window_ends: Vec::new(),
            panes: Vec::new(),
            pane_indexes: Vec::new(),
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
    /// `[index, non-speculative index]` of its pane.
    pub pane_indexes: [i64; 2],
}

impl ElementRef<'_> {
    /// The element's windows.
    #[inline]
    pub fn windows(&self) -> impl Iterator<Item = Window> + '_ {
        self.window_starts
            .iter()
            .zip(self.window_ends)
            .map(|(&start, &end)| Window { start, end })
    }
}

impl Batch {
    /// An empty batch with room for `n` elements (one window each) and
    /// `bytes` of values.
    #[inline]
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        let mut window_offsets = Vec::with_capacity(n + 1);
        window_offsets.push(0);
        Batch {
            values: Values::with_capacity(n, bytes),
            timestamps: Vec::with_capacity(n),
            window_offsets,
            window_starts: Vec::with_capacity(n),
            window_ends: Vec::with_capacity(n),
            panes: Vec::with_capacity(n),
            pane_indexes: Vec::new(),
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Approximate heap bytes held.
    #[inline]
    pub fn byte_size(&self) -> usize {
        self.values.data.len() + self.timestamps.len() * 22 + self.window_starts.len() * 16
    }

    /// Remove every element, keeping the allocations.
    #[inline]
    pub fn clear(&mut self) {
        self.values.clear();
        self.timestamps.clear();
        self.window_offsets.clear();
        self.window_offsets.push(0);
        self.window_starts.clear();
        self.window_ends.clear();
        self.panes.clear();
        self.pane_indexes.clear();
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
        self.push_columns(value, timestamp, windows, pane);
        if !self.pane_indexes.is_empty() {
            self.pane_indexes.push(default_pane_indexes(pane));
        }
    }

    /// Append an element with its pane's indexes.
    #[inline]
    pub fn push_in_pane(
        &mut self,
        value: &[u8],
        timestamp: i64,
        windows: impl IntoIterator<Item = Window>,
        pane: u8,
        indexes: [i64; 2],
    ) {
        let keep = !self.pane_indexes.is_empty() || indexes != default_pane_indexes(pane);
        if keep {
            self.keep_pane_indexes();
        }
        self.push_columns(value, timestamp, windows, pane);
        if keep {
            self.pane_indexes.push(indexes);
        }
    }

    #[inline]
    fn push_columns(
        &mut self,
        value: &[u8],
        timestamp: i64,
        windows: impl IntoIterator<Item = Window>,
        pane: u8,
    ) {
        self.values.push(value);
        self.timestamps.push(timestamp);
        for w in windows {
            self.window_starts.push(w.start);
            self.window_ends.push(w.end);
        }
        self.window_offsets.push(self.window_starts.len() as u32);
        self.panes.push(pane);
    }

    /// Start keeping pane indexes (filling in the defaults so far).
    #[inline]
    fn keep_pane_indexes(&mut self) {
        if self.pane_indexes.len() < self.panes.len() {
            let missing = self.panes[self.pane_indexes.len()..]
                .iter()
                .map(|&p| default_pane_indexes(p))
                .collect::<Vec<_>>();
            self.pane_indexes.extend(missing);
        }
    }

    /// Append an element in the global window, in its only, on-time pane.
    #[inline]
    pub fn push_global(&mut self, value: &[u8], timestamp: i64) {
        self.push(value, timestamp, [Window::GLOBAL], PANE_ON_TIME_ONLY);
    }

    /// Append a copy of another batch's element.
    #[inline]
    pub fn push_ref(&mut self, e: &ElementRef<'_>) {
        self.push_in_pane(e.value, e.timestamp, e.windows(), e.pane, e.pane_indexes);
    }

    /// Element `i`.
    #[inline]
    pub fn get(&self, i: usize) -> ElementRef<'_> {
        let (ws, we) = (
            self.window_offsets[i] as usize,
            self.window_offsets[i + 1] as usize,
        );
        ElementRef {
            value: self.values.get(i),
            timestamp: self.timestamps[i],
            window_starts: &self.window_starts[ws..we],
            window_ends: &self.window_ends[ws..we],
            pane: self.panes[i],
            pane_indexes: self
                .pane_indexes
                .get(i)
                .copied()
                .unwrap_or_else(|| default_pane_indexes(self.panes[i])),
        }
    }

    /// Iterate over the elements.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = ElementRef<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Append all elements of `other`, column by column.
    #[inline]
    pub fn extend_from(&mut self, other: &Batch) {
        if !self.pane_indexes.is_empty() || !other.pane_indexes.is_empty() {
            self.keep_pane_indexes();
            if other.pane_indexes.is_empty() {
                self.pane_indexes
                    .extend(other.panes.iter().map(|&p| default_pane_indexes(p)));
            } else {
                self.pane_indexes.extend_from_slice(&other.pane_indexes);
            }
        }
        let base = self.values.data.len() as u32;
        self.values.data.extend_from_slice(&other.values.data);
        self.values
            .offsets
            .extend(other.values.offsets[1..].iter().map(|o| o + base));
        self.timestamps.extend_from_slice(&other.timestamps);
        let wbase = self.window_starts.len() as u32;
        self.window_starts.extend_from_slice(&other.window_starts);
        self.window_ends.extend_from_slice(&other.window_ends);
        self.window_offsets
            .extend(other.window_offsets[1..].iter().map(|o| o + wbase));
        self.panes.extend_from_slice(&other.panes);
    }

    /// Check that the columns agree: values well formed, one timestamp,
    /// pane and window range per value, window offsets that start at 0,
    /// never decrease and end at the window columns' length.
    #[inline]
    pub fn check(&self) -> Result<(), String> {
        self.values.check()?;
        let n = self.values.len();
        if !self.pane_indexes.is_empty() && self.pane_indexes.len() != n {
            return Err(format!(
                "{n} values but {} pane indexes",
                self.pane_indexes.len()
            ));
        }
        if self.timestamps.len() != n || self.panes.len() != n {
            return Err(format!(
                "{n} values but {} timestamps and {} panes",
                self.timestamps.len(),
                self.panes.len()
            ));
        }
        if self.window_offsets.len() != n + 1 || self.window_offsets[0] != 0 {
            return Err(format!(
                "window offsets must be n+1 = {} entries starting at 0",
                n + 1
            ));
        }
        if self.window_offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err("window offsets decrease".into());
        }
        let last = self.window_offsets[n] as usize;
        if self.window_starts.len() != last || self.window_ends.len() != last {
            return Err(format!(
                "window offsets end at {last} but there are {} starts and {} ends",
                self.window_starts.len(),
                self.window_ends.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(start: i64, end: i64) -> Window {
        Window { start, end }
    }

    #[test]
    fn elements_read_back_as_pushed() {
        let mut b = Batch::default();
        b.push(b"x", 5, [w(0, 10), w(5, 15)], 3);
        b.push_global(b"yz", 7);
        assert_eq!(b.len(), 2);
        let e = b.get(0);
        assert_eq!((e.value, e.timestamp, e.pane), (&b"x"[..], 5, 3));
        assert_eq!(e.windows().collect::<Vec<_>>(), vec![w(0, 10), w(5, 15)]);
        let g = b.get(1);
        assert_eq!(g.windows().collect::<Vec<_>>(), vec![Window::GLOBAL]);
        assert_eq!(g.pane, PANE_ON_TIME_ONLY);
        assert!(b.check().is_ok());
        b.clear();
        assert!(b.is_empty() && b.check().is_ok());
    }

    #[test]
    fn pane_indexes_are_kept_once_an_element_needs_them() {
        let mut b = Batch::default();
        b.push_global(b"a", 1);
        b.push(b"e", 2, [Window::GLOBAL], 0b0000);
        assert!(b.pane_indexes.is_empty());
        assert_eq!(b.get(1).pane_indexes, [0, -1], "early: not speculative");
        b.push_in_pane(b"l", 3, [Window::GLOBAL], 0b1000, [3, 2]);
        assert_eq!(b.pane_indexes, [[0, 0], [0, -1], [3, 2]]);
        b.push_global(b"z", 4);
        assert_eq!(b.get(3).pane_indexes, [0, 0]);
        assert!(b.check().is_ok());
        let mut c = Batch::default();
        c.push_global(b"c", 0);
        c.extend_from(&b);
        assert_eq!(c.get(3).pane_indexes, [3, 2]);
        assert_eq!(c.pane_indexes.len(), 5);
    }

    #[test]
    fn check_refuses_columns_that_disagree() {
        let mut b = Batch::default();
        b.push_global(b"a", 1);
        b.panes.push(1);
        assert!(b.check().unwrap_err().contains("panes"));
        let mut b = Batch::default();
        b.push_global(b"a", 1);
        b.window_ends.pop();
        assert!(b.check().unwrap_err().contains("ends"));
    }

    proptest! {
        /// Appending a batch column by column equals pushing its elements
        /// one by one.
        #[test]
        fn extend_from_equals_pushing_each(
            a in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..6), any::<i64>(), 0usize..3), 0..8),
            c in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..6), any::<i64>(), 0usize..3), 0..8),
        ) {
            let build = |es: &[(Vec<u8>, i64, usize)]| {
                let mut b = Batch::default();
                for (v, t, nw) in es {
                    let windows = (0..*nw as i64).map(|i| w(i, i + 1));
                    if *t % 3 == 0 {
                        b.push_in_pane(v, *t, windows, 0b0100, [*t % 7, *nw as i64]);
                    } else {
                        b.push(v, *t, windows, (*nw as u8) & 0xf);
                    }
                }
                b
            };
            let (x, y) = (build(&a), build(&c));
            let mut fast = x.clone();
            fast.extend_from(&y);
            let mut slow = x.clone();
            for e in y.iter() {
                slow.push_ref(&e);
            }
            prop_assert_eq!(&fast, &slow);
            prop_assert!(fast.check().is_ok());
        }
    }
}
