package keystore

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"alice@example.org", "alice@example.org", false},
		{"Alice@Example.ORG", "Alice@example.org", false},
		{"jo\u0308rg@example.org", "j\u00f6rg@example.org", false}, // NFD
		{"a.b+tag@sub.example.org", "a.b+tag@sub.example.org", false},
		{"", "", true},
		{"alice", "", true},
		{"a@b@example.org", "", true},
		{"@example.org", "", true},
		{"alice@", "", true},
		{"../etc@example.org", "", true},
		{"a/b@example.org", "", true},
		{`a\b@example.org`, "", true},
		{"a\x00b@example.org", "", true},
		{"a\nb@example.org", "", true},
		{"a..b@example.org", "", true},
		{"alice@example..org", "", true},
		{".alice@example.org", "", true},
		{"alice.@example.org", "", true},
		{"alice@.example.org", "", true},
		{"alice@example.org.", "", true},
		{"al ice@example.org", "", true},
		{`"alice"@example.org`, "", true},
		{"alice@[192.0.2.1]", "", true},
		{"alice:x@example.org", "", true},
		{"\xff@example.org", "", true},
		{strings.Repeat("a", 250) + "@b.org", "", true},
	}
	for _, tt := range tests {
		got, err := NormalizeEmail(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("NormalizeEmail(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestInvalidEmailPaths checks that every method taking an address
// refuses the unsafe ones before touching the disk.
func TestInvalidEmailPaths(t *testing.T) {
	s := openTestStore(t)
	for _, e := range []string{"../x@example.org", "a/b@example.org", ".hidden@example.org", "x@..", "a\x00@b", "nodomain"} {
		if _, err := s.CertKey(e, KeyP256); err == nil {
			t.Errorf("CertKey(%q) = nil error, want error", e)
		}
		if _, err := s.SaveCertificate(e, nil, CertMeta{}); err == nil {
			t.Errorf("SaveCertificate(%q) = nil error, want error", e)
		}
		if _, _, _, _, err := s.LoadCertificate(e); err == nil {
			t.Errorf("LoadCertificate(%q) = nil error, want error", e)
		}
		if _, err := s.WritePKCS12(e, "pw", P12Modern); err == nil {
			t.Errorf("WritePKCS12(%q) = nil error, want error", e)
		}
		if _, err := s.CertificatePaths(e); err == nil {
			t.Errorf("CertificatePaths(%q) = nil error, want error", e)
		}
	}
	if got, _ := filepath.Glob(filepath.Join(s.Dir, "*", "*")); len(got) != 0 {
		t.Errorf("store holds %q after invalid addresses, want nothing", got)
	}
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"alice@example.org", "A@B.C", "../@x", "a@b/c", ".a@b", "a@b.", "İ@Ⱥ.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeEmail(in)
		if err != nil {
			return
		}
		if out == "." || out == ".." || filepath.Base(out) != out || strings.ContainsAny(out, "/\\\x00") ||
			strings.Contains(out, "..") || strings.HasPrefix(out, ".") {
			t.Fatalf("NormalizeEmail(%q) = %q, not a safe path component", in, out)
		}
		again, err := NormalizeEmail(out)
		if err != nil || again != out {
			t.Fatalf("NormalizeEmail(%q) = %q, %v; want it unchanged", out, again, err)
		}
	})
}
