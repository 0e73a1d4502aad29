//! Streaming executor throughput: 200,000 elements over 1,000 keys through
//! fixed 10 s windows and a counting GroupByKey, on a TestStream.
//!
//! * `stream/200-bundles`: 200 bundles of 1,000 elements, the watermark
//!   advancing 1 s after each (windows fire as the stream goes);
//! * `stream/one-bundle`: the same elements in one bundle, the watermark at
//!   the end (the batch-like reference in the same run).
//!
//! `cargo bench -p wasmbeam-engine --bench streaming`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wasmbeam_engine::panes::Triggering;
use wasmbeam_engine::*;

const N: usize = 200_000;
const KEYS: usize = 1_000;

#[path = "../tests/common/mod.rs"]
mod common;
use common::NulCodec;

/// Counts values; accumulators are 8-byte little-endian counts.
struct Count;
impl CombineExec for Count {
    fn create(&self) -> OpResult<Vec<u8>> {
        Ok(0u64.to_le_bytes().to_vec())
    }
    fn add_inputs(&self, accs: &Values, _inputs: &Values, ends: &[u32]) -> OpResult<Values> {
        let mut out = Values::default();
        let mut start = 0u32;
        for (g, &end) in ends.iter().enumerate() {
            let a = u64::from_le_bytes(accs.get(g).try_into().map_err(|_| "bad accumulator")?);
            out.push(&(a + u64::from(end - start)).to_le_bytes());
            start = end;
        }
        Ok(out)
    }
    fn merge(&self, accs: &Values, ends: &[u32]) -> OpResult<Values> {
        let mut out = Values::default();
        let mut start = 0usize;
        for &end in ends {
            let s: u64 = (start..end as usize)
                .map(|i| u64::from_le_bytes(accs.get(i).try_into().unwrap_or([0; 8])))
                .sum();
            out.push(&s.to_le_bytes());
            start = end as usize;
        }
        Ok(out)
    }
    fn extract(&self, accs: &Values) -> OpResult<Values> {
        Ok(accs.clone())
    }
}

struct Discard;
impl DoFnExec for Discard {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, _: Batch) -> OpResult<Vec<Batch>> {
        Ok(vec![])
    }
}

fn events(bundles: usize) -> Vec<StreamEvent> {
    let per = N / bundles;
    let mut ev = Vec::new();
    for b in 0..bundles {
        let mut batch = Batch::with_capacity(per, per * 8);
        for i in 0..per {
            let n = b * per + i;
            // Event time: 5 ms apart, so 1,000 elements span 5 s.
            batch.push_global(format!("k{}\0x", n % KEYS).as_bytes(), (n * 5) as i64);
        }
        ev.push(StreamEvent::Elements(batch));
        if bundles > 1 {
            ev.push(StreamEvent::Watermark(((b + 1) * per * 5) as i64));
        }
    }
    ev
}

fn graph(events: Vec<StreamEvent>) -> Graph {
    let wf = WindowFn::Fixed {
        size: 10_000,
        offset: 0,
    };
    let mut g = Graph::default();
    let src = g.add_pcollection("events");
    g.add_op("Events", OpKind::TestStream(events), vec![], vec![src]);
    let windowed = g.add_pcollection("windowed");
    g.add_op(
        "Window",
        OpKind::AssignWindows(wf.clone()),
        vec![src],
        vec![windowed],
    );
    let counted = g.add_pcollection("counted");
    g.add_op(
        "Count",
        OpKind::GroupByKey {
            codec: Arc::new(NulCodec),
            window_fn: wf,
            combine: Some(Arc::new(Count)),
            triggering: Triggering::default(),
        },
        vec![windowed],
        vec![counted],
    );
    g.add_op(
        "Discard",
        OpKind::ParDo {
            exec: Arc::new(Discard),
            side_inputs: vec![],
        },
        vec![counted],
        vec![],
    );
    g
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    for (name, bundles) in [("200-bundles", 200), ("one-bundle", 1)] {
        let ev = events(bundles);
        group.bench_function(name, |b| {
            b.iter_batched(
                || graph(ev.clone()),
                |g| {
                    let r = run(&g, &EngineOptions::default()).expect("the stream runs");
                    assert_eq!(r.element_counts[0], N as u64);
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
