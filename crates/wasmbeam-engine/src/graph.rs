//! The engine's own pipeline graph. The runner translates a Beam `Pipeline`
//! into this; nothing here knows about protos, coders or WebAssembly. User
//! functions and key handling arrive through the traits below.

use std::sync::Arc;

use crate::batch::Batch;
use crate::panes::Triggering;
use crate::window::WindowFn;

/// Index of a PCollection in [`Graph::pcollections`].
pub type PcId = usize;

/// Why an operation failed; the engine adds the transform name. Either a
/// message, or a typed cause (a UDF's deadline, a memory budget) that the
/// caller can inspect with [`OpError::cause`] after the job fails.
#[derive(Debug, Clone)]
pub struct OpError {
    message: String,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl OpError {
    /// An error with a typed cause; its message is the cause's.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        OpError {
            message: cause.to_string(),
            cause: Some(Arc::new(cause)),
        }
    }
    /// The typed cause, if there is one.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for OpError {
    fn from(message: String) -> Self {
        OpError {
            message,
            cause: None,
        }
    }
}

impl From<&str> for OpError {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// Two errors are equal when they say the same thing.
impl PartialEq for OpError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}
impl Eq for OpError {}

/// The result of an operation.
pub type OpResult<T> = Result<T, OpError>;

/// A DoFn, however it is implemented (the runner uses WASM components).
pub trait DoFnExec: Send + Sync {
    /// Called once before the stage that runs this DoFn starts, with the
    /// side inputs (by tag) materialised.
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()>;
    /// Process one bundle; returns one batch per output, in output order.
    /// Output elements carry their own timestamps, windows and panes.
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>>;
    /// Process one bundle, handing its output to `emit` as (output index,
    /// batch) parts, possibly while it runs, so a large bundle's output
    /// need not be held at once. `outputs` is the number of outputs. The
    /// default runs [`DoFnExec::process`] and emits its batches.
    fn process_into(
        &self,
        input: Batch,
        outputs: usize,
        emit: &mut dyn FnMut(usize, Batch) -> OpResult<()>,
    ) -> OpResult<()> {
        emit_batches(self.process(input)?, outputs, emit)
    }
}

/// Hand one batch per output to `emit`, checking there are `outputs` of
/// them (for [`DoFnExec::process_into`] built on whole batches).
pub fn emit_batches(
    outs: Vec<Batch>,
    outputs: usize,
    emit: &mut dyn FnMut(usize, Batch) -> OpResult<()>,
) -> OpResult<()> {
    if outs.len() != outputs {
        return Err(format!("produced {} outputs, expected {outputs}", outs.len()).into());
    }
    for (i, b) in outs.into_iter().enumerate() {
        emit(i, b)?;
    }
    Ok(())
}

/// A DoFn with per-key state and timers (Beam's stateful ParDo). The engine
/// shuffles its input by key, so each key is in one shuffle partition, and
/// runs every partition through one [`KeyedRun`]: first all its elements
/// (in key, window, arrival order), then the timers, round after round,
/// until none is due.
pub trait KeyedDoFnExec: Send + Sync {
    /// Called once before the stage starts, with the side inputs (by tag).
    fn prepare(&self, side_inputs: Vec<(String, Batch)>) -> OpResult<()>;
    /// Fresh state and timers for one partition's keys.
    fn open(&self) -> OpResult<Box<dyn KeyedRun>>;
}

/// The state and pending timers of one partition's keys.
pub trait KeyedRun: Send {
    /// Process a bundle of elements; one batch per output, in output order.
    fn process(&mut self, input: Batch) -> OpResult<Vec<Batch>>;
    /// Fire the timers due once the input watermark is at `watermark` and
    /// processing time at `processing` (in batch, both at the end of time
    /// once the input is done), as one bundle, and expire the windows the
    /// watermark has passed. `None` when nothing was due; firing may set
    /// new timers, so the engine calls again until it gets `None`.
    fn fire(&mut self, watermark: i64, processing: i64) -> OpResult<Option<Vec<Batch>>>;
    /// The earliest output timestamp of a pending timer or buffered state:
    /// the output watermark may not pass it.
    fn hold(&self) -> Option<i64> {
        None
    }
    /// When the earliest processing-time timer is due (ms).
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }
    /// The streaming executor's input watermark and processing time, told
    /// before each bundle so the DoFn can read them. Without it (in batch)
    /// the watermark is Beam's minimum and processing time the wall clock.
    fn observe(&mut self, _watermark: i64, _processing: i64) {}
}

/// Splits encoded `KV` values for grouping.
pub trait KvCodec: Send + Sync {
    /// Split an outer-context KV encoding into (nested key bytes, outer value bytes).
    fn split<'a>(&self, kv: &'a [u8]) -> OpResult<(&'a [u8], &'a [u8])>;
    /// Append the nested-context encoding of an outer-context value
    /// (for building `iterable<V>`).
    fn value_to_nested(&self, outer: &[u8], out: &mut Vec<u8>) -> OpResult<()>;
}

pub use wasmbeam_bundle::Values;

/// A CombineFn over encoded values and accumulators, applied to many groups per call.
pub trait CombineExec: Send + Sync {
    /// A fresh accumulator.
    fn create(&self) -> OpResult<Vec<u8>>;
    /// For each group g, add inputs[ends[g-1]..ends[g]] to accs[g].
    fn add_inputs(&self, accs: &Values, inputs: &Values, ends: &[u32]) -> OpResult<Values>;
    /// For each group g, merge accs[ends[g-1]..ends[g]].
    fn merge(&self, accs: &Values, ends: &[u32]) -> OpResult<Values>;
    /// The output of each accumulator (outer-context encoding).
    fn extract(&self, accs: &Values) -> OpResult<Values>;
    /// True when [`CombineExec::add_input_in_place`] is implemented: the
    /// engine then folds each input straight into its accumulator instead of
    /// batching groups (runner-native combiners do this).
    fn supports_in_place(&self) -> bool {
        false
    }
    /// Fold one input into an accumulator in place.
    fn add_input_in_place(&self, _acc: &mut Vec<u8>, _input: &[u8]) -> OpResult<()> {
        Err("this combine function has no in-place path".into())
    }
}

/// Where a text sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSink {
    /// Output prefix; shards are `PREFIX-SSSSS-of-NNNNN` + suffix.
    pub prefix: String,
    /// Suffix after the shard name, e.g. `.txt`.
    pub suffix: String,
    /// Number of shards (at least 1).
    pub shards: usize,
}

/// One operation of the graph.
pub enum OpKind {
    /// One empty element in the global window.
    Impulse,
    /// Lines of text files (globs; `.gz` decompressed), one element each.
    ReadText {
        /// File patterns.
        patterns: Vec<String>,
    },
    /// A DoFn with side inputs.
    ParDo {
        /// The function.
        exec: Arc<dyn DoFnExec>,
        /// Side inputs: (tag, PCollection).
        side_inputs: Vec<(String, PcId)>,
    },
    /// Assign windows from timestamps.
    AssignWindows(WindowFn),
    /// Union of the inputs.
    Flatten,
    /// Group by key and window; with `combine`, combine each group (lifted:
    /// precombined before the shuffle when windows do not merge).
    GroupByKey {
        /// How to split KV bytes.
        codec: Arc<dyn KvCodec>,
        /// The input's window function (merging windows are merged here).
        window_fn: WindowFn,
        /// Combine grouped values instead of emitting iterables.
        combine: Option<Arc<dyn CombineExec>>,
        /// When panes fire (used by the streaming executor; in batch every
        /// window fires once, when the input is done).
        triggering: Triggering,
    },
    /// Identity (a redistribution point in streaming; nothing to do in batch).
    Reshuffle,
    /// A DoFn with per-key state and timers: its input is shuffled by key
    /// (so it starts a stage, like a GroupByKey), then each partition runs
    /// through one [`KeyedRun`].
    StatefulParDo {
        /// The function.
        exec: Arc<dyn KeyedDoFnExec>,
        /// How to find the key of an input element.
        codec: Arc<dyn KvCodec>,
        /// Side inputs: (tag, PCollection).
        side_inputs: Vec<(String, PcId)>,
    },
    /// Write each element (UTF-8 text, outer context) as a line.
    WriteText(TextSink),
    /// Lines of the files matching `patterns`, watched: every `poll_ms` the
    /// patterns are matched again, and each new file is read once it is
    /// complete (its size and modification time unchanged over one poll).
    /// Lines are timestamped with the poll that read them; the source's
    /// watermark is the time of its last poll. Unbounded: run by the
    /// streaming executor until drained or cancelled.
    WatchText {
        /// File patterns (globs).
        patterns: Vec<String>,
        /// Milliseconds between polls (at least 1).
        poll_ms: i64,
    },
    /// The integers `start..stop` (varint-encoded), one every `period_ms`
    /// of processing time from the job's start, each at the time it was
    /// due; unbounded without `stop` (run by the streaming executor until
    /// drained or cancelled).
    GenerateSequence {
        /// The first integer.
        start: i64,
        /// The end (exclusive), if any.
        stop: Option<i64>,
        /// Milliseconds between elements (at least 1).
        period_ms: i64,
    },
    /// A scripted stream (Beam's TestStream): elements, watermark advances
    /// and processing-time advances, in order; run by the streaming
    /// executor ([`crate::stream`]).
    TestStream(Vec<StreamEvent>),
}

/// One event of a [`OpKind::TestStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Elements arrive (one bundle) at the first output.
    Elements(Batch),
    /// Elements arrive at output `.0` (of a TestStream with several).
    ElementsTo(usize, Batch),
    /// The watermark of every output advances to this time (ms).
    Watermark(i64),
    /// The watermark of output `.0` advances to `.1` (ms).
    WatermarkOf(usize, i64),
    /// Processing time advances by this much (ms).
    ProcessingTime(i64),
}

impl OpKind {
    /// The side inputs the operation reads: (tag, PCollection).
    pub fn side_inputs(&self) -> &[(String, PcId)] {
        match self {
            OpKind::ParDo { side_inputs, .. } | OpKind::StatefulParDo { side_inputs, .. } => {
                side_inputs
            }
            _ => &[],
        }
    }

    /// True for the sources only the streaming executor runs.
    pub fn is_stream_source(&self) -> bool {
        matches!(
            self,
            OpKind::TestStream(_) | OpKind::GenerateSequence { .. } | OpKind::WatchText { .. }
        )
    }

    /// True when the operation reads its input through a shuffle by key.
    pub fn is_shuffled(&self) -> bool {
        matches!(
            self,
            OpKind::GroupByKey { .. } | OpKind::StatefulParDo { .. }
        )
    }
}

/// An operation with its name and edges.
pub struct Op {
    /// The transform's unique name, used in errors and progress.
    pub name: String,
    /// What it does.
    pub kind: OpKind,
    /// Main inputs (Flatten has several; sources none).
    pub inputs: Vec<PcId>,
    /// Outputs, in the order `DoFnExec::process` returns them.
    pub outputs: Vec<PcId>,
}

/// A PCollection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PCollection {
    /// Name for progress and errors.
    pub name: String,
}

/// The whole job.
#[derive(Default)]
pub struct Graph {
    /// All PCollections.
    pub pcollections: Vec<PCollection>,
    /// All operations.
    pub ops: Vec<Op>,
}

impl Graph {
    /// Add a PCollection.
    pub fn add_pcollection(&mut self, name: impl Into<String>) -> PcId {
        self.pcollections.push(PCollection { name: name.into() });
        self.pcollections.len() - 1
    }
    /// Add an operation.
    pub fn add_op(
        &mut self,
        name: impl Into<String>,
        kind: OpKind,
        inputs: Vec<PcId>,
        outputs: Vec<PcId>,
    ) -> usize {
        self.ops.push(Op {
            name: name.into(),
            kind,
            inputs,
            outputs,
        });
        self.ops.len() - 1
    }
}
