#!/usr/bin/env python3
"""Reference wordcount on the Beam Python DirectRunner (for benches/wordcount_e2e.sh).

usage: beam_wordcount.py INPUT OUTPUT_PREFIX
Same semantics as examples/wordcount: words are runs of letters, digits and
apostrophes; output lines are "word: count".
"""
import logging
import re
import sys

logging.disable(logging.WARNING)

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402


def main():
    src, dst = sys.argv[1], sys.argv[2]
    word = re.compile(r"[A-Za-z0-9']+")
    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        (p
         | beam.io.ReadFromText(src)
         | beam.FlatMap(word.findall)
         | beam.Map(lambda w: (w, 1))
         | beam.CombinePerKey(sum)
         | beam.MapTuple(lambda w, n: "%s: %d" % (w, n))
         | beam.io.WriteToText(dst, num_shards=1))


if __name__ == "__main__":
    main()
