//! examples/telemetry's streaming pipeline, in Rust, Go and Python: it
//! watches a directory, fires each minute's statistics early (10 s of
//! processing time after the first reading), keeps accumulating, and on
//! Ctrl-C drains: the on-time pane of every window and every meter's
//! silence alert fire, and the job ends. Its final panes and alerts must be
//! exactly what the batch pipeline gives for the same readings.

mod common;
use common::{drain_with_sigint, files_with_prefix, repo, sorted_lines, stderr, wasmbeam_cmd};

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Readings in the minute after the next one begins, so that its window
/// is still open (its end ahead of the watermark) when they arrive: the
/// early pane comes from processing time, the on-time pane from the drain.
fn readings() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let base = (now / 60 + 2) * 60 + 5;
    let mut csv = String::from("meter_id,timestamp,kwh\n");
    for i in 0..6u64 {
        csv.push_str(&format!(
            "m{},{},{}\n",
            i % 3 + 1,
            iso(base + i),
            0.5 + i as f64 * 0.25
        ));
    }
    csv.push_str("not,a,reading\n");
    csv
}

/// `YYYY-MM-DDTHH:MM:SSZ` of `secs` since the epoch, from date(1).
fn iso(secs: u64) -> String {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Lines of the files in `dir` whose names start with `prefix`.
fn lines(dir: &Path, prefix: &str) -> Vec<String> {
    sorted_lines(&files_with_prefix(dir, prefix))
}

fn streaming_telemetry(suffix: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let csv = readings();
    // The reference: the batch pipeline on the same readings.
    let file = tmp.path().join("readings.csv");
    std::fs::write(&file, &csv).unwrap();
    let batch = tmp.path().join("batch");
    let o = wasmbeam_cmd(&repo())
        .args(["run", &format!("examples/telemetry/pipeline{suffix}.yaml")])
        .args(["--set", &format!("input={}", file.display())])
        .args(["--set", &format!("output={}", batch.display())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let want_stats = lines(&batch, "minute_stats");
    let want_alerts = lines(&batch, "alerts");
    assert_eq!(
        (want_stats.len(), want_alerts.len()),
        (6, 3),
        "{want_stats:?}"
    );

    let inbox = tmp.path().join("inbox");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&inbox).unwrap();
    let child = wasmbeam_cmd(&repo())
        .args([
            "run",
            &format!("examples/telemetry/pipeline-stream{suffix}.yaml"),
        ])
        .args(["--set", &format!("input={}/*.csv", inbox.display())])
        .args(["--set", &format!("output={}", out.display())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(inbox.join("readings.part"), &csv).unwrap();
    std::fs::rename(inbox.join("readings.part"), inbox.join("readings.csv")).unwrap();
    // The early pane: 10 s of processing time after the readings arrive
    // (the job may still be building and compiling its UDF first).
    let deadline = Instant::now() + Duration::from_secs(180);
    let early = loop {
        let l = if out.is_dir() {
            lines(&out, "minute_stats")
        } else {
            vec![]
        };
        if l.len() >= 6 || Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(early, want_stats, "the early pane, while the job runs");
    assert!(
        files_with_prefix(&out, "minute_stats")
            .iter()
            .all(|f| f.to_string_lossy().contains("-pane0-")),
        "only the early pane so far"
    );
    assert!(
        lines(&out, "alerts").is_empty(),
        "no meter has been silent for 5 minutes"
    );
    drain_with_sigint(child);
    // The drain fired the on-time pane (accumulating: every reading again)
    // and every meter's pending processing-time timer.
    let on_time: Vec<_> = files_with_prefix(&out, "minute_stats")
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("-pane1-"))
        .collect();
    assert_eq!(sorted_lines(&on_time), want_stats, "the on-time pane");
    assert_eq!(
        files_with_prefix(&out, "minute_stats").len(),
        2 * files_with_prefix(&out, "minute_stats")
            .iter()
            .filter(|f| f.to_string_lossy().contains("-pane0-"))
            .count(),
        "two panes, no more"
    );
    assert_eq!(lines(&out, "alerts"), want_alerts);
    let invalid = lines(&out, "invalid");
    assert_eq!(invalid.len(), 1, "{invalid:?}");
    assert!(invalid[0].starts_with("not,a,reading # "), "{invalid:?}");
}

#[test]
fn streaming_telemetry_in_rust() {
    streaming_telemetry("");
}

#[test]
fn streaming_telemetry_in_go() {
    streaming_telemetry("-go");
}

#[test]
fn streaming_telemetry_in_python() {
    streaming_telemetry("-py");
}
