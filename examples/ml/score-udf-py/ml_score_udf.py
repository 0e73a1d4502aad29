"""The ML example's DoFns in Python, chosen by config; the output matches the
Rust version in ../score-udf byte for byte.

* parse: a CSV row x1,x2,y -> kv("rows", the three values as big-endian
  f64); the header row is dropped.
* score: with the trained coefficients as side input `model`, a row ->
  kv("rmse", squared error) on the main output and "x1,x2,y,prediction" on
  the `predictions` output.
* rmse: kv(_, mean squared error) -> "rmse: R".
"""
import math
import re
import struct
import unicodedata
from decimal import Decimal

import wasmbeam_guest as wb
from wasmbeam_guest import coders

# Unicode White_Space, what Rust's str::trim removes.
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
              "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# The ASCII syntax Rust's f64 parser accepts.
FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)",
                   re.ASCII | re.IGNORECASE)
ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"'}


def rust_debug(s):
    """Roughly Rust's {:?} of a &str (only used in error messages)."""
    def esc(c):
        if c in ESCAPES:
            return ESCAPES[c]
        if not c.isprintable() or unicodedata.category(c) in ("Mn", "Me"):
            return f"\\u{{{ord(c):x}}}"
        return c
    return '"' + "".join(map(esc, s)) + '"'


def parse_f64(s):
    """Rust's str::parse::<f64>; raises with Rust's message."""
    if not s:
        raise ValueError("cannot parse float from empty string")
    if not FLOAT.fullmatch(s):
        raise ValueError("invalid float literal")
    return float(s)


def display(v):
    """Rust's {} of an f64: shortest round trip, positional, no '.0'."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    s = format(Decimal(repr(v)), "f")
    return s[:-2] if s.endswith(".0") else s


def fixed(v, digits):
    """Rust's {:.N} of an f64."""
    return "NaN" if math.isnan(v) else f"{v:.{digits}f}"


class Ml(wb.DoFn):
    def __init__(self, setup):
        self.mode = setup.config_str()
        if self.mode == "score":
            self.predictions = setup.output_index("predictions")
        elif self.mode not in ("parse", "rmse"):
            raise wb.UdfError(f"unknown mode {rust_debug(self.mode)}")
        self.model = None

    def side_input(self, side):
        if side.tag != "model" or len(side.values) != 1:
            raise wb.UdfError(f'expected one model in side input "model", got '
                              f"{len(side.values)} in {rust_debug(side.tag)}")
        _, coefs = coders.split_kv(side.values[0])
        if len(coefs) // 8 != 3:
            raise wb.UdfError("the model must hold 3 coefficients")
        self.model = struct.unpack_from(">3d", coefs)

    def process(self, element, out):
        if self.mode == "parse":
            try:
                line = bytes(element.value).decode("utf-8").strip(WHITESPACE)
            except UnicodeDecodeError:
                raise wb.UdfError("row is not UTF-8") from None
            if not line or line.startswith("x1"):
                return
            try:
                f = [parse_f64(x.strip(WHITESPACE)) for x in line.split(",")]
            except ValueError as err:
                raise wb.UdfError(f"bad row {rust_debug(line)}: {err}") from None
            if len(f) != 3:
                raise wb.UdfError(f"bad row {rust_debug(line)}: expected x1,x2,y")
            out.emit(coders.encode_kv("rows", struct.pack(">3d", *f)))
        elif self.mode == "score":
            if self.model is None:
                raise wb.UdfError("no model: the side input is missing")
            m = self.model
            _, row = coders.split_kv(element.value)
            x1, x2, y = struct.unpack_from(">3d", row)
            pred = m[0] + m[1] * x1 + m[2] * x2
            err = pred - y
            out.emit(coders.encode_kv("rmse", coders.encode_double(err * err)))
            line = f"{display(x1)},{display(x2)},{display(y)},{fixed(pred, 4)}"
            out.emit_to(self.predictions, line.encode())
        else:
            _, rest = coders.split_kv(element.value)
            out.emit(f"rmse: {fixed(math.sqrt(coders.double(rest)), 4)}".encode())


wb.export_dofn(Ml)
