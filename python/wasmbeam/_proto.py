"""Encoders for wasmbeam's own payload messages (proto/wasmbeam/v1).

The messages are small and stable, so they are written field by field
instead of shipping generated code.
"""


def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes_field(number, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not data:
        return b""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _int_field(number, value):
    if not value:
        return b""
    return _varint(number << 3) + _varint(value)


def wasm_udf_payload(artifact, sha256, export, config, outputs):
    """wasmbeam.v1.WasmUdfPayload"""
    out = (_bytes_field(1, artifact) + _bytes_field(2, sha256) +
           _bytes_field(3, export) + _bytes_field(4, config))
    for tag in outputs:
        # Repeated strings keep empty entries.
        data = tag.encode("utf-8")
        out += _varint(5 << 3 | 2) + _varint(len(data)) + data
    return out


def builtin_combine_payload(name):
    """wasmbeam.v1.BuiltinCombinePayload"""
    return _bytes_field(1, name)


def read_text_payload(patterns, watch_period_ms=0):
    """wasmbeam.v1.ReadTextPayload"""
    return b"".join(
        _varint(1 << 3 | 2) + _varint(len(p.encode("utf-8"))) + p.encode("utf-8")
        for p in patterns) + _int_field(2, watch_period_ms)


def generate_sequence_payload(start, stop, period_ms):
    """wasmbeam.v1.GenerateSequencePayload (stop None: unbounded)"""
    out = _int_field(1, start)
    if stop is not None:
        # proto3 `optional`: present even when 0.
        out += _varint(2 << 3) + _varint(stop)
    return out + _int_field(3, period_ms)


def write_text_payload(prefix, suffix, num_shards):
    """wasmbeam.v1.WriteTextPayload"""
    return (_bytes_field(1, prefix) + _bytes_field(2, suffix) +
            _int_field(3, num_shards))
