//! The human-readable report behind `wasmbeam inspect`: the transform tree
//! with URNs, PCollections with their coders, windowing strategies,
//! environments, and what wasmbeam can and cannot run, with reasons.

use std::collections::BTreeMap;
use std::fmt::Write;

use wasmbeam_proto::pipeline::v1::{
    accumulation_mode, merge_status, Components, WindowingStrategy,
};

use crate::graph::PipelineView;
use crate::step::Windowing;
use crate::support::Support;

/// Render a coder as a type expression, e.g. `kv<string_utf8, iterable<varint>>`.
pub fn coder_expr(c: &Components, id: &str) -> String {
    fn go(c: &Components, id: &str, depth: usize, out: &mut String) {
        let Some(coder) = c.coders.get(id) else {
            let _ = write!(out, "<missing coder {id:?}>");
            return;
        };
        let urn = coder.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
        let short = urn
            .strip_prefix("beam:coder:")
            .map(|s| s.strip_suffix(":v1").unwrap_or(s))
            .unwrap_or(urn);
        out.push_str(short);
        if coder.component_coder_ids.is_empty() || depth > 16 {
            return;
        }
        out.push('<');
        for (i, comp) in coder.component_coder_ids.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            go(c, comp, depth + 1, out);
        }
        out.push('>');
    }
    let mut s = String::new();
    go(c, id, 0, &mut s);
    s
}

fn fmt_ms(ms: i64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// Describe a windowing strategy's window fn, e.g. `fixed(1m)`.
pub fn window_fn_summary(ws: &WindowingStrategy) -> String {
    let Some(f) = ws.window_fn.as_ref() else {
        return "<no window fn>".into();
    };
    match Windowing::decode(Some(f)) {
        Ok(Windowing::Global) => "global".into(),
        Ok(Windowing::Fixed { size_ms, .. }) => format!("fixed({})", fmt_ms(size_ms)),
        Ok(Windowing::Sliding {
            size_ms, period_ms, ..
        }) => format!(
            "sliding(size {}, every {})",
            fmt_ms(size_ms),
            fmt_ms(period_ms)
        ),
        Ok(Windowing::Sessions { gap_ms }) => format!("sessions(gap {})", fmt_ms(gap_ms)),
        Err(e) if e.contains("does not decode") => format!("{}(<bad payload>)", f.urn),
        Err(_) => format!("custom {}", f.urn),
    }
}

/// The full report for one pipeline.
pub fn render(view: &PipelineView<'_>) -> String {
    let c = view.components;
    let mut out = String::new();
    let units = view.execution_units();
    let verdicts: BTreeMap<&str, Support> =
        units.iter().map(|(id, _, v)| (*id, v.support())).collect();

    let _ = writeln!(
        out,
        "Transforms ({} in all; tree from the roots):",
        c.transforms.len()
    );
    view.walk(|depth, id, t| {
        let urn = t.spec.as_ref().map(|s| s.urn.as_str()).unwrap_or("");
        let urn = if urn.is_empty() { "composite" } else { urn };
        let mark = match verdicts.get(id) {
            Some(Support::Native(what)) => format!("  -> runs natively: {what}"),
            Some(Support::Wasm(what)) => format!("  -> runs in WASM: {what}"),
            Some(Support::Sdk(what)) => format!("  -> runs in an SDK harness: {what}"),
            Some(Support::Unsupported(_)) => "  -> CANNOT RUN (see below)".into(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{}{} [{}]{}",
            "  ".repeat(depth + 1),
            t.unique_name,
            urn,
            mark
        );
        let mut io: Vec<String> = Vec::new();
        if !t.subtransforms.is_empty() {
            return true;
        }
        let mut ins: Vec<_> = t.inputs.iter().collect();
        ins.sort();
        for (tag, pc) in ins {
            io.push(format!("in {tag}={pc}"));
        }
        let mut outs: Vec<_> = t.outputs.iter().collect();
        outs.sort();
        for (tag, pc) in outs {
            io.push(format!("out {tag}={pc}"));
        }
        if !io.is_empty() {
            let _ = writeln!(out, "{}  {}", "  ".repeat(depth + 1), io.join(", "));
        }
        true
    });

    let _ = writeln!(out, "\nPCollections ({}):", c.pcollections.len());
    let mut pcs: Vec<_> = c.pcollections.iter().collect();
    pcs.sort_by(|a, b| a.0.cmp(b.0));
    for (id, pc) in pcs {
        let bounded = match pc.is_bounded {
            1 => "unbounded",
            2 => "bounded",
            _ => "boundedness unspecified",
        };
        let _ = writeln!(
            out,
            "  {id}: {}  coder={}  windowing={}  {bounded}",
            pc.unique_name,
            coder_expr(c, &pc.coder_id),
            pc.windowing_strategy_id
        );
    }

    let _ = writeln!(
        out,
        "\nWindowing strategies ({}):",
        c.windowing_strategies.len()
    );
    let mut wss: Vec<_> = c.windowing_strategies.iter().collect();
    wss.sort_by(|a, b| a.0.cmp(b.0));
    for (id, ws) in wss {
        let merging = merge_status::Enum::try_from(ws.merge_status)
            .map(|m| m.as_str_name().to_ascii_lowercase())
            .unwrap_or_else(|_| format!("merge status {}", ws.merge_status));
        let acc = accumulation_mode::Enum::try_from(ws.accumulation_mode)
            .map(|m| m.as_str_name().to_ascii_lowercase())
            .unwrap_or_else(|_| format!("mode {}", ws.accumulation_mode));
        let trigger = ws
            .trigger
            .as_ref()
            .and_then(|t| t.trigger.as_ref())
            .map(|t| {
                format!("{t:?}")
                    .split('(')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase()
            })
            .unwrap_or_else(|| "default".into());
        let _ = writeln!(
            out,
            "  {id}: {}  window_coder={}  {merging}  trigger={trigger}  accumulation={acc}  allowed_lateness={}",
            window_fn_summary(ws),
            coder_expr(c, &ws.window_coder_id),
            fmt_ms(ws.allowed_lateness)
        );
    }

    let _ = writeln!(out, "\nEnvironments ({}):", c.environments.len());
    let mut envs: Vec<_> = c.environments.iter().collect();
    envs.sort_by(|a, b| a.0.cmp(b.0));
    for (id, env) in envs {
        let deps: Vec<_> = env
            .dependencies
            .iter()
            .map(|d| d.type_urn.as_str())
            .collect();
        let _ = writeln!(
            out,
            "  {id}: {}  capabilities={}  dependencies={}",
            if env.urn.is_empty() {
                "<none>"
            } else {
                &env.urn
            },
            env.capabilities.len(),
            if deps.is_empty() {
                "none".to_string()
            } else {
                deps.join(", ")
            }
        );
    }

    if !view.pipeline.requirements.is_empty() {
        let _ = writeln!(
            out,
            "\nRequirements: {}",
            view.pipeline.requirements.join(", ")
        );
    }

    let findings = view.unsupported();
    let _ = writeln!(
        out,
        "\nCan wasmbeam run it? {} of {} execution units are supported.",
        units.len() - findings.len(),
        units.len()
    );
    if findings.is_empty() {
        let _ = writeln!(
            out,
            "  yes: every transform is a runner primitive, a WASM UDF or a DoFn for an SDK harness."
        );
    } else {
        let _ = writeln!(out, "  no; these transforms cannot run:");
        for f in &findings {
            let _ = writeln!(out, "  - {f}");
        }
    }
    out
}
