//! Core module → component, for guests whose compiler emits a WASI
//! preview1 core module (Go): rename `_initialize` to the contract's
//! `runtime-init`, embed the WIT world, and adapt preview1 imports with the
//! reactor adapter (which takes its memory from the module's
//! `cabi_realloc_adapter`, never from `memory.grow`: Go owns every page
//! past its heap's end). Also [`describe`], which lists a component's exports.

use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

fn world_of(module: &[u8]) -> Result<(&'static str, &'static str), String> {
    let mut dofn = false;
    let mut combinefn = false;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let payload = payload.map_err(|e| format!("the core module does not parse: {e}"))?;
        if let wasmparser::Payload::ExportSection(s) = payload {
            for e in s {
                let e = e.map_err(|e| format!("bad export section: {e}"))?;
                dofn |= e.name.starts_with("wasmbeam:udf/dofn@");
                combinefn |= e.name.starts_with("wasmbeam:udf/combinefn@");
            }
        }
    }
    match (dofn, combinefn) {
        (true, false) => Ok(("dofn-udf", "dofn")),
        (false, true) => Ok(("combinefn-udf", "combinefn")),
        (true, true) => Err("the module exports both a DoFn and a CombineFn; build one per component".into()),
        (false, false) => Err("the module exports neither wasmbeam:udf/dofn nor wasmbeam:udf/combinefn functions (did the guest import the SDK's dofn or combinefn package?)".into()),
    }
}

/// Rewrite the export section: `_initialize` becomes `runtime_init`.
fn rename_initialize(module: &[u8], runtime_init: &str) -> Result<Vec<u8>, String> {
    use wasm_encoder::{ExportKind, ExportSection, Module, RawSection};
    let mut out = Module::new();
    let mut found = false;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let payload = payload.map_err(|e| format!("the core module does not parse: {e}"))?;
        match &payload {
            wasmparser::Payload::ExportSection(s) => {
                let mut ex = ExportSection::new();
                for e in s.clone() {
                    let e = e.map_err(|e| format!("bad export section: {e}"))?;
                    let kind = match e.kind {
                        wasmparser::ExternalKind::Func => ExportKind::Func,
                        wasmparser::ExternalKind::Table => ExportKind::Table,
                        wasmparser::ExternalKind::Memory => ExportKind::Memory,
                        wasmparser::ExternalKind::Global => ExportKind::Global,
                        wasmparser::ExternalKind::Tag => ExportKind::Tag,
                        other => return Err(format!("unexpected export kind {other:?}")),
                    };
                    if e.name == "_initialize" {
                        found = true;
                        ex.export(runtime_init, kind, e.index);
                    } else if e.name == runtime_init {
                        return Err(format!("the module already exports {runtime_init}; it must come from _initialize"));
                    } else {
                        ex.export(e.name, kind, e.index);
                    }
                }
                out.section(&ex);
            }
            wasmparser::Payload::Version { .. } | wasmparser::Payload::End(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &module[range],
                    });
                }
            }
        }
    }
    if !found {
        return Err(
            "the core module has no _initialize export (build Go with -buildmode=c-shared)".into(),
        );
    }
    Ok(out.finish())
}

/// Turn a preview1 core module (a Go guest) into a component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, String> {
    let (world, iface) = world_of(module)?;
    let runtime_init = format!(
        "wasmbeam:udf/{iface}@{}#runtime-init",
        crate::CONTRACT_VERSION
    );
    let mut core = rename_initialize(module, &runtime_init)?;
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str("udf.wit", crate::WIT)
        .map_err(|e| format!("the built-in WIT does not parse: {e:#}"))?;
    let world_id = resolve
        .select_world(&[pkg], Some(world))
        .map_err(|e| format!("world {world}: {e:#}"))?;
    wit_component::embed_component_metadata(&mut core, &resolve, world_id, StringEncoding::UTF8)
        .map_err(|e| format!("cannot embed the WIT world: {e:#}"))?;
    ComponentEncoder::default()
        .module(&core)
        .map_err(|e| format!("the module does not fit world {world}: {e:#}"))?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(|e| format!("the WASI preview1 adapter: {e:#}"))?
        .validate(true)
        .encode()
        .map_err(|e| format!("cannot build the component: {e:#}"))
}

/// What a component exports and imports, for `wasmbeam build` to print.
#[derive(Debug, Clone, Default)]
pub struct Description {
    /// Exported instances (interfaces).
    pub exports: Vec<String>,
    /// Imported instances.
    pub imports: Vec<String>,
}

/// List a component's top-level imports and exports.
pub fn describe(component: &[u8]) -> Result<Description, String> {
    let mut d = Description::default();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| format!("the component does not parse: {e}"))?;
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentExportSection(s) if depth == 0 => {
                for e in s {
                    d.exports
                        .push(e.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            wasmparser::Payload::ComponentImportSection(s) if depth == 0 => {
                for i in s {
                    d.imports
                        .push(i.map_err(|e| e.to_string())?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(d)
}
