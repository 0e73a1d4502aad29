//! The contract's packed arrays (`packed-u32`, `packed-s64`): little-endian
//! numbers back to back in a `list<u8>`.

/// Decode a packed-u32 list (a trailing partial entry is ignored; the host
/// never sends one).
pub(crate) fn u32s(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Decode a packed-s64 list.
pub(crate) fn s64s(b: &[u8]) -> Vec<i64> {
    b.chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

/// Append one u32.
#[inline]
pub(crate) fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Append one s64.
#[inline]
pub(crate) fn push_s64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}
