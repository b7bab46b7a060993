package keystore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"mail.example.com":                "mail.example.com",
		"Mail.Example.COM.":               "mail.example.com",
		"xn--bcher-kva.test":              "xn--bcher-kva.test",
		"a-b.c1.example":                  "a-b.c1.example",
		strings.Repeat("a", 63) + ".test": strings.Repeat("a", 63) + ".test",
	}
	for in, want := range good {
		if got, err := NormalizeHost(in); err != nil || got != want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "localhost", "..", "a..b", "-a.test", "a-.test", "a/b.test", `a\b.test`,
		"a b.test", "bücher.test", "_imaps.mail.test", "a.test/..", strings.Repeat("a", 64) + ".test",
		strings.Repeat("abcdefgh.", 30) + "test", "mail.example.com\x00"} {
		if got, err := NormalizeHost(in); err == nil {
			t.Errorf("NormalizeHost(%q) = %q, want an error", in, got)
		}
	}
}

func FuzzNormalizeHost(f *testing.F) {
	for _, s := range []string{"mail.example.com", "A.B.", "../x", "x..y", "_a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizeHost(s)
		if err != nil {
			return
		}
		if got != filepath.Base(got) || got == "." || got == ".." || strings.ContainsAny(got, "/\\\x00") {
			t.Fatalf("NormalizeHost(%q) = %q: not one safe path element", s, got)
		}
		if again, err := NormalizeHost(got); err != nil || again != got {
			t.Fatalf("NormalizeHost is not idempotent: %q -> %q -> %q, %v", s, got, again, err)
		}
	})
}

// TestServersView: a server's certificate lives in servers/<host>/, apart
// from the addresses' certificates, and each view lists only its own.
func TestServersView(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := s.Servers()
	if _, err := srv.CertKey("Mail.Example.TEST", KeyP256); err != nil {
		t.Fatalf("CertKey: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "servers", "mail.example.test", "pending-key.pem")); err != nil {
		t.Fatalf("the pending key is not in servers/<host>/: %v", err)
	}
	if _, err := srv.CertKey("alice@example.test", KeyP256); err == nil {
		t.Errorf("the servers view took an address as a host name")
	}
	ids, err := srv.ListIdentities()
	if err != nil || len(ids) != 1 || ids[0] != "mail.example.test" {
		t.Errorf("servers ListIdentities = %v, %v", ids, err)
	}
	if ids, err := s.ListIdentities(); err != nil || len(ids) != 0 {
		t.Errorf("addresses ListIdentities = %v, %v; want none", ids, err)
	}
	unlock, err := srv.LockIdentity(t.Context(), "mail.example.test", false)
	if err != nil {
		t.Fatalf("LockIdentity: %v", err)
	}
	if _, err := srv.LockIdentity(t.Context(), "mail.example.test", false); err == nil {
		t.Errorf("a second lock of the same host was granted")
	}
	unlock()
}
