"""Beam's standard encodings, as element values arrive and leave (outer
context; a kv's key is nested, its value outer)."""

import struct


def append_varint(buf, v):
    """Append beam:coder:varint:v1 of int v to bytearray buf."""
    u = v & 0xFFFFFFFFFFFFFFFF
    while u >= 0x80:
        buf.append((u & 0x7F) | 0x80)
        u >>= 7
    buf.append(u)
    return buf


def read_varint(b, pos=0):
    """Decode a varint at b[pos:]; returns (value, next position)."""
    u = 0
    shift = 0
    while True:
        if pos >= len(b):
            raise ValueError("encoded varint is truncated")
        c = b[pos]
        pos += 1
        u |= (c & 0x7F) << shift
        if c < 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint is longer than 10 bytes")
    if u >= 1 << 63:
        u -= 1 << 64
    return u, pos


def varint(b):
    """Decode a whole outer-context varint value."""
    v, pos = read_varint(b)
    if pos != len(b):
        raise ValueError(f"{len(b) - pos} bytes after a varint")
    return v


def encode_varint(v):
    return bytes(append_varint(bytearray(), v))


def append_nested(buf, data):
    """Append bytes (or a str as UTF-8) in the nested context."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    append_varint(buf, len(data))
    buf += data
    return buf


def read_nested(b, pos=0):
    n, pos = read_varint(b, pos)
    end = pos + n
    if n < 0 or end > len(b):
        raise ValueError("encoded value is truncated")
    return b[pos:end], end


def split_kv(b):
    """kv<bytes|string, V> → (key bytes, value's outer encoding)."""
    key, pos = read_nested(b)
    return key, b[pos:]


def encode_kv(key, value):
    """kv<bytes|string, V> from a key and the value's outer encoding."""
    buf = append_nested(bytearray(), key)
    buf += value
    return bytes(buf)


def encode_double(f):
    return struct.pack(">d", f)


def double(b):
    return struct.unpack(">d", b[:8])[0]


def read_double(b, pos=0):
    return struct.unpack_from(">d", b, pos)[0], pos + 8
