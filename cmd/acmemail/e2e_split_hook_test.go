package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestDeployHookSplit: obtain --split and renew of the pair run the
// deploy hook once per certificate, signing first, each with its own
// files and ACMEMAIL_CERT_USAGE; a failing hook keeps both certificates
// and exits 7 (obtain) or 6 (renew).
func TestDeployHookSplit(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	out := filepath.Join(t.TempDir(), "hook.env")
	// The file is named in the hook itself: a hook sees the process's
	// environment, which a parallel test must not change.
	hook := `env | grep -E '^ACMEMAIL_' | sort >> ` + shq(out) + `; echo --- >> ` + shq(out) + `; echo hook ran for $ACMEMAIL_CERT_USAGE`
	sign, enc := splitPair(t, w, env, "--deploy-hook", hook)
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
	check := func(run map[string]string, usage, serial, dir string) {
		t.Helper()
		for k, want := range map[string]string{
			"ACMEMAIL_EMAIL":      "alice@example.test",
			"ACMEMAIL_CERT_USAGE": usage,
			"ACMEMAIL_SERIAL":     serial,
			"ACMEMAIL_P12_PATH":   filepath.Join(dir, "cert.p12"),
			"ACMEMAIL_CERT_PATH":  filepath.Join(dir, "cert.pem"),
			"ACMEMAIL_CHAIN_PATH": filepath.Join(dir, "chain.pem"),
			"ACMEMAIL_KEY_PATH":   filepath.Join(dir, "key.pem"),
		} {
			if run[k] != want {
				t.Errorf("%s hook: %s = %q, want %q", usage, k, run[k], want)
			}
		}
		if _, err := time.Parse(time.RFC3339, run["ACMEMAIL_NOT_AFTER"]); err != nil {
			t.Errorf("%s hook: ACMEMAIL_NOT_AFTER: %v", usage, err)
		}
		for k := range run {
			if strings.Contains(k, "PASSWORD") {
				t.Errorf("%s hook saw %s", usage, k)
			}
		}
	}
	runs := hookRuns(t, out)
	if len(runs) != 2 {
		t.Fatalf("obtain --split ran the hook %d times, want 2 (one per certificate)", len(runs))
	}
	check(runs[0], "sign", sign, dir)
	check(runs[1], "encrypt", enc, filepath.Join(dir, "encrypt"))

	// renew runs it for both renewed certificates, the same way.
	r := runCLI(t, env, "renew", "--force")
	if r.code != 0 {
		t.Fatalf("renew: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"deploy hook (alice@example.test, signing certificate): hook ran for sign", "deploy hook (alice@example.test, encryption certificate): hook ran for encrypt"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("renew stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	sign2, enc2 := pairSerials(t, env)
	if runs = hookRuns(t, out); len(runs) != 4 {
		t.Fatalf("after renew: %d hook runs, want 4", len(runs))
	}
	check(runs[2], "sign", sign2, dir)
	check(runs[3], "encrypt", enc2, filepath.Join(dir, "encrypt"))

	// A hook that fails for the encryption certificate: both are kept,
	// the signing one's hook ran, exit 7; renew then exits 6.
	failing := `echo "$ACMEMAIL_CERT_USAGE" >> ` + shq(out+".usages") + `; [ "$ACMEMAIL_CERT_USAGE" != encrypt ] || { echo broken >&2; exit 3; }`
	r = runCLI(t, env, obtainArgs(w, "--force", "--split", "--deploy-hook", failing)...)
	if r.code != exitHookFailed || !strings.Contains(r.stderr, "the deploy hook for the encryption certificate of alice@example.test failed") ||
		!strings.Contains(r.stderr, "is saved in "+filepath.Join(dir, "encrypt")) {
		t.Errorf("obtain --split with a failing hook: exit %d, want %d\n%s", r.code, exitHookFailed, r.stderr)
	}
	if lines := strings.Fields(r.stdout); len(lines) != 2 {
		t.Errorf("stdout %q: both PKCS#12 paths are still printed", r.stdout)
	}
	if sign3, enc3 := pairSerials(t, env); sign3 == sign2 || enc3 == enc2 {
		t.Errorf("the pair of the run whose hook failed was not kept")
	}
	if got := string(readFile(t, out+".usages")); got != "sign\nencrypt\n" {
		t.Errorf("the failing hook ran for %q, want sign then encrypt", got)
	}
	r = runCLI(t, env, "renew", "--force")
	if r.code != exitSomeFailed || strings.Count(r.stdout, "renewed ") != 2 || !strings.Contains(r.stderr, "the deploy hook for the encryption certificate of alice@example.test failed") {
		t.Errorf("renew with a failing hook: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestDeployHookSplitEncryptionFails: when the encryption certificate
// cannot be obtained, the signing one is saved and its hook runs; the
// run fails for the encryption certificate, not for the hook.
func TestDeployHookSplitEncryptionFails(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	out := filepath.Join(t.TempDir(), "hook.env")
	// A file where the encryption slot's directory belongs: its key
	// cannot be written.
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "encrypt"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, obtainArgs(w, "--split", "--deploy-hook", `env | grep -E '^ACMEMAIL_' | sort >> `+shq(out)+`; echo --- >> `+shq(out))...)
	if r.code == 0 || r.code == exitHookFailed || !strings.Contains(r.stderr, "the encryption certificate: ") ||
		!strings.Contains(r.stderr, "the signing certificate is saved in "+dir) {
		t.Fatalf("obtain --split with no room for the encryption certificate: exit %d\n%s", r.code, r.stderr)
	}
	runs := hookRuns(t, out)
	if len(runs) != 1 || runs[0]["ACMEMAIL_CERT_USAGE"] != "sign" || runs[0]["ACMEMAIL_KEY_PATH"] != filepath.Join(dir, "key.pem") {
		t.Errorf("hook runs %v, want one for the signing certificate", runs)
	}
	if n := w.Stats().CertificatesIssued; n != 1 {
		t.Errorf("%d certificates issued, want 1 (the signing one)", n)
	}
}

// shq quotes s as one word for sh.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
