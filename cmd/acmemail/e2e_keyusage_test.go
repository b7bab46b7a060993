package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
)

// TestObtainKeyUsageMatrix obtains a certificate from the sandbox for each
// key type and usage and shows the keyUsage of the issued certificate
// (-v prints the table).
func TestObtainKeyUsageMatrix(t *testing.T) {
	t.Parallel()
	w, env := world(t, sandbox.Options{})
	type row struct{ key, usage, got string }
	want := map[string]string{
		"rsa2048/sign": "digitalSignature", "rsa2048/encrypt": "keyEncipherment", "rsa2048/both": "digitalSignature,keyEncipherment",
		"rsa3072/sign": "digitalSignature", "rsa3072/encrypt": "keyEncipherment", "rsa3072/both": "digitalSignature,keyEncipherment",
		"rsa4096/sign": "digitalSignature", "rsa4096/encrypt": "keyEncipherment", "rsa4096/both": "digitalSignature,keyEncipherment",
		"p256/sign": "digitalSignature", "p256/encrypt": "keyAgreement", "p256/both": "digitalSignature,keyAgreement",
		"p384/sign": "digitalSignature", "p384/encrypt": "keyAgreement", "p384/both": "digitalSignature,keyAgreement",
	}
	results := make(chan row, len(want))
	// One key per type, handed to each of its three runs as the pending key
	// obtain reuses (keystore.Store.CertKey): what is tested is the keyUsage
	// per key type and usage, and RSA keys take seconds of CPU to make.
	keys := map[string][]byte{}
	for _, kt := range []string{"rsa2048", "rsa3072", "rsa4096", "p256", "p384"} {
		key, err := keystore.GenerateKey(keystore.KeyType(kt))
		if err != nil {
			t.Fatal(err)
		}
		if keys[kt], err = keystore.MarshalPrivateKey(key); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("obtain", func(t *testing.T) {
		i := 0
		for _, kt := range []string{"rsa2048", "rsa3072", "rsa4096", "p256", "p384"} {
			for _, u := range []string{"sign", "encrypt", "both"} {
				i++
				addr := fmt.Sprintf("ku%d@example.test", i)
				if err := w.AddUser(addr, "alice-secret-pw"); err != nil {
					t.Fatal(err)
				}
				t.Run(kt+"/"+u, func(t *testing.T) {
					t.Parallel()
					e := map[string]string{}
					for k, v := range env {
						e[k] = v
					}
					e["ACMEMAIL_HOME"] = filepath.Join(t.TempDir(), "home")
					dir := filepath.Join(e["ACMEMAIL_HOME"], "certificates", addr)
					if err := os.MkdirAll(dir, 0o700); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, "pending-key.pem"), keys[kt], 0o600); err != nil {
						t.Fatal(err)
					}
					args := obtainArgs(w, "--key-type", kt, "--usage", u, "--json")
					args[len(args)-1] = addr
					r := runCLI(t, e, args...)
					if r.code != 0 {
						t.Fatalf("obtain: exit %d\nstderr:\n%s", r.code, r.stderr)
					}
					if strings.Contains(r.stderr, "key usage") {
						t.Errorf("unexpected key usage warning:\n%s", r.stderr)
					}
					var res issuer.CertResult
					if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
						t.Fatal(err)
					}
					_, leaf, _, err := pkcs12.DecodeChain(readFile(t, res.PKCS12), "test")
					if err != nil {
						t.Fatal(err)
					}
					got := kuNames(leaf.KeyUsage)
					if got != want[kt+"/"+u] {
						t.Errorf("issued keyUsage = %s, want %s", got, want[kt+"/"+u])
					}
					results <- row{kt, u, got}
				})
			}
		}
	})
	close(results)
	var b strings.Builder
	for r := range results {
		fmt.Fprintf(&b, "%-8s %-8s %s\n", r.key, r.usage, r.got)
	}
	t.Logf("keyUsage of the certificates the sandbox issued:\n%s", b.String())
}

func kuNames(ku x509.KeyUsage) string {
	var out []string
	for _, n := range []struct {
		bit  x509.KeyUsage
		name string
	}{{x509.KeyUsageDigitalSignature, "digitalSignature"}, {x509.KeyUsageContentCommitment, "nonRepudiation"},
		{x509.KeyUsageKeyEncipherment, "keyEncipherment"}, {x509.KeyUsageDataEncipherment, "dataEncipherment"},
		{x509.KeyUsageKeyAgreement, "keyAgreement"}} {
		if ku&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return strings.Join(out, ",")
}
