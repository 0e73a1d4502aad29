//! User state and timers of a stateful DoFn (contract 0.3.0's `state`
//! import), kept on the host.
//!
//! [`KeyedState`] holds every key's and window's cells and pending timers
//! for one keyed run. During a call into the guest it is lent to the
//! store together with the call's *scopes* (the key and window of each
//! element or timer of the call), and the `state` import reads and writes
//! it there; between calls the runner owns it and asks it which timers are
//! due and which windows have expired.
//!
//! Timers live in a map by identity (family, key, window, tag), where the
//! last set or clear wins, plus an index ordered by (domain, fire time), so
//! finding the due timers costs their number, not the number of keys.
//! Pending timers' output timestamps form a multiset whose minimum is the
//! watermark hold. Each scope that holds state or timers is also indexed
//! by its window's expiry (end of window plus allowed lateness), so
//! expiring windows are found without a scan.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use wasmbeam_bundle::{Window, GLOBAL_WINDOW_END, MAX_TIMESTAMP};

/// A runner-side combine of a `combining` cell (the WIT `builtin-combine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinCombine {
    /// Sum of varint int64 values.
    SumInt64,
    /// Minimum of varint int64 values.
    MinInt64,
    /// Maximum of varint int64 values.
    MaxInt64,
    /// Sum of Beam doubles (8 bytes, big-endian).
    SumDouble,
    /// Minimum of doubles.
    MinDouble,
    /// Maximum of doubles.
    MaxDouble,
    /// Number of values added (a varint).
    Count,
}

/// What a state cell holds (the WIT `state-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    /// One value.
    Value,
    /// Values in insertion order.
    Bag,
    /// A runner-side combine of the values added.
    Combining(BuiltinCombine),
    /// Keys to values.
    Map,
    /// Distinct values.
    Set,
    /// Values sorted by timestamp.
    OrderedList,
}

/// A declared state cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellSpec {
    /// Its name in the DoFn.
    pub name: String,
    /// What it holds.
    pub kind: CellKind,
}

/// The clock a timer family follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeDomain {
    /// The input watermark.
    EventTime,
    /// The runner's processing-time clock.
    ProcessingTime,
}

/// A declared timer family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSpec {
    /// Its name in the DoFn.
    pub name: String,
    /// Which clock fires it.
    pub domain: TimeDomain,
}

/// What a DoFn declared in `describe`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoFnInfo {
    /// State cells, by index.
    pub cells: Vec<CellSpec>,
    /// Timer families, by index.
    pub timers: Vec<TimerSpec>,
    /// It wants `on-window-expiration`.
    pub window_expiration: bool,
}

impl DoFnInfo {
    /// True when the DoFn uses state, timers or window expiration.
    pub fn is_stateful(&self) -> bool {
        !self.cells.is_empty() || !self.timers.is_empty() || self.window_expiration
    }
}

/// A key (nested encoding) and a window: what state belongs to.
pub type Scope = (Arc<[u8]>, Window);

/// One cell's contents.
#[derive(Debug, Clone)]
enum Cell {
    Empty,
    Value(Vec<u8>),
    Bag(Vec<Vec<u8>>),
    Int(i64, u64),
    Double(f64, u64),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
    Ordered(BTreeMap<i64, Vec<Vec<u8>>>),
}

/// A timer's identity: family, key, window, tag.
type TimerId = (u32, Arc<[u8]>, Window, String);

/// A timer that fired.
#[derive(Debug, Clone)]
pub struct FiredTimer {
    /// Family index.
    pub family: u32,
    /// Key and window.
    pub scope: Scope,
    /// Tag within the family.
    pub tag: String,
    /// When it was due.
    pub fire: i64,
    /// Timestamp of what it outputs.
    pub output_timestamp: i64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    fire: i64,
    hold: i64,
}

/// The state and timers of every key of one keyed run.
#[derive(Debug, Clone)]
pub struct KeyedState {
    info: Arc<DoFnInfo>,
    allowed_lateness: i64,
    cells: HashMap<Scope, Vec<Cell>>,
    timers: HashMap<TimerId, Pending>,
    due: BTreeSet<(TimeDomain, i64, TimerId)>,
    holds: BTreeMap<i64, usize>,
    /// Scopes with state or timers, by window expiry.
    expiry: BTreeSet<(i64, Scope)>,
    /// Approximate bytes held.
    bytes: usize,
}

/// Bytes charged per scope, cell and timer besides their contents.
const ENTRY_COST: usize = 64;

impl KeyedState {
    /// Empty state for a DoFn that declared `info`, whose input's windows
    /// expire `allowed_lateness` ms after their end.
    pub fn new(info: Arc<DoFnInfo>, allowed_lateness: i64) -> Self {
        KeyedState {
            info,
            allowed_lateness: allowed_lateness.max(0),
            cells: HashMap::new(),
            timers: HashMap::new(),
            due: BTreeSet::new(),
            holds: BTreeMap::new(),
            expiry: BTreeSet::new(),
            bytes: 0,
        }
    }

    /// What the DoFn declared.
    pub fn info(&self) -> &DoFnInfo {
        &self.info
    }

    /// When `w`'s state is garbage-collected: once the input watermark
    /// passes its end plus the allowed lateness. The global window's
    /// state lives until the end of time.
    pub fn expiry(&self, w: Window) -> i64 {
        if w.end >= GLOBAL_WINDOW_END {
            MAX_TIMESTAMP
        } else {
            w.max_timestamp().saturating_add(self.allowed_lateness)
        }
    }

    /// Approximate bytes of state and timers held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of (key, window) scopes holding state or timers.
    pub fn scopes(&self) -> usize {
        self.expiry.len()
    }

    /// Number of pending timers.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// The earliest output timestamp of a pending timer: the output
    /// watermark may not pass it.
    pub fn hold(&self) -> Option<i64> {
        self.holds.keys().next().copied()
    }

    /// When the earliest processing-time timer is due.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.due
            .range((TimeDomain::ProcessingTime, i64::MIN, min_id())..)
            .next()
            .map(|(_, t, _)| *t)
    }

    fn note_scope(&mut self, scope: &Scope) {
        let e = (self.expiry(scope.1), scope.clone());
        if !self.expiry.contains(&e) {
            self.bytes += ENTRY_COST + scope.0.len();
            self.expiry.insert(e);
        }
    }

    fn cell_mut(&mut self, cell: u32, scope: &Scope) -> Result<(&mut Cell, CellKind), String> {
        let kind = self.kind(cell)?;
        if !self.cells.contains_key(scope) {
            self.note_scope(scope);
            self.bytes += ENTRY_COST * self.info.cells.len();
            self.cells
                .insert(scope.clone(), vec![Cell::Empty; self.info.cells.len()]);
        }
        let cells = self.cells.get_mut(scope).expect("inserted above");
        Ok((&mut cells[cell as usize], kind))
    }

    fn cell(&self, cell: u32, scope: &Scope) -> Result<(Option<&Cell>, CellKind), String> {
        let kind = self.kind(cell)?;
        Ok((self.cells.get(scope).map(|c| &c[cell as usize]), kind))
    }

    fn kind(&self, cell: u32) -> Result<CellKind, String> {
        self.info
            .cells
            .get(cell as usize)
            .map(|c| c.kind)
            .ok_or_else(|| {
                format!(
                    "state cell {cell} does not exist (the DoFn declared {})",
                    self.info.cells.len()
                )
            })
    }

    fn wrong(&self, cell: u32, op: &str) -> String {
        let c = &self.info.cells[cell as usize];
        format!(
            "state call `{op}` does not apply to cell {:?}, a {:?} cell",
            c.name, c.kind
        )
    }

    /// The `read` import: a cell's entries (see `wit/udf.wit`).
    pub fn read(&self, cell: u32, scope: &Scope, out: &mut Vec<Vec<u8>>) -> Result<(), String> {
        let (c, kind) = self.cell(cell, scope)?;
        match (c.unwrap_or(&Cell::Empty), kind) {
            (Cell::Empty, CellKind::Combining(BuiltinCombine::Count)) => {}
            (Cell::Empty, _) => {}
            (Cell::Value(v), _) => out.push(v.clone()),
            (Cell::Bag(b), _) => out.extend(b.iter().cloned()),
            (Cell::Int(v, n), CellKind::Combining(f)) => out.push(varint(match f {
                BuiltinCombine::Count => *n as i64,
                _ => *v,
            })),
            (Cell::Double(v, _), _) => out.push(v.to_be_bytes().to_vec()),
            (Cell::Map(m), CellKind::Set) => out.extend(m.keys().cloned()),
            (Cell::Map(m), _) => {
                for (k, v) in m {
                    out.push(k.clone());
                    out.push(v.clone());
                }
            }
            (Cell::Ordered(o), _) => push_ordered(o.range(..), out),
            (Cell::Int(..), _) => return Err(self.wrong(cell, "read")),
        }
        Ok(())
    }

    /// The `read-range` import: an ordered list's entries in [from, until).
    pub fn read_range(
        &self,
        cell: u32,
        scope: &Scope,
        from: i64,
        until: i64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        let (c, kind) = self.cell(cell, scope)?;
        if kind != CellKind::OrderedList {
            return Err(self.wrong(cell, "read-range"));
        }
        if let Some(Cell::Ordered(o)) = c {
            if from < until {
                push_ordered(o.range(from..until), out);
            }
        }
        Ok(())
    }

    /// The `lookup` import: a map's value, or a set's membership.
    pub fn lookup(
        &self,
        cell: u32,
        scope: &Scope,
        key: &[u8],
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), String> {
        let (c, kind) = self.cell(cell, scope)?;
        match kind {
            CellKind::Map | CellKind::Set => {}
            _ => return Err(self.wrong(cell, "lookup")),
        }
        if let Some(Cell::Map(m)) = c {
            if let Some(v) = m.get(key) {
                out.push(v.clone());
            }
        }
        Ok(())
    }

    /// The `write` import: replace a value cell's value.
    pub fn write(&mut self, cell: u32, scope: &Scope, value: Vec<u8>) -> Result<(), String> {
        let (c, kind) = self.cell_mut(cell, scope)?;
        if kind != CellKind::Value {
            return Err(self.wrong(cell, "write"));
        }
        let old = match std::mem::replace(c, Cell::Empty) {
            Cell::Value(v) => v.len(),
            _ => 0,
        };
        let new = value.len();
        *c = Cell::Value(value);
        self.bytes = self.bytes.saturating_sub(old) + new;
        Ok(())
    }

    /// The `add` import: bag append, combining input, set insert.
    pub fn add(&mut self, cell: u32, scope: &Scope, value: Vec<u8>) -> Result<(), String> {
        let (c, kind) = self.cell_mut(cell, scope)?;
        let mut grew = 0;
        match kind {
            CellKind::Bag => {
                if !matches!(c, Cell::Bag(_)) {
                    *c = Cell::Bag(Vec::new());
                }
                let Cell::Bag(b) = c else { unreachable!() };
                grew = value.len() + 24;
                b.push(value);
            }
            CellKind::Set => {
                if !matches!(c, Cell::Map(_)) {
                    *c = Cell::Map(BTreeMap::new());
                }
                let Cell::Map(m) = c else { unreachable!() };
                if !m.contains_key(&value) {
                    grew = value.len() + 48;
                    m.insert(value, Vec::new());
                }
            }
            CellKind::Combining(f) => combine(c, f, &value).map_err(|e| {
                format!(
                    "state cell {:?} ({f:?}): {e}",
                    self.info.cells[cell as usize].name
                )
            })?,
            _ => return Err(self.wrong(cell, "add")),
        }
        self.bytes += grew;
        Ok(())
    }

    /// The `put` import: a map entry.
    pub fn put(
        &mut self,
        cell: u32,
        scope: &Scope,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), String> {
        let (c, kind) = self.cell_mut(cell, scope)?;
        if kind != CellKind::Map {
            return Err(self.wrong(cell, "put"));
        }
        if !matches!(c, Cell::Map(_)) {
            *c = Cell::Map(BTreeMap::new());
        }
        let Cell::Map(m) = c else { unreachable!() };
        let add = key.len() + value.len() + 48;
        let old = m.insert(key, value).map_or(0, |v| v.len());
        self.bytes = (self.bytes + add).saturating_sub(old);
        Ok(())
    }

    /// The `add-at` import: an ordered-list entry.
    pub fn add_at(
        &mut self,
        cell: u32,
        scope: &Scope,
        timestamp: i64,
        value: Vec<u8>,
    ) -> Result<(), String> {
        let (c, kind) = self.cell_mut(cell, scope)?;
        if kind != CellKind::OrderedList {
            return Err(self.wrong(cell, "add-at"));
        }
        if !matches!(c, Cell::Ordered(_)) {
            *c = Cell::Ordered(BTreeMap::new());
        }
        let Cell::Ordered(o) = c else { unreachable!() };
        let add = value.len() + 48;
        o.entry(timestamp).or_default().push(value);
        self.bytes += add;
        Ok(())
    }

    /// The `remove` import: a map or set key.
    pub fn remove(&mut self, cell: u32, scope: &Scope, key: &[u8]) -> Result<(), String> {
        let kind = self.kind(cell)?;
        if !matches!(kind, CellKind::Map | CellKind::Set) {
            return Err(self.wrong(cell, "remove"));
        }
        if let Some(Cell::Map(m)) = self.cells.get_mut(scope).map(|c| &mut c[cell as usize]) {
            if let Some(v) = m.remove(key) {
                self.bytes = self.bytes.saturating_sub(key.len() + v.len() + 48);
            }
        }
        Ok(())
    }

    /// The `clear` import.
    pub fn clear(&mut self, cell: u32, scope: &Scope) -> Result<(), String> {
        self.kind(cell)?;
        if let Some(c) = self.cells.get_mut(scope).map(|c| &mut c[cell as usize]) {
            let freed = cell_bytes(c);
            *c = Cell::Empty;
            self.bytes = self.bytes.saturating_sub(freed);
        }
        Ok(())
    }

    /// The `clear-range` import: ordered-list entries in [from, until).
    pub fn clear_range(
        &mut self,
        cell: u32,
        scope: &Scope,
        from: i64,
        until: i64,
    ) -> Result<(), String> {
        if self.kind(cell)? != CellKind::OrderedList {
            return Err(self.wrong(cell, "clear-range"));
        }
        if let Some(Cell::Ordered(o)) = self.cells.get_mut(scope).map(|c| &mut c[cell as usize]) {
            if from < until {
                let gone: Vec<i64> = o.range(from..until).map(|(t, _)| *t).collect();
                let mut freed = 0;
                for t in gone {
                    if let Some(vs) = o.remove(&t) {
                        freed += vs.iter().map(|v| v.len() + 48).sum::<usize>();
                    }
                }
                self.bytes = self.bytes.saturating_sub(freed);
            }
        }
        Ok(())
    }

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
        let id: TimerId = (family, scope.0.clone(), scope.1, tag);
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
        let id: TimerId = (family, scope.0.clone(), scope.1, tag);
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
                    family: id.0,
                    scope: (id.1, id.2),
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
        let ids: Vec<TimerId> = self
            .timers
            .keys()
            .filter(|id| id.1 == scope.0 && id.2 == scope.1)
            .cloned()
            .collect();
        for id in ids {
            let domain = self.info.timers[id.0 as usize].domain;
            self.unset(&id, domain);
        }
    }
}

fn min_id() -> TimerId {
    (
        0,
        Arc::from(&[][..]),
        Window {
            start: i64::MIN,
            end: i64::MIN,
        },
        String::new(),
    )
}

fn push_ordered<'a>(it: impl Iterator<Item = (&'a i64, &'a Vec<Vec<u8>>)>, out: &mut Vec<Vec<u8>>) {
    for (t, vs) in it {
        for v in vs {
            out.push(t.to_le_bytes().to_vec());
            out.push(v.clone());
        }
    }
}

fn cell_bytes(c: &Cell) -> usize {
    match c {
        Cell::Empty | Cell::Int(..) | Cell::Double(..) => 0,
        Cell::Value(v) => v.len(),
        Cell::Bag(b) => b.iter().map(|v| v.len() + 24).sum(),
        Cell::Map(m) => m.iter().map(|(k, v)| k.len() + v.len() + 48).sum(),
        Cell::Ordered(o) => o.values().flatten().map(|v| v.len() + 48).sum(),
    }
}

/// Fold one encoded input into a combining cell.
fn combine(c: &mut Cell, f: BuiltinCombine, value: &[u8]) -> Result<(), String> {
    use BuiltinCombine::*;
    match f {
        Count => {
            let n = match c {
                Cell::Int(_, n) => *n,
                _ => 0,
            };
            *c = Cell::Int(0, n + 1);
        }
        SumInt64 | MinInt64 | MaxInt64 => {
            let x = read_varint(value)?;
            *c = match *c {
                Cell::Int(v, n) => Cell::Int(
                    match f {
                        SumInt64 => v.wrapping_add(x),
                        MinInt64 => v.min(x),
                        _ => v.max(x),
                    },
                    n + 1,
                ),
                _ => Cell::Int(x, 1),
            };
        }
        SumDouble | MinDouble | MaxDouble => {
            let b: [u8; 8] = value
                .try_into()
                .map_err(|_| format!("a double is 8 bytes, got {}", value.len()))?;
            let x = f64::from_be_bytes(b);
            *c = match *c {
                Cell::Double(v, n) => Cell::Double(
                    match f {
                        SumDouble => v + x,
                        MinDouble => v.min(x),
                        _ => v.max(x),
                    },
                    n + 1,
                ),
                _ => Cell::Double(x, 1),
            };
        }
    }
    Ok(())
}

/// Beam's varint encoding of an int64 (two's complement as u64, 7 bits a byte).
fn varint(v: i64) -> Vec<u8> {
    let mut u = v as u64;
    let mut out = Vec::with_capacity(10);
    loop {
        let b = (u & 0x7f) as u8;
        u >>= 7;
        if u == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(b: &[u8]) -> Result<i64, String> {
    let mut u: u64 = 0;
    for (i, &x) in b.iter().enumerate().take(10) {
        u |= ((x & 0x7f) as u64) << (7 * i);
        if x & 0x80 == 0 {
            if i + 1 != b.len() {
                return Err(format!("{} bytes after a varint", b.len() - i - 1));
            }
            return Ok(u as i64);
        }
    }
    Err("not a varint int64 (Beam's VarIntCoder)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> Arc<DoFnInfo> {
        Arc::new(DoFnInfo {
            cells: vec![
                CellSpec {
                    name: "v".into(),
                    kind: CellKind::Value,
                },
                CellSpec {
                    name: "bag".into(),
                    kind: CellKind::Bag,
                },
                CellSpec {
                    name: "sum".into(),
                    kind: CellKind::Combining(BuiltinCombine::SumInt64),
                },
                CellSpec {
                    name: "m".into(),
                    kind: CellKind::Map,
                },
                CellSpec {
                    name: "s".into(),
                    kind: CellKind::Set,
                },
                CellSpec {
                    name: "o".into(),
                    kind: CellKind::OrderedList,
                },
            ],
            timers: vec![
                TimerSpec {
                    name: "et".into(),
                    domain: TimeDomain::EventTime,
                },
                TimerSpec {
                    name: "pt".into(),
                    domain: TimeDomain::ProcessingTime,
                },
            ],
            window_expiration: true,
        })
    }

    fn scope(k: &[u8], w: Window) -> Scope {
        (Arc::from(k), w)
    }

    fn read(s: &KeyedState, cell: u32, sc: &Scope) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        s.read(cell, sc, &mut out).unwrap();
        out
    }

    #[test]
    fn cells_keep_per_key_and_window_contents() {
        let mut s = KeyedState::new(info(), 0);
        let a = scope(b"a", Window::GLOBAL);
        let b = scope(b"b", Window::GLOBAL);
        s.write(0, &a, b"x".to_vec()).unwrap();
        s.add(1, &a, b"1".to_vec()).unwrap();
        s.add(1, &a, b"2".to_vec()).unwrap();
        s.add(2, &a, varint(40)).unwrap();
        s.add(2, &a, varint(2)).unwrap();
        s.put(3, &a, b"k2".to_vec(), b"v2".to_vec()).unwrap();
        s.put(3, &a, b"k1".to_vec(), b"v1".to_vec()).unwrap();
        s.add(4, &a, b"z".to_vec()).unwrap();
        s.add(4, &a, b"y".to_vec()).unwrap();
        s.add(4, &a, b"z".to_vec()).unwrap();
        s.add_at(5, &a, 20, b"late".to_vec()).unwrap();
        s.add_at(5, &a, 10, b"early".to_vec()).unwrap();
        assert_eq!(read(&s, 0, &a), vec![b"x".to_vec()]);
        assert_eq!(read(&s, 1, &a), vec![b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(read(&s, 2, &a), vec![varint(42)]);
        assert_eq!(
            read(&s, 3, &a),
            [b"k1", b"v1", b"k2", b"v2"].map(|x| x.to_vec())
        );
        assert_eq!(read(&s, 4, &a), vec![b"y".to_vec(), b"z".to_vec()]);
        let mut r = Vec::new();
        s.read_range(5, &a, 15, 30, &mut r).unwrap();
        assert_eq!(r, vec![20i64.to_le_bytes().to_vec(), b"late".to_vec()]);
        assert!(read(&s, 0, &b).is_empty(), "another key sees nothing");
        s.clear(1, &a).unwrap();
        assert!(read(&s, 1, &a).is_empty());
        let e = s.write(1, &a, vec![]).unwrap_err();
        assert!(e.contains("\"bag\""), "{e}");
        assert!(s
            .read(9, &a, &mut Vec::new())
            .unwrap_err()
            .contains("cell 9"));
    }

    #[test]
    fn timers_fire_by_domain_and_the_last_set_wins() {
        let mut s = KeyedState::new(info(), 0);
        let w = Window { start: 0, end: 100 };
        let a = scope(b"a", w);
        s.set_timer(0, &a, "".into(), 50, 50).unwrap();
        s.set_timer(0, &a, "".into(), 60, 60).unwrap();
        s.set_timer(1, &a, "p".into(), 1_000, 5).unwrap();
        assert_eq!(s.hold(), Some(5));
        assert_eq!(s.next_processing_timer(), Some(1_000));
        assert!(s.take_due(55, 0).is_empty(), "reset to 60");
        let f = s.take_due(60, 0);
        assert_eq!((f.len(), f[0].fire, f[0].family), (1, 60, 0));
        assert_eq!(s.take_due(60, 999).len(), 0);
        assert_eq!(s.take_due(60, 1_000)[0].tag, "p");
        assert_eq!(s.hold(), None);
        let e = s.set_timer(0, &a, "".into(), 100, 100).unwrap_err();
        assert!(e.contains("expires at 99"), "{e}");
    }

    #[test]
    fn windows_expire_after_the_allowed_lateness() {
        let mut s = KeyedState::new(info(), 10);
        let a = scope(b"a", Window { start: 0, end: 100 });
        let g = scope(b"a", Window::GLOBAL);
        s.add(1, &a, b"x".to_vec()).unwrap();
        s.add(1, &g, b"y".to_vec()).unwrap();
        s.set_timer(1, &a, "".into(), 5, 5).unwrap();
        assert!(s.take_expired(109).is_empty());
        let e = s.take_expired(110);
        assert_eq!(e, vec![a.clone()]);
        assert!(s.has_state(&a));
        s.drop_scope(&a);
        assert!(!s.has_state(&a));
        assert_eq!(s.pending_timers(), 0, "its timers go with it");
        assert_eq!(s.take_expired(MAX_TIMESTAMP), vec![g]);
    }
}
