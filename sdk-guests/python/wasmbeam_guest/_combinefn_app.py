"""The combinefn-udf world's exports, in terms of the registered CombineFn."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

from wasmbeam_guest import api, metrics
from wasmbeam_guest._packed import join, offsets_of, split, u32s


def _error(e):
    msg = str(e) if isinstance(e, api.UdfError) else f"{type(e).__name__}: {e}"
    return Err(types.UdfError(msg, None))


def _split(v):
    return split(v.data, v.offsets)


def _values(items):
    metrics._flush(host)
    data, bad = join(items)
    if bad is not None:
        raise _error(api.UdfError(
            f"accumulator or output {bad} is a {type(items[bad]).__name__}, "
            "not bytes"))
    return types.Values(data, offsets_of(items))


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
            for g, end in enumerate(u32s(group_ends)):
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
            for end in u32s(group_ends):
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
