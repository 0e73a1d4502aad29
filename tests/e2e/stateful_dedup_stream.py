"""A stateful WASM DoFn in a streaming Beam Python pipeline: examples/dedup's
component (a value cell, a runner-side count and an event-time TTL timer)
on a TestStream, submitted to a runner, against the same dedup written as
a Beam Python stateful DoFn on Beam's own DirectRunner. What each emits
(value, timestamp, window, output) must be the same.

The stream: ids a and b arrive, the watermark passes a's TTL (so a's
timer fires and reports its duplicates), a arrives again (new once more)
while b, whose timer has not fired yet, is still a duplicate.

usage: stateful_dedup_stream.py ENDPOINT COMPONENT     prints OK, or the differences
"""
import json
import os
import sys
import tempfile

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import StrUtf8Coder, VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.combiners import CountCombineFn
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
    CombiningValueStateSpec,
    ReadModifyWriteStateSpec,
    TimerSpec,
    on_timer,
)
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

TTL_MS = 60000


def at(ms, line):
    return TimestampedValue(line, Timestamp(micros=ms * 1000))


def stream():
    return (TestStream(coder=StrUtf8Coder())
            .advance_watermark_to(0)
            .add_elements([at(1000, "a,1000"), at(2000, "b,2000"), at(5000, "a,5000")])
            .advance_watermark_to(30)
            .add_elements([at(40000, "a,40000"), at(45000, "b,45000")])
            .advance_watermark_to(61.5)
            .add_elements([at(70000, "a,70000"), at(61600, "b,61600")])
            .advance_watermark_to(200)
            .advance_watermark_to_infinity())


class PyDedup(beam.DoFn):
    """The reference: what examples/dedup/udf does, in Beam Python."""
    SEEN = ReadModifyWriteStateSpec("seen", VarIntCoder())
    DROPPED = CombiningValueStateSpec("dropped", VarIntCoder(), CountCombineFn())
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def process(self, kv, ts=beam.DoFn.TimestampParam,
                seen=beam.DoFn.StateParam(SEEN),
                dropped=beam.DoFn.StateParam(DROPPED),
                expire=beam.DoFn.TimerParam(EXPIRE)):
        if seen.read() is None:
            seen.write(ts.micros // 1000)
            expire.set(ts + Duration(micros=TTL_MS * 1000))
            yield kv[0]
        else:
            dropped.add(1)

    @on_timer(EXPIRE)
    def expired(self, key=beam.DoFn.KeyParam,
                seen=beam.DoFn.StateParam(SEEN),
                dropped=beam.DoFn.StateParam(DROPPED)):
        n = dropped.read()
        if n:
            yield pvalue.TaggedOutput("dups", f"{key},{n}")
        seen.clear()
        dropped.clear()


class Record(beam.DoFn):
    """Appends one JSON line per element to a file of its own process."""

    def __init__(self, path, output):
        self.path = path
        self.output = output

    def process(self, v, w=beam.DoFn.WindowParam, ts=beam.DoFn.TimestampParam):
        line = {"output": self.output, "value": v,
                "timestamp": ts.micros // 1000,
                "window": "global" if not hasattr(w, "start")
                else [w.start.micros // 1000, w.end.micros // 1000]}
        with open(f"{self.path}.{os.getpid()}", "a") as f:
            f.write(json.dumps(line, sort_keys=True) + "\n")


def build(p, dedup, path):
    keyed = (p | stream()
             | beam.Map(lambda l: (l.split(",")[0], l)).with_output_types(
                 beam.typehints.KV[str, str]))
    out = keyed | dedup
    out["main"] | "RecordFirst" >> beam.ParDo(Record(path, "first"))
    out["dups"] | "RecordDups" >> beam.ParDo(Record(path, "dups"))


def records(d):
    lines = []
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            lines.extend(json.loads(l) for l in f if l.strip())
    return sorted(lines, key=lambda r: json.dumps(r, sort_keys=True))


def main():
    endpoint, component = sys.argv[1], sys.argv[2]
    import wasmbeam
    with tempfile.TemporaryDirectory() as ref, tempfile.TemporaryDirectory() as got:
        opts = PipelineOptions(["--runner=DirectRunner", "--streaming"])
        with beam.Pipeline(options=opts) as p:
            build(p, beam.ParDo(PyDedup()).with_outputs("dups", main="main"),
                  os.path.join(ref, "r"))
        opts = PipelineOptions([
            "--runner=PortableRunner", f"--job_endpoint={endpoint}",
            "--environment_type=LOOPBACK", "--streaming"])
        with beam.Pipeline(options=opts) as p:
            build(p, wasmbeam.WasmParDo(component, config=f"dedup:{TTL_MS}",
                                        output_type=str, outputs={"dups": str}),
                  os.path.join(got, "r"))
        want, have = records(ref), records(got)
        if not want:
            print("the DirectRunner produced nothing")
            sys.exit(1)
        if want != have:
            print("DirectRunner:")
            for r in want:
                print("  ", r)
            print("runner:")
            for r in have:
                print("  ", r)
            sys.exit(1)
        print("OK", len(want), "records")


if __name__ == "__main__":
    main()
