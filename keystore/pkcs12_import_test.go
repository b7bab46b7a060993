package keystore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/acmemail/acmemail/keystore/p12test"
)

// TestPKCS12Importers imports a file of each profile, for an RSA and an
// EC key, with `openssl pkcs12` and with NSS `pk12util` into a fresh NSS
// database, and checks the imported certificate, chain and key. Under
// CI=true a missing tool fails the test.
func TestPKCS12Importers(t *testing.T) {
	ca := newTestCA(t)
	for _, kt := range []KeyType{KeyRSA2048, KeyP256} {
		key := testKey(t, kt)
		chain, err := ParseChain(ca.issue(t, key.Public(), "alice@example.org"))
		if err != nil {
			t.Fatal(err)
		}
		for _, profile := range []P12Profile{P12Modern, P12Legacy} {
			t.Run(string(kt)+"/"+string(profile), func(t *testing.T) {
				data, err := EncodePKCS12(key, chain, "correct horse", profile)
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(t.TempDir(), "cert.p12")
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				want := p12test.Want{Chain: chain, PublicKey: key.Public(), Profile: string(profile)}
				t.Run("openssl", func(t *testing.T) { p12test.OpenSSL(t, path, "correct horse", want) })
				t.Run("nss", func(t *testing.T) { p12test.NSS(t, path, "correct horse", want) })
			})
		}
	}
}
