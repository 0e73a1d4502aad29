//! The engine with native test functions: windowing, grouping, combining,
//! spilling, determinism, side inputs, failures and cancellation.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wasmbeam_engine::*;

mod common;
use common::NulCodec;

/// Sum of decimal values; accumulators are decimal text.
struct Sum;
impl CombineExec for Sum {
    fn create(&self) -> OpResult<Vec<u8>> {
        Ok(b"0".to_vec())
    }
    fn add_inputs(&self, accs: &Values, inputs: &Values, ends: &[u32]) -> OpResult<Values> {
        let mut out = Values::default();
        let mut start = 0;
        for (g, &end) in ends.iter().enumerate() {
            let mut s: i64 = std::str::from_utf8(accs.get(g)).unwrap().parse().unwrap();
            for i in start..end as usize {
                s += std::str::from_utf8(inputs.get(i))
                    .unwrap()
                    .parse::<i64>()
                    .map_err(|e| e.to_string())?;
            }
            start = end as usize;
            out.push(s.to_string().as_bytes());
        }
        Ok(out)
    }
    fn merge(&self, accs: &Values, ends: &[u32]) -> OpResult<Values> {
        let mut out = Values::default();
        let mut start = 0;
        for &end in ends {
            let s: i64 = (start..end as usize)
                .map(|i| {
                    std::str::from_utf8(accs.get(i))
                        .unwrap()
                        .parse::<i64>()
                        .unwrap()
                })
                .sum();
            start = end as usize;
            out.push(s.to_string().as_bytes());
        }
        Ok(out)
    }
    fn extract(&self, accs: &Values) -> OpResult<Values> {
        let mut out = Values::default();
        for i in 0..accs.len() {
            out.push(&[b"=", accs.get(i)].concat());
        }
        Ok(out)
    }
}

/// A DoFn from a closure over one element's (value, timestamp).
struct MapFn<F>(F, usize);
impl<F: Fn(&[u8], i64) -> Result<Vec<(usize, Vec<u8>, i64)>, String> + Send + Sync> DoFnExec
    for MapFn<F>
{
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut outs = vec![Batch::default(); self.1];
        for e in input.iter() {
            for (tag, v, ts) in (self.0)(e.value, e.timestamp)? {
                outs[tag].push(&v, ts, e.windows(), e.pane);
            }
        }
        Ok(outs)
    }
}

fn opts(workers: usize) -> EngineOptions {
    EngineOptions {
        workers,
        ..EngineOptions::default()
    }
}

/// "key,ts,value" lines → KV with event timestamps.
fn parse_csv() -> Arc<dyn DoFnExec> {
    Arc::new(MapFn(
        |v: &[u8], _| {
            let s = std::str::from_utf8(v).map_err(|e| e.to_string())?;
            let f: Vec<&str> = s.split(',').collect();
            let ts: i64 = f[1]
                .parse()
                .map_err(|e: std::num::ParseIntError| e.to_string())?;
            Ok(vec![(0, format!("{}\0{}", f[0], f[2]).into_bytes(), ts)])
        },
        1,
    ))
}

/// Formats grouped output "key\0<sum>" with its window.
struct Collect(Arc<Mutex<Vec<String>>>);
impl DoFnExec for Collect {
    fn prepare(&self, _: Vec<(String, Batch)>) -> OpResult<()> {
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let mut v = self.0.lock().unwrap();
        for e in input.iter() {
            let w: Vec<_> = e.windows().collect();
            let val = String::from_utf8_lossy(e.value);
            v.push(format!("{val}@{}..{}", w[0].start, w[0].end));
        }
        Ok(vec![])
    }
}

fn windowed_sum(input: &std::path::Path, wf: WindowFn, workers: usize) -> Vec<String> {
    let mut g = Graph::default();
    let lines = g.add_pcollection("lines");
    let kvs = g.add_pcollection("kvs");
    let win = g.add_pcollection("windowed");
    let sums = g.add_pcollection("sums");
    g.add_op(
        "Read",
        OpKind::ReadText {
            patterns: vec![input.display().to_string()],
        },
        vec![],
        vec![lines],
    );
    g.add_op(
        "Parse",
        OpKind::ParDo {
            exec: parse_csv(),
            side_inputs: vec![],
        },
        vec![lines],
        vec![kvs],
    );
    g.add_op(
        "Window",
        OpKind::AssignWindows(wf.clone()),
        vec![kvs],
        vec![win],
    );
    g.add_op(
        "Sum",
        OpKind::GroupByKey {
            codec: Arc::new(NulCodec),
            window_fn: wf,
            combine: Some(Arc::new(Sum)),
            triggering: Default::default(),
        },
        vec![win],
        vec![sums],
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    g.add_op(
        "Collect",
        OpKind::ParDo {
            exec: Arc::new(Collect(got.clone())),
            side_inputs: vec![],
        },
        vec![sums],
        vec![],
    );
    run(&g, &opts(workers)).unwrap();
    let mut v = got.lock().unwrap().clone();
    v.sort();
    v
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn fixed_sliding_and_session_windows_match_hand_computed_sums() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.csv",
        "a,1000,1\na,59000,2\na,61000,4\nb,30000,10\na,200000,8\nb,30500,20\n",
    );
    assert_eq!(
        windowed_sum(
            &input,
            WindowFn::Fixed {
                size: 60_000,
                offset: 0
            },
            2
        ),
        [
            "a=3@0..60000",
            "a=4@60000..120000",
            "a=8@180000..240000",
            "b=30@0..60000"
        ]
    );
    // Sliding 60 s every 30 s: each element is in two windows.
    assert_eq!(
        windowed_sum(
            &input,
            WindowFn::Sliding {
                size: 60_000,
                period: 30_000,
                offset: 0
            },
            2
        ),
        [
            "a=1@-30000..30000",
            "a=3@0..60000",
            "a=4@60000..120000",
            "a=6@30000..90000",
            "a=8@150000..210000",
            "a=8@180000..240000",
            "b=30@0..60000",
            "b=30@30000..90000"
        ]
    );
    // Sessions with a 5 s gap: a@59000 and a@61000 merge; b's two merge.
    assert_eq!(
        windowed_sum(&input, WindowFn::Sessions { gap: 5_000 }, 2),
        [
            "a=1@1000..6000",
            "a=6@59000..66000",
            "a=8@200000..205000",
            "b=30@30000..35500"
        ]
    );
}

fn wordcount_graph(input: &str, out_prefix: &str, shards: usize) -> Graph {
    let mut g = Graph::default();
    let lines = g.add_pcollection("lines");
    let kvs = g.add_pcollection("kvs");
    let grouped = g.add_pcollection("grouped");
    let text = g.add_pcollection("text");
    g.add_op(
        "Read",
        OpKind::ReadText {
            patterns: vec![input.into()],
        },
        vec![],
        vec![lines],
    );
    g.add_op(
        "Split",
        OpKind::ParDo {
            exec: Arc::new(MapFn(
                |v: &[u8], ts| {
                    Ok(v.split(|&b| b == b' ')
                        .filter(|w| !w.is_empty())
                        .map(|w| (0, [w, b"\x001"].concat(), ts))
                        .collect())
                },
                1,
            )),
            side_inputs: vec![],
        },
        vec![lines],
        vec![kvs],
    );
    // Plain GroupByKey (no combine): exercises iterables and spilling.
    g.add_op(
        "Group",
        OpKind::GroupByKey {
            codec: Arc::new(NulCodec),
            window_fn: WindowFn::Global,
            combine: None,
            triggering: Default::default(),
        },
        vec![kvs],
        vec![grouped],
    );
    g.add_op(
        "Format",
        OpKind::ParDo {
            exec: Arc::new(MapFn(
                |v: &[u8], ts| {
                    let i = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                    let n = u32::from_be_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]);
                    Ok(vec![(
                        0,
                        format!("{}: {n}", String::from_utf8_lossy(&v[..i])).into_bytes(),
                        ts,
                    )])
                },
                1,
            )),
            side_inputs: vec![],
        },
        vec![grouped],
        vec![text],
    );
    g.add_op(
        "Write",
        OpKind::WriteText(TextSink {
            prefix: out_prefix.into(),
            suffix: ".txt".into(),
            shards,
        }),
        vec![text],
        vec![],
    );
    g
}

fn corpus(lines: usize) -> String {
    let mut s = String::new();
    let mut x: u64 = 7;
    for _ in 0..lines {
        for _ in 0..8 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push_str(&format!("w{} ", (x >> 33) % 500));
        }
        s.push('\n');
    }
    s
}

fn expected_counts(text: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for w in text.split_whitespace() {
        *m.entry(w.to_string()).or_insert(0) += 1;
    }
    m
}

fn read_output(files: &[std::path::PathBuf]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn group_by_key_spills_past_the_budget_and_output_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let text = corpus(40_000);
    let input = write(dir.path(), "corpus.txt", &text);
    let mut want: Vec<String> = expected_counts(&text)
        .into_iter()
        .map(|(w, n)| format!("{w}: {n}"))
        .collect();
    want.sort();
    let mut outputs = Vec::new();
    for workers in [1, 2, 3] {
        let prefix = dir
            .path()
            .join(format!("out{workers}/counts"))
            .display()
            .to_string();
        let g = wordcount_graph(&input.display().to_string(), &prefix, 2);
        // The shuffle holds ~4.6 MB of records: a 512 KiB budget is 9x smaller.
        let o = EngineOptions {
            workers,
            memory_budget: 512 << 10,
            partitions: 16,
            ..EngineOptions::default()
        };
        let r = run(&g, &o).unwrap();
        assert!(
            r.spilled_bytes > 2 * (512 << 10),
            "spilled only {} bytes",
            r.spilled_bytes
        );
        assert_eq!(r.outputs.len(), 2);
        assert!(r.outputs[0]
            .to_string_lossy()
            .ends_with("counts-00000-of-00002.txt"));
        let mut lines = read_output(&r.outputs);
        outputs.push(lines.clone());
        lines.sort();
        assert_eq!(lines, want);
        // No staging or spill leftovers.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(format!("out{workers}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert_eq!(
        outputs[0], outputs[1],
        "1 vs 2 workers: same files, same order"
    );
    assert_eq!(outputs[0], outputs[2], "1 vs 3 workers");
}

#[test]
fn a_failing_transform_names_itself_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", "a,1,1\nb,2,oops\n");
    let mut g = Graph::default();
    let lines = g.add_pcollection("lines");
    let kvs = g.add_pcollection("kvs");
    let sums = g.add_pcollection("sums");
    let text = g.add_pcollection("text");
    g.add_op(
        "Read",
        OpKind::ReadText {
            patterns: vec![input.display().to_string()],
        },
        vec![],
        vec![lines],
    );
    g.add_op(
        "Passthrough",
        OpKind::WriteText(TextSink {
            prefix: dir.path().join("early").display().to_string(),
            suffix: String::new(),
            shards: 1,
        }),
        vec![lines],
        vec![],
    );
    g.add_op(
        "Parse",
        OpKind::ParDo {
            exec: parse_csv(),
            side_inputs: vec![],
        },
        vec![lines],
        vec![kvs],
    );
    g.add_op(
        "Sum",
        OpKind::GroupByKey {
            codec: Arc::new(NulCodec),
            window_fn: WindowFn::Global,
            combine: Some(Arc::new(Sum)),
            triggering: Default::default(),
        },
        vec![kvs],
        vec![sums],
    );
    g.add_op("Fmt", OpKind::Flatten, vec![sums], vec![text]);
    g.add_op(
        "Write",
        OpKind::WriteText(TextSink {
            prefix: dir.path().join("sums").display().to_string(),
            suffix: String::new(),
            shards: 1,
        }),
        vec![text],
        vec![],
    );
    let err = run(&g, &opts(2)).unwrap_err();
    assert_eq!(
        err,
        EngineError::Op {
            transform: "Sum".into(),
            message: "invalid digit found in string".into()
        }
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["in.csv"],
        "nothing committed, nothing staged left behind"
    );
}

#[test]
fn cancellation_stops_the_job_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "corpus.txt", &corpus(50_000));
    let prefix = dir.path().join("out").display().to_string();
    let g = wordcount_graph(&input.display().to_string(), &prefix, 1);
    let cancel = Arc::new(AtomicBool::new(true));
    let o = EngineOptions {
        workers: 2,
        cancel: cancel.clone(),
        ..EngineOptions::default()
    };
    assert_eq!(run(&g, &o).unwrap_err(), EngineError::Cancelled);
    cancel.store(false, Ordering::SeqCst);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["corpus.txt"]);
}

struct SideUser(Mutex<Vec<u8>>);
impl DoFnExec for SideUser {
    fn prepare(&self, sides: Vec<(String, Batch)>) -> OpResult<()> {
        let mut all = Vec::new();
        for (tag, b) in sides {
            for e in b.iter() {
                all.extend_from_slice(
                    format!("{tag}:{} ", String::from_utf8_lossy(e.value)).as_bytes(),
                );
            }
        }
        *self.0.lock().unwrap() = all;
        Ok(())
    }
    fn process(&self, input: Batch) -> OpResult<Vec<Batch>> {
        let side = self.0.lock().unwrap().clone();
        let mut out = Batch::default();
        for e in input.iter() {
            out.push(
                &[e.value, b" | ", &side].concat(),
                e.timestamp,
                e.windows(),
                e.pane,
            );
        }
        Ok(vec![out])
    }
}

#[test]
fn side_input_from_the_same_root_is_materialised_first() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.txt", "x\ny\n");
    let mut g = Graph::default();
    let lines = g.add_pcollection("lines");
    let side = g.add_pcollection("side");
    let out = g.add_pcollection("out");
    g.add_op(
        "Read",
        OpKind::ReadText {
            patterns: vec![input.display().to_string()],
        },
        vec![],
        vec![lines],
    );
    g.add_op("Copy", OpKind::Flatten, vec![lines], vec![side]);
    g.add_op(
        "Use",
        OpKind::ParDo {
            exec: Arc::new(SideUser(Mutex::new(Vec::new()))),
            side_inputs: vec![("s".into(), side)],
        },
        vec![lines],
        vec![out],
    );
    let prefix = dir.path().join("res").display().to_string();
    g.add_op(
        "Write",
        OpKind::WriteText(TextSink {
            prefix,
            suffix: String::new(),
            shards: 1,
        }),
        vec![out],
        vec![],
    );
    let r = run(&g, &opts(2)).unwrap();
    assert_eq!(read_output(&r.outputs), ["x | s:x s:y ", "y | s:x s:y "]);
}

#[test]
fn a_flatten_that_reads_one_pcollection_three_times_keeps_every_copy() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.txt", "a\nb\n");
    let out = dir.path().join("out");
    let mut g = Graph::default();
    let lines = g.add_pcollection("lines");
    let all = g.add_pcollection("all");
    g.add_op(
        "Read",
        OpKind::ReadText {
            patterns: vec![input.display().to_string()],
        },
        vec![],
        vec![lines],
    );
    g.add_op(
        "Flatten",
        OpKind::Flatten,
        vec![lines, lines, lines],
        vec![all],
    );
    g.add_op(
        "Write",
        OpKind::WriteText(TextSink {
            prefix: out.display().to_string(),
            suffix: String::new(),
            shards: 1,
        }),
        vec![all],
        vec![],
    );
    let r = run(&g, &opts(2)).unwrap();
    let mut got: Vec<String> = std::fs::read_to_string(&r.outputs[0])
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    got.sort();
    assert_eq!(got, ["a", "a", "a", "b", "b", "b"]);
    assert_eq!(r.element_counts[all], 6);
}
