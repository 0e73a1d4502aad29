//! # wasmbeam-proto
//!
//! Apache Beam's portable model, version 2.77, as Rust types: the runner API
//! (`Pipeline`, `PTransform`, coders, windowing), the Job, Artifact and
//! Expansion APIs, and the Fn API. Every message, field number and service
//! method matches Beam 2.77, so real Beam SDKs can talk to wasmbeam.
//!
//! * The `.proto` files live in the repository's `proto/` directory. They are
//!   printed from the descriptors in the `apache-beam==2.77.0` wheel by
//!   `tools/gen_model.py` and compiled here by prost + tonic with a vendored
//!   `protoc`.
//! * [`urns`] holds Beam's standard URN strings (transforms, coders,
//!   environments, side inputs, requirements, window fns, user state,
//!   artifact types and roles, monitoring infos) as constants.
//! * [`load`] reads a `Pipeline` from binary proto, proto JSON or proto text
//!   format, with errors that name the byte offset, line or field.
//! * [`descriptor_pool`] exposes the compiled descriptors for reflection.
//!
//! Conformance tests in `tests/` compare the compiled descriptors and the
//! URN constants with those shipped in the apache-beam wheel.
//!
//! Dependency rule: this crate depends on no other wasmbeam crate.

#![warn(missing_docs)]

pub mod load;
pub mod urns;
pub mod wasmbeam_urns;

/// The generated code, nested by proto package so prost's relative paths resolve.
#[allow(missing_docs, clippy::all, rustdoc::all)]
pub mod org {
    pub mod apache {
        pub mod beam {
            pub mod model {
                pub mod pipeline {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/org.apache.beam.model.pipeline.v1.rs"
                        ));
                    }
                }
                pub mod job_management {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/org.apache.beam.model.job_management.v1.rs"
                        ));
                    }
                }
                pub mod fn_execution {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/org.apache.beam.model.fn_execution.v1.rs"
                        ));
                    }
                }
            }
        }
    }
}

pub use org::apache::beam::model::{fn_execution, job_management, pipeline};

/// wasmbeam's own payload messages (`proto/wasmbeam/v1/wasmbeam.proto`).
#[allow(missing_docs, clippy::all)]
pub mod wasmbeam {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/wasmbeam.v1.rs"));
    }
}
pub use prost;
pub use prost_types;

/// Encoded `google.protobuf.FileDescriptorSet` of every model file (imports included).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/beam_model_descriptor_set.pb"));

/// The descriptor pool for reflection (JSON and text format), built once.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled into this crate is valid")
    })
}
