// Package coders reads and writes Beam's standard encodings, as element
// values arrive and must leave: in the outer context, where a kv's key is
// nested (length-prefixed for bytes and strings) and its value is outer.
package coders

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrTruncated reports input that ends inside a value.
var ErrTruncated = errors.New("encoded value is truncated")

// AppendVarInt appends Beam's varint (beam:coder:varint:v1) of v.
func AppendVarInt(b []byte, v int64) []byte {
	u := uint64(v)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

// ReadVarInt decodes a varint at the start of b; n is the bytes used.
func ReadVarInt(b []byte) (v int64, n int, err error) {
	var u uint64
	var shift uint
	for i, c := range b {
		if i == 10 {
			return 0, 0, errors.New("varint is longer than 10 bytes")
		}
		u |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return int64(u), i + 1, nil
		}
		shift += 7
	}
	return 0, 0, ErrTruncated
}

// VarInt decodes a whole outer-context varint value.
func VarInt(b []byte) (int64, error) {
	v, n, err := ReadVarInt(b)
	if err != nil {
		return 0, err
	}
	if n != len(b) {
		return 0, fmt.Errorf("%d bytes after a varint", len(b)-n)
	}
	return v, nil
}

// AppendNested appends bytes or a UTF-8 string in the nested context
// (varint length, then the bytes).
func AppendNested(b []byte, v []byte) []byte {
	b = AppendVarInt(b, int64(len(v)))
	return append(b, v...)
}

// ReadNested reads a nested bytes/string value; rest follows it.
func ReadNested(b []byte) (v []byte, rest []byte, err error) {
	n, used, err := ReadVarInt(b)
	if err != nil {
		return nil, nil, err
	}
	if n < 0 || int64(len(b)-used) < n {
		return nil, nil, ErrTruncated
	}
	end := used + int(n)
	return b[used:end], b[end:], nil
}

// SplitKV splits kv<bytes|string, V>: the nested key and the outer value.
func SplitKV(b []byte) (key []byte, value []byte, err error) {
	return ReadNested(b)
}

// AppendKV appends kv<bytes|string, V> given the value's outer encoding.
func AppendKV(b []byte, key []byte, value []byte) []byte {
	return append(AppendNested(b, key), value...)
}

// AppendDouble appends beam:coder:double:v1 (big-endian IEEE 754).
func AppendDouble(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(b, math.Float64bits(f))
}

// Double decodes beam:coder:double:v1.
func Double(b []byte) (float64, error) {
	if len(b) < 8 {
		return 0, ErrTruncated
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

// ReadDouble reads a double at the start of b.
func ReadDouble(b []byte) (float64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, ErrTruncated
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
}
