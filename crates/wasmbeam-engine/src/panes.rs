//! Panes: the per-key machinery that turns windowed elements, watermarks
//! and processing time into the panes a GroupByKey emits.
//!
//! A [`PaneDriver`] holds, for one key, every live window: its buffered
//! values, its [`TriggerState`], its output-timestamp hold, its pane
//! counters and whether the window still waits for the watermark to pass
//! its end. It is fed:
//!
//! * [`PaneDriver::add`]: a bundle of elements, already assigned to
//!   windows. Elements of windows past their allowed lateness are dropped
//!   (and counted); merging windows (sessions) are merged with the live
//!   ones first; then every window that got elements asks its trigger
//!   whether to fire.
//! * [`PaneDriver::advance`]: a new input watermark and processing time.
//!   Event-time timers (the end of each window, and its garbage-collection
//!   time, `max_timestamp + allowed_lateness`) fire in time order, each
//!   with the watermark at the timer's own time, then processing-time
//!   deadlines that have passed.
//!
//! Pane metadata follows Beam: a pane fired while the watermark has not
//! passed the end of the window is EARLY (non-speculative index -1); the
//! first other pane is ON_TIME when the end-of-window timer fired it,
//! later ones are LATE. A pane is the last one when its trigger finished,
//! or at garbage collection. In discarding mode a pane's values are
//! dropped once emitted; in accumulating mode they stay. At garbage
//! collection a window with elements not yet emitted fires a final pane
//! (Beam's FIRE_IF_NON_EMPTY closing behaviour); the on-time pane fires
//! even when empty (FIRE_ALWAYS).
//!
//! Output timestamps come from the timestamp combiner over the elements
//! of a pane that are not behind the output watermark; with none, the end
//! of the window. Windows whose trigger finished stay as tombstones until
//! garbage collection, so their late elements are dropped, not re-opened.
//!
//! When windows merge, their values, holds and trigger states merge; pane
//! indexes carry over only from a window that is itself the merge result.

use std::collections::BTreeMap;

use crate::trigger::{Times, Trigger, TriggerState};
use crate::window::{Window, WindowFn};

/// How output timestamps are chosen for a pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampCombiner {
    /// The end of the window (its max timestamp).
    EndOfWindow,
    /// The earliest element's.
    Earliest,
    /// The latest element's.
    Latest,
}

/// A GroupByKey's windowing strategy, as the pane driver applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windowing {
    /// How elements were assigned to windows (needed to merge them).
    pub window_fn: WindowFn,
    /// When panes fire.
    pub trigger: Trigger,
    /// Accumulating (true) or discarding (false) panes.
    pub accumulating: bool,
    /// How long after the end of a window its late data is still taken (ms).
    pub allowed_lateness: i64,
    /// Output timestamps.
    pub timestamp_combiner: TimestampCombiner,
}

/// A GroupByKey's trigger, accumulation mode, allowed lateness and
/// timestamp combiner: its [`Windowing`] without the window function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggering {
    /// When panes fire.
    pub trigger: Trigger,
    /// Accumulating (true) or discarding (false) panes.
    pub accumulating: bool,
    /// Allowed lateness (ms).
    pub allowed_lateness: i64,
    /// Output timestamps.
    pub timestamp_combiner: TimestampCombiner,
}

impl Default for Triggering {
    /// Beam's default: the default trigger, discarding, no lateness,
    /// end-of-window timestamps.
    fn default() -> Self {
        Triggering {
            trigger: Trigger::Default,
            accumulating: false,
            allowed_lateness: 0,
            timestamp_combiner: TimestampCombiner::EndOfWindow,
        }
    }
}

impl Triggering {
    /// The windowing of a GroupByKey whose input has `window_fn`.
    pub fn with_window_fn(&self, window_fn: WindowFn) -> Windowing {
        Windowing {
            window_fn,
            trigger: self.trigger.clone(),
            accumulating: self.accumulating,
            allowed_lateness: self.allowed_lateness,
            timestamp_combiner: self.timestamp_combiner,
        }
    }
}

impl Windowing {
    /// Beam's default: global windows, default trigger, discarding, no
    /// lateness, end-of-window timestamps.
    pub fn global() -> Windowing {
        Windowing {
            window_fn: WindowFn::Global,
            trigger: Trigger::Default,
            accumulating: false,
            allowed_lateness: 0,
            timestamp_combiner: TimestampCombiner::EndOfWindow,
        }
    }

    /// The time at which `w` is garbage collected: the first watermark
    /// past its max timestamp plus the allowed lateness, and never past the
    /// end of the global window (so every window is collected once the
    /// input ends).
    pub fn gc_time(&self, w: &Window) -> i64 {
        w.max_timestamp()
            .saturating_add(self.allowed_lateness.max(0))
            .min(crate::window::GLOBAL_WINDOW_MAX_TIMESTAMP)
            .saturating_add(1)
    }
}

/// When a pane fired relative to the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Before the watermark passed the end of the window.
    Early,
    /// The first pane after it, fired by the end of the window.
    OnTime,
    /// Later.
    Late,
    /// Not known (elements no trigger produced).
    Unknown,
}

/// Beam's pane info.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaneInfo {
    /// The first pane of its window.
    pub is_first: bool,
    /// The last pane of its window.
    pub is_last: bool,
    /// Its timing.
    pub timing: Timing,
    /// Its index among the window's panes.
    pub index: i64,
    /// Its index among the window's non-early panes (-1 for early ones).
    pub nonspeculative_index: i64,
}

impl PaneInfo {
    /// The pane byte of the bundle shape: first (bit 0), last (bit 1),
    /// timing (bits 2-3).
    pub fn byte(&self) -> u8 {
        let timing = match self.timing {
            Timing::Early => 0,
            Timing::OnTime => 1,
            Timing::Late => 2,
            Timing::Unknown => 3,
        };
        u8::from(self.is_first) | (u8::from(self.is_last) << 1) | (timing << 2)
    }
}

/// One pane of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pane<V> {
    /// Its window.
    pub window: Window,
    /// The values it holds, in arrival order (all so far, when accumulating).
    pub values: Vec<V>,
    /// Its output timestamp.
    pub timestamp: i64,
    /// Its pane info.
    pub info: PaneInfo,
}

#[derive(Debug, Clone)]
struct WindowState<V> {
    trigger: TriggerState,
    values: Vec<V>,
    hold: Option<i64>,
    index: i64,
    nonspeculative: i64,
    /// Elements arrived since the last pane.
    dirty: bool,
    /// The end-of-window timer has not fired yet.
    end_pending: bool,
    /// The end-of-window timer fired for this window (a window opened
    /// after the watermark passed its end never gets an on-time pane).
    had_end_of_window: bool,
    /// Processing-time deadlines up to here were handed to the trigger.
    processing_done: i64,
    /// The trigger finished: a tombstone until garbage collection.
    finished: bool,
}

/// The panes of one key (see the module docs).
#[derive(Debug, Clone)]
pub struct PaneDriver<V> {
    windowing: Windowing,
    windows: BTreeMap<Window, WindowState<V>>,
    dropped: u64,
}

impl<V: Clone> PaneDriver<V> {
    /// A driver with no windows yet.
    pub fn new(windowing: Windowing) -> Self {
        PaneDriver {
            windowing,
            windows: BTreeMap::new(),
            dropped: 0,
        }
    }

    /// Elements dropped so far: late past their window's allowed lateness,
    /// or for a window whose trigger had finished.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when no window holds state.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The live windows (tombstones included), in order.
    pub fn windows(&self) -> impl Iterator<Item = (&Window, bool)> + '_ {
        self.windows.iter().map(|(w, s)| (w, s.finished))
    }

    /// The earliest output-timestamp hold: the output watermark may not pass
    /// it.
    pub fn hold(&self) -> Option<i64> {
        self.windows.values().filter_map(|s| s.hold).min()
    }

    /// The earliest event time at which [`PaneDriver::advance`] has work.
    pub fn next_event_timer(&self) -> Option<i64> {
        self.windows
            .iter()
            .map(|(w, s)| {
                let gc = self.windowing.gc_time(w);
                if s.end_pending {
                    w.end.min(gc)
                } else {
                    gc
                }
            })
            .min()
    }

    /// The earliest processing time at which [`PaneDriver::advance`] has
    /// work.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.windows
            .values()
            .filter(|s| !s.finished)
            .filter_map(|s| s.trigger.processing_deadline_after(s.processing_done))
            .min()
    }

    /// Take a bundle of `(value, timestamp, window)` elements (an element in
    /// several windows appears once per window) at times `t`; panes fired go
    /// to `out`.
    pub fn add(
        &mut self,
        elements: impl IntoIterator<Item = (V, i64, Window)>,
        t: Times,
        out: &mut Vec<Pane<V>>,
    ) {
        // Group by window, in order of arrival; drop what is expired.
        let mut groups: Vec<(Window, Vec<(V, i64)>)> = Vec::new();
        let mut index: std::collections::HashMap<Window, usize> = Default::default();
        for (v, ts, w) in elements {
            if self.windowing.gc_time(&w) <= t.watermark {
                self.dropped += 1;
                continue;
            }
            let at = *index.entry(w).or_insert_with(|| {
                groups.push((w, Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push((v, ts));
        }
        if groups.is_empty() {
            return;
        }
        if self.windowing.window_fn.is_merging() {
            let new: Vec<Window> = groups.iter().map(|(w, _)| *w).collect();
            let remap = self.merge(&new, t);
            let mut merged: Vec<(Window, Vec<(V, i64)>)> = Vec::new();
            for (w, vs) in groups {
                let target = remap(&w);
                match merged.iter_mut().find(|(g, _)| *g == target) {
                    Some((_, all)) => all.extend(vs),
                    None => merged.push((target, vs)),
                }
            }
            groups = merged;
        }
        for (w, vs) in groups {
            self.add_to_window(w, vs, t, out);
        }
    }

    fn add_to_window(&mut self, w: Window, vs: Vec<(V, i64)>, t: Times, out: &mut Vec<Pane<V>>) {
        let trigger = &self.windowing.trigger;
        let combiner = self.windowing.timestamp_combiner;
        let state = self.windows.entry(w).or_insert_with(|| WindowState {
            trigger: trigger.new_state(),
            values: Vec::new(),
            hold: None,
            index: 0,
            nonspeculative: 0,
            dirty: false,
            end_pending: t.watermark < w.end,
            had_end_of_window: false,
            processing_done: i64::MIN,
            finished: false,
        });
        if state.finished {
            self.dropped += vs.len() as u64;
            return;
        }
        for (v, ts) in vs {
            let output_time = match combiner {
                TimestampCombiner::EndOfWindow => w.max_timestamp(),
                _ => ts,
            };
            if output_time >= t.watermark {
                state.hold = Some(combine_hold(combiner, state.hold, output_time));
            }
            state.values.push(v);
            trigger.on_element(&mut state.trigger, w.end, t);
        }
        state.dirty = true;
        if trigger.should_fire(&state.trigger, w.end, t) {
            if t.watermark >= w.end {
                state.end_pending = false;
            }
            self.fire(w, t, false, out);
        }
    }

    /// Merge the new windows `new` with the live ones; returns where each
    /// window went.
    fn merge(&mut self, new: &[Window], t: Times) -> impl Fn(&Window) -> Window {
        let mut all: Vec<Window> = self
            .windows
            .keys()
            .copied()
            .chain(new.iter().copied())
            .collect();
        all.sort();
        all.dedup();
        // Sweep intersecting windows into groups.
        let mut groups: Vec<(Window, Vec<Window>)> = Vec::new();
        for w in all {
            match groups.last_mut() {
                Some((u, members)) if w.start < u.end => {
                    u.end = u.end.max(w.end);
                    members.push(w);
                }
                _ => groups.push((w, vec![w])),
            }
        }
        let mut remap: Vec<(Window, Window)> = Vec::new();
        let combiner = self.windowing.timestamp_combiner;
        for (result, members) in groups {
            if members.len() == 1 && members[0] == result {
                continue;
            }
            let parts: Vec<(Window, WindowState<V>)> = members
                .iter()
                .filter_map(|m| self.windows.remove(m).map(|s| (*m, s)))
                .collect();
            for m in &members {
                remap.push((*m, result));
            }
            if parts.is_empty() {
                continue;
            }
            let trigger = TriggerState::merge(
                &parts
                    .iter()
                    .map(|(_, s)| s.trigger.clone())
                    .collect::<Vec<_>>(),
            );
            let (index, nonspeculative) = parts
                .iter()
                .find(|(m, _)| *m == result)
                .map(|(_, s)| (s.index, s.nonspeculative))
                .unwrap_or((0, 0));
            let hold = match combiner {
                TimestampCombiner::EndOfWindow => parts
                    .iter()
                    .any(|(_, s)| s.hold.is_some())
                    .then(|| result.max_timestamp()),
                _ => parts
                    .iter()
                    .filter_map(|(_, s)| s.hold)
                    .reduce(|a, b| combine_hold(combiner, Some(a), b)),
            };
            let merged = WindowState {
                trigger,
                values: parts
                    .iter()
                    .flat_map(|(_, s)| s.values.iter().cloned())
                    .collect(),
                hold,
                index,
                nonspeculative,
                dirty: parts.iter().any(|(_, s)| s.dirty),
                end_pending: t.watermark < result.end,
                had_end_of_window: parts.iter().any(|(_, s)| s.had_end_of_window),
                processing_done: parts
                    .iter()
                    .map(|(_, s)| s.processing_done)
                    .min()
                    .unwrap_or(i64::MIN),
                finished: parts.iter().any(|(_, s)| s.finished),
            };
            let mut merged = merged;
            if merged.finished {
                // Merged into a window whose trigger finished: what the
                // other parts buffered can no longer fire.
                self.dropped += parts
                    .iter()
                    .filter(|(_, s)| !s.finished)
                    .map(|(_, s)| s.values.len() as u64)
                    .sum::<u64>();
                merged.values.clear();
                merged.hold = None;
                merged.dirty = false;
            }
            self.windows.insert(result, merged);
        }
        move |w: &Window| {
            remap
                .iter()
                .find(|(from, _)| from == w)
                .map(|(_, to)| *to)
                .unwrap_or(*w)
        }
    }

    /// Fire every timer due at times `t`: end-of-window and
    /// garbage-collection timers up to the watermark, in time order, then
    /// processing-time deadlines up to the processing time.
    pub fn advance(&mut self, t: Times, out: &mut Vec<Pane<V>>) {
        loop {
            // The earliest due event-time timer: (time, is_gc, window).
            let due = self
                .windows
                .iter()
                .filter_map(|(w, s)| {
                    let gc = self.windowing.gc_time(w);
                    if s.end_pending && w.end <= t.watermark && w.end <= gc {
                        Some((w.end, false, *w))
                    } else if gc <= t.watermark {
                        Some((gc, true, *w))
                    } else {
                        None
                    }
                })
                .min();
            let Some((time, is_gc, w)) = due else { break };
            let at = Times {
                watermark: time,
                processing: t.processing,
            };
            if is_gc {
                self.collect(w, at, out);
            } else {
                let gc_now = self.windowing.gc_time(&w) <= time;
                let state = self.windows.get_mut(&w).expect("a live window");
                state.end_pending = false;
                state.had_end_of_window = true;
                if !state.finished
                    && self
                        .windowing
                        .trigger
                        .should_fire(&state.trigger, w.end, at)
                {
                    self.fire(w, at, true, out);
                }
                if gc_now {
                    self.collect(w, at, out);
                }
            }
        }
        // Processing-time deadlines are one-shot: each is handed to the
        // trigger once (a later element still sees it passed).
        let due: Vec<Window> = self
            .windows
            .iter()
            .filter(|(_, s)| {
                !s.finished
                    && s.trigger
                        .processing_deadline_after(s.processing_done)
                        .is_some_and(|d| d <= t.processing)
            })
            .map(|(w, _)| *w)
            .collect();
        for w in due {
            let state = self.windows.get_mut(&w).expect("a live window");
            state.processing_done = state.processing_done.max(t.processing);
            if self.windowing.trigger.should_fire(&state.trigger, w.end, t) {
                self.fire(w, t, false, out);
            }
        }
    }

    /// Garbage-collect window `w`: a final pane if it holds elements not yet
    /// emitted, then its state goes.
    fn collect(&mut self, w: Window, t: Times, out: &mut Vec<Pane<V>>) {
        let Some(state) = self.windows.get(&w) else {
            return;
        };
        if !state.finished && state.dirty {
            let on_time = state.had_end_of_window;
            self.emit(w, t, on_time, true, out);
        }
        self.windows.remove(&w);
    }

    /// The trigger fired for `w`.
    fn fire(&mut self, w: Window, t: Times, by_end_of_window: bool, out: &mut Vec<Pane<V>>) {
        let state = self.windows.get_mut(&w).expect("a live window");
        let finished = self.windowing.trigger.on_fire(&mut state.trigger, w.end, t);
        let last = finished || (by_end_of_window && self.windowing.gc_time(&w) <= t.watermark);
        self.emit(w, t, by_end_of_window, last, out);
    }

    fn emit(
        &mut self,
        w: Window,
        t: Times,
        maybe_on_time: bool,
        last: bool,
        out: &mut Vec<Pane<V>>,
    ) {
        let has_on_time = has_on_time_pane(&self.windowing.trigger);
        let accumulating = self.windowing.accumulating;
        let state = self.windows.get_mut(&w).expect("a live window");
        let index = state.index;
        state.index += 1;
        let (timing, nonspeculative_index) = if t.watermark < w.end {
            (Timing::Early, -1)
        } else {
            let n = state.nonspeculative;
            state.nonspeculative += 1;
            let timing = if maybe_on_time && n == 0 {
                Timing::OnTime
            } else {
                Timing::Late
            };
            (timing, n)
        };
        let values = if last || !accumulating {
            std::mem::take(&mut state.values)
        } else {
            state.values.clone()
        };
        let timestamp = state.hold.unwrap_or_else(|| w.max_timestamp());
        if state.hold.is_some() && !(t.watermark < w.end && has_on_time) {
            state.hold = None;
        }
        state.dirty = false;
        if last {
            state.finished = true;
            state.hold = None;
        }
        out.push(Pane {
            window: w,
            values,
            timestamp,
            info: PaneInfo {
                is_first: index == 0,
                is_last: last,
                timing,
                index,
                nonspeculative_index,
            },
        });
    }
}

fn combine_hold(c: TimestampCombiner, hold: Option<i64>, t: i64) -> i64 {
    match (c, hold) {
        (_, None) => t,
        (TimestampCombiner::Latest, Some(h)) => h.max(t),
        (_, Some(h)) => h.min(t),
    }
}

/// Does the trigger produce an on-time pane (so a hold must last until the
/// end of the window)?
fn has_on_time_pane(t: &Trigger) -> bool {
    match t {
        Trigger::Default | Trigger::AfterWatermark { .. } => true,
        Trigger::AfterAny(ts) | Trigger::AfterAll(ts) | Trigger::AfterEach(ts) => {
            ts.iter().any(has_on_time_pane)
        }
        Trigger::Repeatedly(t) => has_on_time_pane(t),
        Trigger::OrFinally { main, finally } => has_on_time_pane(main) || has_on_time_pane(finally),
        _ => false,
    }
}
