//! The content-addressed artifact store: `artifacts/<sha256>` under the
//! state directory. Bytes arrive into a temporary file while being hashed,
//! and are renamed into place only when complete and verified, so a reader
//! never sees a partial artifact. Who may read an artifact is recorded in
//! the job store (`artifacts` table), not here.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The directory of artifacts.
pub struct ArtifactStore {
    dir: PathBuf,
}

/// An artifact being received.
pub struct Incoming {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
}

impl ArtifactStore {
    /// Use (and create) `dir`.
    pub fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("incoming"))?;
        // Leftovers of an interrupted upload are never referenced.
        if let Ok(rd) = std::fs::read_dir(dir.join("incoming")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(ArtifactStore { dir })
    }

    /// Start receiving an artifact.
    pub fn begin(&self) -> std::io::Result<Incoming> {
        Ok(Incoming {
            file: tempfile::NamedTempFile::new_in(self.dir.join("incoming"))?,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Where artifact `sha` lives.
    pub fn path_of(&self, sha: &str) -> PathBuf {
        self.dir.join(sha)
    }

    /// The sha of a path inside this store, if it is one.
    pub fn sha_of_path(&self, path: &Path) -> Option<String> {
        let parent = path.parent()?;
        if parent != self.dir {
            return None;
        }
        let name = path.file_name()?.to_str()?;
        (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| name.to_ascii_lowercase())
    }

    /// Finish `incoming`: check `expected_sha` (when not empty) and move it
    /// into place. Returns the sha and the size.
    pub fn finish(&self, incoming: Incoming, expected_sha: &str) -> Result<(String, u64), String> {
        let sha = hex::encode(incoming.hasher.finalize());
        if !expected_sha.is_empty() && !expected_sha.eq_ignore_ascii_case(&sha) {
            return Err(format!(
                "the bytes received have sha256 {sha}, but the artifact says {expected_sha}"
            ));
        }
        let dest = self.path_of(&sha);
        if !dest.exists() {
            incoming
                .file
                .as_file()
                .sync_all()
                .map_err(|e| format!("cannot write artifact: {e}"))?;
            incoming
                .file
                .persist(&dest)
                .map_err(|e| format!("cannot store artifact {sha}: {e}"))?;
        }
        Ok((sha, incoming.size))
    }
}

impl Incoming {
    /// Append a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.file.write_all(chunk)
    }

    /// Bytes so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}
