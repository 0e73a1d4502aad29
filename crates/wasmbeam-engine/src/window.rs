//! Event-time windows and window functions.

/// Beam's minimum timestamp, in milliseconds.
pub const MIN_TIMESTAMP: i64 = -9_223_372_036_854_775;
/// Beam's maximum timestamp, in milliseconds.
pub const MAX_TIMESTAMP: i64 = 9_223_372_036_854_775;
/// The global window's maximum timestamp (end of global window minus one).
pub const GLOBAL_WINDOW_MAX_TIMESTAMP: i64 = 9_223_371_950_454_775;

/// A window `[start, end)` in milliseconds. The global window is
/// `[MIN_TIMESTAMP, GLOBAL_WINDOW_MAX_TIMESTAMP + 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Window {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl Window {
    /// The global window.
    pub const GLOBAL: Window = Window {
        start: MIN_TIMESTAMP,
        end: GLOBAL_WINDOW_MAX_TIMESTAMP + 1,
    };

    /// The last timestamp inside the window.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }
    /// True for the global window.
    pub fn is_global(&self) -> bool {
        *self == Window::GLOBAL
    }
}

/// How elements are assigned to windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowFn {
    /// Everything in one global window.
    Global,
    /// Fixed windows of `size` ms, shifted by `offset`.
    Fixed {
        /// Window length.
        size: i64,
        /// Offset from the epoch.
        offset: i64,
    },
    /// Sliding windows of `size` ms starting every `period` ms.
    Sliding {
        /// Window length.
        size: i64,
        /// Distance between window starts.
        period: i64,
        /// Offset from the epoch.
        offset: i64,
    },
    /// Session windows: an element opens `[ts, ts + gap)`; overlapping
    /// windows of one key merge.
    Sessions {
        /// Gap duration.
        gap: i64,
    },
}

impl WindowFn {
    /// Windows for an element at `ts`, appended to `out`.
    pub fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        match *self {
            WindowFn::Global => out.push(Window::GLOBAL),
            WindowFn::Fixed { size, offset } => {
                let start = ts - (ts - offset).rem_euclid(size);
                out.push(Window {
                    start,
                    end: start.saturating_add(size),
                });
            }
            WindowFn::Sliding {
                size,
                period,
                offset,
            } => {
                // Latest window start at or before ts, then step back while the window still covers ts.
                let last = ts - (ts - offset).rem_euclid(period);
                let mut start = last;
                let mut found = Vec::new();
                while start > ts - size {
                    found.push(Window {
                        start,
                        end: start.saturating_add(size),
                    });
                    start -= period;
                }
                found.reverse();
                out.extend(found);
            }
            WindowFn::Sessions { gap } => out.push(Window {
                start: ts,
                end: ts.saturating_add(gap),
            }),
        }
    }

    /// True when windows of one key must be merged before grouping.
    pub fn is_merging(&self) -> bool {
        matches!(self, WindowFn::Sessions { .. })
    }
}

/// Merge overlapping windows (session merging). Input need not be sorted;
/// returns the merged windows sorted by start.
pub fn merge_windows(mut ws: Vec<Window>) -> Vec<Window> {
    ws.sort();
    let mut out: Vec<Window> = Vec::with_capacity(ws.len());
    for w in ws {
        match out.last_mut() {
            Some(last) if w.start < last.end => last.end = last.end.max(w.end),
            _ => out.push(w),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_cover_negative_and_positive_times() {
        let f = WindowFn::Fixed {
            size: 60_000,
            offset: 0,
        };
        let mut v = Vec::new();
        f.assign(59_999, &mut v);
        f.assign(60_000, &mut v);
        f.assign(-1, &mut v);
        assert_eq!(
            v,
            [
                Window {
                    start: 0,
                    end: 60_000
                },
                Window {
                    start: 60_000,
                    end: 120_000
                },
                Window {
                    start: -60_000,
                    end: 0
                }
            ]
        );
    }

    #[test]
    fn sliding_windows_each_contain_the_timestamp() {
        let f = WindowFn::Sliding {
            size: 30,
            period: 10,
            offset: 0,
        };
        let mut v = Vec::new();
        f.assign(25, &mut v);
        assert_eq!(
            v,
            [
                Window { start: 0, end: 30 },
                Window { start: 10, end: 40 },
                Window { start: 20, end: 50 }
            ]
        );
    }

    #[test]
    fn sessions_merge_when_they_overlap() {
        let w = |s, e| Window { start: s, end: e };
        assert_eq!(
            merge_windows(vec![w(10, 20), w(0, 10), w(15, 25), w(30, 40)]),
            [w(0, 10), w(10, 25), w(30, 40)]
        );
    }
}
