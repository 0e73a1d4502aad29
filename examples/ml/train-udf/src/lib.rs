//! Linear regression training as a CombineFn over sufficient statistics.
//! Inputs are rows `x1,x2,y` as 3 big-endian f64 (`bytes` coder); the
//! accumulator holds XᵀX and Xᵀy for x = (1, x1, x2); the output is the
//! least-squares coefficients (intercept, w1, w2) as 3 big-endian f64.
use wasmbeam_guest::{CombineFn, Error};

const D: usize = 3;

#[derive(Clone)]
struct Stats {
    xtx: [[f64; D]; D],
    xty: [f64; D],
    n: f64,
}

fn f64s(b: &[u8], n: usize) -> Result<Vec<f64>, Error> {
    if b.len() != 8 * n {
        return Err(Error::new(format!("expected {n} doubles ({} bytes), got {} bytes", 8 * n, b.len())));
    }
    Ok(b.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().unwrap_or([0; 8]))).collect())
}

struct Train;

impl CombineFn for Train {
    type Accumulator = Stats;

    fn setup(_: &[u8]) -> Result<Self, Error> {
        Ok(Train)
    }
    fn create_accumulator(&self) -> Stats {
        Stats { xtx: [[0.0; D]; D], xty: [0.0; D], n: 0.0 }
    }
    fn add_input(&self, acc: &mut Stats, input: &[u8]) -> Result<(), Error> {
        let r = f64s(input, 3)?;
        let x = [1.0, r[0], r[1]];
        for i in 0..D {
            for j in 0..D {
                acc.xtx[i][j] += x[i] * x[j];
            }
            acc.xty[i] += x[i] * r[2];
        }
        acc.n += 1.0;
        Ok(())
    }
    fn merge(&self, acc: &mut Stats, other: Stats) {
        for i in 0..D {
            for j in 0..D {
                acc.xtx[i][j] += other.xtx[i][j];
            }
            acc.xty[i] += other.xty[i];
        }
        acc.n += other.n;
    }
    fn extract_output(&self, acc: Stats, out: &mut Vec<u8>) -> Result<(), Error> {
        // Gaussian elimination with partial pivoting on [XᵀX | Xᵀy].
        let mut a = acc.xtx;
        let mut b = acc.xty;
        for col in 0..D {
            let p = (col..D).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs())).unwrap_or(col);
            if a[p][col].abs() < 1e-12 {
                return Err(Error::new(format!("cannot fit: the features are collinear or there are too few rows ({})", acc.n)));
            }
            a.swap(col, p);
            b.swap(col, p);
            for r in 0..D {
                if r != col {
                    let f = a[r][col] / a[col][col];
                    for c in 0..D {
                        a[r][c] -= f * a[col][c];
                    }
                    b[r] -= f * b[col];
                }
            }
        }
        for i in 0..D {
            out.extend_from_slice(&(b[i] / a[i][i]).to_be_bytes());
        }
        Ok(())
    }
    fn encode_accumulator(&self, acc: &Stats, out: &mut Vec<u8>) {
        for row in &acc.xtx {
            for v in row {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        for v in &acc.xty {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.extend_from_slice(&acc.n.to_be_bytes());
    }
    fn decode_accumulator(&self, bytes: &[u8]) -> Result<Stats, Error> {
        let v = f64s(bytes, D * D + D + 1)?;
        let mut s = self.create_accumulator();
        for i in 0..D {
            for j in 0..D {
                s.xtx[i][j] = v[i * D + j];
            }
            s.xty[i] = v[D * D + i];
        }
        s.n = v[D * D + D];
        Ok(s)
    }
}

wasmbeam_guest::export_combinefn!(Train);
