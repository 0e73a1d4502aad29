//! Triggers: when a window's buffered elements are emitted as a pane.
//!
//! A [`Trigger`] is the tree a pipeline declares (Beam's `Trigger` proto,
//! without the proto). Each window of each key carries a [`TriggerState`]
//! of the same shape, which the trigger reads and updates as elements
//! arrive, windows merge and time passes:
//!
//! * [`Trigger::on_element`]: an element entered the window;
//! * [`Trigger::should_fire`]: given the input watermark and the
//!   processing time, is a pane due?
//! * [`Trigger::on_fire`]: a pane was emitted; returns true when the
//!   trigger is done for good (no more panes for this window);
//! * [`TriggerState::merge`]: windows merged (sessions).
//!
//! Semantics follow Beam's trigger state machines:
//!
//! * `AfterWatermark` fires once when the watermark passes the end of the
//!   window; its early trigger repeats before that, its late trigger
//!   repeats after it (both behave as if wrapped in `Repeatedly`). Without
//!   a late trigger it finishes at the on-time pane.
//! * `AfterCount(n)` fires once `n` elements arrived since it was last
//!   reset; `AfterProcessingTime` fires once its deadline (processing time
//!   of the first element, delayed and aligned) has passed.
//! * `Repeatedly(t)` resets `t` whenever `t` finishes, and never finishes.
//! * `AfterAny` fires when any child would and finishes when a fired child
//!   finished; `AfterAll` fires when every unfinished child would;
//!   `AfterEach` runs its children one after the other; `OrFinally(t, f)`
//!   fires as `t` does and finishes when `f` fires.
//! * `Always` fires whenever elements arrived since its last pane; `Never` never fires (only the
//!   window's garbage collection emits its elements).
//!
//! When several windows merge, counts are summed, "finished" and
//! "past the end of the window" flags are or-ed, and processing-time
//! deadlines take the earliest.
//!
//! The state machine sets no timers of its own: [`Trigger::wants_watermark_timer`]
//! and [`TriggerState::processing_deadline`] tell the pane driver
//! ([`crate::panes`]) when to look again.

/// A trigger tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Beam's default trigger: fire when the watermark passes the end of
    /// the window, then at every late element (`Repeatedly(AfterWatermark)`).
    Default,
    /// Fire on every element.
    Always,
    /// Never fire.
    Never,
    /// Fire once `n` elements have arrived.
    AfterCount(u64),
    /// Fire once a processing-time deadline, set by the first element, has
    /// passed.
    AfterProcessingTime(Vec<TimeTransform>),
    /// Fire when the watermark passes the end of the window, with optional
    /// early and late firings.
    AfterWatermark {
        /// Repeated before the end of the window.
        early: Option<Box<Trigger>>,
        /// Repeated after the end of the window.
        late: Option<Box<Trigger>>,
    },
    /// Fire when any child fires.
    AfterAny(Vec<Trigger>),
    /// Fire when every child has fired.
    AfterAll(Vec<Trigger>),
    /// Run the children one after another.
    AfterEach(Vec<Trigger>),
    /// Repeat the child forever.
    Repeatedly(Box<Trigger>),
    /// Fire as `main` does; finish when `finally` fires.
    OrFinally {
        /// The trigger that produces panes.
        main: Box<Trigger>,
        /// The trigger that ends them.
        finally: Box<Trigger>,
    },
}

/// One step in computing a processing-time deadline from the processing
/// time of a window's first element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTransform {
    /// Add a delay (ms).
    Delay(i64),
    /// Round up to the next `offset + k * period` (ms).
    AlignTo {
        /// Period (positive).
        period: i64,
        /// Offset.
        offset: i64,
    },
}

/// The state a trigger keeps for one window: one node per trigger node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerState {
    finished: bool,
    /// Elements counted (AfterCount).
    count: u64,
    /// Past the end of the window (AfterWatermark with a late trigger).
    late: bool,
    /// Processing-time deadline (AfterProcessingTime).
    deadline: Option<i64>,
    children: Vec<TriggerState>,
}

/// The times a trigger sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// The input watermark (ms).
    pub watermark: i64,
    /// The processing time (ms).
    pub processing: i64,
}

impl Trigger {
    /// Beam's `AfterWatermark()` with no early or late firings.
    pub fn after_watermark() -> Trigger {
        Trigger::AfterWatermark {
            early: None,
            late: None,
        }
    }

    /// Why this trigger cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Trigger::AfterCount(0) => Err("AfterCount needs a count of at least 1".into()),
            Trigger::AfterProcessingTime(ts) => {
                for t in ts {
                    match *t {
                        TimeTransform::Delay(d) if d < 0 => {
                            return Err(format!("AfterProcessingTime has a negative delay of {d} ms"))
                        }
                        TimeTransform::AlignTo { period, .. } if period <= 0 => {
                            return Err(format!(
                                "AfterProcessingTime aligns to a period of {period} ms; it must be positive"
                            ))
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Trigger::AfterWatermark { early, late } => {
                for t in early.iter().chain(late.iter()) {
                    t.check()?;
                }
                Ok(())
            }
            Trigger::AfterAny(ts) | Trigger::AfterAll(ts) | Trigger::AfterEach(ts) => {
                if ts.is_empty() {
                    return Err("a composite trigger needs at least one subtrigger".into());
                }
                ts.iter().try_for_each(Trigger::check)
            }
            Trigger::Repeatedly(t) => t.check(),
            Trigger::OrFinally { main, finally } => {
                main.check()?;
                finally.check()
            }
            _ => Ok(()),
        }
    }

    /// Fresh state for a window.
    pub fn new_state(&self) -> TriggerState {
        let children = match self {
            Trigger::AfterWatermark { early, late } => vec![
                early.as_ref().map(|t| t.new_state()).unwrap_or_default(),
                late.as_ref().map(|t| t.new_state()).unwrap_or_default(),
            ],
            Trigger::AfterAny(ts) | Trigger::AfterAll(ts) | Trigger::AfterEach(ts) => {
                ts.iter().map(Trigger::new_state).collect()
            }
            Trigger::Repeatedly(t) => vec![t.new_state()],
            Trigger::OrFinally { main, finally } => vec![main.new_state(), finally.new_state()],
            _ => Vec::new(),
        };
        TriggerState {
            children,
            ..TriggerState::default()
        }
    }

    /// Does this trigger fire when the watermark passes the end of the
    /// window (so the driver must look at the window then)?
    pub fn wants_watermark_timer(&self, s: &TriggerState) -> bool {
        if s.finished {
            return false;
        }
        match self {
            Trigger::Default => true,
            Trigger::AfterWatermark { late, .. } => !(late.is_some() && s.late),
            Trigger::AfterAny(ts) | Trigger::AfterAll(ts) => ts
                .iter()
                .zip(&s.children)
                .any(|(t, c)| t.wants_watermark_timer(c)),
            Trigger::AfterEach(ts) => {
                current(&s.children).is_some_and(|i| ts[i].wants_watermark_timer(&s.children[i]))
            }
            Trigger::Repeatedly(t) => t.wants_watermark_timer(&s.children[0]),
            Trigger::OrFinally { main, finally } => {
                main.wants_watermark_timer(&s.children[0])
                    || finally.wants_watermark_timer(&s.children[1])
            }
            _ => false,
        }
    }

    /// An element entered the window `[.., window_end)` at processing time
    /// `t.processing`.
    pub fn on_element(&self, s: &mut TriggerState, window_end: i64, t: Times) {
        if s.finished {
            return;
        }
        match self {
            Trigger::AfterCount(_) | Trigger::Always => s.count += 1,
            Trigger::AfterProcessingTime(transforms) => {
                if s.deadline.is_none() {
                    s.deadline = Some(deadline(t.processing, transforms));
                }
            }
            Trigger::AfterWatermark { early, late } => {
                if let (Some(l), true) = (late, s.late) {
                    l.on_element(&mut s.children[1], window_end, t);
                } else if let Some(e) = early {
                    e.on_element(&mut s.children[0], window_end, t);
                }
            }
            Trigger::AfterAny(ts) | Trigger::AfterAll(ts) => {
                for (c, st) in ts.iter().zip(&mut s.children) {
                    c.on_element(st, window_end, t);
                }
            }
            Trigger::AfterEach(ts) => {
                if let Some(i) = current(&s.children) {
                    ts[i].on_element(&mut s.children[i], window_end, t);
                }
            }
            Trigger::Repeatedly(c) => c.on_element(&mut s.children[0], window_end, t),
            Trigger::OrFinally { main, finally } => {
                main.on_element(&mut s.children[0], window_end, t);
                finally.on_element(&mut s.children[1], window_end, t);
            }
            Trigger::Default | Trigger::Never => {}
        }
    }

    /// Is a pane due for the window ending at `window_end` (exclusive)?
    pub fn should_fire(&self, s: &TriggerState, window_end: i64, t: Times) -> bool {
        if s.finished {
            return false;
        }
        let past_end = t.watermark >= window_end;
        match self {
            Trigger::Default => past_end,
            Trigger::Always => s.count > 0,
            Trigger::Never => false,
            Trigger::AfterCount(n) => s.count >= *n,
            Trigger::AfterProcessingTime(_) => s.deadline.is_some_and(|d| t.processing >= d),
            Trigger::AfterWatermark { early, late } => match (late, s.late) {
                (Some(l), true) => l.should_fire(&s.children[1], window_end, t),
                _ if past_end => true,
                _ => early
                    .as_ref()
                    .is_some_and(|e| e.should_fire(&s.children[0], window_end, t)),
            },
            Trigger::AfterAny(ts) => ts
                .iter()
                .zip(&s.children)
                .any(|(c, st)| c.should_fire(st, window_end, t)),
            Trigger::AfterAll(ts) => ts
                .iter()
                .zip(&s.children)
                .all(|(c, st)| st.finished || c.should_fire(st, window_end, t)),
            Trigger::AfterEach(ts) => current(&s.children)
                .is_some_and(|i| ts[i].should_fire(&s.children[i], window_end, t)),
            Trigger::Repeatedly(c) => c.should_fire(&s.children[0], window_end, t),
            Trigger::OrFinally { main, finally } => {
                main.should_fire(&s.children[0], window_end, t)
                    || finally.should_fire(&s.children[1], window_end, t)
            }
        }
    }

    /// A pane fired (call only when [`Trigger::should_fire`] said so).
    /// Returns true when this trigger is finished.
    pub fn on_fire(&self, s: &mut TriggerState, window_end: i64, t: Times) -> bool {
        let done = match self {
            Trigger::Always => {
                s.count = 0;
                false
            }
            Trigger::Default | Trigger::Never => false,
            Trigger::AfterCount(_) | Trigger::AfterProcessingTime(_) => true,
            Trigger::AfterWatermark { early, late } => match (late, s.late) {
                (Some(l), true) => {
                    fire_repeated(l, &mut s.children[1], window_end, t);
                    false
                }
                _ if t.watermark >= window_end => {
                    s.late = true;
                    // The early firings are over (their deadlines too).
                    if let Some(e) = early {
                        e.reset(&mut s.children[0]);
                    }
                    late.is_none()
                }
                _ => {
                    if let Some(e) = early {
                        fire_repeated(e, &mut s.children[0], window_end, t);
                    }
                    false
                }
            },
            Trigger::AfterAny(ts) => {
                let mut any_done = false;
                for (c, st) in ts.iter().zip(&mut s.children) {
                    if c.should_fire(st, window_end, t) {
                        any_done |= c.on_fire(st, window_end, t);
                    }
                }
                any_done
            }
            Trigger::AfterAll(ts) => {
                for (c, st) in ts.iter().zip(&mut s.children) {
                    if !st.finished && c.should_fire(st, window_end, t) {
                        c.on_fire(st, window_end, t);
                        st.finished = true;
                    }
                }
                s.children.iter().all(|c| c.finished)
            }
            Trigger::AfterEach(ts) => {
                if let Some(i) = current(&s.children) {
                    if ts[i].on_fire(&mut s.children[i], window_end, t) {
                        s.children[i].finished = true;
                    }
                }
                current(&s.children).is_none()
            }
            Trigger::Repeatedly(c) => {
                fire_repeated(c, &mut s.children[0], window_end, t);
                false
            }
            Trigger::OrFinally { main, finally } => {
                if finally.should_fire(&s.children[1], window_end, t) {
                    true
                } else {
                    main.on_fire(&mut s.children[0], window_end, t)
                }
            }
        };
        if done {
            s.finished = true;
        }
        done
    }

    /// Back to fresh state (the window's trigger starts over).
    pub fn reset(&self, s: &mut TriggerState) {
        *s = self.new_state();
    }
}

/// Fire a repeated child: fire it, and start it over once it is finished.
fn fire_repeated(c: &Trigger, s: &mut TriggerState, window_end: i64, t: Times) {
    if c.on_fire(s, window_end, t) {
        c.reset(s);
    }
}

/// The first unfinished child (AfterEach's current one).
fn current(children: &[TriggerState]) -> Option<usize> {
    children.iter().position(|c| !c.finished)
}

/// The deadline of an AfterProcessingTime whose first element came at
/// processing time `now`.
fn deadline(now: i64, transforms: &[TimeTransform]) -> i64 {
    transforms.iter().fold(now, |t, tr| match *tr {
        TimeTransform::Delay(d) => t.saturating_add(d),
        TimeTransform::AlignTo { period, offset } => {
            let p = i128::from(period.max(1));
            let r = (i128::from(t) - i128::from(offset)).rem_euclid(p);
            if r == 0 {
                t
            } else {
                (i128::from(t) + p - r).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            }
        }
    })
}

impl TriggerState {
    /// True once the trigger has finished for this window.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The earliest processing-time deadline anywhere in the tree that can
    /// still make the trigger fire.
    pub fn processing_deadline(&self) -> Option<i64> {
        if self.finished {
            return None;
        }
        self.children
            .iter()
            .filter_map(TriggerState::processing_deadline)
            .chain(self.deadline)
            .min()
    }

    /// The earliest processing-time deadline after `after` that can still
    /// make the trigger fire (deadlines up to `after` were handed over).
    pub fn processing_deadline_after(&self, after: i64) -> Option<i64> {
        if self.finished {
            return None;
        }
        self.children
            .iter()
            .filter_map(|c| c.processing_deadline_after(after))
            .chain(self.deadline.filter(|&d| d > after))
            .min()
    }

    /// The state of a window merged from windows with states `parts`.
    pub fn merge(parts: &[TriggerState]) -> TriggerState {
        let Some(first) = parts.first() else {
            return TriggerState::default();
        };
        let n = first.children.len();
        TriggerState {
            finished: parts.iter().any(|p| p.finished),
            count: parts.iter().map(|p| p.count).sum(),
            late: parts.iter().any(|p| p.late),
            deadline: parts.iter().filter_map(|p| p.deadline).min(),
            children: (0..n)
                .map(|i| {
                    let kids: Vec<TriggerState> = parts
                        .iter()
                        .filter_map(|p| p.children.get(i).cloned())
                        .collect();
                    TriggerState::merge(&kids)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: i64 = 10;

    fn at(watermark: i64, processing: i64) -> Times {
        Times {
            watermark,
            processing,
        }
    }

    #[test]
    fn after_count_fires_once_then_repeatedly_starts_over() {
        let t = Trigger::AfterCount(2);
        let mut s = t.new_state();
        t.on_element(&mut s, END, at(0, 0));
        assert!(!t.should_fire(&s, END, at(0, 0)));
        t.on_element(&mut s, END, at(0, 0));
        assert!(t.should_fire(&s, END, at(0, 0)));
        assert!(t.on_fire(&mut s, END, at(0, 0)));
        assert!(s.is_finished() && !t.should_fire(&s, END, at(0, 0)));

        let r = Trigger::Repeatedly(Box::new(Trigger::AfterCount(2)));
        let mut s = r.new_state();
        for _ in 0..2 {
            r.on_element(&mut s, END, at(0, 0));
        }
        assert!(!r.on_fire(&mut s, END, at(0, 0)));
        r.on_element(&mut s, END, at(0, 0));
        assert!(!r.should_fire(&s, END, at(0, 0)), "the count started over");
    }

    #[test]
    fn after_watermark_early_on_time_and_late() {
        let t = Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterCount(1))),
            late: Some(Box::new(Trigger::AfterCount(2))),
        };
        let mut s = t.new_state();
        t.on_element(&mut s, END, at(0, 0));
        assert!(t.should_fire(&s, END, at(0, 0)), "early");
        assert!(!t.on_fire(&mut s, END, at(0, 0)));
        assert!(
            !t.should_fire(&s, END, at(5, 0)),
            "early count started over"
        );
        assert!(t.should_fire(&s, END, at(END, 0)), "on time");
        assert!(!t.on_fire(&mut s, END, at(END, 0)));
        assert!(!t.wants_watermark_timer(&s));
        t.on_element(&mut s, END, at(20, 0));
        assert!(!t.should_fire(&s, END, at(20, 0)));
        t.on_element(&mut s, END, at(20, 0));
        assert!(t.should_fire(&s, END, at(20, 0)), "late after 2");
        assert!(!t.on_fire(&mut s, END, at(20, 0)));

        let plain = Trigger::after_watermark();
        let mut s = plain.new_state();
        assert!(plain.should_fire(&s, END, at(END, 0)));
        assert!(
            plain.on_fire(&mut s, END, at(END, 0)),
            "no late trigger: done"
        );
    }

    #[test]
    fn processing_time_deadline_with_delay_and_alignment() {
        let t = Trigger::AfterProcessingTime(vec![
            TimeTransform::Delay(5),
            TimeTransform::AlignTo {
                period: 10,
                offset: 0,
            },
        ]);
        let mut s = t.new_state();
        t.on_element(&mut s, END, at(0, 1_003));
        t.on_element(&mut s, END, at(0, 1_009));
        assert_eq!(s.processing_deadline(), Some(1_010));
        assert!(!t.should_fire(&s, END, at(0, 1_009)));
        assert!(t.should_fire(&s, END, at(0, 1_010)));
        assert!(t.on_fire(&mut s, END, at(0, 1_010)));
        assert_eq!(s.processing_deadline(), None);
    }

    #[test]
    fn composites() {
        let each = Trigger::AfterEach(vec![Trigger::AfterCount(1), Trigger::AfterCount(2)]);
        let mut s = each.new_state();
        each.on_element(&mut s, END, at(0, 0));
        assert!(!each.on_fire(&mut s, END, at(0, 0)));
        each.on_element(&mut s, END, at(0, 0));
        assert!(!each.should_fire(&s, END, at(0, 0)), "second child needs 2");
        each.on_element(&mut s, END, at(0, 0));
        assert!(each.on_fire(&mut s, END, at(0, 0)));

        let all = Trigger::AfterAll(vec![Trigger::AfterCount(1), Trigger::after_watermark()]);
        let mut s = all.new_state();
        all.on_element(&mut s, END, at(0, 0));
        assert!(!all.should_fire(&s, END, at(0, 0)));
        assert!(all.should_fire(&s, END, at(END, 0)));
        assert!(all.on_fire(&mut s, END, at(END, 0)));

        let or = Trigger::OrFinally {
            main: Box::new(Trigger::Repeatedly(Box::new(Trigger::AfterCount(1)))),
            finally: Box::new(Trigger::AfterCount(3)),
        };
        let mut s = or.new_state();
        for i in 1..=3 {
            or.on_element(&mut s, END, at(0, 0));
            assert!(or.should_fire(&s, END, at(0, 0)));
            assert_eq!(or.on_fire(&mut s, END, at(0, 0)), i == 3);
        }
    }

    #[test]
    fn merged_state_sums_counts_and_keeps_finished() {
        let t = Trigger::AfterCount(3);
        let (mut a, mut b) = (t.new_state(), t.new_state());
        t.on_element(&mut a, END, at(0, 0));
        t.on_element(&mut b, END, at(0, 0));
        t.on_element(&mut b, END, at(0, 0));
        let m = TriggerState::merge(&[a.clone(), b]);
        assert!(t.should_fire(&m, END, at(0, 0)));
        a.finished = true;
        assert!(TriggerState::merge(&[a, t.new_state()]).is_finished());
    }

    #[test]
    fn check_refuses_bad_triggers() {
        assert!(Trigger::AfterCount(0).check().is_err());
        assert!(Trigger::AfterAny(vec![]).check().is_err());
        assert!(Trigger::AfterProcessingTime(vec![TimeTransform::AlignTo {
            period: 0,
            offset: 0
        }])
        .check()
        .unwrap_err()
        .contains("period"));
    }
}
