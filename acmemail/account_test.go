package acmemail

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseEABKey(t *testing.T) {
	want := bytes.Repeat([]byte{0xfb, 0xff, 0x01}, 11) // 33 octets, with + / - _ in the encodings
	for _, s := range []string{
		"-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B",     // base64url, unpadded (RFC 8555)
		"+/8B+/8B+/8B+/8B+/8B+/8B+/8B+/8B+/8B+/8B+/8B",     // standard base64
		"  -_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B-_8B\n", // copied with whitespace
	} {
		got, err := ParseEABKey(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ParseEABKey(%q) = %x, %v; want %x", s, got, err, want)
		}
	}
	for _, s := range []string{"", "   ", "not base64 at all!", "AAAA"} {
		if _, err := ParseEABKey(s); err == nil {
			t.Errorf("ParseEABKey(%q) accepted", s)
		} else if len(s) > 4 && strings.Contains(err.Error(), s) {
			t.Errorf("ParseEABKey(%q): the error %q repeats the key", s, err)
		}
	}
}
