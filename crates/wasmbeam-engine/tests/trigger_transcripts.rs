//! Beam's trigger transcripts (`apache_beam/testing/data/trigger_transcripts.yaml`
//! in the apache-beam 2.77.0 wheel, the table of trigger behaviour meant to
//! be shared by runners) run through wasmbeam's trigger machinery
//! (`trigger` + `panes`).
//!
//! Each transcript names a window function, a trigger (in Python syntax),
//! an accumulation mode, a timestamp combiner and an allowed lateness, then
//! a list of actions: a bundle of input elements (their values are their
//! timestamps), a watermark advance, or the panes expected from what came
//! before. The rules are those of Beam's own transcript runner: output not
//! expected before the next action fails, an expected pane that matches no
//! output fails, and a pane matches when every attribute it names is equal.
//! Transcripts that declare an `error` are malformed on purpose: the
//! checker must reject them with that error, which shows it can fail.
//!
//! One summary line goes to `target/conformance/triggers.txt`.

use std::path::{Path, PathBuf};

use serde_yaml::Value as Y;
use wasmbeam_engine::panes::{Pane, PaneDriver, TimestampCombiner, Timing, Windowing};
use wasmbeam_engine::trigger::{TimeTransform, Times, Trigger};
use wasmbeam_engine::{Window, WindowFn};

const YAML_IN_WHEEL: &str = "site-packages/apache_beam/testing/data/trigger_transcripts.yaml";

fn yaml_path() -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join(YAML_IN_WHEEL))
        .filter(|p| p.is_file())
        .collect();
    candidates.sort();
    candidates.pop().unwrap_or_else(|| {
        panic!(
            "Beam's trigger_transcripts.yaml was not found at {}/python3*/{YAML_IN_WHEEL}; \
             run scripts/bootstrap.sh to create the project venv with apache-beam 2.77",
            lib.display()
        )
    })
}

/// A parsed `Name(arg, kw=arg)` expression of the transcripts' Python syntax.
#[derive(Debug, Clone)]
enum Expr {
    Int(i64),
    Call(String, Vec<(Option<String>, Expr)>),
}

fn parse_expr(s: &str) -> Result<Expr, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(Expr::Int(n));
    }
    let Some(open) = s.find('(') else {
        return Ok(Expr::Call(s.to_string(), Vec::new()));
    };
    if !s.ends_with(')') {
        return Err(format!("{s:?} does not end with ')'"));
    }
    let name = s[..open].trim().to_string();
    let inner = &s[open + 1..s.len() - 1];
    let mut args = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let mut pieces = Vec::new();
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                pieces.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&inner[start..]);
    for p in pieces.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some((k, v)) if !k.contains('(') => {
                args.push((Some(k.trim().to_string()), parse_expr(v)?))
            }
            _ => args.push((None, parse_expr(p)?)),
        }
    }
    Ok(Expr::Call(name, args))
}

fn int(e: &Expr) -> Result<i64, String> {
    match e {
        Expr::Int(n) => Ok(*n),
        other => Err(format!("expected a number, found {other:?}")),
    }
}

fn arg<'a>(args: &'a [(Option<String>, Expr)], pos: usize, kw: &str) -> Option<&'a Expr> {
    args.iter()
        .find(|(k, _)| k.as_deref() == Some(kw))
        .map(|(_, e)| e)
        .or_else(|| {
            args.iter()
                .filter(|(k, _)| k.is_none())
                .nth(pos)
                .map(|(_, e)| e)
        })
}

fn trigger(e: &Expr) -> Result<Trigger, String> {
    let Expr::Call(name, args) = e else {
        return Err(format!("expected a trigger, found {e:?}"));
    };
    let sub = |pos: usize, kw: &str| -> Result<Option<Box<Trigger>>, String> {
        arg(args, pos, kw)
            .map(|e| trigger(e).map(Box::new))
            .transpose()
    };
    let all = || -> Result<Vec<Trigger>, String> { args.iter().map(|(_, e)| trigger(e)).collect() };
    Ok(match name.as_str() {
        "Default" | "DefaultTrigger" => Trigger::Default,
        "Always" => Trigger::Always,
        "Never" | "_Never" => Trigger::Never,
        "AfterCount" => Trigger::AfterCount(int(
            arg(args, 0, "count").ok_or("AfterCount needs a count")?
        )? as u64),
        "AfterProcessingTime" => Trigger::AfterProcessingTime(vec![TimeTransform::Delay(
            arg(args, 0, "delay").map(int).transpose()?.unwrap_or(0),
        )]),
        "AfterWatermark" => Trigger::AfterWatermark {
            early: sub(usize::MAX, "early")?,
            late: sub(usize::MAX, "late")?,
        },
        "AfterAny" => Trigger::AfterAny(all()?),
        "AfterAll" => Trigger::AfterAll(all()?),
        "AfterEach" => Trigger::AfterEach(all()?),
        "Repeatedly" => {
            Trigger::Repeatedly(sub(0, "underlying")?.ok_or("Repeatedly needs a trigger")?)
        }
        "OrFinally" => Trigger::OrFinally {
            main: sub(0, "main")?.ok_or("OrFinally needs two triggers")?,
            finally: sub(1, "finally")?.ok_or("OrFinally needs two triggers")?,
        },
        other => return Err(format!("unknown trigger {other}")),
    })
}

fn window_fn(e: &Expr) -> Result<WindowFn, String> {
    let Expr::Call(name, args) = e else {
        return Err(format!("expected a window function, found {e:?}"));
    };
    let n = |pos: usize, kw: &str| arg(args, pos, kw).map(int).transpose();
    Ok(match name.as_str() {
        "GlobalWindows" => WindowFn::Global,
        // A Python WindowFn that changes output times only for the
        // OUTPUT_AT_EARLIEST_TRANSFORMED combiner (refused below).
        "FixedWindows" | "CustomTimestampingFixedWindowsWindowFn" => WindowFn::Fixed {
            size: n(0, "size")?.ok_or("FixedWindows needs a size")?,
            offset: n(1, "offset")?.unwrap_or(0),
        },
        "SlidingWindows" => WindowFn::Sliding {
            size: n(0, "size")?.ok_or("SlidingWindows needs a size")?,
            period: n(1, "period")?.ok_or("SlidingWindows needs a period")?,
            offset: n(2, "offset")?.unwrap_or(0),
        },
        "Sessions" => WindowFn::Sessions {
            gap: n(0, "gap_size")?.ok_or("Sessions needs a gap")?,
        },
        other => return Err(format!("unknown window function {other}")),
    })
}

/// What a transcript says of one pane.
fn describe(p: &Pane<i64>) -> Vec<(&'static str, Y)> {
    let mut values = p.values.clone();
    values.sort();
    vec![
        (
            "window",
            Y::Sequence(vec![p.window.start.into(), p.window.max_timestamp().into()]),
        ),
        (
            "values",
            Y::Sequence(values.into_iter().map(Y::from).collect()),
        ),
        ("timestamp", p.timestamp.into()),
        ("index", p.info.index.into()),
        ("nonspeculative_index", p.info.nonspeculative_index.into()),
        ("early", (p.info.timing == Timing::Early).into()),
        ("late", (p.info.timing == Timing::Late).into()),
        ("final", p.info.is_last.into()),
    ]
}

fn matches(pane: &[(&'static str, Y)], expected: &serde_yaml::Mapping) -> bool {
    pane.iter()
        .all(|(k, v)| expected.get(*k).is_none_or(|want| want == v))
}

enum Outcome {
    Passed,
    NotApplicable(String),
}

/// Run one transcript; Err is the failure, as Beam's runner words it.
fn run(spec: &Y) -> Result<Outcome, String> {
    let s = |k: &str| spec.get(k).and_then(Y::as_str);
    let combiner = match s("timestamp_combiner").unwrap_or("OUTPUT_AT_EOW").to_uppercase().as_str() {
        "OUTPUT_AT_EOW" => TimestampCombiner::EndOfWindow,
        "OUTPUT_AT_EARLIEST" => TimestampCombiner::Earliest,
        "OUTPUT_AT_LATEST" => TimestampCombiner::Latest,
        other => {
            return Ok(Outcome::NotApplicable(format!(
                "timestamp combiner {other}: a Python WindowFn's output-time hook, which Beam's portable model does not carry"
            )))
        }
    };
    let windowing = Windowing {
        window_fn: window_fn(&parse_expr(s("window_fn").unwrap_or("GlobalWindows"))?)?,
        trigger: trigger(&parse_expr(s("trigger_fn").unwrap_or("Default"))?)?,
        accumulating: s("accumulation_mode")
            .unwrap_or("ACCUMULATING")
            .eq_ignore_ascii_case("accumulating"),
        allowed_lateness: spec
            .get("allowed_lateness")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .unwrap_or(0),
        timestamp_combiner: combiner,
    };
    windowing.trigger.check()?;
    let mut driver: PaneDriver<i64> = PaneDriver::new(windowing.clone());
    let mut watermark = wasmbeam_engine::window::MIN_TIMESTAMP;
    let mut output: Vec<Vec<(&'static str, Y)>> = Vec::new();
    let actions = spec
        .get("transcript")
        .and_then(Y::as_sequence)
        .ok_or("a transcript needs a `transcript` list")?;
    let mut panes = Vec::new();
    for action in actions {
        let (name, params) = action
            .as_mapping()
            .and_then(|m| m.iter().next())
            .ok_or_else(|| format!("bad action {action:?}"))?;
        let name = name.as_str().unwrap_or("");
        if name != "expect" && !output.is_empty() {
            return Err(format!("Unexpected output: {output:?} before {name}"));
        }
        match name {
            "input" => {
                let mut elements = Vec::new();
                for t in params.as_sequence().ok_or("input takes a list")? {
                    let t = t.as_i64().ok_or("input elements are integers")?;
                    let mut ws: Vec<Window> = Vec::new();
                    windowing.window_fn.assign(t, &mut ws);
                    elements.extend(ws.into_iter().map(|w| (t, t, w)));
                }
                let times = Times {
                    watermark,
                    processing: 0,
                };
                driver.add(elements, times, &mut panes);
                driver.advance(times, &mut panes);
            }
            "watermark" => {
                watermark = params.as_i64().ok_or("a watermark is an integer")?;
                driver.advance(
                    Times {
                        watermark,
                        processing: 0,
                    },
                    &mut panes,
                );
            }
            "expect" => {
                for want in params.as_sequence().ok_or("expect takes a list")? {
                    let want = want.as_mapping().ok_or("an expected pane is a mapping")?;
                    match output.iter().position(|p| matches(p, want)) {
                        Some(i) => {
                            output.remove(i);
                        }
                        None => return Err(format!("Unmatched output {want:?} in {output:?}")),
                    }
                }
            }
            "state" => {} // Beam's runner does not check it either.
            other => return Err(format!("Unknown action: {other}")),
        }
        output.extend(panes.drain(..).map(|p| describe(&p)));
    }
    if !output.is_empty() {
        return Err(format!("Unexpected output: {output:?}"));
    }
    Ok(Outcome::Passed)
}

#[test]
fn beams_trigger_transcripts() {
    let path = yaml_path();
    // One entry writes `values:[...]` inside a flow mapping, which PyYAML
    // reads and libyaml (serde_yaml) refuses; give it the space.
    let text = std::fs::read_to_string(&path)
        .expect("readable transcripts")
        .replace("values:[", "values: [");
    let (mut passed, mut total, mut not_applicable) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let spec = <Y as serde::Deserialize>::deserialize(doc).expect("a YAML document");
        let name = spec
            .get("name")
            .and_then(Y::as_str)
            .unwrap_or("unnamed")
            .to_string();
        let error = spec.get("error").and_then(Y::as_str).map(str::to_string);
        total += 1;
        match (run(&spec), error) {
            (Ok(Outcome::NotApplicable(why)), _) => not_applicable.push(format!("{name}: {why}")),
            (Ok(Outcome::Passed), None) => passed += 1,
            (Err(e), Some(want)) if e.contains(&want) => passed += 1,
            (Ok(_), Some(want)) => {
                failures.push(format!("{name}: passed, but must fail with {want:?}"))
            }
            (Err(e), _) => failures.push(format!("{name}: {e}")),
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    let summary = format!(
        "triggers: {passed}/{} of Beam's trigger transcripts passed ({} not applicable: {})",
        total - not_applicable.len(),
        not_applicable.len(),
        not_applicable.join("; ")
    );
    println!("{summary}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/conformance");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("triggers.txt"), format!("{summary}\n"));
    assert!(
        total >= 15,
        "only {total} transcripts in {}",
        path.display()
    );
    assert!(
        failures.is_empty(),
        "{} transcripts failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Checks of the trigger machinery beyond the transcripts: processing-time
/// triggers, composite triggers and garbage collection.
#[test]
fn processing_time_early_firings_and_garbage_collection() {
    let windowing = Windowing {
        window_fn: WindowFn::Fixed {
            size: 60,
            offset: 0,
        },
        trigger: Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterProcessingTime(vec![
                TimeTransform::Delay(10),
            ]))),
            late: Some(Box::new(Trigger::AfterCount(1))),
        },
        accumulating: true,
        allowed_lateness: 100,
        timestamp_combiner: TimestampCombiner::EndOfWindow,
    };
    let mut d: PaneDriver<i64> = PaneDriver::new(windowing);
    let w = Window { start: 0, end: 60 };
    let mut out = Vec::new();
    let at = |watermark, processing| Times {
        watermark,
        processing,
    };
    d.add([(1, 1, w), (2, 2, w)], at(0, 1_000), &mut out);
    d.advance(at(0, 1_009), &mut out);
    assert!(out.is_empty(), "the early deadline is 1010");
    assert_eq!(d.next_processing_timer(), Some(1_010));
    d.advance(at(0, 1_010), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].info.timing, out[0].values.clone()),
        (Timing::Early, vec![1, 2])
    );
    out.clear();
    // On time at the end of the window; then a late element fires at once.
    d.advance(at(60, 1_020), &mut out);
    assert_eq!(
        (out[0].info.timing, out[0].info.index, out[0].info.is_last),
        (Timing::OnTime, 1, false)
    );
    out.clear();
    d.add([(30, 30, w)], at(70, 1_030), &mut out);
    assert_eq!(
        (out[0].info.timing, out[0].values.clone()),
        (Timing::Late, vec![1, 2, 30])
    );
    out.clear();
    // Past the allowed lateness: late data is dropped and counted, and the
    // window's state is gone.
    d.advance(at(200, 1_040), &mut out);
    assert!(out.is_empty(), "nothing new since the last pane");
    assert!(d.is_empty());
    d.add([(5, 5, w)], at(200, 1_050), &mut out);
    assert!(out.is_empty());
    assert_eq!(d.dropped(), 1);
}

#[test]
fn garbage_collection_fires_what_a_count_trigger_left() {
    let windowing = Windowing {
        window_fn: WindowFn::Fixed {
            size: 10,
            offset: 0,
        },
        trigger: Trigger::Repeatedly(Box::new(Trigger::AfterCount(2))),
        accumulating: false,
        allowed_lateness: 0,
        timestamp_combiner: TimestampCombiner::Earliest,
    };
    let mut d: PaneDriver<i64> = PaneDriver::new(windowing);
    let w = Window { start: 0, end: 10 };
    let mut out = Vec::new();
    let at = |watermark| Times {
        watermark,
        processing: 0,
    };
    d.add([(2, 2, w)], at(0), &mut out);
    assert_eq!(
        d.hold(),
        Some(2),
        "the earliest element holds the watermark"
    );
    d.add([(1, 1, w)], at(0), &mut out);
    assert_eq!(out.len(), 1, "a pane of two");
    assert_eq!((out[0].values.clone(), out[0].timestamp), (vec![2, 1], 1));
    d.add([(3, 3, w)], at(0), &mut out);
    assert_eq!(
        d.hold(),
        Some(3),
        "the pane released the hold; the third element holds"
    );
    out.clear();
    d.advance(at(i64::MAX / 2), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].values, vec![3]);
    assert!(out[0].info.is_last);
    assert!(d.is_empty() && d.hold().is_none());
}

/// A global window with a lateness of days is still collected when the
/// input ends (its garbage-collection time is capped at the end of the
/// global window), so what a Never trigger buffered comes out.
#[test]
fn garbage_collection_is_capped_at_the_end_of_the_global_window() {
    let windowing = Windowing {
        window_fn: WindowFn::Global,
        trigger: Trigger::Never,
        accumulating: false,
        allowed_lateness: 2 * 86_400_000,
        timestamp_combiner: TimestampCombiner::EndOfWindow,
    };
    let mut d: PaneDriver<i64> = PaneDriver::new(windowing);
    let mut out = Vec::new();
    d.add(
        [(1, 1, Window::GLOBAL)],
        Times {
            watermark: 0,
            processing: 0,
        },
        &mut out,
    );
    assert!(out.is_empty());
    let end = wasmbeam_engine::window::MAX_TIMESTAMP;
    d.advance(
        Times {
            watermark: end,
            processing: 0,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].values, vec![1]);
    assert!(out[0].info.is_last);
    assert!(d.is_empty());
}

/// Processing-time deadlines are handed over once: once the on-time pane
/// ends the early firings, no deadline is left to wake the driver.
#[test]
fn processing_time_deadlines_do_not_outlive_their_firings() {
    let windowing = Windowing {
        window_fn: WindowFn::Fixed {
            size: 10,
            offset: 0,
        },
        trigger: Trigger::AfterWatermark {
            early: Some(Box::new(Trigger::AfterProcessingTime(vec![
                TimeTransform::Delay(60_000),
            ]))),
            late: Some(Box::new(Trigger::AfterCount(1))),
        },
        accumulating: true,
        allowed_lateness: 1_000_000,
        timestamp_combiner: TimestampCombiner::EndOfWindow,
    };
    let mut d: PaneDriver<i64> = PaneDriver::new(windowing);
    let w = Window { start: 0, end: 10 };
    let mut out = Vec::new();
    d.add(
        [(1, 1, w)],
        Times {
            watermark: 0,
            processing: 0,
        },
        &mut out,
    );
    assert_eq!(d.next_processing_timer(), Some(60_000));
    d.advance(
        Times {
            watermark: 20,
            processing: 1,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1, "the on-time pane");
    assert_eq!(
        d.next_processing_timer(),
        None,
        "the early deadline went with the early phase"
    );

    // A deadline that passes without a firing is handed over once.
    let windowing = Windowing {
        window_fn: WindowFn::Global,
        trigger: Trigger::Repeatedly(Box::new(Trigger::AfterAll(vec![
            Trigger::AfterProcessingTime(vec![TimeTransform::Delay(1_000)]),
            Trigger::AfterCount(2),
        ]))),
        accumulating: false,
        allowed_lateness: 0,
        timestamp_combiner: TimestampCombiner::EndOfWindow,
    };
    let mut d: PaneDriver<i64> = PaneDriver::new(windowing);
    let mut out = Vec::new();
    d.add(
        [(1, 1, Window::GLOBAL)],
        Times {
            watermark: 0,
            processing: 0,
        },
        &mut out,
    );
    d.advance(
        Times {
            watermark: 0,
            processing: 1_000,
        },
        &mut out,
    );
    assert!(out.is_empty(), "one element is not two");
    assert_eq!(
        d.next_processing_timer(),
        None,
        "the passed deadline is not due again"
    );
    d.add(
        [(2, 2, Window::GLOBAL)],
        Times {
            watermark: 0,
            processing: 1_500,
        },
        &mut out,
    );
    assert_eq!(
        out.len(),
        1,
        "the second element finds the deadline passed and fires"
    );
}

/// A window opened after the watermark passed its end gets no on-time
/// pane: what garbage collection emits for it is late.
#[test]
fn a_window_opened_late_fires_late_at_garbage_collection() {
    let windowing = Windowing {
        window_fn: WindowFn::Fixed {
            size: 10,
            offset: 0,
        },
        trigger: Trigger::Repeatedly(Box::new(Trigger::AfterCount(5))),
        accumulating: false,
        allowed_lateness: 100,
        timestamp_combiner: TimestampCombiner::EndOfWindow,
    };
    let mut d: PaneDriver<i64> = PaneDriver::new(windowing);
    let w = Window { start: 0, end: 10 };
    let mut out = Vec::new();
    d.add(
        [(1, 1, w)],
        Times {
            watermark: 50,
            processing: 0,
        },
        &mut out,
    );
    d.advance(
        Times {
            watermark: 200,
            processing: 0,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].info.timing, Timing::Late);
    assert!(out[0].info.is_last);
}
