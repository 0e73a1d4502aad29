//! Per-store state: the empty WASI context, the resource limiter, captured
//! output, and the user metrics a UDF reports through the `host` imports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::dofn::wasmbeam::udf::host::{self, Level};
use crate::clock::CallGuard;
use crate::config::{Grants, Limits};

/// A distribution metric: count, sum, min and max.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Distribution {
    /// Number of values.
    pub count: i64,
    /// Sum of values.
    pub sum: i64,
    /// Smallest value.
    pub min: i64,
    /// Largest value.
    pub max: i64,
}

impl Distribution {
    fn merge(&mut self, o: Distribution) {
        self.count = self.count.saturating_add(o.count);
        self.sum = self.sum.saturating_add(o.sum);
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// User metrics reported by a UDF, by metric name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMetrics {
    /// Counters (Beam `sum_int64`).
    pub counters: BTreeMap<String, i64>,
    /// Distributions (Beam `distribution_int64`).
    pub distributions: BTreeMap<String, Distribution>,
    /// Gauges (Beam `latest_int64`): last value set.
    pub gauges: BTreeMap<String, i64>,
}

impl UserMetrics {
    /// Fold `other` into `self`.
    pub fn merge(&mut self, other: UserMetrics) {
        for (k, v) in other.counters {
            let c = self.counters.entry(k).or_insert(0);
            *c = c.saturating_add(v);
        }
        for (k, v) in other.distributions {
            match self.distributions.get_mut(&k) {
                Some(d) => d.merge(v),
                None => {
                    self.distributions.insert(k, v);
                }
            }
        }
        self.gauges.extend(other.gauges);
    }

    /// True when nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.distributions.is_empty() && self.gauges.is_empty()
    }
}

/// Limits enforcement that remembers *why* growth was refused.
pub(crate) struct Limiter {
    pub limits: Limits,
    /// Growth was refused by the instance's own cap during this call.
    pub memory_cap_hit: bool,
    /// Growth was refused by the job's budget during this call.
    pub budget_hit: bool,
    /// Bytes this instance holds in the job's budget.
    pub reserved: usize,
    /// The largest linear memory size granted so far, in bytes.
    pub memory_bytes: usize,
    /// The first size granted (the memory the module starts with).
    pub initial_memory_bytes: Option<usize>,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            self.memory_cap_hit = true;
            return Ok(false);
        }
        if let Some(budget) = &self.limits.job_memory {
            let grow = desired.saturating_sub(current);
            if !budget.try_reserve(grow) {
                self.budget_hit = true;
                return Ok(false);
            }
            self.reserved += grow;
        }
        self.memory_bytes = self.memory_bytes.max(desired);
        self.initial_memory_bytes.get_or_insert(desired);
        Ok(true)
    }
    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.limits.table_elements)
    }
    fn instances(&self) -> usize {
        self.limits.instances
    }
    fn tables(&self) -> usize {
        self.limits.tables
    }
    fn memories(&self) -> usize {
        self.limits.memories
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        if let Some(budget) = &self.limits.job_memory {
            budget.release(self.reserved);
        }
    }
}

/// Captured stdout/stderr and log lines of one instance, capped per bundle.
#[derive(Clone)]
pub(crate) struct LogSink {
    inner: Arc<Mutex<LogBuf>>,
}

struct LogBuf {
    udf: String,
    stream: &'static str,
    cap: usize,
    used: usize,
    dropped: usize,
    partial: Vec<u8>,
    /// The last bytes written, kept even past the cap, to explain a trap.
    recent: std::collections::VecDeque<u8>,
}

/// Bytes of recent output remembered to explain a trap.
const RECENT_BYTES: usize = 2048;

impl LogSink {
    pub fn new(udf: &str, stream: &'static str, cap: usize) -> Self {
        LogSink {
            inner: Arc::new(Mutex::new(LogBuf {
                udf: udf.to_string(),
                stream,
                cap,
                used: 0,
                dropped: 0,
                partial: Vec::new(),
                recent: std::collections::VecDeque::with_capacity(RECENT_BYTES),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogBuf> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Account for `n` bytes; false when over the cap (and counts the drop).
    pub fn admit(&self, n: usize) -> bool {
        let mut b = self.lock();
        if b.used.saturating_add(n) > b.cap {
            b.dropped = b.dropped.saturating_add(n);
            return false;
        }
        b.used += n;
        true
    }

    fn write(&self, bytes: &[u8]) {
        let mut b = self.lock();
        let keep = &bytes[bytes.len().saturating_sub(RECENT_BYTES)..];
        while b.recent.len() + keep.len() > RECENT_BYTES {
            b.recent.pop_front();
        }
        b.recent.extend(keep);
        let room = b.cap.saturating_sub(b.used);
        let take = bytes.len().min(room);
        b.used += take;
        b.dropped += bytes.len() - take;
        b.partial.extend_from_slice(&bytes[..take]);
        while let Some(nl) = b.partial.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = b.partial.drain(..=nl).collect();
            tracing::info!(target: "wasmbeam::udf", udf = %b.udf, stream = b.stream, "{}", String::from_utf8_lossy(&line[..line.len() - 1]));
        }
    }

    /// End of bundle: flush a partial line, report drops, reset the budget.
    pub fn end_bundle(&self) {
        let mut b = self.lock();
        if !b.partial.is_empty() {
            let line = std::mem::take(&mut b.partial);
            tracing::info!(target: "wasmbeam::udf", udf = %b.udf, stream = b.stream, "{}", String::from_utf8_lossy(&line));
        }
        if b.dropped > 0 {
            tracing::warn!(target: "wasmbeam::udf", udf = %b.udf, stream = b.stream, "dropped {} bytes of output over the per-bundle cap of {} bytes", b.dropped, b.cap);
        }
        b.used = 0;
        b.dropped = 0;
        b.recent.clear();
    }

    /// The most recent output, for attaching a panic message to a trap.
    pub fn recent(&self) -> String {
        let b = self.lock();
        let (a, c) = b.recent.as_slices();
        let mut v = a.to_vec();
        v.extend_from_slice(c);
        String::from_utf8_lossy(&v).into_owned()
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; wasmbeam links WASIp2.
        Box::new(tokio::io::sink())
    }
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        LogSink::write(self, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always writable: over the cap, bytes are counted and dropped.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

/// Distinct metric names one instance may report; further names are ignored.
const MAX_METRICS: usize = 1024;
/// Longest metric name accepted.
const MAX_METRIC_NAME: usize = 512;

/// Everything a store holds.
pub(crate) struct HostState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// The deadline of the call in progress, seen by the guest's sleeps.
    pub(crate) guard: CallGuard,
    pub limiter: Limiter,
    pub log: LogSink,
    pub stdout: LogSink,
    pub stderr: LogSink,
    pub metrics: UserMetrics,
    /// The state lent for the keyed call in progress, if any.
    pub(crate) keyed: Option<KeyedCall>,
}

impl HostState {
    pub fn new(udf: &str, limits: &Limits, grants: &Grants) -> wasmtime::Result<Self> {
        let cap = limits.log_bytes_per_bundle;
        let stdout = LogSink::new(udf, "stdout", cap);
        let stderr = LogSink::new(udf, "stderr", cap);
        let mut b = WasiCtx::builder();
        // Deny by default: no env, args, network or name lookup; captured stdio.
        b.stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (host_dir, guest_path) in &grants.read_only_dirs {
            b.preopened_dir(host_dir, guest_path, FsPerms::ReadOnly)?;
        }
        Ok(HostState {
            wasi: b.build(),
            table: ResourceTable::new(),
            guard: CallGuard::new(limits.interrupt.clone()),
            limiter: Limiter {
                limits: limits.clone(),
                memory_cap_hit: false,
                budget_hit: false,
                reserved: 0,
                memory_bytes: 0,
                initial_memory_bytes: None,
            },
            log: LogSink::new(udf, "log", cap),
            stdout,
            stderr,
            metrics: UserMetrics::default(),
            keyed: None,
        })
    }

    /// A guest may not grow host memory without bound through metric names.
    fn metric_admitted(&self, name: &str) -> bool {
        let m = &self.metrics;
        name.len() <= MAX_METRIC_NAME
            && (m.counters.contains_key(name)
                || m.distributions.contains_key(name)
                || m.gauges.contains_key(name)
                || m.counters.len() + m.distributions.len() + m.gauges.len() < MAX_METRICS)
    }

    pub fn end_bundle(&mut self) {
        self.log.end_bundle();
        self.stdout.end_bundle();
        self.stderr.end_bundle();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if !self.log.admit(message.len()) {
            return;
        }
        let udf = self
            .log
            .inner
            .lock()
            .map(|b| b.udf.clone())
            .unwrap_or_default();
        match level {
            Level::Trace => tracing::trace!(target: "wasmbeam::udf", udf = %udf, "{message}"),
            Level::Debug => tracing::debug!(target: "wasmbeam::udf", udf = %udf, "{message}"),
            Level::Info => tracing::info!(target: "wasmbeam::udf", udf = %udf, "{message}"),
            Level::Warn => tracing::warn!(target: "wasmbeam::udf", udf = %udf, "{message}"),
            Level::Error => tracing::error!(target: "wasmbeam::udf", udf = %udf, "{message}"),
        }
    }

    fn counter(&mut self, name: String, delta: i64) {
        if !self.metric_admitted(&name) {
            return;
        }
        let c = self.metrics.counters.entry(name).or_insert(0);
        *c = c.saturating_add(delta);
    }

    fn distribution(&mut self, name: String, count: i64, sum: i64, min: i64, max: i64) {
        if !self.metric_admitted(&name) {
            return;
        }
        let d = Distribution {
            count,
            sum,
            min,
            max,
        };
        match self.metrics.distributions.get_mut(&name) {
            Some(x) => x.merge(d),
            None => {
                self.metrics.distributions.insert(name, d);
            }
        }
    }

    fn gauge(&mut self, name: String, value: i64) {
        if !self.metric_admitted(&name) {
            return;
        }
        self.metrics.gauges.insert(name, value);
    }
}

impl crate::bindings::dofn::wasmbeam::udf::types::Host for HostState {}

/// The state a keyed call may use: lent to the store for one call.
pub(crate) struct KeyedCall {
    pub state: crate::keyed::KeyedState,
    /// Key and window of each element (or timer) of the call, by index.
    pub scopes: Vec<crate::keyed::Scope>,
    /// Timestamp of each element (or timer's output) of the call.
    pub timestamps: Vec<i64>,
    pub watermark: i64,
    pub processing: i64,
}

use crate::bindings::dofn::wasmbeam::udf::state as wit_state;
use crate::bindings::dofn::wasmbeam::udf::types::Values as WitValues;

fn wit_values(v: wasmbeam_bundle::Values) -> WitValues {
    let mut offsets = Vec::new();
    crate::batch::pack_u32(&mut offsets, &v.offsets);
    WitValues {
        data: v.data,
        offsets,
    }
}

impl HostState {
    /// Run `f` on the lent state and the scope `scope`; an error traps.
    fn keyed<R>(
        &mut self,
        op: &str,
        scope: u32,
        f: impl FnOnce(&mut crate::keyed::KeyedState, &crate::keyed::Scope) -> Result<R, String>,
    ) -> wasmtime::Result<R> {
        let Some(call) = self.keyed.as_mut() else {
            return Err(wasmtime::Error::msg(format!(
                "state call `{op}` outside a keyed call: state and timers are available in process-bundle, on-timer and on-window-expiration of a DoFn that declares them in describe"
            )));
        };
        let Some(s) = call.scopes.get(scope as usize).cloned() else {
            return Err(wasmtime::Error::msg(format!(
                "state call `{op}` names scope {scope}, but the call has {} elements",
                call.scopes.len()
            )));
        };
        f(&mut call.state, &s).map_err(wasmtime::Error::msg)
    }

    fn keyed_read(
        &mut self,
        op: &str,
        scope: u32,
        f: impl FnOnce(
            &crate::keyed::KeyedState,
            &crate::keyed::Scope,
            &mut wasmbeam_bundle::Values,
        ) -> Result<(), String>,
    ) -> wasmtime::Result<WitValues> {
        let out = self.keyed(op, scope, |st, s| {
            let mut out = wasmbeam_bundle::Values::default();
            f(st, s, &mut out).map(|()| out)
        })?;
        Ok(wit_values(out))
    }
}

impl wit_state::Host for HostState {
    fn read(&mut self, cell: u32, scope: u32) -> wasmtime::Result<WitValues> {
        self.keyed_read("read", scope, |st, s, out| st.read(cell, s, out))
    }
    fn read_range(
        &mut self,
        cell: u32,
        scope: u32,
        start: i64,
        limit: i64,
    ) -> wasmtime::Result<WitValues> {
        self.keyed_read("read-range", scope, |st, s, out| {
            st.read_range(cell, s, start, limit, out)
        })
    }
    fn lookup(&mut self, cell: u32, scope: u32, key: Vec<u8>) -> wasmtime::Result<WitValues> {
        self.keyed_read("lookup", scope, |st, s, out| st.lookup(cell, s, &key, out))
    }
    fn write(&mut self, cell: u32, scope: u32, value: Vec<u8>) -> wasmtime::Result<()> {
        self.keyed("write", scope, |st, s| st.write(cell, s, value))
    }
    fn add(&mut self, cell: u32, scope: u32, value: Vec<u8>) -> wasmtime::Result<()> {
        self.keyed("add", scope, |st, s| st.add(cell, s, value))
    }
    fn put(&mut self, cell: u32, scope: u32, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.keyed("put", scope, |st, s| st.put(cell, s, key, value))
    }
    fn add_at(
        &mut self,
        cell: u32,
        scope: u32,
        timestamp: i64,
        value: Vec<u8>,
    ) -> wasmtime::Result<()> {
        self.keyed("add-at", scope, |st, s| {
            st.add_at(cell, s, timestamp, value)
        })
    }
    fn remove(&mut self, cell: u32, scope: u32, key: Vec<u8>) -> wasmtime::Result<()> {
        self.keyed("remove", scope, |st, s| st.remove(cell, s, &key))
    }
    fn clear(&mut self, cell: u32, scope: u32) -> wasmtime::Result<()> {
        self.keyed("clear", scope, |st, s| st.clear(cell, s))
    }
    fn clear_range(
        &mut self,
        cell: u32,
        scope: u32,
        start: i64,
        limit: i64,
    ) -> wasmtime::Result<()> {
        self.keyed("clear-range", scope, |st, s| {
            st.clear_range(cell, s, start, limit)
        })
    }
    fn set_timer(
        &mut self,
        family: u32,
        scope: u32,
        tag: String,
        fire: i64,
        output_timestamp: i64,
    ) -> wasmtime::Result<()> {
        let ts = self
            .keyed
            .as_ref()
            .and_then(|c| c.timestamps.get(scope as usize).copied())
            .unwrap_or(fire);
        self.keyed("set-timer", scope, |st, s| {
            let output = match output_timestamp {
                i64::MIN => st.default_output_timestamp(family, fire, ts)?,
                t => t,
            };
            st.set_timer(family, s, tag, fire, output)
        })
    }
    fn clear_timer(&mut self, family: u32, scope: u32, tag: String) -> wasmtime::Result<()> {
        self.keyed("clear-timer", scope, |st, s| st.clear_timer(family, s, tag))
    }
    fn input_watermark(&mut self) -> wasmtime::Result<i64> {
        match &self.keyed {
            Some(c) => Ok(c.watermark),
            None => Err(wasmtime::Error::msg(
                "state call `input-watermark` outside a keyed call",
            )),
        }
    }
    fn processing_time(&mut self) -> wasmtime::Result<i64> {
        match &self.keyed {
            Some(c) => Ok(c.processing),
            None => Err(wasmtime::Error::msg(
                "state call `processing-time` outside a keyed call",
            )),
        }
    }
}
