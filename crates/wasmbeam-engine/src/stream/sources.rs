//! The streaming executor's sources: TestStream events, generated
//! sequences and watched files, taking turns; drain; when to wake up.

use super::*;

impl Streamer<'_> {
    /// Stop every source: no more elements, watermarks to the end of time.
    pub(super) fn drain_sources(&mut self) {
        self.drained = true;
        for st in &mut self.states {
            match st {
                OpState::Source { events, .. } => events.clear(),
                OpState::Generator { stop, next, .. } => *stop = Some(*next),
                OpState::Watch { stopped, .. } => *stopped = true,
                _ => {}
            }
        }
    }

    /// When, in wall-clock ms, something may next be due (a generator's
    /// element or, on the real clock, a processing-time trigger); `None`
    /// when nothing ever will be.
    pub(super) fn next_wakeup(&self) -> Option<i64> {
        let mut at: Option<i64> = None;
        let mut note = |t: i64| at = Some(at.map_or(t, |a| a.min(t)));
        for st in &self.states {
            match st {
                OpState::Generator {
                    start,
                    next,
                    stop,
                    period,
                    started,
                    watermark,
                } => {
                    if stop.is_none_or(|s| *next < s) {
                        note(
                            started.saturating_add(
                                next.saturating_sub(*start).saturating_mul(*period),
                            ),
                        );
                    } else if *watermark < END_OF_TIME {
                        note(wall_ms());
                    }
                }
                OpState::Watch {
                    next_poll,
                    stopped,
                    watermark,
                    ..
                } => {
                    if !*stopped {
                        note(*next_poll);
                    } else if *watermark < END_OF_TIME {
                        note(wall_ms());
                    }
                }
                OpState::Keyed { run: Some(run), .. } if self.real_clock => {
                    if let Some(t) = run.next_processing_timer() {
                        note(t);
                    }
                }
                OpState::Group { drivers, .. } if self.real_clock => {
                    if let Some(t) = drivers
                        .values()
                        .filter_map(|d| d.next_processing_timer())
                        .min()
                    {
                        note(t);
                    }
                }
                _ => {}
            }
        }
        at
    }

    /// The next source event; false when no source has one now. Sources
    /// take turns, so a busy one does not starve the others.
    pub(super) fn advance_source(&mut self) -> Result<bool, EngineError> {
        let n = self.order.len();
        for step in 0..n {
            let idx = (self.next_source + step) % n;
            let i = self.order[idx];
            if self.step_source(i)? {
                self.next_source = (idx + 1) % n.max(1);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One step of source `i`; false when it has nothing to do now.
    fn step_source(&mut self, i: usize) -> Result<bool, EngineError> {
        if let OpState::Watch { .. } = self.states[i] {
            return Ok(match self.watch(i)? {
                Some(batches) => {
                    let out = self.g.ops[i].outputs[0];
                    for b in batches {
                        self.emit(out, b);
                    }
                    true
                }
                None => false,
            });
        }
        if let OpState::Generator { .. } = self.states[i] {
            return Ok(match self.generate(i) {
                Some(b) => {
                    let out = self.g.ops[i].outputs[0];
                    self.emit(out, b);
                    true
                }
                None => false,
            });
        }
        let OpState::Source { events, watermarks } = &mut self.states[i] else {
            return Ok(false);
        };
        let Some(event) = events.pop_front() else {
            if watermarks.iter().any(|w| *w < END_OF_TIME) {
                watermarks.iter_mut().for_each(|w| *w = END_OF_TIME);
                return Ok(true);
            }
            return Ok(false);
        };
        let raise = |w: &mut i64, t: i64| *w = (*w).max(t);
        match event {
            StreamEvent::Elements(b) => {
                let out = self.g.ops[i].outputs[0];
                self.emit(out, b);
            }
            StreamEvent::ElementsTo(k, b) => {
                let out = *self.g.ops[i].outputs.get(k).ok_or_else(|| {
                    op_err(
                        self.g,
                        i,
                        format!("a TestStream event names output {k}, which it does not have"),
                    )
                })?;
                self.emit(out, b);
            }
            StreamEvent::Watermark(t) => watermarks.iter_mut().for_each(|w| raise(w, t)),
            StreamEvent::WatermarkOf(k, t) => {
                if let Some(w) = watermarks.get_mut(k) {
                    raise(w, t);
                }
            }
            StreamEvent::ProcessingTime(d) => {
                self.clock = self.clock.saturating_add(d.max(0));
                self.fire_processing_time()?;
            }
        }
        Ok(true)
    }
}

impl Streamer<'_> {
    /// A watched source's poll, when one is due: the lines of the files
    /// that became complete, timestamped with the poll; `None` when nothing
    /// changed.
    fn watch(&mut self, i: usize) -> Result<Option<Vec<Batch>>, EngineError> {
        let g = self.g;
        let OpKind::WatchText { patterns, .. } = &g.ops[i].kind else {
            return Ok(None);
        };
        let now = wall_ms();
        let OpState::Watch {
            watcher,
            next_poll,
            poll,
            stopped,
            watermark,
        } = &mut self.states[i]
        else {
            return Ok(None);
        };
        if *stopped {
            if *watermark < END_OF_TIME {
                *watermark = END_OF_TIME;
                return Ok(Some(Vec::new()));
            }
            return Ok(None);
        }
        if now < *next_poll {
            return Ok(None);
        }
        *next_poll = now.saturating_add(*poll);
        let mut batches = Vec::new();
        for split in watcher.poll(patterns).map_err(|m| op_err(g, i, m))? {
            read_split(&split, |b| {
                let mut stamped = Batch::with_capacity(b.len(), b.values.data.len());
                for e in b.iter() {
                    stamped.push(e.value, now, [Window::GLOBAL], crate::batch::PANE_NO_FIRING);
                }
                batches.push(stamped);
                Ok(())
            })
            .map_err(|m| op_err(g, i, m))?;
        }
        // Every file complete by now has been read: nothing earlier comes.
        if now > *watermark {
            *watermark = now;
        }
        Ok(Some(batches))
    }

    /// The generator's elements due by now (at most
    /// [`GENERATED_PER_BUNDLE`]), advancing its watermark; `None` when
    /// nothing changed.
    fn generate(&mut self, i: usize) -> Option<Batch> {
        let now = wall_ms();
        let OpState::Generator {
            start,
            next,
            stop,
            period,
            started,
            watermark,
        } = &mut self.states[i]
        else {
            return None;
        };
        let due_at =
            |k: i64| started.saturating_add(k.saturating_sub(*start).saturating_mul(*period));
        let mut b = Batch::default();
        let mut buf = Vec::with_capacity(10);
        while stop.is_none_or(|s| *next < s)
            && due_at(*next) <= now
            && b.len() < GENERATED_PER_BUNDLE
        {
            buf.clear();
            encode_varint(*next, &mut buf);
            b.push(
                &buf,
                due_at(*next),
                [Window::GLOBAL],
                crate::batch::PANE_NO_FIRING,
            );
            match next.checked_add(1) {
                Some(n) => *next = n,
                // The end of i64: the sequence stops here.
                None => {
                    *stop = Some(*next);
                    break;
                }
            }
        }
        let new_wm = if stop.is_none_or(|s| *next < s) {
            due_at(*next)
        } else {
            END_OF_TIME
        };
        let moved = new_wm > *watermark;
        if moved {
            *watermark = new_wm;
        }
        if b.is_empty() {
            // A watermark move alone is progress too.
            return moved.then(Batch::default);
        }
        Some(b)
    }
}

/// The most elements a generator puts in one bundle.
const GENERATED_PER_BUNDLE: usize = 8192;

/// Beam's varint encoding of an int64 (as its two's-complement u64).
fn encode_varint(v: i64, out: &mut Vec<u8>) {
    let mut u = v as u64;
    loop {
        let byte = (u & 0x7f) as u8;
        u >>= 7;
        if u == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
