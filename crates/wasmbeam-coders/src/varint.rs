//! Beam's variable-length integers (`beam:coder:varint:v1`).
//!
//! A varint stores an unsigned 64-bit integer seven bits at a time, least
//! significant group first; every byte except the last has its high bit set.
//! Signed 64-bit values are stored as their two's-complement bit pattern (no
//! zig-zag), so any negative `i64` takes the full ten bytes.
//!
//! Beam's 32-bit variant (Java `VarIntCoder`, Python `VarInt32Coder`, used for
//! `INT32` row fields and decimal scales) stores the `u32` bit pattern, so a
//! negative `i32` takes five bytes. [`decode_i32_from`] also accepts the
//! sign-extended ten-byte form some writers produce.

use crate::error::CodecError;
use crate::reader::Reader;

/// The longest valid varint, in bytes.
pub const MAX_VARINT_LEN: usize = 10;

/// Appends `v` as a varint.
#[inline]
pub fn encode_u64(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a signed 64-bit value as the varint of its two's-complement bits.
#[inline]
pub fn encode_i64(v: i64, out: &mut Vec<u8>) {
    encode_u64(v as u64, out)
}

/// Appends a signed 32-bit value the way Beam's 32-bit varint coders do: the
/// varint of its `u32` bit pattern (five bytes when negative).
#[inline]
pub fn encode_i32(v: i32, out: &mut Vec<u8>) {
    encode_u64(u64::from(v as u32), out)
}

/// How many bytes [`encode_u64`] writes for `v`.
#[inline]
pub fn encoded_len_u64(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// How many bytes [`encode_i64`] writes for `v`.
#[inline]
pub fn encoded_len_i64(v: i64) -> usize {
    encoded_len_u64(v as u64)
}

/// Decodes a varint from the start of `buf`; returns it and the number of
/// bytes it took. Error offsets are relative to `buf`.
pub fn decode_u64(buf: &[u8]) -> Result<(u64, usize), CodecError> {
    let mut r = Reader::new(buf);
    let v = r.read_varint_u64("varint")?;
    Ok((v, r.position()))
}

/// Decodes a signed 64-bit varint from the start of `buf`; returns it and the
/// number of bytes it took.
pub fn decode_i64(buf: &[u8]) -> Result<(i64, usize), CodecError> {
    let (v, n) = decode_u64(buf)?;
    Ok((v as i64, n))
}

/// Reads a 32-bit varint: accepts both the five-byte `u32` form and the
/// sign-extended ten-byte form, and rejects values outside the `i32` range.
pub fn decode_i32_from(r: &mut Reader<'_>, what: &str) -> Result<i32, CodecError> {
    let start = r.offset();
    let v = r.read_varint_u64(what)?;
    if let Ok(u) = u32::try_from(v) {
        return Ok(u as i32);
    }
    i32::try_from(v as i64).map_err(|_| {
        CodecError::decode(start, format!("{what} varint {v} does not fit in 32 bits"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_i64(v, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(200), [0xc8, 0x01]);
        assert_eq!(enc(9001), [0xa9, 0x46]);
        assert_eq!(
            enc(-1),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        let mut out = Vec::new();
        encode_i32(-1, &mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    }

    #[test]
    fn lengths() {
        for v in [0i64, 1, 127, 128, 16383, 16384, i64::MAX, -1, i64::MIN] {
            assert_eq!(encoded_len_i64(v), enc(v).len(), "{v}");
        }
    }

    #[test]
    fn decode_round_trip_and_errors() {
        for v in [0i64, 5, 300, -1, i64::MIN, i64::MAX] {
            let b = enc(v);
            assert_eq!(decode_i64(&b).unwrap(), (v, b.len()));
        }
        let e = decode_u64(&[0x80, 0x80]).unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.message.contains("ends"), "{e}");
        let too_long = [0xff; 11];
        assert!(decode_u64(&too_long).is_err());
        // Tenth byte may only carry the top bit.
        let mut over = vec![0xff; 9];
        over.push(0x02);
        assert!(decode_u64(&over).is_err());
        assert!(decode_u64(&[]).is_err());
    }

    #[test]
    fn i32_forms() {
        let five = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(decode_i32_from(&mut Reader::new(&five), "x").unwrap(), -1);
        let ten = enc(-1);
        assert_eq!(decode_i32_from(&mut Reader::new(&ten), "x").unwrap(), -1);
        let big = enc(1 << 40);
        assert!(decode_i32_from(&mut Reader::new(&big), "x").is_err());
    }
}
