//! The ML example's DoFns, by config:
//! * `parse`: CSV `x1,x2,y` → kv("rows", 3 big-endian f64); the header is skipped;
//! * `score`: with side input `model` (the trained coefficients), each row →
//!   main output kv("rmse", squared error as double), and output
//!   `predictions`: the line `x1,x2,y,prediction`;
//! * `rmse`: kv(_, mean squared error) → the line `rmse: R`.
use wasmbeam_guest::coders::{split_kv, Coder, Double, Kv, Utf8};
use wasmbeam_guest::{DoFn, Element, Emitter, Error, SideInput, Setup};

enum Mode {
    Parse,
    Score { predictions: u32 },
    Rmse,
}

struct Ml {
    mode: Mode,
    model: Option<[f64; 3]>,
}

fn doubles(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8).map(|c| f64::from_be_bytes(c.try_into().unwrap_or([0; 8]))).collect()
}

impl DoFn for Ml {
    fn setup(s: &Setup) -> Result<Self, Error> {
        let mode = match s.config_str()? {
            "parse" => Mode::Parse,
            "score" => Mode::Score { predictions: s.output_index("predictions")? },
            "rmse" => Mode::Rmse,
            other => return Err(Error::new(format!("unknown mode {other:?}"))),
        };
        Ok(Ml { mode, model: None })
    }

    fn side_input(&mut self, input: SideInput) -> Result<(), Error> {
        if input.tag != "model" || input.values.len() != 1 {
            return Err(Error::new(format!("expected one model in side input \"model\", got {} in {:?}", input.values.len(), input.tag)));
        }
        let (_, coefs) = split_kv(&Utf8, &input.values[0])?;
        let c = doubles(coefs);
        if c.len() != 3 {
            return Err(Error::new("the model must hold 3 coefficients"));
        }
        self.model = Some([c[0], c[1], c[2]]);
        Ok(())
    }

    fn process(&mut self, e: &Element<'_>, out: &mut Emitter<'_>) -> Result<(), Error> {
        match self.mode {
            Mode::Parse => {
                let line = std::str::from_utf8(e.value).map_err(|_| Error::new("row is not UTF-8"))?.trim();
                if line.is_empty() || line.starts_with("x1") {
                    return Ok(());
                }
                let f: Result<Vec<f64>, _> = line.split(',').map(|x| x.trim().parse::<f64>()).collect();
                let f = f.map_err(|err| Error::new(format!("bad row {line:?}: {err}")))?;
                if f.len() != 3 {
                    return Err(Error::new(format!("bad row {line:?}: expected x1,x2,y")));
                }
                let mut b = Vec::with_capacity(30);
                Utf8.encode_nested(&"rows".to_string(), &mut b);
                for v in f {
                    b.extend_from_slice(&v.to_be_bytes());
                }
                out.emit(&b);
            }
            Mode::Score { predictions } => {
                let m = self.model.ok_or_else(|| Error::new("no model: the side input is missing"))?;
                let (_, row) = split_kv(&Utf8, e.value)?;
                let r = doubles(row);
                let pred = m[0] + m[1] * r[0] + m[2] * r[1];
                let mut b = Vec::new();
                Kv(Utf8, Double).encode_outer(&("rmse".to_string(), (pred - r[2]).powi(2)), &mut b);
                out.emit(&b);
                out.emit_to(predictions, format!("{},{},{},{pred:.4}", r[0], r[1], r[2]).as_bytes());
            }
            Mode::Rmse => {
                let (_, rest) = split_kv(&Utf8, e.value)?;
                let mse = Double.decode_outer(rest)?;
                out.emit(format!("rmse: {:.4}", mse.sqrt()).as_bytes());
            }
        }
        Ok(())
    }
}

wasmbeam_guest::export_dofn!(Ml);
