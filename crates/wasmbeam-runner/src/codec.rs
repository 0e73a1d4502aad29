//! Grouping needs to split encoded KVs and re-encode values for iterables;
//! this adapts a coder tree from `wasmbeam-coders` to the engine's `KvCodec`.

use wasmbeam_coders::{Coder, Context, Reader};
use wasmbeam_engine::{KvCodec, OpResult};

/// A `KvCodec` for a PCollection whose element coder is `kv<K, V>`.
pub struct CoderKv {
    key: Coder,
    value: Coder,
}

impl CoderKv {
    /// Fails unless `coder` is a KV coder.
    pub fn new(coder: Coder) -> Result<Self, String> {
        match coder {
            Coder::Kv(k, v) => Ok(CoderKv { key: *k, value: *v }),
            other => Err(format!(
                "grouping needs a kv coder, but the input's coder is {}",
                other.urn()
            )),
        }
    }
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append the nested encoding of a value given in the outer context.
pub fn outer_to_nested(coder: &Coder, outer: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    match coder {
        Coder::Bytes | Coder::StringUtf8 | Coder::Opaque { .. } => {
            put_varint(outer.len() as u64, out);
            out.extend_from_slice(outer);
        }
        Coder::VarInt
        | Coder::Double
        | Coder::Bool
        | Coder::GlobalWindow
        | Coder::IntervalWindow
        | Coder::LengthPrefix(_) => out.extend_from_slice(outer),
        Coder::Kv(k, v) => {
            let mut r = Reader::new(outer);
            k.skip(&mut r, Context::Nested).map_err(|e| e.to_string())?;
            let at = r.position();
            out.extend_from_slice(&outer[..at]);
            outer_to_nested(v, &outer[at..], out)?;
        }
        other => {
            let v = other
                .decode(outer, Context::Outer)
                .map_err(|e| e.to_string())?;
            other
                .encode(&v, Context::Nested, out)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

impl KvCodec for CoderKv {
    fn split<'a>(&self, kv: &'a [u8]) -> OpResult<(&'a [u8], &'a [u8])> {
        let mut r = Reader::new(kv);
        self.key
            .skip(&mut r, Context::Nested)
            .map_err(|e| format!("the key does not decode as {}: {e}", self.key.urn()))?;
        let at = r.position();
        Ok((&kv[..at], &kv[at..]))
    }

    fn value_to_nested(&self, outer: &[u8], out: &mut Vec<u8>) -> OpResult<()> {
        Ok(outer_to_nested(&self.value, outer, out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_kv_and_nests_values() {
        let c = CoderKv::new(Coder::Kv(
            Box::new(Coder::StringUtf8),
            Box::new(Coder::StringUtf8),
        ))
        .unwrap();
        let (k, v) = c.split(b"\x03abcxyz").unwrap();
        assert_eq!((k, v), (&b"\x03abc"[..], &b"xyz"[..]));
        let mut out = Vec::new();
        c.value_to_nested(v, &mut out).unwrap();
        assert_eq!(out, b"\x03xyz");
        assert!(c
            .split(b"\x09ab")
            .unwrap_err()
            .message()
            .contains("string_utf8"));
        assert!(CoderKv::new(Coder::Bytes).is_err());
    }
}
