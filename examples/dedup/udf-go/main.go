// Dedup's user functions in Go; the same modes and output as the Rust
// version in ../udf (see its docs): `parse` and `dedup:TTL_MS`.
package main

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"wasmbeam.dev/guest/coders"
	"wasmbeam.dev/guest/dofn"
)

const (
	seen    dofn.Cell        = 0
	dropped dofn.Cell        = 1
	expire  dofn.TimerFamily = 0
)

func ttl(config string) (int64, error) {
	if config == "parse" {
		return 0, nil
	}
	t, ok := strings.CutPrefix(config, "dedup:")
	if !ok {
		return 0, fmt.Errorf("config %q: expected `parse` or `dedup:TTL_MS`", config)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("config %q: TTL_MS must be a positive integer", config)
	}
	return n, nil
}

type parse struct{}

func (parse) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	line := string(bytes.TrimSpace(e.Value))
	if line == "" {
		return nil
	}
	id, ts, ok := strings.Cut(line, ",")
	t, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("line %q is not `id,timestamp_ms`", line)
	}
	out.EmitWithTimestamp(coders.AppendKV(nil, []byte(id), []byte(line)), t)
	return nil
}

type dedup struct {
	ttl  int64
	dups uint32
}

func (d *dedup) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	id, _, err := coders.SplitKV(e.Value)
	if err != nil {
		return err
	}
	st := e.State()
	if _, ok := st.Get(seen); !ok {
		st.Write(seen, coders.AppendVarInt(nil, e.Timestamp))
		st.SetTimer(expire, e.Timestamp+d.ttl)
		out.Emit(append([]byte(nil), id...))
	} else {
		st.Add(dropped, nil)
	}
	return nil
}

func (d *dedup) OnTimer(t *dofn.Timer, out *dofn.Emitter) error {
	st := t.State()
	id, _, err := coders.ReadNested(t.Key)
	if err != nil {
		return err
	}
	var n int64
	if b, ok := st.Get(dropped); ok {
		if n, err = coders.VarInt(b); err != nil {
			return err
		}
	}
	if n > 0 {
		out.EmitTo(d.dups, []byte(fmt.Sprintf("%s,%d", id, n)))
	}
	st.Clear(seen)
	st.Clear(dropped)
	return nil
}

func init() {
	dofn.Describe(func(config []byte) (*dofn.Stateful, error) {
		t, err := ttl(string(config))
		if err != nil || t == 0 {
			return nil, err
		}
		return dofn.NewStateful().Value("seen").Combining("dropped", dofn.Count).EventTimer("expire"), nil
	})
	dofn.Register(func(s *dofn.Setup) (dofn.DoFn, error) {
		t, err := ttl(s.ConfigString())
		if err != nil {
			return nil, err
		}
		if t == 0 {
			return parse{}, nil
		}
		dups, err := s.OutputIndex("dups")
		if err != nil {
			return nil, err
		}
		return &dedup{ttl: t, dups: dups}, nil
	})
}

func main() {}
