//! Row schemas and `beam:coder:row:v1`.
//!
//! A row is encoded as:
//!
//! 1. the number of fields, as a varint;
//! 2. a null bitmap as length-prefixed bytes: bit `i % 8` of byte `i / 8` is
//!    set when field `i` (schema order) is null. No nulls: an empty bitmap.
//!    When there are nulls this crate writes `ceil(fields / 8)` bytes, as the
//!    Python SDK does (Java's `BitSet.toByteArray` drops trailing zero
//!    bytes; the two agree for rows of up to 8 fields). Readers accept any
//!    length;
//! 3. each non-null field, nested, in encoding order (schema order unless
//!    the schema sets encoding positions).
//!
//! Field values ([`Value`] variants):
//!
//! | schema type | encoding | value |
//! |---|---|---|
//! | `BYTE` | one byte | [`Value::Byte`] |
//! | `INT16` | big-endian, 2 bytes | [`Value::Int16`] |
//! | `INT32` | 32-bit varint (negative: 5 bytes) | [`Value::Int32`] |
//! | `INT64` | varint | [`Value::Int64`] |
//! | `FLOAT` / `DOUBLE` | big-endian IEEE-754 | [`Value::Float`] / [`Value::Double`] |
//! | `STRING` / `BYTES` | length-prefixed | [`Value::String`] / [`Value::Bytes`] |
//! | `BOOLEAN` | one byte | [`Value::Bool`] |
//! | array, iterable | as `beam:coder:iterable:v1` | [`Value::Iterable`] |
//! | map | big-endian `i32` count, then key, value, key, value... | [`Value::Map`] |
//! | row | nested row | [`Value::Row`] |
//! | logical `millis_instant` | 8-byte timestamp (sign bit flipped) | [`Value::Timestamp`] |
//! | logical `decimal` | 32-bit varint scale, then length-prefixed two's-complement unscaled value | [`Value::Decimal`] |
//! | other logical types | as their representation type | the representation's value |
//!
//! Nullable types inside arrays, maps and logical representations carry a
//! one-byte marker (0 null, 1 present) like `beam:coder:nullable:v1`.
//!
//! When decoding, an encoded field count smaller than the schema's leaves
//! the missing trailing fields null (Beam's schema-evolution rule); a larger
//! count is accepted only if the extra fields are all null.

use std::sync::Arc;

use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::logical_types::enum_ as logical_urn;

use crate::coder::{read_bool, read_presence, utf8, walk_iterable, write_count, MAX_DEPTH};
use crate::error::{CodecError, SchemaError};
use crate::reader::Reader;
use crate::time::{decode_timestamp, encode_timestamp};
use crate::value::Value;
use crate::varint;

/// Legacy Java URN for date-times; encoded like `millis_instant`.
pub const DATETIME_LOGICAL_URN: &str = "beam:logical_type:datetime:v1";

/// A row schema: named, typed fields plus the order they are encoded in.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    id: String,
    fields: Vec<Field>,
    encoding_order: Vec<usize>,
}

/// One field of a [`Schema`].
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field name.
    pub name: String,
    /// The field type.
    pub field_type: FieldType,
}

/// A field type: a kind plus nullability.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldType {
    /// Whether values may be null.
    pub nullable: bool,
    /// What the values are.
    pub kind: TypeKind,
}

/// The kind of a [`FieldType`].
#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    /// 8-bit signed integer.
    Byte,
    /// 16-bit signed integer.
    Int16,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 32-bit float.
    Float,
    /// 64-bit float.
    Double,
    /// UTF-8 string.
    String,
    /// Boolean.
    Boolean,
    /// Byte string.
    Bytes,
    /// Array of the element type.
    Array(Box<FieldType>),
    /// Iterable of the element type (encoded like an array).
    Iterable(Box<FieldType>),
    /// Map from key type to value type.
    Map(Box<FieldType>, Box<FieldType>),
    /// Nested row.
    Row(Arc<Schema>),
    /// Logical type.
    Logical(Box<LogicalType>),
}

/// A logical type: a URN with a representation type.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalType {
    /// The logical type URN.
    pub urn: String,
    /// The logical type's payload (opaque here).
    pub payload: Vec<u8>,
    /// The representation type.
    pub representation: FieldType,
    /// How values are encoded.
    pub encoding: LogicalEncoding,
}

/// How a logical type's values are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalEncoding {
    /// As the representation type.
    Representation,
    /// `millis_instant`: an 8-byte timestamp, value [`Value::Timestamp`].
    MillisInstant,
    /// `decimal`: scale varint and unscaled bytes, value [`Value::Decimal`].
    Decimal,
}

impl LogicalEncoding {
    /// The encoding the SDKs use for a logical type URN.
    pub fn for_urn(urn: &str) -> LogicalEncoding {
        match urn {
            logical_urn::MILLIS_INSTANT | DATETIME_LOGICAL_URN => LogicalEncoding::MillisInstant,
            logical_urn::DECIMAL => LogicalEncoding::Decimal,
            _ => LogicalEncoding::Representation,
        }
    }
}

impl FieldType {
    /// A non-nullable field type of the given kind.
    pub fn new(kind: TypeKind) -> FieldType {
        FieldType {
            nullable: false,
            kind,
        }
    }

    /// A nullable field type of the given kind.
    pub fn nullable(kind: TypeKind) -> FieldType {
        FieldType {
            nullable: true,
            kind,
        }
    }
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<String>, field_type: FieldType) -> Field {
        Field {
            name: name.into(),
            field_type,
        }
    }
}

impl Schema {
    /// A schema whose fields are encoded in order.
    pub fn new(id: impl Into<String>, fields: Vec<Field>) -> Schema {
        let encoding_order = (0..fields.len()).collect();
        Schema {
            id: id.into(),
            fields,
            encoding_order,
        }
    }

    /// A schema with explicit encoding positions: `positions[i]` is the
    /// position of field `i`; fields are encoded by increasing position.
    /// Positions must be distinct.
    pub fn with_encoding_positions(
        id: impl Into<String>,
        fields: Vec<Field>,
        positions: &[i64],
    ) -> Result<Schema, SchemaError> {
        let id = id.into();
        if positions.len() != fields.len() {
            return Err(SchemaError {
                path: format!("`{id}`"),
                message: format!(
                    "{} encoding positions for {} fields",
                    positions.len(),
                    fields.len()
                ),
            });
        }
        let mut order: Vec<usize> = (0..fields.len()).collect();
        order.sort_by_key(|&i| positions[i]);
        if let Some(w) = order
            .windows(2)
            .find(|w| positions[w[0]] == positions[w[1]])
        {
            return Err(SchemaError {
                path: format!("`{id}`"),
                message: format!(
                    "fields `{}` and `{}` share encoding position {}",
                    fields[w[0]].name, fields[w[1]].name, positions[w[0]]
                ),
            });
        }
        Ok(Schema {
            id,
            fields,
            encoding_order: order,
        })
    }

    /// Converts a `Schema` proto (a row coder's payload).
    pub fn from_proto(proto: &pb::Schema) -> Result<Schema, SchemaError> {
        schema_from_proto(proto, 0, "")
    }

    /// The schema id (a UUID in practice; may be empty).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fields, in schema order (the order of [`Value::Row`] values).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// Field indices in the order they are encoded.
    pub fn encoding_order(&self) -> &[usize] {
        &self.encoding_order
    }

    /// The index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_owned()
    } else {
        format!("{path} > {part}")
    }
}

fn schema_from_proto(proto: &pb::Schema, depth: usize, path: &str) -> Result<Schema, SchemaError> {
    let here = if path.is_empty() {
        format!("`{}`", proto.id)
    } else {
        path.to_owned()
    };
    if depth > MAX_DEPTH {
        return Err(SchemaError {
            path: here,
            message: format!("nested more than {MAX_DEPTH} levels deep"),
        });
    }
    let mut fields = Vec::with_capacity(proto.fields.len());
    for f in &proto.fields {
        let fpath = join(&here, &format!("field `{}`", f.name));
        let Some(t) = &f.r#type else {
            return Err(SchemaError {
                path: fpath,
                message: "field has no type".into(),
            });
        };
        fields.push(Field {
            name: f.name.clone(),
            field_type: field_type_from_proto(t, depth + 1, &fpath)?,
        });
    }
    if proto.encoding_positions_set {
        let positions: Vec<i64> = proto
            .fields
            .iter()
            .map(|f| i64::from(f.encoding_position))
            .collect();
        Schema::with_encoding_positions(proto.id.clone(), fields, &positions).map_err(|mut e| {
            e.path = here;
            e
        })
    } else {
        Ok(Schema::new(proto.id.clone(), fields))
    }
}

fn field_type_from_proto(
    t: &pb::FieldType,
    depth: usize,
    path: &str,
) -> Result<FieldType, SchemaError> {
    use pb::field_type::TypeInfo;
    let err = |message: String| SchemaError {
        path: path.to_owned(),
        message,
    };
    if depth > MAX_DEPTH {
        return Err(err(format!("nested more than {MAX_DEPTH} levels deep")));
    }
    let sub = |t: &Option<Box<pb::FieldType>>, what: &str| -> Result<Box<FieldType>, SchemaError> {
        let p = join(path, what);
        match t {
            Some(t) => Ok(Box::new(field_type_from_proto(t, depth + 1, &p)?)),
            None => Err(SchemaError {
                path: p,
                message: "type is missing".into(),
            }),
        }
    };
    let kind = match &t.type_info {
        None => return Err(err("field type has no type_info".into())),
        Some(TypeInfo::AtomicType(a)) => match pb::AtomicType::try_from(*a) {
            Ok(pb::AtomicType::Byte) => TypeKind::Byte,
            Ok(pb::AtomicType::Int16) => TypeKind::Int16,
            Ok(pb::AtomicType::Int32) => TypeKind::Int32,
            Ok(pb::AtomicType::Int64) => TypeKind::Int64,
            Ok(pb::AtomicType::Float) => TypeKind::Float,
            Ok(pb::AtomicType::Double) => TypeKind::Double,
            Ok(pb::AtomicType::String) => TypeKind::String,
            Ok(pb::AtomicType::Boolean) => TypeKind::Boolean,
            Ok(pb::AtomicType::Bytes) => TypeKind::Bytes,
            Ok(pb::AtomicType::Unspecified) | Err(_) => {
                return Err(err(format!("unsupported atomic type {a}")))
            }
        },
        Some(TypeInfo::ArrayType(a)) => TypeKind::Array(sub(&a.element_type, "array element")?),
        Some(TypeInfo::IterableType(a)) => {
            TypeKind::Iterable(sub(&a.element_type, "iterable element")?)
        }
        Some(TypeInfo::MapType(m)) => TypeKind::Map(
            sub(&m.key_type, "map key")?,
            sub(&m.value_type, "map value")?,
        ),
        Some(TypeInfo::RowType(r)) => {
            let Some(s) = &r.schema else {
                return Err(err("row type has no schema".into()));
            };
            TypeKind::Row(Arc::new(schema_from_proto(
                s,
                depth + 1,
                &join(path, "row"),
            )?))
        }
        Some(TypeInfo::LogicalType(l)) => {
            let encoding = LogicalEncoding::for_urn(&l.urn);
            let representation = match (&l.representation, encoding) {
                (Some(_), _) => *sub(
                    &l.representation,
                    &format!("logical type {} representation", l.urn),
                )?,
                (None, LogicalEncoding::MillisInstant) => FieldType::new(TypeKind::Int64),
                (None, LogicalEncoding::Decimal) => FieldType::new(TypeKind::Bytes),
                (None, LogicalEncoding::Representation) => {
                    return Err(err(format!("logical type {} has no representation", l.urn)))
                }
            };
            TypeKind::Logical(Box::new(LogicalType {
                urn: l.urn.clone(),
                payload: l.payload.clone(),
                representation,
                encoding,
            }))
        }
    };
    Ok(FieldType {
        nullable: t.nullable,
        kind,
    })
}

// ---------------------------------------------------------------------------
// Encoding, decoding, skipping.

fn mismatch(what: &str, v: &Value, out: &[u8]) -> CodecError {
    CodecError::encode(
        out.len(),
        format!("row {what} field cannot hold a {} value", v.kind()),
    )
}

fn too_deep_enc(out: &[u8]) -> CodecError {
    CodecError::encode(
        out.len(),
        format!("row types nested more than {MAX_DEPTH} levels deep"),
    )
}

fn too_deep_dec(r: &Reader<'_>) -> CodecError {
    r.error(format!(
        "row types nested more than {MAX_DEPTH} levels deep"
    ))
}

pub(crate) fn encode_row(
    schema: &Schema,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep_enc(out));
    }
    let Value::Row(values) = v else {
        return Err(CodecError::encode(
            out.len(),
            format!("row coder cannot encode a {} value", v.kind()),
        ));
    };
    let n = schema.fields.len();
    if values.len() != n {
        return Err(CodecError::encode(
            out.len(),
            format!(
                "row value has {} fields but schema `{}` has {n}",
                values.len(),
                schema.id
            ),
        ));
    }
    varint::encode_u64(n as u64, out);
    if values.iter().any(|v| matches!(v, Value::Null)) {
        let len = n.div_ceil(8);
        varint::encode_u64(len as u64, out);
        let start = out.len();
        out.resize(start + len, 0);
        for (i, v) in values.iter().enumerate() {
            if matches!(v, Value::Null) {
                out[start + i / 8] |= 1 << (i % 8);
            }
        }
    } else {
        out.push(0);
    }
    for &idx in &schema.encoding_order {
        let (Some(field), Some(value)) = (schema.fields.get(idx), values.get(idx)) else {
            return Err(CodecError::encode(
                out.len(),
                "schema encoding order is corrupt",
            ));
        };
        if matches!(value, Value::Null) {
            if !field.field_type.nullable {
                return Err(CodecError::encode(
                    out.len(),
                    format!(
                        "row field `{}` is not nullable but the value is null",
                        field.name
                    ),
                ));
            }
            continue;
        }
        encode_kind(&field.field_type, value, out, depth + 1).map_err(|mut e| {
            if !e.message.starts_with("row field `") {
                e.message = format!("row field `{}`: {}", field.name, e.message);
            }
            e
        })?;
    }
    Ok(())
}

/// Encodes a value of a field type inside a container: with a presence
/// marker if the type is nullable.
fn encode_value(
    t: &FieldType,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    if t.nullable {
        if matches!(v, Value::Null) {
            out.push(0);
            return Ok(());
        }
        out.push(1);
    }
    encode_kind(t, v, out, depth)
}

fn encode_kind(
    t: &FieldType,
    v: &Value,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep_enc(out));
    }
    let d = depth + 1;
    match (&t.kind, v) {
        (TypeKind::Byte, Value::Byte(b)) => out.push(*b as u8),
        (TypeKind::Int16, Value::Int16(i)) => out.extend_from_slice(&i.to_be_bytes()),
        (TypeKind::Int32, Value::Int32(i)) => varint::encode_i32(*i, out),
        (TypeKind::Int64, Value::Int64(i)) => varint::encode_i64(*i, out),
        (TypeKind::Float, Value::Float(f)) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
        (TypeKind::Double, Value::Double(f)) => out.extend_from_slice(&f.to_bits().to_be_bytes()),
        (TypeKind::String, Value::String(s)) => {
            crate::reader::write_length_prefixed(s.as_bytes(), out)
        }
        (TypeKind::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
        (TypeKind::Bytes, Value::Bytes(b)) => crate::reader::write_length_prefixed(b, out),
        (TypeKind::Array(e) | TypeKind::Iterable(e), Value::Iterable(items)) => {
            write_count(items.len(), "array", out)?;
            for item in items {
                encode_value(e, item, out, d)?;
            }
        }
        (TypeKind::Map(kt, vt), Value::Map(entries)) => {
            write_count(entries.len(), "map", out)?;
            for (k, val) in entries {
                encode_value(kt, k, out, d)?;
                encode_value(vt, val, out, d)?;
            }
        }
        (TypeKind::Row(s), Value::Row(_)) => encode_row(s, v, out, d)?,
        (TypeKind::Logical(l), _) => match (l.encoding, v) {
            (LogicalEncoding::MillisInstant, Value::Timestamp(ms)) => encode_timestamp(*ms, out),
            (LogicalEncoding::Decimal, Value::Decimal { unscaled, scale }) => {
                varint::encode_i32(*scale, out);
                crate::reader::write_length_prefixed(unscaled, out);
            }
            (LogicalEncoding::Representation, _) => encode_value(&l.representation, v, out, d)?,
            _ => return Err(mismatch(&l.urn, v, out)),
        },
        (kind, _) => return Err(mismatch(kind_name(kind), v, out)),
    }
    Ok(())
}

fn kind_name(k: &TypeKind) -> &'static str {
    match k {
        TypeKind::Byte => "BYTE",
        TypeKind::Int16 => "INT16",
        TypeKind::Int32 => "INT32",
        TypeKind::Int64 => "INT64",
        TypeKind::Float => "FLOAT",
        TypeKind::Double => "DOUBLE",
        TypeKind::String => "STRING",
        TypeKind::Boolean => "BOOLEAN",
        TypeKind::Bytes => "BYTES",
        TypeKind::Array(_) => "array",
        TypeKind::Iterable(_) => "iterable",
        TypeKind::Map(..) => "map",
        TypeKind::Row(_) => "row",
        TypeKind::Logical(_) => "logical",
    }
}

/// Reads the row header; returns the encoded field count and null bitmap,
/// after checking that encoded fields beyond the schema are null.
fn read_header<'a>(schema: &Schema, r: &mut Reader<'a>) -> Result<(u64, &'a [u8]), CodecError> {
    let start = r.offset();
    let count = r.read_varint_u64("row field count")?;
    let bitmap = r.read_length_prefixed("row null bitmap")?;
    let n = schema.fields.len() as u64;
    if count > n {
        let extra = count - n;
        let bits = (bitmap.len() as u64).saturating_mul(8);
        let all_null = count <= bits && (n..count).all(|i| is_null(bitmap, i));
        if !all_null {
            return Err(CodecError::decode(
                start,
                format!(
                    "row has {count} fields but schema `{}` has {n}, and the {extra} extra field(s) are not all null",
                    schema.id
                ),
            ));
        }
    }
    Ok((count, bitmap))
}

#[inline]
fn is_null(bitmap: &[u8], i: u64) -> bool {
    usize::try_from(i / 8)
        .ok()
        .and_then(|byte| bitmap.get(byte))
        .is_some_and(|b| (b >> (i % 8)) & 1 == 1)
}

pub(crate) fn decode_row(
    schema: &Schema,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Value, CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep_dec(r));
    }
    let (count, bitmap) = read_header(schema, r)?;
    let mut values = vec![Value::Null; schema.fields.len()];
    for (pos, &idx) in schema.encoding_order.iter().enumerate() {
        if pos as u64 >= count {
            break;
        }
        if is_null(bitmap, idx as u64) {
            continue;
        }
        let (Some(field), Some(slot)) = (schema.fields.get(idx), values.get_mut(idx)) else {
            return Err(r.error("schema encoding order is corrupt"));
        };
        *slot = decode_kind(&field.field_type, r, depth + 1)?;
    }
    Ok(Value::Row(values))
}

fn decode_value(t: &FieldType, r: &mut Reader<'_>, depth: usize) -> Result<Value, CodecError> {
    if t.nullable && !read_presence(r, "nullable row value")? {
        return Ok(Value::Null);
    }
    decode_kind(t, r, depth)
}

fn decode_kind(t: &FieldType, r: &mut Reader<'_>, depth: usize) -> Result<Value, CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep_dec(r));
    }
    let d = depth + 1;
    Ok(match &t.kind {
        TypeKind::Byte => Value::Byte(r.read_u8("BYTE field")? as i8),
        TypeKind::Int16 => Value::Int16(r.read_be_u16("INT16 field")? as i16),
        TypeKind::Int32 => Value::Int32(varint::decode_i32_from(r, "INT32 field")?),
        TypeKind::Int64 => Value::Int64(r.read_varint_i64("INT64 field")?),
        TypeKind::Float => Value::Float(f32::from_bits(r.read_be_u32("FLOAT field")?)),
        TypeKind::Double => Value::Double(f64::from_bits(r.read_be_u64("DOUBLE field")?)),
        TypeKind::String => {
            let bytes = r.read_length_prefixed("STRING field")?;
            Value::String(utf8(bytes, r, "STRING field")?)
        }
        TypeKind::Boolean => Value::Bool(read_bool(r, "BOOLEAN field")?),
        TypeKind::Bytes => Value::Bytes(r.read_length_prefixed("BYTES field")?.to_vec()),
        TypeKind::Array(e) | TypeKind::Iterable(e) => {
            let mut items = Vec::new();
            walk_iterable(r, "array field", min_len(e, d), false, |r| {
                items.push(decode_value(e, r, d)?);
                Ok(())
            })?;
            Value::Iterable(items)
        }
        TypeKind::Map(kt, vt) => {
            let start = r.offset();
            let n = read_map_len(r, start, min_len(kt, d).saturating_add(min_len(vt, d)))?;
            let mut entries = Vec::new();
            for _ in 0..n {
                let k = decode_value(kt, r, d)?;
                let v = decode_value(vt, r, d)?;
                entries.push((k, v));
            }
            Value::Map(entries)
        }
        TypeKind::Row(s) => decode_row(s, r, d)?,
        TypeKind::Logical(l) => match l.encoding {
            LogicalEncoding::MillisInstant => Value::Timestamp(decode_timestamp(r)?),
            LogicalEncoding::Decimal => {
                let scale = varint::decode_i32_from(r, "decimal scale")?;
                let unscaled = r.read_length_prefixed("decimal unscaled value")?.to_vec();
                Value::Decimal { unscaled, scale }
            }
            LogicalEncoding::Representation => decode_value(&l.representation, r, d)?,
        },
    })
}

fn read_map_len(r: &mut Reader<'_>, start: usize, min_entry: usize) -> Result<u64, CodecError> {
    let n = r.read_be_u32("map size")? as i32;
    if n < 0 {
        return Err(CodecError::decode(
            start,
            format!("map size {n} is negative"),
        ));
    }
    let n = n as u64;
    if n.saturating_mul(min_entry.max(1) as u64) > r.remaining() as u64 {
        return Err(CodecError::decode(
            start,
            format!(
                "map declares {n} entries of at least {} byte(s) each, but only {} bytes remain",
                min_entry.max(1),
                r.remaining()
            ),
        ));
    }
    Ok(n)
}

pub(crate) fn skip_row(
    schema: &Schema,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep_dec(r));
    }
    let (count, bitmap) = read_header(schema, r)?;
    for (pos, &idx) in schema.encoding_order.iter().enumerate() {
        if pos as u64 >= count {
            break;
        }
        if is_null(bitmap, idx as u64) {
            continue;
        }
        let Some(field) = schema.fields.get(idx) else {
            return Err(r.error("schema encoding order is corrupt"));
        };
        skip_kind(&field.field_type, r, depth + 1)?;
    }
    Ok(())
}

fn skip_value(t: &FieldType, r: &mut Reader<'_>, depth: usize) -> Result<(), CodecError> {
    if t.nullable && !read_presence(r, "nullable row value")? {
        return Ok(());
    }
    skip_kind(t, r, depth)
}

fn skip_kind(t: &FieldType, r: &mut Reader<'_>, depth: usize) -> Result<(), CodecError> {
    if depth > MAX_DEPTH {
        return Err(too_deep_dec(r));
    }
    let d = depth + 1;
    match &t.kind {
        TypeKind::Byte => r.skip_bytes(1, "BYTE field")?,
        TypeKind::Int16 => r.skip_bytes(2, "INT16 field")?,
        TypeKind::Int32 | TypeKind::Int64 => {
            r.read_varint_u64("integer field")?;
        }
        TypeKind::Float => r.skip_bytes(4, "FLOAT field")?,
        TypeKind::Double => r.skip_bytes(8, "DOUBLE field")?,
        TypeKind::String | TypeKind::Bytes => {
            r.read_length_prefixed("field data")?;
        }
        TypeKind::Boolean => r.skip_bytes(1, "BOOLEAN field")?,
        TypeKind::Array(e) | TypeKind::Iterable(e) => {
            walk_iterable(r, "array field", min_len(e, d), false, |r| {
                skip_value(e, r, d)
            })?;
        }
        TypeKind::Map(kt, vt) => {
            let start = r.offset();
            let n = read_map_len(r, start, min_len(kt, d).saturating_add(min_len(vt, d)))?;
            for _ in 0..n {
                skip_value(kt, r, d)?;
                skip_value(vt, r, d)?;
            }
        }
        TypeKind::Row(s) => skip_row(s, r, d)?,
        TypeKind::Logical(l) => match l.encoding {
            LogicalEncoding::MillisInstant => r.skip_bytes(8, "millis_instant field")?,
            LogicalEncoding::Decimal => {
                r.read_varint_u64("decimal scale")?;
                r.read_length_prefixed("decimal unscaled value")?;
            }
            LogicalEncoding::Representation => skip_value(&l.representation, r, d)?,
        },
    }
    Ok(())
}

/// Lower bound on the encoded length of a value of `t` inside a container.
fn min_len(t: &FieldType, depth: usize) -> usize {
    if t.nullable {
        return 1;
    }
    if depth > MAX_DEPTH {
        return 0;
    }
    match &t.kind {
        TypeKind::Byte | TypeKind::Int32 | TypeKind::Int64 | TypeKind::Boolean => 1,
        TypeKind::String | TypeKind::Bytes => 1,
        TypeKind::Int16 => 2,
        TypeKind::Float => 4,
        TypeKind::Double => 8,
        TypeKind::Array(_) | TypeKind::Iterable(_) | TypeKind::Map(..) => 4,
        TypeKind::Row(_) => 2,
        TypeKind::Logical(l) => match l.encoding {
            LogicalEncoding::MillisInstant => 8,
            LogicalEncoding::Decimal => 2,
            LogicalEncoding::Representation => min_len(&l.representation, depth + 1),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Coder, Context};

    fn schema() -> Schema {
        Schema::new(
            "s",
            vec![
                Field::new("a", FieldType::new(TypeKind::Int32)),
                Field::new("b", FieldType::nullable(TypeKind::String)),
            ],
        )
    }

    #[test]
    fn nulls_and_negative_int32() {
        let c = Coder::Row(Arc::new(schema()));
        let v = Value::Row(vec![Value::Int32(-1), Value::Null]);
        let b = c.encode_to_vec(&v, Context::Nested).unwrap();
        assert_eq!(b, [2, 1, 0b10, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(c.decode(&b, Context::Outer).unwrap(), v);
    }

    #[test]
    fn fewer_encoded_fields_are_null() {
        let c = Coder::Row(Arc::new(schema()));
        assert_eq!(
            c.decode(&[1, 0, 5], Context::Nested).unwrap(),
            Value::Row(vec![Value::Int32(5), Value::Null])
        );
        // An extra trailing field must be null.
        assert_eq!(
            c.decode(&[3, 1, 0b100, 5, 1, b'x'], Context::Nested)
                .unwrap(),
            Value::Row(vec![Value::Int32(5), Value::string("x")])
        );
        let e = c.decode(&[3, 0, 5, 1, b'x'], Context::Nested).unwrap_err();
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn null_in_non_nullable_field_is_an_encode_error() {
        let c = Coder::Row(Arc::new(schema()));
        let e = c
            .encode_to_vec(&Value::Row(vec![Value::Null, Value::Null]), Context::Nested)
            .unwrap_err();
        assert!(e.message.contains("`a` is not nullable"), "{e}");
    }

    #[test]
    fn encoding_positions() {
        let s = Schema::with_encoding_positions(
            "p",
            vec![
                Field::new("x", FieldType::new(TypeKind::Boolean)),
                Field::new("y", FieldType::new(TypeKind::Int64)),
            ],
            &[1, 0],
        )
        .unwrap();
        let c = Coder::Row(Arc::new(s));
        let v = Value::Row(vec![Value::Bool(true), Value::Int64(7)]);
        assert_eq!(c.encode_to_vec(&v, Context::Nested).unwrap(), [2, 0, 7, 1]);
        assert!(Schema::with_encoding_positions(
            "p",
            vec![
                Field::new("x", FieldType::new(TypeKind::Boolean)),
                Field::new("y", FieldType::new(TypeKind::Int64)),
            ],
            &[0, 0],
        )
        .is_err());
    }
}
