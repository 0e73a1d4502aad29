//! `wasmbeam serve`: the Beam Job API on a TCP port until SIGINT/SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use wasmbeam_jobserver::{Jobs, ServerConfig};

use crate::Failure;

/// Options of `wasmbeam serve`.
pub struct ServeArgs {
    pub host: String,
    pub port: u16,
    pub config: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub sdk_python: Option<PathBuf>,
}

pub fn serve(args: ServeArgs) -> Result<(), Failure> {
    let default_state = args
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("wasmbeam-state"));
    let mut cfg = match &args.config {
        Some(path) => ServerConfig::from_file(path, default_state)
            .map_err(|e| crate::bad_input(anyhow::anyhow!(e)))?,
        None => ServerConfig::single_user(default_state),
    };
    if let Some(d) = args.state_dir {
        cfg.state_dir = d;
    }
    cfg.sdk_python = args.sdk_python;
    let ip: IpAddr = args.host.parse().map_err(|_| {
        crate::bad_input(anyhow::anyhow!(
            "--host {:?} is not an IP address (for example 127.0.0.1 or 0.0.0.0)",
            args.host
        ))
    })?;
    if cfg.single_user && !ip.is_loopback() {
        return Err(crate::bad_input(anyhow::anyhow!(
            "without --config the server runs in single-user mode with no authentication, so it only listens on a loopback address; use --host 127.0.0.1, or give a config file with tenants and tokens"
        )));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 1,
            error: anyhow::anyhow!("cannot start the runtime: {e}"),
        })?;
    rt.block_on(async move {
        let cfg = Arc::new(cfg);
        let jobs = Jobs::open(cfg.clone()).map_err(|e| Failure {
            code: 1,
            error: anyhow::anyhow!("cannot open the state dir {}: {e}", cfg.state_dir.display()),
        })?;
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, args.port))
            .await
            .map_err(|e| Failure {
                code: 1,
                error: anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port),
            })?;
        let addr = listener.local_addr().map_err(|e| Failure { code: 1, error: e.into() })?;
        // One line on stdout, for scripts and tests that asked for port 0.
        println!("wasmbeam: Beam Job API listening on {addr}");
        eprintln!(
            "wasmbeam: {} mode, state in {}; submit with --runner=PortableRunner --job_endpoint={addr}",
            if cfg.single_user { "single-user" } else { "multi-tenant" },
            cfg.state_dir.display()
        );
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("cannot install the SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            eprintln!("wasmbeam: shutting down; cancelling running jobs");
        };
        wasmbeam_jobserver::serve(jobs, listener, shutdown)
            .await
            .map_err(|e| Failure { code: 1, error: anyhow::anyhow!(e) })?;
        eprintln!("wasmbeam: stopped");
        Ok(())
    })
}
