package acmemail

import (
	"math/big"
	"strings"
	"testing"
)

func TestFormatSerialLikeOpenSSL(t *testing.T) {
	for _, c := range []struct {
		in   string // hex, as big.Int.Text(16) writes it
		want string
	}{
		{"67b2f535", "67B2F535"},
		{"67b2f53", "067B2F53"},
		{"0", "00"},
		{"1", "01"},
		{"ff", "FF"},
		{"100", "0100"},
		{"3a1b2c3d4e5f60718293a4b5c6d7e8f90a1b", "3A1B2C3D4E5F60718293A4B5C6D7E8F90A1B"},
	} {
		n, _ := new(big.Int).SetString(c.in, 16)
		if got := FormatSerial(n); got != c.want {
			t.Errorf("FormatSerial(%s) = %s, want %s", c.in, got, c.want)
		}
		if got := FormatSerialText(c.in); got != c.want {
			t.Errorf("FormatSerialText(%s) = %s, want %s", c.in, got, c.want)
		}
		if got := FormatSerialText(c.want); got != c.want {
			t.Errorf("FormatSerialText(%s) = %s, want it unchanged", c.want, got)
		}
	}
	for _, s := range []string{"", "not hex", "-1f", "+1f"} {
		if got := FormatSerialText(s); got != s {
			t.Errorf("FormatSerialText(%q) = %q, want it as is", s, got)
		}
	}
}

// FuzzFormatSerialText: whatever is stored, the result is either the
// input unchanged (not hex) or whole upper-case bytes of the same number.
func FuzzFormatSerialText(f *testing.F) {
	for _, s := range []string{"67b2f53", "0", "", "zz", "-1", "00ff", "DEADbeef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := FormatSerialText(s)
		in, ok := new(big.Int).SetString(s, 16)
		if !ok || s == "" || s[0] == '-' || s[0] == '+' {
			if got != s {
				t.Fatalf("FormatSerialText(%q) = %q, want it unchanged", s, got)
			}
			return
		}
		if len(got)%2 != 0 || strings.ToUpper(got) != got {
			t.Fatalf("FormatSerialText(%q) = %q: not whole upper-case bytes", s, got)
		}
		out, ok := new(big.Int).SetString(got, 16)
		if !ok || out.Cmp(in) != 0 {
			t.Fatalf("FormatSerialText(%q) = %q: another number", s, got)
		}
	})
}
