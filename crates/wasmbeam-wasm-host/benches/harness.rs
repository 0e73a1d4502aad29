//! Criterion benchmarks of the WASM harness (issue #3 targets):
//! * identity DoFn, 1,000-element bundles of 100-byte values, vs a plain
//!   Rust closure doing the same copy into an output batch;
//! * taking a set-up instance from the pool (and, for contrast, creating one);
//! * loading a component: cold compile vs from the disk cache, and cached
//!   load + instantiate + first bundle.
//!
//! Run: `cargo bench -p wasmbeam-wasm-host --bench harness`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wasmbeam_wasm_host::*;

use common::{bench_batch as input, BENCH_N as N};

/// The native reference: the same per-element work the guest SDK does
/// (slice each value, copy it to the output, record tag/source/timestamp).
fn native_identity(batch: &Batch) -> OutputBatch {
    let n = batch.timestamps.len();
    let mut out = OutputBatch {
        values: Values::with_capacity(n, batch.values.data.len()),
        tags: Vec::with_capacity(n),
        sources: Vec::with_capacity(n),
        timestamps: Vec::with_capacity(n),
        reservation: Default::default(),
    };
    let copy = |v: &[u8], out: &mut OutputBatch, i: usize| {
        out.values.data.extend_from_slice(v);
        out.values.offsets.push(out.values.data.len() as u32);
        out.tags.push(0);
        out.sources.push(i as u32);
        out.timestamps.push(INHERIT_TIMESTAMP);
    };
    for (i, v) in batch.values.iter().enumerate() {
        copy(std::hint::black_box(v), &mut out, i);
    }
    out
}

fn spec() -> DoFnSpec {
    DoFnSpec {
        config: b"identity".to_vec(),
        outputs: vec!["main".into()],
        ..DoFnSpec::default()
    }
}

fn benches(c: &mut Criterion) {
    let wasm = common::build_udf("modes");
    let cache = tempfile::tempdir().unwrap();
    let host = UdfHost::new(HostConfig {
        cache_dir: Some(cache.path().into()),
        ..HostConfig::default()
    })
    .unwrap();
    let component = host.load_file(&wasm).unwrap();
    let batch = input();

    let mut g = c.benchmark_group("identity_1000x100B");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("native_closure", |b| {
        b.iter(|| native_identity(std::hint::black_box(&batch)))
    });
    let pool = DoFnPool::new(component.clone(), spec()).unwrap();
    let mut inst = pool.acquire().unwrap();
    g.bench_function("wasm_rust_guest", |b| {
        b.iter(|| inst.run_bundle(std::hint::black_box(&batch)).unwrap())
    });
    pool.release(inst);
    g.finish();

    let mut g = c.benchmark_group("instance");
    g.bench_function("acquire_release_pooled", |b| {
        b.iter(|| {
            let i = pool.acquire().unwrap();
            pool.release(std::hint::black_box(i));
        })
    });
    g.bench_function("instantiate_and_setup_fresh", |b| {
        b.iter_batched(
            || (),
            |_| DoFnInstance::new(&component, &spec()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let bytes = std::fs::read(&wasm).unwrap();
    let mut g = c.benchmark_group("load_component");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let nocache = UdfHost::new(HostConfig {
        cache_dir: None,
        ..HostConfig::default()
    })
    .unwrap();
    g.bench_function("cold_compile", |b| {
        b.iter(|| nocache.load("modes.wasm", &bytes).unwrap())
    });
    g.bench_function("cached", |b| {
        b.iter(|| host.load("modes.wasm", &bytes).unwrap())
    });
    let one = {
        let mut b = Batch::default();
        b.push_global(b"first", 0);
        b
    };
    g.bench_function("cached_to_first_bundle", |b| {
        b.iter(|| {
            let c = host.load("modes.wasm", &bytes).unwrap();
            let mut i = DoFnInstance::new(&c, &spec()).unwrap();
            i.run_bundle(&one).unwrap()
        })
    });
    g.finish();
}

criterion_group!(harness, benches);
criterion_main!(harness);
