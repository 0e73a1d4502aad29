"""Beam user metrics, aggregated per bundle and sent to the host once per
metric. A name "namespace/name" keeps its namespace."""

_counters = {}
_dists = {}
_gauges = {}


def counter(name, delta=1):
    _counters[name] = _counters.get(name, 0) + delta


def distribution(name, value):
    d = _dists.get(name)
    if d is None:
        _dists[name] = [1, value, value, value]
    else:
        d[0] += 1
        d[1] += value
        d[2] = min(d[2], value)
        d[3] = max(d[3], value)


def gauge(name, value):
    _gauges[name] = value


def _flush(host):
    for k in sorted(_counters):
        host.counter(k, _counters[k])
    for k in sorted(_dists):
        c, s, lo, hi = _dists[k]
        host.distribution(k, c, s, lo, hi)
    for k in sorted(_gauges):
        host.gauge(k, _gauges[k])
    _counters.clear()
    _dists.clear()
    _gauges.clear()
