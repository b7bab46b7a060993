package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/sandbox"
)

// TestObtainRefusesKeyUsage: a CA whose certificate profile issues a
// keyUsage that does not allow what was asked (the sandbox's
// changed-key-usage imitation: digitalSignature only for an encryption
// request, as secsy-pki's smime-sign profile; the encryption bit only for
// a signing request) is refused: exit 5, nothing saved, the certificate
// obtained before stays current, and the hint names the CA's profile.
func TestObtainRefusesKeyUsage(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
	}{
		{"encrypt-rsa", []string{"--usage", "encrypt"}},
		{"encrypt-p256", []string{"--usage", "encrypt", "--key-type", "p256"}},
		{"sign-p256", []string{"--usage", "sign", "--key-type", "p256"}},
		// The pair's signing half is asked digitalSignature only, and
		// refused: nothing of the pair is saved. (The encryption half is
		// checked by the same rule: TestCertificateCheck.)
		{"split-p256", []string{"--split", "--key-type", "p256"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w1, env := world(t, sandbox.Options{})
			if r := runCLI(t, env, obtainArgs(w1, tc.args...)...); r.code != 0 {
				t.Fatalf("first obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			home := env["ACMEMAIL_HOME"]
			snapshot := func() map[string][]byte {
				m := map[string][]byte{}
				for _, dir := range []string{"certificates/alice@example.test", "certificates/alice@example.test/encrypt"} {
					for _, f := range []string{"chain.pem", "key.pem", "cert.p12", "meta.json"} {
						if data, err := os.ReadFile(filepath.Join(home, dir, f)); err == nil {
							m[dir+"/"+f] = data
						}
					}
				}
				return m
			}
			before := snapshot()

			w2, env2 := world(t, sandbox.Options{BadCert: sandbox.BadCertKeyUsage})
			env2["ACMEMAIL_HOME"] = home
			r := runCLI(t, env2, obtainArgs(w2, append(tc.args, "--json")...)...)
			if r.code != exitCA {
				t.Fatalf("obtain from the CA with the changed key usage: exit %d, want %d\nstderr:\n%s", r.code, exitCA, r.stderr)
			}
			if !strings.Contains(r.stderr, `"`+sandbox.KeyUsageProfile+`"`) {
				t.Errorf("the hint does not name the CA's profile %q:\n%s", sandbox.KeyUsageProfile, r.stderr)
			}
			if st := w2.Stats(); st.CertificatesIssued != 1 {
				t.Errorf("the CA issued %d certificates, want 1 (the refused one)", st.CertificatesIssued)
			}
			after := snapshot()
			if len(after) != len(before) {
				t.Fatalf("files before %d, after %d", len(before), len(after))
			}
			for k, v := range before {
				if !bytes.Equal(after[k], v) {
					t.Errorf("%s changed: the refused certificate replaced the current one", k)
				}
			}
		})
	}
}
