// The ML example's DoFns in Go, byte for byte like the Rust ones in
// ../score-udf. The config picks the mode:
//   - parse: a CSV row x1,x2,y → kv("rows", the three values as big-endian
//     doubles); the header row is dropped;
//   - score: with the fitted coefficients as side input "model", a row →
//     kv("rmse", its squared error) on the main output and the line
//     "x1,x2,y,prediction" on output "predictions";
//   - rmse: kv(_, mean squared error) → the line "rmse: R".
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"wasmbeam.dev/examples/rustnum"
	"wasmbeam.dev/guest/coders"
	"wasmbeam.dev/guest/dofn"
)

type mode int

const (
	parse mode = iota
	score
	rmse
)

type ml struct {
	mode        mode
	predictions uint32 // output index, score mode
	model       *[3]float64
	buf         []byte
}

// doubles reads b as big-endian doubles, ignoring a partial last one.
func doubles(b []byte) []float64 {
	v := make([]float64, 0, len(b)/8)
	for ; len(b) >= 8; b = b[8:] {
		v = append(v, math.Float64frombits(binary.BigEndian.Uint64(b)))
	}
	return v
}

// splitKey drops the UTF-8 string key of a kv and returns the value.
func splitKey(b []byte) ([]byte, error) {
	k, v, err := coders.SplitKV(b)
	if err == nil && !utf8.Valid(k) {
		err = errors.New("the key is not UTF-8")
	}
	return v, err
}

func (m *ml) LoadSideInput(in dofn.SideInput) error {
	if in.Tag != "model" || len(in.Values) != 1 {
		return fmt.Errorf("expected one model in side input \"model\", got %d in %q", len(in.Values), in.Tag)
	}
	coefs, err := splitKey(in.Values[0])
	if err != nil {
		return err
	}
	c := doubles(coefs)
	if len(c) != 3 {
		return errors.New("the model must hold 3 coefficients")
	}
	m.model = &[3]float64{c[0], c[1], c[2]}
	return nil
}

func (m *ml) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	switch m.mode {
	case parse:
		if !utf8.Valid(e.Value) {
			return errors.New("row is not UTF-8")
		}
		line := strings.TrimSpace(string(e.Value))
		if line == "" || strings.HasPrefix(line, "x1") {
			return nil
		}
		m.buf = coders.AppendNested(m.buf[:0], []byte("rows"))
		fields := strings.Split(line, ",")
		for _, f := range fields {
			v, ok := rustnum.ParseFloat(strings.TrimSpace(f))
			if !ok {
				return fmt.Errorf("bad row %q: invalid float literal", line)
			}
			m.buf = coders.AppendDouble(m.buf, v)
		}
		if len(fields) != 3 {
			return fmt.Errorf("bad row %q: expected x1,x2,y", line)
		}
		out.Emit(m.buf)
	case score:
		if m.model == nil {
			return errors.New("no model: the side input is missing")
		}
		row, err := splitKey(e.Value)
		if err != nil {
			return err
		}
		r := doubles(row)
		if len(r) < 3 {
			return fmt.Errorf("expected 3 doubles in a row, got %d", len(r))
		}
		c := m.model
		pred := c[0] + c[1]*r[0] + c[2]*r[1]
		d := pred - r[2]
		m.buf = coders.AppendDouble(coders.AppendNested(m.buf[:0], []byte("rmse")), d*d)
		out.Emit(m.buf)
		m.buf = fmt.Appendf(m.buf[:0], "%s,%s,%s,%s", rustnum.Format(r[0], -1), rustnum.Format(r[1], -1), rustnum.Format(r[2], -1), rustnum.Format(pred, 4))
		out.EmitTo(m.predictions, m.buf)
	case rmse:
		rest, err := splitKey(e.Value)
		if err != nil {
			return err
		}
		if len(rest) != 8 {
			return fmt.Errorf("expected an 8-byte double, got %d bytes", len(rest))
		}
		mse, _ := coders.Double(rest)
		out.Emit([]byte("rmse: " + rustnum.Format(math.Sqrt(mse), 4)))
	}
	return nil
}

func newML(s *dofn.Setup) (dofn.DoFn, error) {
	switch c := s.ConfigString(); c {
	case "parse":
		return &ml{mode: parse}, nil
	case "score":
		i, err := s.OutputIndex("predictions")
		if err != nil {
			return nil, err
		}
		return &ml{mode: score, predictions: i}, nil
	case "rmse":
		return &ml{mode: rmse}, nil
	default:
		return nil, fmt.Errorf("unknown mode %q", c)
	}
}

func init() { dofn.Register(newML) }

func main() {}
