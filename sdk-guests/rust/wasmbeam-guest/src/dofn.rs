//! The DoFn trait and the per-bundle loop behind `export_dofn!`.

use crate::packed;
use crate::Error;

/// An event-time window: `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

/// Beam's minimum timestamp in milliseconds.
pub const MIN_TIMESTAMP_MS: i64 = -9_223_372_036_854_775;

impl Window {
    /// True for Beam's global window.
    pub fn is_global(&self) -> bool {
        self.start == MIN_TIMESTAMP_MS && self.end > 9_223_371_950_454_775
    }
}

/// One input element, borrowed from the bundle's buffers.
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    /// The encoded value (element coder, outer context).
    pub value: &'a [u8],
    /// Event time in milliseconds.
    pub timestamp: i64,
    /// Pane byte: bit 0 first, bit 1 last, bits 2-3 timing.
    pub pane: u8,
    starts: &'a [i64],
    ends: &'a [i64],
    scope: u32,
}

impl<'a> Element<'a> {
    /// The state and timers of this element's key and window (stateful
    /// DoFns only: those whose [`DoFn::describe`] declares them; a stateful
    /// DoFn's elements are each in one window).
    pub fn state(&self) -> crate::State {
        crate::State {
            scope: self.scope,
            timestamp: self.timestamp,
        }
    }

    /// The windows this element is in (at least one).
    pub fn windows(&self) -> impl Iterator<Item = Window> + 'a {
        let (s, e) = (self.starts, self.ends);
        s.iter().zip(e).map(|(&start, &end)| Window { start, end })
    }
}

/// What `setup` receives.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The transform's config bytes from the pipeline.
    pub config: Vec<u8>,
    /// Output tags, main output first.
    pub outputs: Vec<String>,
}

impl Setup {
    /// The config as UTF-8 text.
    pub fn config_str(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.config)
            .map_err(|e| Error::new(format!("config is not UTF-8: {e}")))
    }
    /// The index of an output tag, for [`Emitter::emit_to`].
    pub fn output_index(&self, tag: &str) -> Result<u32, Error> {
        self.outputs
            .iter()
            .position(|t| t == tag)
            .map(|i| i as u32)
            .ok_or_else(|| {
                Error::new(format!(
                    "the transform has no output tagged {tag:?} (outputs: {:?})",
                    self.outputs
                ))
            })
    }
}

/// A side input's elements as delivered before the first bundle.
#[derive(Debug, Clone)]
pub struct SideInput {
    /// The side input's tag.
    pub tag: String,
    /// True for multimap access (values are `kv` encodings), false for iterable.
    pub multimap: bool,
    /// The encoded elements.
    pub values: Vec<Vec<u8>>,
}

/// A Beam DoFn. One value of this type lives in each component instance
/// and sees many bundles.
pub trait DoFn: Sized + 'static {
    /// The state cells and timer families the function uses, given its
    /// config bytes (called before `setup`). The default is a stateless
    /// DoFn.
    fn describe(_config: &[u8]) -> Result<crate::Stateful, Error> {
        Ok(crate::Stateful::new())
    }

    /// Build the function from the transform's configuration.
    fn setup(setup: &Setup) -> Result<Self, Error>;

    /// Receive a side input (before the first bundle). The default refuses.
    fn side_input(&mut self, input: SideInput) -> Result<(), Error> {
        Err(Error::new(format!(
            "this DoFn does not take side inputs (got {:?})",
            input.tag
        )))
    }

    /// Called at the start of each bundle.
    fn start_bundle(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Process one element.
    fn process(&mut self, element: &Element<'_>, out: &mut Emitter<'_>) -> Result<(), Error>;

    /// A timer fired. Outputs go to the timer's window, at its output
    /// timestamp unless emitted with another.
    fn on_timer(&mut self, timer: &crate::Timer<'_>, _out: &mut Emitter<'_>) -> Result<(), Error> {
        Err(Error::new(format!(
            "timer family {} fired, but this DoFn has no on_timer",
            timer.family.0
        )))
    }

    /// A window expired for a key that has state in it (only when
    /// `describe` asked for it): read the state a last time.
    fn on_window_expiration(
        &mut self,
        _expiring: &crate::Expiring<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Called at the end of each bundle; may emit outputs with explicit timestamps.
    fn finish_bundle(&mut self, _out: &mut FinishEmitter<'_>) -> Result<(), Error> {
        Ok(())
    }

    /// Called before the instance is dropped.
    fn teardown(&mut self) {}
}

/// Output buffers of one bundle, already in the contract's packed form.
/// `tags` and `timestamps` stay `None` (sent empty: "all main output",
/// "all inherit") until an output needs them.
#[derive(Default)]
pub(crate) struct OutBuf {
    data: Vec<u8>,
    offsets: Vec<u8>,
    sources: Vec<u8>,
    tags: Option<Vec<u8>>,
    timestamps: Option<Vec<u8>>,
    n: usize,
}

impl OutBuf {
    fn with_capacity(elements: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(4 * (elements + 1));
        packed::push_u32(&mut offsets, 0);
        OutBuf {
            data: Vec::with_capacity(bytes),
            offsets,
            sources: Vec::with_capacity(4 * elements),
            tags: None,
            timestamps: None,
            n: 0,
        }
    }

    #[inline]
    fn push(&mut self, value: &[u8], tag: u32, source: u32, ts: i64) {
        self.data.extend_from_slice(value);
        packed::push_u32(&mut self.offsets, self.data.len() as u32);
        packed::push_u32(&mut self.sources, source);
        if tag != 0 || self.tags.is_some() {
            let n = self.n;
            packed::push_u32(self.tags.get_or_insert_with(|| vec![0; 4 * n]), tag);
        }
        if ts != INHERIT || self.timestamps.is_some() {
            let n = self.n;
            let t = self
                .timestamps
                .get_or_insert_with(|| INHERIT.to_le_bytes().repeat(n));
            packed::push_s64(t, ts);
        }
        self.n += 1;
    }
}

/// Where `process` sends its outputs.
pub struct Emitter<'a> {
    buf: &'a mut OutBuf,
    source: u32,
}

/// "Keep the input element's timestamp."
const INHERIT: i64 = i64::MIN;
/// "No input element" (finish-bundle outputs).
const NO_SOURCE: u32 = u32::MAX;

impl Emitter<'_> {
    /// Emit an encoded value to the main output, with the input's timestamp
    /// and windows.
    #[inline]
    pub fn emit(&mut self, value: &[u8]) {
        self.buf.push(value, 0, self.source, INHERIT);
    }
    /// Emit to the main output with a new timestamp (ms).
    #[inline]
    pub fn emit_with_timestamp(&mut self, value: &[u8], timestamp: i64) {
        self.buf.push(value, 0, self.source, timestamp);
    }
    /// Emit to output `tag` (an index from [`Setup::output_index`]).
    #[inline]
    pub fn emit_to(&mut self, tag: u32, value: &[u8]) {
        self.buf.push(value, tag, self.source, INHERIT);
    }
}

/// Where `finish_bundle` sends its outputs (to the global window).
pub struct FinishEmitter<'a> {
    buf: &'a mut OutBuf,
}

impl FinishEmitter<'_> {
    /// Emit an encoded value to output `tag` at `timestamp` (ms).
    pub fn emit(&mut self, tag: u32, value: &[u8], timestamp: i64) {
        self.buf.push(value, tag, NO_SOURCE, timestamp);
    }
}

/// The glue called by `export_dofn!`; not for direct use.
pub mod runtime {
    use std::any::Any;
    use std::cell::RefCell;

    use super::*;
    use crate::bindings::dofn::wasmbeam::udf::types;

    pub type WitError = types::UdfError;
    pub type WitInputBatch = types::InputBatch;
    pub type WitOutputBatch = types::OutputBatch;
    pub type WitSideInputKind = types::SideInputKind;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    fn err(e: Error, element: Option<u32>) -> WitError {
        WitError {
            message: e.message,
            element,
        }
    }

    fn with<T: DoFn, R>(f: impl FnOnce(&mut T) -> Result<R, WitError>) -> Result<R, WitError> {
        INSTANCE.with(|cell| {
            let mut slot = cell.borrow_mut();
            match slot.as_mut().and_then(|b| b.downcast_mut::<T>()) {
                Some(t) => f(t),
                None => Err(err(Error::new("the DoFn was used before setup"), None)),
            }
        })
    }

    pub fn setup<T: DoFn>(config: Vec<u8>, outputs: Vec<String>) -> Result<(), WitError> {
        let t = T::setup(&Setup { config, outputs }).map_err(|e| err(e, None))?;
        INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(t)));
        Ok(())
    }

    pub fn load_side_input<T: DoFn>(
        tag: String,
        kind: WitSideInputKind,
        batch: WitInputBatch,
    ) -> Result<(), WitError> {
        let (data, offsets) = (&batch.values.data, packed::u32s(&batch.values.offsets));
        let values = offsets
            .windows(2)
            .map(|w| data[w[0] as usize..w[1] as usize].to_vec())
            .collect();
        let multimap = matches!(kind, WitSideInputKind::Multimap);
        with::<T, _>(|t| {
            t.side_input(SideInput {
                tag,
                multimap,
                values,
            })
            .map_err(|e| err(e, None))
        })
    }

    pub fn process_bundle<T: DoFn>(batch: WitInputBatch) -> Result<WitOutputBatch, WitError> {
        with::<T, _>(|t| {
            t.start_bundle().map_err(|e| err(e, None))?;
            let times = packed::s64s(&batch.timestamps);
            let n = times.len();
            let mut buf = OutBuf::with_capacity(n, batch.values.data.len());
            let (data, offs) = (&batch.values.data, packed::u32s(&batch.values.offsets));
            let wo = packed::u32s(&batch.window_offsets);
            let (starts, ends) = (
                packed::s64s(&batch.window_starts),
                packed::s64s(&batch.window_ends),
            );
            for i in 0..n {
                let (ws, we) = (wo[i] as usize, wo[i + 1] as usize);
                let element = Element {
                    value: &data[offs[i] as usize..offs[i + 1] as usize],
                    timestamp: times[i],
                    pane: batch.panes[i],
                    starts: &starts[ws..we],
                    ends: &ends[ws..we],
                    scope: i as u32,
                };
                let mut out = Emitter {
                    buf: &mut buf,
                    source: i as u32,
                };
                t.process(&element, &mut out)
                    .map_err(|e| err(e, Some(i as u32)))?;
            }
            Ok(into_wit(buf))
        })
    }

    pub type WitDofnInfo = types::DofnInfo;
    pub type WitTimerBatch = types::TimerBatch;

    pub fn describe<T: DoFn>(config: Vec<u8>) -> Result<WitDofnInfo, WitError> {
        Ok(T::describe(&config).map_err(|e| err(e, None))?.into_wit())
    }

    fn values(v: &types::Values) -> impl Iterator<Item = &[u8]> + '_ {
        let o = packed::u32s(&v.offsets);
        (0..o.len().saturating_sub(1)).map(move |i| &v.data[o[i] as usize..o[i + 1] as usize])
    }

    fn first_windows(b: &WitInputBatch) -> Vec<Window> {
        let wo = packed::u32s(&b.window_offsets);
        let (s, e) = (packed::s64s(&b.window_starts), packed::s64s(&b.window_ends));
        (0..wo.len().saturating_sub(1))
            .map(|i| Window {
                start: s[wo[i] as usize],
                end: e[wo[i] as usize],
            })
            .collect()
    }

    pub fn on_timer<T: DoFn>(batch: WitTimerBatch) -> Result<WitOutputBatch, WitError> {
        with::<T, _>(|t| {
            let b = &batch.timers;
            let keys: Vec<&[u8]> = values(&b.values).collect();
            let tags: Vec<&[u8]> = values(&batch.tags).collect();
            let (outs, fams, fires) = (
                packed::s64s(&b.timestamps),
                packed::u32s(&batch.families),
                packed::s64s(&batch.fire_times),
            );
            let windows = first_windows(b);
            let mut buf = OutBuf::with_capacity(keys.len(), 0);
            for i in 0..keys.len() {
                let timer = crate::Timer {
                    family: crate::TimerFamily(fams[i]),
                    tag: std::str::from_utf8(tags[i]).unwrap_or(""),
                    key: keys[i],
                    window: windows[i],
                    fire: fires[i],
                    output_timestamp: outs[i],
                    scope: i as u32,
                };
                let mut out = Emitter {
                    buf: &mut buf,
                    source: i as u32,
                };
                t.on_timer(&timer, &mut out)
                    .map_err(|e| err(e, Some(i as u32)))?;
            }
            Ok(into_wit(buf))
        })
    }

    pub fn on_window_expiration<T: DoFn>(b: WitInputBatch) -> Result<WitOutputBatch, WitError> {
        with::<T, _>(|t| {
            let keys: Vec<&[u8]> = values(&b.values).collect();
            let windows = first_windows(&b);
            let mut buf = OutBuf::with_capacity(keys.len(), 0);
            for i in 0..keys.len() {
                let e = crate::Expiring {
                    key: keys[i],
                    window: windows[i],
                    scope: i as u32,
                };
                let mut out = Emitter {
                    buf: &mut buf,
                    source: i as u32,
                };
                t.on_window_expiration(&e, &mut out)
                    .map_err(|e| err(e, Some(i as u32)))?;
            }
            Ok(into_wit(buf))
        })
    }

    pub fn finish_bundle<T: DoFn>() -> Result<WitOutputBatch, WitError> {
        let r = with::<T, _>(|t| {
            let mut buf = OutBuf::with_capacity(0, 0);
            t.finish_bundle(&mut FinishEmitter { buf: &mut buf })
                .map_err(|e| err(e, None))?;
            Ok(into_wit(buf))
        });
        crate::metrics::flush();
        r
    }

    pub fn teardown<T: DoFn>() {
        let _ = with::<T, _>(|t| {
            t.teardown();
            Ok(())
        });
        INSTANCE.with(|cell| *cell.borrow_mut() = None);
    }

    fn into_wit(b: OutBuf) -> WitOutputBatch {
        WitOutputBatch {
            values: types::Values {
                data: b.data,
                offsets: b.offsets,
            },
            tags: b.tags.unwrap_or_default(),
            sources: b.sources,
            timestamps: b.timestamps.unwrap_or_default(),
        }
    }
}
