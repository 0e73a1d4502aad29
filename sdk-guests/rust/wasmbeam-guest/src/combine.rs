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
    use crate::packed;

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

    /// A `values` record with its offsets decoded.
    struct In {
        data: Vec<u8>,
        offsets: Vec<u32>,
    }
    impl In {
        fn new(v: WitValues) -> Self {
            In { offsets: packed::u32s(&v.offsets), data: v.data }
        }
        fn len(&self) -> usize {
            self.offsets.len().saturating_sub(1)
        }
        fn get(&self, i: usize) -> &[u8] {
            &self.data[self.offsets[i] as usize..self.offsets[i + 1] as usize]
        }
    }

    struct Out(WitValues);
    impl Out {
        fn new() -> Self {
            let mut offsets = Vec::new();
            packed::push_u32(&mut offsets, 0);
            Out(WitValues { data: Vec::new(), offsets })
        }
        fn end(&mut self) {
            packed::push_u32(&mut self.0.offsets, self.0.data.len() as u32);
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

    pub fn add_inputs<T: CombineFn>(accs: WitValues, inputs: WitValues, group_ends: Vec<u8>) -> Result<WitValues, WitError> {
        let (accs, inputs, group_ends) = (In::new(accs), In::new(inputs), packed::u32s(&group_ends));
        with::<T, _>(|t| {
            let mut out = Out::new();
            let mut start = 0usize;
            for (g, &end) in group_ends.iter().enumerate() {
                let mut acc = t.decode_accumulator(accs.get(g))?;
                for i in start..end as usize {
                    t.add_input(&mut acc, inputs.get(i))?;
                }
                start = end as usize;
                t.encode_accumulator(&acc, &mut out.0.data);
                out.end();
            }
            Ok(out.0)
        })
    }

    pub fn merge_accumulators<T: CombineFn>(accs: WitValues, group_ends: Vec<u8>) -> Result<WitValues, WitError> {
        let (accs, group_ends) = (In::new(accs), packed::u32s(&group_ends));
        with::<T, _>(|t| {
            let mut out = Out::new();
            let mut start = 0usize;
            for &end in &group_ends {
                let mut acc = t.create_accumulator();
                for i in start..end as usize {
                    let other = t.decode_accumulator(accs.get(i))?;
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
        let accs = In::new(accs);
        let r = with::<T, _>(|t| {
            let mut out = Out::new();
            for i in 0..accs.len() {
                let acc = t.decode_accumulator(accs.get(i))?;
                t.extract_output(acc, &mut out.0.data)?;
                out.end();
            }
            Ok(out.0)
        });
        crate::metrics::flush();
        r
    }
}
