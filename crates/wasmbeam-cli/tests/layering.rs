//! ARCHITECTURE.md's dependency table is the law: this reads it, asks
//! `cargo metadata` what each workspace crate really depends on, and fails
//! on any wasmbeam-to-wasmbeam edge the table does not allow, and on any
//! workspace crate the table does not list.

mod common;

use std::collections::{BTreeMap, BTreeSet};

/// Rows of the `| crate | may depend on |` table.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(common::repo().join("ARCHITECTURE.md")).unwrap();
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if cells.len() == 2 && cells[0] == "crate" && cells[1] == "may depend on" {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if !line.trim_start().starts_with('|') {
            break;
        }
        if cells[0].starts_with("---") {
            continue;
        }
        let deps = cells
            .get(1)
            .map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        rows.insert(cells[0].to_string(), deps);
    }
    assert!(
        !rows.is_empty(),
        "ARCHITECTURE.md has no `| crate | may depend on |` table"
    );
    rows
}

/// Each workspace crate's normal and build dependencies on wasmbeam crates.
fn actual() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(common::repo())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut crates = BTreeMap::new();
    for pkg in meta["packages"].as_array().unwrap() {
        let name = pkg["name"].as_str().unwrap().to_string();
        let deps = pkg["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter_map(|d| d["name"].as_str())
            .filter(|n| n.starts_with("wasmbeam-"))
            .map(String::from)
            .collect();
        crates.insert(name, deps);
    }
    crates
}

#[test]
fn every_crate_depends_only_on_what_architecture_md_allows() {
    let allowed = allowed();
    let actual = actual();
    let mut problems = Vec::new();
    for (krate, deps) in &actual {
        match allowed.get(krate) {
            None => problems.push(format!(
                "{krate} has no row in ARCHITECTURE.md's dependency table"
            )),
            Some(ok) => {
                for d in deps.difference(ok) {
                    problems.push(format!(
                        "{krate} depends on {d}, which ARCHITECTURE.md does not allow"
                    ));
                }
            }
        }
    }
    for krate in allowed.keys() {
        if !actual.contains_key(krate) {
            problems.push(format!(
                "ARCHITECTURE.md lists {krate}, which is not in the workspace"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_table_reader_sees_the_rules_that_matter() {
    // Guards the parser: if it read nothing, the test above could not fail.
    let allowed = allowed();
    assert!(allowed["wasmbeam-bundle"].is_empty());
    for leafward in ["wasmbeam-engine", "wasmbeam-wasm-host"] {
        assert_eq!(
            allowed[leafward].iter().collect::<Vec<_>>(),
            ["wasmbeam-bundle"],
            "{leafward} may use only the bundle shape"
        );
    }
    assert!(allowed["wasmbeam-runner"].contains("wasmbeam-engine"));
    assert!(!allowed["wasmbeam-jobserver"].contains("wasmbeam-engine"));
    assert!(actual().len() >= 10);
}
