//! The streaming half of translation: the plan's trigger trees and
//! triggering as the engine's, and TestStream events routed to the
//! engine's TestStream source (whose outputs take the payload's coder).

use wasmbeam_proto::pipeline::v1 as pb;

/// The engine's triggering for the plan's (the trigger tree, checked).
pub fn triggering(
    t: &wasmbeam_plan::Triggering,
) -> Result<wasmbeam_engine::panes::Triggering, String> {
    use wasmbeam_engine::panes::{TimestampCombiner, Triggering};
    use wasmbeam_plan::triggering::OutputTime;
    let out = Triggering {
        trigger: trigger(&t.trigger),
        accumulating: t.accumulating,
        allowed_lateness: t.allowed_lateness_ms,
        timestamp_combiner: match t.output_time {
            OutputTime::EndOfWindow => TimestampCombiner::EndOfWindow,
            OutputTime::Earliest => TimestampCombiner::Earliest,
            OutputTime::Latest => TimestampCombiner::Latest,
        },
    };
    out.trigger.check().map(|()| out)
}

fn trigger(t: &wasmbeam_plan::triggering::Trigger) -> wasmbeam_engine::trigger::Trigger {
    use wasmbeam_engine::trigger::{TimeTransform as E, Trigger as T};
    use wasmbeam_plan::triggering::{TimeTransform, Trigger as P};
    let all = |ts: &[P]| ts.iter().map(trigger).collect();
    match t {
        P::Default => T::Default,
        P::Always => T::Always,
        P::Never => T::Never,
        P::ElementCount(n) => T::AfterCount(*n),
        P::AfterProcessingTime(steps) => T::AfterProcessingTime(
            steps
                .iter()
                .map(|s| match *s {
                    TimeTransform::Delay(d) => E::Delay(d),
                    TimeTransform::AlignTo { period, offset } => E::AlignTo { period, offset },
                })
                .collect(),
        ),
        P::AfterEndOfWindow { early, late } => T::AfterWatermark {
            early: early.as_deref().map(|e| Box::new(trigger(e))),
            late: late.as_deref().map(|l| Box::new(trigger(l))),
        },
        P::AfterAll(ts) => T::AfterAll(all(ts)),
        P::AfterAny(ts) => T::AfterAny(all(ts)),
        P::AfterEach(ts) => T::AfterEach(all(ts)),
        P::Repeat(t) => T::Repeatedly(Box::new(trigger(t))),
        P::OrFinally { main, finally } => T::OrFinally {
            main: Box::new(trigger(main)),
            finally: Box::new(trigger(finally)),
        },
    }
}

/// A TestStream's events for the engine, routed to its outputs: `tags`
/// lists the output tags in output order (a single-output TestStream takes
/// every event, whatever its tag). `None` names a tag it does not have.
pub(crate) fn stream_events(
    events: &[wasmbeam_plan::TestStreamEvent],
    tags: &[&str],
) -> Result<Vec<wasmbeam_engine::StreamEvent>, String> {
    use wasmbeam_engine::StreamEvent;
    use wasmbeam_plan::TestStreamEvent as E;
    let output = |tag: &str| -> Result<usize, String> {
        if tags.len() == 1 {
            return Ok(0);
        }
        tags.iter()
            .position(|t| *t == tag)
            .ok_or_else(|| format!("a TestStream event is for output {tag:?}, which the transform does not have (it has {tags:?})"))
    };
    events
        .iter()
        .map(|e| {
            Ok(match e {
                E::Elements { tag, elements } => {
                    let mut b = wasmbeam_engine::Batch::default();
                    for (v, ts) in elements {
                        b.push(
                            v,
                            *ts,
                            [wasmbeam_engine::Window::GLOBAL],
                            wasmbeam_engine::PANE_NO_FIRING,
                        );
                    }
                    StreamEvent::ElementsTo(output(tag)?, b)
                }
                E::Watermark { tag, to } if tags.len() == 1 || tag.is_empty() => {
                    StreamEvent::Watermark(*to)
                }
                E::Watermark { tag, to } => StreamEvent::WatermarkOf(output(tag)?, *to),
                E::ProcessingTime(d) => StreamEvent::ProcessingTime(*d),
            })
        })
        .collect()
}

/// `pipeline` with each TestStream's outputs typed by the coder its events
/// are encoded in (Beam Python declares its own element coder on them), or
/// `None` when nothing changes.
pub(crate) fn retype_test_streams(pipeline: &pb::Pipeline) -> Option<pb::Pipeline> {
    use wasmbeam_proto::prost::Message;
    use wasmbeam_proto::urns::standard_p_transforms::primitives;
    let c = pipeline.components.as_ref()?;
    let mut changes: Vec<(String, String)> = Vec::new();
    for t in c.transforms.values() {
        let Some(spec) = t.spec.as_ref().filter(|s| s.urn == primitives::TEST_STREAM) else {
            continue;
        };
        let Ok(p) = pb::TestStreamPayload::decode(spec.payload.as_slice()) else {
            continue;
        };
        if p.coder_id.is_empty() || !c.coders.contains_key(&p.coder_id) {
            continue;
        }
        for out in t.outputs.values() {
            if c.pcollections
                .get(out)
                .is_some_and(|pc| pc.coder_id != p.coder_id)
            {
                changes.push((out.clone(), p.coder_id.clone()));
            }
        }
    }
    if changes.is_empty() {
        return None;
    }
    let mut p = pipeline.clone();
    let comps = p.components.as_mut()?;
    for (pc, coder) in changes {
        if let Some(x) = comps.pcollections.get_mut(&pc) {
            x.coder_id = coder;
        }
    }
    Some(p)
}
