"""Submit a pipeline with one WASM ParDo and return without waiting.

usage: portable_submit.py ENDPOINT COMPONENT MODE INPUT OUTPUT_PREFIX
"""
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

import wasmbeam

endpoint, component, mode, input_path, output_prefix = sys.argv[1:6]
options = PipelineOptions(["--runner=PortableRunner", f"--job_endpoint={endpoint}"])
p = beam.Pipeline(options=options)
(p
 | "Read" >> wasmbeam.ReadFromText(input_path)
 | "Mode" >> wasmbeam.WasmParDo(component, config=mode, output_type=str)
 | "Write" >> wasmbeam.WriteToText(output_prefix))
result = p.run()
print("SUBMITTED", result.job_id() if hasattr(result, "job_id") else "")
