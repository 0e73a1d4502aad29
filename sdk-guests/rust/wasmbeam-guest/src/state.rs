//! User state and timers for stateful DoFns (contract 0.3.0).
//!
//! A DoFn declares what it needs in [`crate::DoFn::describe`] with a
//! [`Stateful`] builder; each declared cell and timer family gets the index
//! of its declaration ([`Cell`], [`TimerFamily`]). The runner then shuffles
//! the DoFn's input by key and, for every element (and every fired timer),
//! serves the state of that element's key and window through
//! [`State`], obtained from [`crate::Element::state`] or
//! [`Timer::state`].
//!
//! ```ignore
//! const SEEN: Cell = Cell(0);
//! const EXPIRE: TimerFamily = TimerFamily(0);
//! fn describe(_: &[u8]) -> Result<Stateful, Error> {
//!     Ok(Stateful::new().value("seen").event_timer("expire"))
//! }
//! ```

use crate::bindings::dofn::wasmbeam::udf::state as host;
use crate::bindings::dofn::wasmbeam::udf::types;
use crate::dofn::Window;
use crate::packed;

/// A runner-side combine for a combining cell (see `wit/udf.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Sum of VarInt int64s.
    SumInt64,
    /// Minimum of VarInt int64s.
    MinInt64,
    /// Maximum of VarInt int64s.
    MaxInt64,
    /// Sum of Beam doubles.
    SumDouble,
    /// Minimum of Beam doubles.
    MinDouble,
    /// Maximum of Beam doubles.
    MaxDouble,
    /// How many values were added (a VarInt).
    Count,
}

/// A declared state cell: the index of its declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell(pub u32);

/// A declared timer family: the index of its declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerFamily(pub u32);

/// What a DoFn needs beyond elements; [`Stateful::new`] is a stateless DoFn.
#[derive(Debug, Clone, Default)]
pub struct Stateful {
    cells: Vec<types::StateCell>,
    timers: Vec<types::TimerFamily>,
    window_expiration: bool,
}

impl Stateful {
    /// No state, no timers.
    pub fn new() -> Self {
        Stateful::default()
    }
    fn cell(mut self, name: &str, kind: types::StateKind) -> Self {
        self.cells.push(types::StateCell { name: name.into(), kind });
        self
    }
    fn timer(mut self, name: &str, domain: types::TimeDomain) -> Self {
        self.timers.push(types::TimerFamily { name: name.into(), domain });
        self
    }
    /// The contract's record of this declaration.
    pub(crate) fn into_wit(self) -> types::DofnInfo {
        types::DofnInfo { state: self.cells, timers: self.timers, window_expiration: self.window_expiration }
    }
    /// Declare a value cell (one value per key and window).
    pub fn value(self, name: &str) -> Self {
        self.cell(name, types::StateKind::Value)
    }
    /// Declare a bag cell (values in insertion order).
    pub fn bag(self, name: &str) -> Self {
        self.cell(name, types::StateKind::Bag)
    }
    /// Declare a combining cell the runner combines with `f`.
    pub fn combining(self, name: &str, f: Combine) -> Self {
        use types::BuiltinCombine as B;
        let b = match f {
            Combine::SumInt64 => B::SumInt64,
            Combine::MinInt64 => B::MinInt64,
            Combine::MaxInt64 => B::MaxInt64,
            Combine::SumDouble => B::SumDouble,
            Combine::MinDouble => B::MinDouble,
            Combine::MaxDouble => B::MaxDouble,
            Combine::Count => B::Count,
        };
        self.cell(name, types::StateKind::Combining(b))
    }
    /// Declare a map cell (byte-string keys, read in key order).
    pub fn map(self, name: &str) -> Self {
        self.cell(name, types::StateKind::Map)
    }
    /// Declare a set cell.
    pub fn set(self, name: &str) -> Self {
        self.cell(name, types::StateKind::Set)
    }
    /// Declare an ordered-list cell (values sorted by timestamp).
    pub fn ordered_list(self, name: &str) -> Self {
        self.cell(name, types::StateKind::OrderedList)
    }
    /// Declare an event-time timer family.
    pub fn event_timer(self, name: &str) -> Self {
        self.timer(name, types::TimeDomain::EventTime)
    }
    /// Declare a processing-time timer family.
    pub fn processing_timer(self, name: &str) -> Self {
        self.timer(name, types::TimeDomain::ProcessingTime)
    }
    /// Ask for [`crate::DoFn::on_window_expiration`] calls.
    pub fn on_window_expiration(mut self) -> Self {
        self.window_expiration = true;
        self
    }
}

/// The state and timers of one key and window, during one call.
#[derive(Debug, Clone, Copy)]
pub struct State {
    pub(crate) scope: u32,
    /// The timestamp of the element or timer this handle belongs to.
    pub(crate) timestamp: i64,
}

fn split(v: types::Values) -> Vec<Vec<u8>> {
    let o = packed::u32s(&v.offsets);
    o.windows(2)
        .map(|w| v.data[w[0] as usize..w[1] as usize].to_vec())
        .collect()
}

impl State {
    /// Every entry of a cell (see `wit/udf.wit` `read`): a value cell's
    /// value, a bag's values, a combining cell's result, a set's members,
    /// a map's keys and values interleaved, an ordered list's timestamps
    /// (8 bytes, little-endian) and values interleaved.
    pub fn read(&self, cell: Cell) -> Vec<Vec<u8>> {
        split(host::read(cell.0, self.scope))
    }
    /// A value (or combining) cell's value.
    pub fn get(&self, cell: Cell) -> Option<Vec<u8>> {
        self.read(cell).into_iter().next()
    }
    /// Replace a value cell's value.
    pub fn write(&self, cell: Cell, value: &[u8]) {
        host::write(cell.0, self.scope, value)
    }
    /// Append to a bag, add to a combining cell, insert into a set.
    pub fn add(&self, cell: Cell, value: &[u8]) {
        host::add(cell.0, self.scope, value)
    }
    /// A map's entries as (key, value) pairs, in key order.
    pub fn entries(&self, cell: Cell) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut it = self.read(cell).into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        out
    }
    /// A map's value for `key`.
    pub fn lookup(&self, cell: Cell, key: &[u8]) -> Option<Vec<u8>> {
        split(host::lookup(cell.0, self.scope, key))
            .into_iter()
            .next()
    }
    /// True when a set (or map) holds `key`.
    pub fn contains(&self, cell: Cell, key: &[u8]) -> bool {
        self.lookup(cell, key).is_some()
    }
    /// Put a map entry.
    pub fn put(&self, cell: Cell, key: &[u8], value: &[u8]) {
        host::put(cell.0, self.scope, key, value)
    }
    /// Remove a map or set key.
    pub fn remove(&self, cell: Cell, key: &[u8]) {
        host::remove(cell.0, self.scope, key)
    }
    /// Add to an ordered list at `timestamp`.
    pub fn add_at(&self, cell: Cell, timestamp: i64, value: &[u8]) {
        host::add_at(cell.0, self.scope, timestamp, value)
    }
    /// An ordered list's (timestamp, value) entries in `[start, limit)`.
    pub fn range(&self, cell: Cell, start: i64, limit: i64) -> Vec<(i64, Vec<u8>)> {
        let mut it = split(host::read_range(cell.0, self.scope, start, limit)).into_iter();
        let mut out = Vec::new();
        while let (Some(t), Some(v)) = (it.next(), it.next()) {
            let t = t.try_into().map(i64::from_le_bytes).unwrap_or(i64::MIN);
            out.push((t, v));
        }
        out
    }
    /// Remove an ordered list's entries in `[start, limit)`.
    pub fn clear_range(&self, cell: Cell, start: i64, limit: i64) {
        host::clear_range(cell.0, self.scope, start, limit)
    }
    /// Empty a cell.
    pub fn clear(&self, cell: Cell) {
        host::clear(cell.0, self.scope)
    }
    /// Set the family's default timer to fire at `fire` (ms in its
    /// domain). Its outputs get Beam's default timestamp: `fire` for an
    /// event-time timer, the current element's (or firing timer's)
    /// timestamp for a processing-time timer.
    pub fn set_timer(&self, family: TimerFamily, fire: i64) {
        self.set_timer_tagged(family, "", fire, DEFAULT_OUTPUT)
    }
    /// Set the timer `tag` of `family`, whose outputs get `output_timestamp`
    /// ([`DEFAULT_OUTPUT`] for Beam's default).
    pub fn set_timer_tagged(
        &self,
        family: TimerFamily,
        tag: &str,
        fire: i64,
        output_timestamp: i64,
    ) {
        host::set_timer(family.0, self.scope, tag, fire, output_timestamp)
    }
    /// Cancel the family's default timer.
    pub fn clear_timer(&self, family: TimerFamily) {
        host::clear_timer(family.0, self.scope, "")
    }
    /// Cancel the timer `tag` of `family`.
    pub fn clear_timer_tagged(&self, family: TimerFamily, tag: &str) {
        host::clear_timer(family.0, self.scope, tag)
    }
    /// The input watermark (ms).
    pub fn watermark(&self) -> i64 {
        host::input_watermark()
    }
    /// The runner's processing time (ms).
    pub fn now(&self) -> i64 {
        host::processing_time()
    }
    /// The timestamp of the element or timer this handle belongs to.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

/// An output timestamp meaning "Beam's default" (see [`State::set_timer`]).
pub const DEFAULT_OUTPUT: i64 = i64::MIN;

/// A fired timer, handed to [`crate::DoFn::on_timer`].
#[derive(Debug, Clone)]
pub struct Timer<'a> {
    /// Its family.
    pub family: TimerFamily,
    /// Its tag ("" for the default timer).
    pub tag: &'a str,
    /// The key (nested encoding of the input's key coder).
    pub key: &'a [u8],
    /// Its window.
    pub window: Window,
    /// When it was due (ms, in its domain).
    pub fire: i64,
    /// The timestamp its outputs get.
    pub output_timestamp: i64,
    pub(crate) scope: u32,
}

impl Timer<'_> {
    /// The state of the timer's key and window.
    pub fn state(&self) -> State {
        State {
            scope: self.scope,
            timestamp: self.output_timestamp,
        }
    }
}

/// A key and window whose window expired, handed to
/// [`crate::DoFn::on_window_expiration`].
#[derive(Debug, Clone)]
pub struct Expiring<'a> {
    /// The key (nested encoding).
    pub key: &'a [u8],
    /// The window.
    pub window: Window,
    pub(crate) scope: u32,
}

impl Expiring<'_> {
    /// The state of this key and window (cleared after the call).
    pub fn state(&self) -> State {
        State {
            scope: self.scope,
            timestamp: self.window.end.saturating_sub(1),
        }
    }
}
