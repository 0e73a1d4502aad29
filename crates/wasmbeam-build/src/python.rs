//! Python guests: not wired yet.

use std::path::{Path, PathBuf};

/// Build the Python guest in `dir`.
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    Err(format!("{}: Python guests are not supported yet", dir.display()))
}
