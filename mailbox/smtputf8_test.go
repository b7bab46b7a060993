package mailbox

import "testing"

func TestNeedsUTF8(t *testing.T) {
	tests := []struct {
		from string
		to   []string
		raw  string
		want bool
	}{
		{"a@example.com", []string{"b@example.com"}, "From: a@example.com\r\n\r\nbody", false},
		{"jörg@example.com", []string{"b@example.com"}, "From: x\r\n\r\n", true},
		{"a@example.com", []string{"b@example.com", "стоп@example.com"}, "\r\n\r\n", true},
		{"a@example.com", []string{"b@example.com"}, "From: jörg@example.com\r\n\r\nbody", true},
		{"a@example.com", []string{"b@example.com"}, "From: a@example.com\r\n\r\nbödy", false},
		{"a@example.com", []string{"b@example.com"}, "From: a@example.com\n\nbödy", false},
	}
	for _, tt := range tests {
		if got := needsUTF8(tt.from, tt.to, []byte(tt.raw)); got != tt.want {
			t.Errorf("needsUTF8(%q, %q, %q) = %v, want %v", tt.from, tt.to, tt.raw, got, tt.want)
		}
	}
}
