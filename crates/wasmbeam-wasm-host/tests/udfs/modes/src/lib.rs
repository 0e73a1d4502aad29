//! A test DoFn whose behaviour is chosen by its config string:
//! identity, parity (multiple outputs), upper (typed coders), fail-on-bad,
//! trap-on-boom, loop, membomb, leak (1 MiB lost per bundle), probe
//! (sandbox), metrics, side (side inputs), finish (emits in finish_bundle),
//! and the hostile ones: sleep (sleeps the element's value in ms), stamp
//! (re-emits at the element's value as a timestamp in ms), flood (emits
//! the element's value as a count of empty values), recurse (unbounded
//! recursion), shout (floods stdout, then fails).
use wasmbeam_guest::coders::{Coder, Kv, Utf8, VarInt};
use wasmbeam_guest::{metrics, DoFn, Element, Emitter, Error, FinishEmitter, Setup, SideInput};

struct Modes {
    mode: String,
    odd: u32,
    side: Vec<String>,
    seen: i64,
}

impl DoFn for Modes {
    fn setup(s: &Setup) -> Result<Self, Error> {
        let mode = s.config_str()?.to_string();
        let odd = match mode.as_str() {
            "parity" => s.output_index("odd")?,
            "route" => s.output_index("comments")?,
            _ => 0,
        };
        if mode == "bad-setup" {
            return Err(Error::new("setup refused: bad-setup requested"));
        }
        Ok(Modes { mode, odd, side: Vec::new(), seen: 0 })
    }

    fn side_input(&mut self, input: SideInput) -> Result<(), Error> {
        for v in input.values {
            self.side.push(format!("{}:{}", input.tag, String::from_utf8_lossy(&v)));
        }
        Ok(())
    }

    fn process(&mut self, e: &Element<'_>, out: &mut Emitter<'_>) -> Result<(), Error> {
        self.seen += 1;
        match self.mode.as_str() {
            "identity" => out.emit(e.value),
            "parity" => {
                let n = VarInt.decode_outer(e.value)?;
                if n % 2 == 0 {
                    out.emit(e.value)
                } else {
                    out.emit_to(self.odd, e.value)
                }
            }
            "upper" => {
                let s = Utf8.decode_outer(e.value)?;
                let mut b = Vec::new();
                Kv(Utf8, VarInt).encode_outer(&(s.to_uppercase(), s.len() as i64), &mut b);
                out.emit_with_timestamp(&b, e.timestamp + 1000);
            }
            "windows" => {
                for w in e.windows() {
                    out.emit(format!("{}@[{},{}){}", String::from_utf8_lossy(e.value), w.start, w.end, if w.is_global() { "G" } else { "" }).as_bytes());
                }
            }
            "fail-on-bad" => {
                if e.value == b"bad" {
                    return Err(Error::new("refusing the value \"bad\""));
                }
                out.emit(e.value)
            }
            "trap-on-boom" => {
                if e.value == b"boom" {
                    panic!("the guest panicked on purpose: boom");
                }
                out.emit(e.value)
            }
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(3).wrapping_add(1));
                }
            }
            "leak" => {
                std::hint::black_box(Box::leak(vec![1u8; 1 << 20].into_boxed_slice()));
                out.emit(e.value);
            }
            "membomb" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hog);
                }
            }
            "probe" => {
                let path = std::str::from_utf8(e.value).unwrap_or("");
                let fs = match std::fs::read(path) {
                    Ok(b) => format!("fs:read {} bytes", b.len()),
                    Err(err) => format!("fs:denied ({err})"),
                };
                out.emit(fs.as_bytes());
                let write = match std::fs::write(format!("{path}.written"), b"x") {
                    Ok(()) => "write:ok".to_string(),
                    Err(err) => format!("write:denied ({err})"),
                };
                out.emit(write.as_bytes());
                let env = match std::env::var("HOME") {
                    Ok(v) => format!("env:HOME={v}"),
                    Err(_) => "env:none".to_string(),
                };
                out.emit(env.as_bytes());
                out.emit(format!("vars:{}", std::env::vars().count()).as_bytes());
                let net = match std::net::TcpStream::connect("127.0.0.1:9") {
                    Ok(_) => "net:connected".to_string(),
                    Err(err) => format!("net:denied ({err})"),
                };
                out.emit(net.as_bytes());
            }
            "metrics" => {
                metrics::counter("elements", 1);
                metrics::distribution("value_len", e.value.len() as i64);
                metrics::gauge("last_len", e.value.len() as i64);
                wasmbeam_guest::log(wasmbeam_guest::LogLevel::Info, "metrics mode saw an element");
                println!("stdout line from the guest");
                out.emit(e.value)
            }
            "side" => {
                for s in &self.side {
                    out.emit(format!("{}|{}", String::from_utf8_lossy(e.value), s).as_bytes());
                }
            }
            "finish" => out.emit(e.value),
            "route" => {
                if e.value.starts_with(b"#") {
                    out.emit_to(self.odd, e.value)
                } else {
                    out.emit(e.value)
                }
            }
            "sleep" => {
                let ms: u64 = number(e.value)?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                out.emit(e.value)
            }
            "stamp" => {
                let ts: i64 = number(e.value)?;
                out.emit_with_timestamp(e.value, ts)
            }
            "flood" => {
                let n: usize = number(e.value)?;
                for _ in 0..n {
                    out.emit(b"");
                }
            }
            "recurse" => {
                out.emit(&deep(std::hint::black_box(0)).to_le_bytes());
            }
            "shout" => {
                let line = "x".repeat(1023);
                for _ in 0..10_000 {
                    println!("{line}");
                }
                return Err(Error::new("shout: the real cause, after 10 MB of stdout"));
            }
            other => return Err(Error::new(format!("unknown mode {other:?}"))),
        }
        Ok(())
    }

    fn finish_bundle(&mut self, out: &mut FinishEmitter<'_>) -> Result<(), Error> {
        if self.mode == "finish" {
            out.emit(0, format!("count={}", self.seen).as_bytes(), 42);
            self.seen = 0;
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(v: &[u8]) -> Result<T, Error> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new(format!("expected a number, got {:?}", String::from_utf8_lossy(v))))
}

/// Recursion without end, 8 KiB of the guest's own stack per frame.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut frame = [0u8; 8192];
    frame[(n % 8192) as usize] = n as u8;
    std::hint::black_box(&mut frame);
    deep(n + 1).wrapping_add(frame[(n % 8192) as usize] as u64)
}

wasmbeam_guest::export_dofn!(Modes);
