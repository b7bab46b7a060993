package acmemail

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	tests := []struct {
		s     string
		limit int
		want  string
	}{
		{"", 0, ""},
		{"", 5, ""},
		{"abc", 3, "abc"},
		{"abc", 2, "ab"},
		{"abc", 0, ""},
		{"abc", -1, ""},
		{"häß", 5, "häß"}, // h(1) ä(2) ß(2): fits exactly
		{"häß", 4, "hä"},  // would cut ß in two
		{"häß", 2, "h"},   // would cut ä in two
		{"a€b", 3, "a"},   // € is 3 bytes
		{"a€b", 4, "a€"},  //
		{"😀x", 3, ""},     // a 4-byte character does not fit
		{"😀x", 4, "😀"},    //
		{"a\x80\x80\x80\x80b", 4, "a\x80\x80\x80"}, // invalid: stray continuation bytes are not all dropped
		{"ab\xffc", 3, "ab\xff"},                   // invalid byte kept as is
	}
	for _, tt := range tests {
		if got := truncate(tt.s, tt.limit); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
		}
	}
}

// FuzzTruncate checks the contract of truncate: a prefix of its input, at
// most limit bytes (0 for a negative limit), valid UTF-8 when the input is,
// the input itself when it fits, and no shorter than it must be.
func FuzzTruncate(f *testing.F) {
	f.Add("", 0)
	f.Add("hello", 3)
	f.Add("häß€😀", 6)
	f.Add("\x80\x80\x80\x80\x80", 2)
	f.Add(strings.Repeat("é", 50), 81)
	f.Add("abc", -5)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		got := truncate(s, limit)
		bound := max(limit, 0)
		if !strings.HasPrefix(s, got) {
			t.Fatalf("truncate(%q, %d) = %q, not a prefix of the input", s, limit, got)
		}
		if len(got) > bound {
			t.Fatalf("truncate(%q, %d) = %q, %d bytes, more than %d", s, limit, got, len(got), bound)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("truncate(%q, %d) = %q, not valid UTF-8", s, limit, got)
		}
		if len(s) <= bound && got != s {
			t.Fatalf("truncate(%q, %d) = %q, want the input, which fits", s, limit, got)
		}
		// Only a character that does not fit is left out.
		if len(s) > bound && len(got) <= bound-utf8.UTFMax {
			t.Fatalf("truncate(%q, %d) = %q, cut more than a character short", s, limit, got)
		}
		if utf8.ValidString(s) && len(got) < len(s) {
			if _, size := utf8.DecodeRuneInString(s[len(got):]); len(got)+size <= bound {
				t.Fatalf("truncate(%q, %d) = %q, but the next character fits too", s, limit, got)
			}
		}
	})
}
