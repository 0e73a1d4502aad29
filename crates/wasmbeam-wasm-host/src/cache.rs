//! On-disk cache of compiled components.
//!
//! Key: sha256 of the component bytes plus a hash of the engine's
//! compatibility settings (wasmtime version, target, tunables), so a cache
//! written by another wasmtime or configuration is never used. Entries are
//! written to a temporary file and renamed, so a crash never leaves a torn
//! entry. Entries are memory-mapped when loaded, so they must only ever be
//! replaced by rename, never rewritten in place. The directory is trusted:
//! only the operator's wasmbeam writes it.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

impl DiskCache {
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compiled component, if present and loadable.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let p = self.path(sha256);
        if !p.exists() {
            return None;
        }
        // SAFETY: the file was produced by `Engine::precompile_component` of an
        // engine with the same compatibility hash, and the cache directory is
        // only written by wasmbeam (see module docs).
        match unsafe { Component::deserialize_file(engine, &p) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %p.display(), "ignoring unusable cache entry: {e}");
                let _ = std::fs::remove_file(&p);
                None
            }
        }
    }

    /// Store a compiled component; failures only cost a recompile later.
    pub fn put(&self, sha256: &str, compiled: &[u8]) {
        let p = self.path(sha256);
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        let res = std::fs::write(&tmp, compiled).and_then(|_| std::fs::rename(&tmp, &p));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %p.display(), "could not write the component cache: {e}");
        }
    }
}
