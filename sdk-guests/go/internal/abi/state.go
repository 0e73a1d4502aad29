package abi

import "unsafe"

// The wasmbeam:udf/state imports (contract 0.3.0), lowered by hand: list
// arguments are (pointer, length) pairs, and a `values` result is written
// by the host at a return pointer as four words (data pointer, data
// length, offsets pointer, offsets length), in memory the host got from
// cabi_realloc (the arena, valid until the export returns).

//go:wasmimport wasmbeam:udf/state@0.3.0 read
func stateRead(cell, scope uint32, ret unsafe.Pointer)

//go:wasmimport wasmbeam:udf/state@0.3.0 read-range
func stateReadRange(cell, scope uint32, start, limit int64, ret unsafe.Pointer)

//go:wasmimport wasmbeam:udf/state@0.3.0 lookup
func stateLookup(cell, scope uint32, kp unsafe.Pointer, kn uint32, ret unsafe.Pointer)

//go:wasmimport wasmbeam:udf/state@0.3.0 write
func stateWrite(cell, scope uint32, vp unsafe.Pointer, vn uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 add
func stateAdd(cell, scope uint32, vp unsafe.Pointer, vn uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 put
func statePut(cell, scope uint32, kp unsafe.Pointer, kn uint32, vp unsafe.Pointer, vn uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 add-at
func stateAddAt(cell, scope uint32, ts int64, vp unsafe.Pointer, vn uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 remove
func stateRemove(cell, scope uint32, kp unsafe.Pointer, kn uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 clear
func stateClear(cell, scope uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 clear-range
func stateClearRange(cell, scope uint32, start, limit int64)

//go:wasmimport wasmbeam:udf/state@0.3.0 set-timer
func stateSetTimer(family, scope uint32, tp unsafe.Pointer, tn uint32, fire, output int64)

//go:wasmimport wasmbeam:udf/state@0.3.0 clear-timer
func stateClearTimer(family, scope uint32, tp unsafe.Pointer, tn uint32)

//go:wasmimport wasmbeam:udf/state@0.3.0 input-watermark
func stateInputWatermark() int64

//go:wasmimport wasmbeam:udf/state@0.3.0 processing-time
func stateProcessingTime() int64

func bytesPtr(b []byte) (unsafe.Pointer, uint32) {
	if len(b) == 0 {
		return nil, 0
	}
	return unsafe.Pointer(&b[0]), uint32(len(b))
}

// values copies a `values` result out of the arena.
func values(w *[4]uint32) [][]byte {
	data := Bytes(w[0], w[1])
	offs := PackedU32(w[2], w[3])
	if len(offs) < 2 {
		return nil
	}
	out := make([][]byte, 0, len(offs)-1)
	for i := 0; i+1 < len(offs); i++ {
		out = append(out, append([]byte(nil), data[offs[i]:offs[i+1]]...))
	}
	return out
}

// StateRead is the `read` import.
func StateRead(cell, scope uint32) [][]byte {
	var w [4]uint32
	stateRead(cell, scope, unsafe.Pointer(&w))
	return values(&w)
}

// StateReadRange is the `read-range` import.
func StateReadRange(cell, scope uint32, start, limit int64) [][]byte {
	var w [4]uint32
	stateReadRange(cell, scope, start, limit, unsafe.Pointer(&w))
	return values(&w)
}

// StateLookup is the `lookup` import.
func StateLookup(cell, scope uint32, key []byte) [][]byte {
	var w [4]uint32
	p, n := bytesPtr(key)
	stateLookup(cell, scope, p, n, unsafe.Pointer(&w))
	return values(&w)
}

// StateWrite is the `write` import.
func StateWrite(cell, scope uint32, v []byte) {
	p, n := bytesPtr(v)
	stateWrite(cell, scope, p, n)
}

// StateAdd is the `add` import.
func StateAdd(cell, scope uint32, v []byte) {
	p, n := bytesPtr(v)
	stateAdd(cell, scope, p, n)
}

// StatePut is the `put` import.
func StatePut(cell, scope uint32, k, v []byte) {
	kp, kn := bytesPtr(k)
	vp, vn := bytesPtr(v)
	statePut(cell, scope, kp, kn, vp, vn)
}

// StateAddAt is the `add-at` import.
func StateAddAt(cell, scope uint32, ts int64, v []byte) {
	p, n := bytesPtr(v)
	stateAddAt(cell, scope, ts, p, n)
}

// StateRemove is the `remove` import.
func StateRemove(cell, scope uint32, k []byte) {
	p, n := bytesPtr(k)
	stateRemove(cell, scope, p, n)
}

// StateClear is the `clear` import.
func StateClear(cell, scope uint32) { stateClear(cell, scope) }

// StateClearRange is the `clear-range` import.
func StateClearRange(cell, scope uint32, start, limit int64) {
	stateClearRange(cell, scope, start, limit)
}

// StateSetTimer is the `set-timer` import.
func StateSetTimer(family, scope uint32, tag string, fire, output int64) {
	p, n := strPtr(tag)
	stateSetTimer(family, scope, p, n, fire, output)
}

// StateClearTimer is the `clear-timer` import.
func StateClearTimer(family, scope uint32, tag string) {
	p, n := strPtr(tag)
	stateClearTimer(family, scope, p, n)
}

// StateInputWatermark is the `input-watermark` import.
func StateInputWatermark() int64 { return stateInputWatermark() }

// StateProcessingTime is the `processing-time` import.
func StateProcessingTime() int64 { return stateProcessingTime() }
