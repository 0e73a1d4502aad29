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
//! replaced by `--set name=value`. Inputs are transform names; `udf:` paths
//! are relative to the YAML file, and a directory is a guest source tree
//! that the caller builds.
//! `ReadFromText` takes `path` (a file, glob or list) and, to keep watching
//! it for new files (an unbounded read), `watch_secs`. `WindowInto`'s
//! `windowing` takes Beam YAML's keys plus, for streaming, `trigger`,
//! `accumulation_mode` and `allowed_lateness` (see `windowing.rs`).

#![warn(missing_docs)]

mod build;
mod windowing;

pub use build::{parse, Built, GuestResolver, YamlError};
