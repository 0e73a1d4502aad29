//! Per-key dedup with a time-to-live, as a stateful DoFn (user state and an
//! event-time timer). One component; its config picks the mode:
//!
//! * `parse`: a line `id,timestamp_ms` → `kv<string_utf8, string_utf8>`
//!   (the id, the line) stamped with the event's time. Blank lines are
//!   dropped; a line that does not parse fails the bundle, naming it.
//! * `dedup:TTL_MS`: `kv<id, line>` → the main output (`first`) gets the id
//!   the first time it is seen; later events of that id within TTL_MS of
//!   event time are dropped and counted. When the TTL timer fires, the
//!   `dups` output gets `id,N` (N events dropped) and the id is forgotten,
//!   so an event after the TTL is new again.
//!
//! State: `seen` (value: the first event's time) and `dropped` (a
//! runner-side count); timer family `expire` (event time).
use wasmbeam_guest::coders::{split_kv, Coder, Kv, Utf8, VarInt};
use wasmbeam_guest::{Cell, Combine, DoFn, Element, Emitter, Error, Setup, Stateful, Timer, TimerFamily};

const SEEN: Cell = Cell(0);
const DROPPED: Cell = Cell(1);
const EXPIRE: TimerFamily = TimerFamily(0);

enum Dedup {
    Parse,
    Dedup { ttl: i64, dups: u32 },
}

fn ttl(config: &str) -> Result<Option<i64>, Error> {
    match config.strip_prefix("dedup:") {
        None if config == "parse" => Ok(None),
        None => Err(Error::new(format!("config {config:?}: expected `parse` or `dedup:TTL_MS`"))),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|t| *t > 0)
            .map(Some)
            .ok_or_else(|| Error::new(format!("config {config:?}: TTL_MS must be a positive integer"))),
    }
}

impl DoFn for Dedup {
    fn describe(config: &[u8]) -> Result<Stateful, Error> {
        let config = std::str::from_utf8(config).map_err(|e| Error::new(e.to_string()))?;
        Ok(match ttl(config)? {
            None => Stateful::new(),
            Some(_) => Stateful::new()
                .value("seen")
                .combining("dropped", Combine::Count)
                .event_timer("expire"),
        })
    }

    fn setup(setup: &Setup) -> Result<Self, Error> {
        Ok(match ttl(setup.config_str()?)? {
            None => Dedup::Parse,
            Some(ttl) => Dedup::Dedup { ttl, dups: setup.output_index("dups")? },
        })
    }

    fn process(&mut self, e: &Element, out: &mut Emitter) -> Result<(), Error> {
        match self {
            Dedup::Parse => {
                let line = Utf8.decode_outer(e.value)?;
                let line = line.trim();
                if line.is_empty() {
                    return Ok(());
                }
                let (id, ts) = line
                    .split_once(',')
                    .and_then(|(id, ts)| Some((id, ts.trim().parse::<i64>().ok()?)))
                    .ok_or_else(|| Error::new(format!("line {line:?} is not `id,timestamp_ms`")))?;
                let mut kv = Vec::new();
                Kv(Utf8, Utf8).encode_outer(&(id.to_string(), line.to_string()), &mut kv);
                out.emit_with_timestamp(&kv, ts);
            }
            Dedup::Dedup { ttl, .. } => {
                let (id, _) = split_kv(&Utf8, e.value)?;
                let st = e.state();
                if st.get(SEEN).is_none() {
                    let mut ts = Vec::new();
                    VarInt.encode_outer(&e.timestamp, &mut ts);
                    st.write(SEEN, &ts);
                    st.set_timer(EXPIRE, e.timestamp.saturating_add(*ttl));
                    let mut v = Vec::new();
                    Utf8.encode_outer(&id, &mut v);
                    out.emit(&v);
                } else {
                    st.add(DROPPED, &[]);
                }
            }
        }
        Ok(())
    }

    fn on_timer(&mut self, t: &Timer, out: &mut Emitter) -> Result<(), Error> {
        let Dedup::Dedup { dups, .. } = self else {
            return Err(Error::new("a timer fired in parse mode"));
        };
        let st = t.state();
        let id = Utf8.decode_nested(&mut wasmbeam_guest::coders::Reader::new(t.key))?;
        let n = match st.get(DROPPED) {
            Some(b) => VarInt.decode_outer(&b)?,
            None => 0,
        };
        if n > 0 {
            let mut v = Vec::new();
            Utf8.encode_outer(&format!("{id},{n}"), &mut v);
            out.emit_to(*dups, &v);
        }
        st.clear(SEEN);
        st.clear(DROPPED);
        Ok(())
    }
}

wasmbeam_guest::export_dofn!(Dedup);
