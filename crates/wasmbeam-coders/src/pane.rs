//! [`PaneInfo`]: which firing of a window produced an element, and its
//! encoding inside windowed values and timers.
//!
//! The first byte holds an encoding type in its high four bits and the pane's
//! flags in its low four bits (bit 0: first pane, bit 1: last pane, bits 2-3:
//! timing, where early = 0, on time = 1, late = 2, unknown = 3). The encoding
//! type says what follows:
//!
//! * `0`: nothing; the index and on-time index are both 0 (or, for an early
//!   pane, index 0 and on-time index -1),
//! * `1`: one varint, the index; the on-time index equals it (or is -1 for an
//!   early pane),
//! * `2`: two varints, the index and then the on-time index.
//!
//! Encoding picks the shortest form the way the Beam SDKs do, so encoded
//! panes are byte-identical to theirs.

use crate::error::CodecError;
use crate::reader::Reader;
use crate::varint;

/// When a pane fired relative to the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timing {
    /// Before the watermark passed the end of the window.
    Early,
    /// The pane fired as the watermark passed the end of the window.
    OnTime,
    /// After the watermark passed the end of the window.
    Late,
    /// Timing is not known (for example, no trigger fired).
    Unknown,
}

impl Timing {
    /// The two-bit code Beam uses for this timing.
    pub fn code(self) -> u8 {
        match self {
            Timing::Early => 0,
            Timing::OnTime => 1,
            Timing::Late => 2,
            Timing::Unknown => 3,
        }
    }

    /// The timing for a two-bit code (only the low two bits are used).
    pub fn from_code(code: u8) -> Timing {
        match code & 3 {
            0 => Timing::Early,
            1 => Timing::OnTime,
            2 => Timing::Late,
            _ => Timing::Unknown,
        }
    }

    /// Beam's name for the timing: `EARLY`, `ON_TIME`, `LATE` or `UNKNOWN`.
    pub fn name(self) -> &'static str {
        match self {
            Timing::Early => "EARLY",
            Timing::OnTime => "ON_TIME",
            Timing::Late => "LATE",
            Timing::Unknown => "UNKNOWN",
        }
    }

    /// Parses [`Timing::name`].
    pub fn from_name(name: &str) -> Option<Timing> {
        Some(match name {
            "EARLY" => Timing::Early,
            "ON_TIME" => Timing::OnTime,
            "LATE" => Timing::Late,
            "UNKNOWN" => Timing::Unknown,
            _ => return None,
        })
    }
}

/// Describes the pane (trigger firing) an element belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaneInfo {
    /// This is the first pane of its window.
    pub is_first: bool,
    /// This is the last pane of its window.
    pub is_last: bool,
    /// When the pane fired relative to the watermark.
    pub timing: Timing,
    /// Index of the pane among all panes of its window (0-based).
    pub index: i64,
    /// Index among the non-early panes, or -1 for early panes.
    pub on_time_index: i64,
}

const ENCODING_FIRST: u8 = 0;
const ENCODING_ONE_INDEX: u8 = 1;
const ENCODING_TWO_INDICES: u8 = 2;

impl PaneInfo {
    /// The pane of an element that was not produced by a trigger firing:
    /// first, last, unknown timing, indices 0. Encodes as the byte `0x0f`.
    pub const NO_FIRING: PaneInfo = PaneInfo {
        is_first: true,
        is_last: true,
        timing: Timing::Unknown,
        index: 0,
        on_time_index: 0,
    };

    /// The pane of `flags` (the low four bits of the first byte, as
    /// [`PaneInfo::flags`] gives them) and its indexes.
    pub fn from_parts(flags: u8, index: i64, on_time_index: i64) -> PaneInfo {
        PaneInfo {
            is_first: flags & 1 != 0,
            is_last: flags & 2 != 0,
            timing: Timing::from_code(flags >> 2),
            index,
            on_time_index,
        }
    }

    /// The low four bits of the first byte: flags and timing.
    pub fn flags(&self) -> u8 {
        u8::from(self.is_first) | (u8::from(self.is_last) << 1) | (self.timing.code() << 2)
    }

    fn encoding(&self) -> u8 {
        if (self.index == 0 && self.on_time_index == 0) || self.timing == Timing::Unknown {
            ENCODING_FIRST
        } else if self.index == self.on_time_index || self.timing == Timing::Early {
            ENCODING_ONE_INDEX
        } else {
            ENCODING_TWO_INDICES
        }
    }

    /// Appends the encoding of this pane.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let encoding = self.encoding();
        out.push((encoding << 4) | self.flags());
        if encoding >= ENCODING_ONE_INDEX {
            varint::encode_i64(self.index, out);
        }
        if encoding == ENCODING_TWO_INDICES {
            varint::encode_i64(self.on_time_index, out);
        }
    }

    /// The encoding of this pane as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3);
        self.encode(&mut out);
        out
    }

    /// Reads an encoded pane.
    pub fn decode(r: &mut Reader<'_>) -> Result<PaneInfo, CodecError> {
        let start = r.offset();
        let first = r.read_u8("pane info")?;
        let flags = first & 0x0f;
        let timing = Timing::from_code(flags >> 2);
        let mut pane = PaneInfo {
            is_first: flags & 1 != 0,
            is_last: flags & 2 != 0,
            timing,
            index: 0,
            on_time_index: if timing == Timing::Early { -1 } else { 0 },
        };
        match first >> 4 {
            ENCODING_FIRST => {}
            ENCODING_ONE_INDEX => {
                pane.index = r.read_varint_i64("pane index")?;
                if timing != Timing::Early {
                    pane.on_time_index = pane.index;
                }
            }
            ENCODING_TWO_INDICES => {
                pane.index = r.read_varint_i64("pane index")?;
                pane.on_time_index = r.read_varint_i64("pane on-time index")?;
            }
            other => {
                return Err(CodecError::decode(
                    start,
                    format!(
                        "pane info byte 0x{first:02x} has encoding type {other}, expected 0, 1 or 2"
                    ),
                ))
            }
        }
        Ok(pane)
    }
}

impl Default for PaneInfo {
    fn default() -> Self {
        PaneInfo::NO_FIRING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bytes() {
        assert_eq!(PaneInfo::NO_FIRING.to_bytes(), [0x0f]);
        let p = PaneInfo {
            is_first: false,
            is_last: true,
            timing: Timing::OnTime,
            index: 30,
            on_time_index: 40,
        };
        assert_eq!(p.to_bytes(), [0x26, 0x1e, 0x28]);
        assert_eq!(
            PaneInfo::decode(&mut Reader::new(&[0x26, 0x1e, 0x28])).unwrap(),
            p
        );
        let early = PaneInfo {
            is_first: false,
            is_last: false,
            timing: Timing::Early,
            index: 3,
            on_time_index: -1,
        };
        assert_eq!(early.to_bytes(), [0x10, 3]);
        assert_eq!(
            PaneInfo::decode(&mut Reader::new(&[0x10, 3])).unwrap(),
            early
        );
        let e = PaneInfo::decode(&mut Reader::new(&[0x3f])).unwrap_err();
        assert_eq!(e.offset, 0);
    }
}
