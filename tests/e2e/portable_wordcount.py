"""Wordcount with the real Beam Python SDK, submitted to `wasmbeam serve`
through PortableRunner, as a Beam user would write it.

usage: portable_wordcount.py ENDPOINT COMPONENT INPUT OUTPUT_PREFIX
Prints "STATE <final state>" and the user counters it got back.
"""
import os
import sys
import typing

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

import wasmbeam

endpoint, component, input_path, output_prefix = sys.argv[1:5]
options = PipelineOptions([
    # A multi-tenant server wants a token: WasmbeamRunner sends $WASMBEAM_TOKEN.
    "--runner=" + os.environ.get("WASMBEAM_TEST_RUNNER", "PortableRunner"),
    f"--job_endpoint={endpoint}",
])
p = beam.Pipeline(options=options)
(p
 | "Read" >> wasmbeam.ReadFromText(input_path)
 | "Split" >> wasmbeam.WasmParDo(component, config="split",
                                  output_type=typing.Tuple[str, int])
 | "Count" >> wasmbeam.BuiltinCombinePerKey("sum")
 | "Format" >> wasmbeam.WasmParDo(component, config="format", output_type=str)
 | "Write" >> wasmbeam.WriteToText(output_prefix))
result = p.run()
state = result.wait_until_finish()
print("STATE", state)
for r in result.metrics().query()["counters"]:
    print("COUNTER", r.key.step, r.key.metric.namespace, r.key.metric.name,
          r.committed)
