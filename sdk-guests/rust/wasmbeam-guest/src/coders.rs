//! Typed helpers for the common Beam coders, so UDF authors work with Rust
//! types instead of bytes: bytes, string_utf8, varint, double, kv, iterable.
//!
//! Beam encodes a value differently in the *outer* context (the whole
//! buffer is the value) and the *nested* context (inside a kv or iterable,
//! where variable-length values carry a varint length prefix). Element values
//! handed to a DoFn are in the outer context.
//!
//! ```ignore
//! use wasmbeam_guest::coders::{Coder, Kv, Utf8, VarInt};
//! let kv = Kv(Utf8, VarInt);
//! let mut buf = Vec::new();
//! kv.encode_outer(&("word".to_string(), 3), &mut buf);
//! assert_eq!(kv.decode_outer(&buf).unwrap(), ("word".to_string(), 3));
//! ```

/// A value did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was expected.
    pub expected: &'static str,
    /// Byte offset into the value where decoding failed.
    pub offset: usize,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot decode {} at byte {}", self.expected, self.offset)
    }
}

/// A cursor over encoded bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Read from the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes left.
    pub fn remaining(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Current offset.
    pub fn offset(&self) -> usize {
        self.pos
    }
    fn fail(&self, expected: &'static str) -> DecodeError {
        DecodeError { expected, offset: self.pos }
    }
    /// Take `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.pos < n {
            return Err(self.fail(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    /// Take everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    /// Read a Beam varint (unsigned LEB128, up to 64 bits).
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(|| self.fail("varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.fail("varint of at most 10 bytes"))
    }
}

/// Append a Beam varint.
pub fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A Beam coder for Rust type `Self::Value`.
pub trait Coder {
    /// The Rust type.
    type Value;
    /// Encode in the nested context.
    fn encode_nested(&self, v: &Self::Value, out: &mut Vec<u8>);
    /// Decode in the nested context.
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<Self::Value, DecodeError>;
    /// Encode in the outer context (default: same as nested).
    fn encode_outer(&self, v: &Self::Value, out: &mut Vec<u8>) {
        self.encode_nested(v, out)
    }
    /// Decode a whole buffer in the outer context.
    fn decode_outer(&self, buf: &[u8]) -> Result<Self::Value, DecodeError> {
        let mut r = Reader::new(buf);
        let v = self.decode_outer_from(&mut r)?;
        if !r.remaining().is_empty() {
            return Err(r.fail("end of value (trailing bytes)"));
        }
        Ok(v)
    }
    /// Decode in the outer context from a reader (consumes the rest).
    fn decode_outer_from(&self, r: &mut Reader<'_>) -> Result<Self::Value, DecodeError> {
        self.decode_nested(r)
    }
}

/// `beam:coder:bytes:v1` as `Vec<u8>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bytes;
/// `beam:coder:string_utf8:v1` as `String`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;
/// `beam:coder:varint:v1` as `i64`.
#[derive(Debug, Clone, Copy, Default)]
pub struct VarInt;
/// `beam:coder:double:v1` as `f64` (big-endian IEEE 754).
#[derive(Debug, Clone, Copy, Default)]
pub struct Double;
/// `beam:coder:kv:v1` of two coders, as a tuple.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv<K, V>(pub K, pub V);
/// `beam:coder:iterable:v1` of a coder, as a `Vec`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iterable<C>(pub C);

impl Coder for Bytes {
    type Value = Vec<u8>;
    fn encode_nested(&self, v: &Vec<u8>, out: &mut Vec<u8>) {
        write_varint(v.len() as u64, out);
        out.extend_from_slice(v);
    }
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
        let n = r.varint()?;
        let n = usize::try_from(n).map_err(|_| r.fail("bytes length"))?;
        Ok(r.take(n, "bytes")?.to_vec())
    }
    fn encode_outer(&self, v: &Vec<u8>, out: &mut Vec<u8>) {
        out.extend_from_slice(v);
    }
    fn decode_outer_from(&self, r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
        Ok(r.rest().to_vec())
    }
}

impl Coder for Utf8 {
    type Value = String;
    fn encode_nested(&self, v: &String, out: &mut Vec<u8>) {
        write_varint(v.len() as u64, out);
        out.extend_from_slice(v.as_bytes());
    }
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let at = r.offset();
        let n = r.varint()?;
        let n = usize::try_from(n).map_err(|_| r.fail("string length"))?;
        let b = r.take(n, "UTF-8 string bytes")?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError { expected: "valid UTF-8", offset: at })
    }
    fn encode_outer(&self, v: &String, out: &mut Vec<u8>) {
        out.extend_from_slice(v.as_bytes());
    }
    fn decode_outer_from(&self, r: &mut Reader<'_>) -> Result<String, DecodeError> {
        let at = r.offset();
        String::from_utf8(r.rest().to_vec()).map_err(|_| DecodeError { expected: "valid UTF-8", offset: at })
    }
}

impl Coder for VarInt {
    type Value = i64;
    fn encode_nested(&self, v: &i64, out: &mut Vec<u8>) {
        write_varint(*v as u64, out);
    }
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<i64, DecodeError> {
        Ok(r.varint()? as i64)
    }
}

impl Coder for Double {
    type Value = f64;
    fn encode_nested(&self, v: &f64, out: &mut Vec<u8>) {
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<f64, DecodeError> {
        let b = r.take(8, "8-byte double")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_bits(u64::from_be_bytes(a)))
    }
}

impl<K: Coder, V: Coder> Coder for Kv<K, V> {
    type Value = (K::Value, V::Value);
    fn encode_nested(&self, v: &Self::Value, out: &mut Vec<u8>) {
        self.0.encode_nested(&v.0, out);
        self.1.encode_nested(&v.1, out);
    }
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<Self::Value, DecodeError> {
        Ok((self.0.decode_nested(r)?, self.1.decode_nested(r)?))
    }
    fn encode_outer(&self, v: &Self::Value, out: &mut Vec<u8>) {
        self.0.encode_nested(&v.0, out);
        self.1.encode_outer(&v.1, out);
    }
    fn decode_outer_from(&self, r: &mut Reader<'_>) -> Result<Self::Value, DecodeError> {
        Ok((self.0.decode_nested(r)?, self.1.decode_outer_from(r)?))
    }
}

impl<C: Coder> Coder for Iterable<C> {
    type Value = Vec<C::Value>;
    fn encode_nested(&self, v: &Self::Value, out: &mut Vec<u8>) {
        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
        for x in v {
            self.0.encode_nested(x, out);
        }
    }
    fn decode_nested(&self, r: &mut Reader<'_>) -> Result<Self::Value, DecodeError> {
        let b = r.take(4, "iterable element count")?;
        let n = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let mut v = Vec::new();
        if n >= 0 {
            for _ in 0..n {
                v.push(self.0.decode_nested(r)?);
            }
        } else {
            // Chunked form: varint chunk sizes, ended by 0.
            loop {
                let chunk = r.varint()?;
                if chunk == 0 {
                    break;
                }
                for _ in 0..chunk {
                    v.push(self.0.decode_nested(r)?);
                }
            }
        }
        Ok(v)
    }
}

/// Split an outer-context `kv` whose key uses `key` into (key, value bytes)
/// without decoding the value.
pub fn split_kv<'a, K: Coder>(key: &K, buf: &'a [u8]) -> Result<(K::Value, &'a [u8]), DecodeError> {
    let mut r = Reader::new(buf);
    let k = key.decode_nested(&mut r)?;
    Ok((k, r.rest()))
}
