//! GroupByKey's shuffle: hash-partitioned record buffers that spill to disk
//! past a memory budget (a Grace-hash style external group-by).
//!
//! Producers append records `(key, window, timestamp, seq, value)` to the
//! partition of the key's hash. When the bytes held by all shuffles pass the
//! budget, buffers are appended to per-partition spill files and freed. The
//! consuming stage then reads one partition at a time (its spill file plus
//! what is still in memory), sorts it by (key, window, seq) and groups, so
//! memory holds about one partition per worker, not the whole input.
//!
//! `seq` (stage, source, sub-bundle, index) is assigned from the input's
//! structure only, so sorting by it makes the order of values inside a group
//! independent of how many workers ran.

use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::window::Window;

/// Memory accounting shared by all shuffles of a job.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    spilled: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            spilled: AtomicUsize::new(0),
        })
    }
    /// Bytes written to spill files so far.
    pub fn spilled_bytes(&self) -> usize {
        self.spilled.load(Ordering::Relaxed)
    }
    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// Order of a record among equal keys: where its input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq {
    /// Stage index.
    pub stage: u32,
    /// Source (split or partition) index within the stage.
    pub source: u32,
    /// Bundle index within the source.
    pub sub: u32,
    /// Element index within the bundle.
    pub index: u32,
}

/// One decoded record, borrowing its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Nested key bytes.
    pub key: &'a [u8],
    /// The window.
    pub window: Window,
    /// Event time.
    pub timestamp: i64,
    /// Position for deterministic order.
    pub seq: Seq,
    /// Outer value bytes (or an accumulator).
    pub value: &'a [u8],
}

/// Append a record to `buf`.
pub fn encode_record(buf: &mut Vec<u8>, r: &Record<'_>) {
    buf.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
    buf.extend_from_slice(r.key);
    buf.extend_from_slice(&r.window.start.to_le_bytes());
    buf.extend_from_slice(&r.window.end.to_le_bytes());
    buf.extend_from_slice(&r.timestamp.to_le_bytes());
    for x in [r.seq.stage, r.seq.source, r.seq.sub, r.seq.index] {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
    buf.extend_from_slice(r.value);
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| format!("corrupt shuffle record at byte {pos}"))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

fn u32_at(buf: &[u8], pos: &mut usize) -> Result<u32, String> {
    let b = take(buf, pos, 4)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn i64_at(buf: &[u8], pos: &mut usize) -> Result<i64, String> {
    let b = take(buf, pos, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(i64::from_le_bytes(a))
}

/// Decode the record at `*pos`, advancing it.
pub fn decode_record<'a>(buf: &'a [u8], pos: &mut usize) -> Result<Record<'a>, String> {
    let kl = u32_at(buf, pos)? as usize;
    let key = take(buf, pos, kl)?;
    let window = Window {
        start: i64_at(buf, pos)?,
        end: i64_at(buf, pos)?,
    };
    let timestamp = i64_at(buf, pos)?;
    let seq = Seq {
        stage: u32_at(buf, pos)?,
        source: u32_at(buf, pos)?,
        sub: u32_at(buf, pos)?,
        index: u32_at(buf, pos)?,
    };
    let vl = u32_at(buf, pos)? as usize;
    let value = take(buf, pos, vl)?;
    Ok(Record {
        key,
        window,
        timestamp,
        seq,
        value,
    })
}

/// The partition of a key.
pub fn partition_of(key: &[u8], partitions: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % partitions as u64) as usize
}

/// The shuffle of one GroupByKey.
pub struct Shuffle {
    partitions: usize,
    bufs: Vec<Mutex<Vec<u8>>>,
    spill_files: Vec<Mutex<Option<File>>>,
    spill_dir: PathBuf,
    id: usize,
    budget: Arc<Budget>,
    spilling: AtomicBool,
}

impl Shuffle {
    /// A shuffle with `partitions` partitions spilling under `spill_dir`.
    pub fn new(id: usize, partitions: usize, spill_dir: PathBuf, budget: Arc<Budget>) -> Self {
        Shuffle {
            partitions,
            bufs: (0..partitions).map(|_| Mutex::new(Vec::new())).collect(),
            spill_files: (0..partitions).map(|_| Mutex::new(None)).collect(),
            spill_dir,
            id,
            budget,
            spilling: AtomicBool::new(false),
        }
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// Append encoded records (all of partition `p`).
    pub fn append(&self, p: usize, records: &[u8]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        self.bufs[p]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(records);
        let used = self.budget.used.fetch_add(records.len(), Ordering::Relaxed) + records.len();
        if used > self.budget.limit && !self.spilling.swap(true, Ordering::Acquire) {
            let r = self.spill_all();
            self.spilling.store(false, Ordering::Release);
            r?;
        }
        Ok(())
    }

    fn spill_all(&self) -> Result<(), String> {
        for p in 0..self.partitions {
            let data = std::mem::take(&mut *self.bufs[p].lock().unwrap_or_else(|e| e.into_inner()));
            if data.is_empty() {
                continue;
            }
            let mut slot = self.spill_files[p]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                std::fs::create_dir_all(&self.spill_dir).map_err(|e| {
                    format!(
                        "cannot create spill directory {}: {e}",
                        self.spill_dir.display()
                    )
                })?;
                let path = self.spill_dir.join(format!("shuffle-{}-part-{p}", self.id));
                let f = OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| format!("cannot create spill file {}: {e}", path.display()))?;
                *slot = Some(f);
            }
            if let Some(f) = slot.as_mut() {
                f.write_all(&data)
                    .map_err(|e| format!("cannot write spill file: {e}"))?;
            }
            self.budget.used.fetch_sub(data.len(), Ordering::Relaxed);
            self.budget.spilled.fetch_add(data.len(), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Take all records of partition `p` (spilled and in memory).
    pub fn take_partition(&self, p: usize) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        if let Some(mut f) = self.spill_files[p]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0))
                .map_err(|e| format!("cannot read spill file: {e}"))?;
            f.read_to_end(&mut out)
                .map_err(|e| format!("cannot read spill file: {e}"))?;
            let path = self.spill_dir.join(format!("shuffle-{}-part-{p}", self.id));
            let _ = std::fs::remove_file(path);
        }
        let mem = std::mem::take(&mut *self.bufs[p].lock().unwrap_or_else(|e| e.into_inner()));
        self.budget.used.fetch_sub(mem.len(), Ordering::Relaxed);
        out.extend_from_slice(&mem);
        Ok(out)
    }
}

/// Decode and sort a partition's records by (key, window, seq).
pub fn sorted_records(buf: &[u8]) -> Result<Vec<Record<'_>>, String> {
    let mut recs = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        recs.push(decode_record(buf, &mut pos)?);
    }
    recs.sort_unstable_by(|a, b| {
        a.key
            .cmp(b.key)
            .then(a.window.cmp(&b.window))
            .then(a.seq.cmp(&b.seq))
    });
    Ok(recs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_spill_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget::new(1000);
        let s = Shuffle::new(0, 4, dir.path().to_path_buf(), budget.clone());
        let mut total = 0;
        for i in 0..2000u32 {
            let key = format!("k{}", i % 10);
            let mut buf = Vec::new();
            encode_record(
                &mut buf,
                &Record {
                    key: key.as_bytes(),
                    window: Window::GLOBAL,
                    timestamp: 1,
                    seq: Seq {
                        index: i,
                        ..Seq::default()
                    },
                    value: b"v",
                },
            );
            s.append(partition_of(key.as_bytes(), 4), &buf).unwrap();
            total += 1;
        }
        assert!(
            budget.spilled_bytes() > 0,
            "expected spills under a 1000-byte budget"
        );
        let mut seen = 0;
        for p in 0..4 {
            let buf = s.take_partition(p).unwrap();
            let recs = sorted_records(&buf).unwrap();
            for w in recs.windows(2) {
                assert!(w[0].key < w[1].key || (w[0].key == w[1].key && w[0].seq < w[1].seq));
            }
            seen += recs.len();
        }
        assert_eq!(seen, total);
    }
}
