//! Engine settings, live progress, errors and results of a job.

use super::*;

/// Engine settings for one job.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Bytes of shuffle data held in memory before spilling to disk.
    pub memory_budget: usize,
    /// Shuffle partitions per GroupByKey.
    pub partitions: usize,
    /// Where spill files go (a private subdirectory is created and removed).
    pub temp_dir: PathBuf,
    /// Unique tag of this job, used in staging names.
    pub job_tag: String,
    /// Set to stop the job; checked between bundles.
    pub cancel: Arc<AtomicBool>,
    /// Set to drain a streaming job: its sources stop, its watermarks move
    /// to the end of time, every pending window and timer fires, and the
    /// job finishes (batch jobs finish anyway and ignore it).
    pub drain: Arc<AtomicBool>,
    /// Live progress counters.
    pub progress: Arc<Progress>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_budget: 128 << 20,
            partitions: 32,
            temp_dir: std::env::temp_dir(),
            job_tag: format!("{}-{}", std::process::id(), now_nanos()),
            cancel: Arc::new(AtomicBool::new(false)),
            drain: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(Progress::default()),
        }
    }
}

pub(super) fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Stages in the job.
    pub stages_total: AtomicUsize,
    /// Stages finished.
    pub stages_done: AtomicUsize,
    /// Elements produced into PCollections.
    pub elements: AtomicU64,
    /// Bundles processed.
    pub bundles: AtomicU64,
    /// Name of the stage running now.
    pub current: Mutex<String>,
    /// A streaming job's watermark (ms) per PCollection, by name, as of
    /// the last change; empty for batch jobs.
    pub watermarks: Mutex<Vec<(String, i64)>>,
}

impl Progress {
    /// The lowest watermark of a streaming job's PCollections (`None` for
    /// batch jobs), and how many have one.
    pub fn min_watermark(&self) -> Option<i64> {
        self.watermarks
            .lock()
            .ok()
            .and_then(|w| w.iter().map(|(_, t)| *t).min())
    }
}

/// Why a job failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// An operation failed.
    #[error("transform {transform:?} failed: {message}")]
    Op {
        /// The transform's unique name.
        transform: String,
        /// What happened, with its typed cause when it has one.
        message: OpError,
    },
    /// The job was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
    /// The graph cannot be executed.
    #[error("cannot plan the job: {0}")]
    Plan(String),
}

/// What a successful job produced.
#[derive(Debug, Clone, Default)]
pub struct JobResult {
    /// Files committed by text sinks.
    pub outputs: Vec<PathBuf>,
    /// Elements per PCollection, by [`PcId`].
    pub element_counts: Vec<u64>,
    /// Shuffle bytes spilled to disk.
    pub spilled_bytes: usize,
    /// Number of stages run.
    pub stages: usize,
    /// Elements a streaming GroupByKey dropped (late past the allowed
    /// lateness, or for a window already closed), by transform name.
    pub dropped: Vec<(String, u64)>,
}
