//! The streaming half of a windowing strategy, decoded once: the trigger
//! tree, accumulation mode, allowed lateness and output-time policy
//! ([`Triggering`]), and a TestStream's scripted events
//! ([`TestStreamEvent`]).
//!
//! These stay logical (no engine types): the runner maps them to the
//! engine's trigger state machines.

use prost::Message;
use wasmbeam_proto::pipeline::v1::{
    accumulation_mode, output_time, test_stream_payload, timestamp_transform, trigger, Components,
    TestStreamPayload, Trigger as TriggerProto, WindowingStrategy,
};

/// A trigger tree, as Beam's `Trigger` proto declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Fire when the watermark passes the end of the window, then on every
    /// late element.
    Default,
    /// Fire on every element.
    Always,
    /// Never fire (only garbage collection emits).
    Never,
    /// Fire after this many elements.
    ElementCount(u64),
    /// Fire after a processing-time deadline set by the first element.
    AfterProcessingTime(Vec<TimeTransform>),
    /// Fire when the watermark passes the end of the window, with early and
    /// late firings.
    AfterEndOfWindow {
        /// Before the end of the window.
        early: Option<Box<Trigger>>,
        /// After it.
        late: Option<Box<Trigger>>,
    },
    /// Fire when all subtriggers have fired.
    AfterAll(Vec<Trigger>),
    /// Fire when any subtrigger fires.
    AfterAny(Vec<Trigger>),
    /// The subtriggers one after another.
    AfterEach(Vec<Trigger>),
    /// Repeat the subtrigger forever.
    Repeat(Box<Trigger>),
    /// `main` until `finally` fires.
    OrFinally {
        /// Produces panes.
        main: Box<Trigger>,
        /// Ends them.
        finally: Box<Trigger>,
    },
}

/// A step of an AfterProcessingTime deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTransform {
    /// Delay by this many ms.
    Delay(i64),
    /// Round up to `offset + k * period` (ms).
    AlignTo {
        /// The period (positive).
        period: i64,
        /// The offset.
        offset: i64,
    },
}

/// When output timestamps are taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputTime {
    /// The end of the window.
    EndOfWindow,
    /// The earliest element of the pane.
    Earliest,
    /// The latest element of the pane.
    Latest,
}

/// A GroupByKey's trigger, accumulation mode, allowed lateness and output
/// time, from its input's windowing strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggering {
    /// When panes fire.
    pub trigger: Trigger,
    /// Accumulating (true) or discarding panes.
    pub accumulating: bool,
    /// Allowed lateness (ms).
    pub allowed_lateness_ms: i64,
    /// Output timestamps.
    pub output_time: OutputTime,
}

impl Default for Triggering {
    fn default() -> Self {
        Triggering {
            trigger: Trigger::Default,
            accumulating: false,
            allowed_lateness_ms: 0,
            output_time: OutputTime::EndOfWindow,
        }
    }
}

impl Triggering {
    /// Decode a windowing strategy's triggering fields.
    pub fn decode(ws: &WindowingStrategy) -> Result<Triggering, String> {
        let accumulating = match accumulation_mode::Enum::try_from(ws.accumulation_mode) {
            Ok(accumulation_mode::Enum::Accumulating) => true,
            Ok(accumulation_mode::Enum::Discarding | accumulation_mode::Enum::Unspecified) => false,
            Ok(accumulation_mode::Enum::Retracting) => {
                return Err("the RETRACTING accumulation mode is not supported (DISCARDING and ACCUMULATING are)".into())
            }
            Err(_) => return Err(format!("unknown accumulation mode {}", ws.accumulation_mode)),
        };
        let output_time = match output_time::Enum::try_from(ws.output_time) {
            Ok(output_time::Enum::EarliestInPane) => OutputTime::Earliest,
            Ok(output_time::Enum::LatestInPane) => OutputTime::Latest,
            Ok(_) => OutputTime::EndOfWindow,
            Err(_) => return Err(format!("unknown output time {}", ws.output_time)),
        };
        let trigger = match &ws.trigger {
            None => Trigger::Default,
            Some(t) => decode_trigger(t)?,
        };
        Ok(Triggering {
            trigger,
            accumulating,
            allowed_lateness_ms: ws.allowed_lateness.max(0),
            output_time,
        })
    }

    /// The triggering of PCollection `pc_id`'s windowing strategy.
    pub fn of_pcollection(c: &Components, pc_id: &str) -> Result<Triggering, String> {
        let ws = c
            .pcollections
            .get(pc_id)
            .and_then(|pc| c.windowing_strategies.get(&pc.windowing_strategy_id))
            .ok_or_else(|| {
                format!("the windowing strategy of PCollection {pc_id:?} does not exist")
            })?;
        Triggering::decode(ws)
            .map_err(|e| format!("windowing strategy of PCollection {pc_id:?}: {e}"))
    }
}

fn decode_trigger(t: &TriggerProto) -> Result<Trigger, String> {
    use trigger::Trigger as T;
    let subs = |ts: &[TriggerProto]| -> Result<Vec<Trigger>, String> {
        if ts.is_empty() {
            return Err("a composite trigger has no subtriggers".into());
        }
        ts.iter().map(decode_trigger).collect()
    };
    let boxed = |t: Option<&TriggerProto>, what: &str| -> Result<Box<Trigger>, String> {
        t.map(decode_trigger)
            .transpose()?
            .map(Box::new)
            .ok_or_else(|| format!("the {what} trigger is missing"))
    };
    Ok(match &t.trigger {
        None | Some(T::Default(_)) => Trigger::Default,
        Some(T::Always(_)) => Trigger::Always,
        Some(T::Never(_)) => Trigger::Never,
        Some(T::ElementCount(c)) if c.element_count >= 1 => {
            Trigger::ElementCount(c.element_count as u64)
        }
        Some(T::ElementCount(c)) => {
            return Err(format!(
                "an element-count trigger needs a count of at least 1, not {}",
                c.element_count
            ))
        }
        Some(T::AfterProcessingTime(p)) => {
            let mut steps = Vec::new();
            for tt in &p.timestamp_transforms {
                match &tt.timestamp_transform {
                    Some(timestamp_transform::TimestampTransform::Delay(d)) => {
                        steps.push(TimeTransform::Delay(d.delay_millis))
                    }
                    Some(timestamp_transform::TimestampTransform::AlignTo(a)) => {
                        steps.push(TimeTransform::AlignTo {
                            period: a.period,
                            offset: a.offset,
                        })
                    }
                    None => {
                        return Err(
                            "a processing-time trigger has an empty timestamp transform".into()
                        )
                    }
                }
            }
            Trigger::AfterProcessingTime(steps)
        }
        // A downstream continuation of processing-time triggers: fire as
        // soon as processing time has moved on.
        Some(T::AfterSynchronizedProcessingTime(_)) => Trigger::AfterProcessingTime(Vec::new()),
        Some(T::AfterEndOfWindow(a)) => Trigger::AfterEndOfWindow {
            early: a
                .early_firings
                .as_deref()
                .map(decode_trigger)
                .transpose()?
                .map(Box::new),
            late: a
                .late_firings
                .as_deref()
                .map(decode_trigger)
                .transpose()?
                .map(Box::new),
        },
        Some(T::AfterAll(a)) => Trigger::AfterAll(subs(&a.subtriggers)?),
        Some(T::AfterAny(a)) => Trigger::AfterAny(subs(&a.subtriggers)?),
        Some(T::AfterEach(a)) => Trigger::AfterEach(subs(&a.subtriggers)?),
        Some(T::Repeat(r)) => Trigger::Repeat(boxed(r.subtrigger.as_deref(), "repeated")?),
        Some(T::OrFinally(o)) => Trigger::OrFinally {
            main: boxed(o.main.as_deref(), "main")?,
            finally: boxed(o.finally.as_deref(), "finally")?,
        },
    })
}

/// One event of a TestStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestStreamEvent {
    /// Elements (encoded in the TestStream's coder, outer context) with
    /// their timestamps (ms), for the output named by `tag` ("" = the
    /// only one).
    Elements {
        /// The output tag.
        tag: String,
        /// (encoded element, timestamp ms).
        elements: Vec<(Vec<u8>, i64)>,
    },
    /// The watermark of output `tag` advances to this time (ms).
    Watermark {
        /// The output tag.
        tag: String,
        /// The new watermark (ms).
        to: i64,
    },
    /// Processing time advances by this much (ms).
    ProcessingTime(i64),
}

/// Decode a TestStream payload's events.
pub fn decode_test_stream(payload: &[u8]) -> Result<Vec<TestStreamEvent>, String> {
    use test_stream_payload::event::Event;
    let p = TestStreamPayload::decode(payload)
        .map_err(|e| format!("TestStreamPayload does not decode: {e}"))?;
    if p.events.is_empty() && p.endpoint.as_ref().is_some_and(|e| !e.url.is_empty()) {
        return Err("a TestStream served from an endpoint (interactive Beam) is not supported; give its events in the payload".into());
    }
    p.events
        .into_iter()
        .enumerate()
        .map(|(i, e)| match e.event {
            Some(Event::ElementEvent(a)) => Ok(TestStreamEvent::Elements {
                tag: a.tag,
                elements: a
                    .elements
                    .into_iter()
                    .map(|t| (t.encoded_element, t.timestamp))
                    .collect(),
            }),
            Some(Event::WatermarkEvent(w)) => Ok(TestStreamEvent::Watermark {
                tag: w.tag,
                to: w.new_watermark,
            }),
            Some(Event::ProcessingTimeEvent(p)) => {
                Ok(TestStreamEvent::ProcessingTime(p.advance_duration))
            }
            None => Err(format!("TestStream event {i} is empty")),
        })
        .collect()
}
