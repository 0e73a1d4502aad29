//! Errors for humans: what failed, in which UDF, and what to do.

use std::time::Duration;

/// Why a UDF could not be loaded or a bundle failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum UdfError {
    /// The bytes are not a valid component, or compilation failed.
    #[error("UDF {name}: not a loadable WebAssembly component: {detail}")]
    Compile {
        /// The component's name (file or artifact).
        name: String,
        /// The compiler's message.
        detail: String,
    },
    /// The component was built for another contract version or shape.
    #[error("UDF {name}: {detail}")]
    Contract {
        /// The component's name.
        name: String,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Instantiation or setup failed.
    #[error("UDF {name}: could not start an instance: {detail}")]
    Instantiate {
        /// The component's name.
        name: String,
        /// The cause.
        detail: String,
    },
    /// The guest returned a structured error.
    #[error("UDF {name} failed{}: {message}", element.map(|e| format!(" on element {e} of the bundle")).unwrap_or_default())]
    Guest {
        /// The component's name.
        name: String,
        /// The guest's message.
        message: String,
        /// Index of the failing element in the input batch, when known.
        element: Option<u32>,
    },
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    #[error("UDF {name} trapped: {message}")]
    Trap {
        /// The component's name.
        name: String,
        /// The trap, with the guest's panic message when it printed one.
        message: String,
    },
    /// A call ran past the bundle deadline and was interrupted.
    #[error("UDF {name} exceeded the bundle deadline of {:?} and was stopped (raise the limit with the bundle deadline setting, or make bundles smaller)", deadline)]
    Deadline {
        /// The component's name.
        name: String,
        /// The configured deadline.
        deadline: Duration,
    },
    /// The guest tried to grow its memory past the per-instance cap.
    #[error("UDF {name} tried to use more than its memory cap of {} MiB per instance and was stopped{}", cap_bytes >> 20, message.as_ref().map(|m| format!(" (the guest reported: {m})")).unwrap_or_default())]
    MemoryCap {
        /// The component's name.
        name: String,
        /// The cap.
        cap_bytes: usize,
        /// What the guest said when it failed, if it failed with an error
        /// rather than a trap (a Python `MemoryError`).
        message: Option<String>,
    },
    /// The job's memory budget, shared by all its UDF instances and their
    /// bundle outputs, is used up.
    #[error("UDF {name} was stopped: it needed {wanted}, but the job's memory budget of {} MiB (the linear memory of all its UDF instances, the bundle outputs the host holds and stateful DoFns' user state) is used up; raise it (--memory-mb, the wasmbeam_memory_mb option, the tenant's memory_mb quota) or run fewer workers", budget_bytes >> 20)]
    JobMemory {
        /// The component's name.
        name: String,
        /// The budget.
        budget_bytes: usize,
        /// What did not fit.
        wanted: String,
    },
    /// One call returned more than the per-call output cap.
    #[error("UDF {name} returned {} than the per-bundle output cap of {} MiB (values plus {} bytes per output element) and the bundle was refused; emit less per input element, or raise the cap (--max-output-mb)", bytes.map(|b| format!("{} MiB, more", b >> 20)).unwrap_or_else(|| "more".into()), cap_bytes >> 20, crate::OUTPUT_ELEMENT_COST)]
    OutputTooLarge {
        /// The component's name.
        name: String,
        /// The cap.
        cap_bytes: usize,
        /// What the output would have cost, when known.
        bytes: Option<usize>,
    },
    /// The call was stopped because the job was cancelled.
    #[error("UDF {name} was stopped because the job was cancelled")]
    Cancelled {
        /// The component's name.
        name: String,
    },
    /// The guest's output broke the contract (bad offsets, tags, sources).
    #[error("UDF {name} returned an invalid batch: {detail}")]
    BadOutput {
        /// The component's name.
        name: String,
        /// What is inconsistent.
        detail: String,
    },
}

impl UdfError {
    /// True when the instance that produced this error must be discarded.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            UdfError::Trap { .. }
                | UdfError::Deadline { .. }
                | UdfError::Cancelled { .. }
                | UdfError::MemoryCap { .. }
                | UdfError::JobMemory { .. }
                | UdfError::OutputTooLarge { .. }
                | UdfError::Instantiate { .. }
        )
    }
}
