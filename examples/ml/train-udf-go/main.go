// Linear regression training as a Go CombineFn over sufficient statistics,
// the same bytes in and out as the Rust version in ../train-udf. An input
// is a row x1,x2,y (three big-endian doubles); with x = (1, x1, x2) the
// accumulator sums XᵀX and Xᵀy and counts rows, and the output is the
// least-squares fit (intercept, w1, w2) as three big-endian doubles.
package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"wasmbeam.dev/guest/combinefn"
)

const d = 3

// stats is the accumulator. Its encoding is 13 big-endian doubles: xtx
// row by row, then xty, then n.
type stats struct {
	xtx [d][d]float64
	xty [d]float64
	n   float64
}

// float64s decodes exactly n big-endian doubles.
func float64s(b []byte, n int) ([]float64, error) {
	if len(b) != 8*n {
		return nil, fmt.Errorf("expected %d doubles (%d bytes), got %d bytes", n, 8*n, len(b))
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = math.Float64frombits(binary.BigEndian.Uint64(b[8*i:]))
	}
	return v, nil
}

func decode(b []byte) (*stats, error) {
	v, err := float64s(b, d*d+d+1)
	if err != nil {
		return nil, err
	}
	s := &stats{n: v[d*d+d]}
	for i := range d {
		for j := range d {
			s.xtx[i][j] = v[i*d+j]
		}
		s.xty[i] = v[d*d+i]
	}
	return s, nil
}

func (s *stats) encode(b []byte) []byte {
	for i := range d {
		for _, v := range s.xtx[i] {
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		}
	}
	for _, v := range s.xty {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
	}
	return binary.BigEndian.AppendUint64(b, math.Float64bits(s.n))
}

type train struct{}

func (train) CreateAccumulator() ([]byte, error) { return new(stats).encode(nil), nil }

func (train) AddInput(acc, input []byte) ([]byte, error) {
	s, err := decode(acc)
	if err != nil {
		return nil, err
	}
	r, err := float64s(input, 3)
	if err != nil {
		return nil, err
	}
	x := [d]float64{1, r[0], r[1]}
	for i := range d {
		for j := range d {
			s.xtx[i][j] += x[i] * x[j]
		}
		s.xty[i] += x[i] * r[2]
	}
	s.n++
	return s.encode(nil), nil
}

// MergeAccumulators adds the accumulators in order onto a fresh (zero) one,
// as the Rust SDK does, so that even the sign of a zero sum agrees.
func (train) MergeAccumulators(accs [][]byte) ([]byte, error) {
	var sum stats
	for _, a := range accs {
		s, err := decode(a)
		if err != nil {
			return nil, err
		}
		for i := range d {
			for j := range d {
				sum.xtx[i][j] += s.xtx[i][j]
			}
			sum.xty[i] += s.xty[i]
		}
		sum.n += s.n
	}
	return sum.encode(nil), nil
}

// ExtractOutput solves XᵀX w = Xᵀy by Gauss-Jordan elimination with
// partial pivoting.
func (train) ExtractOutput(acc []byte) ([]byte, error) {
	s, err := decode(acc)
	if err != nil {
		return nil, err
	}
	a, b := s.xtx, s.xty
	for col := range d {
		// The pivot is the row with the largest |a[r][col]|, the last one
		// on ties. For values without a sign bit, comparing the bits is
		// Rust's total_cmp (NaN above +inf).
		p := col
		for r := col + 1; r < d; r++ {
			if math.Float64bits(math.Abs(a[r][col])) >= math.Float64bits(math.Abs(a[p][col])) {
				p = r
			}
		}
		if math.Abs(a[p][col]) < 1e-12 {
			return nil, fmt.Errorf("cannot fit: the features are collinear or there are too few rows (%s)", strconv.FormatFloat(s.n, 'f', -1, 64))
		}
		a[col], a[p] = a[p], a[col]
		b[col], b[p] = b[p], b[col]
		for r := range d {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for c := range d {
				a[r][c] -= f * a[col][c]
			}
			b[r] -= f * b[col]
		}
	}
	var out []byte
	for i := range d {
		out = binary.BigEndian.AppendUint64(out, math.Float64bits(b[i]/a[i][i]))
	}
	return out, nil
}

func init() {
	combinefn.Register(func([]byte) (combinefn.CombineFn, error) { return train{}, nil })
}

func main() {}
