"""Telemetry's user functions in Python, one component whose config picks the
mode; the output matches the Rust version in ../udf byte for byte.

* parse: a CSV line meter_id,timestamp,kwh (timestamp YYYY-MM-DDTHH:MM:SSZ)
  -> kv<string_utf8, double> timestamped with the reading's event time.
  Rows that do not parse go to the `invalid` output, with the reason
  appended; the header line and blank lines are dropped.
* format:LABEL: kv<string_utf8, double> -> "meter,window_start,LABEL,value".
* alert:GAP_MS: kv<string_utf8, double> readings -> "meter,last_reading_time,
  no reading for Ns" once GAP_MS of processing time passes without one.
"""
import math
import re
import unicodedata

import wasmbeam_guest as wb
from wasmbeam_guest import coders

# Characters with the Unicode White_Space property, which Rust's str::trim
# removes (Python's str.strip() would also drop U+001C..U+001F).
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
              "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

# What Rust's f64 parser accepts, ASCII only (float() alone would also take
# underscores, surrounding spaces and non-ASCII digits).
FLOAT = re.compile(r"[+-]?(?:inf|infinity|nan|(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)",
                   re.ASCII | re.IGNORECASE)
INT = re.compile(rb"[+-]?[0-9]+")
# Code points that Rust's {:?} escapes as grapheme extenders although their
# category is not Mn or Me (Unicode 16's Other_Grapheme_Extend, less the
# format characters, which are escaped anyway).
OTHER_EXTEND = frozenset([
    0x9BE, 0x9D7, 0xB3E, 0xB57, 0xBBE, 0xBD7, 0xCC0, 0xCC2, 0xCC7, 0xCC8,
    0xCCA, 0xCCB, 0xCD5, 0xCD6, 0xD3E, 0xD57, 0xDCF, 0xDDF, 0x1715, 0x1734,
    0x1B35, 0x1B3B, 0x1B3D, 0x1B43, 0x1B44, 0x1BAA, 0x1BF2, 0x1BF3, 0x302E,
    0x302F, 0xA953, 0xA9C0, 0xFF9E, 0xFF9F, 0x111C0, 0x11235, 0x1133E,
    0x1134D, 0x11357, 0x113B8, 0x113C2, 0x113C5, 0x113C7, 0x113C8, 0x113C9,
    0x113CF, 0x114B0, 0x114BD, 0x115AF, 0x116B6, 0x11930, 0x1193D, 0x1D165,
    0x1D166, *range(0x1D16D, 0x1D173)])
ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\", '"': '\\"'}


def rust_debug(s):
    """s quoted the way Rust's {:?} prints a &str."""
    def esc(c):
        if c in ESCAPES:
            return ESCAPES[c]
        if (not c.isprintable() or unicodedata.category(c) in ("Mn", "Me")
                or ord(c) in OTHER_EXTEND):
            return f"\\u{{{ord(c):x}}}"
        return c
    return '"' + "".join(map(esc, s)) + '"'


def parse_f64(s):
    """Rust's str::parse::<f64>, or None."""
    return float(s) if FLOAT.fullmatch(s) else None


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    """The inverse of days_from_civil: (year, month, day)."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, d


def parse_time(s):
    """YYYY-MM-DDTHH:MM:SSZ -> epoch milliseconds, or None. Each number may
    carry a sign, as Rust's integer parsing allows."""
    b = s.encode()
    if len(b) != 20 or b[4:5] != b"-" or b[7:8] != b"-" or b[10:11] != b"T" \
            or b[13:14] != b":" or b[16:17] != b":" or b[19:] != b"Z":
        return None
    parts = [b[0:4], b[5:7], b[8:10], b[11:13], b[14:16], b[17:19]]
    if not all(INT.fullmatch(p) for p in parts):
        return None
    y, mo, d, h, mi, se = map(int, parts)
    if not (1 <= mo <= 12 and 1 <= d <= 31) or h > 23 or mi > 59 or se > 59:
        return None
    return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + se * 1000


def format_time(ms):
    secs = ms // 1000
    days, rem = divmod(secs, 86400)
    y, m, d = civil_from_days(days)
    return f"{y:04}-{m:02}-{d:02}T{rem // 3600:02}:{rem // 60 % 60:02}:{rem % 60:02}Z"


def fixed(v, digits):
    """Rust's {:.N} of an f64 (Python spells NaN "nan")."""
    return "NaN" if math.isnan(v) else f"{v:.{digits}f}"


def alert_gap(c):
    """GAP_MS of an alert:GAP_MS config, or None for other modes."""
    if not c.startswith("alert:"):
        return None
    g = c[len("alert:"):]
    if not (g.isascii() and g.isdigit()) or int(g) <= 0:
        raise wb.UdfError(f"config {rust_debug(c)}: GAP_MS must be a positive integer")
    return int(g)


class Telemetry(wb.DoFn):
    @classmethod
    def describe(cls, config):
        if alert_gap(config.decode()) is None:
            return None
        return wb.Stateful().value("last").processing_timer("silence")

    def __init__(self, setup):
        c = setup.config_str()
        self.gap = alert_gap(c)
        if self.gap is not None:
            self.label = "alert"
        elif c == "parse":
            self.invalid = setup.output_index("invalid")
            self.label = None
        elif c.startswith("format:"):
            self.label = c[len("format:"):]
        else:
            raise wb.UdfError(f"unknown mode {rust_debug(c)}: use parse, format:LABEL or alert:GAP_MS")

    def process(self, element, out):
        if self.gap is not None:
            st = element.state
            prev = st.get("last")
            latest = element.timestamp if prev is None else max(coders.varint(prev), element.timestamp)
            st.write("last", coders.encode_varint(latest))
            st.set_timer("silence", st.now() + self.gap)
        elif self.label is None:
            self.parse(element, out)
        else:
            meter, rest = coders.split_kv(element.value)
            v = coders.double(rest)
            w = element.windows()
            start = format_time(w[0].start if w else 0)
            out.emit(f"{meter.decode()},{start},{self.label},{fixed(v, 3)}".encode())

    def parse(self, element, out):
        line = bytes(element.value).decode("utf-8", "replace").strip(WHITESPACE)
        if not line or line.startswith("meter_id,"):
            return
        f = [x.strip(WHITESPACE) for x in line.split(",")]
        if len(f) != 3 or not f[0]:
            why = "expected meter_id,timestamp,kwh"
        else:
            meter, ts, kwh = f
            t, k = parse_time(ts), parse_f64(kwh)
            if t is None:
                why = f"bad timestamp {rust_debug(ts)}"
            elif k is None or not math.isfinite(k) or k < 0:
                why = f"bad kWh value {rust_debug(kwh)}"
            else:
                out.emit_with_timestamp(coders.encode_kv(meter, coders.encode_double(k)), t)
                return
        out.emit_to(self.invalid, f"{line} # {why}".encode())


    def on_timer(self, timer, out):
        meter, _ = coders.read_nested(timer.key)
        st = timer.state
        last = st.get("last")
        if last is not None:
            out.emit(f"{bytes(meter).decode()},{format_time(coders.varint(last))},"
                     f"no reading for {self.gap // 1000}s".encode())
        st.clear("last")


wb.export_dofn(Telemetry)
