// Telemetry's user functions in Go, one component whose config picks the
// mode; the outputs match the Rust version in ../udf byte for byte.
//   - parse: the CSV line meter_id,timestamp,kwh (timestamps look like
//     2026-01-05T23:57:00Z) → kv<string_utf8, double> at the reading's event
//     time. The header is dropped; a line that does not parse goes to the
//     "invalid" output with the reason appended, so the job keeps running.
//   - format:LABEL: kv<string_utf8, double> → "meter,window_start,LABEL,value".
//   - alert:GAP_MS: kv<string_utf8, double> readings → "meter,last_reading_time,
//     no reading for Ns" once GAP_MS of processing time passes without one.
package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"wasmbeam.dev/examples/rustnum"
	"wasmbeam.dev/guest/coders"
	"wasmbeam.dev/guest/dofn"
)

type telemetry struct {
	parse   bool
	invalid uint32 // index of the dead-letter output (parse mode)
	label   string // format mode
	buf     []byte
}

// floorDiv and floorMod round toward negative infinity, like Rust's
// div_euclid and rem_euclid for a positive divisor.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// daysFromCivil counts days from 1970-01-01 to a proleptic Gregorian date.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := m - 3
	if m <= 2 {
		mp = m + 9
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y, m, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if m = mp + 3; mp >= 10 {
		m = mp - 9
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// parseTime reads YYYY-MM-DDTHH:MM:SSZ as epoch milliseconds. Like Rust's
// i64 parsing, each number may carry a sign.
func parseTime(s string) (int64, bool) {
	if len(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != 'Z' {
		return 0, false
	}
	var v [6]int64
	for i, at := range [6]int{0, 5, 8, 11, 14, 17} {
		end := at + 2
		if i == 0 {
			end = 4
		}
		n, err := strconv.ParseInt(s[at:end], 10, 64)
		if err != nil {
			return 0, false
		}
		v[i] = n
	}
	y, mo, d, h, mi, se := v[0], v[1], v[2], v[3], v[4], v[5]
	if mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59 {
		return 0, false
	}
	return ((daysFromCivil(y, mo, d)*24+h)*60+mi)*60000 + se*1000, true
}

func formatTime(ms int64) string {
	secs := floorDiv(ms, 1000)
	days, rem := floorDiv(secs, 86400), floorMod(secs, 86400)
	y, m, d := civilFromDays(days)
	return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, rem/3600, rem/60%60, rem%60)
}

// quote renders s the way Rust's {:?} renders a str.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case 0:
			b.WriteString(`\0`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '\n':
			b.WriteString(`\n`)
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			if !unicode.IsPrint(r) || unicode.In(r, unicode.Mn, unicode.Me, unicode.Other_Grapheme_Extend) {
				fmt.Fprintf(&b, `\u{%x}`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// lossy decodes b as Rust's String::from_utf8_lossy does: each maximal
// prefix of an invalid sequence becomes a single U+FFFD.
func lossy(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var s strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			s.Write(b[:n])
			b = b[n:]
			continue
		}
		s.WriteRune(utf8.RuneError)
		b = b[invalidLen(b):]
	}
	return s.String()
}

// invalidLen is how many bytes at the start of b form a truncated or
// broken UTF-8 sequence that must be replaced together.
func invalidLen(b []byte) int {
	c := b[0]
	if c < 0xC2 || c > 0xF4 || len(b) < 2 {
		return 1
	}
	lo, hi, need := byte(0x80), byte(0xBF), 2
	switch {
	case c >= 0xF0:
		need = 4
	case c >= 0xE0:
		need = 3
	}
	switch c {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	if b[1] < lo || b[1] > hi {
		return 1
	}
	n := 2
	for n < need && n < len(b) && b[n] >= 0x80 && b[n] <= 0xBF {
		n++
	}
	return n
}

// parseLine returns the reading in line, or why it is not one.
func parseLine(line string) (meter string, t int64, kwh float64, why string) {
	f := strings.Split(line, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	if len(f) != 3 || f[0] == "" {
		return "", 0, 0, "expected meter_id,timestamp,kwh"
	}
	t, ok := parseTime(f[1])
	if !ok {
		return "", 0, 0, "bad timestamp " + quote(f[1])
	}
	kwh, ok = rustnum.ParseFloat(f[2])
	if !ok || math.IsNaN(kwh) || math.IsInf(kwh, 0) || kwh < 0 {
		return "", 0, 0, "bad kWh value " + quote(f[2])
	}
	return f[0], t, kwh, ""
}

func (tm *telemetry) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	if !tm.parse {
		meter, rest, err := coders.SplitKV(e.Value)
		if err != nil {
			return err
		}
		if !utf8.Valid(meter) {
			return errors.New("the meter id is not UTF-8")
		}
		if len(rest) != 8 {
			return fmt.Errorf("expected an 8-byte double, got %d bytes", len(rest))
		}
		v, _ := coders.Double(rest)
		var start int64
		if w := e.Windows(); len(w) > 0 {
			start = w[0].Start
		}
		tm.buf = fmt.Appendf(tm.buf[:0], "%s,%s,%s,%s", meter, formatTime(start), tm.label, rustnum.Format(v, 3))
		out.Emit(tm.buf)
		return nil
	}
	line := strings.TrimSpace(lossy(e.Value))
	if line == "" || strings.HasPrefix(line, "meter_id,") {
		return nil
	}
	meter, t, kwh, why := parseLine(line)
	if why != "" {
		out.EmitTo(tm.invalid, []byte(line+" # "+why))
		return nil
	}
	tm.buf = coders.AppendDouble(coders.AppendNested(tm.buf[:0], []byte(meter)), kwh)
	out.EmitWithTimestamp(tm.buf, t)
	return nil
}

// alert is the `alert:GAP_MS` mode (see ../udf): a value cell with the
// event time of the meter's latest reading, and a processing-time timer that each
// reading resets.
type alert struct{ gap int64 }

const (
	last    dofn.Cell        = 0
	silence dofn.TimerFamily = 0
)

func (a *alert) ProcessElement(e *dofn.Element, out *dofn.Emitter) error {
	st := e.State()
	latest := e.Timestamp
	if b, ok := st.Get(last); ok {
		t, err := coders.VarInt(b)
		if err != nil {
			return err
		}
		latest = max(latest, t)
	}
	st.Write(last, coders.AppendVarInt(nil, latest))
	st.SetTimer(silence, st.Now()+a.gap)
	return nil
}

func (a *alert) OnTimer(t *dofn.Timer, out *dofn.Emitter) error {
	meter, _, err := coders.ReadNested(t.Key)
	if err != nil {
		return err
	}
	st := t.State()
	if b, ok := st.Get(last); ok {
		ts, err := coders.VarInt(b)
		if err != nil {
			return err
		}
		out.Emit([]byte(fmt.Sprintf("%s,%s,no reading for %ds", meter, formatTime(ts), a.gap/1000)))
	}
	st.Clear(last)
	return nil
}

// alertGap is GAP_MS of an `alert:GAP_MS` config, or 0 for other modes.
func alertGap(c string) (int64, error) {
	g, ok := strings.CutPrefix(c, "alert:")
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(g, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("config %q: GAP_MS must be a positive integer", c)
	}
	return n, nil
}

func newTelemetry(s *dofn.Setup) (dofn.DoFn, error) {
	c := s.ConfigString()
	gap, err := alertGap(c)
	if err != nil {
		return nil, err
	}
	if gap > 0 {
		return &alert{gap}, nil
	}
	if c == "parse" {
		i, err := s.OutputIndex("invalid")
		if err != nil {
			return nil, err
		}
		return &telemetry{parse: true, invalid: i}, nil
	}
	if label, ok := strings.CutPrefix(c, "format:"); ok {
		return &telemetry{label: label}, nil
	}
	return nil, fmt.Errorf("unknown mode %q: use parse, format:LABEL or alert:GAP_MS", c)
}

func init() {
	dofn.Describe(func(config []byte) (*dofn.Stateful, error) {
		gap, err := alertGap(string(config))
		if err != nil || gap == 0 {
			return nil, err
		}
		return dofn.NewStateful().Value("last").ProcessingTimer("silence"), nil
	})
	dofn.Register(newTelemetry)
}

func main() {}
