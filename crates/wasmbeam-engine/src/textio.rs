//! Runner-native text IO: reading lines from files (globs, gzip, split into
//! byte ranges) and writing sharded files that appear only when the job
//! commits.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::batch::Batch;
use crate::graph::TextSink;
use crate::window::Window;

/// Byte length of one read split of an uncompressed file. Fixed (not derived
/// from the worker count) so bundle boundaries, and therefore output order,
/// do not depend on parallelism.
pub const SPLIT_BYTES: u64 = 8 << 20;
/// Lines per bundle when reading.
pub const BUNDLE_LINES: usize = 8192;

/// A byte range of one file (a whole file when compressed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The file.
    pub path: PathBuf,
    /// First byte (lines starting before it belong to the previous split).
    pub start: u64,
    /// End byte (the last line may run past it).
    pub end: u64,
    /// Gzip-compressed: read from 0 to the end.
    pub gzip: bool,
}

/// Expand patterns into sorted, de-duplicated files and cut them into splits.
pub fn plan_splits(patterns: &[String]) -> Result<Vec<Split>, String> {
    let mut files = std::collections::BTreeSet::new();
    for p in patterns {
        let before = files.len();
        let entries = glob::glob(p).map_err(|e| format!("invalid file pattern {p:?}: {e}"))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("cannot read a match of {p:?}: {e}"))?;
            if path.is_file() {
                files.insert(path);
            }
        }
        if files.len() == before && !Path::new(p).is_file() {
            return Err(format!("no file matches {p:?}"));
        }
    }
    let mut splits = Vec::new();
    for path in files {
        let len = std::fs::metadata(&path)
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
        let gzip = path.extension().is_some_and(|e| e == "gz");
        if gzip {
            splits.push(Split {
                path,
                start: 0,
                end: u64::MAX,
                gzip,
            });
            continue;
        }
        let mut start = 0;
        while start < len {
            let end = (start + SPLIT_BYTES).min(len);
            splits.push(Split {
                path: path.clone(),
                start,
                end,
                gzip,
            });
            start = end;
        }
    }
    Ok(splits)
}

/// Read a split's lines, handing each full bundle to `emit`.
pub fn read_split(
    split: &Split,
    mut emit: impl FnMut(Batch) -> Result<(), String>,
) -> Result<(), String> {
    let name = split.path.display().to_string();
    let mut file = File::open(&split.path).map_err(|e| format!("cannot open {name}: {e}"))?;
    if split.gzip {
        let r = BufReader::with_capacity(1 << 16, flate2::read::MultiGzDecoder::new(file));
        return read_lines(r, 0, u64::MAX, &name, &mut emit);
    }
    if split.start == 0 {
        return read_lines(
            BufReader::with_capacity(1 << 16, file),
            0,
            split.end,
            &name,
            &mut emit,
        );
    }
    // Start after the first newline at or after start-1: the line crossing
    // the boundary belongs to the previous split.
    file.seek(SeekFrom::Start(split.start - 1))
        .map_err(|e| format!("cannot seek in {name}: {e}"))?;
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut skipped = Vec::new();
    let n = r
        .read_until(b'\n', &mut skipped)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    read_lines(r, split.start - 1 + n as u64, split.end, &name, &mut emit)
}

fn read_lines(
    mut r: impl BufRead,
    mut pos: u64,
    end: u64,
    name: &str,
    emit: &mut impl FnMut(Batch) -> Result<(), String>,
) -> Result<(), String> {
    let mut batch = Batch::with_capacity(BUNDLE_LINES, 1 << 20);
    let mut line = Vec::with_capacity(256);
    while pos < end {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        let mut l = &line[..];
        if l.last() == Some(&b'\n') {
            l = &l[..l.len() - 1];
            if l.last() == Some(&b'\r') {
                l = &l[..l.len() - 1];
            }
        }
        batch.push_global(l, crate::window::MIN_TIMESTAMP);
        if batch.len() >= BUNDLE_LINES {
            emit(std::mem::replace(
                &mut batch,
                Batch::with_capacity(BUNDLE_LINES, 1 << 20),
            ))?;
        }
    }
    if !batch.is_empty() {
        emit(batch)?;
    }
    Ok(())
}

/// Remove the entries of `dir` named `{prefix}{pid}-...` whose process is
/// gone: what a run killed with SIGKILL left behind (staging directories,
/// spill directories). A process that is still alive, or a name that does
/// not parse, is left alone; without `/proc` nothing is removed.
pub fn remove_stale(dir: &Path, prefix: &str) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = e.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed what a killed run (pid {pid}) left behind")
            }
            Err(err) => {
                tracing::warn!(path = %path.display(), "cannot remove what a killed run (pid {pid}) left behind: {err}")
            }
        }
    }
}

/// Lines written by one sink, staged as part files until the job commits.
pub struct StagedText {
    sink: TextSink,
    dir: PathBuf,
}

/// Ordering key of a part: (stage, source, sub-bundle).
pub type PartKey = (u32, u32, u32);

impl StagedText {
    /// Create a private staging directory next to the output prefix.
    pub fn new(sink: TextSink, job_tag: &str) -> Result<Self, String> {
        let prefix = Path::new(&sink.prefix);
        let parent = match prefix.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| format!("cannot create output directory {}: {e}", parent.display()))?;
        let base = prefix
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        remove_stale(&parent, &format!(".{base}.wasmbeam-staging-"));
        let dir = parent.join(format!(".{base}.wasmbeam-staging-{job_tag}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create staging directory {}: {e}", dir.display()))?;
        Ok(StagedText { sink, dir })
    }

    /// Stage one bundle's lines.
    pub fn write_part(&self, key: PartKey, batch: &Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let path = self
            .dir
            .join(format!("part-{:05}-{:010}-{:010}", key.0, key.1, key.2));
        let mut buf = Vec::with_capacity(batch.values.data.len() + batch.len());
        for e in batch.iter() {
            buf.extend_from_slice(e.value);
            buf.push(b'\n');
        }
        std::fs::write(&path, buf).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    /// Final shard file names, in shard order.
    pub fn shard_paths(&self) -> Vec<PathBuf> {
        let n = self.sink.shards.max(1);
        (0..n)
            .map(|i| {
                PathBuf::from(format!(
                    "{}-{:05}-of-{:05}{}",
                    self.sink.prefix, i, n, self.sink.suffix
                ))
            })
            .collect()
    }

    /// Assemble shards in the staging directory, then move them into place.
    /// Returns the final paths.
    pub fn commit(self) -> Result<Vec<PathBuf>, String> {
        let n = self.sink.shards.max(1);
        let mut parts: BTreeMap<String, PathBuf> = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?
        {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("part-") {
                parts.insert(name, entry.path());
            }
        }
        let mut shards: Vec<File> = Vec::new();
        let mut staged = Vec::new();
        for i in 0..n {
            let p = self.dir.join(format!("shard-{i:05}"));
            shards
                .push(File::create(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?);
            staged.push(p);
        }
        for (i, (_, path)) in parts.iter().enumerate() {
            let mut src =
                File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let mut buf = Vec::new();
            src.read_to_end(&mut buf).map_err(|e| e.to_string())?;
            shards[i % n]
                .write_all(&buf)
                .map_err(|e| format!("cannot write shard: {e}"))?;
        }
        for f in &shards {
            f.sync_all()
                .map_err(|e| format!("cannot sync shard: {e}"))?;
        }
        drop(shards);
        let finals = self.shard_paths();
        for (from, to) in staged.iter().zip(&finals) {
            std::fs::rename(from, to)
                .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(finals)
    }

    /// Throw away everything staged.
    pub fn abort(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A watched set of file patterns: which files are new and complete.
#[derive(Debug, Default)]
pub struct Watcher {
    /// Files read already.
    read: std::collections::HashSet<PathBuf>,
    /// Files seen at the last poll but not read yet, with (size, mtime).
    pending: std::collections::HashMap<PathBuf, (u64, Option<std::time::SystemTime>)>,
}

impl Watcher {
    /// Match `patterns` now; the files that are new and complete (their size
    /// and modification time the same as at the previous poll), sorted,
    /// each returned once. A pattern matching nothing is not an error here.
    pub fn poll(&mut self, patterns: &[String]) -> Result<Vec<Split>, String> {
        let mut now: std::collections::BTreeMap<PathBuf, (u64, Option<std::time::SystemTime>)> =
            Default::default();
        for p in patterns {
            let entries = glob::glob(p).map_err(|e| format!("invalid file pattern {p:?}: {e}"))?;
            for path in entries.flatten() {
                if self.read.contains(&path) {
                    continue;
                }
                if let Ok(m) = std::fs::metadata(&path) {
                    if m.is_file() {
                        now.insert(path, (m.len(), m.modified().ok()));
                    }
                }
            }
        }
        let mut ready = Vec::new();
        for (path, stamp) in &now {
            if self.pending.get(path) == Some(stamp) {
                ready.push(Split {
                    path: path.clone(),
                    start: 0,
                    end: u64::MAX,
                    gzip: path.extension().is_some_and(|e| e == "gz"),
                });
            }
        }
        for s in &ready {
            self.read.insert(s.path.clone());
            now.remove(&s.path);
        }
        self.pending = now.into_iter().collect();
        Ok(ready)
    }
}

/// A streaming job's text sink: each pane's lines go to a file of their
/// own as the pane reaches the sink, written beside the prefix under a
/// hidden name and renamed into place (committed) at once. Names are
/// deterministic: `PREFIX-START-END-paneINDEX-PART` + suffix for an
/// interval window (START and END in ms since the epoch), and
/// `PREFIX-global-paneINDEX-PART` + suffix for the global window; PART
/// counts the bundles of one window and pane, from 00000.
pub struct PaneText {
    sink: TextSink,
    parts: std::collections::HashMap<(Window, i64), u32>,
    written: Vec<PathBuf>,
}

impl PaneText {
    /// A sink writing next to `sink.prefix` (its directory is created).
    pub fn new(sink: TextSink) -> Result<Self, String> {
        if let Some(parent) = Path::new(&sink.prefix)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create output directory {}: {e}", parent.display()))?;
        }
        Ok(PaneText {
            sink,
            parts: Default::default(),
            written: Vec::new(),
        })
    }

    /// Commit one bundle's lines, one file per window and pane in it.
    pub fn write(&mut self, batch: &Batch) -> Result<(), String> {
        let mut groups: BTreeMap<(Window, i64), Vec<u8>> = BTreeMap::new();
        for e in batch.iter() {
            for w in e.windows() {
                let buf = groups.entry((w, e.pane_indexes[0])).or_default();
                buf.extend_from_slice(e.value);
                buf.push(b'\n');
            }
        }
        for ((w, pane), buf) in groups {
            let part = self.parts.entry((w, pane)).or_insert(0);
            let window = if w.is_global() {
                "global".to_string()
            } else {
                format!("{}-{}", w.start, w.end)
            };
            let path = PathBuf::from(format!(
                "{}-{window}-pane{pane}-{part:05}{}",
                self.sink.prefix, self.sink.suffix
            ));
            *part += 1;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = path.with_file_name(format!(".{name}.wasmbeam-writing"));
            std::fs::write(&tmp, &buf)
                .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| format!("cannot move {} to {}: {e}", tmp.display(), path.display()))?;
            self.written.push(path);
        }
        Ok(())
    }

    /// The files committed so far, in the order they were written.
    pub fn finish(self) -> Vec<PathBuf> {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_every_line_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.txt");
        let mut text = String::new();
        for i in 0..600_000 {
            text.push_str(&format!("line number {i}\n"));
        }
        std::fs::write(&p, &text).unwrap();
        let splits = plan_splits(&[p.display().to_string()]).unwrap();
        assert!(splits.len() > 1);
        let mut lines = Vec::new();
        for s in &splits {
            read_split(s, |b| {
                lines.extend(
                    b.iter()
                        .map(|e| String::from_utf8(e.value.to_vec()).unwrap()),
                );
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(lines.len(), 600_000);
        assert_eq!(lines[123_456], "line number 123456");
    }

    #[test]
    fn stale_staging_of_dead_processes_is_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that cannot be alive (above the kernel's pid_max).
        let dead = dir.path().join(".out.wasmbeam-staging-4194999-123");
        let live = dir
            .path()
            .join(format!(".out.wasmbeam-staging-{}-456", std::process::id()));
        let other = dir.path().join(".other.wasmbeam-staging-4194999-1");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("part-00000"), b"x\n").unwrap();
        }
        let sink = TextSink {
            prefix: dir.path().join("out").display().to_string(),
            suffix: String::new(),
            shards: 1,
        };
        let staged = StagedText::new(sink, "new-run").unwrap();
        assert!(!dead.exists(), "the dead run's staging directory is gone");
        assert!(
            live.exists() && other.exists(),
            "live and unrelated ones stay"
        );
        staged.abort();
    }

    #[test]
    fn missing_files_are_named() {
        let err = plan_splits(&["/nonexistent/dir/*.txt".to_string()]).unwrap_err();
        assert!(
            err.contains("no file matches \"/nonexistent/dir/*.txt\""),
            "{err}"
        );
    }
}
