package dofn

import (
	"encoding/binary"
	"fmt"

	"wasmbeam.dev/guest/internal/abi"
)

// Combine is a runner-side combine for a combining cell.
type Combine uint8

// The built-in combines (see wit/udf.wit builtin-combine).
const (
	SumInt64 Combine = iota
	MinInt64
	MaxInt64
	SumDouble
	MinDouble
	MaxDouble
	Count
)

// Cell is a declared state cell: the index of its declaration.
type Cell uint32

// TimerFamily is a declared timer family: the index of its declaration.
type TimerFamily uint32

type cellDecl struct {
	name    string
	kind    uint8 // 0 value, 1 bag, 2 combining, 3 map, 4 set, 5 ordered list
	combine Combine
}

type timerDecl struct {
	name       string
	processing bool
}

// Stateful declares a DoFn's state cells and timer families, numbered in
// declaration order. Register it with Describe.
type Stateful struct {
	cells            []cellDecl
	timers           []timerDecl
	windowExpiration bool
}

// NewStateful starts an empty declaration.
func NewStateful() *Stateful { return &Stateful{} }

func (s *Stateful) cell(name string, kind uint8, c Combine) *Stateful {
	s.cells = append(s.cells, cellDecl{name, kind, c})
	return s
}

// Value declares a value cell.
func (s *Stateful) Value(name string) *Stateful { return s.cell(name, 0, 0) }

// Bag declares a bag cell.
func (s *Stateful) Bag(name string) *Stateful { return s.cell(name, 1, 0) }

// Combining declares a cell the runner combines with c.
func (s *Stateful) Combining(name string, c Combine) *Stateful { return s.cell(name, 2, c) }

// Map declares a map cell.
func (s *Stateful) Map(name string) *Stateful { return s.cell(name, 3, 0) }

// Set declares a set cell.
func (s *Stateful) Set(name string) *Stateful { return s.cell(name, 4, 0) }

// OrderedList declares an ordered-list cell.
func (s *Stateful) OrderedList(name string) *Stateful { return s.cell(name, 5, 0) }

// EventTimer declares an event-time timer family.
func (s *Stateful) EventTimer(name string) *Stateful {
	s.timers = append(s.timers, timerDecl{name, false})
	return s
}

// ProcessingTimer declares a processing-time timer family.
func (s *Stateful) ProcessingTimer(name string) *Stateful {
	s.timers = append(s.timers, timerDecl{name, true})
	return s
}

// OnWindowExpiration asks for OnWindowExpiration calls (see WindowExpirer).
func (s *Stateful) OnWindowExpiration() *Stateful {
	s.windowExpiration = true
	return s
}

var describeFn func(config []byte) (*Stateful, error)

// Describe registers the function that declares the DoFn's state and
// timers from its config. Without it the DoFn is stateless.
func Describe(f func(config []byte) (*Stateful, error)) { describeFn = f }

// State is the state and timers of one key and window during one call.
type State struct {
	scope uint32
}

// State of the element's key and window (stateful DoFns only).
func (e *Element) State() State { return State{uint32(e.Index)} }

// Read returns a cell's entries (see wit/udf.wit `read`).
func (s State) Read(c Cell) [][]byte { return abi.StateRead(uint32(c), s.scope) }

// Get returns a value or combining cell's value.
func (s State) Get(c Cell) ([]byte, bool) {
	r := s.Read(c)
	if len(r) == 0 {
		return nil, false
	}
	return r[0], true
}

// Write replaces a value cell's value.
func (s State) Write(c Cell, v []byte) { abi.StateWrite(uint32(c), s.scope, v) }

// Add appends to a bag, adds to a combining cell, or inserts into a set.
func (s State) Add(c Cell, v []byte) { abi.StateAdd(uint32(c), s.scope, v) }

// Entries returns a map's (key, value) pairs in key order.
func (s State) Entries(c Cell) [][2][]byte {
	r := s.Read(c)
	out := make([][2][]byte, 0, len(r)/2)
	for i := 0; i+1 < len(r); i += 2 {
		out = append(out, [2][]byte{r[i], r[i+1]})
	}
	return out
}

// Lookup returns a map's value for key.
func (s State) Lookup(c Cell, key []byte) ([]byte, bool) {
	r := abi.StateLookup(uint32(c), s.scope, key)
	if len(r) == 0 {
		return nil, false
	}
	return r[0], true
}

// Contains reports whether a set (or map) holds key.
func (s State) Contains(c Cell, key []byte) bool { _, ok := s.Lookup(c, key); return ok }

// Put puts a map entry.
func (s State) Put(c Cell, key, v []byte) { abi.StatePut(uint32(c), s.scope, key, v) }

// Remove removes a map or set key.
func (s State) Remove(c Cell, key []byte) { abi.StateRemove(uint32(c), s.scope, key) }

// AddAt adds v to an ordered list at ts.
func (s State) AddAt(c Cell, ts int64, v []byte) { abi.StateAddAt(uint32(c), s.scope, ts, v) }

// TimedValue is an ordered-list entry.
type TimedValue struct {
	Timestamp int64
	Value     []byte
}

// Range returns an ordered list's entries in [start, limit).
func (s State) Range(c Cell, start, limit int64) []TimedValue {
	r := abi.StateReadRange(uint32(c), s.scope, start, limit)
	out := make([]TimedValue, 0, len(r)/2)
	for i := 0; i+1 < len(r); i += 2 {
		out = append(out, TimedValue{int64(binary.LittleEndian.Uint64(r[i])), r[i+1]})
	}
	return out
}

// ClearRange removes an ordered list's entries in [start, limit).
func (s State) ClearRange(c Cell, start, limit int64) {
	abi.StateClearRange(uint32(c), s.scope, start, limit)
}

// Clear empties a cell.
func (s State) Clear(c Cell) { abi.StateClear(uint32(c), s.scope) }

// DefaultOutput as an output timestamp means Beam's default: the fire
// time for event-time timers, the current element's (or timer's)
// timestamp for processing-time timers.
const DefaultOutput int64 = -9223372036854775808

// SetTimer sets the family's default timer to fire at fire (ms in its
// domain), with Beam's default output timestamp.
func (s State) SetTimer(f TimerFamily, fire int64) {
	s.SetTimerTagged(f, "", fire, DefaultOutput)
}

// SetTimerTagged sets timer tag of family f, whose outputs get output.
func (s State) SetTimerTagged(f TimerFamily, tag string, fire, output int64) {
	abi.StateSetTimer(uint32(f), s.scope, tag, fire, output)
}

// ClearTimer cancels the family's default timer.
func (s State) ClearTimer(f TimerFamily) { abi.StateClearTimer(uint32(f), s.scope, "") }

// ClearTimerTagged cancels timer tag of family f.
func (s State) ClearTimerTagged(f TimerFamily, tag string) {
	abi.StateClearTimer(uint32(f), s.scope, tag)
}

// Watermark is the input watermark (ms).
func (s State) Watermark() int64 { return abi.StateInputWatermark() }

// Now is the runner's processing time (ms).
func (s State) Now() int64 { return abi.StateProcessingTime() }

// Timer is a fired timer. Key is the nested encoding of the input's key.
type Timer struct {
	Family          TimerFamily
	Tag             string
	Key             []byte
	Window          Window
	Fire            int64
	OutputTimestamp int64
	scope           uint32
}

// State of the timer's key and window.
func (t *Timer) State() State { return State{t.scope} }

// Expiring is a key and window whose window expired.
type Expiring struct {
	Key    []byte
	Window Window
	scope  uint32
}

// State of the expiring key and window (cleared after the call).
func (x *Expiring) State() State { return State{x.scope} }

// TimerHandler is implemented by DoFns with timers.
type TimerHandler interface {
	OnTimer(t *Timer, out *Emitter) error
}

// WindowExpirer is implemented by DoFns that asked for OnWindowExpiration.
type WindowExpirer interface {
	OnWindowExpiration(x *Expiring, out *Emitter) error
}

var keepDescribe []any

//go:wasmexport wasmbeam:udf/dofn@0.3.0#describe
func exportDescribe(cfgPtr, cfgLen uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	s := NewStateful()
	if describeFn != nil {
		d, err := describeFn(append([]byte(nil), abi.Bytes(cfgPtr, cfgLen)...))
		if err != nil {
			return errorResult(err, -1)
		}
		if d != nil {
			s = d
		}
	}
	// list<state-cell>: 12 bytes each (name ptr, name len, kind tag, payload).
	keepDescribe = keepDescribe[:0]
	cells := make([]byte, 12*len(s.cells))
	for i, c := range s.cells {
		name := []byte(c.name)
		keepDescribe = append(keepDescribe, name)
		binary.LittleEndian.PutUint32(cells[12*i:], abi.Addr(name))
		binary.LittleEndian.PutUint32(cells[12*i+4:], uint32(len(name)))
		cells[12*i+8] = c.kind
		cells[12*i+9] = byte(c.combine)
	}
	timers := make([]byte, 12*len(s.timers))
	for i, t := range s.timers {
		name := []byte(t.name)
		keepDescribe = append(keepDescribe, name)
		binary.LittleEndian.PutUint32(timers[12*i:], abi.Addr(name))
		binary.LittleEndian.PutUint32(timers[12*i+4:], uint32(len(name)))
		if t.processing {
			timers[12*i+8] = 1
		}
	}
	ret.PutByte(0, 0)
	ret.Keep(cells)
	ret.Put(4, abi.Addr(cells))
	ret.Put(8, uint32(len(s.cells)))
	ret.Keep(timers)
	ret.Put(12, abi.Addr(timers))
	ret.Put(16, uint32(len(s.timers)))
	if s.windowExpiration {
		ret.PutByte(20, 1)
	}
	return ret.Ptr()
}

func firstWindows(b *batch) []Window {
	n := len(b.winOff) - 1
	out := make([]Window, 0, max(n, 0))
	for i := 0; i < n; i++ {
		out = append(out, Window{b.winStart[b.winOff[i]], b.winEnd[b.winOff[i]]})
	}
	return out
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#on-timer
func exportOnTimer(args uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	p := make([]uint32, 14)
	for i := range p {
		p[i] = abi.Word(args, 4*uint32(i))
	}
	b := readBatch(p)
	fams := abi.PackedU32(abi.Word(args, 56), abi.Word(args, 60))
	tagData := abi.Bytes(abi.Word(args, 64), abi.Word(args, 68))
	tagOffs := abi.PackedU32(abi.Word(args, 72), abi.Word(args, 76))
	fires := abi.PackedS64(abi.Word(args, 80), abi.Word(args, 84))
	windows := firstWindows(b)
	out.reset()
	h, ok := fn.(TimerHandler)
	n := len(b.offsets) - 1
	for i := 0; i < n; i++ {
		if !ok {
			return errorResult(fmt.Errorf("timer family %d fired, but the DoFn has no OnTimer method", fams[i]), i)
		}
		t := Timer{
			Family:          TimerFamily(fams[i]),
			Tag:             string(tagData[tagOffs[i]:tagOffs[i+1]]),
			Key:             b.data[b.offsets[i]:b.offsets[i+1]],
			Window:          windows[i],
			Fire:            fires[i],
			OutputTimestamp: b.times[i],
			scope:           uint32(i),
		}
		out.source = uint32(i)
		if err := h.OnTimer(&t, &out); err != nil {
			return errorResult(err, i)
		}
	}
	return okOutputs()
}

//go:wasmexport wasmbeam:udf/dofn@0.3.0#on-window-expiration
func exportOnWindowExpiration(d0, d1, o0, o1, t0, t1, wo0, wo1, ws0, ws1, we0, we1, p0, p1 uint32) uint32 {
	defer abi.Reset()
	ret.Begin()
	b := readBatch([]uint32{d0, d1, o0, o1, t0, t1, wo0, wo1, ws0, ws1, we0, we1})
	windows := firstWindows(b)
	out.reset()
	h, ok := fn.(WindowExpirer)
	n := len(b.offsets) - 1
	for i := 0; ok && i < n; i++ {
		x := Expiring{Key: b.data[b.offsets[i]:b.offsets[i+1]], Window: windows[i], scope: uint32(i)}
		out.source = uint32(i)
		if err := h.OnWindowExpiration(&x, &out); err != nil {
			return errorResult(err, i)
		}
	}
	return okOutputs()
}
