"""Linear regression as a CombineFn over sufficient statistics, in Python;
the output matches the Rust version in ../train-udf byte for byte.

Inputs are rows x1,x2,y as three big-endian f64. The accumulator holds
X^T X and X^T y for x = (1, x1, x2) and the row count, as 13 big-endian f64
(X^T X row-major, then X^T y, then n). The output is the least-squares
coefficients (intercept, w1, w2) as three big-endian f64.
"""
import math
import struct
from decimal import Decimal

import wasmbeam_guest as wb

D = 3
ACC = D * D + D + 1


def f64s(b, n):
    if len(b) != 8 * n:
        raise wb.UdfError(f"expected {n} doubles ({8 * n} bytes), got {len(b)} bytes")
    return list(struct.unpack(f">{n}d", b))


def pack(v):
    return struct.pack(f">{len(v)}d", *v)


def display(v):
    """Rust's {} of an f64: shortest round trip, positional, no '.0'."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = format(Decimal(repr(v)), "f")
    return s[:-2] if s.endswith(".0") else s


def magnitude(v):
    """|v| as an integer ordered like Rust's total_cmp of v.abs()."""
    return struct.unpack(">Q", struct.pack(">d", abs(v)))[0]


class Train(wb.CombineFn):
    def create_accumulator(self):
        return bytes(8 * ACC)

    def add_input(self, accumulator, value):
        acc = f64s(accumulator, ACC)
        r = f64s(value, 3)
        x = (1.0, r[0], r[1])
        for i in range(D):
            for j in range(D):
                acc[i * D + j] += x[i] * x[j]
            acc[D * D + i] += x[i] * r[2]
        acc[-1] += 1.0
        return pack(acc)

    def merge_accumulators(self, accumulators):
        # Summed from zero in order, as the Rust SDK's merge does.
        acc = [0.0] * ACC
        for other in accumulators:
            for k, v in enumerate(f64s(other, ACC)):
                acc[k] += v
        return pack(acc)

    def extract_output(self, accumulator):
        # Gaussian elimination with partial pivoting on [X^T X | X^T y].
        v = f64s(accumulator, ACC)
        a = [v[i * D:(i + 1) * D] for i in range(D)]
        b = v[D * D:D * D + D]
        for col in range(D):
            # The row with the largest pivot; the last one among equals.
            p = col
            for i in range(col + 1, D):
                if magnitude(a[i][col]) >= magnitude(a[p][col]):
                    p = i
            if abs(a[p][col]) < 1e-12:
                raise wb.UdfError("cannot fit: the features are collinear or there "
                                  f"are too few rows ({display(v[-1])})")
            a[col], a[p] = a[p], a[col]
            b[col], b[p] = b[p], b[col]
            for r in range(D):
                if r != col:
                    f = a[r][col] / a[col][col]
                    for c in range(D):
                        a[r][c] -= f * a[col][c]
                    b[r] -= f * b[col]
        return pack([b[i] / a[i][i] for i in range(D)])


wb.export_combinefn(Train)
