package sandbox

import "testing"

// Vectors from shared/testdata/token-join.json, computed independently of
// this package.
func TestResponseDigest(t *testing.T) {
	tests := []struct {
		note, tp1, tp2, thumb, str, oct string
	}{
		{"RFC 8823 example token-part1 (padded)", "LgYemJLy3F1LDkiJrdIGbEzyFJyOyf6vBdyZ1TG3sME=", "DGyRejmCefe7v4NfDGDKfA", "1_nKJnlH9boVxdoO63T8zP7O2w42qZL4d6xj35Hy5aI",
			"AjXW0h9_4YMP6Sv-9tKQNUrapI0us7ayBn0nCGOkUsk", ""},
		{"22-char token-part1", "V4nE8NhYh6edBpfQTg5qqQ", "x6I65YvEk6xC4KV0QMvdJw", "hC4xyXNn8ZDH4yrcp93Zj3qgQs7LyT_GUL45YD7IVMQ",
			"gtzugYfQ1gO_Pi-ripWZTUtKP_xzPoQe-brDkSOvX5c", "Fjt2SD7KoqSt3I6jwgg8ljjkP9Er7h1w0wF0UihvQIU"},
		{"32-char alphanumeric parts", "ISQOrdkX2ontSQnaRaClQDmFLQdQr1a6", "rDgVtuzmlrTSpZdnDF382deKu1vQliw8", "1_nKJnlH9boVxdoO63T8zP7O2w42qZL4d6xj35Hy5aI",
			"nf3z-HXJ9hbZHD85op_Ilg8oi8F8uVJC1m0JvcXtZMw", "nf3z-HXJ9hbZHD85op_Ilg8oi8F8uVJC1m0JvcXtZMw"},
		{"43-char token-part1", "6an4NWTGrHyWZgZI0mxW6TM0AVwJVV46ehOfCllLc88", "DGyRejmCefe7v4NfDGDKfA", "hC4xyXNn8ZDH4yrcp93Zj3qgQs7LyT_GUL45YD7IVMQ",
			"Ej0i8G1Qm7iHcMpyHaAUsxnibCE04ouw_75EoeYe-cI", "kgfEqXMkvDeDuxmJApesuqLUP6VNXc_qWlgyW8sfc2Q"},
	}
	for _, tt := range tests {
		t.Run(tt.note, func(t *testing.T) {
			got, err := responseDigest(tt.tp1, tt.tp2, tt.thumb, joinString)
			if err != nil || got != tt.str {
				t.Errorf("string join = %q, %v; want %q", got, err, tt.str)
			}
			if tt.oct == "" {
				return
			}
			got, err = responseDigest(tt.tp1, tt.tp2, tt.thumb, joinOctet)
			if err != nil || got != tt.oct {
				t.Errorf("octet join = %q, %v; want %q", got, err, tt.oct)
			}
		})
	}
	if _, err := responseDigest("not base64!", "AAAA", "x", joinOctet); err == nil {
		t.Errorf("octet join of a bad token succeeded")
	}
}

func TestNewToken(t *testing.T) {
	for _, n := range []int{22, 32, 43} {
		seen := map[string]bool{}
		re := tokenPatterns[n]
		for range 200 {
			tok, err := newToken(n)
			if err != nil {
				t.Fatal(err)
			}
			if !re.MatchString(tok) {
				t.Fatalf("newToken(%d) = %q", n, tok)
			}
			if seen[tok] {
				t.Fatalf("newToken(%d) repeated %q", n, tok)
			}
			seen[tok] = true
		}
	}
	// All 62 characters show up in alphanumeric tokens.
	chars := map[rune]bool{}
	for range 100 {
		tok, _ := newToken(32)
		for _, c := range tok {
			chars[c] = true
		}
	}
	if len(chars) != 62 {
		t.Errorf("alphanumeric tokens use %d characters, want 62", len(chars))
	}
	if _, err := newToken(16); err == nil {
		t.Errorf("newToken(16) succeeded")
	}
}
