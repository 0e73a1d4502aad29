//! Decodes arbitrary bytes with a coder chosen by the first input bytes.
//!
//! Checks that decoding and skipping never panic, that skipping stops where
//! decoding does, and that re-encoding what was decoded reaches a fixed
//! point.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wasmbeam_coders::{
    Coder, Context, Field, FieldType, IntervalWindow, LogicalEncoding, LogicalType, PaneInfo,
    Reader, Schema, TypeKind, Value,
};

/// Consumes bytes from the front of the input to pick a structure.
struct Picker<'a> {
    bytes: &'a [u8],
}

impl Picker<'_> {
    fn next(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    fn coder(&mut self, depth: u32) -> Coder {
        let b = self.next();
        let leaf = depth == 0 || b < 128;
        if leaf {
            return match b % 10 {
                0 => Coder::Bytes,
                1 => Coder::StringUtf8,
                2 => Coder::Bool,
                3 => Coder::VarInt,
                4 => Coder::Double,
                5 => Coder::IntervalWindow,
                6 => Coder::GlobalWindow,
                7 => Coder::Opaque {
                    urn: "beam:coder:pickled_python:v1".into(),
                },
                _ => Coder::Row(Arc::new(self.schema(depth.min(2)))),
            };
        }
        let d = depth - 1;
        match b % 12 {
            0 => Coder::Kv(Box::new(self.coder(d)), Box::new(self.coder(d))),
            1 => Coder::Iterable(Box::new(self.coder(d))),
            2 => Coder::StateBackedIterable(Box::new(self.coder(d))),
            3 => Coder::LengthPrefix(Box::new(self.coder(d))),
            4 => Coder::Nullable(Box::new(self.coder(d))),
            5 => Coder::ShardedKey(Box::new(self.coder(d))),
            6 => Coder::CustomWindow(Box::new(self.coder(d))),
            7 => Coder::Timer {
                key: Box::new(self.coder(d)),
                window: Box::new(self.coder(d)),
            },
            8 => Coder::ParamWindowedValue {
                value: Box::new(self.coder(d)),
                window: Box::new(Coder::IntervalWindow),
                timestamp: 1000,
                windows: vec![Value::IntervalWindow(IntervalWindow { start: 10, end: 20 })],
                pane: PaneInfo::NO_FIRING,
            },
            _ => Coder::WindowedValue {
                value: Box::new(self.coder(d)),
                window: Box::new(self.coder(d)),
            },
        }
    }

    fn field_type(&mut self, depth: u32) -> FieldType {
        let b = self.next();
        let nullable = b & 1 == 1;
        let kind = match (b >> 1) % 16 {
            0 => TypeKind::Byte,
            1 => TypeKind::Int16,
            2 => TypeKind::Int32,
            3 => TypeKind::Int64,
            4 => TypeKind::Float,
            5 => TypeKind::Double,
            6 => TypeKind::String,
            7 => TypeKind::Boolean,
            8 => TypeKind::Bytes,
            9 => self.logical(
                "beam:logical_type:millis_instant:v1",
                FieldType::new(TypeKind::Int64),
            ),
            10 => self.logical(
                "beam:logical_type:decimal:v1",
                FieldType::new(TypeKind::Bytes),
            ),
            11 if depth > 0 => TypeKind::Array(Box::new(self.field_type(depth - 1))),
            12 if depth > 0 => TypeKind::Map(
                Box::new(self.field_type(depth - 1)),
                Box::new(self.field_type(depth - 1)),
            ),
            13 if depth > 0 => TypeKind::Row(Arc::new(self.schema(depth - 1))),
            14 if depth > 0 => {
                let representation = self.field_type(depth - 1);
                self.logical("beam:logical_type:fuzz:v1", representation)
            }
            _ => TypeKind::Int64,
        };
        FieldType { nullable, kind }
    }

    fn logical(&mut self, urn: &str, representation: FieldType) -> TypeKind {
        TypeKind::Logical(Box::new(LogicalType {
            urn: urn.into(),
            payload: Vec::new(),
            representation,
            encoding: LogicalEncoding::for_urn(urn),
        }))
    }

    fn schema(&mut self, depth: u32) -> Schema {
        let n = self.next() % 6;
        let fields = (0..n)
            .map(|i| Field::new(format!("f{i}"), self.field_type(depth)))
            .collect::<Vec<_>>();
        if self.next() & 1 == 1 {
            let positions: Vec<i64> = (0..i64::from(n)).rev().collect();
            Schema::with_encoding_positions("fuzz", fields, &positions).expect("distinct positions")
        } else {
            Schema::new("fuzz", fields)
        }
    }
}

fn normalize(coder: &Coder, bytes: &[u8], ctx: Context) -> Vec<u8> {
    let value = coder.decode(bytes, ctx).expect("encoded bytes decode");
    coder
        .encode_to_vec(&value, ctx)
        .expect("decoded value encodes")
}

fuzz_target!(|data: &[u8]| {
    let mut picker = Picker { bytes: data };
    let coder = picker.coder(4);
    let ctx = if picker.next() & 1 == 0 {
        Context::Nested
    } else {
        Context::Outer
    };
    let bytes = picker.bytes;

    let mut r = Reader::new(bytes);
    let decoded = coder.decode_from(&mut r, ctx);
    let mut s = Reader::new(bytes);
    let skipped = coder.skip(&mut s, ctx);
    let _ = coder.decode(bytes, ctx);

    if let Ok(value) = decoded {
        assert!(
            skipped.is_ok(),
            "decode succeeded but skip failed: {skipped:?}"
        );
        assert_eq!(
            r.position(),
            s.position(),
            "skip and decode stopped at different offsets"
        );
        // Not every decodable input is canonical (non-minimal varints, pane
        // forms the SDKs never write, ...), and a null bit may be set for a
        // non-nullable row field. Re-encoding normalizes; two rounds reach a
        // fixed point (an early pane written with two zero indices takes
        // two: it decodes with on-time index 0, is re-encoded in the short
        // form, and that decodes with on-time index -1, as in Beam).
        if let Ok(first) = coder.encode_to_vec(&value, ctx) {
            let second = normalize(&coder, &first, ctx);
            let third = normalize(&coder, &second, ctx);
            assert_eq!(third, second, "encoding is not a fixed point");
        }
    }
});
