//! Compiles `proto/` with prost + tonic, using the vendored `protoc` (no system
//! protoc needed), and writes the compiled `FileDescriptorSet` next to the
//! generated code so the crate can offer JSON and text-format decoding and the
//! conformance test can compare it with Beam's.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let root = root.canonicalize()?;
    let files: Vec<PathBuf> = [
        "pipeline/v1/beam_runner_api",
        "pipeline/v1/endpoints",
        "pipeline/v1/external_transforms",
        "pipeline/v1/metrics",
        "pipeline/v1/schema",
        "pipeline/v1/standard_window_fns",
        "job_management/v1/beam_job_api",
        "job_management/v1/beam_artifact_api",
        "job_management/v1/beam_expansion_api",
        "fn_execution/v1/beam_fn_api",
        "fn_execution/v1/beam_provision_api",
    ]
    .iter()
    .map(|f| root.join(format!("org/apache/beam/model/{f}.proto")))
    .chain(std::iter::once(root.join("wasmbeam/v1/wasmbeam.proto")))
    .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    // Build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("beam_model_descriptor_set.pb"))
        .compile_with_config(
            config,
            &files,
            &[root, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
