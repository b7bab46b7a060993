package main

import (
	"crypto/x509"
	"encoding/json"
	"path/filepath"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore/p12test"
)

// TestObtainSplit: --split gets a signing and an encryption certificate
// in one run (two orders, two keys), from a CA that gives the second order
// a fresh authorization (a second challenge, answered once) and from one
// that reuses the first order's valid authorization (no second challenge
// mail: nothing to answer). Either way no challenge is answered twice.
func TestObtainSplit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                          string
		opt                           sandbox.Options
		keyType                       string
		wantAuthz, wantReused, replys int
		encKU                         x509.KeyUsage
	}{
		{"fresh-authorization", sandbox.Options{}, "rsa2048", 2, 0, 2, x509.KeyUsageKeyEncipherment},
		{"reused-authorization", sandbox.Options{ReuseValidAuthz: true}, "p256", 1, 1, 1, x509.KeyUsageKeyAgreement},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, env := world(t, tc.opt)
			out := filepath.Join(t.TempDir(), "both.p12")
			r := runCLI(t, env, obtainArgs(w, "--split", "--key-type", tc.keyType, "--out", out, "--json")...)
			if r.code != 0 {
				t.Fatalf("obtain --split: exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			var res splitResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			st := w.Stats()
			if st.Orders != 2 || st.Authorizations != tc.wantAuthz || st.AuthorizationsReused != tc.wantReused ||
				st.ChallengesSent != tc.replys || st.RepliesReceived != tc.replys || st.CertificatesIssued != 2 {
				t.Errorf("sandbox: %d orders, %d new and %d reused authorizations, %d challenge mails, %d replies, %d certificates; want 2, %d, %d, %d, %d, 2",
					st.Orders, st.Authorizations, st.AuthorizationsReused, st.ChallengesSent, st.RepliesReceived, st.CertificatesIssued,
					tc.wantAuthz, tc.wantReused, tc.replys, tc.replys)
			}
			home := env["ACMEMAIL_HOME"]
			if want := filepath.Join(home, "certificates", "alice@example.test", "cert.p12"); res.Signing.PKCS12 != want {
				t.Errorf("signing PKCS#12 = %s, want %s", res.Signing.PKCS12, want)
			}
			if want := filepath.Join(home, "certificates", "alice@example.test", "encrypt", "cert.p12"); res.Encryption.PKCS12 != want {
				t.Errorf("encryption PKCS#12 = %s, want %s", res.Encryption.PKCS12, want)
			}
			decode := func(path string) (*x509.Certificate, []*x509.Certificate) {
				_, leaf, cas, err := pkcs12.DecodeChain(readFile(t, path), "test")
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				return leaf, cas
			}
			signLeaf, signCAs := decode(res.Signing.PKCS12)
			encLeaf, encCAs := decode(res.Encryption.PKCS12)
			if signLeaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("signing certificate keyUsage = %v, want digitalSignature only", signLeaf.KeyUsage)
			}
			if encLeaf.KeyUsage != tc.encKU {
				t.Errorf("encryption certificate keyUsage = %v, want %v only", encLeaf.KeyUsage, tc.encKU)
			}
			if samePub(signLeaf.PublicKey, encLeaf.PublicKey) {
				t.Error("both certificates have the same key")
			}
			wants := []p12test.Want{
				{Chain: append([]*x509.Certificate{signLeaf}, signCAs...), PublicKey: signLeaf.PublicKey, Profile: "modern"},
				{Chain: append([]*x509.Certificate{encLeaf}, encCAs...), PublicKey: encLeaf.PublicKey, Profile: "modern"},
			}
			if res.PKCS12 != out {
				t.Errorf("--out file = %q, want %s", res.PKCS12, out)
			}
			checkMode(t, out, 0o600)
			p12test.OpenSSLBundle(t, out, "test", wants)
			p12test.NSSBundle(t, out, "test", wants)
		})
	}
	t.Run("usage conflict", func(t *testing.T) {
		r := runCLI(t, map[string]string{"ACMEMAIL_HOME": t.TempDir(), "ACMEMAIL_P12_PASSWORD": "test"}, "obtain", "--server", "sandbox", "--split", "--usage", "sign", "alice@example.test")
		if r.code != exitUsage {
			t.Errorf("--split --usage sign: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
		}
	})
}
