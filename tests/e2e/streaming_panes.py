"""Beam Python streaming pipelines built on TestStream, run on a runner
and on Beam's own DirectRunner; the panes each produces (values, window,
timestamp, and pane info: first, last, timing, index, non-speculative
index) must be the same. No wasmbeam imports.

The cases:
  early_late    fixed windows, AfterWatermark(early=AfterCount(2),
                late=AfterCount(1)), accumulating, allowed lateness 100 s,
                and an element past the lateness (dropped);
  discarding    the same trigger in discarding mode, no lateness;
  sessions      merged sessions with an early count trigger;
  bag_timer     bag state flushed by an event-time timer at the end of
                each element's window.

usage: streaming_panes.py ENDPOINT [CASE ...]     prints OK, or the differences
"""
import json
import os
import sys
import tempfile

import apache_beam as beam
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms import trigger, window
from apache_beam.transforms.userstate import (
    BagStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp
from apache_beam.transforms.window import TimestampedValue


class Record(beam.DoFn):
    """Appends one JSON line per element to a file of its own process."""

    def __init__(self, path):
        self.path = path

    def process(self, kv, w=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam,
                pane=beam.DoFn.PaneInfoParam):
        key, values = kv
        if not isinstance(values, (list, tuple)):
            values = list(values) if hasattr(values, "__iter__") else [values]
        line = {
            "key": key,
            "values": sorted(values),
            "window": [int(w.start.micros // 1000), int(w.end.micros // 1000)]
            if hasattr(w, "start") else "global",
            "timestamp": int(ts.micros // 1000),
            "first": pane.is_first,
            "last": pane.is_last,
            "timing": int(pane.timing),
            "index": pane.index,
            "nonspeculative_index": pane.nonspeculative_index,
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")


def at(t, x):
    return TimestampedValue(x, Timestamp(t))


def early_late(p):
    stream = (TestStream(coder=VarIntCoder())
              .advance_watermark_to(0)
              .add_elements([at(1, 1), at(2, 2)])
              .add_elements([at(3, 3)])
              .advance_watermark_to(20)
              .add_elements([at(5, 4)])
              .advance_watermark_to(300)
              .add_elements([at(6, 99)])
              .advance_watermark_to_infinity())
    return (p | stream
            | beam.Map(lambda x: ("k", x)).with_output_types(beam.typehints.KV[str, int])
            | beam.WindowInto(
                window.FixedWindows(10),
                trigger=trigger.AfterWatermark(early=trigger.AfterCount(2),
                                               late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=100)
            | beam.GroupByKey())


def discarding(p):
    stream = (TestStream(coder=VarIntCoder())
              .advance_watermark_to(0)
              .add_elements([at(1, 1), at(2, 2)])
              .add_elements([at(4, 4)])
              .add_elements([at(14, 14)])
              .add_elements([at(5, 5)])
              .advance_watermark_to(100)
              .advance_watermark_to_infinity())
    return (p | stream
            | beam.Map(lambda x: ("k", x)).with_output_types(beam.typehints.KV[str, int])
            | beam.WindowInto(
                window.FixedWindows(10),
                trigger=trigger.AfterWatermark(early=trigger.AfterCount(2)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING)
            | beam.GroupByKey())


def sessions(p):
    stream = (TestStream(coder=VarIntCoder())
              .advance_watermark_to(0)
              .add_elements([at(1, 1), at(2, 2)])
              .add_elements([at(3, 3)])
              .add_elements([at(30, 30)])
              .advance_watermark_to(100)
              .advance_watermark_to_infinity())
    return (p | stream
            | beam.Map(lambda x: ("k", x)).with_output_types(beam.typehints.KV[str, int])
            | beam.WindowInto(
                window.Sessions(10),
                trigger=trigger.AfterWatermark(early=trigger.AfterCount(2)),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING)
            | beam.GroupByKey())


class BagUntilWindowEnd(beam.DoFn):
    """Buffers values in a bag; a timer at the end of the element's window
    emits the key with everything buffered, then clears the bag."""
    BAG = BagStateSpec("bag", VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(self, kv, w=beam.DoFn.WindowParam, bag=beam.DoFn.StateParam(BAG),
                flush=beam.DoFn.TimerParam(FLUSH)):
        bag.add(kv[1])
        flush.set(w.max_timestamp())

    @on_timer(FLUSH)
    def flushed(self, key=beam.DoFn.KeyParam, bag=beam.DoFn.StateParam(BAG)):
        values = sorted(bag.read())
        bag.clear()
        yield (key, values)


def bag_timer(p):
    stream = (TestStream(coder=VarIntCoder())
              .advance_watermark_to(0)
              .add_elements([at(1, 1), at(2, 2)])
              .advance_watermark_to(5)
              .add_elements([at(7, 7), at(12, 12)])
              .advance_watermark_to(15)
              .add_elements([at(18, 18)])
              .advance_watermark_to_infinity())
    return (p | stream
            | beam.Map(lambda x: ("k", x)).with_output_types(beam.typehints.KV[str, int])
            | beam.WindowInto(window.FixedWindows(10))
            | beam.ParDo(BagUntilWindowEnd()))


CASES = {f.__name__: f for f in (early_late, discarding, sessions, bag_timer)}


# Elements each case drops as late (past its allowed lateness).
DROPPED = {"early_late": 1}


def run(case, args, path):
    """The case's panes, and the late elements the runner says it dropped."""
    options = PipelineOptions(args + ["--streaming"])
    p = beam.Pipeline(options=options)
    _ = CASES[case](p) | beam.ParDo(Record(path))
    result = p.run()
    result.wait_until_finish()
    from apache_beam.metrics.metric import MetricsFilter
    counters = result.metrics().query(
        MetricsFilter().with_name("droppedDueToLateness"))["counters"]
    dropped = sum(c.committed or 0 for c in counters)
    if not os.path.exists(path):
        return [], dropped
    with open(path) as f:
        return sorted(f.read().splitlines()), dropped


def main():
    endpoint = sys.argv[1]
    cases = sys.argv[2:] or list(CASES)
    bad = []
    with tempfile.TemporaryDirectory() as d:
        for case in cases:
            got, dropped = run(case, ["--runner=PortableRunner", "--job_endpoint=" + endpoint,
                                      "--environment_type=LOOPBACK"],
                               os.path.join(d, case + ".runner"))
            want, _ = run(case, ["--runner=DirectRunner"], os.path.join(d, case + ".direct"))
            if dropped != DROPPED.get(case, 0):
                bad.append("%s: the runner reports %d elements dropped as late, not %d" % (
                    case, dropped, DROPPED.get(case, 0)))
            if not want:
                bad.append("%s: the DirectRunner produced nothing" % case)
            elif got != want:
                bad.append("%s:\n  runner:       %s\n  DirectRunner: %s" % (
                    case, "\n                ".join(got), "\n                ".join(want)))
            else:
                print("%s: %d panes match, %d late elements dropped" % (case, len(got), dropped))
    if bad:
        print("\n".join(bad))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
