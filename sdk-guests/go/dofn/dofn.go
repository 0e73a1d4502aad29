// Package dofn turns an ordinary Go type into a wasmbeam DoFn component
// (the WIT world wasmbeam:udf/dofn-udf).
//
//	package main
//
//	import "wasmbeam.dev/guest/dofn"
//
//	type upper struct{}
//
//	func (upper) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
//		out.Emit(bytes.ToUpper(e.Value))
//		return nil
//	}
//
//	func init() { dofn.Register(func(*dofn.Setup) (dofn.DoFn, error) { return upper{}, nil }) }
//	func main() {}
//
// Build with `wasmbeam build DIR`. Element values are the encoded bytes of
// the PCollection's coder (outer context); see package coders.
package dofn

import (
	"errors"
	"fmt"

	"wasmbeam.dev/guest/internal/abi"
	"wasmbeam.dev/guest/metrics"
)

// Setup is what the transform was configured with.
type Setup struct {
	// Config is the transform's opaque config bytes.
	Config []byte
	// Outputs names the output tags, main output first.
	Outputs []string
}

// ConfigString is Config as text.
func (s *Setup) ConfigString() string { return string(s.Config) }

// OutputIndex is the index of output tag, for Emitter.EmitTo.
func (s *Setup) OutputIndex(tag string) (uint32, error) {
	for i, t := range s.Outputs {
		if t == tag {
			return uint32(i), nil
		}
	}
	return 0, fmt.Errorf("the transform has no output %q (it has %v)", tag, s.Outputs)
}

// Window is an interval window [Start, End) in ms.
type Window struct{ Start, End int64 }

// IsGlobal reports whether w is Beam's global window.
func (w Window) IsGlobal() bool { return w.Start == -9223372036854775 && w.End >= 9223371950454775 }

// Element is one input element. Value is only valid during the call.
type Element struct {
	Value     []byte
	Timestamp int64
	// Index in the current batch.
	Index int
	b     *batch
}

// Windows the element is in.
func (e *Element) Windows() []Window {
	lo, hi := e.b.winOff[e.Index], e.b.winOff[e.Index+1]
	out := make([]Window, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, Window{e.b.winStart[i], e.b.winEnd[i]})
	}
	return out
}

// Emitter collects a bundle's outputs.
type Emitter struct {
	data    []byte
	offsets []uint32
	tags    []uint32
	sources []uint32
	times   []int64
	source  uint32
	// Whether any output left the main output or set a timestamp; when
	// not, tags and times are sent empty (the contract's shorthand).
	anyTag, anyTime bool
}

const inherit = -9223372036854775808
const noSource = 0xFFFFFFFF

func (o *Emitter) push(tag uint32, v []byte, ts int64) {
	o.data = append(o.data, v...)
	o.offsets = append(o.offsets, uint32(len(o.data)))
	o.tags = append(o.tags, tag)
	o.sources = append(o.sources, o.source)
	o.times = append(o.times, ts)
	o.anyTag = o.anyTag || tag != 0
	o.anyTime = o.anyTime || ts != inherit
}

// Emit writes v to the main output, in the element's windows, at its time.
func (o *Emitter) Emit(v []byte) { o.push(0, v, inherit) }

// EmitTo writes v to output index out (see Setup.OutputIndex).
func (o *Emitter) EmitTo(out uint32, v []byte) { o.push(out, v, inherit) }

// EmitWithTimestamp writes v to the main output at ts (ms).
func (o *Emitter) EmitWithTimestamp(v []byte, ts int64) { o.push(0, v, ts) }

// FinishEmitter writes outputs from FinishBundle (global window).
type FinishEmitter struct{ e *Emitter }

// Emit writes v to output index out at ts.
func (f *FinishEmitter) Emit(out uint32, v []byte, ts int64) { f.e.push(out, v, ts) }

// SideInputKind says how a side input is accessed.
type SideInputKind uint8

const (
	// Iterable: every element (AsList, AsIter, AsSingleton, AsDict).
	Iterable SideInputKind = 0
	// Multimap: kv elements looked up by key.
	Multimap SideInputKind = 1
)

// SideInput is a materialised side input (values are copies).
type SideInput struct {
	Tag    string
	Kind   SideInputKind
	Values [][]byte
}

// DoFn processes elements.
type DoFn interface {
	ProcessElement(e *Element, out *Emitter) error
}

// SideInputLoader is implemented by DoFns that take side inputs.
type SideInputLoader interface {
	LoadSideInput(in SideInput) error
}

// BundleFinisher is implemented by DoFns that emit at the end of a bundle.
type BundleFinisher interface {
	FinishBundle(out *FinishEmitter) error
}

// TearDowner is implemented by DoFns that release resources.
type TearDowner interface {
	TearDown()
}

var newFn func(*Setup) (DoFn, error)
var fn DoFn

// Register names the constructor the runner calls at setup. Call it from
// an init function of package main.
func Register(f func(*Setup) (DoFn, error)) { newFn = f }

type batch struct {
	data     []byte
	offsets  []uint32
	times    []int64
	winOff   []uint32
	winStart []int64
	winEnd   []int64
}

func readBatch(p []uint32) *batch {
	return &batch{
		data:     abi.Bytes(p[0], p[1]),
		offsets:  abi.PackedU32(p[2], p[3]),
		times:    abi.PackedS64(p[4], p[5]),
		winOff:   abi.PackedU32(p[6], p[7]),
		winStart: abi.PackedS64(p[8], p[9]),
		winEnd:   abi.PackedS64(p[10], p[11]),
	}
}

var ret abi.Ret

// errorResult reports err; element is the failing element's index or -1.
func errorResult(err error, element int) uint32 {
	ret.PutError(err.Error(), element)
	return ret.Ptr()
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#setup
func exportSetup(cfgPtr, cfgLen, outPtr, outLen uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	s := &Setup{
		Config:  append([]byte(nil), abi.Bytes(cfgPtr, cfgLen)...),
		Outputs: abi.Strings(outPtr, outLen),
	}
	if newFn == nil {
		return errorResult(errors.New("no DoFn registered: call dofn.Register in an init function"), -1)
	}
	f, err := newFn(s)
	if err != nil {
		return errorResult(err, -1)
	}
	fn = f
	return ret.Ptr()
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#load-side-input
func exportLoadSideInput(args uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	tag := abi.String(abi.Word(args, 0), abi.Word(args, 4))
	kind := SideInputKind(abi.Byte(args, 8))
	p := make([]uint32, 14)
	for i := range p {
		p[i] = abi.Word(args, 12+4*uint32(i))
	}
	b := readBatch(p)
	n := len(b.offsets) - 1
	vals := make([][]byte, 0, max(n, 0))
	for i := 0; i < n; i++ {
		vals = append(vals, append([]byte(nil), b.data[b.offsets[i]:b.offsets[i+1]]...))
	}
	l, ok := fn.(SideInputLoader)
	if !ok {
		return errorResult(fmt.Errorf("side input %q given, but the DoFn has no LoadSideInput method", tag), -1)
	}
	if err := l.LoadSideInput(SideInput{Tag: tag, Kind: kind, Values: vals}); err != nil {
		return errorResult(err, -1)
	}
	return ret.Ptr()
}

var out Emitter

func (o *Emitter) reset() {
	o.data = o.data[:0]
	o.offsets = append(o.offsets[:0], 0)
	o.tags = o.tags[:0]
	o.sources = o.sources[:0]
	o.times = o.times[:0]
	o.anyTag, o.anyTime = false, false
}

func okOutputs() uint32 {
	metrics.Flush()
	ret.PutByte(0, 0)
	abi.PutList(&ret, 4, out.data)
	abi.PutPacked(&ret, 12, out.offsets)
	if out.anyTag {
		abi.PutPacked(&ret, 20, out.tags)
	}
	abi.PutPacked(&ret, 28, out.sources)
	if out.anyTime {
		abi.PutPacked(&ret, 36, out.times)
	}
	return ret.Ptr()
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#process-bundle
func exportProcessBundle(d0, d1, o0, o1, t0, t1, wo0, wo1, ws0, ws1, we0, we1, p0, p1 uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	b := readBatch([]uint32{d0, d1, o0, o1, t0, t1, wo0, wo1, ws0, ws1, we0, we1})
	out.reset()
	n := len(b.offsets) - 1
	e := Element{b: b}
	for i := 0; i < n; i++ {
		e.Value = b.data[b.offsets[i]:b.offsets[i+1]]
		e.Timestamp = b.times[i]
		e.Index = i
		out.source = uint32(i)
		if err := fn.ProcessElement(&e, &out); err != nil {
			metrics.Flush()
			return errorResult(err, i)
		}
	}
	return okOutputs()
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#finish-bundle
func exportFinishBundle() uint32 {
	defer abi.Reset()
	ret.Begin()
	out.reset()
	out.source = noSource
	if f, ok := fn.(BundleFinisher); ok {
		if err := f.FinishBundle(&FinishEmitter{&out}); err != nil {
			metrics.Flush()
			return errorResult(err, -1)
		}
	}
	return okOutputs()
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#teardown
func exportTeardown() {
	defer abi.Reset()
	if t, ok := fn.(TearDowner); ok {
		t.TearDown()
	}
}
