//! The contents of one state cell, and the runner-side combines.

use std::collections::BTreeMap;

use wasmbeam_bundle::Values;

use super::BuiltinCombine;

/// One cell's contents.
#[derive(Debug, Clone)]
pub(super) enum Cell {
    Empty,
    Value(Vec<u8>),
    Bag(Vec<Vec<u8>>),
    Int(i64, u64),
    Double(f64, u64),
    Map(BTreeMap<Vec<u8>, Vec<u8>>),
    Ordered(BTreeMap<i64, Vec<Vec<u8>>>),
}

pub(super) fn push_ordered<'a>(
    it: impl Iterator<Item = (&'a i64, &'a Vec<Vec<u8>>)>,
    out: &mut Values,
) {
    for (t, vs) in it {
        for v in vs {
            out.push(&t.to_le_bytes());
            out.push(v);
        }
    }
}

pub(super) fn cell_bytes(c: &Cell) -> usize {
    match c {
        Cell::Empty | Cell::Int(..) | Cell::Double(..) => 0,
        Cell::Value(v) => v.len(),
        Cell::Bag(b) => b.iter().map(|v| v.len() + 24).sum(),
        Cell::Map(m) => m.iter().map(|(k, v)| k.len() + v.len() + 48).sum(),
        Cell::Ordered(o) => o.values().flatten().map(|v| v.len() + 48).sum(),
    }
}

/// Fold one encoded input into a combining cell.
pub(super) fn combine(c: &mut Cell, f: BuiltinCombine, value: &[u8]) -> Result<(), String> {
    use BuiltinCombine::*;
    match f {
        Count => {
            let n = match c {
                Cell::Int(_, n) => *n,
                _ => 0,
            };
            *c = Cell::Int(0, n + 1);
        }
        SumInt64 | MinInt64 | MaxInt64 => {
            let x = read_varint(value)?;
            *c = match *c {
                Cell::Int(v, n) => Cell::Int(
                    match f {
                        SumInt64 => v.wrapping_add(x),
                        MinInt64 => v.min(x),
                        _ => v.max(x),
                    },
                    n + 1,
                ),
                _ => Cell::Int(x, 1),
            };
        }
        SumDouble | MinDouble | MaxDouble => {
            let b: [u8; 8] = value
                .try_into()
                .map_err(|_| format!("a double is 8 bytes, got {}", value.len()))?;
            let x = f64::from_be_bytes(b);
            *c = match *c {
                Cell::Double(v, n) => Cell::Double(
                    match f {
                        SumDouble => v + x,
                        MinDouble => v.min(x),
                        _ => v.max(x),
                    },
                    n + 1,
                ),
                _ => Cell::Double(x, 1),
            };
        }
    }
    Ok(())
}

/// Beam's varint encoding of an int64 (two's complement as u64, 7 bits a byte).
pub(super) fn varint(v: i64) -> Vec<u8> {
    let mut u = v as u64;
    let mut out = Vec::with_capacity(10);
    loop {
        let b = (u & 0x7f) as u8;
        u >>= 7;
        if u == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

pub(super) fn read_varint(b: &[u8]) -> Result<i64, String> {
    let mut u: u64 = 0;
    for (i, &x) in b.iter().enumerate().take(10) {
        u |= ((x & 0x7f) as u64) << (7 * i);
        if x & 0x80 == 0 {
            if i + 1 != b.len() {
                return Err(format!("{} bytes after a varint", b.len() - i - 1));
            }
            return Ok(u as i64);
        }
    }
    Err("not a varint int64 (Beam's VarIntCoder)".into())
}
