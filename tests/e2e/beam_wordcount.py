"""Beam's own wordcount, as a Beam Python user writes it, with no wasmbeam
imports: ReadFromText (a splittable DoFn) -> FlatMap(split) ->
CombinePerKey(sum) -> Map(format) -> WriteToText. Words are runs of
letters, digits and apostrophes (as in examples/wordcount); lines are
"word: count". Used by the end-to-end tests and by the benchmarks, which run
it on several runners.

With --group-by-key, the GroupByKey-heavy variant: every (word, 1) pair
goes through GroupByKey with no combiner, and a Map sums each group.

usage: beam_wordcount.py INPUT OUTPUT_PREFIX [--shards=N] [--group-by-key]
                         [BEAM_OPTION ...]
e.g.   beam_wordcount.py in.txt out/counts --runner=PortableRunner \
           --job_endpoint=127.0.0.1:8099 --environment_type=LOOPBACK
Prints "STATE <final state>" and "SECONDS <wall time of run + wait>".
"""
import re
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rest = sys.argv[3:]
    shards = [a for a in rest if a.startswith("--shards=")]
    rest = [a for a in rest if not a.startswith("--shards=")]
    group_by_key = "--group-by-key" in rest
    rest = [a for a in rest if a != "--group-by-key"]
    num_shards = int(shards[-1].split("=", 1)[1]) if shards else 0
    options = PipelineOptions(rest)
    started = time.time()
    p = beam.Pipeline(options=options)
    pairs = (p
             | "Read" >> beam.io.ReadFromText(src)
             | "Split" >> beam.FlatMap(lambda line: re.findall(r"[A-Za-z0-9']+", line))
             | "Pair" >> beam.Map(lambda w: (w, 1)))
    if group_by_key:
        counts = (pairs
                  | "Group" >> beam.GroupByKey()
                  | "Sum" >> beam.MapTuple(lambda w, ones: (w, sum(ones))))
    else:
        counts = pairs | "Count" >> beam.CombinePerKey(sum)
    (counts
     | "Format" >> beam.MapTuple(lambda w, n: "%s: %d" % (w, n))
     | "Write" >> beam.io.WriteToText(dst, num_shards=num_shards))
    result = p.run()
    state = result.wait_until_finish()
    print("STATE", state, flush=True)
    print("SECONDS %.2f" % (time.time() - started), flush=True)


if __name__ == "__main__":
    main()
