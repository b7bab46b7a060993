package acmemail

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseProblem(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string // Error()
		wantErr string
	}{
		{
			name: "rejected identifier",
			in:   `{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no email for you","status":400}`,
			want: "the CA said: no email for you (rejectedIdentifier)",
		},
		{
			name: "subproblems",
			in:   `{"type":"urn:ietf:params:acme:error:compound","detail":"two","subproblems":[{"type":"x","detail":"bad","identifier":{"type":"email","value":"a@b"}}]}`,
			want: "the CA said: two (compound); a@b: bad",
		},
		{
			name: "control characters",
			in:   `{"detail":"line\u001b[31m\nred\u0085","instance":"https://ca/p"}`,
			want: "the CA said: line [31m red (see https://ca/p)",
		},
		{name: "not JSON", in: `<html>`, wantErr: "decode problem document"},
		{name: "empty", in: `{}`, wantErr: "neither type nor detail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseProblem([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseProblem(%s) = %v, %v, want error %q", tt.in, p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProblem(%s) error = %v", tt.in, err)
			}
			if got := p.Error(); got != tt.want {
				t.Errorf("ParseProblem(%s).Error() = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzParseProblem checks that a hostile problem document never panics and
// never yields text that is unsafe to print or unbounded.
func FuzzParseProblem(f *testing.F) {
	f.Add([]byte(`{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no","status":400}`))
	f.Add([]byte(`{"type":"urn:ietf:params:acme:error:compound","detail":"x","subproblems":[{"type":"t","detail":"d","identifier":{"type":"email","value":"a@b"}},{}]}`))
	f.Add([]byte(`{"detail":"\u001b]0;pwned\u0007\r\n\u009b31m","instance":"\u202e"}`))
	f.Add([]byte(`{"detail":"` + strings.Repeat("é", 600) + `"}`))
	f.Add([]byte(`{"type":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProblem(data)
		if err != nil {
			if p != nil {
				t.Fatalf("ParseProblem returned %+v with error %v", p, err)
			}
			return
		}
		if len(p.Subproblems) > maxProblemSubproblems {
			t.Fatalf("ParseProblem kept %d subproblems, want at most %d", len(p.Subproblems), maxProblemSubproblems)
		}
		check := func(what, s string, max int) {
			if len(s) > max+len("…") {
				t.Fatalf("%s is %d bytes, want at most %d", what, len(s), max)
			}
			if !utf8.ValidString(s) {
				t.Fatalf("%s %q is not valid UTF-8", what, s)
			}
			for _, r := range s {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
					t.Fatalf("%s %q has control character %U", what, s, r)
				}
			}
		}
		check("Type", p.Type, 200)
		check("Detail", p.Detail, 1000)
		check("Instance", p.Instance, 300)
		for _, sp := range p.Subproblems {
			check("subproblem Type", sp.Type, 200)
			check("subproblem Detail", sp.Detail, 500)
			check("subproblem Identifier", sp.Identifier, 300)
		}
		check("Error()", p.Error(), 1<<20)
	})
}
