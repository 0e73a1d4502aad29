//! Combine functions built into the runner (`wasmbeam:combinefn:builtin:v1`):
//! count, sums, mean, min and max over Beam `varint` or `double` values.
//! Accumulators are fixed-width big-endian bytes, private to the runner.

use wasmbeam_engine::{CombineExec, OpResult, Values};

/// A built-in combine function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Number of inputs (any coder) → varint.
    Count,
    /// Sum of varint inputs → varint.
    SumInt64,
    /// Sum of double inputs → double.
    SumDouble,
    /// Mean of double inputs → double.
    Mean,
    /// Minimum of varint inputs → varint.
    MinInt64,
    /// Maximum of varint inputs → varint.
    MaxInt64,
    /// Minimum of double inputs → double.
    MinDouble,
    /// Maximum of double inputs → double.
    MaxDouble,
}

impl Builtin {
    /// Look up by name; the error lists the known names.
    pub fn from_name(name: &str) -> Result<Builtin, String> {
        Ok(match name {
            "count" => Builtin::Count,
            "sum_int64" | "sum" => Builtin::SumInt64,
            "sum_double" => Builtin::SumDouble,
            "mean" => Builtin::Mean,
            "min_int64" | "min" => Builtin::MinInt64,
            "max_int64" | "max" => Builtin::MaxInt64,
            "min_double" => Builtin::MinDouble,
            "max_double" => Builtin::MaxDouble,
            other => {
                return Err(format!(
                    "unknown built-in combine {other:?}; known: count, sum_int64, sum_double, mean, min_int64, max_int64, min_double, max_double"
                ))
            }
        })
    }

    /// Coder URN of the output.
    pub fn output_coder_urn(&self) -> &'static str {
        match self {
            Builtin::Count | Builtin::SumInt64 | Builtin::MinInt64 | Builtin::MaxInt64 => {
                "beam:coder:varint:v1"
            }
            _ => "beam:coder:double:v1",
        }
    }
}

fn varint(b: &[u8]) -> Result<i64, String> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if i + 1 != b.len() {
                return Err(format!(
                    "varint value has {} trailing bytes",
                    b.len() - i - 1
                ));
            }
            return Ok(v as i64);
        }
    }
    Err("truncated varint value".into())
}

fn put_varint(v: i64, out: &mut Vec<u8>) {
    let mut v = v as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn double(b: &[u8]) -> Result<f64, String> {
    let a: [u8; 8] = b
        .try_into()
        .map_err(|_| format!("a double value must be 8 bytes, got {}", b.len()))?;
    Ok(f64::from_be_bytes(a))
}

/// Accumulator: (i64 or f64 bits, count), 16 bytes big-endian.
fn acc(b: &[u8]) -> Result<(u64, i64), String> {
    if b.len() != 16 {
        return Err(format!("corrupt accumulator of {} bytes", b.len()));
    }
    let x = u64::from_be_bytes(b[..8].try_into().unwrap_or_default());
    let n = i64::from_be_bytes(b[8..].try_into().unwrap_or_default());
    Ok((x, n))
}

fn put_acc(x: u64, n: i64, out: &mut Values) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&x.to_be_bytes());
    b[8..].copy_from_slice(&n.to_be_bytes());
    out.push(&b);
}

impl Builtin {
    fn identity(&self) -> u64 {
        match self {
            Builtin::MinInt64 => i64::MAX as u64,
            Builtin::MaxInt64 => i64::MIN as u64,
            Builtin::MinDouble => f64::INFINITY.to_bits(),
            Builtin::MaxDouble => f64::NEG_INFINITY.to_bits(),
            Builtin::SumDouble | Builtin::Mean => 0f64.to_bits(),
            _ => 0,
        }
    }

    fn fold(&self, x: u64, input: &[u8]) -> Result<u64, String> {
        Ok(match self {
            Builtin::Count => x,
            Builtin::SumInt64 => (x as i64).wrapping_add(varint(input)?) as u64,
            Builtin::MinInt64 => (x as i64).min(varint(input)?) as u64,
            Builtin::MaxInt64 => (x as i64).max(varint(input)?) as u64,
            Builtin::SumDouble | Builtin::Mean => (f64::from_bits(x) + double(input)?).to_bits(),
            Builtin::MinDouble => f64::from_bits(x).min(double(input)?).to_bits(),
            Builtin::MaxDouble => f64::from_bits(x).max(double(input)?).to_bits(),
        })
    }

    fn join(&self, a: u64, b: u64) -> u64 {
        match self {
            Builtin::Count => 0,
            Builtin::SumInt64 => (a as i64).wrapping_add(b as i64) as u64,
            Builtin::MinInt64 => (a as i64).min(b as i64) as u64,
            Builtin::MaxInt64 => (a as i64).max(b as i64) as u64,
            Builtin::SumDouble | Builtin::Mean => (f64::from_bits(a) + f64::from_bits(b)).to_bits(),
            Builtin::MinDouble => f64::from_bits(a).min(f64::from_bits(b)).to_bits(),
            Builtin::MaxDouble => f64::from_bits(a).max(f64::from_bits(b)).to_bits(),
        }
    }
}

impl CombineExec for Builtin {
    fn create(&self) -> OpResult<Vec<u8>> {
        let mut v = Values::default();
        put_acc(self.identity(), 0, &mut v);
        Ok(v.data)
    }

    fn add_inputs(&self, accs: &Values, inputs: &Values, ends: &[u32]) -> OpResult<Values> {
        let mut out = Values {
            data: Vec::with_capacity(ends.len() * 16),
            offsets: Vec::with_capacity(ends.len() + 1),
        };
        out.offsets.push(0);
        let mut start = 0usize;
        for (g, &end) in ends.iter().enumerate() {
            let (mut x, mut n) = acc(accs.get(g))?;
            for i in start..end as usize {
                x = self
                    .fold(x, inputs.get(i))
                    .map_err(|e| format!("input {i}: {e}"))?;
                n += 1;
            }
            start = end as usize;
            put_acc(x, n, &mut out);
        }
        Ok(out)
    }

    fn merge(&self, accs: &Values, ends: &[u32]) -> OpResult<Values> {
        let mut out = Values::default();
        let mut start = 0usize;
        for &end in ends {
            let (mut x, mut n) = (self.identity(), 0i64);
            for i in start..end as usize {
                let (y, m) = acc(accs.get(i))?;
                x = self.join(x, y);
                n += m;
            }
            start = end as usize;
            put_acc(x, n, &mut out);
        }
        Ok(out)
    }

    fn supports_in_place(&self) -> bool {
        true
    }

    fn add_input_in_place(&self, acc: &mut Vec<u8>, input: &[u8]) -> OpResult<()> {
        let (x, n) = self::acc(acc)?;
        let x = self.fold(x, input)?;
        acc[..8].copy_from_slice(&x.to_be_bytes());
        acc[8..].copy_from_slice(&(n + 1).to_be_bytes());
        Ok(())
    }

    fn extract(&self, accs: &Values) -> OpResult<Values> {
        let mut out = Values::default();
        let mut b = Vec::with_capacity(10);
        for i in 0..accs.len() {
            let (x, n) = acc(accs.get(i))?;
            b.clear();
            match self {
                Builtin::Count => put_varint(n, &mut b),
                Builtin::SumInt64 | Builtin::MinInt64 | Builtin::MaxInt64 => {
                    put_varint(x as i64, &mut b)
                }
                Builtin::Mean => {
                    b.extend_from_slice(&(f64::from_bits(x) / n.max(1) as f64).to_be_bytes())
                }
                _ => b.extend_from_slice(&f64::from_bits(x).to_be_bytes()),
            }
            out.push(&b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_sum_mean_over_groups() {
        let vals = |xs: &[&[u8]]| {
            let mut v = Values::default();
            for x in xs {
                v.push(x);
            }
            v
        };
        let c = Builtin::SumInt64;
        let a0 = c.create().unwrap();
        let accs = c
            .add_inputs(&vals(&[&a0, &a0]), &vals(&[&[1], &[2], &[5]]), &[2, 3])
            .unwrap();
        let merged = c
            .merge(&vals(&[accs.get(0), accs.get(1), accs.get(0)]), &[3])
            .unwrap();
        assert_eq!(c.extract(&merged).unwrap().get(0), &[11]);
        let n = Builtin::Count;
        let accs = n
            .add_inputs(&vals(&[&n.create().unwrap()]), &vals(&[b"x", b"y"]), &[2])
            .unwrap();
        assert_eq!(n.extract(&accs).unwrap().get(0), &[2]);
        let m = Builtin::Mean;
        let accs = m
            .add_inputs(
                &vals(&[&m.create().unwrap()]),
                &vals(&[&1.0f64.to_be_bytes(), &2.0f64.to_be_bytes()]),
                &[2],
            )
            .unwrap();
        assert_eq!(m.extract(&accs).unwrap().get(0), 1.5f64.to_be_bytes());
        assert!(c
            .add_inputs(&vals(&[&a0]), &vals(&[&[0x80]]), &[1])
            .unwrap_err()
            .message()
            .contains("input 0"));
    }
}
