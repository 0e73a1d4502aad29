"""Dedup's user functions in Python; the same modes and output as the Rust
version in ../udf (see its docs): `parse` and `dedup:TTL_MS`."""
import wasmbeam_guest as wb
from wasmbeam_guest import coders


def _ttl(config):
    if config == "parse":
        return None
    if not config.startswith("dedup:"):
        raise wb.UdfError(f"config {config!r}: expected `parse` or `dedup:TTL_MS`")
    t = config[len("dedup:"):]
    if not t.isdigit() or int(t) <= 0:
        raise wb.UdfError(f"config {config!r}: TTL_MS must be a positive integer")
    return int(t)


class Dedup(wb.DoFn):
    @classmethod
    def describe(cls, config):
        if _ttl(config.decode()) is None:
            return None
        return (wb.Stateful().value("seen").combining("dropped", "count")
                .event_timer("expire"))

    def __init__(self, setup):
        super().__init__(setup)
        self.ttl = _ttl(setup.config_str())
        if self.ttl is not None:
            self.dups = setup.output_index("dups")

    def process(self, element, out):
        if self.ttl is None:
            line = element.value.decode().strip()
            if not line:
                return
            id_, sep, ts = line.partition(",")
            try:
                t = int(ts.strip())
            except ValueError:
                t = None
            if not sep or t is None:
                raise wb.UdfError(f"line {line!r} is not `id,timestamp_ms`")
            out.emit_with_timestamp(coders.encode_kv(id_.encode(), line.encode()), t)
            return
        key, _ = coders.split_kv(element.value)
        st = element.state
        if st.get("seen") is None:
            st.write("seen", coders.encode_varint(element.timestamp))
            st.set_timer("expire", element.timestamp + self.ttl)
            out.emit(bytes(key))
        else:
            st.add("dropped", b"")

    def on_timer(self, timer, out):
        st = timer.state
        key, _ = coders.read_nested(timer.key)
        b = st.get("dropped")
        n = coders.varint(b) if b is not None else 0
        if n > 0:
            out.emit_to(self.dups, bytes(key) + b"," + str(n).encode())
        st.clear("seen")
        st.clear("dropped")


wb.export_dofn(Dedup)
