"""A Beam Python pipeline (no wasmbeam imports) that needs its staged files
in the harness: with --save_main_session, its DoFn reads SUFFIX, a global of
this __main__ module that only the pickled main session carries to a harness
in another process. It also reads a pipeline option (an experiment) in the harness,
which only reaches it through the runner (provision info or the built-in
command). Checked with assert_that; prints OK.

usage: main_session_pipeline.py ENDPOINT COMMAND
  COMMAND is the PROCESS environment's command (`wasmbeam:python`, or a
  boot program).
"""
import json, sys, apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

SUFFIX = "-from-main-session"


class Tag(beam.DoFn):
    def process(self, x):
        yield x + SUFFIX


class WithOption(beam.DoFn):
    """Reads --experiments=greeting=X in the harness, from the options it was started with."""
    def setup(self):
        import os
        opts = json.loads(os.environ.get("PIPELINE_OPTIONS", "{}"))
        opts = opts.get("options", opts)
        names = {k.split(":")[2] if k.startswith("beam:option:") else k: v
                 for k, v in opts.items()}
        greetings = [e.split("=", 1)[1] for e in names.get("experiments") or []
                     if e.startswith("greeting=")]
        self.greeting = greetings[0] if greetings else "none"


    def process(self, x):
        yield "%s %s" % (self.greeting, x)


endpoint, command = sys.argv[1], sys.argv[2]
opts = PipelineOptions([
    "--runner=PortableRunner", "--job_endpoint=" + endpoint,
    "--environment_type=PROCESS",
    '--environment_config={"command": "%s"}' % command,
    "--save_main_session", "--experiments=greeting=hello",
])
with beam.Pipeline(options=opts) as p:
    out = p | beam.Create(["a", "b"]) | beam.ParDo(Tag()) | beam.ParDo(WithOption())
    assert_that(out, equal_to(["hello a-from-main-session", "hello b-from-main-session"]))
print("OK")
