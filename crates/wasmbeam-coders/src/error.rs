//! Error types: [`CodecError`] for encoding and decoding, [`BuildError`] for
//! turning `Coder` protos into a [`crate::Coder`] tree.

use std::fmt;

/// Whether a [`CodecError`] happened while reading or while writing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Decoding (or skipping): the offset is into the input buffer.
    Decode,
    /// Encoding: the offset is the output length when the problem was found.
    Encode,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Direction::Decode => Ok(()),
            Direction::Encode => f.write_str("encode, output "),
        }
    }
}

/// A value could not be encoded or bytes could not be decoded.
///
/// The message always names the byte offset where the problem was found,
/// e.g. `byte 17: expected 5 bytes of string_utf8 data, 2 remain`. When
/// decoding, the offset is into the buffer given to [`crate::Coder::decode`]
/// (or the [`crate::Reader`]'s origin); when encoding it is the length of the
/// output buffer at the point of failure, and the message starts with
/// `encode, output byte N:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{direction}byte {offset}: {message}")]
pub struct CodecError {
    /// Byte offset (see the type docs for what it is relative to).
    pub offset: usize,
    /// What was expected there, in words.
    pub message: String,
    /// Whether this came from decoding or encoding.
    pub direction: Direction,
}

impl CodecError {
    /// A decoding error at `offset`.
    pub fn decode(offset: usize, message: impl Into<String>) -> Self {
        CodecError {
            offset,
            message: message.into(),
            direction: Direction::Decode,
        }
    }

    /// An encoding error; `offset` is the output length at the failure.
    pub fn encode(offset: usize, message: impl Into<String>) -> Self {
        CodecError {
            offset,
            message: message.into(),
            direction: Direction::Encode,
        }
    }
}

/// A coder tree could not be built from a pipeline's `Coder` protos.
///
/// Every variant names the coder id (and URN where known) that is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A coder id was referenced but is not in the coder map.
    #[error("coder `{id}` is not defined{}", referenced_by_suffix(.referenced_by))]
    MissingCoder {
        /// The id that could not be found.
        id: String,
        /// The coder whose components reference it, if any.
        referenced_by: Option<String>,
    },
    /// A coder has no `spec` or an empty URN.
    #[error("coder `{id}` has no spec URN")]
    MissingSpec {
        /// The coder id.
        id: String,
    },
    /// A coder is (transitively) its own component.
    #[error("coder `{id}` ({urn}) is part of a cycle: {path}")]
    Cycle {
        /// The coder id that was reached twice.
        id: String,
        /// Its URN.
        urn: String,
        /// The chain of ids, e.g. `a -> b -> a`.
        path: String,
    },
    /// A standard coder has the wrong number of component coders.
    #[error("coder `{id}` ({urn}) needs {expected} component coder(s), found {found}")]
    ComponentCount {
        /// The coder id.
        id: String,
        /// Its URN.
        urn: String,
        /// How many the URN requires.
        expected: usize,
        /// How many the proto lists.
        found: usize,
    },
    /// A coder's payload could not be parsed (row schema, param windowed value).
    #[error("coder `{id}` ({urn}) has an invalid payload: {message}")]
    BadPayload {
        /// The coder id.
        id: String,
        /// Its URN.
        urn: String,
        /// What is wrong with it.
        message: String,
    },
    /// The coder tree is nested deeper than [`crate::MAX_DEPTH`].
    #[error("coder `{id}` ({urn}) is nested more than {limit} levels deep")]
    TooDeep {
        /// The coder id at which the limit was exceeded.
        id: String,
        /// Its URN.
        urn: String,
        /// The limit.
        limit: usize,
    },
    /// The expanded coder tree has more than [`crate::MAX_TREE_NODES`] nodes
    /// (shared components are expanded once per use).
    #[error("coder `{id}` ({urn}) expands to more than {limit} coder nodes")]
    TooLarge {
        /// The coder id at which the limit was exceeded.
        id: String,
        /// Its URN.
        urn: String,
        /// The limit.
        limit: usize,
    },
}

fn referenced_by_suffix(by: &Option<String>) -> String {
    match by {
        Some(parent) => format!(" (referenced as a component of `{parent}`)"),
        None => String::new(),
    }
}

/// A row schema could not be converted from its proto.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schema {path}: {message}")]
pub struct SchemaError {
    /// Where in the schema, e.g. `field "f_map" > map value`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let e = CodecError::decode(17, "expected 5 bytes of string_utf8 data, 2 remain");
        assert_eq!(
            e.to_string(),
            "byte 17: expected 5 bytes of string_utf8 data, 2 remain"
        );
        let e = CodecError::encode(3, "bad");
        assert_eq!(e.to_string(), "encode, output byte 3: bad");
        let e = BuildError::MissingCoder {
            id: "c1".into(),
            referenced_by: Some("kv".into()),
        };
        assert_eq!(
            e.to_string(),
            "coder `c1` is not defined (referenced as a component of `kv`)"
        );
    }
}
