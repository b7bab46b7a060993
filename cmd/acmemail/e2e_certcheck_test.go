package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainRefusesBadCertificate: acmemail obtains a certificate, then
// asks a sandbox CA that issues a certificate for a foreign key, for the
// wrong address or without emailProtection. Each is refused with a clear
// error and the CA exit status, and the first certificate stays the
// current one on disk (chain.pem and cert.p12 unchanged).
func TestObtainRefusesBadCertificate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		bad  sandbox.BadCert
		want string
	}{
		{sandbox.BadCertForeignKey, "the certificate is for a public key that is not ours"},
		{sandbox.BadCertWrongSAN, "the certificate's email addresses (mallory@example.test) are not the requested ones (alice@example.test)"},
		{sandbox.BadCertNoEmailProtection, "the certificate is not for email protection"},
	}
	for _, tc := range cases {
		t.Run(string(tc.bad), func(t *testing.T) {
			t.Parallel()
			w1, env := world(t, sandbox.Options{})
			if r := runCLI(t, env, obtainArgs(w1)...); r.code != 0 {
				t.Fatalf("first obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			dir := filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test")
			chain1 := readFile(t, filepath.Join(dir, "chain.pem"))
			key1 := readFile(t, filepath.Join(dir, "key.pem"))
			p12 := readFile(t, filepath.Join(dir, "cert.p12"))

			w2, env2 := world(t, sandbox.Options{BadCert: tc.bad})
			env2["ACMEMAIL_HOME"] = env["ACMEMAIL_HOME"]
			r := runCLI(t, env2, obtainArgs(w2)...)
			if r.code != exitCA {
				t.Fatalf("obtain from the misbehaving CA: exit %d, want %d\nstderr:\n%s", r.code, exitCA, r.stderr)
			}
			if !strings.Contains(r.stderr, "not acceptable") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr does not say %q:\n%s", tc.want, r.stderr)
			}
			if st := w2.Stats(); st.CertificatesIssued != 1 {
				t.Errorf("the misbehaving CA issued %d certificates, want 1", st.CertificatesIssued)
			}
			if !bytes.Equal(readFile(t, filepath.Join(dir, "chain.pem")), chain1) ||
				!bytes.Equal(readFile(t, filepath.Join(dir, "key.pem")), key1) ||
				!bytes.Equal(readFile(t, filepath.Join(dir, "cert.p12")), p12) {
				t.Error("the first certificate is no longer the current one on disk")
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
		})
	}
}

// TestObtainWarnsChangedKeyUsage: a CA that issues another keyUsage than
// asked, which still allows what was asked, is accepted (RFC 8823 lets it
// decide), with a warning.
func TestObtainWarnsChangedKeyUsage(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{BadCert: sandbox.BadCertKeyUsage})
	r := runCLI(t, env, obtainArgs(w, "--usage", "both", "--key-type", "p256")...)
	if r.code != 0 {
		t.Fatalf("obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	if want := "warning: the CA changed the key usage (asked digitalSignature,keyAgreement, got digitalSignature,nonRepudiation,keyAgreement)"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestObtainIssuerRoots: with --issuer-roots the issued chain must verify
// to one of the named roots; the sandbox's own root passes, another
// sandbox's root is refused (exit 5, nothing saved), and a file without a
// certificate is a usage error before the CA is contacted.
func TestObtainIssuerRoots(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	other, _ := world(t, sandbox.Options{})
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	right, wrong, empty := write("right.pem", w.IssuerRootPEM), write("wrong.pem", other.IssuerRootPEM), write("empty.pem", []byte("no PEM here\n"))

	r := runCLI(t, env, obtainArgs(w, "--issuer-roots", wrong)...)
	if r.code != exitCA || !strings.Contains(r.stderr, "does not verify to the CA's root") {
		t.Errorf("--issuer-roots (another CA's root): exit %d, want %d and a refusal\n%s", r.code, exitCA, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(env["ACMEMAIL_HOME"], "certificates", "alice@example.test", "chain.pem")); err == nil {
		t.Error("a refused chain was saved")
	}
	if r := runCLI(t, env, obtainArgs(w, "--issuer-roots", right)...); r.code != 0 {
		t.Errorf("--issuer-roots (the CA's root): exit %d\n%s", r.code, r.stderr)
	}
	orders := w.Stats().Orders
	if r := runCLI(t, env, obtainArgs(w, "--force", "--issuer-roots", empty)...); r.code != exitUsage || !strings.Contains(r.stderr, "holds no PEM certificate") {
		t.Errorf("--issuer-roots (no certificate): exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	if w.Stats().Orders != orders {
		t.Error("a bad --issuer-roots file did not stop the run before the order")
	}
}
