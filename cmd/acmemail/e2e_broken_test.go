package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// TestObtainCorruptPendingKey: a pending-key.pem that does not hold a
// key (left by an earlier run) used to fail every obtain and renew of the
// address with a parse error. obtain moves it aside, kept byte for byte,
// says so as a warning, and gets the certificate with a new key.
func TestObtainCorruptPendingKey(t *testing.T) {
	w, env := world(t, sandbox.Options{})
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	garbage := []byte("-----BEGIN PRIVATE KEY-----\ntorn\n")
	pending := filepath.Join(dir, "pending-key.pem")
	if err := os.WriteFile(pending, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != 0 {
		t.Fatalf("obtain with a corrupt pending key: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	aside, _ := filepath.Glob(pending + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("moved aside: %q, want one file", aside)
	}
	if data, _ := os.ReadFile(aside[0]); !bytes.Equal(data, garbage) {
		t.Errorf("%s = %q, want the corrupt file as it was", aside[0], data)
	}
	if want := "acmemail: warning: " + pending + " did not hold a key"; !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, aside[0]) {
		t.Errorf("stderr does not say %q ... %s:\n%s", want, aside[0], r.stderr)
	}
	store, err := keystore.Open(env["ACMEMAIL_HOME"])
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := store.LoadCertificate("alice@example.test"); err != nil {
		t.Errorf("no certificate after obtain: %v", err)
	}
}
