//! Telemetry's user functions, one component, mode chosen by config:
//! * `parse`: a CSV line `meter_id,timestamp,kwh` (timestamp as
//!   `YYYY-MM-DDTHH:MM:SSZ`) → `kv<string_utf8, double>` stamped with the
//!   reading's event time; malformed lines go to the `invalid` output with
//!   the reason, instead of failing the job. A header line is skipped.
//! * `format:LABEL`: `kv<string_utf8, double>` → `meter,window_start,LABEL,value`.
use wasmbeam_guest::coders::{split_kv, Coder, Double, Kv, Utf8};
use wasmbeam_guest::{DoFn, Element, Emitter, Error, Setup};

enum Mode {
    Parse { invalid: u32 },
    Format(String),
}

struct Telemetry {
    mode: Mode,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

/// Parse `YYYY-MM-DDTHH:MM:SSZ` into epoch milliseconds.
fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (n(0..4)?, n(5..7)?, n(8..10)?, n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    Some(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + se * 1000)
}

fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

impl DoFn for Telemetry {
    fn setup(s: &Setup) -> Result<Self, Error> {
        let c = s.config_str()?;
        let mode = if c == "parse" {
            Mode::Parse { invalid: s.output_index("invalid")? }
        } else if let Some(label) = c.strip_prefix("format:") {
            Mode::Format(label.to_string())
        } else {
            return Err(Error::new(format!("unknown mode {c:?}: use parse or format:LABEL")));
        };
        Ok(Telemetry { mode })
    }

    fn process(&mut self, e: &Element<'_>, out: &mut Emitter<'_>) -> Result<(), Error> {
        match &self.mode {
            Mode::Parse { invalid } => {
                let line = String::from_utf8_lossy(e.value);
                let line = line.trim();
                if line.is_empty() || line.starts_with("meter_id,") {
                    return Ok(());
                }
                let f: Vec<&str> = line.split(',').map(str::trim).collect();
                let parsed = match f.as_slice() {
                    [meter, ts, kwh] if !meter.is_empty() => match (parse_time(ts), kwh.parse::<f64>()) {
                        (Some(t), Ok(k)) if k.is_finite() && k >= 0.0 => Ok((meter.to_string(), t, k)),
                        (None, _) => Err(format!("bad timestamp {ts:?}")),
                        _ => Err(format!("bad kWh value {kwh:?}")),
                    },
                    _ => Err("expected meter_id,timestamp,kwh".to_string()),
                };
                match parsed {
                    Ok((meter, t, kwh)) => {
                        let mut b = Vec::new();
                        Kv(Utf8, Double).encode_outer(&(meter, kwh), &mut b);
                        out.emit_with_timestamp(&b, t);
                    }
                    Err(why) => out.emit_to(*invalid, format!("{line} # {why}").as_bytes()),
                }
            }
            Mode::Format(label) => {
                let (meter, rest) = split_kv(&Utf8, e.value)?;
                let v = Double.decode_outer(rest)?;
                let start = e.windows().next().map(|w| w.start).unwrap_or(0);
                out.emit(format!("{meter},{},{label},{v:.3}", format_time(start)).as_bytes());
            }
        }
        Ok(())
    }
}

wasmbeam_guest::export_dofn!(Telemetry);
