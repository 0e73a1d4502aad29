//! Event-time windows and window functions.

pub use wasmbeam_bundle::{Window, GLOBAL_WINDOW_MAX_TIMESTAMP, MAX_TIMESTAMP, MIN_TIMESTAMP};

/// The most windows a sliding window function may assign to one element.
pub const MAX_WINDOWS_PER_ELEMENT: usize = 10_000;

fn saturate(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
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
    /// Windows for an element at `ts`, appended to `out` in order of start.
    ///
    /// Total over the whole `i64` range: the arithmetic is done in `i128`
    /// and window bounds saturate at the ends of `i64`, so assignment never
    /// overflows, wraps or loops without end. Sizes, periods and gaps must
    /// be positive ([`WindowFn::check`]); a sliding window function assigns
    /// at most [`MAX_WINDOWS_PER_ELEMENT`] windows to one element.
    pub fn assign(&self, ts: i64, out: &mut Vec<Window>) {
        let window = |start: i128, size: i64| Window {
            start: saturate(start),
            end: saturate(start + i128::from(size)),
        };
        match *self {
            WindowFn::Global => out.push(Window::GLOBAL),
            WindowFn::Fixed { size, offset } => {
                let size = size.max(1);
                let t = i128::from(ts);
                let start = t - (t - i128::from(offset)).rem_euclid(i128::from(size));
                out.push(window(start, size));
            }
            WindowFn::Sliding {
                size,
                period,
                offset,
            } => {
                // Window starts are offset + k * period; those in
                // (ts - size, ts] cover ts. Walk down from the latest.
                let (size, period) = (size.max(1), i128::from(period.max(1)));
                let t = i128::from(ts);
                let latest = t - (t - i128::from(offset)).rem_euclid(period);
                let first = out.len();
                let mut start = latest;
                while start > t - i128::from(size) && out.len() - first < MAX_WINDOWS_PER_ELEMENT {
                    // Below i64::MIN the starts saturate: one window, once.
                    let w = window(start, size);
                    if out.len() == first || out.last() != Some(&w) {
                        out.push(w);
                    }
                    start -= period;
                }
                out[first..].reverse();
            }
            WindowFn::Sessions { gap } => out.push(window(i128::from(ts), gap.max(1))),
        }
    }

    /// Why this window function cannot be used, if it cannot: sizes,
    /// periods and gaps must be positive, and a sliding window function may
    /// put an element in at most [`MAX_WINDOWS_PER_ELEMENT`] windows.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            WindowFn::Global => Ok(()),
            WindowFn::Fixed { size, .. } if size <= 0 => {
                Err(format!("fixed windows need a positive size, not {size} ms"))
            }
            WindowFn::Sliding { size, period, .. } if size <= 0 || period <= 0 => Err(format!(
                "sliding windows need a positive size and period, not {size} ms and {period} ms"
            )),
            WindowFn::Sliding { size, period, .. }
                if (size as u64).div_ceil(period as u64) > MAX_WINDOWS_PER_ELEMENT as u64 =>
            {
                Err(format!(
                    "sliding windows of {size} ms every {period} ms would put each element in {} windows; at most {MAX_WINDOWS_PER_ELEMENT} are allowed (use a longer period)",
                    (size as u64).div_ceil(period as u64)
                ))
            }
            WindowFn::Sessions { gap } if gap <= 0 => {
                Err(format!("session windows need a positive gap, not {gap} ms"))
            }
            _ => Ok(()),
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

    use proptest::prelude::*;

    fn window_fns() -> impl Strategy<Value = WindowFn> {
        prop_oneof![
            Just(WindowFn::Global),
            (1..=i64::MAX, any::<i64>())
                .prop_map(|(size, offset)| WindowFn::Fixed { size, offset }),
            (1..=i64::MAX, any::<i64>()).prop_map(|(gap, _)| WindowFn::Sessions { gap }),
            (1i64..=1_000_000_000_000, 1usize..=64, any::<i64>()).prop_map(
                |(period, k, offset)| {
                    WindowFn::Sliding {
                        size: period.saturating_mul(k as i64),
                        period,
                        offset,
                    }
                }
            ),
            // Sizes that are not a multiple of the period.
            (1i64..=1_000_000, 1i64..=1_000_000, any::<i64>()).prop_map(|(a, b, offset)| {
                // Only usable ones: at most MAX_WINDOWS_PER_ELEMENT windows
                // per element (a larger ratio is refused by `check`).
                let size = a.max(b);
                WindowFn::Sliding {
                    size,
                    period: a.min(b).max(
                        (size + MAX_WINDOWS_PER_ELEMENT as i64 - 1)
                            / MAX_WINDOWS_PER_ELEMENT as i64,
                    ),
                    offset,
                }
            }),
        ]
    }

    fn extreme_times() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(i64::MIN + 60_001),
            Just(MIN_TIMESTAMP),
            Just(MAX_TIMESTAMP),
            (i64::MIN..i64::MIN + 100_000),
            (i64::MAX - 100_000..=i64::MAX),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every window function over the full i64 range: assignment ends,
        /// windows are well-formed and in order, each contains the
        /// timestamp unless a bound had to saturate, and sliding windows
        /// number exactly the ones whose start lies in (ts - size, ts].
        #[test]
        fn assignment_is_total_over_all_of_i64(wf in window_fns(), ts in extreme_times()) {
            prop_assert!(wf.check().is_ok());
            let mut out = Vec::new();
            wf.assign(ts, &mut out);
            prop_assert!(!out.is_empty());
            prop_assert!(out.len() <= MAX_WINDOWS_PER_ELEMENT);
            for w in &out {
                prop_assert!(w.start <= w.end, "{w:?}");
                let saturated = w.start == i64::MIN || w.end == i64::MAX;
                if !wf_is_global(&wf) && !saturated {
                    prop_assert!(w.start <= ts && ts < w.end, "{w:?} does not hold {ts}");
                }
            }
            prop_assert!(out.windows(2).all(|p| p[0] < p[1]), "{out:?}");
            if let WindowFn::Sliding { size, period, offset } = wf {
                // Starts offset + k * period in (ts - size, ts].
                let (t, p, o) = (i128::from(ts), i128::from(period), i128::from(offset));
                let expected = (t - o).div_euclid(p) - (t - i128::from(size) - o).div_euclid(p);
                if out.iter().all(|w| w.start != i64::MIN && w.end != i64::MAX) {
                    prop_assert_eq!(out.len() as i128, expected);
                }
            }
        }
    }

    fn wf_is_global(wf: &WindowFn) -> bool {
        matches!(wf, WindowFn::Global)
    }

    #[test]
    fn sliding_windows_near_beams_minimum_stay_bounded() {
        // The timestamp that once made `start -= period` wrap around.
        let f = WindowFn::Sliding {
            size: 60_000,
            period: 10_000,
            offset: 0,
        };
        for ts in [i64::MIN, i64::MIN + 60_001, MIN_TIMESTAMP, i64::MAX] {
            let mut v = Vec::new();
            f.assign(ts, &mut v);
            assert!(!v.is_empty() && v.len() <= 6, "{ts}: {v:?}");
        }
    }

    #[test]
    fn unusable_window_fns_are_refused_with_the_reason() {
        let e = WindowFn::Sliding {
            size: 86_400_000,
            period: 1,
            offset: 0,
        }
        .check()
        .unwrap_err();
        assert!(
            e.contains("86400000 windows") && e.contains("at most 10000"),
            "{e}"
        );
        assert!(WindowFn::Fixed { size: 0, offset: 0 }.check().is_err());
        assert!(WindowFn::Sessions { gap: -5 }.check().is_err());
        assert!(WindowFn::Sliding {
            size: 10,
            period: 0,
            offset: 0
        }
        .check()
        .is_err());
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
