//! The server's configuration file: tenants, their tokens, quotas and policy.
//!
//! ```yaml
//! state_dir: /var/lib/wasmbeam      # job store, artifacts, component cache
//! max_message_mb: 256               # largest gRPC message accepted
//! tenants:
//!   - name: analytics
//!     token_sha256: 9f86d08...      # sha256 of the bearer token (or `token:`)
//!     quotas:
//!       concurrent_jobs: 4          # jobs running at once
//!       memory_mb: 1024             # UDF memory budget per job: all its WASM
//!                                   # instances' linear memory plus bundle outputs
//!       bundle_deadline_secs: 60    # wall clock per UDF call
//!       workers: 2                  # worker threads per job
//!       artifact_mb: 512            # bytes of staged components kept
//!     data_dirs: [/data/analytics]  # where text IO may read and write
//!     grant_read_dirs: []           # directories UDFs may be granted
//!     environments: [external]      # SDK harness environments it may use
//!                                   # (external, process); default: WASM only
//! ```
//!
//! Without a file the server runs in single-user mode: one tenant called
//! `default`, no token, default quotas, IO anywhere the server process may
//! go, and it only listens on a loopback address.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Limits one tenant's jobs may not exceed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    /// Jobs of this tenant running at once.
    pub concurrent_jobs: usize,
    /// UDF memory budget per job, MiB: the linear memory of all its WASM
    /// instances together, plus the bundle outputs the host holds. Each
    /// instance is also capped at 256 MiB.
    pub memory_mb: usize,
    /// Wall-clock budget of one UDF call, seconds.
    pub bundle_deadline_secs: u64,
    /// Worker threads per job.
    pub workers: usize,
    /// Bytes of staged artifacts the tenant may keep, MiB.
    pub artifact_mb: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            concurrent_jobs: 4,
            memory_mb: 1024,
            bundle_deadline_secs: 60,
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            artifact_mb: 1024,
        }
    }
}

/// One tenant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Name shown in logs and used to own jobs and artifacts.
    pub name: String,
    /// Hex sha256 of the bearer token (preferred: the file holds no secret).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The bearer token itself.
    #[serde(default)]
    pub token: Option<String>,
    /// Quotas; unset fields take the defaults.
    #[serde(default)]
    pub quotas: Quotas,
    /// Directories under which this tenant's text IO may read and write.
    /// Empty: no file IO at all.
    #[serde(default)]
    pub data_dirs: Vec<PathBuf>,
    /// Directories this tenant's UDFs may be granted read-only access to.
    #[serde(default)]
    pub grant_read_dirs: Vec<PathBuf>,
    /// SDK harness environment kinds this tenant may use besides WASM:
    /// `external` (EXTERNAL and LOOPBACK) and `process`. Harnesses run
    /// native code that the WASM sandbox does not contain, so the default
    /// is none.
    #[serde(default)]
    pub environments: Vec<String>,
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Job store, artifacts and component cache.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Largest gRPC message accepted, MiB (default 256).
    #[serde(default)]
    pub max_message_mb: Option<usize>,
    /// The tenants.
    pub tenants: Vec<TenantConfig>,
}

/// A resolved tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Name.
    pub name: String,
    /// sha256 of the token; `None` in single-user mode.
    pub token_sha256: Option<[u8; 32]>,
    /// Quotas.
    pub quotas: Quotas,
    /// Text IO roots; `None` means unrestricted (single-user mode).
    pub data_dirs: Option<Vec<PathBuf>>,
    /// Directories that may be granted to UDFs; `None` means any.
    pub grant_read_dirs: Option<Vec<PathBuf>>,
    /// SDK environment kinds allowed (`external`, `process`); `None` means
    /// any (single-user mode).
    pub environments: Option<Vec<String>>,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Job store, artifacts and component cache.
    pub state_dir: PathBuf,
    /// Largest gRPC message accepted, bytes.
    pub max_message_bytes: usize,
    /// Tenants; one unauthenticated tenant in single-user mode.
    pub tenants: Vec<Tenant>,
    /// True when no config file was given.
    pub single_user: bool,
    /// The interpreter of the built-in Python PROCESS command
    /// (`wasmbeam:python`); `python3` on the PATH when unset.
    pub sdk_python: Option<PathBuf>,
}

impl ServerConfig {
    /// Single-user mode: one tenant, no token, state in `state_dir`.
    pub fn single_user(state_dir: PathBuf) -> Self {
        ServerConfig {
            state_dir,
            max_message_bytes: 256 << 20,
            tenants: vec![Tenant {
                name: "default".into(),
                token_sha256: None,
                quotas: Quotas::default(),
                data_dirs: None,
                grant_read_dirs: None,
                environments: None,
            }],
            single_user: true,
            sdk_python: None,
        }
    }

    /// Read and check a config file. Errors name the file and the field.
    pub fn from_file(path: &Path, default_state_dir: PathBuf) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Self::from_yaml(&text, default_state_dir).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and check config text.
    pub fn from_yaml(text: &str, default_state_dir: PathBuf) -> Result<Self, String> {
        let file: ConfigFile = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if file.tenants.is_empty() {
            return Err("tenants: at least one tenant is needed".into());
        }
        let mut tenants = Vec::new();
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_tokens = std::collections::HashSet::new();
        for (i, t) in file.tenants.into_iter().enumerate() {
            let at = format!("tenants[{i}] ({:?})", t.name);
            if t.name.is_empty() {
                return Err(format!("tenants[{i}].name: must not be empty"));
            }
            if !seen_names.insert(t.name.clone()) {
                return Err(format!("{at}.name: duplicate tenant name"));
            }
            let sha: [u8; 32] = match (&t.token_sha256, &t.token) {
                (Some(h), None) => {
                    let v = hex::decode(h.trim())
                        .map_err(|e| format!("{at}.token_sha256: not hex: {e}"))?;
                    v.try_into()
                        .map_err(|_| format!("{at}.token_sha256: must be 64 hex digits"))?
                }
                (None, Some(tok)) => {
                    if tok.len() < 16 {
                        return Err(format!("{at}.token: at least 16 characters are required"));
                    }
                    Sha256::digest(tok.as_bytes()).into()
                }
                _ => return Err(format!("{at}: give exactly one of token_sha256 and token")),
            };
            if !seen_tokens.insert(sha) {
                return Err(format!("{at}: two tenants share a token"));
            }
            let q = &t.quotas;
            for (field, zero) in [
                ("concurrent_jobs", q.concurrent_jobs == 0),
                ("memory_mb", q.memory_mb == 0),
                ("bundle_deadline_secs", q.bundle_deadline_secs == 0),
                ("workers", q.workers == 0),
            ] {
                if zero {
                    return Err(format!("{at}.quotas.{field}: must be at least 1"));
                }
            }
            let abs = |field: &str, dirs: Vec<PathBuf>| -> Result<Vec<PathBuf>, String> {
                dirs.into_iter()
                    .map(|d| {
                        if !d.is_absolute() {
                            return Err(format!(
                                "{at}.{field}: {} is not an absolute path",
                                d.display()
                            ));
                        }
                        // Canonical when it exists, so symlinks cannot widen it.
                        Ok(d.canonicalize().unwrap_or(d))
                    })
                    .collect()
            };
            for e in &t.environments {
                if e != "external" && e != "process" {
                    return Err(format!(
                        "{at}.environments: unknown environment kind {e:?} (external and process are known; WASM is always allowed)"
                    ));
                }
            }
            tenants.push(Tenant {
                environments: Some(t.environments),
                data_dirs: Some(abs("data_dirs", t.data_dirs)?),
                grant_read_dirs: Some(abs("grant_read_dirs", t.grant_read_dirs)?),
                name: t.name,
                token_sha256: Some(sha),
                quotas: t.quotas,
            });
        }
        Ok(ServerConfig {
            state_dir: file.state_dir.unwrap_or(default_state_dir),
            max_message_bytes: file.max_message_mb.unwrap_or(256).max(4) << 20,
            tenants,
            single_user: false,
            sdk_python: None,
        })
    }

    /// The tenant whose token hashes to `sha`.
    pub fn tenant_by_token(&self, token: &str) -> Option<&Tenant> {
        let sha: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tenants
            .iter()
            .find(|t| t.token_sha256.is_some_and(|h| constant_time_eq(&h, &sha)))
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tenants_and_names_bad_fields() {
        let ok = ServerConfig::from_yaml(
            "tenants:\n  - name: a\n    token: aaaaaaaaaaaaaaaaaaaa\n    quotas: { workers: 1 }\n",
            "/tmp/s".into(),
        )
        .unwrap();
        assert_eq!(ok.tenants[0].quotas.workers, 1);
        assert_eq!(ok.tenants[0].quotas.concurrent_jobs, 4);
        assert!(ok.tenant_by_token("aaaaaaaaaaaaaaaaaaaa").is_some());
        assert!(ok.tenant_by_token("aaaaaaaaaaaaaaaaaaab").is_none());

        let e = ServerConfig::from_yaml(
            "tenants:\n  - name: a\n    token: aaaaaaaaaaaaaaaaaaaa\n    quotas: { workrs: 1 }\n",
            "/tmp/s".into(),
        )
        .unwrap_err();
        assert!(e.contains("workrs"), "{e}");
        let e =
            ServerConfig::from_yaml("tenants:\n  - name: a\n    token: short\n", "/tmp/s".into())
                .unwrap_err();
        assert!(
            e.contains("tenants[0]") && e.contains("16 characters"),
            "{e}"
        );
        let e = ServerConfig::from_yaml(
            "tenants:\n  - name: a\n    token: aaaaaaaaaaaaaaaaaaaa\n  - name: b\n    token: aaaaaaaaaaaaaaaaaaaa\n",
            "/tmp/s".into(),
        )
        .unwrap_err();
        assert!(e.contains("share a token"), "{e}");
        let e = ServerConfig::from_yaml(
            "tenants:\n  - name: a\n    token: aaaaaaaaaaaaaaaaaaaa\n    data_dirs: [rel]\n",
            "/tmp/s".into(),
        )
        .unwrap_err();
        assert!(e.contains("data_dirs") && e.contains("absolute"), "{e}");
    }
}
