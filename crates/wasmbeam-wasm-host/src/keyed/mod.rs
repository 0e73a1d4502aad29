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

use wasmbeam_bundle::{Values, Window, GLOBAL_WINDOW_END, MAX_TIMESTAMP};

mod cell;
#[cfg(test)]
mod tests;
mod timers;

use cell::{cell_bytes, combine, push_ordered, varint, Cell};
use timers::min_id;

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

/// A timer's identity: key, window, family, tag (in this order, so one
/// scope's timers are a range).
type TimerId = (Arc<[u8]>, Window, u32, String);

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

/// The state and timers of every key of one keyed run. With a budget
/// ([`KeyedState::with_budget`]) the bytes it holds are reserved from the
/// job's memory budget after each call, and given back when it is dropped.
#[derive(Debug)]
pub struct KeyedState {
    info: Arc<DoFnInfo>,
    allowed_lateness: i64,
    cells: HashMap<Scope, Vec<Cell>>,
    timers: BTreeMap<TimerId, Pending>,
    due: BTreeSet<(TimeDomain, i64, TimerId)>,
    holds: BTreeMap<i64, usize>,
    /// Scopes with state or timers, by window expiry.
    expiry: BTreeSet<(i64, Scope)>,
    /// Approximate bytes held.
    bytes: usize,
    /// The job's budget, and how much of it this state holds.
    budget: Option<crate::MemoryBudget>,
    reserved: usize,
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
            timers: BTreeMap::new(),
            due: BTreeSet::new(),
            holds: BTreeMap::new(),
            expiry: BTreeSet::new(),
            bytes: 0,
            budget: None,
            reserved: 0,
        }
    }

    /// Charge what this state holds to `budget`.
    pub fn with_budget(mut self, budget: Option<crate::MemoryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// Bring the reservation in line with the bytes held; when more does not
    /// fit, `Err((bytes held, budget))`.
    pub(crate) fn settle(&mut self) -> Result<(), (usize, usize)> {
        let Some(b) = &self.budget else {
            return Ok(());
        };
        if self.bytes > self.reserved {
            if !b.try_reserve(self.bytes - self.reserved) {
                return Err((self.bytes, b.cap()));
            }
        } else {
            b.release(self.reserved - self.bytes);
        }
        self.reserved = self.bytes;
        Ok(())
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
    pub fn read(&self, cell: u32, scope: &Scope, out: &mut Values) -> Result<(), String> {
        let (c, kind) = self.cell(cell, scope)?;
        match (c.unwrap_or(&Cell::Empty), kind) {
            (Cell::Empty, _) => {}
            (Cell::Value(v), _) => out.push(v),
            (Cell::Bag(b), _) => b.iter().for_each(|v| out.push(v)),
            (Cell::Int(v, n), CellKind::Combining(f)) => out.push(&varint(match f {
                BuiltinCombine::Count => *n as i64,
                _ => *v,
            })),
            (Cell::Double(v, _), _) => out.push(&v.to_be_bytes()),
            (Cell::Map(m), CellKind::Set) => m.keys().for_each(|k| out.push(k)),
            (Cell::Map(m), _) => {
                for (k, v) in m {
                    out.push(k);
                    out.push(v);
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
        out: &mut Values,
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
        out: &mut Values,
    ) -> Result<(), String> {
        let (c, kind) = self.cell(cell, scope)?;
        match kind {
            CellKind::Map | CellKind::Set => {}
            _ => return Err(self.wrong(cell, "lookup")),
        }
        if let Some(Cell::Map(m)) = c {
            if let Some(v) = m.get(key) {
                out.push(v);
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
}

impl Drop for KeyedState {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.reserved);
        }
    }
}
