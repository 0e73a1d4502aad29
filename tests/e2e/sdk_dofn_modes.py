"""Writes a Beam Python 2.77 pipeline whose pickled DoFn misbehaves (or
tells which harness ran it), for `wasmbeam run`'s tests (environment
EXTERNAL: a worker pool at the given address):

  wasmbeam.ReadFromText(IN) | beam.Map(f) | wasmbeam.WriteToText(OUT)

MODE picks f:
  crash-once    the first call kills its harness process (os._exit), leaving
                MARKER behind; later calls upper-case the line
  always-raise  raises ValueError("boom from the test DoFn: <line>")
  sleep         sleeps an hour (for cancellation)
  pid           appends " <pid of the harness process>" to the line

usage: sdk_dofn_modes.py MODE POOL_ADDRESS IN OUT_PREFIX MARKER PIPELINE.pb
"""
import os
import sys
import time

import apache_beam as beam
import wasmbeam
from external_env import options, save


def main():
    mode, pool, src, dst, marker, out = sys.argv[1:7]

    def crash_once(line):
        if not os.path.exists(marker):
            with open(marker, "w") as f:
                f.write(str(os.getpid()))
            os._exit(1)
        return line.upper()

    def always_raise(line):
        raise ValueError("boom from the test DoFn: " + line)

    def sleep(line):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)
        return line

    def pid(line):
        return "%s %d" % (line, os.getpid())

    f = {"crash-once": crash_once, "always-raise": always_raise, "sleep": sleep, "pid": pid}[mode]
    opts = options(pool)
    p = beam.Pipeline(options=opts)
    (p
     | wasmbeam.ReadFromText(src)
     | "Misbehave" >> beam.Map(f).with_output_types(str)
     | wasmbeam.WriteToText(dst))
    save(p, opts, out)


if __name__ == "__main__":
    main()
