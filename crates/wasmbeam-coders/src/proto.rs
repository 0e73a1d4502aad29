//! Building a [`Coder`] tree from a pipeline's `Coder` protos.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use wasmbeam_proto::pipeline::v1 as pb;
use wasmbeam_proto::urns::standard_coders::enum_ as urn;

use crate::coder::{parse_param_windowed_value_payload, Coder, MAX_DEPTH};
use crate::error::BuildError;
use crate::row::Schema;

/// Most coder nodes one [`coder_from_proto`] call may build. Components are
/// expanded once per use, so a small proto map that shares components
/// heavily could otherwise describe an exponentially large tree.
pub const MAX_TREE_NODES: usize = 100_000;

/// Builds the coder tree rooted at coder `id` from a pipeline's coder map
/// (`Components.coders`).
///
/// Standard coder URNs (see [`crate::STANDARD_CODER_URNS`]) become the
/// matching [`Coder`] variants and must have the right number of component
/// coders; row coders parse their payload as a `Schema` proto and
/// `param_windowed_value` coders parse theirs as a windowed value. Any other
/// URN becomes [`Coder::Opaque`] (its components are not visited). Missing
/// ids, cycles, wrong component counts, bad payloads and trees deeper than
/// [`MAX_DEPTH`] are errors naming the coder id and URN.
pub fn coder_from_proto(
    id: &str,
    coders: &HashMap<String, pb::Coder>,
) -> Result<Coder, BuildError> {
    Builder {
        coders,
        stack: Vec::new(),
        nodes: 0,
    }
    .build(id, None)
}

struct Builder<'a> {
    coders: &'a HashMap<String, pb::Coder>,
    stack: Vec<String>,
    nodes: usize,
}

impl Builder<'_> {
    fn build(&mut self, id: &str, parent: Option<&str>) -> Result<Coder, BuildError> {
        let proto = self
            .coders
            .get(id)
            .ok_or_else(|| BuildError::MissingCoder {
                id: id.to_owned(),
                referenced_by: parent.map(str::to_owned),
            })?;
        let urn = match &proto.spec {
            Some(spec) if !spec.urn.is_empty() => spec.urn.as_str(),
            _ => return Err(BuildError::MissingSpec { id: id.to_owned() }),
        };
        if let Some(pos) = self.stack.iter().position(|s| s == id) {
            let mut path: Vec<&str> = self.stack[pos..].iter().map(String::as_str).collect();
            path.push(id);
            return Err(BuildError::Cycle {
                id: id.to_owned(),
                urn: urn.to_owned(),
                path: path.join(" -> "),
            });
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(BuildError::TooDeep {
                id: id.to_owned(),
                urn: urn.to_owned(),
                limit: MAX_DEPTH,
            });
        }
        self.nodes += 1;
        if self.nodes > MAX_TREE_NODES {
            return Err(BuildError::TooLarge {
                id: id.to_owned(),
                urn: urn.to_owned(),
                limit: MAX_TREE_NODES,
            });
        }
        self.stack.push(id.to_owned());
        let result = self.build_node(id, urn, proto);
        self.stack.pop();
        result
    }

    fn components(
        &mut self,
        id: &str,
        urn: &str,
        proto: &pb::Coder,
        expected: usize,
    ) -> Result<Vec<Coder>, BuildError> {
        let ids = &proto.component_coder_ids;
        if ids.len() != expected {
            return Err(BuildError::ComponentCount {
                id: id.to_owned(),
                urn: urn.to_owned(),
                expected,
                found: ids.len(),
            });
        }
        ids.iter().map(|c| self.build(c, Some(id))).collect()
    }

    fn one(&mut self, id: &str, urn: &str, proto: &pb::Coder) -> Result<Box<Coder>, BuildError> {
        let mut c = self.components(id, urn, proto, 1)?;
        Ok(Box::new(c.remove(0)))
    }

    fn two(
        &mut self,
        id: &str,
        urn: &str,
        proto: &pb::Coder,
    ) -> Result<(Box<Coder>, Box<Coder>), BuildError> {
        let mut c = self.components(id, urn, proto, 2)?;
        let second = c.remove(1);
        let first = c.remove(0);
        Ok((Box::new(first), Box::new(second)))
    }

    fn build_node(&mut self, id: &str, u: &str, proto: &pb::Coder) -> Result<Coder, BuildError> {
        let payload: &[u8] = proto
            .spec
            .as_ref()
            .map(|s| s.payload.as_slice())
            .unwrap_or(&[]);
        let bad_payload = |message: String| BuildError::BadPayload {
            id: id.to_owned(),
            urn: u.to_owned(),
            message,
        };
        Ok(match u {
            urn::BYTES => self.leaf(id, u, proto, Coder::Bytes)?,
            urn::STRING_UTF8 => self.leaf(id, u, proto, Coder::StringUtf8)?,
            urn::BOOL => self.leaf(id, u, proto, Coder::Bool)?,
            urn::VARINT => self.leaf(id, u, proto, Coder::VarInt)?,
            urn::DOUBLE => self.leaf(id, u, proto, Coder::Double)?,
            urn::INTERVAL_WINDOW => self.leaf(id, u, proto, Coder::IntervalWindow)?,
            urn::GLOBAL_WINDOW => self.leaf(id, u, proto, Coder::GlobalWindow)?,
            urn::KV => {
                let (k, v) = self.two(id, u, proto)?;
                Coder::Kv(k, v)
            }
            urn::ITERABLE => Coder::Iterable(self.one(id, u, proto)?),
            urn::STATE_BACKED_ITERABLE => Coder::StateBackedIterable(self.one(id, u, proto)?),
            urn::LENGTH_PREFIX => Coder::LengthPrefix(self.one(id, u, proto)?),
            urn::CUSTOM_WINDOW => Coder::CustomWindow(self.one(id, u, proto)?),
            urn::SHARDED_KEY => Coder::ShardedKey(self.one(id, u, proto)?),
            urn::NULLABLE => Coder::Nullable(self.one(id, u, proto)?),
            urn::TIMER => {
                let (key, window) = self.two(id, u, proto)?;
                Coder::Timer { key, window }
            }
            urn::WINDOWED_VALUE => {
                let (value, window) = self.two(id, u, proto)?;
                Coder::WindowedValue { value, window }
            }
            urn::PARAM_WINDOWED_VALUE => {
                let (value, window) = self.two(id, u, proto)?;
                let (timestamp, windows, pane) =
                    parse_param_windowed_value_payload(payload, &window)
                        .map_err(|e| bad_payload(format!("windowed value parameters: {e}")))?;
                Coder::ParamWindowedValue {
                    value,
                    window,
                    timestamp,
                    windows,
                    pane,
                }
            }
            urn::ROW => {
                self.components(id, u, proto, 0)?;
                let schema = pb::Schema::decode(payload)
                    .map_err(|e| bad_payload(format!("not a Schema proto: {e}")))?;
                let schema = Schema::from_proto(&schema).map_err(|e| bad_payload(e.to_string()))?;
                Coder::Row(Arc::new(schema))
            }
            other => Coder::Opaque {
                urn: other.to_owned(),
            },
        })
    }

    fn leaf(
        &mut self,
        id: &str,
        urn: &str,
        proto: &pb::Coder,
        coder: Coder,
    ) -> Result<Coder, BuildError> {
        self.components(id, urn, proto, 0)?;
        Ok(coder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coder(urn: &str, components: &[&str]) -> pb::Coder {
        pb::Coder {
            spec: Some(pb::FunctionSpec {
                urn: urn.to_owned(),
                payload: Vec::new(),
            }),
            component_coder_ids: components.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn map(entries: &[(&str, pb::Coder)]) -> HashMap<String, pb::Coder> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn builds_a_tree() {
        let m = map(&[
            ("kv", coder(urn::KV, &["k", "v"])),
            ("k", coder(urn::STRING_UTF8, &[])),
            ("v", coder(urn::ITERABLE, &["p"])),
            ("p", coder("beam:coder:pickled_python:v1", &[])),
        ]);
        assert_eq!(
            coder_from_proto("kv", &m).unwrap(),
            Coder::Kv(
                Box::new(Coder::StringUtf8),
                Box::new(Coder::Iterable(Box::new(Coder::Opaque {
                    urn: "beam:coder:pickled_python:v1".into()
                })))
            )
        );
    }

    #[test]
    fn errors_name_the_coder() {
        let m = map(&[
            ("kv", coder(urn::KV, &["k"])),
            ("k", coder(urn::BYTES, &[])),
        ]);
        assert_eq!(
            coder_from_proto("kv", &m).unwrap_err().to_string(),
            "coder `kv` (beam:coder:kv:v1) needs 2 component coder(s), found 1"
        );
        let m = map(&[
            ("kv", coder(urn::KV, &["k", "missing"])),
            ("k", coder(urn::BYTES, &[])),
        ]);
        assert_eq!(
            coder_from_proto("kv", &m).unwrap_err().to_string(),
            "coder `missing` is not defined (referenced as a component of `kv`)"
        );
        let m = map(&[
            ("a", coder(urn::ITERABLE, &["b"])),
            ("b", coder(urn::NULLABLE, &["a"])),
        ]);
        assert_eq!(
            coder_from_proto("a", &m).unwrap_err().to_string(),
            "coder `a` (beam:coder:iterable:v1) is part of a cycle: a -> b -> a"
        );
        let m = map(&[("r", coder(urn::ROW, &[]))]);
        let mut bad = m.clone();
        bad.get_mut("r").unwrap().spec.as_mut().unwrap().payload = vec![0xff];
        let e = coder_from_proto("r", &bad).unwrap_err().to_string();
        assert!(
            e.starts_with("coder `r` (beam:coder:row:v1) has an invalid payload"),
            "{e}"
        );
        let m = map(&[("x", pb::Coder::default())]);
        assert_eq!(
            coder_from_proto("x", &m).unwrap_err().to_string(),
            "coder `x` has no spec URN"
        );
    }

    #[test]
    fn depth_and_size_limits() {
        let mut m = HashMap::new();
        for i in 0..200 {
            m.insert(
                format!("c{i}"),
                coder(urn::ITERABLE, &[&format!("c{}", i + 1)]),
            );
        }
        m.insert("c200".into(), coder(urn::BYTES, &[]));
        assert!(matches!(
            coder_from_proto("c0", &m),
            Err(BuildError::TooDeep { .. })
        ));
        // Exponential sharing: kv(c1, c1) chains.
        let mut m = HashMap::new();
        for i in 0..40 {
            let next = format!("s{}", i + 1);
            m.insert(format!("s{i}"), coder(urn::KV, &[&next, &next]));
        }
        m.insert("s40".into(), coder(urn::BYTES, &[]));
        assert!(matches!(
            coder_from_proto("s0", &m),
            Err(BuildError::TooLarge { .. })
        ));
    }
}
