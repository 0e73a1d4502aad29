//! # wasmbeam-yaml
//!
//! YAML pipelines in the style of Beam YAML, translated into a Beam
//! `Pipeline` proto so that they run through exactly the same path as
//! pipelines submitted by SDKs.
//!
//! ```yaml
//! pipeline:
//!   transforms:
//!     - type: ReadFromText
//!       name: Read
//!       config: { path: "{{ input }}" }
//!     - type: ParDo
//!       name: Split
//!       input: Read
//!       config: { udf: udf, config: split, output_coder: "kv<string_utf8, varint>" }
//!     - type: CombinePerKey
//!       name: Count
//!       input: Split
//!       config: { combine: sum }
//!     - type: WriteToText
//!       input: Count
//!       config: { path: "{{ output }}" }
//! options:
//!   workers: 2
//! ```
//!
//! Types: `Impulse`, `ReadFromText`, `WriteToText`, `ParDo`, `CombinePerKey`,
//! `GroupByKey`, `Flatten`, `WindowInto`, `Reshuffle`. `{{ name }}` is
//! replaced by `--set name=value`. Inputs are transform names, or

//! the YAML file; a directory is a guest source tree that the caller builds.
//! See `docs/yaml.md` for every field.

#![warn(missing_docs)]

mod build;

pub use build::{parse, Built, GuestResolver, YamlError};
