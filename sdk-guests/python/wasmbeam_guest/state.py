"""User state and timers for stateful DoFns (contract 0.3.0).

A DoFn declares what it needs in a `describe(config)` classmethod that
returns a `Stateful`:

    class Dedup(wb.DoFn):
        @classmethod
        def describe(cls, config):
            return wb.Stateful().value("seen").event_timer("expire")

        def process(self, element, out):
            st = element.state
            if st.get("seen") is None:
                st.write("seen", b"1")
                out.emit(element.value)

Cells and timer families are named by their declared name (or index).
The runner shuffles the input by key and serves each element's key and
window; `on_timer(timer, out)` and `on_window_expiration(expiring, out)`
get the same `state` for the timer's key and window.
"""

from wasmbeam_guest._packed import split

STATE_KINDS = ("value", "bag", "map", "set", "ordered_list")
COMBINES = ("sum_int64", "min_int64", "max_int64", "sum_double",
            "min_double", "max_double", "count")

# Set by the component glue: the `state` import module.
_host = None


class Stateful:
    """The state cells and timer families a DoFn declares."""

    def __init__(self):
        self.cells = []      # (name, kind, combine or None)
        self.timers = []     # (name, "event" | "processing")
        self.window_expiration = False

    def _cell(self, name, kind, combine=None):
        self.cells.append((name, kind, combine))
        return self

    def value(self, name):
        return self._cell(name, "value")

    def bag(self, name):
        return self._cell(name, "bag")

    def combining(self, name, combine):
        if combine not in COMBINES:
            raise ValueError(f"unknown combine {combine!r}; one of {COMBINES}")
        return self._cell(name, "combining", combine)

    def map(self, name):
        return self._cell(name, "map")

    def set(self, name):
        return self._cell(name, "set")

    def ordered_list(self, name):
        return self._cell(name, "ordered_list")

    def event_timer(self, name):
        self.timers.append((name, "event"))
        return self

    def processing_timer(self, name):
        self.timers.append((name, "processing"))
        return self

    def on_window_expiration(self):
        self.window_expiration = True
        return self


class _Names:
    """Name -> index of the declared cells and timer families."""
    cells = {}
    timers = {}


def _index(table, what, ref):
    if isinstance(ref, int):
        return ref
    try:
        return table[ref]
    except KeyError:
        raise KeyError(f"no {what} named {ref!r} was declared in describe "
                       f"(declared: {sorted(table)})") from None


def _split(v):
    return [bytes(x) for x in split(v.data, v.offsets)]


class State:
    """The state and timers of one key and window during one call."""

    __slots__ = ("_scope",)

    def __init__(self, scope):
        self._scope = scope

    def _c(self, cell):
        return _index(_Names.cells, "state cell", cell)

    def read(self, cell):
        """Every entry of a cell, as a list of bytes (see wit/udf.wit)."""
        return _split(_host.read(self._c(cell), self._scope))

    def get(self, cell):
        """A value (or combining) cell's value, or None."""
        r = self.read(cell)
        return r[0] if r else None

    def write(self, cell, value):
        _host.write(self._c(cell), self._scope, value)

    def add(self, cell, value):
        """Append to a bag, add to a combining cell, insert into a set."""
        _host.add(self._c(cell), self._scope, value)

    def entries(self, cell):
        """A map's (key, value) pairs in key order."""
        r = self.read(cell)
        return list(zip(r[0::2], r[1::2]))

    def lookup(self, cell, key):
        r = _split(_host.lookup(self._c(cell), self._scope, key))
        return r[0] if r else None

    def contains(self, cell, key):
        return bool(_split(_host.lookup(self._c(cell), self._scope, key)))

    def put(self, cell, key, value):
        _host.put(self._c(cell), self._scope, key, value)

    def remove(self, cell, key):
        _host.remove(self._c(cell), self._scope, key)

    def add_at(self, cell, timestamp, value):
        _host.add_at(self._c(cell), self._scope, timestamp, value)

    def range(self, cell, start, limit):
        """An ordered list's (timestamp, value) entries in [start, limit)."""
        r = _split(_host.read_range(self._c(cell), self._scope, start, limit))
        return [(int.from_bytes(t, "little", signed=True), v)
                for t, v in zip(r[0::2], r[1::2])]

    def clear_range(self, cell, start, limit):
        _host.clear_range(self._c(cell), self._scope, start, limit)

    def clear(self, cell):
        _host.clear(self._c(cell), self._scope)

    def set_timer(self, family, fire, tag="", output_timestamp=None):
        """Set a timer to fire at `fire` ms (in its family's domain). Its
        outputs get `output_timestamp`, by default Beam's: `fire` for an
        event-time timer, the current element's (or firing timer's)
        timestamp for a processing-time timer."""
        if output_timestamp is None:
            output_timestamp = -(1 << 63)
        _host.set_timer(_index(_Names.timers, "timer family", family),
                        self._scope, tag, fire, output_timestamp)

    def clear_timer(self, family, tag=""):
        _host.clear_timer(_index(_Names.timers, "timer family", family),
                          self._scope, tag)

    def watermark(self):
        return _host.input_watermark()

    def now(self):
        return _host.processing_time()


class Timer:
    """A fired timer: `family` (its name), `tag`, `key` (nested encoding
    of the input's key), `window`, `fire` and `output_timestamp` (ms)."""

    __slots__ = ("family", "tag", "key", "window", "fire",
                 "output_timestamp", "state")


class Expiring:
    """A key and window whose window expired: `key`, `window`, `state`."""

    __slots__ = ("key", "window", "state")
