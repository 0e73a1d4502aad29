// Wordcount's user functions in Go, one component with two modes (its
// config), byte for byte the same as the Rust version in ../udf:
//   - split: a line of text → one kv<string_utf8, varint> (word, 1) per word;
//   - format: kv<string_utf8, varint> (word, count) → the line "word: count".
//
// Words are maximal runs of letters, digits and apostrophes.
package main

import (
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"

	"wasmbeam.dev/guest/coders"
	"wasmbeam.dev/guest/dofn"
	"wasmbeam.dev/guest/metrics"
)

type wordCount struct {
	split bool
	buf   []byte
}

func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '\''
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

func (w *wordCount) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	if !w.split {
		word, rest, err := coders.SplitKV(e.Value)
		if err != nil {
			return err
		}
		n, err := coders.VarInt(rest)
		if err != nil {
			return err
		}
		w.buf = append(append(append(w.buf[:0], word...), ": "...), strconv.FormatInt(n, 10)...)
		out.Emit(w.buf)
		return nil
	}
	metrics.Counter("wordcount/lines", 1)
	line := e.Value
	if !utf8.Valid(line) {
		return fmt.Errorf("line is not UTF-8")
	}
	start := -1
	for i := 0; i <= len(line); {
		r, size := rune(0), 1
		if i < len(line) {
			if r = rune(line[i]); r >= utf8.RuneSelf {
				r, size = utf8.DecodeRune(line[i:])
			}
		}
		if i < len(line) && isWord(r) {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			// kv<string_utf8, varint>: the nested word, then varint 1.
			w.buf = append(coders.AppendNested(w.buf[:0], line[start:i]), 1)
			out.Emit(w.buf)
			start = -1
		}
		i += size
	}
	return nil
}

func newWordCount(s *dofn.Setup) (dofn.DoFn, error) {
	switch s.ConfigString() {
	case "split":
		return &wordCount{split: true}, nil
	case "format":
		return &wordCount{}, nil
	}
	return nil, fmt.Errorf("unknown mode %q: use split or format", s.ConfigString())
}

func init() { dofn.Register(newWordCount) }

func main() {}
