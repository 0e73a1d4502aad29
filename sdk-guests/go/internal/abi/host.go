package abi

import "unsafe"

//go:wasmimport wasmbeam:udf/host@0.3.0 log
func hostLog(level uint32, ptr unsafe.Pointer, n uint32)

//go:wasmimport wasmbeam:udf/host@0.3.0 counter
func hostCounter(ptr unsafe.Pointer, n uint32, delta int64)

//go:wasmimport wasmbeam:udf/host@0.3.0 distribution
func hostDistribution(ptr unsafe.Pointer, n uint32, count, sum, min, max int64)

//go:wasmimport wasmbeam:udf/host@0.3.0 gauge
func hostGauge(ptr unsafe.Pointer, n uint32, value int64)

func strPtr(s string) (unsafe.Pointer, uint32) {
	if len(s) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(unsafe.StringData(s)), uint32(len(s))
}

// Log writes a line to the runner's log (levels 0 trace .. 4 error).
func Log(level uint32, msg string) {
	p, n := strPtr(msg)
	hostLog(level, p, n)
}

// Counter adds delta to a user counter.
func Counter(name string, delta int64) {
	p, n := strPtr(name)
	hostCounter(p, n, delta)
}

// Distribution merges a pre-aggregated distribution.
func Distribution(name string, count, sum, min, max int64) {
	p, n := strPtr(name)
	hostDistribution(p, n, count, sum, min, max)
}

// Gauge sets a gauge.
func Gauge(name string, value int64) {
	p, n := strPtr(name)
	hostGauge(p, n, value)
}
