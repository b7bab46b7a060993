package main

import (
	"crypto/ecdsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestRenewRepeatsObtainProfile: the profile obtain records is exactly
// what renew uses. obtain runs with every setting that matters away from
// its default (the CA's TLS roots by ACMEMAIL_CA_ROOTS, the issuer roots,
// a hook, the legacy PKCS#12 profile and its password file, a P-384 key,
// --split or --usage sign, an --also address, the Junk folder, the mail
// password file, mail wait and reply settle); renew then runs with an
// environment that holds nothing but the state directory, renews, and
// records a profile equal to obtain's, field by field.
func TestRenewRepeatsObtainProfile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		certs int // certificates per issuance
	}{
		{"split", []string{"--split"}, 2},
		{"usage-sign", []string{"--usage", "sign"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, sandbox.Options{Folder: "Junk", RenewalWindow: far})
			const bob = "bob@example.test"
			if err := w.AddAlias(bob, "alice@example.test"); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			write := func(name, content string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			}
			mailPW, p12PW := write("mail.pw", env["ACMEMAIL_PASSWORD"]+"\n"), write("p12.pw", "p12-secret\n")
			issuerRoots := write("issuer.pem", string(w.IssuerRootPEM))
			hookLog := filepath.Join(dir, "hook.log")
			delete(env, "ACMEMAIL_PASSWORD")
			delete(env, "ACMEMAIL_P12_PASSWORD")
			args := append([]string{
				"--key-type", "p384", "--p12-profile", "legacy", "--p12-password-file", p12PW, "--password-file", mailPW,
				"--deploy-hook", `echo "$ACMEMAIL_CERT_USAGE $ACMEMAIL_SERIAL" >> '` + hookLog + `'`,
				"--also", bob, "--mailbox", "Junk", "--issuer-roots", issuerRoots,
			}, tc.extra...)
			mustObtain(t, env, w, args...)
			obtained, _ := installed(t, env)
			rec := profileOf(t, obtained)
			if rec.CARoots != env["ACMEMAIL_CA_ROOTS"] || rec.Mailbox != "Junk" || rec.P12PasswordFile != p12PW || rec.KeyType != "p384" || len(rec.Also) != 1 {
				t.Fatalf("obtain recorded %+v", rec)
			}

			// Cron's environment: the state directory, nothing else.
			bare := map[string]string{"ACMEMAIL_HOME": env["ACMEMAIL_HOME"]}
			r := runCLI(t, bare, "renew", "--force", "alice@example.test")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "renewed alice@example.test") {
				t.Fatalf("renew from an empty environment: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			renewed, leaf := installed(t, env)
			if renewed.Serial == obtained.Serial {
				t.Fatal("renew did not replace the certificate")
			}
			if d := issuer.Diff(rec, profileOf(t, renewed)); len(d) != 0 {
				t.Errorf("renew recorded a profile that differs from obtain's: %+v", d)
			}
			// And it did use it.
			if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || leaf.PublicKey.(*ecdsa.PublicKey).Curve.Params().Name != "P-384" {
				t.Errorf("renewed key %T, want P-384", leaf.PublicKey)
			}
			if len(leaf.EmailAddresses) != 2 || leaf.EmailAddresses[1] != bob {
				t.Errorf("renewed certificate names %q", leaf.EmailAddresses)
			}
			if renewed.Usage != "sign" {
				t.Errorf("renewed usage %q, want sign", renewed.Usage)
			}
			data, _ := os.ReadFile(hookLog)
			if n := strings.Count(string(data), "\n"); n != 2*tc.certs || !strings.Contains(string(data), acmemail.FormatSerialText(renewed.Serial)) {
				t.Errorf("hook ran %d times (want %d), log:\n%s", n, 2*tc.certs, data)
			}
			if tc.certs == 2 && !strings.Contains(r.stdout, "(encryption certificate)") {
				t.Errorf("renew did not renew the encryption certificate:\n%s", r.stdout)
			}
		})
	}
}

// TestObtainAgainKeepsProfile: obtain run again for a managed address
// keeps what it is not told to change (the hook, the --also address and
// its own mailbox, the login's source) and says what it changes.
func TestObtainAgainKeepsProfile(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{RenewalWindow: far})
	const bob = "bob@example.test"
	if err := w.AddUser(bob, "bob-secret-pw"); err != nil {
		t.Fatal(err)
	}
	bobPW := filepath.Join(t.TempDir(), "bob.pw")
	if err := os.WriteFile(bobPW, []byte("bob-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustObtain(t, env, w, "--deploy-hook", "true", "--also", bob, "--also-imap", bob+"="+w.IMAPURL, "--also-password-file", bob+"="+bobPW)
	first, _ := installed(t, env)
	before := profileOf(t, first)

	r := runCLI(t, env, obtainArgs(w, "--force", "--key-type", "p256")...)
	if r.code != 0 {
		t.Fatalf("obtain again: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "this run changes what renew repeats: --key-type p256 (was rsa2048)") {
		t.Errorf("obtain again does not say what it changed:\n%s", r.stderr)
	}
	second, leaf := installed(t, env)
	after := profileOf(t, second)
	d := issuer.Diff(before, after)
	if len(d) != 1 || d[0].Setting != "key_type" {
		t.Errorf("obtain again changed %+v, want only the key type", d)
	}
	if after.DeployHook != "true" || len(after.Also) != 1 || after.Also[0].PasswordFile != bobPW || len(leaf.EmailAddresses) != 2 {
		t.Errorf("obtain again lost the hook or the --also mailbox: %+v, names %q", after, leaf.EmailAddresses)
	}
	// Told to change them, it does.
	r = runCLI(t, env, obtainArgs(w, "--force", "--deploy-hook", "")...)
	if r.code != 0 {
		t.Fatalf("obtain --deploy-hook '': exit %d\n%s", r.code, r.stderr)
	}
	if third, _ := installed(t, env); profileOf(t, third).DeployHook != "" || !strings.Contains(r.stderr, "--deploy-hook none (was true)") {
		t.Errorf("an empty --deploy-hook did not remove the hook:\n%s", r.stderr)
	}
}
