//! The streaming executor with native test functions: a TestStream's
//! elements, watermark and processing-time advances go through window
//! assignment and a triggered GroupByKey, and the panes come out in event
//! order with their pane info.

use std::sync::{Arc, Mutex};

use wasmbeam_engine::panes::{TimestampCombiner, Triggering};
use wasmbeam_engine::trigger::{TimeTransform, Trigger};
use wasmbeam_engine::PANE_NO_FIRING;
use wasmbeam_engine::*;

mod common;
use common::{window_and_group, NulCodec};

/// What a recorded pane looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    key: String,
    values: Vec<String>,
    window: (i64, i64),
    timestamp: i64,
    pane: u8,
    index: [i64; 2],
}

/// Records grouped outputs (`key` then a count and length-prefixed values).
struct Record(Arc<Mutex<Vec<Seen>>>);
impl DoFnExec for Record {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        for e in input.iter() {
            let key_len = 1; // the keys here are one ASCII letter
            let key = String::from_utf8(e.value[..key_len].to_vec()).unwrap();
            let mut at = key_len + 4;
            let mut values = Vec::new();
            while at < e.value.len() {
                let n = e.value[at] as usize;
                values.push(String::from_utf8(e.value[at + 1..at + 1 + n].to_vec()).unwrap());
                at += 1 + n;
            }
            let w = e.windows().next().unwrap();
            self.0.lock().unwrap().push(Seen {
                key,
                values,
                window: (w.start, w.end),
                timestamp: e.timestamp,
                pane: e.pane,
                index: e.pane_indexes,
            });
        }
        Ok(vec![])
    }
}

fn elements(items: &[(&str, &str, i64)]) -> StreamEvent {
    let mut b = Batch::default();
    for (k, v, ts) in items {
        b.push_global(format!("{k}\0{v}").as_bytes(), *ts);
    }
    StreamEvent::Elements(b)
}

fn pipeline(events: Vec<StreamEvent>, triggering: Triggering, window_fn: WindowFn) -> Vec<Seen> {
    let mut g = Graph::default();
    let src = g.add_pcollection("events");
    g.add_op("Events", OpKind::TestStream(events), vec![], vec![src]);
    let grouped = window_and_group(&mut g, "Group", src, window_fn, triggering);
    let seen = Arc::new(Mutex::new(Vec::new()));
    g.add_op(
        "Record",
        OpKind::ParDo {
            exec: Arc::new(Record(seen.clone())),
            side_inputs: vec![],
        },
        vec![grouped],
        vec![],
    );
    run(&g, &EngineOptions::default()).unwrap();
    let v = seen.lock().unwrap().clone();
    v
}

const EARLY: u8 = 0b0000;
const ON_TIME: u8 = 0b0100;
const LATE: u8 = 0b1000;
const FIRST: u8 = 1;
const LAST: u8 = 2;

#[test]
fn early_on_time_and_late_panes_in_event_order() {
    let triggering = Triggering {
        trigger: Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterCount(2))),
            late: Some(Box::new(Trigger::AfterCount(1))),
        },
        accumulating: true,
        allowed_lateness: 100,
        timestamp_combiner: TimestampCombiner::EndOfWindow,
    };
    let seen = pipeline(
        vec![
            elements(&[("a", "1", 1), ("a", "2", 2)]),
            elements(&[("a", "3", 3)]),
            StreamEvent::Watermark(20),
            elements(&[("a", "late", 5)]),
            StreamEvent::Watermark(500),
            elements(&[("a", "dropped", 6)]),
        ],
        triggering,
        WindowFn::Fixed {
            size: 10,
            offset: 0,
        },
    );
    let s = |values: &[&str], pane: u8, index: [i64; 2]| Seen {
        key: "a".into(),
        values: values.iter().map(|v| v.to_string()).collect(),
        window: (0, 10),
        timestamp: 9,
        pane,
        index,
    };
    assert_eq!(
        seen,
        vec![
            s(&["1", "2"], EARLY | FIRST, [0, -1]),
            s(&["1", "2", "3"], ON_TIME, [1, 0]),
            s(&["1", "2", "3", "late"], LATE, [2, 1]),
        ],
        "an early pane of two, the on-time pane, one late pane; the element after the allowed lateness is dropped"
    );
}

#[test]
fn processing_time_triggers_follow_the_streams_clock() {
    let triggering = Triggering {
        trigger: Trigger::Repeatedly(Box::new(Trigger::AfterProcessingTime(vec![
            TimeTransform::Delay(1_000),
        ]))),
        accumulating: false,
        allowed_lateness: 0,
        timestamp_combiner: TimestampCombiner::Earliest,
    };
    let seen = pipeline(
        vec![
            elements(&[("k", "x", 5)]),
            StreamEvent::ProcessingTime(500),
            elements(&[("k", "y", 7)]),
            StreamEvent::ProcessingTime(600),
            elements(&[("k", "z", 8)]),
        ],
        triggering,
        WindowFn::Global,
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].values, ["x", "y"], "fired 1 s after x arrived");
    assert_eq!(seen[0].timestamp, 5, "earliest element");
    assert_eq!(seen[0].pane & 0b1100, EARLY);
    assert_eq!(
        seen[1].values,
        ["z"],
        "what is left fires at the end of the stream"
    );
    assert_eq!(seen[1].pane & LAST, LAST);
}

#[test]
fn sessions_merge_and_fire_when_the_watermark_passes() {
    let seen = pipeline(
        vec![
            elements(&[("s", "a", 1), ("s", "b", 5)]),
            elements(&[("s", "c", 30)]),
            StreamEvent::Watermark(100),
        ],
        Triggering::default(),
        WindowFn::Sessions { gap: 10 },
    );
    let windows: Vec<_> = seen.iter().map(|s| (s.window, s.values.clone())).collect();
    assert_eq!(
        windows,
        vec![
            ((1, 15), vec!["a".to_string(), "b".to_string()]),
            ((30, 40), vec!["c".to_string()])
        ]
    );
    assert!(seen.iter().all(|s| s.pane == ON_TIME | FIRST | LAST));
}

/// Sums each window's varint values; records (window start, sum, count).
struct SumVarints(Arc<Mutex<Vec<(i64, i64, usize)>>>);
impl DoFnExec for SumVarints {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        for e in input.iter() {
            // key "k", then a count and length-prefixed varints.
            let n = i32::from_be_bytes(e.value[1..5].try_into().unwrap()) as usize;
            let mut at = 5;
            let mut sum = 0i64;
            for _ in 0..n {
                let len = e.value[at] as usize;
                let mut v = 0u64;
                for (i, b) in e.value[at + 1..at + 1 + len].iter().enumerate() {
                    v |= u64::from(b & 0x7f) << (7 * i);
                }
                sum += v as i64;
                at += 1 + len;
            }
            let w = e.windows().next().unwrap();
            self.0.lock().unwrap().push((w.start, sum, n));
        }
        Ok(vec![])
    }
}

/// Puts every element under key "k" (`k \0 value`).
struct KeyAll;
impl DoFnExec for KeyAll {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut out = Batch::default();
        for e in input.iter() {
            out.push_ref(&ElementRef {
                value: &[b"k\0", e.value].concat(),
                ..e
            });
        }
        Ok(vec![out])
    }
}

#[test]
fn an_unbounded_sequence_runs_until_drained_and_drain_fires_every_window() {
    let mut g = Graph::default();
    let seq = g.add_pcollection("seq");
    g.add_op(
        "Seq",
        OpKind::GenerateSequence {
            start: 0,
            stop: None,
            period_ms: 5,
        },
        vec![],
        vec![seq],
    );
    let keyed = g.add_pcollection("keyed");
    g.add_op(
        "Key",
        OpKind::ParDo {
            exec: Arc::new(KeyAll),
            side_inputs: vec![],
        },
        vec![seq],
        vec![keyed],
    );
    let wf = WindowFn::Fixed {
        size: 100,
        offset: 0,
    };
    let grouped = window_and_group(&mut g, "Group", keyed, wf, Triggering::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    g.add_op(
        "Sum",
        OpKind::ParDo {
            exec: Arc::new(SumVarints(seen.clone())),
            side_inputs: vec![],
        },
        vec![grouped],
        vec![],
    );
    let opts = EngineOptions::default();
    let drain = opts.drain.clone();
    let drainer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(400));
        drain.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let started = std::time::Instant::now();
    let result = run(&g, &opts).unwrap();
    drainer.join().unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(400),
        "it ran until drained"
    );
    let generated = result.element_counts[seq] as usize;
    assert!(
        generated >= 40,
        "about one element per 5 ms for 400 ms: {generated}"
    );
    let seen = seen.lock().unwrap().clone();
    let n: usize = seen.iter().map(|s| s.2).sum();
    let sum: i64 = seen.iter().map(|s| s.1).sum();
    assert_eq!(n, generated, "every element is in a fired window, once");
    assert_eq!(
        sum,
        (0..generated as i64).sum::<i64>(),
        "0, 1, 2, ... with none lost or doubled"
    );
    let mut starts: Vec<i64> = seen.iter().map(|s| s.0).collect();
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), seen.len(), "one pane per window");
}

/// Re-keys grouped output `k`+count+values into one element per value
/// again (`k \0 value`), keeping its timestamp and window.
struct Ungroup;
impl DoFnExec for Ungroup {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut out = Batch::default();
        for e in input.iter() {
            let mut at = 5;
            while at < e.value.len() {
                let n = e.value[at] as usize;
                let v = [b"k\0", &e.value[at + 1..at + 1 + n]].concat();
                out.push(&v, e.timestamp, e.windows(), PANE_NO_FIRING);
                at += 1 + n;
            }
        }
        Ok(vec![out])
    }
}

/// Panes a first GroupByKey fires at the end of a window reach a second
/// GroupByKey (same windows, no lateness) on time: the first one's output
/// watermark does not pass them before they are taken.
#[test]
fn panes_of_one_group_by_key_are_on_time_for_the_next() {
    let wf = WindowFn::Fixed {
        size: 10,
        offset: 0,
    };
    let mut g = Graph::default();
    let src = g.add_pcollection("events");
    g.add_op(
        "Events",
        OpKind::TestStream(vec![
            elements(&[("k", "a", 1), ("k", "b", 2), ("k", "c", 12)]),
            StreamEvent::Watermark(100),
        ]),
        vec![],
        vec![src],
    );
    let mut last = src;
    for n in 0..2 {
        let windowed = g.add_pcollection(format!("windowed{n}"));
        g.add_op(
            format!("Window{n}"),
            OpKind::AssignWindows(wf.clone()),
            vec![last],
            vec![windowed],
        );
        let grouped = g.add_pcollection(format!("grouped{n}"));
        g.add_op(
            format!("Group{n}"),
            OpKind::GroupByKey {
                codec: Arc::new(NulCodec),
                window_fn: wf.clone(),
                combine: None,
                triggering: Triggering::default(),
            },
            vec![windowed],
            vec![grouped],
        );
        last = grouped;
        if n == 0 {
            let flat = g.add_pcollection("ungrouped");
            g.add_op(
                "Ungroup",
                OpKind::ParDo {
                    exec: Arc::new(Ungroup),
                    side_inputs: vec![],
                },
                vec![grouped],
                vec![flat],
            );
            last = flat;
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    g.add_op(
        "Record",
        OpKind::ParDo {
            exec: Arc::new(Record(seen.clone())),
            side_inputs: vec![],
        },
        vec![last],
        vec![],
    );
    let result = run(&g, &EngineOptions::default()).unwrap();
    let mut got: Vec<(i64, Vec<String>)> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.window.0, s.values.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, vec!["a".to_string(), "b".to_string()]),
            (10, vec!["c".to_string()])
        ],
        "nothing was dropped as late at the second GroupByKey"
    );
    assert_eq!(result.element_counts.len(), g.pcollections.len());
}

/// Grouped output as a text line `key:v1,v2,...`, keeping window and pane.
struct FormatLine;
impl DoFnExec for FormatLine {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut out = Batch::default();
        for e in input.iter() {
            let mut at = 5;
            let mut values = Vec::new();
            while at < e.value.len() {
                let n = e.value[at] as usize;
                values.push(String::from_utf8_lossy(&e.value[at + 1..at + 1 + n]).into_owned());
                at += 1 + n;
            }
            let line = format!("{}:{}", e.value[0] as char, values.join(","));
            out.push_ref(&ElementRef {
                value: line.as_bytes(),
                ..e
            });
        }
        Ok(vec![out])
    }
}

/// A streaming text sink commits each window's pane to its own file as the
/// pane fires, with deterministic names.
#[test]
fn text_sinks_commit_one_file_per_window_and_pane() {
    let dir = tempfile::tempdir().unwrap();
    let wf = WindowFn::Fixed {
        size: 10,
        offset: 0,
    };
    let mut g = Graph::default();
    let src = g.add_pcollection("events");
    g.add_op(
        "Events",
        OpKind::TestStream(vec![
            elements(&[("k", "1", 1), ("k", "2", 2)]),
            elements(&[("k", "3", 3), ("k", "4", 14)]),
            StreamEvent::Watermark(100),
        ]),
        vec![],
        vec![src],
    );
    let grouped = window_and_group(
        &mut g,
        "Group",
        src,
        wf,
        Triggering {
            trigger: Trigger::AfterWatermark {
                early: Some(Box::new(Trigger::AfterCount(2))),
                late: None,
            },
            accumulating: true,
            allowed_lateness: 0,
            timestamp_combiner: TimestampCombiner::EndOfWindow,
        },
    );
    let lines = g.add_pcollection("lines");
    g.add_op(
        "Format",
        OpKind::ParDo {
            exec: Arc::new(FormatLine),
            side_inputs: vec![],
        },
        vec![grouped],
        vec![lines],
    );
    let prefix = dir.path().join("out/panes").display().to_string();
    g.add_op(
        "Write",
        OpKind::WriteText(TextSink {
            prefix: prefix.clone(),
            suffix: ".txt".into(),
            shards: 1,
        }),
        vec![lines],
        vec![],
    );
    let result = run(&g, &EngineOptions::default()).unwrap();
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    let want = [
        ("panes-0-10-pane0-00000.txt", "k:1,2\n"),
        ("panes-0-10-pane1-00000.txt", "k:1,2,3\n"),
        ("panes-10-20-pane0-00000.txt", "k:4\n"),
    ];
    assert_eq!(
        files,
        want.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>(),
        "an early pane of two, the on-time pane of window 0, window 10's on-time pane; no staging files left"
    );
    assert_eq!(result.outputs.len(), 3);
}

/// Collects every element's value as text.
struct Collect(Arc<Mutex<Vec<String>>>);
impl DoFnExec for Collect {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut seen = self.0.lock().unwrap();
        for e in input.iter() {
            seen.push(String::from_utf8_lossy(e.value).into_owned());
        }
        Ok(vec![])
    }
}

/// A watched directory: files present at the start and files moved in
/// while the job runs are each read once, and the job ends on drain.
#[test]
fn a_watched_directory_reads_each_new_file_once_until_drained() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "a1\na2\n").unwrap();
    let mut g = Graph::default();
    let lines = g.add_pcollection("lines");
    g.add_op(
        "Watch",
        OpKind::WatchText {
            patterns: vec![dir.path().join("*.txt").display().to_string()],
            poll_ms: 20,
        },
        vec![],
        vec![lines],
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    g.add_op(
        "Collect",
        OpKind::ParDo {
            exec: Arc::new(Collect(seen.clone())),
            side_inputs: vec![],
        },
        vec![lines],
        vec![],
    );
    let opts = EngineOptions::default();
    let drain = opts.drain.clone();
    let path = dir.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(150));
        // Written elsewhere, then moved in whole.
        std::fs::write(path.join("b.part"), "b1\n").unwrap();
        std::fs::rename(path.join("b.part"), path.join("b.txt")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        drain.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    run(&g, &opts).unwrap();
    writer.join().unwrap();
    let mut got = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["a1", "a2", "b1"]);
}

/// A TestStream with two outputs keeps one event order: each output gets
/// its own elements, and a watermark for one output fires only its windows.
#[test]
fn a_test_stream_with_two_outputs_routes_elements_and_watermarks() {
    let wf = WindowFn::Fixed {
        size: 10,
        offset: 0,
    };
    let mut g = Graph::default();
    let (a, b) = (g.add_pcollection("a"), g.add_pcollection("b"));
    let one = |k: &str, v: &str, ts: i64| {
        let mut x = Batch::default();
        x.push_global(format!("{k}\0{v}").as_bytes(), ts);
        x
    };
    g.add_op(
        "Events",
        OpKind::TestStream(vec![
            StreamEvent::ElementsTo(0, one("a", "1", 1)),
            StreamEvent::ElementsTo(1, one("b", "2", 2)),
            StreamEvent::WatermarkOf(0, 100),
        ]),
        vec![],
        vec![a, b],
    );
    let seen = Arc::new(Mutex::new(Vec::new()));
    for (n, input) in [(0, a), (1, b)] {
        let windowed = g.add_pcollection(format!("w{n}"));
        g.add_op(
            format!("Window{n}"),
            OpKind::AssignWindows(wf.clone()),
            vec![input],
            vec![windowed],
        );
        let grouped = g.add_pcollection(format!("g{n}"));
        g.add_op(
            format!("Group{n}"),
            OpKind::GroupByKey {
                codec: Arc::new(NulCodec),
                window_fn: wf.clone(),
                combine: None,
                triggering: Triggering::default(),
            },
            vec![windowed],
            vec![grouped],
        );
        g.add_op(
            format!("Record{n}"),
            OpKind::ParDo {
                exec: Arc::new(Record(seen.clone())),
                side_inputs: vec![],
            },
            vec![grouped],
            vec![],
        );
    }
    run(&g, &EngineOptions::default()).unwrap();
    let keys: Vec<String> = seen.lock().unwrap().iter().map(|s| s.key.clone()).collect();
    assert_eq!(
        keys,
        ["a", "b"],
        "a fires at its own watermark, b when the stream ends"
    );
}

/// A side input fed by an unbounded source would never complete: the job
/// is refused at once, naming the ParDo and its side input.
#[test]
fn a_side_input_from_an_unbounded_source_is_refused_by_name() {
    let mut g = Graph::default();
    let seq = g.add_pcollection("ticks");
    g.add_op(
        "Ticks",
        OpKind::GenerateSequence {
            start: 0,
            stop: None,
            period_ms: 10,
        },
        vec![],
        vec![seq],
    );
    let main = g.add_pcollection("main");
    let mut b = Batch::default();
    b.push_global(b"x", 0);
    g.add_op(
        "Main",
        OpKind::TestStream(vec![StreamEvent::Elements(b)]),
        vec![],
        vec![main],
    );
    g.add_op(
        "Join",
        OpKind::ParDo {
            exec: Arc::new(Collect(Default::default())),
            side_inputs: vec![("ticks".into(), seq)],
        },
        vec![main],
        vec![],
    );
    let err = run(&g, &EngineOptions::default()).unwrap_err().to_string();
    assert!(
        err.contains("Join") && err.contains("\"ticks\"") && err.contains("unbounded"),
        "{err}"
    );
}

/// Fails its bundle the way an abandoned SDK bundle does once the job is
/// being cancelled.
struct FailOnCancel(Arc<std::sync::atomic::AtomicBool>);
impl DoFnExec for FailOnCancel {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, _: Batch) -> OpResult<Vec<Batch>> {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        Err("the bundle was abandoned".into())
    }
}

/// A bundle that fails while the job is being cancelled ends the job as
/// cancelled, not failed (as in batch).
#[test]
fn a_failure_during_cancel_is_the_cancel() {
    let mut g = Graph::default();
    let seq = g.add_pcollection("seq");
    g.add_op(
        "Seq",
        OpKind::GenerateSequence {
            start: 0,
            stop: None,
            period_ms: 5,
        },
        vec![],
        vec![seq],
    );
    let opts = EngineOptions::default();
    g.add_op(
        "Abandoned",
        OpKind::ParDo {
            exec: Arc::new(FailOnCancel(opts.cancel.clone())),
            side_inputs: vec![],
        },
        vec![seq],
        vec![],
    );
    assert_eq!(run(&g, &opts).unwrap_err(), EngineError::Cancelled);
}
