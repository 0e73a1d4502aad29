"""The classes a UDF author uses (no dependency on generated bindings)."""

GLOBAL_WINDOW_START = -9223372036854775
GLOBAL_WINDOW_END = 9223371950454775
INHERIT_TIMESTAMP = -9223372036854775808
NO_SOURCE = 0xFFFFFFFF

_registered = {}


class UdfError(Exception):
    """Raise to fail the bundle with this message."""


class Setup:
    """The transform's configuration."""

    def __init__(self, config, outputs):
        self.config = config
        self.outputs = outputs

    def config_str(self):
        return self.config.decode("utf-8")

    def output_index(self, tag):
        try:
            return self.outputs.index(tag)
        except ValueError:
            raise UdfError(
                f"the transform has no output {tag!r} (it has {self.outputs})")


class Window:
    """An interval window [start, end) in ms."""

    __slots__ = ("start", "end")

    def __init__(self, start, end):
        self.start = start
        self.end = end

    def is_global(self):
        return self.start == GLOBAL_WINDOW_START and self.end >= GLOBAL_WINDOW_END


class Element:
    """One input element. `value` is bytes; `timestamp` is ms."""

    __slots__ = ("value", "index", "_batch")

    @property
    def state(self):
        """The state and timers of this element's key and window
        (stateful DoFns only; see wasmbeam_guest.state)."""
        from wasmbeam_guest.state import State
        return State(self.index)

    @property
    def timestamp(self):
        return self._batch.timestamps[self.index]

    def windows(self):
        b = self._batch
        lo, hi = b.window_offsets[self.index], b.window_offsets[self.index + 1]
        return [Window(b.window_starts[i], b.window_ends[i]) for i in range(lo, hi)]


class Emitter:
    """Collects a bundle's outputs.

    `emit` and `emit_all` are the output list's own `append` and `extend`,
    so the common case costs no Python frame per output. Which input element
    an output came from is recovered from `_ends` (the output count after
    each element), and the rare non-main tags and explicit timestamps are
    kept sparsely by output index.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.values = []
        self._tags = {}
        self._times = {}
        # Write value (bytes) to the main output, in the element's windows.
        self.emit = self.values.append
        # Write every value of an iterable (bytes each) to the main output.
        self.emit_all = self.values.extend

    def emit_to(self, output, value):
        """Write value to output index `output` (see Setup.output_index)."""
        if output:
            self._tags[len(self.values)] = output
        self.values.append(value)

    def emit_with_timestamp(self, value, timestamp):
        """Write value to the main output at `timestamp` (ms)."""
        self._times[len(self.values)] = timestamp
        self.values.append(value)


class SideInput:
    """A materialised side input: `values` is a list of bytes."""

    def __init__(self, tag, kind, values):
        self.tag = tag
        self.kind = kind  # "iterable" or "multimap"
        self.values = values


class DoFn:
    """Base class of Python DoFns. Override process; the rest is optional."""

    def __init__(self, setup):
        self.setup = setup

    @classmethod
    def describe(cls, config):
        """The state and timers the DoFn uses: a wasmbeam_guest.Stateful,
        or None (the default) for a stateless DoFn."""
        return None

    def on_timer(self, timer, out):
        """A timer fired (see wasmbeam_guest.state.Timer)."""
        raise UdfError(f"timer {timer.family!r} fired, but the DoFn has no "
                       "on_timer method")

    def on_window_expiration(self, expiring, out):
        """A window with state expired (when describe asked for it)."""

    def side_input(self, side):
        raise UdfError(f"side input {side.tag!r} given, but the DoFn has no "
                       "side_input method")

    def process(self, element, out):
        raise NotImplementedError

    def finish_bundle(self, out):
        """Emit with out.emit_with_timestamp (global window)."""

    def teardown(self):
        pass


class CombineFn:
    """Base class of Python CombineFns; accumulators are bytes."""

    def __init__(self, config):
        self.config = config

    def create_accumulator(self):
        raise NotImplementedError

    def add_input(self, accumulator, value):
        raise NotImplementedError

    def merge_accumulators(self, accumulators):
        raise NotImplementedError

    def extract_output(self, accumulator):
        raise NotImplementedError


def export_dofn(cls):
    """Make `cls` (a DoFn subclass) this component's DoFn."""
    _registered["dofn"] = cls
    return cls


def export_combinefn(cls):
    """Make `cls` (a CombineFn subclass) this component's CombineFn."""
    _registered["combinefn"] = cls
    return cls
