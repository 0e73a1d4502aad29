//! Conformance with Beam 2.77's `standard_coders.yaml`, read from the
//! apache-beam wheel installed in the project venv.
//!
//! Every example is checked in every context its document asks for
//! (`nested: true`, `nested: false`, or both when absent): the bytes decode
//! to the expected value, skipping consumes exactly the bytes, and (unless
//! the coder is marked `non_deterministic`) the expected value encodes back
//! to the same bytes. Prints each failure and then one summary line,
//! `coders: N/N examples passed`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value as Y;
use wasmbeam_coders::{
    coder_from_proto, Coder, Context, IntervalWindow, LogicalEncoding, PaneInfo, Reader, Timer,
    TimerFiring, Timing, TypeKind, Value, WindowedValue,
};
use wasmbeam_proto::pipeline::v1 as pb;

const YAML_IN_WHEEL: &str = "site-packages/apache_beam/portability/api/standard_coders.yaml";

fn yaml_path() -> PathBuf {
    if let Some(p) = std::env::var_os("WASMBEAM_STANDARD_CODERS") {
        return PathBuf::from(p);
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join(YAML_IN_WHEEL))
        .filter(|p| p.is_file())
        .collect();
    candidates.sort();
    match candidates.pop() {
        Some(p) => p,
        None => panic!(
            "Beam's standard_coders.yaml was not found at {}/python3*/{YAML_IN_WHEEL}.\n\
             Run scripts/bootstrap.sh to create the project venv with apache-beam 2.77, \
             or set WASMBEAM_STANDARD_CODERS to the file's path.",
            lib.display()
        ),
    }
}

/// Each char of the YAML string is one byte (ISO-8859-1).
fn latin1(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| format!("char {c:?} (U+{:04X}) is not a byte", u32::from(c)))
        })
        .collect()
}

fn escape(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if s.len() > 80 {
        format!("\"{}...\" ({} bytes)", &s[..77], bytes.len())
    } else {
        format!("\"{s}\"")
    }
}

// ---------------------------------------------------------------------------
// Coder specs -> Coder protos -> Coder.

fn add_spec(spec: &Y, coders: &mut HashMap<String, pb::Coder>) -> Result<String, String> {
    let urn = spec
        .get("urn")
        .and_then(Y::as_str)
        .ok_or("coder spec has no urn")?
        .to_owned();
    let payload = match spec.get("payload") {
        Some(p) => latin1(p.as_str().ok_or("payload is not a string")?)?,
        None => Vec::new(),
    };
    let mut component_coder_ids = Vec::new();
    if let Some(cs) = spec.get("components") {
        for c in cs.as_sequence().ok_or("components is not a list")? {
            component_coder_ids.push(add_spec(c, coders)?);
        }
    }
    let id = format!("c{}", coders.len());
    coders.insert(
        id.clone(),
        pb::Coder {
            spec: Some(pb::FunctionSpec { urn, payload }),
            component_coder_ids,
        },
    );
    Ok(id)
}

fn build_coder(spec: &Y) -> Result<Coder, String> {
    let mut coders = HashMap::new();
    let root = add_spec(spec, &mut coders)?;
    coder_from_proto(&root, &coders).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------
// Expected YAML values -> Value.

fn field<'a>(y: &'a Y, name: &str) -> Result<&'a Y, String> {
    y.get(name)
        .ok_or_else(|| format!("expected field `{name}` in {y:?}"))
}

fn int(y: &Y) -> Result<i64, String> {
    y.as_i64()
        .ok_or_else(|| format!("expected an integer, got {y:?}"))
}

fn string(y: &Y) -> Result<String, String> {
    match y {
        Y::String(s) => Ok(s.clone()),
        Y::Number(n) => Ok(n.to_string()),
        Y::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("expected a string, got {y:?}")),
    }
}

fn boolean(y: &Y) -> Result<bool, String> {
    y.as_bool()
        .ok_or_else(|| format!("expected a bool, got {y:?}"))
}

fn double(y: &Y) -> Result<f64, String> {
    match y {
        Y::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
        Y::String(s) => s
            .parse::<f64>()
            .map_err(|e| format!("bad double {s:?}: {e}")),
        _ => Err(format!("expected a double, got {y:?}")),
    }
}

fn seq(y: &Y) -> Result<&Vec<Y>, String> {
    y.as_sequence()
        .ok_or_else(|| format!("expected a list, got {y:?}"))
}

fn pane(y: &Y) -> Result<PaneInfo, String> {
    let timing = string(field(y, "timing")?)?;
    Ok(PaneInfo {
        is_first: boolean(field(y, "is_first")?)?,
        is_last: boolean(field(y, "is_last")?)?,
        timing: Timing::from_name(&timing).ok_or_else(|| format!("unknown timing {timing}"))?,
        index: int(field(y, "index")?)?,
        on_time_index: int(field(y, "on_time_index")?)?,
    })
}

fn windows(window: &Coder, y: &Y) -> Result<Vec<Value>, String> {
    seq(y)?.iter().map(|w| expected(window, w)).collect()
}

/// Converts an expected YAML value into the [`Value`] the coder produces.
fn expected(coder: &Coder, y: &Y) -> Result<Value, String> {
    Ok(match coder {
        Coder::Bytes | Coder::Opaque { .. } => Value::Bytes(string(y)?.into_bytes()),
        Coder::StringUtf8 => Value::String(string(y)?),
        Coder::Bool => Value::Bool(boolean(y)?),
        Coder::VarInt => Value::Int64(int(y)?),
        Coder::Double => Value::Double(double(y)?),
        Coder::Kv(k, v) => Value::kv(
            expected(k, field(y, "key")?)?,
            expected(v, field(y, "value")?)?,
        ),
        Coder::Iterable(e) | Coder::StateBackedIterable(e) => Value::Iterable(
            seq(y)?
                .iter()
                .map(|x| expected(e, x))
                .collect::<Result<_, _>>()?,
        ),
        Coder::Timer { key, window } => {
            let firing = if boolean(field(y, "clearBit")?)? {
                None
            } else {
                Some(TimerFiring {
                    fire_timestamp: int(field(y, "fireTimestamp")?)?,
                    hold_timestamp: int(field(y, "holdTimestamp")?)?,
                    pane: pane(field(y, "pane")?)?,
                })
            };
            Value::from(Timer {
                user_key: expected(key, field(y, "userKey")?)?,
                dynamic_timer_tag: string(field(y, "dynamicTimerTag")?)?,
                windows: windows(window, field(y, "windows")?)?,
                firing,
            })
        }
        Coder::IntervalWindow => {
            let end = int(field(y, "end")?)?;
            let span = int(field(y, "span")?)?;
            Value::IntervalWindow(IntervalWindow {
                start: end.wrapping_sub(span),
                end,
            })
        }
        Coder::LengthPrefix(inner) => expected(inner, y)?,
        Coder::GlobalWindow => Value::GlobalWindow,
        Coder::WindowedValue { value, window }
        | Coder::ParamWindowedValue { value, window, .. } => Value::from(WindowedValue {
            value: expected(value, field(y, "value")?)?,
            timestamp: int(field(y, "timestamp")?)?,
            windows: windows(window, field(y, "windows")?)?,
            pane: match y.get("pane") {
                Some(p) => pane(p)?,
                None => PaneInfo::NO_FIRING,
            },
        }),
        Coder::CustomWindow(inner) => {
            let window = expected(inner, field(y, "window")?)?;
            let max_timestamp = window
                .window_max_timestamp()
                .ok_or_else(|| format!("cannot compute the max timestamp of {window:?}"))?;
            Value::CustomWindow {
                max_timestamp,
                window: Box::new(window),
            }
        }
        Coder::Row(schema) => row(schema, y)?,
        Coder::ShardedKey(k) => Value::ShardedKey {
            shard_id: string(field(y, "shardId")?)?.into_bytes(),
            key: Box::new(expected(k, field(y, "key")?)?),
        },
        Coder::Nullable(inner) => match y {
            Y::Null => Value::Null,
            _ => expected(inner, y)?,
        },
    })
}

fn row(schema: &wasmbeam_coders::Schema, y: &Y) -> Result<Value, String> {
    let m = y
        .as_mapping()
        .ok_or_else(|| format!("expected a row mapping, got {y:?}"))?;
    if m.len() != schema.fields().len() {
        return Err(format!(
            "row has {} attributes, schema has {} fields",
            m.len(),
            schema.fields().len()
        ));
    }
    let mut values = Vec::new();
    for f in schema.fields() {
        let v = field(y, &f.name)?;
        values.push(field_value(&f.field_type, v)?);
    }
    Ok(Value::Row(values))
}

fn field_value(t: &wasmbeam_coders::FieldType, y: &Y) -> Result<Value, String> {
    if y.is_null() {
        return Ok(Value::Null);
    }
    let small =
        |y: &Y, what: &str| -> Result<i64, String> { int(y).map_err(|e| format!("{what}: {e}")) };
    Ok(match &t.kind {
        TypeKind::Byte => Value::Byte(i8::try_from(small(y, "BYTE")?).map_err(|e| e.to_string())?),
        TypeKind::Int16 => {
            Value::Int16(i16::try_from(small(y, "INT16")?).map_err(|e| e.to_string())?)
        }
        TypeKind::Int32 => {
            Value::Int32(i32::try_from(small(y, "INT32")?).map_err(|e| e.to_string())?)
        }
        TypeKind::Int64 => Value::Int64(int(y)?),
        TypeKind::Float => Value::Float(match y {
            Y::String(s) => s
                .parse::<f32>()
                .map_err(|e| format!("bad float {s:?}: {e}"))?,
            _ => double(y)? as f32,
        }),
        TypeKind::Double => Value::Double(double(y)?),
        TypeKind::String => Value::String(string(y)?),
        TypeKind::Boolean => Value::Bool(boolean(y)?),
        TypeKind::Bytes => Value::Bytes(string(y)?.into_bytes()),
        TypeKind::Array(e) | TypeKind::Iterable(e) => Value::Iterable(
            seq(y)?
                .iter()
                .map(|x| field_value(e, x))
                .collect::<Result<_, _>>()?,
        ),
        TypeKind::Map(kt, vt) => {
            let m = y
                .as_mapping()
                .ok_or_else(|| format!("expected a map, got {y:?}"))?;
            Value::Map(
                m.iter()
                    .map(|(k, v)| Ok((field_value(kt, k)?, field_value(vt, v)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        TypeKind::Row(s) => row(s, y)?,
        TypeKind::Logical(l) => match l.encoding {
            // The YAML gives the 8 encoded bytes read as a plain big-endian
            // i64 (Python's view); the instant is that with the sign bit flipped.
            LogicalEncoding::MillisInstant => Value::Timestamp(int(y)?.wrapping_sub(i64::MIN)),
            LogicalEncoding::Decimal => decimal(&string(y)?)?,
            LogicalEncoding::Representation => field_value(&l.representation, y)?,
        },
    })
}

/// "-100.123" -> unscaled two's-complement bytes of -100123, scale 3.
fn decimal(s: &str) -> Result<Value, String> {
    let (int_part, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = format!("{int_part}{frac}");
    let unscaled: i128 = digits
        .parse()
        .map_err(|e| format!("bad decimal {s:?}: {e}"))?;
    let bytes = unscaled.to_be_bytes();
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(Value::Decimal {
        unscaled: bytes[start..].to_vec(),
        scale: i32::try_from(frac.len()).map_err(|e| e.to_string())?,
    })
}

// ---------------------------------------------------------------------------
// Comparison and state.

/// Sorts map entries (their order is not deterministic) so Debug output can
/// be compared; Debug also makes NaN equal to NaN and keeps -0.0 distinct.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut e: Vec<(Value, Value)> = entries
                .iter()
                .map(|(k, v)| (normalize(k), normalize(v)))
                .collect();
            e.sort_by_key(|(k, v)| format!("{k:?}{v:?}"));
            Value::Map(e)
        }
        Value::Row(vs) => Value::Row(vs.iter().map(normalize).collect()),
        Value::Iterable(vs) => Value::Iterable(vs.iter().map(normalize).collect()),
        Value::Kv(k, v) => Value::kv(normalize(k), normalize(v)),
        other => other.clone(),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    format!("{:?}", normalize(a)) == format!("{:?}", normalize(b))
}

/// Replaces a trailing state token by the elements the test's state holds.
fn resolve_state(
    coder: &Coder,
    v: Value,
    state: &HashMap<Vec<u8>, Vec<u8>>,
) -> Result<Value, String> {
    let (
        Coder::StateBackedIterable(elem),
        Value::StateBackedIterable {
            mut elements,
            state_token,
        },
    ) = (coder, v.clone())
    else {
        return Ok(v);
    };
    let suffix = state.get(&state_token).cloned().unwrap_or_default();
    let mut r = Reader::new(&suffix);
    while !r.is_empty() {
        elements.push(
            elem.decode_from(&mut r, Context::Nested)
                .map_err(|e| format!("state suffix: {e}"))?,
        );
    }
    Ok(Value::Iterable(elements))
}

// ---------------------------------------------------------------------------

struct Doc {
    index: usize,
    coder_spec: Y,
    nested: Option<bool>,
    examples: Vec<(Y, Y)>,
}

fn check_example(
    coder: &Coder,
    bytes: &[u8],
    want: &Y,
    ctx: Context,
    deterministic: bool,
    state: &HashMap<Vec<u8>, Vec<u8>>,
) -> Result<(), String> {
    let expected =
        expected(coder, want).map_err(|e| format!("cannot convert the expected value: {e}"))?;
    let decoded = coder
        .decode(bytes, ctx)
        .map_err(|e| format!("decode failed: {e}"))?;
    let decoded = resolve_state(coder, decoded, state)?;
    if !same(&decoded, &expected) {
        return Err(format!("decoded {decoded:?}, expected {expected:?}"));
    }
    let mut r = Reader::new(bytes);
    coder
        .skip(&mut r, ctx)
        .map_err(|e| format!("skip failed: {e}"))?;
    if !r.is_empty() {
        return Err(format!(
            "skip left {} of {} bytes",
            r.remaining(),
            bytes.len()
        ));
    }
    if deterministic {
        let encoded = coder
            .encode_to_vec(&expected, ctx)
            .map_err(|e| format!("encode failed: {e}"))?;
        if encoded != bytes {
            return Err(format!(
                "encoded {}, expected {}",
                escape(&encoded),
                escape(bytes)
            ));
        }
    }
    Ok(())
}

#[test]
fn standard_coders_yaml() {
    let path = yaml_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut docs = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let y = Y::deserialize(de)
            .unwrap_or_else(|e| panic!("{}: document {index}: {e}", path.display()));
        if y.is_null() {
            continue;
        }
        let examples = y
            .get("examples")
            .and_then(Y::as_mapping)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        docs.push(Doc {
            index,
            coder_spec: y.get("coder").cloned().unwrap_or(Y::Null),
            nested: y.get("nested").and_then(Y::as_bool),
            examples,
        });
    }

    let mut total = 0usize;
    let mut failures = Vec::new();
    for doc in &docs {
        let urn = doc
            .coder_spec
            .get("urn")
            .and_then(Y::as_str)
            .unwrap_or("?")
            .to_owned();
        let contexts: &[Context] = match doc.nested {
            Some(true) => &[Context::Nested],
            Some(false) => &[Context::Outer],
            None => &[Context::Nested, Context::Outer],
        };
        let deterministic = !doc
            .coder_spec
            .get("non_deterministic")
            .and_then(Y::as_bool)
            .unwrap_or(false);
        let state: Result<HashMap<Vec<u8>, Vec<u8>>, String> =
            match doc.coder_spec.get("state").and_then(Y::as_mapping) {
                None => Ok(HashMap::new()),
                Some(m) => m
                    .iter()
                    .map(|(k, v)| Ok((latin1(&string(k)?)?, latin1(&string(v)?)?)))
                    .collect(),
            };
        let coder = build_coder(&doc.coder_spec).and_then(|c| state.clone().map(|_| c));
        let state = state.unwrap_or_default();
        for (key, want) in &doc.examples {
            for &ctx in contexts {
                total += 1;
                let label = format!("document {} ({urn}), {ctx:?}", doc.index);
                let bytes = match key
                    .as_str()
                    .ok_or_else(|| format!("example key {key:?} is not a string"))
                    .and_then(latin1)
                {
                    Ok(b) => b,
                    Err(e) => {
                        failures.push(format!("FAIL {label}: bad example key: {e}"));
                        continue;
                    }
                };
                let result = match &coder {
                    Ok(c) => check_example(c, &bytes, want, ctx, deterministic, &state),
                    Err(e) => Err(format!("cannot build the coder: {e}")),
                };
                if let Err(e) = result {
                    failures.push(format!("FAIL {label}, example {}: {e}", escape(&bytes)));
                }
            }
        }
    }
    for f in &failures {
        println!("{f}");
    }
    let summary = format!("coders: {}/{total} examples passed", total - failures.len());
    println!("{summary}");
    // scripts/test.sh prints this file after the whole suite.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/conformance");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("coders.txt"), format!("{summary}\n"));
    assert!(total > 0, "no examples found in {}", path.display());
    assert!(
        failures.is_empty(),
        "{} of {total} standard coder examples failed",
        failures.len()
    );
}
