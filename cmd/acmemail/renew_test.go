package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// far is a renewal window that opens long after any test ends.
var far = &sandbox.RenewalWindow{Start: 60 * 24 * time.Hour, End: 61 * 24 * time.Hour}

func openHome(t *testing.T, env map[string]string) *keystore.Store {
	t.Helper()
	s, err := keystore.Open(env["ACMEMAIL_HOME"])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func installed(t *testing.T, env map[string]string) (keystore.CertMeta, *x509.Certificate) {
	t.Helper()
	_, chain, meta, _, err := openHome(t, env).LoadCertificate("alice@example.test")
	if err != nil {
		t.Fatalf("LoadCertificate: %v", err)
	}
	return meta, chain[0]
}

// profileOf is the profile recorded with a certificate.
func profileOf(t *testing.T, meta keystore.CertMeta) issuer.Profile {
	t.Helper()
	p, err := issuer.ProfileOf(meta)
	if err != nil {
		t.Fatalf("the recorded profile: %v", err)
	}
	return p
}

func mustObtain(t *testing.T, env map[string]string, w *sandbox.World, extra ...string) keystore.CertMeta {
	t.Helper()
	r := runCLI(t, env, obtainArgs(w, extra...)...)
	if r.code != 0 {
		t.Fatalf("obtain exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	meta, _ := installed(t, env)
	return meta
}

// expireRenewalCheck makes the recorded renewal information stale, as if
// the CA's Retry-After had passed.
func expireRenewalCheck(t *testing.T, env map[string]string) {
	t.Helper()
	s := openHome(t, env)
	data, err := s.ReadRenewalState("alice@example.test")
	if err != nil {
		t.Fatalf("no renewal state after obtain: %v", err)
	}
	var st issuer.RenewalState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	st.NextCheck = time.Now().Add(-time.Second)
	if err := issuer.SaveRenewalState(s, "alice@example.test", st); err != nil {
		t.Fatal(err)
	}
}

func publicKeyOf(t *testing.T, path string) crypto.PublicKey {
	t.Helper()
	return readAccountKey(t, path).Public()
}

// TestRenewARIWindow: renew is quiet while the CA's window is in the
// future, and renews, replacing the old certificate, once it opens.
func TestRenewARIWindow(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	old := mustObtain(t, env, w)
	oldKey := publicKeyOf(t, filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/key.pem"))

	// Not due: nothing on stdout or stderr, status 0, no order.
	r := runCLI(t, env, "renew")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("renew before the window: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, env, "renew", "--json")
	var outs []renewOutcome
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs) != 1 || outs[0].Status != "not-due" || outs[0].RenewAt == nil {
		t.Fatalf("renew --json = %s (%v)", r.stdout, err)
	}
	if due := *outs[0].RenewAt; due.Before(old.NotBefore.Add(far.Start)) || !due.Before(old.NotBefore.Add(far.End)) {
		t.Errorf("renew_at %v is outside the CA's window", due)
	}
	if st := w.Stats(); st.Orders != 1 {
		t.Fatalf("orders = %d after renewals that were not due, want 1", st.Orders)
	}

	// The CA opens the window (it moved it, as after an incident); once
	// its Retry-After has passed, renew asks again and renews.
	now := time.Now()
	w.SetRenewalWindow(now.Add(-2*time.Hour), now.Add(-time.Hour))
	expireRenewalCheck(t, env)
	r = runCLI(t, env, "renew")
	if r.code != 0 {
		t.Fatalf("renew in the window: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "renewed alice@example.test: serial ") {
		t.Fatalf("stdout = %q, want one line per renewal", r.stdout)
	}
	cur, leaf := installed(t, env)
	if cur.Serial == old.Serial {
		t.Fatal("the certificate was not replaced")
	}
	st, ok := w.Certificate(old.Serial)
	if !ok || st.ReplacedBy != cur.Serial {
		t.Errorf("sandbox: old certificate replaced by %q, want %s (the order carried no replaces?)", st.ReplacedBy, cur.Serial)
	}
	if s := w.Stats(); s.OrdersReplacing != 1 || s.CertificatesIssued != 2 || s.RepliesReceived != 2 {
		t.Errorf("sandbox stats %+v: want 1 replacing order, 2 certificates, 2 replies", s)
	}
	if kt, _ := keystore.KeyTypeOf(leaf.PublicKey); kt != old.KeyType {
		t.Errorf("key type changed")
	}
	if samePublicKey(leaf.PublicKey, oldKey) {
		t.Errorf("renewal reused the key without --reuse-key")
	}
	checkP12(t, filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/cert.p12"), "alice@example.test")
	arch, _ := filepath.Glob(filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/archive/*/key.pem"))
	if len(arch) != 1 || !samePublicKey(publicKeyOf(t, arch[0]), oldKey) {
		t.Errorf("the old key is not in the archive: %v", arch)
	}

	// --force --reuse-key renews at once with the same key.
	r = runCLI(t, env, "renew", "--force", "--reuse-key", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("renew --force --reuse-key: exit %d\n%s", r.code, r.stderr)
	}
	_, leaf2 := installed(t, env)
	if !samePublicKey(leaf2.PublicKey, leaf.PublicKey) {
		t.Errorf("--reuse-key made a new key")
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

// TestRenewWithoutARI: without renewalInfo the third-of-lifetime rule
// decides, and renewal orders carry no replaces.
func TestRenewWithoutARI(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{NoRenewalInfo: true})
	old := mustObtain(t, env, w)
	r := runCLI(t, env, "renew", "--json")
	var outs []renewOutcome
	if err := json.Unmarshal([]byte(r.stdout), &outs); err != nil || len(outs) != 1 || outs[0].Status != "not-due" {
		t.Fatalf("renew --json = %s (%v)", r.stdout, err)
	}
	want := old.NotAfter.Add(-old.NotAfter.Sub(old.NotBefore) / 3)
	if !outs[0].RenewAt.Equal(want) {
		t.Errorf("renew_at = %v, want %v (a third of the lifetime left)", outs[0].RenewAt, want)
	}
	r = runCLI(t, env, "renew", "--force")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "renewed alice@example.test") {
		t.Fatalf("renew --force: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if s := w.Stats(); s.OrdersReplacing != 0 || s.CertificatesIssued != 2 {
		t.Errorf("stats %+v: want no replacing order and 2 certificates", s)
	}
}

// TestRenewFailureStatus: a renewal that fails is reported with exit
// status 6 and the certificate is kept.
func TestRenewFailureStatus(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	old := mustObtain(t, env, w)
	env["ACMEMAIL_PASSWORD"] = "not-the-password"
	r := runCLI(t, env, "renew", "--force")
	if r.code != exitSomeFailed {
		t.Fatalf("exit %d, want %d\n%s", r.code, exitSomeFailed, r.stderr)
	}
	if r.stdout != "" || !strings.Contains(r.stderr, "renew alice@example.test:") || !strings.Contains(r.stderr, "1 of 1 certificates could not be renewed") {
		t.Errorf("stdout %q, stderr:\n%s", r.stdout, r.stderr)
	}
	if cur, _ := installed(t, env); cur.Serial != old.Serial {
		t.Errorf("the certificate changed")
	}
	// Unknown address: a failure too, with a hint.
	r = runCLI(t, env, "renew", "bob@example.test")
	if r.code != exitSomeFailed || !strings.Contains(r.stderr, "acmemail obtain bob@example.test") {
		t.Errorf("renew of an unmanaged address: exit %d\n%s", r.code, r.stderr)
	}
}

// TestDeployHook: the hook sees the variables (and no secret) after obtain
// and after renew; a failing hook exits 7 and keeps the certificate.
func TestDeployHook(t *testing.T) {
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	out := filepath.Join(t.TempDir(), "hook.env")
	t.Setenv("HOOK_OUT", out)
	t.Setenv("ACMEMAIL_PASSWORD", "secret-in-the-environment")
	t.Setenv("ACMEMAIL_P12_PASSWORD", "p12-secret-in-the-environment")
	hook := `env | grep -E '^ACMEMAIL_' | sort >> "$HOOK_OUT"; echo --- >> "$HOOK_OUT"; echo hook ran`
	r := runCLI(t, env, obtainArgs(w, "--deploy-hook", hook)...)
	if r.code != 0 {
		t.Fatalf("obtain exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "deploy hook (alice@example.test): hook ran") {
		t.Errorf("the hook's output is not on stderr:\n%s", r.stderr)
	}
	meta, leaf := installed(t, env)
	vars := hookRuns(t, out)
	if len(vars) != 1 {
		t.Fatalf("hook ran %d times, want 1", len(vars))
	}
	v := vars[0]
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
	for k, want := range map[string]string{
		"ACMEMAIL_EMAIL":      "alice@example.test",
		"ACMEMAIL_P12_PATH":   filepath.Join(dir, "cert.p12"),
		"ACMEMAIL_CERT_PATH":  filepath.Join(dir, "cert.pem"),
		"ACMEMAIL_CHAIN_PATH": filepath.Join(dir, "chain.pem"),
		"ACMEMAIL_KEY_PATH":   filepath.Join(dir, "key.pem"),
		"ACMEMAIL_NOT_AFTER":  leaf.NotAfter.UTC().Format(time.RFC3339),
		"ACMEMAIL_SERIAL":     acmemail.FormatSerialText(meta.Serial),
		"ACMEMAIL_CERT_USAGE": "both",
	} {
		if v[k] != want {
			t.Errorf("%s = %q, want %q", k, v[k], want)
		}
	}
	for k := range v {
		if strings.Contains(k, "PASSWORD") {
			t.Errorf("the hook saw %s", k)
		}
	}
	certPEM, _ := os.ReadFile(v["ACMEMAIL_CERT_PATH"])
	if b, _ := pem.Decode(certPEM); b == nil || !bytes.Equal(b.Bytes, leaf.Raw) {
		t.Errorf("ACMEMAIL_CERT_PATH does not hold the leaf")
	}

	// renew repeats the hook obtain was given.
	r = runCLI(t, env, "renew", "--force")
	if r.code != 0 {
		t.Fatalf("renew exit %d\n%s", r.code, r.stderr)
	}
	vars = hookRuns(t, out)
	if len(vars) != 2 || vars[1]["ACMEMAIL_SERIAL"] == acmemail.FormatSerialText(meta.Serial) {
		t.Errorf("after renew: %d hook runs, serial %q", len(vars), vars[len(vars)-1]["ACMEMAIL_SERIAL"])
	}

	// A failing hook: exit 7 (obtain) or 6 (renew), certificate saved.
	r = runCLI(t, env, obtainArgs(w, "--force", "--deploy-hook", "echo broken >&2; exit 3")...)
	if r.code != exitHookFailed || !strings.Contains(r.stderr, "the deploy hook for alice@example.test failed") || !strings.Contains(r.stderr, "is saved in") {
		t.Errorf("failing hook: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.HasSuffix(strings.TrimSpace(r.stdout), ".p12") {
		t.Errorf("stdout %q: the saved certificate's path is still printed", r.stdout)
	}
	meta3, _ := installed(t, env)
	if acmemail.FormatSerialText(meta3.Serial) == vars[1]["ACMEMAIL_SERIAL"] {
		t.Errorf("the certificate of the run whose hook failed was not kept")
	}
	r = runCLI(t, env, "renew", "--force")
	if r.code != exitSomeFailed || !strings.HasPrefix(r.stdout, "renewed ") {
		t.Errorf("renew with a failing hook: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
}

func hookRuns(t *testing.T, path string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var runs []map[string]string
	cur := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "---":
			runs = append(runs, cur)
			cur = map[string]string{}
		case line != "":
			k, v, _ := strings.Cut(line, "=")
			cur[k] = v
		}
	}
	return runs
}

// TestRevokeListShow: revoke by address; the sandbox reports it revoked,
// list and show say so, and renew leaves it alone.
func TestRevokeListShow(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	meta := mustObtain(t, env, w)

	r := runCLI(t, env, "list", "--json")
	var list []certInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("list --json = %s (%v)", r.stdout, err)
	}
	c := list[0]
	if c.Email != "alice@example.test" || c.Serial != acmemail.FormatSerialText(meta.Serial) || c.KeyType != "rsa2048" || c.Usage != "both" || c.CA != w.DirectoryURL ||
		c.RenewalBasis != "ari" || c.RenewalDue.Before(meta.NotBefore.Add(far.Start)) || c.Revoked || c.Files.PKCS12 == "" || c.Files.Key == "" {
		t.Errorf("list entry = %+v", c)
	}
	r = runCLI(t, env, "list")
	if !strings.Contains(r.stdout, "EMAIL") || !strings.Contains(r.stdout, acmemail.FormatSerialText(meta.Serial)) || !strings.Contains(r.stdout, "valid") {
		t.Errorf("list:\n%s", r.stdout)
	}

	r = runCLI(t, env, "revoke", "--reason", "keyCompromise", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("revoke exit %d\n%s", r.code, r.stderr)
	}
	st, ok := w.Certificate(meta.Serial)
	if !ok || !st.Revoked || st.RevocationReason != acmemail.ReasonKeyCompromise {
		t.Fatalf("sandbox status %+v: want revoked for keyCompromise", st)
	}
	r = runCLI(t, env, "show", "--json", "alice@example.test")
	var ci certInfo
	if err := json.Unmarshal([]byte(r.stdout), &ci); err != nil || !ci.Revoked || ci.RevocationReason != "keyCompromise" {
		t.Errorf("show --json = %s (%v)", r.stdout, err)
	}
	r = runCLI(t, env, "show", "alice@example.test")
	if !strings.Contains(r.stdout, "revoked") || !strings.Contains(r.stdout, "renewal due:") {
		t.Errorf("show:\n%s", r.stdout)
	}
	// A second revocation is the CA's alreadyRevoked.
	if r = runCLI(t, env, "revoke", "alice@example.test"); r.code != exitCA || !strings.Contains(r.stderr, "alreadyRevoked") {
		t.Errorf("second revoke: exit %d\n%s", r.code, r.stderr)
	}
	// renew does not renew a revoked certificate without --force.
	if r = runCLI(t, env, "renew"); r.code != 0 || r.stdout != "" {
		t.Errorf("renew after revoke: exit %d, stdout %q", r.code, r.stdout)
	}
	if w.Stats().Orders != 1 {
		t.Errorf("renew ordered a certificate for a revoked one")
	}
	if r = runCLI(t, env, "revoke", "--reason", "bogus", "alice@example.test"); r.code != exitUsage {
		t.Errorf("unknown reason: exit %d", r.code)
	}
	if r = runCLI(t, env, "show", "bob@example.test"); r.code == 0 || !strings.Contains(r.stderr, "no certificate for bob@example.test") {
		t.Errorf("show of an unknown address: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRevokeCertFile revokes by --cert FILE: the managed key signs it.
func TestRevokeCertFile(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	meta := mustObtain(t, env, w)
	leaf := filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/cert.pem")
	r := runCLI(t, env, "revoke", "--cert", leaf, "--reason", "superseded", "--json")
	if r.code != 0 {
		t.Fatalf("revoke --cert: exit %d\n%s", r.code, r.stderr)
	}
	if st, _ := w.Certificate(meta.Serial); !st.Revoked || st.RevocationReason != acmemail.ReasonSuperseded {
		t.Errorf("sandbox status %+v", st)
	}
}

// hangAfterReply is the environment variable that makes the test binary
// act as acmemail and stop dead right after the challenge reply was sent
// and recorded (see TestMain).
const hangAfterReply = "ACMEMAIL_TEST_HANG_AFTER_REPLY"

// hangHook blocks the process once a reply was recorded as sent.
func hangHook(st acmemail.OrderState) {
	for _, a := range st.Authorizations {
		if a.ReplySent {
			os.Stderr.WriteString("TEST: reply sent\n")
			select {}
		}
	}
}

// TestObtainKilledAfterReply: obtain is SIGKILLed right after it sent the
// reply; the next run completes the same order with the same key, and the
// CA received exactly one reply.
func TestObtainKilledAfterReply(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	args := obtainArgs(w)
	cmd := exec.Command(os.Args[0], args...)
	// The child reads the real environment: keep a developer's own
	// configuration file out of it.
	cmd.Env = append(os.Environ(), hangAfterReply+"=1", "XDG_CONFIG_HOME="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	sc := bufio.NewScanner(stderr)
	sent := false
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if sc.Text() == "TEST: reply sent" {
			sent = true
			break
		}
	}
	if !sent {
		cmd.Wait()
		t.Fatalf("the first run ended without sending a reply:\n%s", log.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the first run was not killed: %v", err)
	}
	store := openHome(t, env)
	data, err := store.ReadOrderState("alice@example.test")
	if err != nil {
		t.Fatalf("no order state after the kill: %v", err)
	}
	var st acmemail.OrderState
	if err := json.Unmarshal(data, &st); err != nil || st.OrderURL == "" || len(st.Authorizations) != 1 || !st.Authorizations[0].ReplySent || st.Authorizations[0].Posted {
		t.Fatalf("recorded state %s (%v): want the order with its reply sent and not yet posted", data, err)
	}
	pendingKey := publicKeyOf(t, filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/pending-key.pem"))

	r := runCLI(t, env, args...)
	if r.code != 0 {
		t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "continuing the interrupted order "+st.OrderURL) {
		t.Errorf("the second run did not continue the order:\n%s", r.stderr)
	}
	meta, leaf := installed(t, env)
	if meta.OrderURL != st.OrderURL {
		t.Errorf("certificate from order %s, want the interrupted %s", meta.OrderURL, st.OrderURL)
	}
	if !samePublicKey(leaf.PublicKey, pendingKey) {
		t.Errorf("the certificate is not for the key the first run made")
	}
	s := w.Stats()
	if s.RepliesReceived != 1 || s.Orders != 1 || s.CertificatesIssued != 1 || s.ChallengesSent != 1 {
		t.Errorf("sandbox: %d replies, %d orders, %d certificates, %d challenge mails; want 1 each", s.RepliesReceived, s.Orders, s.CertificatesIssued, s.ChallengesSent)
	}
	if _, err := store.ReadOrderState("alice@example.test"); err == nil {
		t.Errorf("the order state is still there after the install")
	}
}

// TestConcurrentRuns: two runs for one address at once. Without
// --wait-lock the second is refused (status 8) and one certificate
// results; with it the second waits, then finds nothing due.
func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	// The first run to record an order state stops there until released;
	// any other passes (so a broken lock fails the test, not hangs it).
	var inOrder, release chan struct{}
	var stopped atomic.Bool
	hold := func() {
		inOrder, release = make(chan struct{}), make(chan struct{})
		stopped.Store(false)
	}
	hold()
	hook := context.WithValue(context.Background(), orderStateHookKey{}, func(acmemail.OrderState) {
		if stopped.CompareAndSwap(false, true) {
			close(inOrder)
			<-release
		}
	})

	first := make(chan cliResult, 1)
	go func() { first <- runCLICtx(t, hook, env, obtainArgs(w)...) }()
	<-inOrder // the first run holds the lock and has created its order
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != exitLocked || !strings.Contains(r.stderr, "another acmemail run is working on alice@example.test") || !strings.Contains(r.stderr, "--wait-lock") {
		t.Errorf("second run: exit %d, want %d\n%s", r.code, exitLocked, r.stderr)
	}
	close(release)
	if r := <-first; r.code != 0 {
		t.Fatalf("first run: exit %d\n%s", r.code, r.stderr)
	}
	store := openHome(t, env)
	if emails, _ := store.ListCertificates(); len(emails) != 1 {
		t.Errorf("certificates: %v", emails)
	}
	arch, _ := filepath.Glob(filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/archive/*"))
	if s := w.Stats(); s.Orders != 1 || s.CertificatesIssued != 1 || s.RepliesReceived != 1 || len(arch) != 0 {
		t.Errorf("sandbox: %d orders, %d certificates, %d replies, %d archived; want 1, 1, 1, 0", s.Orders, s.CertificatesIssued, s.RepliesReceived, len(arch))
	}
	meta, _ := installed(t, env)

	// renew --force and a waiting plain renew: one renewal.
	hold()
	go func() { first <- runCLICtx(t, hook, env, "renew", "--force") }()
	<-inOrder
	// An address named while another run works on it: exit 8, as obtain
	// (a plain renew, as from cron, skips it).
	if r := runCLI(t, env, "renew", "--force", "alice@example.test"); r.code != exitLocked || !strings.Contains(r.stderr, "another acmemail run is working on alice@example.test") {
		t.Errorf("renew --force EMAIL while locked: exit %d, want %d\n%s", r.code, exitLocked, r.stderr)
	}
	if r := runCLI(t, env, "renew", "--force"); r.code != 0 || r.stdout != "" {
		t.Errorf("renew --force while locked: exit %d, stdout %q; want 0 and nothing renewed\n%s", r.code, r.stdout, r.stderr)
	}
	waiting := newWatchWriter("waiting for it to finish")
	second := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		second <- run(ctx, []string{"renew", "-v", "--wait-lock"}, strings.NewReader(""), io.Discard, waiting, func(k string) string { return env[k] })
	}()
	select {
	case <-waiting.seen: // the second renew is waiting for the lock
	case code := <-second:
		close(release)
		<-first
		t.Fatalf("the second renew did not wait for the lock (exit %d):\n%s", code, waiting.String())
	}
	close(release)
	if r := <-first; r.code != 0 || !strings.HasPrefix(r.stdout, "renewed ") {
		t.Fatalf("renew --force: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if code := <-second; code != 0 {
		t.Errorf("waiting renew: exit %d\n%s", code, waiting.String())
	}
	cur, _ := installed(t, env)
	if s := w.Stats(); s.CertificatesIssued != 2 || cur.Serial == meta.Serial {
		t.Errorf("%d certificates issued, want 2 (one obtain, one renewal)", s.CertificatesIssued)
	}
	if !strings.Contains(waiting.String(), "not due until") {
		t.Errorf("the waiting renew did not find the new certificate not due:\n%s", waiting.String())
	}
}

// watchWriter collects output and closes seen when it contains want.
type watchWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func newWatchWriter(want string) *watchWriter {
	return &watchWriter{want: want, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestRenewConfigPerIdentity: renew of several addresses applies each
// one's table of the configuration file to its own renewal only.
func TestRenewConfigPerIdentity(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	if err := w.AddUser("bob@example.test", "alice-secret-pw"); err != nil {
		t.Fatal(err)
	}
	mustObtain(t, env, w)
	bobArgs := obtainArgs(w)
	bobArgs[len(bobArgs)-1] = "bob@example.test"
	if r := runCLI(t, env, bobArgs...); r.code != 0 {
		t.Fatalf("obtain bob: exit %d\n%s", r.code, r.stderr)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "hook.out")
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte("[identity.\"bob@example.test\"]\ndeploy-hook = \"echo $ACMEMAIL_EMAIL >> "+out+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, "--config", cfg, "renew", "--force")
	if r.code != 0 || strings.Count(r.stdout, "renewed ") != 2 {
		t.Fatalf("renew: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	got, _ := os.ReadFile(out)
	if string(got) != "bob@example.test\n" {
		t.Errorf("the hook of bob's table ran for %q, want bob only", got)
	}
}

// TestObtainInterrupted: a run stopped at each recorded step is completed
// by the next one, never answering a challenge twice: after the order was
// created (no reply yet: a new order, same key), after the challenge was
// POSTed, and after the order was finalized (only the download is left).
func TestObtainInterrupted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		stop       func(acmemail.OrderState) bool
		sameOrder  bool
		wantOrders int
	}{
		{"order-created", func(st acmemail.OrderState) bool { return st.OrderURL != "" }, false, 2},
		{"challenge-posted", func(st acmemail.OrderState) bool { return len(st.Authorizations) == 1 && st.Authorizations[0].Posted }, true, 1},
		{"finalized", func(st acmemail.OrderState) bool { return st.Finalized }, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, sandbox.Options{RenewalWindow: far})
			ctx, cancel := context.WithCancel(context.Background())
			var stopped atomic.Bool
			ctx = context.WithValue(ctx, orderStateHookKey{}, func(st acmemail.OrderState) {
				if tc.stop(st) && stopped.CompareAndSwap(false, true) {
					cancel() // as Ctrl-C would, right after the state was recorded
				}
			})
			var errb bytes.Buffer
			code := run(ctx, obtainArgs(w), strings.NewReader(""), io.Discard, &errb, func(k string) string { return env[k] })
			if code != exitInterrupted || !stopped.Load() {
				t.Fatalf("first run: exit %d, stopped %v\n%s", code, stopped.Load(), errb.String())
			}
			// It says what the next run will do: continue the order, or
			// (the challenge mail came to this run) order anew.
			want := "acmemail: interrupted\nacmemail: hint: run the same command again to continue"
			if !tc.sameOrder {
				want = "acmemail: interrupted\nacmemail: hint: run the same command again: its challenge mail came to this run, so the next one starts a new order"
			}
			if !strings.Contains(errb.String(), want) {
				t.Errorf("the interrupted run does not say how to go on (want %q):\n%s", want, errb.String())
			}
			pending := publicKeyOf(t, filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/pending-key.pem"))
			data, _ := openHome(t, env).ReadOrderState("alice@example.test")
			var st acmemail.OrderState
			json.Unmarshal(data, &st)

			r := runCLI(t, env, obtainArgs(w)...)
			if r.code != 0 {
				t.Fatalf("second run: exit %d\n%s", r.code, r.stderr)
			}
			meta, leaf := installed(t, env)
			if (meta.OrderURL == st.OrderURL) != tc.sameOrder {
				t.Errorf("certificate from order %s; interrupted order %s; want the same: %v\n%s", meta.OrderURL, st.OrderURL, tc.sameOrder, r.stderr)
			}
			if !samePublicKey(leaf.PublicKey, pending) {
				t.Errorf("the certificate is not for the key the first run made")
			}
			s := w.Stats()
			if s.Orders != tc.wantOrders || s.RepliesReceived != 1 || s.CertificatesIssued != 1 {
				t.Errorf("sandbox: %d orders, %d replies, %d certificates; want %d, 1, 1", s.Orders, s.RepliesReceived, s.CertificatesIssued, tc.wantOrders)
			}
		})
	}
}

// TestRefusedCertificateForgetsOrder: a finished order whose certificate
// acmemail refuses is not continued again (that would fetch the same
// certificate forever); the next run makes a new order.
func TestRefusedCertificateForgetsOrder(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{BadCert: sandbox.BadCertForeignKey})
	if r := runCLI(t, env, obtainArgs(w)...); r.code != exitCA {
		t.Fatalf("obtain: exit %d, want %d\n%s", r.code, exitCA, r.stderr)
	}
	if _, err := openHome(t, env).ReadOrderState("alice@example.test"); err == nil {
		t.Fatal("the order of the refused certificate is still recorded")
	}
	r := runCLI(t, env, obtainArgs(w)...)
	if r.code != exitCA || strings.Contains(r.stderr, "continuing the interrupted order") {
		t.Errorf("second run: exit %d\n%s", r.code, r.stderr)
	}
	if s := w.Stats(); s.Orders != 2 || s.RepliesReceived != 2 {
		t.Errorf("sandbox: %d orders, %d replies; want 2 and 2", s.Orders, s.RepliesReceived)
	}
}
