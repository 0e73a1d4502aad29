//! Wordcount's user functions, one component with two modes (its config):
//! * `split`: a line of text → one `kv<string_utf8, varint>` (word, 1) per word;
//! * `format`: `kv<string_utf8, varint>` (word, count) → the line `word: count`.
//!
//! `split` counts its input lines in the user counter `wordcount/lines`.
//!
//! Words are maximal runs of letters, digits and apostrophes, as in Beam's
//! wordcount example.
use wasmbeam_guest::coders::{split_kv, write_varint, Coder, Utf8, VarInt};
use wasmbeam_guest::{metrics, DoFn, Element, Emitter, Error, Setup};

enum Mode {
    Split,
    Format,
}

struct WordCount {
    mode: Mode,
    buf: Vec<u8>,
}

impl DoFn for WordCount {
    fn setup(s: &Setup) -> Result<Self, Error> {
        let mode = match s.config_str()? {
            "split" => Mode::Split,
            "format" => Mode::Format,
            other => return Err(Error::new(format!("unknown mode {other:?}: use split or format"))),
        };
        Ok(WordCount { mode, buf: Vec::with_capacity(64) })
    }

    fn process(&mut self, e: &Element<'_>, out: &mut Emitter<'_>) -> Result<(), Error> {
        match self.mode {
            Mode::Split => {
                metrics::counter("wordcount/lines", 1);
                let line = std::str::from_utf8(e.value).map_err(|err| Error::new(format!("line is not UTF-8: {err}")))?;
                for word in line.split(|c: char| !(c.is_alphanumeric() || c == '\'')).filter(|w| !w.is_empty()) {
                    self.buf.clear();
                    write_varint(word.len() as u64, &mut self.buf);
                    self.buf.extend_from_slice(word.as_bytes());
                    self.buf.push(1); // varint 1
                    out.emit(&self.buf);
                }
            }
            Mode::Format => {
                let (word, rest) = split_kv(&Utf8, e.value)?;
                let count = VarInt.decode_outer(rest)?;
                out.emit(format!("{word}: {count}").as_bytes());
            }
        }
        Ok(())
    }
}

wasmbeam_guest::export_dofn!(WordCount);
