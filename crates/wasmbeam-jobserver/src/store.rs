//! The persistent job store: one embedded `redb` database in the state
//! directory, written on every state change, so job records survive a
//! restart.
//!
//! Tables:
//! * `jobs`: job id → [`JobRecord`] as JSON (small, human-inspectable);
//! * `pipelines`: job id → the submitted `Pipeline` proto (after staging,
//!   with component artifacts pointing into the artifact store);
//! * `options`: job id → the pipeline options `Struct` proto;
//! * `metrics`: job id → the final `GetJobMetricsResponse` proto;
//! * `artifacts`: `tenant/sha256` → size in bytes (who may read what).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
const PIPELINES: TableDefinition<&str, &[u8]> = TableDefinition::new("pipelines");
const OPTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("options");
const METRICS: TableDefinition<&str, &[u8]> = TableDefinition::new("metrics");
const ARTIFACTS: TableDefinition<&str, u64> = TableDefinition::new("artifacts");

/// One line of a job's message stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageRecord {
    /// Unique within the job.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Beam's `JobMessage.MessageImportance` value.
    pub importance: i32,
    /// The text.
    pub text: String,
}

/// What the store keeps about one job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    /// Job id (also the preparation id).
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// The client's job name.
    pub name: String,
    /// Beam's `JobState.Enum` value.
    pub state: i32,
    /// When the state last changed, ms since the Unix epoch.
    pub state_ms: i64,
    /// When the job was prepared.
    pub created_ms: i64,
    /// Messages so far (the cause of a failure is the last one).
    pub messages: Vec<MessageRecord>,
}

/// Store failures carry the operation and redb's reason.
#[derive(Debug, thiserror::Error)]
#[error("job store ({what}): {detail}")]
pub struct StoreError {
    what: &'static str,
    detail: String,
}

fn se<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |e| StoreError {
        what,
        detail: e.to_string(),
    }
}

/// The embedded database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Open (or create) `dir/jobs.redb`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(se("create state dir"))?;
        let db = Database::create(dir.join("jobs.redb")).map_err(se("open"))?;
        let w = db.begin_write().map_err(se("open"))?;
        {
            w.open_table(JOBS).map_err(se("open"))?;
            w.open_table(PIPELINES).map_err(se("open"))?;
            w.open_table(OPTIONS).map_err(se("open"))?;
            w.open_table(METRICS).map_err(se("open"))?;
            w.open_table(ARTIFACTS).map_err(se("open"))?;
        }
        w.commit().map_err(se("open"))?;
        Ok(Store { db })
    }

    /// Insert a new job with its pipeline and options.
    pub fn insert(
        &self,
        rec: &JobRecord,
        pipeline: &[u8],
        options: &[u8],
    ) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(se("insert job"))?;
        {
            let json = serde_json::to_vec(rec).map_err(se("insert job"))?;
            w.open_table(JOBS)
                .map_err(se("insert job"))?
                .insert(rec.id.as_str(), json.as_slice())
                .map_err(se("insert job"))?;
            w.open_table(PIPELINES)
                .map_err(se("insert job"))?
                .insert(rec.id.as_str(), pipeline)
                .map_err(se("insert job"))?;
            w.open_table(OPTIONS)
                .map_err(se("insert job"))?
                .insert(rec.id.as_str(), options)
                .map_err(se("insert job"))?;
        }
        w.commit().map_err(se("insert job"))
    }

    /// Replace a job's record.
    pub fn update(&self, rec: &JobRecord) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(se("update job"))?;
        {
            let json = serde_json::to_vec(rec).map_err(se("update job"))?;
            w.open_table(JOBS)
                .map_err(se("update job"))?
                .insert(rec.id.as_str(), json.as_slice())
                .map_err(se("update job"))?;
        }
        w.commit().map_err(se("update job"))
    }

    /// Replace a job's pipeline (after staging rewrote its artifacts).
    pub fn set_pipeline(&self, id: &str, pipeline: &[u8]) -> Result<(), StoreError> {
        self.put(PIPELINES, id, pipeline, "store pipeline")
    }

    /// Store a job's final metrics.
    pub fn set_metrics(&self, id: &str, metrics: &[u8]) -> Result<(), StoreError> {
        self.put(METRICS, id, metrics, "store metrics")
    }

    fn put(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        bytes: &[u8],
        what: &'static str,
    ) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(se(what))?;
        w.open_table(table)
            .map_err(se(what))?
            .insert(id, bytes)
            .map_err(se(what))?;
        w.commit().map_err(se(what))
    }

    fn get(
        &self,
        table: TableDefinition<&str, &[u8]>,
        id: &str,
        what: &'static str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let r = self.db.begin_read().map_err(se(what))?;
        let t = r.open_table(table).map_err(se(what))?;
        Ok(t.get(id).map_err(se(what))?.map(|v| v.value().to_vec()))
    }

    /// A job's pipeline proto bytes.
    pub fn pipeline(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(PIPELINES, id, "read pipeline")
    }

    /// A job's options proto bytes.
    pub fn options(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(OPTIONS, id, "read options")
    }

    /// A job's final metrics proto bytes.
    pub fn metrics(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(METRICS, id, "read metrics")
    }

    /// Every job record.
    pub fn all_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let r = self.db.begin_read().map_err(se("list jobs"))?;
        let t = r.open_table(JOBS).map_err(se("list jobs"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(se("list jobs"))? {
            let (_, v) = row.map_err(se("list jobs"))?;
            out.push(serde_json::from_slice(v.value()).map_err(se("decode job record"))?);
        }
        Ok(out)
    }

    /// Record that `tenant` owns artifact `sha` of `size` bytes.
    pub fn own_artifact(&self, tenant: &str, sha: &str, size: u64) -> Result<(), StoreError> {
        let w = self.db.begin_write().map_err(se("own artifact"))?;
        w.open_table(ARTIFACTS)
            .map_err(se("own artifact"))?
            .insert(format!("{tenant}/{sha}").as_str(), size)
            .map_err(se("own artifact"))?;
        w.commit().map_err(se("own artifact"))
    }

    /// Does `tenant` own artifact `sha`?
    pub fn owns_artifact(&self, tenant: &str, sha: &str) -> Result<bool, StoreError> {
        let r = self.db.begin_read().map_err(se("read artifact owner"))?;
        let t = r.open_table(ARTIFACTS).map_err(se("read artifact owner"))?;
        Ok(t.get(format!("{tenant}/{sha}").as_str())
            .map_err(se("read artifact owner"))?
            .is_some())
    }

    /// Bytes of artifacts `tenant` owns.
    pub fn artifact_bytes(&self, tenant: &str) -> Result<u64, StoreError> {
        let r = self.db.begin_read().map_err(se("sum artifacts"))?;
        let t = r.open_table(ARTIFACTS).map_err(se("sum artifacts"))?;
        let prefix = format!("{tenant}/");
        let mut sum = 0u64;
        for row in t.range(prefix.as_str()..).map_err(se("sum artifacts"))? {
            let (k, v) = row.map_err(se("sum artifacts"))?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            sum = sum.saturating_add(v.value());
        }
        Ok(sum)
    }
}
