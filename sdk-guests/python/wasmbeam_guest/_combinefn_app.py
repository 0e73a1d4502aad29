"""The combinefn-udf world's exports, in terms of the registered CombineFn."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

from wasmbeam_guest import api, metrics


def _error(e):
    msg = str(e) if isinstance(e, api.UdfError) else f"{type(e).__name__}: {e}"
    return Err(types.UdfError(msg, None))


def _split(v):
    o = v.offsets
    d = v.data
    return [d[o[i]:o[i + 1]] for i in range(len(o) - 1)]


def _values(items):
    data = bytearray()
    offsets = [0]
    for it in items:
        data += it
        offsets.append(len(data))
    metrics._flush(host)
    return types.Values(bytes(data), offsets)


class Combinefn(exports.Combinefn):
    fn = None

    def runtime_init(self):
        pass

    def setup(self, config):
        cls = api._registered.get("combinefn")
        if cls is None:
            raise _error(api.UdfError(
                "no CombineFn exported: call wasmbeam_guest.export_combinefn(YourClass)"))
        try:
            Combinefn.fn = cls(bytes(config))
        except Exception as e:
            raise _error(e)

    def create_accumulator(self):
        try:
            return bytes(Combinefn.fn.create_accumulator())
        except Exception as e:
            raise _error(e)

    def add_inputs(self, accumulators, inputs, group_ends):
        fn = Combinefn.fn
        accs = _split(accumulators)
        ins = _split(inputs)
        out = []
        start = 0
        try:
            for g, end in enumerate(group_ends):
                acc = accs[g]
                for i in range(start, end):
                    acc = fn.add_input(acc, ins[i])
                start = end
                out.append(acc)
        except Exception as e:
            raise _error(e)
        return _values(out)

    def merge_accumulators(self, accumulators, group_ends):
        fn = Combinefn.fn
        accs = _split(accumulators)
        out = []
        start = 0
        try:
            for end in group_ends:
                out.append(fn.merge_accumulators(accs[start:end]))
                start = end
        except Exception as e:
            raise _error(e)
        return _values(out)

    def extract_outputs(self, accumulators):
        fn = Combinefn.fn
        try:
            return _values([fn.extract_output(a) for a in _split(accumulators)])
        except Exception as e:
            raise _error(e)
