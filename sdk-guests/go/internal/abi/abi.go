// Package abi is the canonical-ABI plumbing shared by the dofn and
// combinefn packages: the static arena behind cabi_realloc, reading lists
// the host wrote into it, return areas, and the host imports.
//
// Why an arena: the component model forbids leaving the instance while the
// host is inside cabi_realloc, and Go's allocator may call the clock, which
// is an import. So cabi_realloc hands out space from a fixed region outside
// the Go heap, and every export resets it when it returns (arguments are
// only valid during the call that received them).
package abi

import "unsafe"

// The WASI preview1 adapter needs a little memory that lives as long as
// the instance. It must not come from memory.grow: Go's allocator assumes
// it owns every page past its heap's end, so a page grown behind its back
// is handed out again and both sides corrupt each other.
const adapterBytes = 1 << 20

var adapterArena [adapterBytes]byte
var adapterUsed uintptr

//go:wasmexport cabi_realloc_adapter
func cabiReallocAdapter(old uint32, oldSize uint32, align uint32, newSize uint32) uint32 {
	return bump(adapterArena[:], &adapterUsed, old, oldSize, align, newSize)
}

// ArenaBytes bounds the arguments of one call (a bundle's elements and
// their metadata). Larger bundles fail with an "arena exhausted" trap.
const ArenaBytes = 32 << 20

var arena [ArenaBytes]byte
var arenaUsed uintptr

//go:wasmexport cabi_realloc
func cabiRealloc(old uint32, oldSize uint32, align uint32, newSize uint32) uint32 {
	// Packed lists (list<u8> holding u32s and s64s) are viewed in place as
	// []uint32 and []int64, so every argument starts 8-aligned.
	if align < 8 {
		align = 8
	}
	return bump(arena[:], &arenaUsed, old, oldSize, align, newSize)
}

// bump allocates from region; it traps when the region is full (no import
// may run inside a realloc, so there is no way to report it).
func bump(region []byte, used *uintptr, old, oldSize, align, newSize uint32) uint32 {
	base := uintptr(unsafe.Pointer(&region[0]))
	limit := base + uintptr(len(region))
	a := uintptr(align)
	if a == 0 {
		a = 1
	}
	start := (base + *used + a - 1) &^ (a - 1)
	end := start + uintptr(newSize)
	if end > limit {
		// A trap is the only safe answer here (no imports may run).
		var p *int
		_ = *p
	}
	if old != 0 && oldSize != 0 {
		n := oldSize
		if newSize < n {
			n = newSize
		}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(start)), n), unsafe.Slice((*byte)(unsafe.Pointer(uintptr(old))), n))
	}
	*used = end - base
	return uint32(start)
}

// Reset frees everything cabi_realloc handed out. Exports call it when
// they return.
func Reset() { arenaUsed = 0 }

// Bytes views a list<u8> the host passed (valid during the call).
func Bytes(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}

// U32s views a list<u32>.
func U32s(ptr, n uint32) []uint32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(uintptr(ptr))), n)
}

// S64s views a list<s64>.
func S64s(ptr, n uint32) []int64 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*int64)(unsafe.Pointer(uintptr(ptr))), n)
}

// PackedU32 views a packed-u32 argument of nbytes bytes (little-endian,
// which is wasm's byte order, so no conversion is needed).
func PackedU32(ptr, nbytes uint32) []uint32 { return U32s(ptr, nbytes/4) }

// PackedS64 views a packed-s64 argument of nbytes bytes.
func PackedS64(ptr, nbytes uint32) []int64 { return S64s(ptr, nbytes/8) }

// String copies a string the host passed.
func String(ptr, n uint32) string {
	return string(Bytes(ptr, n))
}

// Strings reads a list<string>: n (ptr, len) pairs at ptr.
func Strings(ptr, n uint32) []string {
	pairs := U32s(ptr, n*2)
	out := make([]string, n)
	for i := range out {
		out[i] = String(pairs[2*i], pairs[2*i+1])
	}
	return out
}

// Word reads the u32 at ptr+off.
func Word(ptr uint32, off uint32) uint32 {
	return *(*uint32)(unsafe.Pointer(uintptr(ptr + off)))
}

// Byte reads the u8 at ptr+off.
func Byte(ptr uint32, off uint32) byte {
	return *(*byte)(unsafe.Pointer(uintptr(ptr + off)))
}

// Addr is the address of the first element of a slice (0 when empty).
func Addr[T any](s []T) uint32 {
	if len(s) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&s[0])))
}

// Ret is a return area; results point into Go memory kept alive in keep
// until the next call (Go's collector does not move objects).
type Ret struct {
	words [16]uint32
	keep  []any
}

// Begin clears the area for a new result.
func (r *Ret) Begin() {
	r.words = [16]uint32{}
	r.keep = r.keep[:0]
}

// Put stores the u32 at byte offset off.
func (r *Ret) Put(off int, v uint32) { r.words[off/4] = v }

// PutByte stores a u8 at byte offset off.
func (r *Ret) PutByte(off int, v byte) {
	p := (*[64]byte)(unsafe.Pointer(&r.words))
	p[off] = v
}

// Keep holds v alive until the next Begin.
func (r *Ret) Keep(v any) { r.keep = append(r.keep, v) }

// Ptr is the area's address.
func (r *Ret) Ptr() uint32 { return uint32(uintptr(unsafe.Pointer(&r.words))) }

// PutError writes result::err(udf-error) at offset 0, payload at 4.
func (r *Ret) PutError(message string, element int) {
	msg := []byte(message)
	r.Keep(msg)
	r.PutByte(0, 1)
	r.Put(4, Addr(msg))
	r.Put(8, uint32(len(msg)))
	if element >= 0 {
		r.PutByte(12, 1)
		r.Put(16, uint32(element))
	}
}

// PutList writes a list's (ptr, len) at offset off.
func PutList[T any](r *Ret, off int, s []T) {
	r.Keep(s)
	r.Put(off, Addr(s))
	r.Put(off+4, uint32(len(s)))
}

// PutPacked writes s as a packed list (a list<u8> of its bytes) at offset
// off: s's memory is passed as is, since wasm is little-endian.
func PutPacked[T uint32 | int64](r *Ret, off int, s []T) {
	var zero T
	r.Keep(s)
	r.Put(off, Addr(s))
	r.Put(off+4, uint32(len(s))*uint32(unsafe.Sizeof(zero)))
}
