//! [`Reader`]: a cursor over a byte slice that never reads out of bounds and
//! reports every failure with its absolute byte offset.

use crate::error::CodecError;
use crate::varint::MAX_VARINT_LEN;

/// A cursor over encoded bytes.
///
/// All reads are bounds-checked and return a [`CodecError`] naming the byte
/// offset and what was expected. Offsets are absolute: a reader made with
/// [`Reader::with_origin`] (or [`Reader::sub_reader`]) adds its origin, so
/// errors inside a length-prefixed sub-slice still point into the original
/// buffer.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    origin: usize,
    /// How many more zero-byte elements the current top-level decode may
    /// produce (see [`crate::MAX_ZERO_SIZE_ELEMENTS`]).
    pub(crate) zero_budget: u64,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`; offsets count from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader::with_origin(buf, 0)
    }

    /// A reader at the start of `buf` whose offsets start at `origin`.
    pub fn with_origin(buf: &'a [u8], origin: usize) -> Self {
        Reader {
            buf,
            pos: 0,
            origin,
            zero_budget: crate::coder::MAX_ZERO_SIZE_ELEMENTS,
        }
    }

    /// Absolute offset of the next byte (origin + position).
    #[inline]
    pub fn offset(&self) -> usize {
        self.origin.saturating_add(self.pos)
    }

    /// Position of the next byte within this reader's slice.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether every byte has been read.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Consumes and returns all unread bytes.
    #[inline]
    pub fn take_rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }

    /// The bytes between position `start` (within this reader's slice, see
    /// [`Reader::position`]) and the current position. Returns an empty slice
    /// if `start` is past the current position.
    pub fn since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or(&[])
    }

    /// A decode error at the current offset.
    pub fn error(&self, message: impl Into<String>) -> CodecError {
        CodecError::decode(self.offset(), message)
    }

    /// Reads one byte.
    #[inline]
    pub fn read_u8(&mut self, what: &str) -> Result<u8, CodecError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.error(format!("expected 1 byte of {what}, 0 remain"))),
        }
    }

    /// Reads `n` bytes. `n` is a `u64` so lengths read from the input can be
    /// passed unchecked.
    #[inline]
    pub fn read_bytes(&mut self, n: u64, what: &str) -> Result<&'a [u8], CodecError> {
        let rem = self.remaining();
        match usize::try_from(n) {
            Ok(n) if n <= rem => {
                let s = &self.buf[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(self.error(format!(
                "expected {n} byte{} of {what}, {rem} remain",
                if n == 1 { "" } else { "s" }
            ))),
        }
    }

    /// Skips `n` bytes.
    #[inline]
    pub fn skip_bytes(&mut self, n: u64, what: &str) -> Result<(), CodecError> {
        self.read_bytes(n, what).map(|_| ())
    }

    /// Reads exactly `N` bytes into an array.
    #[inline]
    pub fn read_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CodecError> {
        let s = self.read_bytes(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads a big-endian `u16`.
    pub fn read_be_u16(&mut self, what: &str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.read_array(what)?))
    }

    /// Reads a big-endian `u32`.
    pub fn read_be_u32(&mut self, what: &str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.read_array(what)?))
    }

    /// Reads a big-endian `u64`.
    pub fn read_be_u64(&mut self, what: &str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.read_array(what)?))
    }

    /// Reads an unsigned varint (at most ten bytes, at most 64 bits).
    #[inline]
    pub fn read_varint_u64(&mut self, what: &str) -> Result<u64, CodecError> {
        // Fast path: one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        let start = self.pos;
        let mut result: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let Some(&b) = self.buf.get(start + i) else {
                return Err(self.varint_error(what, VarintProblem::Truncated(i)));
            };
            if i == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(self.varint_error(what, VarintProblem::TooLong));
            }
            result |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.pos = start + i + 1;
                return Ok(result);
            }
        }
        // Unreachable: the tenth byte is either rejected or final.
        Err(self.varint_error(what, VarintProblem::TooLong))
    }

    #[cold]
    fn varint_error(&self, what: &str, problem: VarintProblem) -> CodecError {
        let label = if what == "varint" {
            String::from("varint")
        } else {
            format!("varint ({what})")
        };
        self.error(match problem {
            VarintProblem::Truncated(0) => format!("expected a {label}, 0 bytes remain"),
            VarintProblem::Truncated(i) => format!(
                "{label} ends after {i} byte{} without a final byte",
                if i == 1 { "" } else { "s" }
            ),
            VarintProblem::TooLong => format!("{label} is longer than 64 bits"),
        })
    }

    /// Reads a signed 64-bit varint (two's complement, as Beam writes it).
    #[inline]
    pub fn read_varint_i64(&mut self, what: &str) -> Result<i64, CodecError> {
        Ok(self.read_varint_u64(what)? as i64)
    }

    /// Reads a varint byte length followed by that many bytes.
    pub fn read_length_prefixed(&mut self, what: &str) -> Result<&'a [u8], CodecError> {
        let len = self.read_varint_u64(what)?;
        self.read_bytes(len, what)
    }

    /// Reads a varint length and returns a reader over that many bytes (whose
    /// offsets stay absolute), advancing past them.
    pub fn sub_reader(&mut self, what: &str) -> Result<Reader<'a>, CodecError> {
        let len = self.read_varint_u64(what)?;
        let origin = self.offset();
        let slice = self.read_bytes(len, what)?;
        let mut sub = Reader::with_origin(slice, origin);
        sub.zero_budget = self.zero_budget;
        Ok(sub)
    }
}

enum VarintProblem {
    Truncated(usize),
    TooLong,
}

/// Reads a varint byte length and that many bytes from the start of `buf`.
/// Returns the payload and the total number of bytes consumed (length
/// prefix included).
pub fn read_length_prefixed(buf: &[u8]) -> Result<(&[u8], usize), CodecError> {
    let mut r = Reader::new(buf);
    let payload = r.read_length_prefixed("length-prefixed data")?;
    Ok((payload, r.position()))
}

/// Appends `bytes` with a varint length prefix.
pub fn write_length_prefixed(bytes: &[u8], out: &mut Vec<u8>) {
    crate::varint::encode_u64(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_offsets() {
        let buf = [0u8, 1, 2, 0x05, b'a', b'b'];
        let mut r = Reader::new(&buf);
        r.read_bytes(3, "header").unwrap();
        let e = r.read_length_prefixed("string_utf8 data").unwrap_err();
        assert_eq!(
            e.to_string(),
            "byte 4: expected 5 bytes of string_utf8 data, 2 remain"
        );
    }

    #[test]
    fn sub_reader_offsets_are_absolute() {
        let buf = [9u8, 2, 7, 8, 1];
        let mut r = Reader::new(&buf);
        r.read_u8("x").unwrap();
        let mut sub = r.sub_reader("inner").unwrap();
        assert_eq!(sub.offset(), 2);
        sub.read_bytes(2, "inner").unwrap();
        let e = sub.read_u8("more").unwrap_err();
        assert_eq!(e.offset, 4);
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn huge_lengths_are_errors() {
        let mut buf = Vec::new();
        crate::varint::encode_u64(u64::MAX, &mut buf);
        let e = read_length_prefixed(&buf).unwrap_err();
        assert!(e.message.contains("0 remain"), "{e}");
    }

    #[test]
    fn length_prefixed_helpers() {
        let mut out = Vec::new();
        write_length_prefixed(b"abc", &mut out);
        assert_eq!(out, b"\x03abc");
        assert_eq!(read_length_prefixed(&out).unwrap(), (&b"abc"[..], 4));
    }
}
