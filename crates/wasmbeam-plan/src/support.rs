//! What wasmbeam can run, summarised for people: the [`Support`] of a
//! transform is its [`Verdict`] (see [`crate::step`]) reduced to where it
//! runs and a short description. `inspect` prints it; the runner and the job
//! server read the typed [`Step`] itself.

use wasmbeam_proto::pipeline::v1::{Components, PTransform};

use crate::step::{decode, SdkKind, Step, Verdict};

/// How the runner handles one transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// A Beam primitive or IO that the runner executes itself.
    Native(&'static str),
    /// A ParDo or combine whose user function is a WASM component.
    Wasm(&'static str),
    /// A step run in an SDK harness (a Python, Go or Java worker) over the
    /// Fn API.
    Sdk(&'static str),
    /// A composite judged by its subtransforms.
    Composite,
    /// Not runnable; the reason is for humans.
    Unsupported(String),
}

impl Support {
    /// True unless [`Support::Unsupported`].
    pub fn is_supported(&self) -> bool {
        !matches!(self, Support::Unsupported(_))
    }
}

impl Verdict {
    /// Where the transform runs, with a short description.
    pub fn support(&self) -> Support {
        let step = match self {
            Verdict::Run(s) => s,
            Verdict::Composite => return Support::Composite,
            Verdict::Unsupported(r) => return Support::Unsupported(r.clone()),
        };
        match step {
            Step::Impulse => Support::Native("impulse"),
            Step::TestStream { .. } => Support::Native("test stream (runs the job as a stream)"),
            Step::GenerateSequence { stop: None, .. } => {
                Support::Native("unbounded generated sequence (runs the job as a stream)")
            }
            Step::GenerateSequence { .. } => Support::Native("generated sequence"),
            Step::ReadText { watch_ms: None, .. } => Support::Native("read text files"),
            Step::ReadText { .. } => {
                Support::Native("watch text files (unbounded: runs the job as a stream)")
            }
            Step::WriteText { .. } => Support::Native("write text files"),
            Step::Flatten => Support::Native("flatten"),
            Step::Reshuffle => Support::Native("reshuffle"),
            Step::AssignWindows(_) => Support::Native("assign windows"),
            Step::GroupByKey { .. } => Support::Native("group by key"),
            Step::CombinePerKey {
                combine: crate::step::CombineFn::Builtin(_),
                ..
            } => Support::Native("built-in combine"),
            Step::CombinePerKey { .. } => Support::Wasm("WASM CombineFn"),
            Step::WasmParDo { .. } => Support::Wasm("WASM DoFn"),
            Step::Sdk(s) => Support::Sdk(match s.kind {
                SdkKind::DoFn => "DoFn in an SDK harness (Fn API)",
                SdkKind::StatefulDoFn => "stateful DoFn in an SDK harness (Fn API)",
                SdkKind::SplittableDoFn => "splittable DoFn in an SDK harness (Fn API)",
                SdkKind::CombinePhase => "CombineFn phase in an SDK harness (Fn API)",
                SdkKind::WindowInto => "window assignment in an SDK harness (its window function or output coder is the SDK's)",
            }),
        }
    }
}

/// The verdict for one transform of the pipeline whose components are `c`,
/// summarised.
pub fn classify(t: &PTransform, c: &Components) -> Support {
    decode(t, c).support()
}
