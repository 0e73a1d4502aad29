//! Error messages, opaque coders, nested vs outer contexts, skipping, and
//! byte fixtures produced by the apache-beam 2.77 Python SDK for cases the
//! standard YAML does not cover.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use wasmbeam_coders::{
    coder_from_proto, Coder, Context, Field, FieldType, IntervalWindow, PaneInfo, Reader, Schema,
    Timing, TypeKind, Value,
};
use wasmbeam_proto::pipeline::v1 as pb;

use Context::{Nested, Outer};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn opaque() -> Coder {
    Coder::Opaque {
        urn: "beam:coder:pickled_python:v1".into(),
    }
}

fn kv(k: Coder, v: Coder) -> Coder {
    Coder::Kv(Box::new(k), Box::new(v))
}

// ---------------------------------------------------------------------------
// Errors.

#[test]
fn errors_report_offsets() {
    let c = kv(Coder::VarInt, Coder::StringUtf8);
    // key 300 (2 bytes), then a nested string claiming 5 bytes with 2 left.
    let bytes = [0xac, 0x02, 0x05, b'a', b'b'];
    let e = c.decode(&bytes, Nested).unwrap_err();
    assert_eq!(e.offset, 3);
    assert_eq!(
        e.to_string(),
        "byte 3: expected 5 bytes of string_utf8 data, 2 remain"
    );

    let e = Coder::Bool.decode(&[7], Nested).unwrap_err();
    assert_eq!(e.to_string(), "byte 0: expected bool byte 0 or 1, found 7");

    let e = Coder::VarInt.decode(&[0x80, 0x80], Outer).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.to_string().contains("varint"), "{e}");

    let e = Coder::Double.decode(&[1, 2, 3], Outer).unwrap_err();
    assert_eq!(
        e.to_string(),
        "byte 0: expected 8 bytes of double, 3 remain"
    );

    let e = Coder::VarInt.decode(&[1, 2], Outer).unwrap_err();
    assert_eq!(
        e.to_string(),
        "byte 1: 1 trailing byte(s) after the varint value"
    );

    // Invalid UTF-8 points at the bad byte.
    let e = Coder::StringUtf8
        .decode(&[3, b'a', 0xff, b'b'], Nested)
        .unwrap_err();
    assert_eq!(e.to_string(), "byte 2: invalid UTF-8 in string_utf8 data");

    // Offsets inside a length prefix stay absolute.
    let lp = Coder::LengthPrefix(Box::new(kv(Coder::VarInt, Coder::Bool)));
    let e = lp.decode(&[0], Outer).unwrap_err();
    assert_eq!(e.to_string(), "byte 1: expected a varint, 0 bytes remain");
    let e = kv(Coder::Bytes, lp)
        .decode(&[1, b'x', 2, 1, 9], Nested)
        .unwrap_err();
    assert_eq!(e.to_string(), "byte 4: expected bool byte 0 or 1, found 9");
}

#[test]
fn iterable_counts_are_checked_before_allocating() {
    let c = Coder::Iterable(Box::new(Coder::VarInt));
    let e = c.decode(&[0x7f, 0xff, 0xff, 0xff, 1], Nested).unwrap_err();
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("2147483647 elements"), "{e}");
    // Zero-byte elements are capped instead.
    let g = Coder::Iterable(Box::new(Coder::GlobalWindow));
    assert!(g.decode(&[0x7f, 0xff, 0xff, 0xff], Nested).is_err());
    assert_eq!(
        g.decode(&[0, 0, 0, 3], Nested).unwrap(),
        Value::Iterable(vec![Value::GlobalWindow; 3])
    );
    // Only -1 marks an unknown length.
    let e = c.decode(&[0xff, 0xff, 0xff, 0xfe], Nested).unwrap_err();
    assert!(e.message.contains("-2"), "{e}");
    // A plain iterable rejects a state token.
    let e = c
        .decode(&hex("ffffffffffffffffffffffffff0100"), Nested)
        .unwrap_err();
    assert!(e.message.contains("state token"), "{e}");
}

#[test]
fn encode_errors() {
    let e = Coder::VarInt
        .encode_to_vec(&Value::string("x"), Nested)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "encode, output byte 0: varint coder cannot encode a string value"
    );
    let c = kv(Coder::Bytes, Coder::VarInt);
    let e = c
        .encode_to_vec(&Value::kv(Value::bytes(*b"ab"), Value::Bool(true)), Nested)
        .unwrap_err();
    assert_eq!(e.offset, 3);
    // A state-backed value needs the state-backed coder.
    let sbi = Value::StateBackedIterable {
        elements: vec![],
        state_token: b"t".to_vec(),
    };
    assert!(Coder::Iterable(Box::new(Coder::VarInt))
        .encode_to_vec(&sbi, Nested)
        .is_err());
    let ok = Coder::StateBackedIterable(Box::new(Coder::VarInt))
        .encode_to_vec(&sbi, Nested)
        .unwrap();
    assert_eq!(ok, hex("ffffffffffffffffffffffffff010174"));
}

// ---------------------------------------------------------------------------
// Opaque coders and contexts.

#[test]
fn opaque_coders_are_length_prefixed_only_when_nested() {
    let c = opaque();
    let v = Value::bytes(*b"\x80\x04pickle");
    assert_eq!(c.encode_to_vec(&v, Outer).unwrap(), b"\x80\x04pickle");
    assert_eq!(c.encode_to_vec(&v, Nested).unwrap(), b"\x08\x80\x04pickle");
    assert_eq!(c.decode(b"\x80\x04pickle", Outer).unwrap(), v);
    assert_eq!(c.decode(b"\x08\x80\x04pickle", Nested).unwrap(), v);
    assert_eq!(c.urn(), "beam:coder:pickled_python:v1");

    // As a KV key the opaque bytes stay delimited, so equal keys have equal bytes.
    let k = kv(opaque(), opaque());
    let enc = k
        .encode_to_vec(
            &Value::kv(Value::bytes(*b"key"), Value::bytes(*b"value")),
            Outer,
        )
        .unwrap();
    assert_eq!(enc, b"\x03keyvalue");
    let (key, value) = k.split_kv(&enc, Outer).unwrap();
    assert_eq!((key, value), (&b"\x03key"[..], &b"value"[..]));

    // Unknown URNs (with or without components) build to opaque coders.
    let mut m = HashMap::new();
    m.insert(
        "t".to_string(),
        pb::Coder {
            spec: Some(pb::FunctionSpec {
                urn: "beam:coder:tuple:v1".into(),
                payload: vec![],
            }),
            component_coder_ids: vec!["x".into()],
        },
    );
    assert_eq!(
        coder_from_proto("t", &m).unwrap(),
        Coder::Opaque {
            urn: "beam:coder:tuple:v1".into()
        }
    );
}

#[test]
fn nested_versus_outer() {
    let s = Value::string("abc");
    assert_eq!(
        Coder::StringUtf8.encode_to_vec(&s, Nested).unwrap(),
        b"\x03abc"
    );
    assert_eq!(Coder::StringUtf8.encode_to_vec(&s, Outer).unwrap(), b"abc");
    // KV: the key is always nested; the value takes the KV's context.
    let c = kv(Coder::StringUtf8, Coder::Bytes);
    let v = Value::kv(Value::string("k"), Value::bytes(*b"v"));
    assert_eq!(c.encode_to_vec(&v, Nested).unwrap(), b"\x01k\x01v");
    assert_eq!(c.encode_to_vec(&v, Outer).unwrap(), b"\x01kv");
    // Length prefix is the same in both contexts; its component is outer.
    let lp = Coder::LengthPrefix(Box::new(Coder::Bytes));
    for ctx in [Nested, Outer] {
        assert_eq!(
            lp.encode_to_vec(&Value::bytes(*b"abc"), ctx).unwrap(),
            b"\x03abc"
        );
    }
    // Nullable passes its context on (Python: TupleCoder of nullable str).
    let n = kv(
        Coder::LengthPrefix(Box::new(Coder::StringUtf8)),
        Coder::Nullable(Box::new(Coder::StringUtf8)),
    );
    assert_eq!(
        n.encode_to_vec(&Value::kv(Value::string("k"), Value::string("v")), Outer)
            .unwrap(),
        hex("016b0176")
    );
    assert_eq!(
        n.encode_to_vec(&Value::kv(Value::string("k"), Value::Null), Outer)
            .unwrap(),
        hex("016b00")
    );
    // Iterables and windowed values: elements nested, last value in context.
    let wv = Coder::WindowedValue {
        value: Box::new(Coder::Bytes),
        window: Box::new(Coder::GlobalWindow),
    };
    let v = Value::windowed(
        Value::bytes(*b"x"),
        0,
        vec![Value::GlobalWindow],
        PaneInfo::NO_FIRING,
    );
    assert_eq!(
        wv.encode_to_vec(&v, Outer).unwrap(),
        hex("8000000000000000000000010f78")
    );
    assert_eq!(
        wv.encode_to_vec(&v, Nested).unwrap(),
        hex("8000000000000000000000010f0178")
    );
}

#[test]
fn skip_matches_decode() {
    let schema = Arc::new(Schema::new(
        "s",
        vec![
            Field::new("a", FieldType::nullable(TypeKind::String)),
            Field::new(
                "b",
                FieldType::new(TypeKind::Array(Box::new(FieldType::nullable(
                    TypeKind::Int64,
                )))),
            ),
        ],
    ));
    let c = kv(
        Coder::Row(schema),
        Coder::Iterable(Box::new(Coder::WindowedValue {
            value: Box::new(opaque()),
            window: Box::new(Coder::IntervalWindow),
        })),
    );
    let v = Value::kv(
        Value::Row(vec![
            Value::Null,
            Value::Iterable(vec![Value::Int64(1), Value::Null]),
        ]),
        Value::Iterable(vec![Value::windowed(
            Value::bytes(*b"zz"),
            5,
            vec![Value::IntervalWindow(IntervalWindow { start: 0, end: 10 })],
            PaneInfo {
                is_first: false,
                is_last: false,
                timing: Timing::Late,
                index: 5,
                on_time_index: 3,
            },
        )]),
    );
    for ctx in [Nested, Outer] {
        let mut bytes = c.encode_to_vec(&v, ctx).unwrap();
        bytes.extend_from_slice(b"tail");
        let mut r = Reader::new(&bytes);
        c.skip(&mut r, Nested).unwrap();
        let skipped = r.position();
        let mut r = Reader::new(&bytes);
        assert_eq!(c.decode_from(&mut r, Nested).unwrap(), v);
        assert_eq!(r.position(), skipped);
        if ctx == Nested {
            assert_eq!(r.rest(), b"tail");
        }
    }
}

// ---------------------------------------------------------------------------
// Fixtures from the apache-beam 2.77 Python SDK.

#[test]
fn python_sdk_windowed_value_panes() {
    let c = Coder::WindowedValue {
        value: Box::new(Coder::VarInt),
        window: Box::new(Coder::IntervalWindow),
    };
    let cases = [
        ((false, false, Timing::Late, 5, 3), "28050307"),
        ((true, false, Timing::Early, 0, -1), "110007"),
        ((false, false, Timing::Early, 4, -1), "100407"),
        ((false, true, Timing::OnTime, 2, 2), "160207"),
        ((false, false, Timing::Late, 300, 299), "28ac02ab0207"),
    ];
    for ((is_first, is_last, timing, index, on_time_index), tail) in cases {
        let v = Value::windowed(
            Value::Int64(7),
            123_000,
            vec![Value::IntervalWindow(IntervalWindow {
                start: -5_000,
                end: 10_000,
            })],
            PaneInfo {
                is_first,
                is_last,
                timing,
                index,
                on_time_index,
            },
        );
        let want = hex(&format!(
            "800000000001e0780000000180000000000027109875{tail}"
        ));
        assert_eq!(
            c.encode_to_vec(&v, Outer).unwrap(),
            want,
            "{timing:?} {index}"
        );
        assert_eq!(c.decode(&want, Outer).unwrap(), v);
    }
}

#[test]
fn python_sdk_unknown_length_iterable() {
    let c = Coder::Iterable(Box::new(Coder::VarInt));
    assert_eq!(
        c.decode(&hex("ffffffff0301020300"), Nested).unwrap(),
        Value::Iterable(vec![Value::Int64(1), Value::Int64(2), Value::Int64(3)])
    );
}

const PY_SCHEMA: &str = "0a080a0266301a0210030a100a0266311a0a08011a060a04080110040a2f0a0266321a292a270a02100712210801321d0a1b0a070a01611a0210020a090a01621a04080110011205696e6e65720a0a0a0266331a04080110050a0a0a0266341a04080110060a0a0a0266351a04080110080a0a0a0266361a04080110090a0a0a0266371a04080110070a0a0a0266381a04080110040a0a0a0266391a04080110040a0d0a036631301a0622040a02100712056f75746572";

fn py_row_coder() -> Coder {
    let mut m = HashMap::new();
    m.insert(
        "row".to_string(),
        pb::Coder {
            spec: Some(pb::FunctionSpec {
                urn: "beam:coder:row:v1".into(),
                payload: pb::Schema::decode(&hex(PY_SCHEMA)[..])
                    .unwrap()
                    .encode_to_vec(),
            }),
            component_coder_ids: vec![],
        },
    );
    coder_from_proto("row", &m).unwrap()
}

#[test]
fn python_sdk_rows() {
    let c = py_row_coder();
    // f0 int32, f1 nullable array<nullable int64>, f2 map<string, nullable row<a int16, b nullable byte>>,
    // f3 float?, f4 double?, f5 bool?, f6 bytes?, f7 string?, f8 int64?, f9 int64?, f10 iterable<string>
    let full = Value::Row(vec![
        Value::Int32(-7),
        Value::Iterable(vec![Value::Int64(1), Value::Null, Value::Int64(-2)]),
        Value::Map(vec![
            (
                Value::string("x"),
                Value::Row(vec![Value::Int16(-300), Value::Null]),
            ),
            (Value::string("y"), Value::Null),
        ]),
        Value::Null,
        Value::Double(2.5),
        Value::Null,
        Value::bytes(*b"\x00\xff"),
        Value::Null,
        Value::Null,
        Value::Int64(-1),
        Value::Iterable(vec![Value::string("p"), Value::string("q")]),
    ]);
    let want = hex("0b02a801f9ffffff0f0000000301010001feffffffffffffffff0100000002017801020102fed401790040040000000000000200ffffffffffffffffffff010000000201700171");
    let mut nulls = vec![Value::Null; 11];
    nulls[0] = Value::Int32(1);
    nulls[2] = Value::Map(vec![]);
    nulls[10] = Value::Iterable(vec![]);
    let nulls_want = hex("0b02fa03010000000000000000");
    let one_byte = Value::Row(vec![
        Value::Int32(1),
        Value::Null,
        Value::Map(vec![]),
        Value::Float(1.5),
        Value::Null,
        Value::Bool(true),
        Value::bytes(*b""),
        Value::string("s"),
        Value::Int64(3),
        Value::Int64(4),
        Value::Iterable(vec![]),
    ]);
    let one_byte_want = hex("0b02120001000000003fc0000001000173030400000000");
    for (v, bytes) in [
        (full, want),
        (Value::Row(nulls), nulls_want),
        (one_byte.clone(), one_byte_want),
    ] {
        for ctx in [Nested, Outer] {
            assert_eq!(c.encode_to_vec(&v, ctx).unwrap(), bytes);
            assert_eq!(c.decode(&bytes, ctx).unwrap(), v);
        }
    }
    // Java trims trailing zero bytes of the bitmap; both forms decode alike.
    let java = hex("0b011201000000003fc0000001000173030400000000");
    assert_eq!(c.decode(&java, Outer).unwrap(), one_byte);
}

#[test]
fn python_sdk_decimals() {
    let schema = Arc::new(Schema::new(
        "d",
        vec![Field::new(
            "d",
            FieldType::new(TypeKind::Logical(Box::new(wasmbeam_coders::LogicalType {
                urn: "beam:logical_type:decimal:v1".into(),
                payload: vec![],
                representation: FieldType::new(TypeKind::Bytes),
                encoding: wasmbeam_coders::LogicalEncoding::Decimal,
            }))),
        )],
    ));
    let c = Coder::Row(schema);
    let dec = |unscaled: &str, scale| {
        Value::Row(vec![Value::Decimal {
            unscaled: hex(unscaled),
            scale,
        }])
    };
    // Python writes the scale as a 64-bit varint; Java (and this crate) as a
    // 32-bit one. Both decode to the same value.
    for (py, v) in [
        ("0301ff", dec("ff", 3)),
        ("000100", dec("00", 0)),
        (
            "010d0f951a9fa3a286c94f0e766c98",
            dec("0f951a9fa3a286c94f0e766c98", 1),
        ),
        ("feffffffffffffffff010101", dec("01", -2)),
    ] {
        let row = hex(&format!("0100{py}"));
        assert_eq!(c.decode(&row, Outer).unwrap(), v);
    }
    assert_eq!(
        c.encode_to_vec(&dec("01", -2), Outer).unwrap(),
        hex("0100feffffff0f0101")
    );
}

// ---------------------------------------------------------------------------
// Resource limits.

#[test]
fn zero_byte_elements_share_one_budget_per_value() {
    // Iterable<Iterable<GlobalWindow>>: each inner iterable costs 4 bytes of
    // input but could claim 2^31 elements; the budget is per decoded value.
    let c = Coder::Iterable(Box::new(Coder::Iterable(Box::new(Coder::GlobalWindow))));
    let mut bytes = 1000u32.to_be_bytes().to_vec();
    for _ in 0..1000 {
        bytes.extend_from_slice(&(1u32 << 20).to_be_bytes());
    }
    let e = c.decode(&bytes, Nested).unwrap_err();
    assert!(e.message.contains("zero-byte encoding"), "{e}");
    assert!(c.skip(&mut Reader::new(&bytes), Nested).is_err());
    // Also through length prefixes.
    let lp = Coder::Iterable(Box::new(Coder::LengthPrefix(Box::new(Coder::Iterable(
        Box::new(Coder::GlobalWindow),
    )))));
    let mut bytes = 3u32.to_be_bytes().to_vec();
    for _ in 0..3 {
        bytes.push(4);
        bytes.extend_from_slice(&(1u32 << 19).to_be_bytes());
    }
    assert!(lp.decode(&bytes, Nested).is_err());
    // But a stream of many small values through one reader is fine.
    let wv = Coder::WindowedValue {
        value: Box::new(Coder::VarInt),
        window: Box::new(Coder::GlobalWindow),
    };
    let one = wv
        .encode_to_vec(
            &Value::windowed(
                Value::Int64(1),
                0,
                vec![Value::GlobalWindow],
                PaneInfo::NO_FIRING,
            ),
            Nested,
        )
        .unwrap();
    let stream = one.repeat(3000);
    let mut r = Reader::new(&stream);
    while !r.is_empty() {
        wv.decode_from(&mut r, Nested).unwrap();
    }
}

#[test]
fn deep_trees_do_not_overflow_the_stack() {
    use wasmbeam_coders::MAX_DEPTH;
    fn nest(levels: usize) -> Coder {
        let mut c = Coder::VarInt;
        for _ in 0..levels {
            c = Coder::Nullable(Box::new(c));
        }
        c
    }
    let ok = nest(MAX_DEPTH);
    let mut bytes = vec![1u8; MAX_DEPTH];
    bytes.push(5);
    assert_eq!(ok.decode(&bytes, Nested).unwrap(), Value::Int64(5));
    assert_eq!(ok.encode_to_vec(&Value::Int64(5), Nested).unwrap(), bytes);
    let too_deep = nest(MAX_DEPTH + 5);
    let e = too_deep.decode(&[1u8; 200], Nested).unwrap_err();
    assert!(e.message.contains("nested more than"), "{e}");
    assert!(too_deep
        .skip(&mut Reader::new(&[1u8; 200]), Nested)
        .is_err());
    assert!(too_deep.encode_to_vec(&Value::Int64(5), Nested).is_err());

    // Rows nested inside rows count towards the same limit.
    let mut schema = Schema::new(
        "leaf",
        vec![Field::new("x", FieldType::new(TypeKind::Int64))],
    );
    for i in 0..MAX_DEPTH {
        schema = Schema::new(
            format!("s{i}"),
            vec![Field::new(
                "r",
                FieldType::new(TypeKind::Row(Arc::new(schema))),
            )],
        );
    }
    let c = Coder::Row(Arc::new(schema));
    let bytes = [1u8, 0].repeat(MAX_DEPTH + 1);
    assert!(c.decode(&bytes, Nested).is_err());
}

#[test]
fn param_windowed_value_payloads() {
    use wasmbeam_coders::{param_windowed_value_payload, parse_param_windowed_value_payload};
    let windows = vec![Value::IntervalWindow(IntervalWindow { start: 10, end: 20 })];
    let pane = PaneInfo {
        is_first: false,
        is_last: true,
        timing: Timing::OnTime,
        index: 30,
        on_time_index: 40,
    };
    let payload =
        param_windowed_value_payload(1000, &windows, &pane, &Coder::IntervalWindow).unwrap();
    // The payload of the standard_coders.yaml example.
    assert_eq!(
        payload,
        hex("80000000000003e80000000180000000000000140a261e2800")
    );
    assert_eq!(
        parse_param_windowed_value_payload(&payload, &Coder::IntervalWindow).unwrap(),
        (1000, windows, pane)
    );
}
