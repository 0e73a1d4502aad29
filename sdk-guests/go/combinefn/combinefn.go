// Package combinefn turns an ordinary Go type into a wasmbeam CombineFn
// component (the WIT world wasmbeam:udf/combinefn-udf). Accumulators are
// bytes the CombineFn owns; the runner stores and shuffles them.
//
//	type sum struct{}
//
//	func (sum) CreateAccumulator() ([]byte, error)                  { ... }
//	func (sum) AddInput(acc []byte, input []byte) ([]byte, error)   { ... }
//	func (sum) MergeAccumulators(accs [][]byte) ([]byte, error)     { ... }
//	func (sum) ExtractOutput(acc []byte) ([]byte, error)            { ... }
//
//	func init() { combinefn.Register(func(config []byte) (combinefn.CombineFn, error) { return sum{}, nil }) }
//	func main() {}
package combinefn

import (
	"errors"

	"wasmbeam.dev/guest/internal/abi"
	"wasmbeam.dev/guest/metrics"
)

// CombineFn combines values per key through byte accumulators. Slices it
// is given are only valid during the call; returned slices may alias the
// accumulator it was given.
type CombineFn interface {
	CreateAccumulator() ([]byte, error)
	AddInput(acc []byte, input []byte) ([]byte, error)
	MergeAccumulators(accs [][]byte) ([]byte, error)
	ExtractOutput(acc []byte) ([]byte, error)
}

var newFn func(config []byte) (CombineFn, error)
var fn CombineFn
var ret abi.Ret

// Register names the constructor the runner calls at setup.
func Register(f func(config []byte) (CombineFn, error)) { newFn = f }

func errorResult(err error) uint32 {
	metrics.Flush()
	ret.PutError(err.Error(), -1)
	return ret.Ptr()
}

type values struct {
	data    []byte
	offsets []uint32
}

func (v values) n() int { return len(v.offsets) - 1 }

func (v values) at(i int) []byte { return v.data[v.offsets[i]:v.offsets[i+1]] }

type builder struct {
	data    []byte
	offsets []uint32
}

func (b *builder) push(v []byte) {
	if len(b.offsets) == 0 {
		b.offsets = append(b.offsets, 0)
	}
	b.data = append(b.data, v...)
	b.offsets = append(b.offsets, uint32(len(b.data)))
}

func okValues(b *builder) uint32 {
	metrics.Flush()
	if len(b.offsets) == 0 {
		b.offsets = append(b.offsets, 0)
	}
	ret.PutByte(0, 0)
	abi.PutList(&ret, 4, b.data)
	abi.PutPacked(&ret, 12, b.offsets)
	return ret.Ptr()
}

//go:wasmexport wasmbeam:udf/combinefn@0.3.0#setup
func exportSetup(cfgPtr, cfgLen uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	if newFn == nil {
		return errorResult(errors.New("no CombineFn registered: call combinefn.Register in an init function"))
	}
	f, err := newFn(append([]byte(nil), abi.Bytes(cfgPtr, cfgLen)...))
	if err != nil {
		return errorResult(err)
	}
	fn = f
	return ret.Ptr()
}

//go:wasmexport wasmbeam:udf/combinefn@0.3.0#create-accumulator
func exportCreate() uint32 {
	defer abi.Reset()
	ret.Begin()
	acc, err := fn.CreateAccumulator()
	if err != nil {
		return errorResult(err)
	}
	metrics.Flush()
	ret.PutByte(0, 0)
	abi.PutList(&ret, 4, acc)
	return ret.Ptr()
}

//go:wasmexport wasmbeam:udf/combinefn@0.3.0#add-inputs
func exportAddInputs(ad, adn, ao, aon, id, idn, io, ion, ge, gen uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	accs := values{abi.Bytes(ad, adn), abi.PackedU32(ao, aon)}
	ins := values{abi.Bytes(id, idn), abi.PackedU32(io, ion)}
	ends := abi.PackedU32(ge, gen)
	var b builder
	start := 0
	for g, end := range ends {
		acc := accs.at(g)
		var err error
		for i := start; i < int(end); i++ {
			if acc, err = fn.AddInput(acc, ins.at(i)); err != nil {
				return errorResult(err)
			}
		}
		start = int(end)
		b.push(acc)
	}
	return okValues(&b)
}

//go:wasmexport wasmbeam:udf/combinefn@0.3.0#merge-accumulators
func exportMerge(ad, adn, ao, aon, ge, gen uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	accs := values{abi.Bytes(ad, adn), abi.PackedU32(ao, aon)}
	ends := abi.PackedU32(ge, gen)
	var b builder
	start := 0
	group := make([][]byte, 0, 8)
	for _, end := range ends {
		group = group[:0]
		for i := start; i < int(end); i++ {
			group = append(group, accs.at(i))
		}
		start = int(end)
		acc, err := fn.MergeAccumulators(group)
		if err != nil {
			return errorResult(err)
		}
		b.push(acc)
	}
	return okValues(&b)
}

//go:wasmexport wasmbeam:udf/combinefn@0.3.0#extract-outputs
func exportExtract(ad, adn, ao, aon uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	accs := values{abi.Bytes(ad, adn), abi.PackedU32(ao, aon)}
	var b builder
	for i := 0; i < accs.n(); i++ {
		out, err := fn.ExtractOutput(accs.at(i))
		if err != nil {
			return errorResult(err)
		}
		b.push(out)
	}
	return okValues(&b)
}
