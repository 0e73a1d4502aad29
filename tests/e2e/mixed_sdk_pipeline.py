"""Writes a Beam Python 2.77 pipeline mixing runner-native text IO, ordinary
pickled Python DoFns (environment EXTERNAL: a worker pool at the given
address) and a WASM ParDo, for `wasmbeam run`'s SDK-harness test:

  wasmbeam.ReadFromText(IN) | beam.Map(upper) | beam.FlatMap(split in two)
    | wasmbeam.WasmParDo(COMPONENT, "identity") | wasmbeam.WriteToText(OUT)

usage: mixed_sdk_pipeline.py POOL_ADDRESS IN OUT_PREFIX PIPELINE.pb COMPONENT
"""
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions
from apache_beam.transforms import environments

import wasmbeam


def main():
    pool, src, dst, out, component = sys.argv[1:6]
    opts = PipelineOptions(["--environment_type=EXTERNAL", "--environment_config=" + pool])
    p = beam.Pipeline(options=opts)
    (p
     | wasmbeam.ReadFromText(src)
     | "Upper" >> beam.Map(lambda line: line.upper()).with_output_types(str)
     | "Halves" >> beam.FlatMap(
         lambda s: [s[: len(s) // 2], s[len(s) // 2:]]).with_output_types(str)
     | "Wasm" >> wasmbeam.WasmParDo(component, config="identity", output_type=str)
     | wasmbeam.WriteToText(dst))
    env = environments.Environment.from_options(opts.view_as(PortableOptions))
    proto = p.to_runner_api(default_environment=env)
    with open(out, "wb") as f:
        f.write(proto.SerializeToString())


if __name__ == "__main__":
    main()
