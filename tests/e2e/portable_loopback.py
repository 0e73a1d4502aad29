"""An ordinary Beam Python pipeline, with no wasmbeam imports, submitted
with PortableRunner and --environment_type=LOOPBACK: its pickled DoFns run in
the SDK harness the client starts in its own process.

usage: portable_loopback.py ENDPOINT OUT_FILE
The last DoFn appends each result line to OUT_FILE (a side effect the test
reads). Prints "STATE <final state>", or "REFUSED" and the client's error.
$WASMBEAM_TEST_RUNNER picks another runner (wasmbeam.runner.WasmbeamRunner
sends $WASMBEAM_TOKEN to a multi-tenant server).
"""
import os
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions


def main():
    endpoint, out = sys.argv[1], sys.argv[2]
    options = PipelineOptions([
        "--runner=" + os.environ.get("WASMBEAM_TEST_RUNNER", "PortableRunner"),
        f"--job_endpoint={endpoint}",
        "--environment_type=LOOPBACK",
    ])

    def record(line):
        with open(out, "a") as f:
            f.write(line + "\n")
        return line

    p = beam.Pipeline(options=options)
    words = (p
             | "Lines" >> beam.Create(["hello wasm", "beam on", "wasmbeam", "wasm on"])
             | "Words" >> beam.FlatMap(str.split))
    (words
     | "Shout" >> beam.Map(lambda w: w.upper() + "!")
     | "Record" >> beam.Map(record))
    # A lifted CombinePerKey(sum): its phases run in the harness, the
    # GroupByKey between them in the runner.
    (words
     | "Pair" >> beam.Map(lambda w: (w, 1))
     | "Count" >> beam.CombinePerKey(sum)
     | "Format" >> beam.MapTuple(lambda w, n: "count %s=%d" % (w, n))
     | "RecordCounts" >> beam.Map(record))
    # A plain GroupByKey over pickled keys and values.
    (words
     | "ByLength" >> beam.Map(lambda w: (len(w), w))
     | "Group" >> beam.GroupByKey()
     | "Show" >> beam.MapTuple(lambda n, ws: "len %d=%s" % (n, ",".join(sorted(ws))))
     | "RecordGroups" >> beam.Map(record))
    try:
        result = p.run()
        state = result.wait_until_finish()
    except Exception as e:  # the client's own error, shown to the user
        print("REFUSED")
        print(e)
        return
    print("STATE", state)


if __name__ == "__main__":
    main()
