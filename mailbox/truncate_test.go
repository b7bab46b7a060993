package mailbox

import (
	"strconv"
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
		{"abc", 3, "abc"},
		{"abc", 2, "ab"},
		{"abc", -1, ""},
		{"häß", 4, "hä"}, // would cut ß in two
		{"a€b", 3, "a"},  // € is 3 bytes
		{"😀x", 3, ""},    // a 4-byte character does not fit
		{"😀x", 4, "😀"},
		{"a\x80\x80\x80\x80b", 4, "a\x80\x80\x80"}, // invalid: stray continuation bytes are not all dropped
	}
	for _, tt := range tests {
		if got := truncate(tt.s, tt.limit); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
		}
	}
	if got, want := quoteShort("bücher", 2), `"b..."`; got != want {
		t.Errorf("quoteShort(bücher, 2) = %s, want %s", got, want)
	}
	if got, want := quoteShort("bücher", 7), `"bücher"`; got != want {
		t.Errorf("quoteShort(bücher, 7) = %s, want %s", got, want)
	}
}

// FuzzTruncate checks the contract of truncate: a prefix of its input, at
// most limit bytes (0 for a negative limit), valid UTF-8 when the input is,
// the input itself when it fits; and that quoteShort quotes exactly that.
func FuzzTruncate(f *testing.F) {
	f.Add("", 0)
	f.Add("hello", 3)
	f.Add("häß€😀", 6)
	f.Add("\x80\x80\x80\x80\x80", 2)
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
		if len(s) > bound && len(got) <= bound-utf8.UTFMax {
			t.Fatalf("truncate(%q, %d) = %q, cut more than a character short", s, limit, got)
		}
		q, err := strconv.Unquote(quoteShort(s, limit))
		if err != nil || (q != s && q != got+"...") {
			t.Fatalf("quoteShort(%q, %d) unquotes to %q, %v; want the input or %q", s, limit, q, err, got+"...")
		}
	})
}
