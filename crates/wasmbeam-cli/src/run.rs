//! `wasmbeam run`: a YAML pipeline or a Beam Pipeline proto, to completion.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmbeam_runner::{RunOptions, RunnerError};

use crate::Failure;

/// Options of `wasmbeam run`.
pub struct RunArgs {
    pub pipeline: PathBuf,
    pub workers: Option<usize>,
    pub sets: Vec<String>,
    pub memory_budget_mb: Option<usize>,
    pub bundle_deadline_secs: Option<u64>,
    pub memory_mb: Option<usize>,
    pub max_output_mb: Option<usize>,
    pub bundle_attempts: Option<u32>,
    pub sdk_workers: Option<usize>,
}

pub fn run(args: RunArgs) -> Result<(), Failure> {
    let mut vars = BTreeMap::new();
    for s in &args.sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| crate::bad_input(anyhow::anyhow!("--set {s:?}: expected NAME=VALUE")))?;
        vars.insert(k.trim().to_string(), v.to_string());
    }
    let path = &args.pipeline;
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    let (pipeline, yaml_workers, yaml_budget, base_dir) = if is_yaml {
        let text = std::fs::read_to_string(path).map_err(|e| {
            crate::bad_input(anyhow::anyhow!("cannot read {}: {e}", path.display()))
        })?;
        let built = wasmbeam_yaml::parse(path, &text, &vars, &wasmbeam_build::build)
            .map_err(crate::bad_input)?;
        (
            built.pipeline,
            built.workers,
            built.memory_budget_mb,
            PathBuf::from("."),
        )
    } else {
        if !vars.is_empty() {
            return Err(crate::bad_input(anyhow::anyhow!(
                "--set applies to YAML pipelines only"
            )));
        }
        let (p, _) = wasmbeam_proto::load::pipeline_from_file(path).map_err(crate::bad_input)?;
        (p, None, None, PathBuf::from("."))
    };
    let mut opts = RunOptions {
        base_dir,
        ..RunOptions::default()
    };
    if let Some(w) = args.workers.or(yaml_workers) {
        opts.workers = w.max(1);
    }
    if let Some(mb) = args.memory_budget_mb.or(yaml_budget) {
        opts.memory_budget = mb.max(1) << 20;
    }
    if let Some(s) = args.bundle_deadline_secs {
        opts.limits.bundle_deadline = Duration::from_secs(s.max(1));
    }
    if let Some(mb) = args.memory_mb {
        opts.udf_memory_budget = mb.max(1) << 20;
    }
    if let Some(mb) = args.max_output_mb {
        opts.limits.max_output_bytes = mb.max(1) << 20;
    }
    if let Some(n) = args.bundle_attempts {
        opts.bundle_attempts = n.max(1);
    }
    if let Some(n) = args.sdk_workers {
        opts.sdk_workers = n.max(1);
    }
    // Warnings wait until the outcome is printed: a failure's first line
    // on stderr is its cause.
    crate::logs::hold();
    let cancel = opts.cancel.clone();
    // A stream is drained by its first Ctrl-C (pending windows fire, output
    // commits) and cancelled by a second one; a batch job is cancelled.
    let drain = wasmbeam_runner::is_streaming(&pipeline).then(|| opts.drain.clone());
    install_ctrl_c(cancel.clone(), drain);
    let started = Instant::now();
    let progress = opts.progress.clone();
    let done = Arc::new(AtomicBool::new(false));
    let reporter = spawn_progress(progress, done.clone(), started);
    let result = wasmbeam_runner::run(&pipeline, &opts);
    done.store(true, Ordering::SeqCst);
    let _ = reporter.join();
    match result {
        Ok(summary) => {
            eprintln!(
                "wasmbeam: job done in {:.2}s ({} stages, {} workers{})",
                started.elapsed().as_secs_f64(),
                summary.stages,
                opts.workers,
                if summary.spilled_bytes > 0 {
                    format!(", {} MiB spilled", summary.spilled_bytes >> 20)
                } else {
                    String::new()
                }
            );
            for o in &summary.outputs {
                println!("{}", o.display());
            }
            for (t, m) in &summary.user_metrics {
                for (k, v) in &m.counters {
                    eprintln!("  metric {t}/{k} = {v}");
                }
            }
            Ok(())
        }
        Err(e) => {
            let code = match e {
                RunnerError::Invalid(_)
                | RunnerError::Unsupported(_)
                | RunnerError::Transform { .. } => 2,
                _ => 1,
            };
            let err = match e {
                RunnerError::Unsupported(findings) => {
                    let mut msg =
                        format!("{} transform(s) cannot run on wasmbeam:", findings.len());
                    for f in &findings {
                        msg.push_str(&format!("\n  - {f}"));
                    }
                    anyhow::anyhow!(msg)
                }
                other => anyhow::Error::new(other),
            };
            Err(Failure { code, error: err })
        }
    }
}

fn install_ctrl_c(cancel: Arc<AtomicBool>, drain: Option<Arc<AtomicBool>>) {
    // A second thread polls a counter set by the signal handler; no extra crate.
    static SIGNALS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    extern "C" fn on_signal(_: i32) {
        SIGNALS.fetch_add(1, Ordering::SeqCst);
    }
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    // SAFETY: installing an async-signal-safe handler that only updates an atomic.
    unsafe {
        signal(2, on_signal); // SIGINT
        signal(15, on_signal); // SIGTERM
    }
    std::thread::spawn(move || {
        let mut draining = false;
        loop {
            let n = SIGNALS.load(Ordering::SeqCst);
            match (&drain, n) {
                (Some(d), 1) if !draining => {
                    eprintln!("wasmbeam: draining: sources stop, pending windows fire and commit (signal again to cancel)");
                    d.store(true, Ordering::SeqCst);
                    draining = true;
                }
                (Some(_), n) if n >= 2 => {
                    eprintln!("wasmbeam: cancelling (panes not yet committed are lost)");
                    cancel.store(true, Ordering::SeqCst);
                    return;
                }
                (None, n) if n >= 1 => {
                    eprintln!("wasmbeam: cancelling (outputs will not be committed)");
                    cancel.store(true, Ordering::SeqCst);
                    return;
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// A watermark for people: its lag behind the wall clock, or its end.
fn describe_watermark(wm: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    if wm <= wasmbeam_runner::MIN_TIMESTAMP {
        "not started".into()
    } else if wm >= wasmbeam_runner::MAX_TIMESTAMP {
        "at the end of time".into()
    } else {
        format!("{:.1} s behind the clock", (now - wm) as f64 / 1000.0)
    }
}

fn spawn_progress(
    p: Arc<wasmbeam_runner::Progress>,
    done: Arc<AtomicBool>,
    started: Instant,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let bar = if tty {
            let b = indicatif::ProgressBar::new_spinner();
            b.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            Some(b)
        } else {
            None
        };
        let mut last_log = Instant::now();
        let mut rate = (Instant::now(), 0u64, 0f64);
        while !done.load(Ordering::SeqCst) {
            let elements = p.elements.load(Ordering::Relaxed);
            if rate.0.elapsed() >= Duration::from_secs(1) {
                rate = (
                    Instant::now(),
                    elements,
                    (elements - rate.1) as f64 / rate.0.elapsed().as_secs_f64(),
                );
            }
            let msg = match p.min_watermark() {
                // A stream: no stages; elements per second and how far
                // event time lags behind the clock.
                Some(wm) => format!(
                    "streaming | {elements} elements ({:.0}/s), {} bundles | watermark {}",
                    rate.2,
                    p.bundles.load(Ordering::Relaxed),
                    describe_watermark(wm),
                ),
                None => format!(
                    "stage {}/{} {} | {} elements, {} bundles",
                    (p.stages_done.load(Ordering::Relaxed) + 1)
                        .min(p.stages_total.load(Ordering::Relaxed).max(1)),
                    p.stages_total.load(Ordering::Relaxed),
                    p.current.lock().map(|s| s.clone()).unwrap_or_default(),
                    elements,
                    p.bundles.load(Ordering::Relaxed),
                ),
            };
            match &bar {
                Some(b) => b.set_message(msg),
                None if last_log.elapsed() >= Duration::from_secs(5) => {
                    eprintln!("wasmbeam: [{:.0}s] {msg}", started.elapsed().as_secs_f64());
                    last_log = Instant::now();
                }
                None => {}
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    })
}
