//! Stateful ParDos in the engine: every key reaches exactly one keyed run,
//! state persists across that run's bundles, and timers fire round after
//! round (a firing may set the next timer) until none is left.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use wasmbeam_engine::*;

mod common;

/// `key \0 value` (outer); nested value = one length byte + bytes.
struct NulCodec;
impl KvCodec for NulCodec {
    fn split<'a>(&self, kv: &'a [u8]) -> OpResult<(&'a [u8], &'a [u8])> {
        let i = kv.iter().position(|&b| b == 0).ok_or("no separator")?;
        Ok((&kv[..i], &kv[i..]))
    }
    fn value_to_nested(&self, outer: &[u8], out: &mut Vec<u8>) -> OpResult<()> {
        out.push(outer.len() as u8);
        out.extend_from_slice(outer);
        Ok(())
    }
}

/// Lines "key,ts" become `key \0 ts` at event time `ts`.
struct Parse;
impl DoFnExec for Parse {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut out = Batch::default();
        for e in input.iter() {
            let s = std::str::from_utf8(e.value).map_err(|e| e.to_string())?;
            let (k, ts) = s.split_once(',').ok_or("no comma")?;
            let ts: i64 = ts.parse().map_err(|_| "bad ts")?;
            out.push(format!("{k}\0{ts}").as_bytes(), ts, e.windows(), e.pane);
        }
        Ok(vec![out])
    }
}

/// Counts elements per key in its state; the first element of a key sets a
/// timer at its timestamp + 10. The first firing of a key emits
/// `key=count@fire` and sets a second timer 5 later; the second emits
/// `key=again@fire`. Records which run saw each key.
struct CountThenFire {
    owners: Arc<Mutex<HashMap<String, usize>>>,
    runs: Mutex<usize>,
}

struct Run {
    id: usize,
    owners: Arc<Mutex<HashMap<String, usize>>>,
    counts: BTreeMap<String, u64>,
    /// key -> (fire time, how many times it fired before)
    timers: BTreeMap<String, (i64, u32)>,
}

impl KeyedDoFnExec for CountThenFire {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn open(&self) -> OpResult<Box<dyn KeyedRun>> {
        let mut runs = self.runs.lock().unwrap();
        *runs += 1;
        Ok(Box::new(Run {
            id: *runs,
            owners: self.owners.clone(),
            counts: BTreeMap::new(),
            timers: BTreeMap::new(),
        }))
    }
}

impl KeyedRun for Run {
    fn process(&mut self, input: Batch) -> OpResult<Vec<Batch>> {
        for e in input.iter() {
            let s = String::from_utf8_lossy(e.value);
            let key = s.split('\0').next().unwrap_or("").to_string();
            let owner = *self
                .owners
                .lock()
                .unwrap()
                .entry(key.clone())
                .or_insert(self.id);
            if owner != self.id {
                return Err(format!("key {key} reached runs {owner} and {}", self.id).into());
            }
            let c = self.counts.entry(key.clone()).or_insert(0);
            *c += 1;
            if *c == 1 {
                self.timers.insert(key, (e.timestamp + 10, 0));
            }
        }
        Ok(vec![Batch::default()])
    }

    fn fire(&mut self, watermark: i64, _processing: i64) -> OpResult<Option<Vec<Batch>>> {
        let due: Vec<(String, (i64, u32))> = self
            .timers
            .iter()
            .filter(|(_, (t, _))| *t <= watermark)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if due.is_empty() {
            return Ok(None);
        }
        let mut out = Batch::default();
        for (key, (at, fired)) in due {
            self.timers.remove(&key);
            let text = if fired == 0 {
                self.timers.insert(key.clone(), (at + 5, 1));
                format!("{key}={}@{at}", self.counts[&key])
            } else {
                format!("{key}=again@{at}")
            };
            out.push(text.as_bytes(), at, [Window::GLOBAL], PANE_ON_TIME_ONLY);
        }
        Ok(Some(vec![out]))
    }
}

struct Collect(Arc<Mutex<Vec<String>>>);
impl DoFnExec for Collect {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut v = self.0.lock().unwrap();
        for e in input.iter() {
            v.push(format!(
                "{} ts={}",
                String::from_utf8_lossy(e.value),
                e.timestamp
            ));
        }
        Ok(vec![])
    }
}

#[test]
fn each_key_reaches_one_run_and_timers_fire_until_none_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    // 40 keys, 3 elements each, spread over the file.
    let mut text = String::new();
    for round in 0..3 {
        for k in 0..40 {
            text.push_str(&format!("k{k},{}\n", k * 100 + round));
        }
    }
    std::fs::write(&input, text).unwrap();
    let mut g = Graph::default();
    let lines = common::read(&mut g, &input);
    let kvs = common::pardo(&mut g, "Parse", Arc::new(Parse), lines);
    let fired = g.add_pcollection("fired");
    let owners = Arc::new(Mutex::new(HashMap::new()));
    let stateful = Arc::new(CountThenFire {
        owners: owners.clone(),
        runs: Mutex::new(0),
    });
    g.add_op(
        "CountThenFire",
        OpKind::StatefulParDo {
            exec: stateful.clone(),
            codec: Arc::new(NulCodec),
            side_inputs: vec![],
        },
        vec![kvs],
        vec![fired],
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    g.add_op(
        "Collect",
        OpKind::ParDo {
            exec: Arc::new(Collect(got.clone())),
            side_inputs: vec![],
        },
        vec![fired],
        vec![],
    );
    let opts = EngineOptions {
        workers: 2,
        partitions: 4,
        ..EngineOptions::default()
    };
    let result = run(&g, &opts).unwrap();
    let mut v = got.lock().unwrap().clone();
    v.sort();
    let mut want = Vec::new();
    for k in 0..40 {
        // First element at k*100 sets the timer at k*100 + 10.
        let at = k * 100 + 10;
        want.push(format!("k{k}=3@{at} ts={at}"));
        want.push(format!("k{k}=again@{} ts={}", at + 5, at + 5));
    }
    want.sort();
    assert_eq!(v, want);
    assert_eq!(owners.lock().unwrap().len(), 40);
    // Several runs (one per non-empty partition), so keys were spread.
    let runs = *stateful.runs.lock().unwrap();
    assert!((2..=4).contains(&runs), "{runs} keyed runs");
    assert_eq!(result.element_counts[fired], 80);
}
