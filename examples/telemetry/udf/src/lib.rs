//! Telemetry's user functions, one component, mode chosen by config:
//! * `parse`: a CSV line `meter_id,timestamp,kwh` (timestamp as
//!   `YYYY-MM-DDTHH:MM:SSZ`) → `kv<string_utf8, double>` stamped with the
//!   reading's event time; malformed lines go to the `invalid` output with
//!   the reason, instead of failing the job. A header line is skipped.
//! * `format:LABEL`: `kv<string_utf8, double>` → `meter,window_start,LABEL,value`.
//! * `alert:GAP_MS` (a stateful DoFn): `kv<string_utf8, double>` readings →
//!   `meter,last_reading_time,no reading for Ns` once GAP_MS of processing
//!   time passes without a reading from that meter. A value cell keeps the
//!   latest reading's event time; each reading resets the meter's
//!   processing-time timer.
use wasmbeam_guest::coders::{split_kv, Coder, Double, Kv, Reader, Utf8, VarInt};
use wasmbeam_guest::{Cell, DoFn, Element, Emitter, Error, Setup, Stateful, Timer, TimerFamily};

/// Time of the meter's last reading (alert mode).
const LAST: Cell = Cell(0);
/// Fires GAP_MS of processing time after the last reading (alert mode).
const SILENCE: TimerFamily = TimerFamily(0);

enum Mode {
    Parse { invalid: u32 },
    Format(String),
    Alert { gap: i64 },
}

/// The gap of an `alert:GAP_MS` config, or `None` for other modes.
fn alert_gap(config: &str) -> Result<Option<i64>, Error> {
    match config.strip_prefix("alert:") {
        None => Ok(None),
        Some(g) => g
            .parse::<i64>()
            .ok()
            .filter(|g| *g > 0)
            .map(Some)
            .ok_or_else(|| Error::new(format!("config {config:?}: GAP_MS must be a positive integer"))),
    }
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
    fn describe(config: &[u8]) -> Result<Stateful, Error> {
        let c = std::str::from_utf8(config).map_err(|e| Error::new(format!("config is not UTF-8: {e}")))?;
        Ok(match alert_gap(c)? {
            Some(_) => Stateful::new().value("last").processing_timer("silence"),
            None => Stateful::new(),
        })
    }

    fn setup(s: &Setup) -> Result<Self, Error> {
        let c = s.config_str()?;
        let mode = if let Some(gap) = alert_gap(c)? {
            Mode::Alert { gap }
        } else if c == "parse" {
            Mode::Parse { invalid: s.output_index("invalid")? }
        } else if let Some(label) = c.strip_prefix("format:") {
            Mode::Format(label.to_string())
        } else {
            return Err(Error::new(format!("unknown mode {c:?}: use parse, format:LABEL or alert:GAP_MS")));
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
            Mode::Alert { gap } => {
                let st = e.state();
                let latest = match st.get(LAST) {
                    Some(b) => VarInt.decode_outer(&b)?.max(e.timestamp),
                    None => e.timestamp,
                };
                let mut last = Vec::new();
                VarInt.encode_outer(&latest, &mut last);
                st.write(LAST, &last);
                st.set_timer(SILENCE, st.now().saturating_add(*gap));
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, t: &Timer<'_>, out: &mut Emitter<'_>) -> Result<(), Error> {
        let Mode::Alert { gap } = self.mode else {
            return Err(Error::new("a timer fired outside alert mode"));
        };
        let meter = Utf8.decode_nested(&mut Reader::new(t.key))?;
        let st = t.state();
        if let Some(last) = st.get(LAST) {
            let last = VarInt.decode_outer(&last)?;
            out.emit(format!("{meter},{},no reading for {}s", format_time(last), gap / 1000).as_bytes());
        }
        st.clear(LAST);
        Ok(())
    }
}

wasmbeam_guest::export_dofn!(Telemetry);
