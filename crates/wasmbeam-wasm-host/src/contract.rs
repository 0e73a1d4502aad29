//! Checking that a component was built for this contract before we try to
//! instantiate it, so the user gets a message that names versions instead
//! of a linker error.

use wasmtime::component::Component;
use wasmtime::Engine;

use crate::error::UdfError;

use wasmbeam_bundle::CONTRACT_VERSION;

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdfKind {
    /// Exports `wasmbeam:udf/dofn`.
    DoFn,
    /// Exports `wasmbeam:udf/combinefn`.
    CombineFn,
}

impl std::fmt::Display for UdfKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UdfKind::DoFn => "DoFn",
            UdfKind::CombineFn => "CombineFn",
        })
    }
}

/// Split `wasmbeam:udf/dofn@0.2.0` into (`dofn`, `0.2.0`).
fn udf_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("wasmbeam:udf/")?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// Inspect the component's imports and exports.
pub(crate) fn check(
    name: &str,
    component: &Component,
    engine: &Engine,
) -> Result<UdfKind, UdfError> {
    let ty = component.component_type();
    let bad = |detail: String| UdfError::Contract {
        name: name.to_string(),
        detail,
    };
    let mut kind = None;
    let mut exports = Vec::new();
    for (export, _) in ty.exports(engine) {
        exports.push(export.to_string());
        if let Some((iface, version)) = udf_interface(export) {
            if version != CONTRACT_VERSION {
                return Err(bad(format!(
                    "it was built for the UDF contract wasmbeam:udf@{} (it exports {export}), but this wasmbeam implements wasmbeam:udf@{CONTRACT_VERSION}; rebuild it with a guest SDK for contract {CONTRACT_VERSION}",
                    if version.is_empty() { "<unversioned>" } else { version }
                )));
            }
            kind = match iface {
                "dofn" => Some(UdfKind::DoFn),
                "combinefn" => Some(UdfKind::CombineFn),
                _ => kind,
            };
        }
    }
    for (import, _) in ty.imports(engine) {
        if import.starts_with("wasi:") {
            continue;
        }
        match udf_interface(import) {
            Some(("host" | "types" | "state", v)) if v == CONTRACT_VERSION => {}
            Some((_, v)) if v != CONTRACT_VERSION => {
                return Err(bad(format!(
                    "it imports {import}, from UDF contract {v}, but this wasmbeam implements wasmbeam:udf@{CONTRACT_VERSION}; rebuild it with a guest SDK for contract {CONTRACT_VERSION}"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "it imports {import}, which wasmbeam does not provide; UDFs may import only WASI, wasmbeam:udf/host@{CONTRACT_VERSION} and wasmbeam:udf/state@{CONTRACT_VERSION}"
                )))
            }
        }
    }
    kind.ok_or_else(|| {
        bad(format!(
            "it exports neither wasmbeam:udf/dofn@{CONTRACT_VERSION} nor wasmbeam:udf/combinefn@{CONTRACT_VERSION} (its exports: {}); build it with a wasmbeam guest SDK",
            if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
        ))
    })
}
