// Package rustnum reads and prints float64 text exactly as Rust's standard
// library does, so that the Go example UDFs write byte-for-byte the same
// output as the Rust ones in ../*/udf. It is shared by the Go examples
// (telemetry and ml) through a local replace in their go.mod.
package rustnum

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// ParseFloat accepts exactly what Rust's f64::from_str does: an optional
// sign, then inf, infinity or nan in any case, or decimal digits with an
// optional point and exponent (Go's parser alone would also take hex floats
// such as 0x1p3 and underscores such as 1_000).
func ParseFloat(s string) (float64, bool) {
	t := skipSign(s)
	switch strings.ToLower(t) {
	case "inf", "infinity":
		if s[0] == '-' {
			return math.Inf(-1), true
		}
		return math.Inf(1), true
	case "nan":
		return math.NaN(), true
	}
	digits := func() int {
		n := 0
		for n < len(t) && t[n] >= '0' && t[n] <= '9' {
			n++
		}
		t = t[n:]
		return n
	}
	n := digits()
	if t != "" && t[0] == '.' {
		t = t[1:]
		n += digits()
	}
	if n == 0 {
		return 0, false
	}
	if t != "" && (t[0] == 'e' || t[0] == 'E') {
		t = skipSign(t[1:])
		if digits() == 0 {
			return 0, false
		}
	}
	if t != "" {
		return 0, false
	}
	// Out of range is no error in Rust: the value is ±inf or 0, as Go
	// returns it alongside ErrRange.
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil || errors.Is(err, strconv.ErrRange)
}

func skipSign(s string) string {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		return s[1:]
	}
	return s
}

// Format prints f as Rust's {} (prec < 0: shortest round trip) or
// {:.prec} would.
func Format(f float64, prec int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'f', prec, 64)
}
