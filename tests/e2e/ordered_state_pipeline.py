"""A Beam Python pipeline (no wasmbeam imports) whose stateful DoFn uses
ordered-list state: elements added out of order, then read by sort-key range
and range-cleared when a timer fires. Checked with assert_that; prints OK.

usage: ordered_state_pipeline.py ENDPOINT
"""
import sys, apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import userstate
from apache_beam.utils.timestamp import Timestamp
from apache_beam.testing.util import assert_that, equal_to
from apache_beam import coders

class Sorted(beam.DoFn):
    LIST = userstate.OrderedListStateSpec('list', coders.StrUtf8Coder())
    TIMER = userstate.TimerSpec('t', userstate.TimeDomain.WATERMARK)
    def process(self, kv, l=beam.DoFn.StateParam(LIST), t=beam.DoFn.TimerParam(TIMER)):
        k, (ts, v) = kv
        l.add((Timestamp(micros=ts), v))
        t.set(Timestamp(micros=10))
    @userstate.on_timer(TIMER)
    def fire(self, key=beam.DoFn.KeyParam, l=beam.DoFn.StateParam(LIST)):
        mid = [v for _, v in l.read_range(Timestamp(micros=20), Timestamp(micros=40))]
        l.clear_range(Timestamp(micros=0), Timestamp(micros=25))
        rest = [v for _, v in l.read()]
        yield "%s mid=%s rest=%s" % (key, ",".join(mid), ",".join(rest))

opts = PipelineOptions(["--runner=PortableRunner", "--job_endpoint=" + sys.argv[1], "--environment_type=LOOPBACK"])
with beam.Pipeline(options=opts) as p:
    out = (p | beam.Create([("a", (30, "c")), ("a", (10, "a")), ("a", (20, "b")), ("a", (50, "d"))]) | beam.ParDo(Sorted()))
    assert_that(out, equal_to(["a mid=b,c rest=c,d"]))
print("OK")
