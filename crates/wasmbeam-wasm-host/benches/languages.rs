//! The same identity DoFn written in Rust, Go and Python (issue #6 rows):
//! per-element cost on 1,000-element bundles of 100-byte values, and a
//! cached component's start to its first bundle.
//!
//! Run: `cargo bench -p wasmbeam-wasm-host --bench languages`
//! (Go ≥ 1.24 and componentize-py are needed: scripts/bootstrap.sh.)

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::PathBuf;
use wasmbeam_wasm_host::*;

use common::{bench_batch as input, BENCH_N as N};

fn guests() -> Vec<(&'static str, PathBuf, &'static [u8])> {
    vec![
        ("rust", common::build_udf("modes"), b"identity"),
        ("go", common::build_udf("identity-go"), b""),
        ("python", common::build_udf("identity-py"), b""),
    ]
}

fn benches(c: &mut Criterion) {
    let cache = tempfile::tempdir().unwrap();
    let host = UdfHost::new(HostConfig {
        cache_dir: Some(cache.path().into()),
        ..HostConfig::default()
    })
    .unwrap();
    let batch = input();
    let guests = guests();
    let spec = |config: &[u8]| DoFnSpec {
        config: config.to_vec(),
        outputs: vec!["main".into()],
        ..DoFnSpec::default()
    };
    let mut g = c.benchmark_group("identity_1000x100B");
    g.throughput(Throughput::Elements(N as u64));
    for (lang, wasm, config) in &guests {
        let pool = DoFnPool::new(host.load_file(wasm).unwrap(), spec(config)).unwrap();
        let out = pool.run_bundle(&batch).unwrap();
        assert_eq!(
            out.0.values.data, batch.values.data,
            "{lang} identity is not the identity"
        );
        g.bench_function(*lang, |b| b.iter(|| pool.run_bundle(&batch).unwrap()));
    }
    g.finish();

    let mut g = c.benchmark_group("cached_to_first_bundle");
    g.sample_size(10);
    for (lang, wasm, config) in &guests {
        let bytes = std::fs::read(wasm).unwrap();
        host.load(lang, &bytes).unwrap(); // fill the disk cache
        let one = {
            let mut b = Batch::default();
            b.push_global(b"first", 0);
            b
        };
        g.bench_function(*lang, |b| {
            b.iter(|| {
                // From the disk cache: deserialize, link, instantiate,
                // runtime-init and setup, then one bundle.
                let c = host.load(lang, &bytes).unwrap();
                let mut i = DoFnInstance::new(&c, &spec(config)).unwrap();
                i.run_bundle(&one).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(languages, benches);
criterion_main!(languages);
