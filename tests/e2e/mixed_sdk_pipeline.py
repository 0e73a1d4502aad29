"""Writes a Beam Python 2.77 pipeline mixing runner-native text IO, ordinary
pickled Python DoFns (environment EXTERNAL: a worker pool at the given
address) and a WASM ParDo, for `wasmbeam run`'s SDK-harness test:

  wasmbeam.ReadFromText(IN) | beam.Map(upper) | beam.FlatMap(split in two)
    | wasmbeam.WasmParDo(COMPONENT, "identity") | wasmbeam.WriteToText(OUT)

usage: mixed_sdk_pipeline.py POOL_ADDRESS IN OUT_PREFIX PIPELINE.pb COMPONENT
"""
import sys

import apache_beam as beam
import wasmbeam
from external_env import options, save


def main():
    pool, src, dst, out, component = sys.argv[1:6]
    opts = options(pool)
    p = beam.Pipeline(options=opts)
    (p
     | wasmbeam.ReadFromText(src)
     | "Upper" >> beam.Map(lambda line: line.upper()).with_output_types(str)
     | "Halves" >> beam.FlatMap(
         lambda s: [s[: len(s) // 2], s[len(s) // 2:]]).with_output_types(str)
     | "Wasm" >> wasmbeam.WasmParDo(component, config="identity", output_type=str)
     | wasmbeam.WriteToText(dst))
    save(p, opts, out)


if __name__ == "__main__":
    main()
