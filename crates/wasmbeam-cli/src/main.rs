//! # wasmbeam (the CLI)
//!
//! The project's one binary. Subcommands:
//!
//! * `wasmbeam inspect FILE` — load a Beam `Pipeline` (binary proto, proto
//!   JSON or text format) and print its transform tree, PCollections and
//!   coders, windowing strategies, environments, and what wasmbeam can and
//!   cannot run, with reasons.
//! * `wasmbeam convert FILE --to json|text|binary [-o OUT]` — re-encode a
//!   pipeline in another of the three formats.
//! * `wasmbeam run PIPELINE [--workers N] [--set name=value ...]` — run a
//!   YAML pipeline or a Beam `Pipeline` proto (a stream, when it has an
//!   unbounded source, runs until its first SIGINT drains it).
//! * `wasmbeam serve [--host H] [--port P] [--config FILE]` — serve Beam's
//!   Job API and artifact staging, so `PortableRunner` can submit to wasmbeam.
//! * `wasmbeam build DIR [-o OUT]` — build a guest UDF source tree into a
//!   component and check it against the contract.
//! * `wasmbeam cancel JOB` / `wasmbeam drain JOB [--wait]` — Beam's Job API
//!   Cancel and Drain against a running server.
//!
//! Exit codes: 0 success; 1 the work failed; 2 bad input (unreadable or
//! malformed file, invalid pipeline, bad usage). On failure the first line on
//! stderr is a one-line cause.

use std::path::PathBuf;
use std::process::ExitCode;

mod jobctl;
mod logs;
mod run;
mod serve;

use clap::{Parser, Subcommand, ValueEnum};
use wasmbeam_proto::load::{self, Format};

#[derive(Parser)]
#[command(
    name = "wasmbeam",
    version,
    about = "A portable Apache Beam runner for WebAssembly UDFs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Cancel a job on a running server (nothing it staged is committed).
    Cancel {
        #[command(flatten)]
        job: JobTarget,
    },
    /// Drain a streaming job on a running server: its sources stop, every
    /// pending window and timer fires, its output commits, it ends DRAINED.
    Drain {
        #[command(flatten)]
        job: JobTarget,
    },
    /// Describe a Beam pipeline and say whether wasmbeam can run it.
    Inspect {
        /// A Beam `Pipeline` in binary proto, proto JSON or proto text format.
        file: PathBuf,
        /// Input format; by default from the extension, else sniffed.
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
    },
    /// Serve the Beam Job API (gRPC) for PortableRunner and other clients.
    Serve {
        /// Address to listen on; without --config only loopback is allowed.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port (0 picks a free one; the address is printed on stdout).
        #[arg(long, default_value_t = 8099)]
        port: u16,
        /// Tenants, tokens, quotas and policy (YAML); without it, single-user mode.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Job store, artifacts and component cache (default ./wasmbeam-state,
        /// or the config file's state_dir).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// The Python interpreter (with apache-beam) that runs SDK harnesses
        /// of PROCESS environments whose command is `wasmbeam:python`
        /// (default: python3 on the PATH).
        #[arg(long, env = "WASMBEAM_SDK_PYTHON")]
        sdk_python: Option<PathBuf>,
    },
    /// Run a pipeline (YAML, or a Beam Pipeline proto) to completion.
    Run {
        /// A `.yaml` pipeline, or a Beam `Pipeline` in binary/JSON/text proto.
        pipeline: PathBuf,
        /// Worker threads (default: the pipeline's options, else the number of cores).
        #[arg(long)]
        workers: Option<usize>,
        /// Set a YAML template variable: `--set input=words.txt` fills `{{ input }}`.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
        /// Shuffle memory budget in MiB before spilling to disk (default 128).
        #[arg(long)]
        memory_budget_mb: Option<usize>,
        /// Per-bundle deadline for UDF calls, in seconds (default 60). It is
        /// wall time: time a UDF spends sleeping or blocked counts too.
        #[arg(long)]
        bundle_deadline_secs: Option<u64>,
        /// The job's UDF memory budget in MiB: the linear memory of all its
        /// WASM instances together, the bundle outputs the host holds and the
        /// user state of stateful WASM DoFns
        /// (default 2048). Each instance is also capped at 256 MiB.
        #[arg(long)]
        memory_mb: Option<usize>,
        /// The most one UDF call may return, in MiB: output values plus 48
        /// bytes per output element (default 128).
        #[arg(long)]
        max_output_mb: Option<usize>,
        /// How many times a bundle that fails in an SDK harness (or whose
        /// harness dies) is tried in all, each retry on a fresh harness
        /// (default 3).
        #[arg(long)]
        bundle_attempts: Option<u32>,
        /// SDK harnesses to start per environment, sharing its bundles
        /// (default 1; Beam's --sdk_worker_parallelism on `serve`).
        #[arg(long)]
        sdk_workers: Option<usize>,
    },
    /// Build a guest UDF source directory into a component.
    Build {
        /// The guest's source directory: Cargo.toml (Rust), go.mod (Go) or pyproject.toml (Python).
        dir: PathBuf,
        /// Copy the component here.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Re-encode a Beam pipeline in another format.
    Convert {
        /// The input pipeline (any format).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        to: FormatArg,
        /// Output file; stdout when absent.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Binary,
    Json,
    Text,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Binary => Format::Binary,
            FormatArg::Json => Format::Json,
            FormatArg::Text => Format::Text,
        }
    }
}

/// A failure with its exit code; the message's first line is the cause.
/// Which job, on which server.
#[derive(clap::Args)]
struct JobTarget {
    /// The job id (as the Beam client or `GetJobs` shows it).
    job_id: String,
    /// The job service: HOST:PORT of `wasmbeam serve`.
    #[arg(long, default_value = "127.0.0.1:8099")]
    endpoint: String,
    /// Bearer token of the tenant that owns the job (multi-tenant servers).
    #[arg(long, env = "WASMBEAM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Wait until the job has ended, and print its final state.
    #[arg(long)]
    wait: bool,
}

impl From<JobTarget> for jobctl::JobArgs {
    fn from(t: JobTarget) -> Self {
        jobctl::JobArgs {
            job_id: t.job_id,
            endpoint: t.endpoint,
            token: t.token,
            wait: t.wait,
        }
    }
}

pub(crate) struct Failure {
    code: u8,
    error: anyhow::Error,
}

pub(crate) fn bad_input(e: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: e.into(),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMBEAM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(|| logs::Writer)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Cancel { job } => jobctl::call(jobctl::Action::Cancel, job.into()),
        Command::Drain { job } => jobctl::call(jobctl::Action::Drain, job.into()),
        Command::Inspect { file, format } => inspect(&file, format.map(Into::into)),
        Command::Convert { file, to, output } => convert(&file, to.into(), output),
        Command::Run {
            pipeline,
            workers,
            sets,
            memory_budget_mb,
            bundle_deadline_secs,
            memory_mb,
            max_output_mb,
            bundle_attempts,
            sdk_workers,
        } => run::run(run::RunArgs {
            pipeline,
            workers,
            sets,
            memory_budget_mb,
            bundle_deadline_secs,
            memory_mb,
            max_output_mb,
            bundle_attempts,
            sdk_workers,
        }),
        Command::Build { dir, output } => build(&dir, output),
        Command::Serve {
            host,
            port,
            config,
            state_dir,
            sdk_python,
        } => serve::serve(serve::ServeArgs {
            host,
            port,
            config,
            state_dir,
            sdk_python,
        }),
    };
    match result {
        Ok(()) => {
            logs::release();
            ExitCode::SUCCESS
        }
        Err(f) => {
            let mut chain = f.error.chain();
            if let Some(first) = chain.next() {
                eprintln!("error: {first}");
            }
            for cause in chain {
                eprintln!("  caused by: {cause}");
            }
            logs::release();
            ExitCode::from(f.code)
        }
    }
}

fn read_pipeline(
    file: &std::path::Path,
    format: Option<Format>,
) -> Result<(wasmbeam_proto::pipeline::v1::Pipeline, Format, usize), Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| bad_input(anyhow::anyhow!("cannot read {}: {e}", file.display())))?;
    let format = format
        .or_else(|| Format::from_extension(file))
        .unwrap_or_else(|| Format::sniff(&bytes));
    let p = load::decode(&bytes, format, &file.display().to_string()).map_err(bad_input)?;
    Ok((p, format, bytes.len()))
}

fn inspect(file: &std::path::Path, format: Option<Format>) -> Result<(), Failure> {
    let (pipeline, format, size) = read_pipeline(file, format)?;
    let view = wasmbeam_plan::PipelineView::new(&pipeline)
        .map_err(|e| bad_input(anyhow::anyhow!("{}: invalid pipeline: {e}", file.display())))?;
    println!("Pipeline {} ({format}, {size} bytes)\n", file.display());
    print!("{}", wasmbeam_plan::inspect::render(&view));
    Ok(())
}

fn convert(file: &std::path::Path, to: Format, output: Option<PathBuf>) -> Result<(), Failure> {
    use wasmbeam_proto::prost::Message;
    let (pipeline, _, _) = read_pipeline(file, None)?;
    let bytes = match to {
        Format::Binary => pipeline.encode_to_vec(),
        Format::Json => (load::to_json(&pipeline).map_err(bad_input)? + "\n").into_bytes(),
        Format::Text => load::to_text(&pipeline).map_err(bad_input)?.into_bytes(),
    };
    let written = match &output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
        None => std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(Into::into),
    };
    written.map_err(|error| Failure { code: 1, error })
}

fn build(dir: &std::path::Path, output: Option<PathBuf>) -> Result<(), Failure> {
    let wasm = wasmbeam_build::build(dir).map_err(|e| Failure {
        code: 1,
        error: anyhow::anyhow!("{e}"),
    })?;
    let component = wasmbeam_runner::check_component(&wasm).map_err(bad_input)?;
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
    let dest = match output {
        Some(out) => {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| Failure {
                    code: 1,
                    error: anyhow::anyhow!("cannot create {}: {e}", parent.display()),
                })?;
            }
            std::fs::copy(&wasm, &out).map_err(|e| Failure {
                code: 1,
                error: anyhow::anyhow!("cannot write {}: {e}", out.display()),
            })?;
            out
        }
        None => wasm,
    };
    println!("{}", dest.display());
    let language = wasmbeam_build::detect(dir)
        .map(|l| l.to_string())
        .unwrap_or_default();
    eprintln!(
        "wasmbeam: built a {language} {} component, {} KiB, contract wasmbeam:udf@{}, sha256 {}",
        component.kind,
        size / 1024,
        wasmbeam_runner::CONTRACT_VERSION,
        component.sha256
    );
    if let Ok(d) = std::fs::read(&dest)
        .map_err(|e| e.to_string())
        .and_then(|b| wasmbeam_build::describe(&b))
    {
        eprintln!("  exports: {}", d.exports.join(", "));
        eprintln!("  imports: {}", d.imports.join(", "));
    }
    Ok(())
}
