package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// splitPair obtains an obtain --split pair for alice and returns the
// serials of its signing and encryption certificates.
func splitPair(t *testing.T, w *sandbox.World, env map[string]string, extra ...string) (sign, enc string) {
	t.Helper()
	if r := runCLI(t, env, obtainArgs(w, append([]string{"--split"}, extra...)...)...); r.code != 0 {
		t.Fatalf("obtain --split: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	return pairSerials(t, env)
}

func pairSerials(t *testing.T, env map[string]string) (sign, enc string) {
	t.Helper()
	store := openHome(t, env)
	encStore, err := store.Slot(encryptSlot)
	if err != nil {
		t.Fatal(err)
	}
	serial := func(st *keystore.Store) string {
		_, _, meta, _, err := st.LoadCertificate("alice@example.test")
		if err != nil {
			t.Fatal(err)
		}
		return acmemail.FormatSerialText(meta.Serial) // as acmemail shows it
	}
	return serial(store), serial(encStore)
}

// caRevoked reports whether the sandbox CA has revoked serial, and why.
func caRevoked(t *testing.T, w *sandbox.World, serial string) (bool, int) {
	t.Helper()
	st, ok := w.Certificate(serial)
	if !ok {
		t.Fatalf("the sandbox CA does not know the certificate %s", serial)
	}
	return st.Revoked, st.RevocationReason
}

// listLines are the lines of acmemail list for alice.
func listLines(t *testing.T, env map[string]string) []string {
	t.Helper()
	r := runCLI(t, env, "list")
	if r.code != 0 {
		t.Fatalf("list: exit %d\n%s", r.code, r.stderr)
	}
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "alice@example.test ") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	return lines
}

// TestRevokeSplitPair: revoke EMAIL revokes both certificates of an
// obtain --split pair at the CA, with one reason, reports both (text and
// --json), and list, show and renew see both as revoked.
func TestRevokeSplitPair(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	sign, enc := splitPair(t, w, env)
	if lines := listLines(t, env); len(lines) != 2 || !strings.Contains(lines[0], sign+" ") || !strings.Contains(lines[0], " sign valid ") ||
		!strings.Contains(lines[1], enc+" ") || !strings.Contains(lines[1], " encrypt valid ") {
		t.Errorf("list before revoke, want one line per certificate of the pair:\n%s", strings.Join(lines, "\n"))
	}

	r := runCLI(t, env, "revoke", "--reason", "keyCompromise", "--json", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("revoke: exit %d\n%s", r.code, r.stderr)
	}
	for _, serial := range []string{sign, enc} {
		if revoked, why := caRevoked(t, w, serial); !revoked || why != acmemail.ReasonKeyCompromise {
			t.Errorf("at the CA, %s: revoked %v, reason %d; want revoked for keyCompromise", serial, revoked, why)
		}
	}
	var res revokeResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("revoke --json: %v\n%s", err, r.stdout)
	}
	if !res.Revoked || res.Serial != sign || res.Reason != "keyCompromise" || res.CA != w.DirectoryURL || len(res.Certificates) != 2 ||
		res.Certificates[0] != (revokeCertResult{Usage: "sign", Serial: sign, Revoked: true}) ||
		res.Certificates[1] != (revokeCertResult{Usage: "encrypt", Serial: enc, Revoked: true}) {
		t.Errorf("revoke --json = %s", r.stdout)
	}
	for _, want := range []string{"revoked the signing certificate " + sign + " (keyCompromise)", "revoked the encryption certificate " + enc + " (keyCompromise)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}

	// list, show and list --json: both revoked.
	if lines := listLines(t, env); len(lines) != 2 || !strings.Contains(lines[0], " sign revoked ") || !strings.Contains(lines[1], " encrypt revoked ") {
		t.Errorf("list after revoke:\n%s", strings.Join(lines, "\n"))
	}
	r = runCLI(t, env, "list", "--json")
	var list []certInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || !list[0].Revoked || list[0].Encryption == nil ||
		!list[0].Encryption.Revoked || list[0].Encryption.RevocationReason != "keyCompromise" {
		t.Errorf("list --json = %s (%v)", r.stdout, err)
	}
	r = runCLI(t, env, "show", "alice@example.test")
	if !strings.Contains(r.stdout, "serial "+enc+", revoked (keyCompromise)") || !strings.Contains(r.stdout, "revoked:") {
		t.Errorf("show:\n%s", r.stdout)
	}

	// Again: the CA says alreadyRevoked for both, which is an error.
	r = runCLI(t, env, "revoke", "alice@example.test")
	if r.code != exitCA || !strings.Contains(r.stderr, "both certificates of the --split pair of alice@example.test were already revoked") {
		t.Errorf("second revoke: exit %d\n%s", r.code, r.stderr)
	}
	// renew leaves the revoked pair alone.
	if r = runCLI(t, env, "renew"); r.code != 0 || r.stdout != "" {
		t.Errorf("renew after revoke: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	if n := w.Stats().Orders; n != 2 {
		t.Errorf("%d orders, want the 2 of obtain --split", n)
	}
}

// TestRevokeSplitOnly: --only revokes one certificate of the pair; a
// later revoke of the address revokes the other and counts the first as
// revoked. --only and --key are refused where they name nothing.
func TestRevokeSplitOnly(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	sign, enc := splitPair(t, w, env, "--key-type", "p256")

	r := runCLI(t, env, "revoke", "--only", "encryption", "--reason", "superseded", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("revoke --only encryption: exit %d\n%s", r.code, r.stderr)
	}
	if revoked, why := caRevoked(t, w, enc); !revoked || why != acmemail.ReasonSuperseded {
		t.Errorf("encryption certificate at the CA: revoked %v, reason %d", revoked, why)
	}
	if revoked, _ := caRevoked(t, w, sign); revoked {
		t.Error("revoke --only encryption revoked the signing certificate")
	}
	if !strings.Contains(r.stderr, "revoked the encryption certificate "+enc) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if lines := listLines(t, env); len(lines) != 2 || !strings.Contains(lines[0], " sign valid ") || !strings.Contains(lines[1], " encrypt revoked ") {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--only", "both", "alice@example.test"}, `--only "both": choose signing or encryption`},
		{[]string{"--only", "signing", "--cert", filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/cert.pem")}, "--cert FILE already names one"},
		{[]string{"--key", filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/key.pem"), "alice@example.test"}, "add --only signing or --only encryption"},
	} {
		if r := runCLI(t, env, append([]string{"revoke"}, tc.args...)...); r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("revoke %q: exit %d, want %d and %q\n%s", tc.args, r.code, exitUsage, tc.want, r.stderr)
		}
	}

	// The whole pair now: the signing one is revoked, the encryption one
	// was already; that is success.
	r = runCLI(t, env, "revoke", "--json", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("revoke of the half-revoked pair: exit %d\n%s", r.code, r.stderr)
	}
	if revoked, why := caRevoked(t, w, sign); !revoked || why != acmemail.ReasonUnspecified {
		t.Errorf("signing certificate at the CA: revoked %v, reason %d", revoked, why)
	}
	var res revokeResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Revoked || len(res.Certificates) != 2 ||
		res.Certificates[0].AlreadyRevoked || !res.Certificates[1].AlreadyRevoked || !res.Certificates[1].Revoked {
		t.Errorf("revoke --json = %s (%v)", r.stdout, err)
	}
	if !strings.Contains(r.stderr, "the encryption certificate "+enc+" of alice@example.test was already revoked") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// show keeps the reason recorded by the first revoke.
	if r := runCLI(t, env, "show", "alice@example.test"); !strings.Contains(r.stdout, "serial "+enc+", revoked (superseded)") {
		t.Errorf("show:\n%s", r.stdout)
	}

	// An address without a pair has nothing for --only to pick.
	w2, env2 := world(t, sandbox.Options{RenewalWindow: far})
	mustObtain(t, env2, w2)
	if r := runCLI(t, env2, "revoke", "--only", "encryption", "alice@example.test"); r.code != exitUsage || !strings.Contains(r.stderr, "has one certificate") {
		t.Errorf("--only without a pair: exit %d\n%s", r.code, r.stderr)
	}
}

// TestRevokeSplitOneFails: when the CA refuses to revoke one certificate
// of the pair, the other is still revoked; revoke exits with the CA's
// status and says which one is left and how to revoke it alone.
func TestRevokeSplitOneFails(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	_, enc := splitPair(t, w, env)
	// The signing slot now holds a certificate (and its key) from another
	// CA: this CA refuses to revoke it.
	w2, env2 := world(t, sandbox.Options{RenewalWindow: far})
	foreign := mustObtain(t, env2, w2)
	for _, f := range []string{"cert.pem", "chain.pem", "key.pem"} {
		data := readFile(t, filepath.Join(env2["ACMEMAIL_HOME"], "certificates/alice@example.test", f))
		if err := os.WriteFile(filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test", f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	r := runCLI(t, env, "revoke", "--reason", "keyCompromise", "--json", "alice@example.test")
	if r.code != exitCA {
		t.Fatalf("revoke: exit %d, want %d\n%s", r.code, exitCA, r.stderr)
	}
	if revoked, why := caRevoked(t, w, enc); !revoked || why != acmemail.ReasonKeyCompromise {
		t.Errorf("the encryption certificate was not revoked although the signing one failed first (revoked %v, reason %d)", revoked, why)
	}
	if revoked, _ := caRevoked(t, w2, foreign.Serial); revoked {
		t.Error("the other CA's certificate was revoked")
	}
	for _, want := range []string{
		"revoked the encryption certificate " + enc + " of alice@example.test, but not the signing certificate " + acmemail.FormatSerialText(foreign.Serial),
		"did not issue that certificate",
		"hint: the signing certificate is not revoked: once the cause is fixed, revoke it alone with acmemail revoke --only signing --reason keyCompromise alice@example.test",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "does not accept this address") {
		t.Errorf("a hint about orders for a refused revocation:\n%s", r.stderr)
	}
	var res revokeResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || res.Revoked || len(res.Certificates) != 2 ||
		res.Certificates[0].Revoked || res.Certificates[0].Error == "" || !res.Certificates[1].Revoked || res.Certificates[1].Error != "" {
		t.Errorf("revoke --json = %s (%v)", r.stdout, err)
	}
	if lines := listLines(t, env); len(lines) != 2 || !strings.Contains(lines[0], " sign valid ") || !strings.Contains(lines[1], " encrypt revoked ") {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}
}

// TestRevokeSplitUnreadable: the encryption certificate's key is not its
// own (a damaged state directory): the signing certificate is revoked
// anyway, and revoke fails saying how to revoke the other.
func TestRevokeSplitUnreadable(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	sign, enc := splitPair(t, w, env)
	dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test")
	// The signing key in the encryption slot: it does not match.
	if err := os.WriteFile(filepath.Join(dir, "encrypt/key.pem"), readFile(t, filepath.Join(dir, "key.pem")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, env, "revoke", "alice@example.test")
	if r.code != exitError {
		t.Fatalf("revoke: exit %d, want %d\n%s", r.code, exitError, r.stderr)
	}
	if revoked, _ := caRevoked(t, w, sign); !revoked {
		t.Error("the signing certificate was not revoked")
	}
	if revoked, _ := caRevoked(t, w, enc); revoked {
		t.Error("the encryption certificate was revoked with a key that is not its own")
	}
	for _, want := range []string{
		"revoked the signing certificate " + sign + " of alice@example.test, but not the encryption certificate: read the encryption certificate: ",
		"does not hold the key of the certificate",
		"hint: the encryption certificate is not revoked: once the cause is fixed, revoke it alone with acmemail revoke --only encryption",
		"hint: or revoke it with your account key: acmemail revoke --cert FILE --server " + w.DirectoryURL,
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	// The hint works: the account key revokes it.
	r = runCLI(t, env, "revoke", "--cert", filepath.Join(dir, "encrypt/cert.pem"), "--server", w.DirectoryURL)
	if r.code != 0 {
		t.Fatalf("revoke --cert with the account key: exit %d\n%s", r.code, r.stderr)
	}
	if revoked, _ := caRevoked(t, w, enc); !revoked {
		t.Error("revoke --cert did not revoke the encryption certificate")
	}
}

// TestRevokeSplitCertFile: --cert FILE naming a pair's encryption
// certificate revokes that one alone, with its own key, and list says so.
func TestRevokeSplitCertFile(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	sign, enc := splitPair(t, w, env)
	r := runCLI(t, env, "revoke", "--cert", filepath.Join(env["ACMEMAIL_HOME"], "certificates/alice@example.test/encrypt/cert.pem"), "--reason", "keyCompromise")
	if r.code != 0 || !strings.Contains(r.stderr, "revoked the encryption certificate "+enc+" (keyCompromise)") {
		t.Fatalf("revoke --cert: exit %d\n%s", r.code, r.stderr)
	}
	if revoked, _ := caRevoked(t, w, enc); !revoked {
		t.Error("the encryption certificate was not revoked")
	}
	if revoked, _ := caRevoked(t, w, sign); revoked {
		t.Error("revoke --cert of the encryption certificate revoked the signing one")
	}
	if lines := listLines(t, env); len(lines) != 2 || !strings.Contains(lines[0], " sign valid ") || !strings.Contains(lines[1], " encrypt revoked ") {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}
}

// TestRenewSplitRevokedEncryption: after revoke --only encryption, renew
// --force gets a new pair; the revoked certificate is not claimed as
// replaced (RFC 9773 replaces is for certificates still in use).
func TestRenewSplitRevokedEncryption(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	sign, enc := splitPair(t, w, env)
	if r := runCLI(t, env, "revoke", "--only", "encryption", "alice@example.test"); r.code != 0 {
		t.Fatalf("revoke --only encryption: exit %d\n%s", r.code, r.stderr)
	}
	r := runCLI(t, env, "renew", "--force", "alice@example.test")
	if r.code != 0 {
		t.Fatalf("renew --force: exit %d\n%s", r.code, r.stderr)
	}
	sign2, enc2 := pairSerials(t, env)
	if sign2 == sign || enc2 == enc {
		t.Fatalf("renew --force left a certificate of the pair: signing %s -> %s, encryption %s -> %s", sign, sign2, enc, enc2)
	}
	if st, _ := w.Certificate(enc); st.ReplacedBy != "" {
		t.Errorf("the revoked encryption certificate is recorded as replaced by %s", st.ReplacedBy)
	}
	if st, _ := w.Certificate(sign); st.ReplacedBy == "" {
		t.Errorf("the signing certificate, still valid, is not recorded as replaced")
	}
	if lines := listLines(t, env); len(lines) != 2 || !strings.Contains(lines[0], " sign valid ") || !strings.Contains(lines[1], " encrypt valid ") {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}
}
