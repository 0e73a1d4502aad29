//! Stage planning: a ParDo whose side input is computed downstream of its
//! own stage's output (the main input and the side input share an
//! upstream) is moved to a stage of its own instead of failing the plan.

use std::sync::{Arc, Mutex};

use wasmbeam_engine::*;

mod common;

use common::NulCodec;

/// Applies `f` to each element's value, with the side inputs (all their
/// values) it was prepared with.
struct Map<F>(F, Mutex<Vec<Vec<u8>>>);
impl<F: Fn(&[u8], &[Vec<u8>]) -> Vec<u8> + Send + Sync> DoFnExec for Map<F> {
    fn prepare(&self, sides: Vec<(String, Batch)>) -> OpResult<()> {
        let mut v = self.1.lock().unwrap();
        for (_, b) in sides {
            v.extend(b.iter().map(|e| e.value.to_vec()));
        }
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let sides = self.1.lock().unwrap().clone();
        let mut out = Batch::default();
        for e in input.iter() {
            out.push(&(self.0)(e.value, &sides), e.timestamp, e.windows(), e.pane);
        }
        Ok(vec![out])
    }
}

fn map(f: impl Fn(&[u8], &[Vec<u8>]) -> Vec<u8> + Send + Sync + 'static) -> Arc<dyn DoFnExec> {
    Arc::new(Map(f, Mutex::new(Vec::new())))
}

#[test]
fn a_side_input_computed_from_the_main_inputs_own_stage_does_not_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "3\n5\n10\n").unwrap();
    // lines -> nums; nums -> (k, n) -> GroupByKey -> total (the side input);
    // nums -> Normalize(total) -> out. Normalize sits in the stage that
    // feeds the GroupByKey, whose output it reads.
    let mut g = Graph::default();
    let lines = common::read(&mut g, &input);
    let nums = common::pardo(&mut g, "Nums", map(|v, _| v.to_vec()), lines);
    let keyed = common::pardo(&mut g, "Key", map(|v, _| [b"k\0", v].concat()), nums);
    let grouped = g.add_pcollection("grouped");
    let total = g.add_pcollection("total");
    let out = g.add_pcollection("out");
    g.add_op(
        "Group",
        OpKind::GroupByKey {
            codec: Arc::new(NulCodec),
            window_fn: WindowFn::Global,
            combine: None,
            triggering: Default::default(),
        },
        vec![keyed],
        vec![grouped],
    );
    g.add_op(
        "Total",
        OpKind::ParDo {
            // "k" + i32 count + (len, bytes)*: sum the decimal values.
            exec: map(|v, _| {
                let mut sum = 0i64;
                let mut pos = 1 + 4;
                while pos < v.len() {
                    let len = v[pos] as usize;
                    let s = std::str::from_utf8(&v[pos + 1..pos + 1 + len]).unwrap();
                    sum += s.parse::<i64>().unwrap();
                    pos += 1 + len;
                }
                sum.to_string().into_bytes()
            }),
            side_inputs: vec![],
        },
        vec![grouped],
        vec![total],
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    g.add_op(
        "Normalize",
        OpKind::ParDo {
            exec: map(move |v, sides| {
                let n: i64 = std::str::from_utf8(v).unwrap().parse().unwrap();
                let t: i64 = std::str::from_utf8(&sides[0]).unwrap().parse().unwrap();
                let s = format!("{n}/{t}");
                sink.lock().unwrap().push(s.clone());
                s.into_bytes()
            }),
            side_inputs: vec![("total".into(), total)],
        },
        vec![nums],
        vec![out],
    );
    let r = run(&g, &EngineOptions::default()).unwrap();
    let mut v = got.lock().unwrap().clone();
    v.sort();
    assert_eq!(v, ["10/18", "3/18", "5/18"]);
    assert_eq!(r.element_counts[out], 3);
}
