//! Tenant fairness, end to end over gRPC on 127.0.0.1 (issue #5): tenant
//! `a` runs 4 identity jobs over a 1,000,000-line file, first alone, then
//! while tenant `c` keeps 4 looping UDFs busy. Each tenant has workers=1
//! and concurrent_jobs=4, so while both run, `a` holds 4 of the 8 busy
//! threads: its fair share is half the CPU, and its jobs should take at
//! most about twice as long as alone.
//!
//! Run: `cargo bench -p wasmbeam-jobserver --bench fairness`

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use wasmbeam_proto::job_management::v1::job_state::Enum as State;
use wasmbeam_proto::job_management::v1::CancelJobRequest;

const A: &str = "token-of-tenant-a-0001";
const C: &str = "token-of-tenant-c-0003";

async fn run_a(a: &Client, data: &std::path::Path, tag: &str) -> Duration {
    let t = Instant::now();
    let mut hs = Vec::new();
    for i in 0..4 {
        let c = a.clone();
        let p = mode_pipeline(
            "identity",
            &data.join("a/big.txt"),
            &data.join(format!("a/{tag}{i}")),
        );
        hs.push(tokio::spawn(async move {
            let id = c.submit(p, &[]).await.unwrap();
            assert_eq!(c.wait(&id).await, State::Done);
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    t.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let state = tempfile::tempdir().unwrap();
        let guard = tempfile::tempdir().unwrap();
        let data = guard.path().canonicalize().unwrap();
        for t in ["a", "c"] {
            std::fs::create_dir_all(data.join(t)).unwrap();
        }
        let body: String = (0..1_000_000)
            .map(|i| format!("line {i} of tenant a's input\n"))
            .collect();
        std::fs::write(data.join("a/big.txt"), body).unwrap();
        std::fs::write(data.join("c/in.txt"), "spin\n").unwrap();
        let cfg = format!(
            "tenants:\n  - name: a\n    token: {A}\n    quotas: {{ concurrent_jobs: 4, workers: 1 }}\n    data_dirs: [\"{d}/a\"]\n  - name: c\n    token: {C}\n    quotas: {{ concurrent_jobs: 4, workers: 1, bundle_deadline_secs: 60 }}\n    data_dirs: [\"{d}/c\"]\n",
            d = data.display()
        );
        let server = TestServer::start(Some(&cfg), state.path()).await;
        let a = server.client(Some(A)).await;
        let c = server.client(Some(C)).await;
        run_a(&a, &data, "warm").await; // compile and cache the component
        let alone = run_a(&a, &data, "alone").await;
        let mut loops = Vec::new();
        for i in 0..4 {
            let p = mode_pipeline(
                "loop",
                &data.join("c/in.txt"),
                &data.join(format!("c/loop{i}")),
            );
            loops.push(c.submit(p, &[]).await.unwrap());
        }
        for id in &loops {
            c.wait_for(id, State::Running).await;
        }
        let contended = run_a(&a, &data, "busy").await;
        for id in &loops {
            let _ = c
                .jobs()
                .cancel(c.req(CancelJobRequest { job_id: id.clone() }))
                .await;
        }
        let ratio = contended.as_secs_f64() / alone.as_secs_f64();
        println!(
            "tenant a, 4 jobs alone:                {:.2} s",
            alone.as_secs_f64()
        );
        println!(
            "tenant a, 4 jobs beside c's 4 loops:   {:.2} s",
            contended.as_secs_f64()
        );
        println!(
            "slowdown {ratio:.2}x; its fair share (half the busy threads) allows 2.00x: {}",
            if ratio <= 2.0 {
                "within its fair share"
            } else {
                "BEYOND its fair share"
            }
        );
        server.stop().await;
    });
}
