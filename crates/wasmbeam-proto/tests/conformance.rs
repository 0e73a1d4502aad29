//! Conformance of wasmbeam's model with Beam 2.77.
//!
//! The reference is the `apache-beam==2.77.0` wheel in the project venv
//! (`scripts/bootstrap.sh` installs it); `beam_reference.py` reads Beam's
//! descriptors and `*_pb2_urns` values from it and compares them with ours.

use std::path::PathBuf;
use std::process::Command;

fn venv_python() -> PathBuf {
    if let Some(p) = std::env::var_os("WASMBEAM_PYTHON") {
        return p.into();
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/bootstrap.sh to create the project venv with apache-beam 2.77.0",
        p.display()
    );
    p
}

fn run_reference(mode: &str, ours: &std::path::Path) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/beam_reference.py");
    let out = Command::new(venv_python())
        .arg(script)
        .arg(mode)
        .arg(ours)
        .output()
        .expect("run the venv python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{mode} differ from Beam 2.77:\n{stdout}"
    );
    // scripts/test.sh prints these counts after the whole suite.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/conformance");
    let _ = std::fs::create_dir_all(&dir);
    let counts: String = stdout
        .lines()
        .filter(|l| !l.starts_with("DIFF"))
        .map(|l| format!("{l}\n"))
        .collect();
    let _ = std::fs::write(dir.join(format!("{mode}.txt")), counts);
    stdout
}

#[test]
fn descriptors_match_beam_2_77() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.pb");
    std::fs::write(&ours, wasmbeam_proto::FILE_DESCRIPTOR_SET).unwrap();
    let out = run_reference("descriptors", &ours);
    assert!(out.contains("; 0 differences"), "{out}");
}

#[test]
fn urn_constants_match_beam_2_77() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("urns.json");
    let pairs: Vec<_> = wasmbeam_proto::urns::ALL
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    std::fs::write(&ours, serde_json::to_string(&pairs).unwrap()).unwrap();
    let out = run_reference("urns", &ours);
    let line = out.lines().find(|l| l.starts_with("urns: ")).unwrap();
    let counts = line.trim_start_matches("urns: ").split(' ').next().unwrap();
    let (ok, all) = counts.split_once('/').unwrap();
    assert_eq!(ok, all, "{line}");
    assert!(all.parse::<usize>().unwrap() > 100, "{line}");
}

#[test]
fn urn_constants_are_usable() {
    use wasmbeam_proto::urns::*;
    assert_eq!(
        standard_p_transforms::primitives::PAR_DO,
        "beam:transform:pardo:v1"
    );
    assert_eq!(standard_coders::enum_::KV, "beam:coder:kv:v1");
    assert_eq!(
        standard_side_input_types::enum_::MULTIMAP,
        "beam:side_input:multimap:v1"
    );
}
