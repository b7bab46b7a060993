package issuer

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

func TestAccountDirectory(t *testing.T) {
	if u, err := AccountDirectory("castle"); err != nil || u != NamedServers["castle"].URL {
		t.Errorf("castle = %q, %v", u, err)
	}
	if u, err := AccountDirectory("https://ca.example/dir"); err != nil || u != "https://ca.example/dir" {
		t.Errorf("https URL = %q, %v", u, err)
	}
	for _, tc := range []struct{ server, msg string }{
		{"sandbox", "sandbox: the in-process sandbox ends"},
		{"http://ca.example/dir", "http://ca.example/dir: ACME needs HTTPS"},
		{"nosuch", `"nosuch" is neither a directory URL nor a known name`},
	} {
		_, err := AccountDirectory(tc.server)
		var se *SettingError
		if !errors.As(err, &se) || se.Setting != "server" || !strings.HasPrefix(se.Err.Error(), tc.msg) {
			t.Errorf("%s: %v, want a server setting error starting %q", tc.server, err, tc.msg)
		}
	}
	if _, err := AccountDirectory("sandbox"); !errors.Is(err, ErrSandboxAccount) {
		t.Errorf("sandbox: %v does not wrap ErrSandboxAccount", err)
	}
}

// TestAccountsLifecycle: register (asking the terms), register again
// (found, contact replaced), show, an interrupted rollover is refused
// until Rollover finishes it, a refused confirmation leaves the account,
// deactivation archives it.
func TestAccountsLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	w, err := sandbox.Start(ctx, sandbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, w.TLSRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &Accounts{Store: store, Directory: w.DirectoryURL, CARoots: roots, UserAgent: "acmemail-test"}

	if _, err := a.Show(ctx, true); !errors.As(err, new(*NoAccountError)) {
		t.Fatalf("Show before Register = %v, want a *NoAccountError", err)
	}
	refused := errors.New("not agreed")
	var terms string
	reg := Registration{Contact: []string{"alice@example.test"}, Terms: func(_ context.Context, url string) error { terms = url; return refused }}
	if _, err := a.Register(ctx, reg); !errors.Is(err, refused) || !strings.HasPrefix(terms, "https://") {
		t.Fatalf("Register with the terms refused = %v (terms %q)", err, terms)
	}
	if n := w.Stats().Accounts; n != 0 {
		t.Fatalf("%d accounts created without agreeing to the terms", n)
	}
	reg.Terms = nil
	acct, err := a.Register(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if !acct.Registered || acct.Status != "valid" || acct.URL == "" || len(acct.Contact) != 1 || acct.Contact[0] != "mailto:alice@example.test" ||
		acct.KeyType != keystore.KeyP256 || acct.Thumbprint == "" || filepath.Base(acct.KeyPath) != "account.key" {
		t.Fatalf("Register = %+v", acct)
	}
	again, err := a.Register(ctx, Registration{Contact: []string{"bob@example.test"}, UpdateContact: true})
	if err != nil || again.Registered || again.URL != acct.URL {
		t.Fatalf("Register again = %+v, %v", again, err)
	}
	shown, err := a.Show(ctx, false)
	if err != nil || shown.Status != "valid" || len(shown.Contact) != 1 || shown.Contact[0] != "mailto:bob@example.test" {
		t.Fatalf("Show = %+v, %v", shown, err)
	}

	// A rollover that reached the CA but was not committed.
	next, _, err := store.NextAccountKey(w.DirectoryURL, keystore.KeyP384)
	if err != nil {
		t.Fatal(err)
	}
	old := acct.Thumbprint
	c, err := a.client(readKey(t, acct.KeyPath), acct.URL)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RolloverKey(ctx, next); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Register(ctx, Registration{}); !errors.As(err, new(*PendingRolloverError)) {
		t.Errorf("Register during a rollover = %v, want a *PendingRolloverError", err)
	}
	if s, err := a.Show(ctx, false); err != nil || !s.PendingRollover || s.Status != "" {
		t.Errorf("Show during a rollover = %+v, %v: want it pending, the CA not asked", s, err)
	}
	if err := PendingRollover(store, w.DirectoryURL, "x"); !errors.As(err, new(*PendingRolloverError)) {
		t.Errorf("PendingRollover = %v, want a *PendingRolloverError", err)
	}
	rolled, err := a.Rollover(ctx, keystore.KeyRSA2048) // the pending P-384 key wins
	if err != nil {
		t.Fatal(err)
	}
	if rolled.KeyType != keystore.KeyP384 || rolled.Thumbprint == old || rolled.Status != "valid" || rolled.ArchivedKey == "" {
		t.Fatalf("Rollover = %+v", rolled)
	}
	if _, err := a.Rollover(ctx, keystore.KeyEd25519); !errors.As(err, new(*UsageError)) {
		t.Errorf("Rollover to ed25519 = %v, want a usage error", err)
	}

	no := errors.New("no")
	var asked string
	if _, err := a.Deactivate(ctx, func(url string) error { asked = url; return no }); !errors.Is(err, no) || asked != acct.URL {
		t.Fatalf("Deactivate not confirmed = %v (asked for %q)", err, asked)
	}
	if s, err := a.Show(ctx, false); err != nil || s.Status != "valid" {
		t.Fatalf("after a refused confirmation: %+v, %v", s, err)
	}
	gone, err := a.Deactivate(ctx, nil)
	if err != nil || gone.Status != "deactivated" || gone.ArchivedTo == "" {
		t.Fatalf("Deactivate = %+v, %v", gone, err)
	}
	if _, err := a.Show(ctx, true); !errors.As(err, new(*NoAccountError)) {
		t.Errorf("Show after Deactivate = %v, want a *NoAccountError", err)
	}
}

// TestAccountsEAB: a CA that requires an external account binding refuses
// a registration without one (acmemail.ErrEABRequired) and accepts one
// with it; the binding is asked before anything is done.
func TestAccountsEAB(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	w, err := sandbox.Start(ctx, sandbox.Options{ExternalAccountRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	roots := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(roots, w.TLSRootsPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := keystore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &Accounts{Store: store, Directory: w.DirectoryURL, CARoots: roots}
	bad := errors.New("no binding")
	if _, err := a.Register(ctx, Registration{EAB: func() (*acmemail.EAB, error) { return nil, bad }}); !errors.Is(err, bad) {
		t.Fatalf("Register with a failing EAB = %v", err)
	}
	if dir, _ := store.AccountDir(w.DirectoryURL); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "account.key")); err == nil {
			t.Error("an account key was made before the binding was known")
		}
	}
	if _, err := a.Register(ctx, Registration{}); !errors.Is(err, acmemail.ErrEABRequired) {
		t.Fatalf("Register without EAB = %v, want ErrEABRequired", err)
	}
	key, err := acmemail.ParseEABKey(w.EABHMACKey)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := a.Register(ctx, Registration{EAB: func() (*acmemail.EAB, error) { return &acmemail.EAB{KeyID: w.EABKeyID, HMACKey: key}, nil }})
	if err != nil || !acct.Registered || acct.Status != "valid" {
		t.Fatalf("Register with EAB = %+v, %v", acct, err)
	}
}

func readKey(t *testing.T, path string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keystore.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
