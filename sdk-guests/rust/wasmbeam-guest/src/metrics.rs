//! User metrics, aggregated inside the guest and sent to the runner once
//! per bundle (at finish-bundle / extract-outputs), not once per element.

use std::cell::RefCell;
use std::collections::BTreeMap;

#[derive(Default)]
struct Pending {
    counters: BTreeMap<String, i64>,
    distributions: BTreeMap<String, (i64, i64, i64, i64)>,
    gauges: BTreeMap<String, i64>,
}

thread_local! {
    static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

/// Add `delta` to the counter `name` (a Beam sum metric).
pub fn counter(name: &str, delta: i64) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        match p.counters.get_mut(name) {
            Some(c) => *c = c.saturating_add(delta),
            None => {
                p.counters.insert(name.to_string(), delta);
            }
        }
    });
}

/// Record `value` in the distribution `name`.
pub fn distribution(name: &str, value: i64) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let d = p.distributions.entry(name.to_string()).or_insert((0, 0, i64::MAX, i64::MIN));
        d.0 += 1;
        d.1 = d.1.saturating_add(value);
        d.2 = d.2.min(value);
        d.3 = d.3.max(value);
    });
}

/// Set the gauge `name`.
pub fn gauge(name: &str, value: i64) {
    PENDING.with(|p| {
        p.borrow_mut().gauges.insert(name.to_string(), value);
    });
}

/// Send everything pending to the host.
pub(crate) fn flush() {
    use crate::host;
    let p = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    for (k, v) in p.counters {
        host::counter(&k, v);
    }
    for (k, (count, sum, min, max)) in p.distributions {
        host::distribution(&k, count, sum, min, max);
    }
    for (k, v) in p.gauges {
        host::gauge(&k, v);
    }
}
