//! Timers (set, cleared, fired when due) and window expiry.

use std::sync::Arc;

use wasmbeam_bundle::{Window, MAX_TIMESTAMP};

use super::cell::{cell_bytes, Cell};
use super::{FiredTimer, KeyedState, Pending, Scope, TimeDomain, TimerId, TimerSpec, ENTRY_COST};

impl KeyedState {
    /// The `set-timer` import.
    pub fn set_timer(
        &mut self,
        family: u32,
        scope: &Scope,
        tag: String,
        fire: i64,
        output_timestamp: i64,
    ) -> Result<(), String> {
        let spec = self.timer_spec(family)?;
        let domain = spec.domain;
        let expiry = self.expiry(scope.1);
        if domain == TimeDomain::EventTime && fire > expiry {
            return Err(format!(
                "event-time timer {:?} was set for {fire}, after its window [{}, {}) expires at {expiry} (end of window plus allowed lateness)",
                spec.name, scope.1.start, scope.1.end
            ));
        }
        let hold = output_timestamp.clamp(wasmbeam_bundle::MIN_TIMESTAMP, MAX_TIMESTAMP);
        let id: TimerId = (scope.0.clone(), scope.1, family, tag);
        self.unset(&id, domain);
        self.note_scope(scope);
        self.bytes += ENTRY_COST + id.3.len();
        self.due.insert((domain, fire, id.clone()));
        *self.holds.entry(hold).or_default() += 1;
        self.timers.insert(id, Pending { fire, hold });
        Ok(())
    }

    /// Beam's default output timestamp of a timer of `family` due at
    /// `fire`, set while handling something stamped `current`.
    pub fn default_output_timestamp(
        &self,
        family: u32,
        fire: i64,
        current: i64,
    ) -> Result<i64, String> {
        Ok(match self.timer_spec(family)?.domain {
            TimeDomain::EventTime => fire,
            TimeDomain::ProcessingTime => current,
        })
    }

    /// The `clear-timer` import.
    pub fn clear_timer(&mut self, family: u32, scope: &Scope, tag: String) -> Result<(), String> {
        let domain = self.timer_spec(family)?.domain;
        let id: TimerId = (scope.0.clone(), scope.1, family, tag);
        self.unset(&id, domain);
        Ok(())
    }

    fn timer_spec(&self, family: u32) -> Result<&TimerSpec, String> {
        self.info.timers.get(family as usize).ok_or_else(|| {
            format!(
                "timer family {family} does not exist (the DoFn declared {})",
                self.info.timers.len()
            )
        })
    }

    fn unset(&mut self, id: &TimerId, domain: TimeDomain) {
        if let Some(p) = self.timers.remove(id) {
            self.due.remove(&(domain, p.fire, id.clone()));
            self.release_hold(p.hold);
            self.bytes = self.bytes.saturating_sub(ENTRY_COST + id.3.len());
        }
    }

    fn release_hold(&mut self, hold: i64) {
        if let Some(n) = self.holds.get_mut(&hold) {
            *n -= 1;
            if *n == 0 {
                self.holds.remove(&hold);
            }
        }
    }

    /// Take the timers due at `watermark` (event time: fire <= watermark)
    /// and `processing` (processing time), earliest first.
    pub fn take_due(&mut self, watermark: i64, processing: i64) -> Vec<FiredTimer> {
        let mut ids = Vec::new();
        for (domain, now) in [
            (TimeDomain::EventTime, watermark),
            (TimeDomain::ProcessingTime, processing),
        ] {
            for (d, fire, id) in self.due.range((domain, i64::MIN, min_id())..) {
                if *d != domain || *fire > now {
                    break;
                }
                ids.push((domain, *fire, id.clone()));
            }
        }
        let mut fired: Vec<FiredTimer> = ids
            .into_iter()
            .filter_map(|(domain, fire, id)| {
                self.due.remove(&(domain, fire, id.clone()));
                let p = self.timers.remove(&id)?;
                self.release_hold(p.hold);
                self.bytes = self.bytes.saturating_sub(ENTRY_COST + id.3.len());
                Some(FiredTimer {
                    family: id.2,
                    scope: (id.0, id.1),
                    tag: id.3,
                    fire,
                    output_timestamp: p.hold,
                })
            })
            .collect();
        fired.sort_by_key(|t| (t.fire, t.family));
        fired
    }

    /// The scopes whose window expired once the input watermark is at
    /// `watermark` (expiry < watermark), taken out of the index. Their
    /// state stays readable until [`KeyedState::drop_scope`].
    pub fn take_expired(&mut self, watermark: i64) -> Vec<Scope> {
        let mut out = Vec::new();
        while let Some((t, _)) = self.expiry.first() {
            // At the end of time every window expires, the global one too.
            if *t >= watermark && watermark < MAX_TIMESTAMP {
                break;
            }
            let (_, s) = self.expiry.pop_first().expect("checked above");
            self.bytes = self.bytes.saturating_sub(ENTRY_COST + s.0.len());
            out.push(s);
        }
        out
    }

    /// True when the scope holds some state.
    pub fn has_state(&self, scope: &Scope) -> bool {
        self.cells
            .get(scope)
            .is_some_and(|c| c.iter().any(|c| !matches!(c, Cell::Empty)))
    }

    /// Drop an expired scope's state and its remaining timers.
    pub fn drop_scope(&mut self, scope: &Scope) {
        if let Some(cells) = self.cells.remove(scope) {
            let freed: usize =
                cells.iter().map(cell_bytes).sum::<usize>() + ENTRY_COST * cells.len();
            self.bytes = self.bytes.saturating_sub(freed);
        }
        let first: TimerId = (scope.0.clone(), scope.1, 0, String::new());
        let ids: Vec<TimerId> = self
            .timers
            .range(first..)
            .take_while(|(id, _)| id.0 == scope.0 && id.1 == scope.1)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            let domain = self.info.timers[id.2 as usize].domain;
            self.unset(&id, domain);
        }
    }
}

pub(super) fn min_id() -> TimerId {
    (
        Arc::from(&[][..]),
        Window {
            start: i64::MIN,
            end: i64::MIN,
        },
        0,
        String::new(),
    )
}
