//! A test CombineFn: sum and count of varint inputs; output is "sum/count"
//! as UTF-8 (config "mean" outputs the mean as a double instead).
use wasmbeam_guest::coders::{Coder, Double, Reader, VarInt};
use wasmbeam_guest::{CombineFn, Error};

struct Sum {
    mean: bool,
}

impl CombineFn for Sum {
    type Accumulator = (i64, i64);
    fn setup(config: &[u8]) -> Result<Self, Error> {
        Ok(Sum { mean: config == b"mean" })
    }
    fn create_accumulator(&self) -> (i64, i64) {
        (0, 0)
    }
    fn add_input(&self, acc: &mut (i64, i64), input: &[u8]) -> Result<(), Error> {
        acc.0 += VarInt.decode_outer(input)?;
        acc.1 += 1;
        Ok(())
    }
    fn merge(&self, acc: &mut (i64, i64), other: (i64, i64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn extract_output(&self, acc: (i64, i64), out: &mut Vec<u8>) -> Result<(), Error> {
        if self.mean {
            Double.encode_outer(&(acc.0 as f64 / acc.1.max(1) as f64), out);
        } else {
            out.extend_from_slice(format!("{}/{}", acc.0, acc.1).as_bytes());
        }
        Ok(())
    }
    fn encode_accumulator(&self, acc: &(i64, i64), out: &mut Vec<u8>) {
        VarInt.encode_nested(&acc.0, out);
        VarInt.encode_nested(&acc.1, out);
    }
    fn decode_accumulator(&self, bytes: &[u8]) -> Result<(i64, i64), Error> {
        let mut r = Reader::new(bytes);
        Ok((VarInt.decode_nested(&mut r)?, VarInt.decode_nested(&mut r)?))
    }
}

wasmbeam_guest::export_combinefn!(Sum);
