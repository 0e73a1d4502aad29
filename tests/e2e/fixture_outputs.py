"""Makes a Beam Python fixture pipeline observable, and runs it on Beam's
own runner for reference, for the test that runs every fixture on wasmbeam.

  fixture_outputs.py prepare IN.pb POOL RECORD_DIR OUT.pb
      Writes OUT.pb: the fixture with its EXTERNAL environments pointed at
      the worker pool POOL, and a recording ParDo on every PCollection that
      nothing reads. The recorder appends "PCOLLECTION<TAB>repr((element,
      window))" lines to a file of its own under RECORD_DIR.
  fixture_outputs.py direct IN.pb POOL RECORD_DIR
      Prepares the fixture the same way and runs it on Beam's FnApiRunner
      (what the DirectRunner runs portable pipelines on), whose harnesses
      come from the same worker pool.

The recorded lines of both runs are compared by the Rust test.
"""
import os
import sys
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2, endpoints_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.transforms import environments


def canon(x):
    """`x` with lazy iterables (a side input's values) turned into lists."""
    if isinstance(x, (str, bytes, int, float, bool)) or x is None:
        return x
    if isinstance(x, tuple):
        return tuple(canon(v) for v in x)
    if isinstance(x, dict):
        return sorted((canon(k), canon(v)) for k, v in x.items())
    if hasattr(x, "__iter__"):
        return [canon(v) for v in x]
    return x


class Record(beam.DoFn):
    """Appends each element, with its window, to a file of this process."""

    def __init__(self, directory, pcollection):
        self.directory = directory
        self.pcollection = pcollection

    def process(self, element, window=beam.DoFn.WindowParam):
        path = os.path.join(self.directory, "%d-%s.txt" % (os.getpid(), uuid.uuid4().hex))
        with open(path, "a") as f:
            f.write("%s\t%r\n" % (self.pcollection, (canon(element), window)))


def recorder(directory, pcollection, env_id):
    """The transform proto of a Record ParDo (and the components it needs)."""
    p = beam.Pipeline()
    (p | beam.Create([0]) | "Record" >> beam.ParDo(Record(directory, pcollection)))
    proto = p.to_runner_api()
    for t in proto.components.transforms.values():
        if t.unique_name == "Record":
            rec = beam_runner_api_pb2.PTransform()
            rec.CopyFrom(t)
            rec.environment_id = env_id
            del rec.outputs["None"]
            return rec, proto.components
    raise RuntimeError("no Record transform")


def prepare(src, pool, record_dir):
    p = beam_runner_api_pb2.Pipeline()
    with open(src, "rb") as f:
        p.ParseFromString(f.read())
    c = p.components
    env_id = None
    for eid, env in c.environments.items():
        if env.urn == common_urns.environments.EXTERNAL.urn:
            payload = beam_runner_api_pb2.ExternalPayload()
            payload.ParseFromString(env.payload)
            payload.endpoint.CopyFrom(endpoints_pb2.ApiServiceDescriptor(url=pool))
            env.payload = payload.SerializeToString()
            env_id = eid
    if env_id is None:
        sys.exit("%s has no EXTERNAL environment" % src)
    read = set()
    for t in c.transforms.values():
        if not t.subtransforms:
            read.update(t.inputs.values())
    produced = set()
    for t in c.transforms.values():
        if not t.subtransforms:
            produced.update(t.outputs.values())
    for n, pc in enumerate(sorted(produced - read)):
        rec, comps = recorder(record_dir, pc, env_id)
        rec.inputs.clear()
        rec.inputs["in"] = pc
        rec.unique_name = "Record%d" % n
        tid = "wasmbeam-test-record-%d" % n
        c.transforms[tid].CopyFrom(rec)
        p.root_transform_ids.append(tid)
        # The pickled DoFn's coders are not needed (the ParDo has no
        # output); nothing else to copy.
    return p


def main():
    mode = sys.argv[1]
    if mode == "prepare":
        src, pool, record_dir, out = sys.argv[2:6]
        with open(out, "wb") as f:
            f.write(prepare(src, pool, record_dir).SerializeToString())
    elif mode == "direct":
        src, pool, record_dir = sys.argv[2:5]
        result = fn_runner.FnApiRunner().run_via_runner_api(
            prepare(src, pool, record_dir), PipelineOptions([]))
        result.wait_until_finish()
    else:
        sys.exit("unknown mode %s" % mode)


if __name__ == "__main__":
    main()
