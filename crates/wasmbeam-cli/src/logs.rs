//! Where the CLI's log lines go. While `wasmbeam run` runs a job, warnings
//! (a UDF's dropped stdout, a disabled cache) are held back and printed
//! after the job's outcome, so that the first line on stderr of a failed run
//! is always its cause. Everywhere else they go straight to stderr.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Bytes of held-back log kept; beyond it lines are counted, not kept.
const HELD_BYTES: usize = 256 << 10;

static HOLD: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Held> = Mutex::new(Held {
    bytes: Vec::new(),
    dropped: 0,
});

struct Held {
    bytes: Vec<u8>,
    dropped: usize,
}

/// Hold log lines back from now on.
pub fn hold() {
    HOLD.store(true, Ordering::SeqCst);
}

/// Print what was held back, then log straight to stderr again.
pub fn release() {
    HOLD.store(false, Ordering::SeqCst);
    let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&h.bytes);
    if h.dropped > 0 {
        let _ = writeln!(err, "wasmbeam: {} more log bytes were not kept", h.dropped);
    }
    h.bytes = Vec::new();
    h.dropped = 0;
}

/// The `tracing` writer: stderr, or the held-back buffer.
pub struct Writer;

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if HOLD.load(Ordering::SeqCst) {
            let mut h = HELD.lock().unwrap_or_else(|p| p.into_inner());
            if h.bytes.len() + buf.len() <= HELD_BYTES {
                h.bytes.extend_from_slice(buf);
            } else {
                h.dropped += buf.len();
            }
            Ok(buf.len())
        } else {
            std::io::stderr().write(buf)
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
