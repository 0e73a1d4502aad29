//! Beam Python streaming pipelines on `wasmbeam serve`, each against Beam's
//! own DirectRunner or Beam's Job API semantics: TestStream panes, stateful
//! WASM DoFns on TestStreams, and an unbounded job that runs until drained.

mod common;
use common::beam::{build, script, text, Server};
use common::repo;

/// Beam Python streaming pipelines built on TestStream, submitted with the
/// PortableRunner (LOOPBACK): every pane (values, window, timestamp, first,
/// last, timing, index, non-speculative index) is the one Beam's own
/// DirectRunner gives. Cases: early and late firings with allowed lateness
/// (accumulating, and an element past the lateness dropped), discarding
/// early firings, merged sessions with an early trigger, and bag state
/// flushed by an event-time timer.
#[test]
fn test_stream_panes_match_beams_direct_runner() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("state"));
    let o = script("streaming_panes.py", &[&server.endpoint]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("OK"), "{}", text(&o));
    for case in ["early_late", "discarding", "sessions", "bag_timer"] {
        assert!(
            out.contains(&format!("{case}: ")),
            "{case} did not run: {out}"
        );
    }
}

/// Stateful WASM DoFns on Beam Python TestStreams, mixed with Python DoFns
/// in a LOOPBACK harness, emit exactly what the same DoFns written as Beam
/// Python stateful DoFns emit on Beam's own DirectRunner:
/// * examples/dedup (a value cell, a runner-side count, an event-time TTL
///   timer): values, timestamps, windows and outputs, including a timer
///   that fires between two bundles and a key that is new again once its
///   state expired;
/// * examples/telemetry's alert mode (a processing-time timer that each
///   reading resets): the same alerts as the TestStream's processing time
///   advances, each stamped with the reading that set its timer.
#[test]
fn stateful_wasm_dofns_on_test_streams_match_beams_direct_runner() {
    let tmp = tempfile::tempdir().unwrap();
    let dedup = build(
        &repo().join("examples/dedup/udf"),
        &tmp.path().join("dedup.wasm"),
    );
    let telemetry = build(
        &repo().join("examples/telemetry/udf"),
        &tmp.path().join("telemetry.wasm"),
    );
    let server = Server::start(&tmp.path().join("state"));
    let o = script(
        "stateful_wasm_stream.py",
        &[
            &server.endpoint,
            dedup.to_str().unwrap(),
            telemetry.to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("OK"), "{}", text(&o));
    for case in ["dedup: 5 records", "alert: 3 records"] {
        assert!(out.contains(case), "{case} missing: {out}");
    }
}

/// An unbounded pipeline (wasmbeam's GenerateSequence, Python DoFns in a
/// LOOPBACK harness) runs as a stream until `wasmbeam drain JOB --wait`:
/// then it ends DRAINED, with every generated element in exactly one fired
/// window, each window's pane the on-time, last one.
#[test]
fn an_unbounded_job_runs_until_drained_and_drain_fires_every_window() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("state"));
    let o = script(
        "drain_stream.py",
        &[&server.endpoint, env!("CARGO_BIN_EXE_wasmbeam")],
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("OK"),
        "{}",
        text(&o)
    );
}
