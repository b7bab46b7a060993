package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/keystore/p12test"
)

// listStates is list --json as address -> state.
func listStates(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	r := runCLI(t, env, "list", "--json")
	var list []certInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list --json: exit %d, %v\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	states := map[string]string{}
	for _, c := range list {
		states[c.Email] = c.State
	}
	return states
}

func forgetResult(t *testing.T, r cliResult) issuer.Forgotten {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("forget: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	var f issuer.Forgotten
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("forget --json: %v\n%s", err, r.stdout)
	}
	return f
}

// TestForgetNoTerminal: without --yes and without a terminal to ask on,
// forget is a usage error and changes nothing. (Not parallel: it swaps
// how the terminal is opened.)
func TestForgetNoTerminal(t *testing.T) {
	w, env := world(t, sandbox.Options{})
	mustObtain(t, env, w)
	saved := openTTY
	openTTY = func() (*os.File, error) { return nil, errors.New("no terminal in tests") }
	r := runCLI(t, env, "forget", "alice@example.test")
	openTTY = saved
	if r.code != exitUsage || !strings.Contains(r.stderr, "hint: run again with --yes") || r.stdout != "" {
		t.Fatalf("forget without --yes or a terminal: exit %d, stdout %q\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if st := listStates(t, env); st["alice@example.test"] != issuer.StateValid {
		t.Errorf("list after the refusal = %v, want alice valid", st)
	}
	if _, err := os.Stat(filepath.Join(env["ACMEMAIL_HOME"], "forgotten")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forgotten/ exists after the refusal: %v", err)
	}
}

// TestForget: a --split pair with an --also address is forgotten as one
// identity with --yes: locked by a run it exits 8 and changes nothing;
// then its files go to forgotten/ (keys 0600), list and renew no longer
// have it, the --also address is no identity of its own, and obtain
// starts afresh with a new key.
func TestForget(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	if err := w.AddAlias("info@example.test", "alice@example.test"); err != nil {
		t.Fatal(err)
	}
	mustObtain(t, env, w, "--split", "--also", "info@example.test")
	_, oldChain, _, _, err := openHome(t, env).LoadCertificate("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}

	unlock, err := openHome(t, env).LockIdentity(context.Background(), "alice@example.test", false)
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, "forget", "--yes", "alice@example.test")
	unlock()
	if r.code != exitLocked {
		t.Fatalf("forget while a run holds the lock: exit %d, want %d\nstderr:\n%s", r.code, exitLocked, r.stderr)
	}
	if st := listStates(t, env); st["alice@example.test"] != issuer.StateValid {
		t.Fatalf("list after the locked forget = %v", st)
	}

	r = runCLI(t, env, "forget", "--yes", "info@example.test")
	if r.code != exitError || !strings.Contains(r.stderr, "forget alice@example.test") {
		t.Errorf("forget of the --also address: exit %d, want %d and a hint to forget alice\nstderr:\n%s", r.code, exitError, r.stderr)
	}

	f := forgetResult(t, runCLI(t, env, "forget", "--yes", "--json", "alice@example.test"))
	if f.Email != "alice@example.test" || f.State != issuer.StateValid || !f.Split || !slices.Equal(f.Also, []string{"info@example.test"}) {
		t.Errorf("forget --json = %+v", f)
	}
	if filepath.Dir(f.Archived) != filepath.Join(env["ACMEMAIL_HOME"], "forgotten") || !strings.HasPrefix(filepath.Base(f.Archived), "alice@example.test-") {
		t.Errorf("archived in %s, want forgotten/alice@example.test-<time>", f.Archived)
	}
	if !slices.Contains(f.Keys, "key.pem") || !slices.Contains(f.Keys, "encrypt/key.pem") {
		t.Errorf("kept keys %q, want key.pem and encrypt/key.pem", f.Keys)
	}
	for _, k := range f.Keys {
		checkMode(t, filepath.Join(f.Archived, k), 0o600)
	}
	checkMode(t, f.Archived, 0o700)
	if st := listStates(t, env); len(st) != 0 {
		t.Errorf("list after forget = %v, want nothing", st)
	}
	r = runCLI(t, env, "renew", "--force", "--json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("renew --force of everything after forget: exit %d, stdout %q, want nothing renewed\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, env, "forget", "--yes", "alice@example.test"); r.code != exitError || !strings.Contains(r.stderr, "no certificate for the address is managed here") {
		t.Errorf("forget again: exit %d\nstderr:\n%s", r.code, r.stderr)
	}

	mustObtain(t, env, w)
	_, chain, _, _, err := openHome(t, env).LoadCertificate("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if chain[0].SerialNumber.Cmp(oldChain[0].SerialNumber) == 0 || samePub(chain[0].PublicKey, oldChain[0].PublicKey) {
		t.Errorf("obtain after forget reused the forgotten certificate or key")
	}
	if h, err := openHome(t, env).History("alice@example.test"); err != nil || len(h) != 1 {
		t.Errorf("history after forget and obtain: %d generations, %v; want the new one only", len(h), err)
	}
	if st := listStates(t, env); st["alice@example.test"] != issuer.StateValid || len(st) != 1 {
		t.Errorf("list after obtain = %v", st)
	}
}

// TestForgetPending: an obtain interrupted once its order was created
// leaves a pending key and order (list: pending); forget keeps the key,
// list is empty, and the next obtain starts a new order.
func TestForgetPending(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopped atomic.Bool
	ctx = context.WithValue(ctx, orderStateHookKey{}, func(st acmemail.OrderState) {
		if st.OrderURL != "" && stopped.CompareAndSwap(false, true) {
			cancel()
		}
	})
	var errb bytes.Buffer
	if code := run(ctx, obtainArgs(w), strings.NewReader(""), io.Discard, &errb, func(k string) string { return env[k] }); code != exitInterrupted {
		t.Fatalf("interrupted obtain: exit %d\n%s", code, errb.String())
	}
	if st := listStates(t, env); st["alice@example.test"] != issuer.StatePending {
		t.Fatalf("list after the interrupted obtain = %v, want alice pending", st)
	}
	f := forgetResult(t, runCLI(t, env, "forget", "--yes", "--json", "alice@example.test"))
	if f.State != issuer.StatePending || !slices.Equal(f.Keys, []string{"pending-key.pem"}) {
		t.Errorf("forget --json = %+v, want the pending key kept", f)
	}
	if _, err := os.Stat(filepath.Join(f.Archived, "order.json")); err != nil {
		t.Errorf("the pending order's state is not kept: %v", err)
	}
	if st := listStates(t, env); len(st) != 0 {
		t.Errorf("list after forget = %v, want nothing", st)
	}
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != 0 || strings.Contains(r.stderr, "interrupted order") {
		t.Fatalf("obtain after forget: exit %d (it must not look at the forgotten order)\nstderr:\n%s", r.code, r.stderr)
	}
	if st := w.Stats(); st.Orders != 2 || st.CertificatesIssued != 1 {
		t.Errorf("the CA saw %d orders and issued %d certificates, want 2 and 1", st.Orders, st.CertificatesIssued)
	}
}

// TestForgetExport: --export writes the whole key history as PKCS#12
// before anything is moved; a file that exists stops forget with nothing
// changed, and a pending address has nothing to export.
func TestForgetExport(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	mustObtain(t, env, w)
	mustObtain(t, env, w, "--force") // the first goes to the archive
	gens, err := openHome(t, env).History("alice@example.test")
	if err != nil || len(gens) != 2 {
		t.Fatalf("History = %d, %v", len(gens), err)
	}
	out := filepath.Join(t.TempDir(), "keys.p12")
	if err := os.WriteFile(out, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, "forget", "--yes", "--export", out, "alice@example.test"); r.code != exitUsage {
		t.Errorf("--export onto an existing file: exit %d, want %d\nstderr:\n%s", r.code, exitUsage, r.stderr)
	}
	if data, _ := os.ReadFile(out); string(data) != "mine" {
		t.Errorf("the existing file was overwritten")
	}
	if st := listStates(t, env); st["alice@example.test"] != issuer.StateValid {
		t.Fatalf("list after the refused --export = %v", st)
	}
	os.Remove(out)
	f := forgetResult(t, runCLI(t, env, "forget", "--yes", "--json", "--export", out, "alice@example.test"))
	if f.Exported != out || len(f.Keys) != 2 {
		t.Errorf("forget --export = %+v, want %s and 2 keys kept", f, out)
	}
	checkMode(t, out, 0o600)
	var wants []p12test.Want
	for _, g := range gens {
		wants = append(wants, p12test.Want{Chain: g.Chain, PublicKey: g.Key.Public(), Profile: "modern"})
	}
	p12test.OpenSSLBundle(t, out, "test", wants)

	if _, err := openHome(t, env).CertKey("alice@example.test", keystore.KeyP256); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, env, "forget", "--yes", "--export", out+"2", "alice@example.test"); r.code != exitUsage || !strings.Contains(r.stderr, "is pending") {
		t.Errorf("--export of a pending address: exit %d, want %d\nstderr:\n%s", r.code, exitUsage, r.stderr)
	}
}
