"""An ordinary Beam Python pipeline (pickled Python DoFns), which wasmbeam
must refuse with a message naming every transform it cannot run.

usage: portable_pickled.py ENDPOINT
Prints "REFUSED" and the error the Beam client showed, or "ACCEPTED".
"""
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

options = PipelineOptions(["--runner=PortableRunner", f"--job_endpoint={sys.argv[1]}"])
try:
    with beam.Pipeline(options=options) as p:
        (p
         | "Numbers" >> beam.Create([1, 2, 3])
         | "Double" >> beam.Map(lambda x: x * 2)
         | "Keep" >> beam.Filter(lambda x: x > 2))
except Exception as e:  # the client's own error, shown to the user
    print("REFUSED")
    print(e)
    sys.exit(0)
print("ACCEPTED")
sys.exit(1)
