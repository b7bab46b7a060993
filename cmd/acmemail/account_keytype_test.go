package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestAccountRolloverKeyTypes: a rollover to an RSA account key (JWS RS256)
// and from it to P-384 (ES384); after each, the CA knows the account by the
// new key only and obtain works with it.
func TestAccountRolloverKeyTypes(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	server := []string{"--server", w.DirectoryURL}
	reg := decodeAccount(t, runCLI(t, env, append([]string{"account", "register", "--agree-tos", "--json"}, server...)...))
	prev := readAccountKey(t, reg.KeyPath)
	c := acmeClient(t, w)
	for _, tc := range []struct {
		keyType string
		check   func(any) bool
	}{
		{"rsa2048", func(k any) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }},
		{"p384", func(k any) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P384() }},
	} {
		r := decodeAccount(t, runCLI(t, env, append([]string{"account", "rollover", "--account-key-type", tc.keyType, "--json"}, server...)...))
		key := readAccountKey(t, r.KeyPath)
		if !tc.check(key) {
			t.Fatalf("after rollover --account-key-type %s: account.key is a %T", tc.keyType, key)
		}
		if r.URL != reg.URL || r.Status != "valid" {
			t.Fatalf("rollover to %s = %+v, registered %+v", tc.keyType, r, reg)
		}
		if archived := readAccountKey(t, r.ArchivedKey); !keysEqual(archived, prev) {
			t.Errorf("rollover to %s archived the wrong key", tc.keyType)
		}
		if _, err := c.GetAccount(t.Context(), acme.Account{PrivateKey: prev}); problemType(err) != "accountDoesNotExist" {
			t.Errorf("after rollover to %s, the old key: GetAccount = %v, want accountDoesNotExist", tc.keyType, err)
		}
		got, err := c.GetAccount(t.Context(), acme.Account{PrivateKey: key})
		if err != nil || got.Location != reg.URL {
			t.Errorf("%s key: GetAccount = %+v, %v; want %s", tc.keyType, got, err, reg.URL)
		}
		if res := runCLI(t, env, obtainArgs(w)...); res.code != 0 {
			t.Fatalf("obtain with the %s account key: exit %d\nstderr:\n%s", tc.keyType, res.code, res.stderr)
		}
		prev = key
	}
}
