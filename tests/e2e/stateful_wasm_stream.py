"""Stateful WASM DoFns in streaming Beam Python pipelines: each case runs a
component on a TestStream, submitted to a runner, against the same DoFn
written as a Beam Python stateful DoFn on Beam's own DirectRunner. What
each emits (value, timestamp, window, output) must be the same.

The cases:
  dedup   examples/dedup (a value cell, a runner-side count, an event-time
          TTL timer). Ids a and b arrive, the watermark passes a's TTL (a's
          timer fires and reports its duplicates), a arrives again (new once
          more) while b, whose timer has not fired yet, is still a duplicate.
  alert   examples/telemetry's alert mode (a value cell and a
          processing-time timer that each reading resets). The TestStream
          advances processing time so that m2, then m1, fall silent for
          longer than the gap, and m2 reports again later. Timestamps are
          not compared here: the DirectRunner stamps a processing-time
          timer's output with its firing time on its test clock (which
          starts at 0), while the portable model (Beam Python's own SDK
          harness, bundle_processor's hold_timestamp) stamps it with the
          timestamp of the element that set the timer. The runner's
          timestamps are checked against the latter instead.

usage: stateful_wasm_stream.py ENDPOINT DEDUP_WASM TELEMETRY_WASM
       prints one line per case, then OK, or the differences
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
GAP_MS = 5000


def at(ms, line):
    return TimestampedValue(line, Timestamp(micros=ms * 1000))


def dedup_stream():
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


def alert_stream():
    # Each reading's value is the processing time (s since the stream
    # began) at which it arrives: Beam Python DoFns cannot read the
    # DirectRunner's test clock (which starts at 0), so the reference sets
    # its timers from that; the WASM DoFn reads the runner's clock and
    # ignores the value. Processing time moves in 3 s steps and the gap is
    # 5 s, so every alert is due 1 s or more away from a step.
    return (TestStream(coder=StrUtf8Coder())
            .advance_watermark_to(0)
            .add_elements([at(1000, "m1,0"), at(2000, "m2,0")])
            .advance_processing_time(3)
            .add_elements([at(4000, "m1,3")])
            .advance_processing_time(3)
            .advance_processing_time(3)
            .add_elements([at(10000, "m2,9")])
            .advance_processing_time(3)
            .advance_processing_time(3)
            .advance_watermark_to_infinity())


def iso(ms):
    return Timestamp(micros=ms * 1000).to_utc_datetime().strftime("%Y-%m-%dT%H:%M:%SZ")


class PyAlert(beam.DoFn):
    """The reference: what examples/telemetry's alert mode does."""
    LAST = ReadModifyWriteStateSpec("last", VarIntCoder())
    SILENCE = TimerSpec("silence", TimeDomain.REAL_TIME)

    def process(self, kv, ts=beam.DoFn.TimestampParam,
                last=beam.DoFn.StateParam(LAST),
                silence=beam.DoFn.TimerParam(SILENCE)):
        prev = last.read()
        last.write(ts.micros // 1000 if prev is None else max(prev, ts.micros // 1000))
        arrived = Timestamp(seconds=kv[1])
        silence.set(arrived + Duration(micros=GAP_MS * 1000))

    @on_timer(SILENCE)
    def silent(self, key=beam.DoFn.KeyParam, last=beam.DoFn.StateParam(LAST)):
        t = last.read()
        if t is not None:
            yield f"{key},{iso(t)},no reading for {GAP_MS // 1000}s"
        last.clear()


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


def build_dedup(p, dedup, path):
    keyed = (p | dedup_stream()
             | beam.Map(lambda l: (l.split(",")[0], l)).with_output_types(
                 beam.typehints.KV[str, str]))
    out = keyed | dedup
    out["main"] | "RecordFirst" >> beam.ParDo(Record(path, "first"))
    out["dups"] | "RecordDups" >> beam.ParDo(Record(path, "dups"))


def build_alert(p, alert, path):
    readings = (p | alert_stream()
                | beam.Map(lambda l: (l.split(",")[0], float(l.split(",")[1])))
                .with_output_types(beam.typehints.KV[str, float]))
    readings | alert | "RecordAlerts" >> beam.ParDo(Record(path, "alerts"))


def records(d):
    lines = []
    for name in os.listdir(d):
        with open(os.path.join(d, name)) as f:
            lines.extend(json.loads(l) for l in f if l.strip())
    return sorted(lines, key=lambda r: json.dumps(r, sort_keys=True))


def compare(case, build, reference, wasm, endpoint, ignore=(), check=None):
    """Run `build` with `reference` on the DirectRunner and with `wasm` on
    the runner at `endpoint`; None when they emit the same (but for the
    fields in `ignore`, and when `check` passes on the runner's records),
    else a report."""
    with tempfile.TemporaryDirectory() as ref, tempfile.TemporaryDirectory() as got:
        opts = PipelineOptions(["--runner=DirectRunner", "--streaming"])
        with beam.Pipeline(options=opts) as p:
            build(p, reference, os.path.join(ref, "r"))
        opts = PipelineOptions([
            "--runner=PortableRunner", f"--job_endpoint={endpoint}",
            "--environment_type=LOOPBACK", "--streaming"])
        with beam.Pipeline(options=opts) as p:
            build(p, wasm, os.path.join(got, "r"))
        want, have = records(ref), records(got)
    problem = check(have) if check else None
    if problem:
        return f"{case}: {problem}"
    want = sorted(({k: v for k, v in r.items() if k not in ignore} for r in want),
                  key=lambda r: json.dumps(r, sort_keys=True))
    have = sorted(({k: v for k, v in r.items() if k not in ignore} for r in have),
                  key=lambda r: json.dumps(r, sort_keys=True))
    if not want:
        return f"{case}: the DirectRunner produced nothing"
    if want != have:
        lines = [f"{case}: DirectRunner:"] + [f"   {r}" for r in want]
        lines += ["runner:"] + [f"   {r}" for r in have]
        return "\n".join(lines)
    print(f"{case}: {len(want)} records, the same")
    return None


def stamped_by_last_reading(records):
    """Each alert carries the time of the reading that set its timer
    (meter,YYYY-MM-DDTHH:MM:SSZ,...): that is its timestamp."""
    for r in records:
        if iso(r["timestamp"]) != r["value"].split(",")[1]:
            return f"alert {r} is not stamped with its last reading's time"
    return None


def main():
    endpoint, dedup, telemetry = sys.argv[1], sys.argv[2], sys.argv[3]
    import wasmbeam
    failures = [f for f in [
        compare("dedup", build_dedup,
                beam.ParDo(PyDedup()).with_outputs("dups", main="main"),
                wasmbeam.WasmParDo(dedup, config=f"dedup:{TTL_MS}",
                                   output_type=str, outputs={"dups": str}),
                endpoint),
        compare("alert", build_alert, beam.ParDo(PyAlert()),
                wasmbeam.WasmParDo(telemetry, config=f"alert:{GAP_MS}",
                                   output_type=str),
                endpoint, ignore=("timestamp",), check=stamped_by_last_reading),
    ] if f]
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
