"""The contract's packed arrays (packed-u32, packed-s64): little-endian
numbers back to back in a list<u8>, which componentize-py hands over as
bytes. WebAssembly is little-endian, so a memoryview cast reads them in
place and array.tobytes() writes them, with no per-number Python work."""

from array import array
from itertools import accumulate

U32 = "I"
S64 = "q"
assert array(U32).itemsize == 4 and array(S64).itemsize == 8


def u32s(b):
    return memoryview(b).cast(U32)


def s64s(b):
    return memoryview(b).cast(S64)


def offsets_of(values):
    """The packed n+1 offsets of a list of bytes values."""
    return array(U32, accumulate(map(len, values), initial=0)).tobytes()


def split(data, offsets):
    """The values of a `values` record, as a list of bytes."""
    o = u32s(offsets)
    return [data[a:b] for a, b in zip(o, o[1:])]


def join(values):
    """(data, None) with data = b"".join(values), or (None, i) where values[i]
    is the first value that is not bytes-like."""
    try:
        return b"".join(values), None
    except TypeError:
        return None, next(i for i, v in enumerate(values)
                          if not isinstance(v, (bytes, bytearray, memoryview)))
