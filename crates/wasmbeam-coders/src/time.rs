//! Event-time timestamps and Beam's timestamp bounds.
//!
//! Beam encodes an event-time timestamp (milliseconds since the epoch, `i64`)
//! as eight big-endian bytes of `millis - i64::MIN`, which is the same as
//! flipping the sign bit. That makes the byte order of encoded timestamps
//! match their numeric order. Windowed values, timers, interval windows,
//! custom windows and `millis_instant` row fields all use it.

use crate::error::CodecError;
use crate::reader::Reader;

/// Smallest timestamp Beam represents (`BeamConstants.MIN_TIMESTAMP_MILLIS`).
pub const MIN_TIMESTAMP_MILLIS: i64 = wasmbeam_bundle::MIN_TIMESTAMP;

/// Largest timestamp Beam represents (`BeamConstants.MAX_TIMESTAMP_MILLIS`).
pub const MAX_TIMESTAMP_MILLIS: i64 = wasmbeam_bundle::MAX_TIMESTAMP;

/// Maximum timestamp of the global window: one day before
/// [`MAX_TIMESTAMP_MILLIS`] (`BeamConstants.GLOBAL_WINDOW_MAX_TIMESTAMP_MILLIS`).
pub const GLOBAL_WINDOW_MAX_TIMESTAMP: i64 = wasmbeam_bundle::GLOBAL_WINDOW_MAX_TIMESTAMP;

const SIGN_BIT: u64 = 1 << 63;

/// The eight bytes Beam writes for `millis`.
#[inline]
pub fn timestamp_to_bytes(millis: i64) -> [u8; 8] {
    ((millis as u64) ^ SIGN_BIT).to_be_bytes()
}

/// The timestamp encoded by eight bytes (inverse of [`timestamp_to_bytes`]).
#[inline]
pub fn timestamp_from_bytes(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ SIGN_BIT) as i64
}

/// Appends the encoding of `millis`.
#[inline]
pub fn encode_timestamp(millis: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&timestamp_to_bytes(millis));
}

/// Reads an encoded timestamp.
#[inline]
pub fn decode_timestamp(r: &mut Reader<'_>) -> Result<i64, CodecError> {
    Ok(timestamp_from_bytes(r.read_array("timestamp")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_flip() {
        assert_eq!(timestamp_to_bytes(0), [0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            timestamp_to_bytes(1_454_293_425_000),
            [0x80, 0, 0x01, 0x52, 0x9a, 0xa4, 0x9b, 0x68]
        );
        assert_eq!(
            timestamp_to_bytes(-400_000),
            [0x7f, 0xff, 0xff, 0xff, 0xff, 0xf9, 0xe5, 0x80]
        );
        for v in [i64::MIN, -1, 0, 1, i64::MAX, MIN_TIMESTAMP_MILLIS] {
            assert_eq!(timestamp_from_bytes(timestamp_to_bytes(v)), v);
        }
        assert!(timestamp_to_bytes(-1) < timestamp_to_bytes(0));
        assert_eq!(
            GLOBAL_WINDOW_MAX_TIMESTAMP,
            MAX_TIMESTAMP_MILLIS - 86_400_000
        );
    }
}
