//! The CombineFn trait and the batched glue behind `export_combinefn!`.

use crate::Error;

/// A Beam CombineFn over encoded inputs and outputs. The accumulator is a
/// Rust value; the SDK encodes it between calls with `encode_accumulator` /
/// `decode_accumulator` because the runner stores and shuffles it as bytes.
pub trait CombineFn: Sized + 'static {
    /// The accumulator.
    type Accumulator;

    /// Build the function from the transform's config bytes.
    fn setup(config: &[u8]) -> Result<Self, Error>;
    /// A fresh, empty accumulator.
    fn create_accumulator(&self) -> Self::Accumulator;
    /// Add one encoded input.
    fn add_input(&self, acc: &mut Self::Accumulator, input: &[u8]) -> Result<(), Error>;
    /// Merge `other` into `acc`.
    fn merge(&self, acc: &mut Self::Accumulator, other: Self::Accumulator);
    /// The encoded output of an accumulator.
    fn extract_output(&self, acc: Self::Accumulator, out: &mut Vec<u8>) -> Result<(), Error>;
    /// Encode an accumulator.
    fn encode_accumulator(&self, acc: &Self::Accumulator, out: &mut Vec<u8>);
    /// Decode an accumulator produced by `encode_accumulator`.
    fn decode_accumulator(&self, bytes: &[u8]) -> Result<Self::Accumulator, Error>;
}

/// The glue called by `export_combinefn!`; not for direct use.
pub mod runtime {
    use std::any::Any;
    use std::cell::RefCell;

    use super::*;
    use crate::bindings::combinefn::wasmbeam::udf::types;

    pub type WitError = types::UdfError;
    pub type WitValues = types::Values;

    thread_local! {
        static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    fn err(e: Error) -> WitError {
        WitError { message: e.message, element: None }
    }

    fn with<T: CombineFn, R>(f: impl FnOnce(&T) -> Result<R, Error>) -> Result<R, WitError> {
        INSTANCE.with(|cell| {
            let slot = cell.borrow();
            match slot.as_ref().and_then(|b| b.downcast_ref::<T>()) {
                Some(t) => f(t).map_err(err),
                None => Err(err(Error::new("the CombineFn was used before setup"))),
            }
        })
    }

    fn get(v: &WitValues, i: usize) -> &[u8] {
        &v.data[v.offsets[i] as usize..v.offsets[i + 1] as usize]
    }

    struct Out(WitValues);
    impl Out {
        fn new() -> Self {
            Out(WitValues { data: Vec::new(), offsets: vec![0] })
        }
        fn end(&mut self) {
            self.0.offsets.push(self.0.data.len() as u32);
        }
    }

    pub fn setup<T: CombineFn>(config: Vec<u8>) -> Result<(), WitError> {
        let t = T::setup(&config).map_err(err)?;
        INSTANCE.with(|cell| *cell.borrow_mut() = Some(Box::new(t)));
        Ok(())
    }

    pub fn create_accumulator<T: CombineFn>() -> Result<Vec<u8>, WitError> {
        with::<T, _>(|t| {
            let mut out = Vec::new();
            t.encode_accumulator(&t.create_accumulator(), &mut out);
            Ok(out)
        })
    }

    pub fn add_inputs<T: CombineFn>(accs: WitValues, inputs: WitValues, group_ends: Vec<u32>) -> Result<WitValues, WitError> {
        with::<T, _>(|t| {
            let mut out = Out::new();
            let mut start = 0usize;
            for (g, &end) in group_ends.iter().enumerate() {
                let mut acc = t.decode_accumulator(get(&accs, g))?;
                for i in start..end as usize {
                    t.add_input(&mut acc, get(&inputs, i))?;
                }
                start = end as usize;
                t.encode_accumulator(&acc, &mut out.0.data);
                out.end();
            }
            Ok(out.0)
        })
    }

    pub fn merge_accumulators<T: CombineFn>(accs: WitValues, group_ends: Vec<u32>) -> Result<WitValues, WitError> {
        with::<T, _>(|t| {
            let mut out = Out::new();
            let mut start = 0usize;
            for &end in &group_ends {
                let mut acc = t.create_accumulator();
                for i in start..end as usize {
                    let other = t.decode_accumulator(get(&accs, i))?;
                    t.merge(&mut acc, other);
                }
                start = end as usize;
                t.encode_accumulator(&acc, &mut out.0.data);
                out.end();
            }
            Ok(out.0)
        })
    }

    pub fn extract_outputs<T: CombineFn>(accs: WitValues) -> Result<WitValues, WitError> {
        let r = with::<T, _>(|t| {
            let mut out = Out::new();
            for i in 0..accs.offsets.len().saturating_sub(1) {
                let acc = t.decode_accumulator(get(&accs, i))?;
                t.extract_output(acc, &mut out.0.data)?;
                out.end();
            }
            Ok(out.0)
        });
        crate::metrics::flush();
        r
    }
}
