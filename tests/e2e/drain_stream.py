"""An unbounded Beam Python pipeline on wasmbeam serve: wasmbeam's
GenerateSequence (one integer every 20 ms) into 200 ms fixed windows,
grouped per window, each pane recorded by a Python DoFn (LOOPBACK). After
about 1.5 s the job is drained with `wasmbeam drain JOB --wait`; it must
end DRAINED, with every generated integer in exactly one fired window,
none lost or doubled, and every window's pane the on-time, last one.
A second run of the stream is then cancelled with `wasmbeam cancel JOB
--wait`, and must end CANCELLED.

usage: drain_stream.py ENDPOINT WASMBEAM_BIN      prints OK
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms import window

import wasmbeam


class Record(beam.DoFn):
    def __init__(self, path):
        self.path = path

    def process(self, kv, w=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        _, values = kv
        with open(self.path, "a") as f:
            f.write(json.dumps({"window": int(w.start.micros // 1000), "values": sorted(values),
                                "last": pane.is_last, "timing": int(pane.timing)}) + "\n")


def main():
    endpoint, binary = sys.argv[1], sys.argv[2]
    d = tempfile.mkdtemp()
    path = os.path.join(d, "panes.jsonl")
    options = PipelineOptions(["--runner=PortableRunner", "--job_endpoint=" + endpoint,
                               "--environment_type=LOOPBACK", "--streaming"])
    p = beam.Pipeline(options=options)
    _ = (p
         | wasmbeam.GenerateSequence(start=0, period_secs=0.02)
         | beam.Map(lambda x: ("k", x)).with_output_types(beam.typehints.KV[str, int])
         | beam.WindowInto(window.FixedWindows(0.2))
         | beam.GroupByKey()
         | beam.ParDo(Record(path)))
    result = p.run()
    time.sleep(1.5)
    state = result.state
    if state != PipelineState.RUNNING:
        sys.exit("the unbounded job is %s before the drain, not RUNNING" % state)
    job_id = result._job_id
    # While it runs, GetJobMetrics carries each PCollection's watermark,
    # close behind the clock.
    from apache_beam.metrics import monitoring_infos
    from apache_beam.portability.api import beam_job_api_pb2
    live = result._job_service.GetJobMetrics(
        beam_job_api_pb2.GetJobMetricsRequest(job_id=job_id)).metrics.attempted
    marks = [monitoring_infos.extract_gauge_value(m)[1] for m in live
             if m.urn == "wasmbeam:metric:watermark_ms:v1"]
    lags = [monitoring_infos.extract_gauge_value(m)[1] for m in live
            if m.urn == "wasmbeam:metric:watermark_lag_ms:v1"]
    now_ms = time.time() * 1000
    if not marks or not lags:
        sys.exit("no watermark metrics while the stream runs: %s" % live)
    if not any(now_ms - 10_000 < w <= now_ms + 1_000 for w in marks) or min(lags) > 10_000:
        sys.exit("watermarks are not near the clock: %s, lags %s" % (marks, lags))
    out = subprocess.run([binary, "drain", job_id, "--endpoint", endpoint, "--wait"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or "DRAINED" not in out.stdout:
        sys.exit("wasmbeam drain failed: %s %s" % (out.stdout, out.stderr))
    try:
        result.wait_until_finish()
    except RuntimeError as e:
        # Beam's PortableRunner client raises for every end but DONE.
        if "DRAINED" not in str(e):
            raise
    final = result.state
    if final != PipelineState.DRAINED:
        sys.exit("the job ended %s, not DRAINED" % final)
    with open(path) as f:
        panes = [json.loads(line) for line in f]
    values = sorted(v for pane in panes for v in pane["values"])
    if not values or values != list(range(len(values))):
        sys.exit("lost or doubled elements: %s" % values)
    if len(values) < 20:
        sys.exit("only %d elements in 1.5 s at one per 20 ms" % len(values))
    windows = [pane["window"] for pane in panes]
    if len(set(windows)) != len(windows):
        sys.exit("a window fired twice: %s" % panes)
    if not all(pane["last"] and pane["timing"] == 1 for pane in panes):
        sys.exit("every pane should be the on-time, last one: %s" % panes)
    # Cancel stays immediate: a second run of the same stream, cancelled
    # with `wasmbeam cancel JOB --wait`, ends CANCELLED.
    p = beam.Pipeline(options=options)
    _ = (p
         | wasmbeam.GenerateSequence(start=0, period_secs=0.02)
         | beam.Map(lambda x: ("k", x)).with_output_types(beam.typehints.KV[str, int])
         | beam.WindowInto(window.FixedWindows(0.2))
         | beam.GroupByKey()
         | beam.ParDo(Record(path + ".cancelled")))
    second = p.run()
    time.sleep(1.0)
    out = subprocess.run([binary, "cancel", second._job_id, "--endpoint", endpoint, "--wait"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or "CANCELLED" not in out.stdout:
        sys.exit("wasmbeam cancel failed: %s %s" % (out.stdout, out.stderr))
    if second.state != PipelineState.CANCELLED:
        sys.exit("the cancelled job is %s, not CANCELLED" % second.state)
    print("OK %d elements in %d windows" % (len(values), len(panes)))


if __name__ == "__main__":
    main()
