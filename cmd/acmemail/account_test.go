package main

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// acmeClient is an independent ACME client (acmez, not acmemail) to ask
// the sandbox which keys it accepts.
func acmeClient(t *testing.T, w *sandbox.World) *acme.Client {
	t.Helper()
	pool, err := (&globals{getenv: func(string) string { return "" }}).rootPool(w.TLSRootsPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &acme.Client{Directory: w.DirectoryURL, HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}, Timeout: 10 * time.Second}}
}

func problemType(err error) string {
	var p acme.Problem
	if errors.As(err, &p) {
		return strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
	}
	return ""
}

func readAccountKey(t *testing.T, path string) crypto.Signer {
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

func decodeAccount(t *testing.T, r cliResult) accountResult {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	var a accountResult
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	return a
}

// TestAccountEAB: a sandbox CA that requires external account binding
// refuses an account without it (a clear error, nothing registered) and
// accepts one made with its key, by account register and by obtain.
func TestAccountEAB(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{ExternalAccountRequired: true})
	if w.EABKeyID == "" {
		t.Fatal("the sandbox made no EAB key")
	}
	account := []string{"account", "register", "--server", w.DirectoryURL, "--agree-tos", "--json"}

	// Without EAB: a usage error that says what is missing, before any account exists.
	for _, args := range [][]string{obtainArgs(w), account} {
		r := runCLI(t, env, args...)
		if r.code != exitUsage {
			t.Fatalf("%s without EAB: exit %d, want %d\nstderr:\n%s", args[0], r.code, exitUsage, r.stderr)
		}
		for _, want := range []string{"requires an external account binding", "hint: then pass --eab-kid KID"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s without EAB: stderr lacks %q:\n%s", args[0], want, r.stderr)
			}
		}
	}
	// The wrong HMAC key: the CA refuses (exit 5), and the key is not printed.
	wrong := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	envWrong := map[string]string{}
	for k, v := range env {
		envWrong[k] = v
	}
	envWrong["ACMEMAIL_EAB_HMAC"] = wrong
	r := runCLI(t, envWrong, append(account, "--eab-kid", w.EABKeyID)...)
	if r.code != exitCA || !strings.Contains(r.stderr, "MAC does not verify") {
		t.Fatalf("wrong HMAC key: exit %d, want %d\nstderr:\n%s", r.code, exitCA, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, wrong) {
		t.Error("the HMAC key appears in the output")
	}
	if n := w.Stats().Accounts; n != 0 {
		t.Fatalf("the sandbox created %d accounts without a valid EAB", n)
	}

	// The right key, from a file.
	hmacFile := filepath.Join(t.TempDir(), "eab.hmac")
	if err := os.WriteFile(hmacFile, []byte(w.EABHMACKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := decodeAccount(t, runCLI(t, env, append(account, "--eab-kid", w.EABKeyID, "--eab-hmac-file", hmacFile, "--contact", "alice@example.test")...))
	if a.URL == "" || a.Status != "valid" || !a.CreatedNow || len(a.Contact) != 1 || a.Contact[0] != "mailto:alice@example.test" {
		t.Errorf("register = %+v", a)
	}
	if n := w.Stats().Accounts; n != 1 {
		t.Errorf("sandbox accounts = %d, want 1", n)
	}
	// obtain uses the saved account: no EAB needed any more.
	if r := runCLI(t, env, obtainArgs(w)...); r.code != 0 {
		t.Fatalf("obtain with the registered account: exit %d\nstderr:\n%s", r.code, r.stderr)
	}

	// obtain creates an EAB account itself, the HMAC key from the environment.
	env2 := map[string]string{}
	for k, v := range env {
		env2[k] = v
	}
	env2["ACMEMAIL_HOME"] = filepath.Join(t.TempDir(), "home2")
	env2["ACMEMAIL_EAB_HMAC"] = w.EABHMACKey
	if r := runCLI(t, env2, obtainArgs(w, "--eab-kid", w.EABKeyID)...); r.code != 0 {
		t.Fatalf("obtain --eab-kid: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if st := w.Stats(); st.Accounts != 2 || st.CertificatesIssued != 2 {
		t.Errorf("sandbox: %d accounts, %d certificates; want 2 and 2", st.Accounts, st.CertificatesIssued)
	}
}

// TestAccountRollover: after a rollover the sandbox refuses the old key
// and accepts the new one, the new key is account.key and the old one is
// archived; an interrupted rollover is finished by the next run.
func TestAccountRollover(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	server := []string{"--server", w.DirectoryURL}
	reg := decodeAccount(t, runCLI(t, env, append([]string{"account", "register", "--agree-tos", "--json"}, server...)...))
	oldKey := readAccountKey(t, reg.KeyPath)

	r := decodeAccount(t, runCLI(t, env, append([]string{"account", "rollover", "--json"}, server...)...))
	if r.URL != reg.URL || r.Status != "valid" || r.KeyThumbprint == reg.KeyThumbprint {
		t.Fatalf("rollover = %+v, registered %+v", r, reg)
	}
	newKey := readAccountKey(t, r.KeyPath)
	if keysEqual(newKey, oldKey) {
		t.Fatal("account.key is unchanged after the rollover")
	}
	if archived := readAccountKey(t, r.ArchivedKey); !keysEqual(archived, oldKey) {
		t.Errorf("%s is not the old key", r.ArchivedKey)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(r.KeyPath), "account.key.next")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("account.key.next left behind: %v", err)
	}

	// At the CA: the old key finds no account and cannot sign for it; the new one does.
	c := acmeClient(t, w)
	if _, err := c.GetAccount(t.Context(), acme.Account{PrivateKey: oldKey}); problemType(err) != "accountDoesNotExist" {
		t.Errorf("old key: GetAccount = %v, want accountDoesNotExist", err)
	}
	if _, err := c.UpdateAccount(t.Context(), acme.Account{Location: reg.URL, PrivateKey: oldKey, Contact: []string{}}); err == nil {
		t.Error("old key: the CA still accepts requests signed with it for the account")
	}
	got, err := c.GetAccount(t.Context(), acme.Account{PrivateKey: newKey})
	if err != nil || got.Location != reg.URL {
		t.Errorf("new key: GetAccount = %+v, %v; want %s", got, err, reg.URL)
	}
	show := decodeAccount(t, runCLI(t, env, append([]string{"account", "show", "--json"}, server...)...))
	if show.Status != "valid" || show.KeyThumbprint != r.KeyThumbprint {
		t.Errorf("show after rollover = %+v", show)
	}
	if res := runCLI(t, env, obtainArgs(w)...); res.code != 0 {
		t.Fatalf("obtain with the new key: exit %d\nstderr:\n%s", res.code, res.stderr)
	}

	// A rollover interrupted after the CA accepted the new key (it is in
	// account.key.next, account.key is still the old one): obtain refuses
	// to sign with the old key, the next rollover finishes the job.
	third, err := keystore.GenerateKey(keystore.KeyP256)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := keystore.MarshalPrivateKey(third)
	next := filepath.Join(filepath.Dir(r.KeyPath), "account.key.next")
	if err := os.WriteFile(next, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AccountKeyRollover(t.Context(), acme.Account{Location: reg.URL, PrivateKey: newKey}, third); err != nil {
		t.Fatal(err)
	}
	if res := runCLI(t, env, obtainArgs(w, "--force")...); res.code == 0 || !strings.Contains(res.stderr, "hint: finish it with: acmemail account rollover") {
		t.Errorf("obtain during an interrupted rollover: exit %d\nstderr:\n%s", res.code, res.stderr)
	}
	res := runCLI(t, env, append([]string{"account", "rollover", "--json"}, server...)...)
	fin := decodeAccount(t, res)
	if !strings.Contains(res.stderr, "finishing it") || !keysEqual(readAccountKey(t, fin.KeyPath), third) {
		t.Errorf("resumed rollover = %+v\nstderr:\n%s", fin, res.stderr)
	}
	if archived := readAccountKey(t, fin.ArchivedKey); !keysEqual(archived, newKey) {
		t.Errorf("the resumed rollover archived the wrong key")
	}
}

func keysEqual(a, b crypto.Signer) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	return a.Public().(eq).Equal(b.Public())
}

// TestAccountDeactivate: deactivation needs --yes (or a terminal), then the
// CA refuses the key and the saved account moves to the archive.
func TestAccountDeactivate(t *testing.T) {
	w, env := world(t, sandbox.Options{})
	server := []string{"--server", w.DirectoryURL}
	reg := decodeAccount(t, runCLI(t, env, append([]string{"account", "register", "--agree-tos", "--json"}, server...)...))
	key := readAccountKey(t, reg.KeyPath)

	saved := openTTY
	openTTY = func() (*os.File, error) { return nil, errors.New("no terminal in tests") }
	r := runCLI(t, env, append([]string{"account", "deactivate"}, server...)...)
	openTTY = saved
	if r.code != exitUsage || !strings.Contains(r.stderr, "hint: run again with --yes") {
		t.Fatalf("deactivate without --yes or a terminal: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	d := decodeAccount(t, runCLI(t, env, append([]string{"account", "deactivate", "--yes", "--json"}, server...)...))
	if d.Status != "deactivated" || d.ArchivedTo == "" {
		t.Fatalf("deactivate = %+v", d)
	}
	if _, err := os.Stat(filepath.Join(d.ArchivedTo, "account.key")); err != nil {
		t.Errorf("the key is not archived: %v", err)
	}
	c := acmeClient(t, w)
	if _, err := c.GetAccount(t.Context(), acme.Account{PrivateKey: key}); problemType(err) != "unauthorized" {
		t.Errorf("GetAccount after deactivation = %v, want unauthorized", err)
	}
	if r := runCLI(t, env, append([]string{"account", "show"}, server...)...); r.code != exitError || !strings.Contains(r.stderr, "hint: create one with: acmemail account register") {
		t.Errorf("show after deactivation: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
}

// TestAccountScripts runs testdata/account: the account commands on a
// terminal (ttyin) against a sandbox started for each script, reachable at
// $DIRECTORY.
func TestAccountScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/account",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		// [ctty]: the tests run with a controlling terminal (go test
		// started from one), which every command without ttyin inherits.
		Condition: func(cond string) (bool, error) {
			if cond != "ctty" {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			return atTerminal(), nil
		},
		Setup: func(e *testscript.Env) error {
			ctx, cancel := context.WithCancel(context.Background())
			w, err := sandbox.Start(ctx, sandbox.Options{})
			if err != nil {
				cancel()
				return err
			}
			e.Defer(func() { w.Close(); cancel() })
			roots := filepath.Join(e.WorkDir, "roots.pem")
			if err := os.WriteFile(roots, w.TLSRootsPEM, 0o644); err != nil {
				return err
			}
			e.Setenv("ACMEMAIL_HOME", e.WorkDir+"/home")
			e.Setenv("ACMEMAIL_CA_ROOTS", roots)
			e.Setenv("DIRECTORY", w.DirectoryURL)
			if err := w.AddUser("alice@example.test", "alice-secret-pw"); err != nil {
				return err
			}
			e.Setenv("ACMEMAIL_PASSWORD", "alice-secret-pw")
			e.Setenv("ACMEMAIL_P12_PASSWORD", "test")
			e.Setenv("IMAP", w.IMAPURL)
			e.Setenv("SMTP", w.SMTPURL)
			e.Setenv("DNS", w.DNSAddr)
			return nil
		},
	})
}

// TestObtainAccountContact: a new account's contact is the address being
// certified unless --contact or --no-contact says otherwise; a CA that
// wants a contact (acme2certifier) refuses --no-contact, and the hint is
// about the account, not the address.
func TestObtainAccountContact(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RequireContact: true})
	mustObtain(t, env, w)
	acct, err := openHome(t, env).LoadAccount(w.DirectoryURL)
	if err != nil || len(acct.Contact) != 1 || acct.Contact[0] != "mailto:alice@example.test" {
		t.Fatalf("account contact = %v (%v), want mailto:alice@example.test", acct, err)
	}
	env["ACMEMAIL_HOME"] = t.TempDir()
	r := runCLI(t, env, obtainArgs(w, "--no-contact")...)
	if r.code != exitCA || !strings.Contains(r.stderr, "Contact information is missing") || !strings.Contains(r.stderr, "refused to create the ACME account") ||
		strings.Contains(r.stderr, "does not accept this address") {
		t.Errorf("--no-contact at a CA that wants one: exit %d\n%s", r.code, r.stderr)
	}
	env["ACMEMAIL_HOME"] = t.TempDir()
	mustObtain(t, env, w, "--contact", "ops@example.test")
	if acct, err := openHome(t, env).LoadAccount(w.DirectoryURL); err != nil || len(acct.Contact) != 1 || strings.TrimPrefix(acct.Contact[0], "mailto:") != "ops@example.test" {
		t.Errorf("--contact: account contact = %v (%v)", acct, err)
	}
}
