//! `WindowInto`'s `windowing:` mapping: the window function (Beam YAML's
//! `type`, `size`, `period`, `gap`, `offset`) and, as wasmbeam extensions
//! for streaming, `trigger`, `accumulation_mode` and `allowed_lateness`.
//!
//! ```yaml
//! windowing:
//!   type: fixed
//!   size: 60s
//!   trigger: {type: after_watermark, early: {type: after_processing_time, delay: 10s}}
//!   accumulation_mode: accumulating      # or discarding (the default)
//!   allowed_lateness: 1h
//! ```
//!
//! Trigger types: `default`, `after_watermark` (`early`, `late`),
//! `after_count` (`count`), `after_processing_time` (`delay`),
//! `repeatedly` (`trigger`), `after_any`, `after_all` and `after_each`
//! (`triggers`), `or_finally` (`main`, `finally`), `never`, `always`.
//! Errors name the field (`windowing.trigger.early.delay`, say).

use prost::Message;
use serde_yaml::{Mapping, Value};
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::{
    fixed_windows_payload, global_windows_payload, session_windows_payload, sliding_windows_payload,
};

/// A parsed `windowing:` mapping.
pub(crate) struct Windowing {
    /// The WindowFn.
    pub window_fn: pb::FunctionSpec,
    /// Sessions merge.
    pub merging: bool,
    /// Coder of the windows (a YAML coder expression).
    pub window_coder: &'static str,
    /// When panes fire.
    pub trigger: pb::Trigger,
    /// Accumulating (true) or discarding panes.
    pub accumulating: bool,
    /// How late data may be, in ms.
    pub allowed_lateness_ms: i64,
}

impl Windowing {
    /// The global window, Beam's default trigger, discarding, no lateness.
    pub fn global() -> Windowing {
        Windowing {
            window_fn: pb::FunctionSpec {
                urn: global_windows_payload::enum_::PROPERTIES.into(),
                payload: vec![],
            },
            merging: false,
            window_coder: "global_window",
            trigger: default_trigger(),
            accumulating: false,
            allowed_lateness_ms: 0,
        }
    }
}

fn default_trigger() -> pb::Trigger {
    pb::Trigger {
        trigger: Some(pb::trigger::Trigger::Default(pb::trigger::Default {})),
    }
}

/// A string (or number, or bool, as text) at `key`.
pub(crate) fn cfg_str(m: &Mapping, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Durations: integers are seconds; strings take ms, s, m, h or d suffixes.
pub(crate) fn duration_ms(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(|s| (s * 1000.0) as i64)
            .ok_or_else(|| "not a number".into()),
        Value::String(s) => {
            let s = s.trim();
            let (num, unit) = s
                .find(|c: char| c.is_alphabetic())
                .map(|i| (&s[..i], &s[i..]))
                .unwrap_or((s, "s"));
            let n: f64 = num
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a duration like 60s, 5m, 500ms"))?;
            let mult = match unit {
                "ms" => 1.0,
                "s" => 1000.0,
                "m" | "min" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                u => {
                    return Err(format!(
                        "unknown duration unit {u:?} in {s:?} (use ms, s, m, h or d)"
                    ))
                }
            };
            Ok((n * mult) as i64)
        }
        _ => Err("a duration must be a number of seconds or a string like 60s".into()),
    }
}

pub(crate) fn proto_duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Parse `windowing:`; errors name the field, starting `windowing.`.
pub(crate) fn parse(w: &Mapping) -> Result<Windowing, String> {
    const KEYS: &[&str] = &[
        "type",
        "size",
        "period",
        "gap",
        "offset",
        "trigger",
        "accumulation_mode",
        "allowed_lateness",
    ];
    if let Some(k) = w
        .keys()
        .find(|k| !k.as_str().is_some_and(|k| KEYS.contains(&k)))
    {
        return Err(format!(
            "windowing has an unknown key {k:?}; known: {}",
            KEYS.join(", ")
        ));
    }
    let get = |k: &str| -> Result<i64, String> {
        let v = w
            .get(k)
            .ok_or_else(|| format!("windowing.{k} is required"))?;
        duration_ms(v).map_err(|e| format!("windowing.{k}: {e}"))
    };
    let offset = match w.get("offset") {
        Some(v) => duration_ms(v).map_err(|e| format!("windowing.offset: {e}"))?,
        None => 0,
    };
    let off_ts = prost_types::Timestamp {
        seconds: offset.div_euclid(1000),
        nanos: (offset.rem_euclid(1000) * 1_000_000) as i32,
    };
    let spec = |urn: &str, payload: Vec<u8>| pb::FunctionSpec {
        urn: urn.into(),
        payload,
    };
    let kind = cfg_str(w, "type").unwrap_or_default();
    let mut out = Windowing::global();
    match kind.as_str() {
        "global" => {}
        "fixed" => {
            let p = pb::FixedWindowsPayload {
                size: Some(proto_duration(get("size")?)),
                offset: Some(off_ts),
            };
            out.window_fn = spec(fixed_windows_payload::enum_::PROPERTIES, p.encode_to_vec());
            out.window_coder = "interval_window";
        }
        "sliding" => {
            let p = pb::SlidingWindowsPayload {
                size: Some(proto_duration(get("size")?)),
                period: Some(proto_duration(get("period")?)),
                offset: Some(off_ts),
            };
            out.window_fn = spec(
                sliding_windows_payload::enum_::PROPERTIES,
                p.encode_to_vec(),
            );
            out.window_coder = "interval_window";
        }
        "sessions" => {
            let p = pb::SessionWindowsPayload {
                gap_size: Some(proto_duration(get("gap")?)),
            };
            out.window_fn = spec(
                session_windows_payload::enum_::PROPERTIES,
                p.encode_to_vec(),
            );
            out.window_coder = "interval_window";
            out.merging = true;
        }
        other => {
            return Err(format!(
                "windowing.type {other:?} is not global, fixed, sliding or sessions"
            ))
        }
    }
    if let Some(t) = w.get("trigger") {
        out.trigger = trigger(t, "windowing.trigger")?;
    }
    match cfg_str(w, "accumulation_mode").as_deref() {
        None | Some("discarding") => {}
        Some("accumulating") => out.accumulating = true,
        Some(other) => {
            return Err(format!(
                "windowing.accumulation_mode {other:?} is not accumulating or discarding"
            ))
        }
    }
    if let Some(v) = w.get("allowed_lateness") {
        out.allowed_lateness_ms =
            duration_ms(v).map_err(|e| format!("windowing.allowed_lateness: {e}"))?;
    }
    Ok(out)
}

/// A trigger mapping at `path` (for errors).
fn trigger(v: &Value, path: &str) -> Result<pb::Trigger, String> {
    use pb::trigger::Trigger as T;
    let m = v
        .as_mapping()
        .ok_or_else(|| format!("{path} must be a mapping with a type"))?;
    let sub = |k: &str| -> Result<Option<Box<pb::Trigger>>, String> {
        m.get(k)
            .map(|v| trigger(v, &format!("{path}.{k}")).map(Box::new))
            .transpose()
    };
    let need = |k: &str| -> Result<Box<pb::Trigger>, String> {
        sub(k)?.ok_or_else(|| format!("{path}.{k} is required"))
    };
    let list = |k: &str| -> Result<Vec<pb::Trigger>, String> {
        let items = m
            .get(k)
            .and_then(Value::as_sequence)
            .ok_or_else(|| format!("{path}.{k} is required: a list of triggers"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, t)| trigger(t, &format!("{path}.{k}[{i}]")))
            .collect()
    };
    let kind = cfg_str(m, "type").unwrap_or_default();
    let t = match kind.as_str() {
        "default" => T::Default(pb::trigger::Default {}),
        "after_watermark" => T::AfterEndOfWindow(Box::new(pb::trigger::AfterEndOfWindow {
            early_firings: sub("early")?,
            late_firings: sub("late")?,
        })),
        "after_count" => {
            let n = m
                .get("count")
                .and_then(Value::as_i64)
                .filter(|n| (1..=i32::MAX as i64).contains(n))
                .ok_or_else(|| format!("{path}.count is required: a positive integer"))?;
            T::ElementCount(pb::trigger::ElementCount {
                element_count: n as i32,
            })
        }
        "after_processing_time" => {
            let d = m
                .get("delay")
                .map(duration_ms)
                .transpose()
                .map_err(|e| format!("{path}.delay: {e}"))?
                .unwrap_or(0);
            T::AfterProcessingTime(pb::trigger::AfterProcessingTime {
                timestamp_transforms: vec![pb::TimestampTransform {
                    timestamp_transform: Some(pb::timestamp_transform::TimestampTransform::Delay(
                        pb::timestamp_transform::Delay { delay_millis: d },
                    )),
                }],
            })
        }
        "repeatedly" => T::Repeat(Box::new(pb::trigger::Repeat {
            subtrigger: Some(need("trigger")?),
        })),
        "after_any" => T::AfterAny(pb::trigger::AfterAny {
            subtriggers: list("triggers")?,
        }),
        "after_all" => T::AfterAll(pb::trigger::AfterAll {
            subtriggers: list("triggers")?,
        }),
        "after_each" => T::AfterEach(pb::trigger::AfterEach {
            subtriggers: list("triggers")?,
        }),
        "or_finally" => T::OrFinally(Box::new(pb::trigger::OrFinally {
            main: Some(need("main")?),
            finally: Some(need("finally")?),
        })),
        "never" => T::Never(pb::trigger::Never {}),
        "always" => T::Always(pb::trigger::Always {}),
        other => {
            return Err(format!(
                "{path}.type {other:?} is not one of default, after_watermark, after_count, after_processing_time, repeatedly, after_any, after_all, after_each, or_finally, never, always"
            ))
        }
    };
    Ok(pb::Trigger { trigger: Some(t) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::trigger::Trigger as T;

    fn parse_str(text: &str) -> Result<Windowing, String> {
        let v: Value = serde_yaml::from_str(text).unwrap();
        parse(v.as_mapping().unwrap())
    }

    #[test]
    fn a_triggered_accumulating_window_with_lateness() {
        let w = parse_str(
            "{type: fixed, size: 60s, allowed_lateness: 1h, accumulation_mode: accumulating,
              trigger: {type: after_watermark, early: {type: after_processing_time, delay: 10s},
                        late: {type: after_count, count: 1}}}",
        )
        .unwrap();
        assert!(w.accumulating);
        assert_eq!(w.allowed_lateness_ms, 3_600_000);
        assert_eq!(w.window_coder, "interval_window");
        let Some(T::AfterEndOfWindow(a)) = w.trigger.trigger else {
            panic!("{:?}", w.trigger)
        };
        let Some(T::AfterProcessingTime(p)) = a.early_firings.unwrap().trigger else {
            panic!("early")
        };
        assert_eq!(
            p.timestamp_transforms[0].timestamp_transform,
            Some(pb::timestamp_transform::TimestampTransform::Delay(
                pb::timestamp_transform::Delay {
                    delay_millis: 10_000
                }
            ))
        );
        let Some(T::ElementCount(c)) = a.late_firings.unwrap().trigger else {
            panic!("late")
        };
        assert_eq!(c.element_count, 1);
    }

    #[test]
    fn without_extensions_it_is_beam_yamls_window_with_the_default_trigger() {
        let w = parse_str("{type: sessions, gap: 5m}").unwrap();
        assert!(w.merging && !w.accumulating && w.allowed_lateness_ms == 0);
        assert!(matches!(w.trigger.trigger, Some(T::Default(_))));
    }

    #[test]
    fn errors_name_the_field() {
        for (text, want) in [
            (
                "{type: fixed, size: 1m, trigger: {type: after_watermark, early: {type: after_processing_time, delay: soon}}}",
                "windowing.trigger.early.delay",
            ),
            (
                "{type: fixed, size: 1m, trigger: {type: after_any, triggers: [{type: after_count}]}}",
                "windowing.trigger.triggers[0].count",
            ),
            ("{type: fixed, size: 1m, trigger: {type: sometimes}}", "windowing.trigger.type \"sometimes\""),
            ("{type: fixed, size: 1m, accumulation_mode: both}", "windowing.accumulation_mode"),
            ("{type: fixed, size: 1m, lateness: 1h}", "unknown key"),
        ] {
            let e = parse_str(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
