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
    /// The guest tried to grow its memory past the cap.
    #[error("UDF {name} tried to use more than its memory cap of {} MiB and was stopped", cap_bytes >> 20)]
    MemoryCap {
        /// The component's name.
        name: String,
        /// The cap.
        cap_bytes: usize,
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
                | UdfError::Instantiate { .. }
        )
    }
}
