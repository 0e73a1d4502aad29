//! Base-128 varints, as Beam's `VarIntCoder` writes them (an `i64` as its
//! two's-complement `u64`), for the few payloads this crate reads itself.

/// The varint at `*pos` in `b`, advancing `pos`; `None` when truncated.
pub(crate) fn read(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Append `v` as a varint.
pub(crate) fn write(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
