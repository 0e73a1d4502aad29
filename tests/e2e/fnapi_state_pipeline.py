"""Writes a Beam Python 2.77 pipeline whose ParDos use the Fn API State
service, for crates/wasmbeam-fnapi's tests (the DoFns are pickled here, by
the pinned apache-beam, never hand-written):

* "WithSide": Map(lambda x, side: ...) with an AsList side input (the
  iterable side-input pattern);
* "WithDict": Map(lambda x, d: ...) with an AsDict side input (multimap);
* "Stateful": a DoFn with bag state over KV<str, str>: appends each value,
  emits "key=v1,v2,..." (all values seen for the key so far), and clears
  the bag when it sees the value "reset".

usage: fnapi_state_pipeline.py OUT.pb
"""
import sys

import apache_beam as beam
from apache_beam.coders import StrUtf8Coder
from apache_beam.transforms.userstate import BagStateSpec


class Stateful(beam.DoFn):
    SEEN = BagStateSpec("seen", StrUtf8Coder())

    def process(self, kv, seen=beam.DoFn.StateParam(SEEN)):
        key, value = kv
        if value == "reset":
            seen.clear()
            yield "%s=reset" % key
            return
        seen.add(value)
        yield "%s=%s" % (key, ",".join(seen.read()))


def main():
    p = beam.Pipeline()
    main_pc = p | "Main" >> beam.Create(["a", "b"]).with_output_types(str)
    side = p | "Side" >> beam.Create(["x", "y"]).with_output_types(str)
    pairs = p | "Pairs" >> beam.Create([("k", "v")]).with_output_types(beam.typehints.KV[str, str])
    _ = main_pc | "WithSide" >> beam.Map(
        lambda x, s: "%s:%s" % (x, "|".join(sorted(s))), beam.pvalue.AsList(side)
    ).with_output_types(str)
    _ = main_pc | "WithDict" >> beam.Map(
        lambda x, d: "%s:%s" % (x, d.get(x, "none")), beam.pvalue.AsDict(pairs)
    ).with_output_types(str)
    _ = pairs | "Stateful" >> beam.ParDo(Stateful()).with_output_types(str)
    proto = p.to_runner_api()
    with open(sys.argv[1], "wb") as f:
        f.write(proto.SerializeToString())


if __name__ == "__main__":
    main()
