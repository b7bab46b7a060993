package acmemail

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// matrixKeys are the certificate key types acmemail offers (--key-type),
// generated once per test binary.
var matrixKeys = sync.OnceValue(func() []struct {
	name string
	key  crypto.Signer
} {
	gen := func(f func() (crypto.Signer, error)) crypto.Signer {
		k, err := f()
		if err != nil {
			panic(err)
		}
		return k
	}
	rsaKey := func(bits int) func() (crypto.Signer, error) {
		return func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
	}
	ecKey := func(c elliptic.Curve) func() (crypto.Signer, error) {
		return func() (crypto.Signer, error) { return ecdsa.GenerateKey(c, rand.Reader) }
	}
	return []struct {
		name string
		key  crypto.Signer
	}{
		{"rsa2048", csrTestKeys()["rsa2048"]},
		{"rsa3072", gen(rsaKey(3072))},
		{"rsa4096", gen(rsaKey(4096))},
		{"p256", gen(ecKey(elliptic.P256()))},
		{"p384", gen(ecKey(elliptic.P384()))},
	}
})

// TestKeyUsageMatrix shows, for every key type and usage, the keyUsage
// bits that end up in the CSR (decoded from the DER, not from x509), and
// checks them against RFC 8823 §3.3 / RFC 8550 §4.4.2: signing is
// digitalSignature, encryption is keyEncipherment for RSA and keyAgreement
// for EC keys, both is the union. Run with -v to see the table.
func TestKeyUsageMatrix(t *testing.T) {
	want := map[string]map[Usage]string{
		"rsa2048": {UsageSign: "digitalSignature", UsageEncrypt: "keyEncipherment", UsageBoth: "digitalSignature,keyEncipherment"},
		"rsa3072": {UsageSign: "digitalSignature", UsageEncrypt: "keyEncipherment", UsageBoth: "digitalSignature,keyEncipherment"},
		"rsa4096": {UsageSign: "digitalSignature", UsageEncrypt: "keyEncipherment", UsageBoth: "digitalSignature,keyEncipherment"},
		"p256":    {UsageSign: "digitalSignature", UsageEncrypt: "keyAgreement", UsageBoth: "digitalSignature,keyAgreement"},
		"p384":    {UsageSign: "digitalSignature", UsageEncrypt: "keyAgreement", UsageBoth: "digitalSignature,keyAgreement"},
	}
	bitNames := []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %-18s %-34s %s\n", "key", "usage", "CSR keyUsage (critical)", "KeyUsageFor")
	for _, k := range matrixKeys() {
		for _, u := range []Usage{UsageSign, UsageEncrypt, UsageBoth} {
			der, err := NewCSR(k.key, []string{"alice@example.com"}, u)
			if err != nil {
				t.Fatalf("NewCSR(%s, %s): %v", k.name, u, err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			critical := false
			for _, e := range csr.Extensions {
				if e.Id.Equal(csrOIDKeyUsage) {
					critical = e.Critical
					for _, bit := range csrTestKeyUsageBits(t, e.Value) {
						got = append(got, bitNames[bit])
					}
				}
			}
			ku, _ := KeyUsageFor(k.key.Public(), u)
			gotS := strings.Join(got, ",")
			fmt.Fprintf(&table, "%-8s %-18s %-34s %s\n", k.name, u, gotS, keyUsageString(ku))
			if gotS != want[k.name][u] || keyUsageString(ku) != gotS {
				t.Errorf("%s/%s: CSR keyUsage %q, KeyUsageFor %q; want %q", k.name, u, gotS, keyUsageString(ku), want[k.name][u])
			}
			if !critical {
				t.Errorf("%s/%s: keyUsage is not critical", k.name, u)
			}
		}
	}
	t.Logf("keyUsage per key type and usage:\n%s", table.String())
}
