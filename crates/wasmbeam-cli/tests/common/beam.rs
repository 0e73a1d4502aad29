//! Helpers for the tests that drive `wasmbeam serve` with the real Beam
//! Python SDK: the project's Python, the scripts in tests/e2e, guest
//! builds, and a server on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::repo;

pub fn python() -> PathBuf {
    let py = repo().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/bootstrap.sh (it installs apache-beam 2.77.0 for these tests)",
        py.display()
    );
    py
}

/// Run a script from tests/e2e with the project's Python package on the path.
pub fn script(name: &str, args: &[&str]) -> Output {
    script_env(name, args, &[])
}

pub fn script_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(python())
        .arg(repo().join("tests/e2e").join(name))
        .args(args)
        .env("PYTHONPATH", repo().join("python"))
        .envs(env.iter().copied())
        .output()
        .expect("run python")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `wasmbeam build DIR -o OUT` with the shared guest target dir.
pub fn build(dir: &Path, out: &Path) -> PathBuf {
    let o = Command::new(env!("CARGO_BIN_EXE_wasmbeam"))
        .args(["build"])
        .arg(dir)
        .arg("-o")
        .arg(out)
        .env(
            "WASMBEAM_GUEST_TARGET_DIR",
            repo().join("target/wasm-guests"),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    out.to_path_buf()
}

/// A `wasmbeam serve` on a free port of 127.0.0.1, killed when dropped.
pub struct Server {
    pub child: Child,
    pub endpoint: String,
}

impl Server {
    pub fn start(state: &Path) -> Server {
        Self::start_with(state, &[])
    }

    pub fn start_with(state: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wasmbeam"))
            .args(["serve", "--port", "0", "--state-dir"])
            .arg(state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start wasmbeam serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let endpoint = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("listening line")
            .to_string();
        assert!(endpoint.starts_with("127.0.0.1:"), "{line}");
        Server { child, endpoint }
    }

    pub fn signal(&mut self, sig: &str) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "server did not stop after {sig}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
