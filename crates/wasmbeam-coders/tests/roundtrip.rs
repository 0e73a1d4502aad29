//! Property tests: random coder trees with matching random values round-trip
//! in both contexts, skipping agrees with decoding, and decoding random or
//! corrupted bytes never panics.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use wasmbeam_coders::{
    Coder, Context, Field, FieldType, IntervalWindow, LogicalEncoding, LogicalType, PaneInfo,
    Reader, Schema, Timer, TimerFiring, Timing, TypeKind, Value, WindowedValue,
};

const CONTEXTS: [Context; 2] = [Context::Nested, Context::Outer];

fn opaque() -> Coder {
    Coder::Opaque {
        urn: "beam:coder:pickled_python:v1".into(),
    }
}

fn arb_string() -> BoxedStrategy<String> {
    proptest::string::string_regex(".{0,6}").unwrap().boxed()
}

// ---------------------------------------------------------------------------
// Schemas.

fn logical(urn: &str, representation: FieldType) -> TypeKind {
    TypeKind::Logical(Box::new(LogicalType {
        urn: urn.into(),
        payload: vec![],
        encoding: LogicalEncoding::for_urn(urn),
        representation,
    }))
}

fn arb_atomic_kind() -> BoxedStrategy<TypeKind> {
    prop_oneof![
        Just(TypeKind::Byte),
        Just(TypeKind::Int16),
        Just(TypeKind::Int32),
        Just(TypeKind::Int64),
        Just(TypeKind::Float),
        Just(TypeKind::Double),
        Just(TypeKind::String),
        Just(TypeKind::Boolean),
        Just(TypeKind::Bytes),
        Just(logical(
            "beam:logical_type:millis_instant:v1",
            FieldType::new(TypeKind::Int64)
        )),
        Just(logical(
            "beam:logical_type:decimal:v1",
            FieldType::new(TypeKind::Bytes)
        )),
        Just(logical(
            "beam:logical_type:fixed_char:v1",
            FieldType::new(TypeKind::String)
        )),
    ]
    .boxed()
}

fn arb_field_type(depth: u32) -> BoxedStrategy<FieldType> {
    let kind = if depth == 0 {
        arb_atomic_kind()
    } else {
        let inner = arb_field_type(depth - 1);
        prop_oneof![
            4 => arb_atomic_kind(),
            1 => inner.clone().prop_map(|t| TypeKind::Array(Box::new(t))),
            1 => inner.clone().prop_map(|t| TypeKind::Iterable(Box::new(t))),
            1 => (inner.clone(), inner.clone()).prop_map(|(k, v)| TypeKind::Map(Box::new(k), Box::new(v))),
            1 => arb_schema(depth - 1).prop_map(TypeKind::Row),
            // Nullability belongs to the logical type, not its representation.
            1 => inner.prop_map(|t| logical("beam:logical_type:test:v1", FieldType::new(t.kind))),
        ]
        .boxed()
    };
    (kind, any::<bool>())
        .prop_map(|(kind, nullable)| FieldType { nullable, kind })
        .boxed()
}

fn arb_schema(depth: u32) -> BoxedStrategy<Arc<Schema>> {
    vec(arb_field_type(depth), 0..5)
        .prop_flat_map(|types| {
            let n = types.len();
            let positions: Vec<i64> = (0..n as i64).collect();
            (Just(types), Just(positions).prop_shuffle(), any::<bool>())
        })
        .prop_map(|(types, positions, reorder)| {
            let fields: Vec<Field> = types
                .into_iter()
                .enumerate()
                .map(|(i, t)| Field::new(format!("f{i}"), t))
                .collect();
            let schema = if reorder {
                Schema::with_encoding_positions("s", fields, &positions).unwrap()
            } else {
                Schema::new("s", fields)
            };
            Arc::new(schema)
        })
        .boxed()
}

fn arb_kind_value(t: &FieldType) -> BoxedStrategy<Value> {
    match &t.kind {
        TypeKind::Byte => any::<i8>().prop_map(Value::Byte).boxed(),
        TypeKind::Int16 => any::<i16>().prop_map(Value::Int16).boxed(),
        TypeKind::Int32 => any::<i32>().prop_map(Value::Int32).boxed(),
        TypeKind::Int64 => any::<i64>().prop_map(Value::Int64).boxed(),
        TypeKind::Float => any::<f32>().prop_map(Value::Float).boxed(),
        TypeKind::Double => any::<f64>().prop_map(Value::Double).boxed(),
        TypeKind::String => arb_string().prop_map(Value::String).boxed(),
        TypeKind::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        TypeKind::Bytes => vec(any::<u8>(), 0..8).prop_map(Value::Bytes).boxed(),
        TypeKind::Array(e) | TypeKind::Iterable(e) => vec(arb_field_value(e), 0..4)
            .prop_map(Value::Iterable)
            .boxed(),
        TypeKind::Map(k, v) => vec((arb_field_value(k), arb_field_value(v)), 0..3)
            .prop_map(Value::Map)
            .boxed(),
        TypeKind::Row(s) => arb_row(s),
        TypeKind::Logical(l) => match l.encoding {
            LogicalEncoding::MillisInstant => any::<i64>().prop_map(Value::Timestamp).boxed(),
            LogicalEncoding::Decimal => (vec(any::<u8>(), 1..6), any::<i32>())
                .prop_map(|(unscaled, scale)| Value::Decimal { unscaled, scale })
                .boxed(),
            LogicalEncoding::Representation => arb_field_value(&l.representation),
        },
    }
}

fn arb_field_value(t: &FieldType) -> BoxedStrategy<Value> {
    if t.nullable {
        prop_oneof![1 => Just(Value::Null), 3 => arb_kind_value(t)].boxed()
    } else {
        arb_kind_value(t)
    }
}

fn arb_row(s: &Schema) -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Value>> = s
        .fields()
        .iter()
        .map(|f| arb_field_value(&f.field_type))
        .collect();
    fields.prop_map(Value::Row).boxed()
}

// ---------------------------------------------------------------------------
// Coders and values.

fn arb_pane() -> BoxedStrategy<PaneInfo> {
    // Only panes the Beam SDKs can produce, which are the ones whose
    // encoding is lossless: unknown timing has indices 0, early panes have
    // on-time index -1.
    (
        any::<bool>(),
        any::<bool>(),
        0u8..4,
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(|(is_first, is_last, t, index, on_time)| {
            let timing = Timing::from_code(t);
            let (index, on_time_index) = match timing {
                Timing::Unknown => (0, 0),
                Timing::Early => (index, -1),
                _ => (index, on_time),
            };
            PaneInfo {
                is_first,
                is_last,
                timing,
                index,
                on_time_index,
            }
        })
        .boxed()
}

fn arb_window_coder() -> BoxedStrategy<Coder> {
    prop_oneof![
        Just(Coder::GlobalWindow),
        Just(Coder::IntervalWindow),
        Just(Coder::CustomWindow(Box::new(Coder::IntervalWindow))),
        Just(Coder::LengthPrefix(Box::new(opaque()))),
    ]
    .boxed()
}

fn arb_coder() -> BoxedStrategy<Coder> {
    let leaf = prop_oneof![
        Just(Coder::Bytes),
        Just(Coder::StringUtf8),
        Just(Coder::Bool),
        Just(Coder::VarInt),
        Just(Coder::Double),
        Just(Coder::IntervalWindow),
        Just(Coder::GlobalWindow),
        Just(opaque()),
        arb_schema(2).prop_map(Coder::Row),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        let window = prop_oneof![arb_window_coder(), inner.clone()];
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(k, v)| Coder::Kv(Box::new(k), Box::new(v))),
            inner.clone().prop_map(|c| Coder::Iterable(Box::new(c))),
            inner
                .clone()
                .prop_map(|c| Coder::StateBackedIterable(Box::new(c))),
            inner.clone().prop_map(|c| Coder::LengthPrefix(Box::new(c))),
            inner.clone().prop_map(|c| Coder::Nullable(Box::new(c))),
            inner.clone().prop_map(|c| Coder::ShardedKey(Box::new(c))),
            inner.clone().prop_map(|c| Coder::CustomWindow(Box::new(c))),
            (inner.clone(), window.clone()).prop_map(|(k, w)| Coder::Timer {
                key: Box::new(k),
                window: Box::new(w),
            }),
            (inner.clone(), window.clone()).prop_map(|(v, w)| Coder::WindowedValue {
                value: Box::new(v),
                window: Box::new(w),
            }),
            (inner, window)
                .prop_flat_map(|(v, w)| {
                    let windows = vec(arb_value(&w), 0..3);
                    (Just(v), Just(w), any::<i64>(), windows, arb_pane())
                })
                .prop_map(
                    |(v, w, timestamp, windows, pane)| Coder::ParamWindowedValue {
                        value: Box::new(v),
                        window: Box::new(w),
                        timestamp,
                        windows,
                        pane,
                    }
                ),
        ]
    })
    .boxed()
}

fn arb_value(c: &Coder) -> BoxedStrategy<Value> {
    match c {
        Coder::Bytes | Coder::Opaque { .. } => {
            vec(any::<u8>(), 0..10).prop_map(Value::Bytes).boxed()
        }
        Coder::StringUtf8 => arb_string().prop_map(Value::String).boxed(),
        Coder::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Coder::VarInt => any::<i64>().prop_map(Value::Int64).boxed(),
        Coder::Double => any::<f64>().prop_map(Value::Double).boxed(),
        Coder::Kv(k, v) => (arb_value(k), arb_value(v))
            .prop_map(|(k, v)| Value::kv(k, v))
            .boxed(),
        Coder::Iterable(e) => vec(arb_value(e), 0..4).prop_map(Value::Iterable).boxed(),
        Coder::StateBackedIterable(e) => prop_oneof![
            vec(arb_value(e), 0..4).prop_map(Value::Iterable),
            (vec(arb_value(e), 0..3), vec(any::<u8>(), 0..6)).prop_map(
                |(elements, state_token)| {
                    Value::StateBackedIterable {
                        elements,
                        state_token,
                    }
                }
            ),
        ]
        .boxed(),
        Coder::Timer { key, window } => (
            arb_value(key),
            arb_string(),
            vec(arb_value(window), 0..3),
            proptest::option::of((any::<i64>(), any::<i64>(), arb_pane())),
        )
            .prop_map(|(user_key, dynamic_timer_tag, windows, firing)| {
                Value::from(Timer {
                    user_key,
                    dynamic_timer_tag,
                    windows,
                    firing: firing.map(|(fire_timestamp, hold_timestamp, pane)| TimerFiring {
                        fire_timestamp,
                        hold_timestamp,
                        pane,
                    }),
                })
            })
            .boxed(),
        Coder::IntervalWindow => (any::<i64>(), any::<i64>())
            .prop_map(|(start, end)| Value::IntervalWindow(IntervalWindow { start, end }))
            .boxed(),
        Coder::LengthPrefix(inner) => arb_value(inner),
        Coder::GlobalWindow => Just(Value::GlobalWindow).boxed(),
        Coder::WindowedValue { value, window } => (
            arb_value(value),
            any::<i64>(),
            vec(arb_value(window), 0..3),
            arb_pane(),
        )
            .prop_map(|(value, timestamp, windows, pane)| {
                Value::from(WindowedValue {
                    value,
                    timestamp,
                    windows,
                    pane,
                })
            })
            .boxed(),
        Coder::ParamWindowedValue {
            value,
            timestamp,
            windows,
            pane,
            ..
        } => {
            let (timestamp, windows, pane) = (*timestamp, windows.clone(), *pane);
            arb_value(value)
                .prop_map(move |value| Value::windowed(value, timestamp, windows.clone(), pane))
                .boxed()
        }
        Coder::CustomWindow(inner) => (any::<i64>(), arb_value(inner))
            .prop_map(|(max_timestamp, window)| Value::CustomWindow {
                max_timestamp,
                window: Box::new(window),
            })
            .boxed(),
        Coder::Row(s) => arb_row(s),
        Coder::ShardedKey(k) => (vec(any::<u8>(), 0..6), arb_value(k))
            .prop_map(|(shard_id, key)| Value::ShardedKey {
                shard_id,
                key: Box::new(key),
            })
            .boxed(),
        Coder::Nullable(inner) => {
            prop_oneof![1 => Just(Value::Null), 3 => arb_value(inner)].boxed()
        }
    }
}

fn coder_and_value() -> impl Strategy<Value = (Coder, Value)> {
    arb_coder().prop_flat_map(|c| {
        let v = arb_value(&c);
        (Just(c), v)
    })
}

/// Debug output compares NaN equal to NaN (bit patterns are checked through
/// the re-encoded bytes).
fn same(a: &Value, b: &Value) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

fn normalize(c: &Coder, bytes: &[u8], ctx: Context) -> Result<Vec<u8>, TestCaseError> {
    let v = c
        .decode(bytes, ctx)
        .map_err(|e| TestCaseError::fail(format!("encoded bytes do not decode: {e}")))?;
    c.encode_to_vec(&v, ctx)
        .map_err(|e| TestCaseError::fail(format!("decoded value does not encode: {e}")))
}

/// Decoding must not panic, and where it succeeds skipping must stop at
/// the same offset.
fn decode_and_skip_agree(c: &Coder, bytes: &[u8], ctx: Context) -> Result<(), TestCaseError> {
    let _ = c.decode(bytes, ctx);
    let mut r = Reader::new(bytes);
    let decoded = c.decode_from(&mut r, ctx);
    let mut s = Reader::new(bytes);
    let skipped = c.skip(&mut s, ctx);
    if let Ok(value) = decoded {
        prop_assert!(
            skipped.is_ok(),
            "decode succeeded but skip failed: {:?}",
            skipped
        );
        prop_assert_eq!(r.position(), s.position());
        // Re-encoding normalizes non-canonical input; two rounds reach a
        // fixed point (see the fuzz target for why one is not always enough).
        if let Ok(first) = c.encode_to_vec(&value, ctx) {
            let second = normalize(c, &first, ctx)?;
            let third = normalize(c, &second, ctx)?;
            prop_assert_eq!(third, second);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // PROPTEST_CASES raises this for longer runs.
        cases: ProptestConfig::default().cases.max(1024),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn values_round_trip((coder, value) in coder_and_value()) {
        for ctx in CONTEXTS {
            let bytes = coder.encode_to_vec(&value, ctx)
                .map_err(|e| TestCaseError::fail(format!("encode {ctx:?}: {e}")))?;
            let decoded = coder.decode(&bytes, ctx)
                .map_err(|e| TestCaseError::fail(format!("decode {ctx:?} of {bytes:?}: {e}")))?;
            prop_assert!(same(&decoded, &value), "{:?}: decoded {:?}, want {:?}", ctx, decoded, value);
            prop_assert_eq!(&coder.encode_to_vec(&decoded, ctx).unwrap(), &bytes);

            let mut r = Reader::new(&bytes);
            coder.skip(&mut r, ctx).map_err(|e| TestCaseError::fail(format!("skip {ctx:?}: {e}")))?;
            prop_assert!(r.is_empty(), "skip left {} bytes", r.remaining());

            if ctx == Context::Nested {
                // A nested value is self-delimiting: trailing data is not read.
                let mut with_tail = bytes.clone();
                with_tail.extend_from_slice(&[0xde, 0xad]);
                let mut r = Reader::new(&with_tail);
                let v = coder.decode_from(&mut r, ctx).unwrap();
                prop_assert!(same(&v, &value));
                prop_assert_eq!(r.rest(), &[0xde, 0xad][..]);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(coder in arb_coder(), bytes in vec(any::<u8>(), 0..64)) {
        for ctx in CONTEXTS {
            decode_and_skip_agree(&coder, &bytes, ctx)?;
        }
    }

    #[test]
    fn corrupted_encodings_never_panic(
        (coder, value) in coder_and_value(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        for ctx in CONTEXTS {
            let mut bytes = coder.encode_to_vec(&value, ctx).unwrap();
            if bytes.is_empty() {
                continue;
            }
            for (i, b) in &edits {
                let i = i.index(bytes.len());
                bytes[i] = *b;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            decode_and_skip_agree(&coder, &bytes, ctx)?;
        }
    }
}
