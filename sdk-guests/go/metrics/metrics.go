// Package metrics offers Beam user metrics to Go UDFs: counters,
// distributions and gauges. Updates are aggregated in the instance and
// handed to the host once per metric at the end of each bundle call.
package metrics

import (
	"sort"

	"wasmbeam.dev/guest/internal/abi"
)

type dist struct{ count, sum, min, max int64 }

var (
	counters = map[string]int64{}
	dists    = map[string]*dist{}
	gauges   = map[string]int64{}
)

// Counter adds delta to the counter name (a Beam sum_int64 metric). A name
// "namespace/name" keeps its namespace in Beam's metric results.
func Counter(name string, delta int64) { counters[name] += delta }

// Distribution records value into name (a Beam distribution_int64 metric).
func Distribution(name string, value int64) {
	d, ok := dists[name]
	if !ok {
		dists[name] = &dist{1, value, value, value}
		return
	}
	d.count++
	d.sum += value
	if value < d.min {
		d.min = value
	}
	if value > d.max {
		d.max = value
	}
}

// Gauge sets name to value (a Beam latest_int64 metric).
func Gauge(name string, value int64) { gauges[name] = value }

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Flush sends pending updates to the host. The SDK calls it.
func Flush() {
	for _, k := range keys(counters) {
		abi.Counter(k, counters[k])
		delete(counters, k)
	}
	for _, k := range keys(dists) {
		d := dists[k]
		abi.Distribution(k, d.count, d.sum, d.min, d.max)
		delete(dists, k)
	}
	for _, k := range keys(gauges) {
		abi.Gauge(k, gauges[k])
		delete(gauges, k)
	}
}

// Log levels for Log.
const (
	Trace = 0
	Debug = 1
	Info  = 2
	Warn  = 3
	Error = 4
)

// Log writes a line to the runner's log for this transform.
func Log(level int, message string) { abi.Log(uint32(level), message) }
