package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"sync"
	"testing"
	"time"
)

// testKeys caches one generated key per type, so RSA keys are made once
// per test binary.
var (
	testKeysMu sync.Mutex
	testKeys   = map[KeyType]crypto.Signer{}
)

func testKey(t testing.TB, kt KeyType) crypto.Signer {
	t.Helper()
	if kt == KeyRSA4096 && testing.Short() {
		t.Skip("skipping RSA 4096 key generation in short mode")
	}
	testKeysMu.Lock()
	defer testKeysMu.Unlock()
	if k, ok := testKeys[kt]; ok {
		return k
	}
	k, err := GenerateKey(kt)
	if err != nil {
		t.Fatalf("GenerateKey(%s) = %v", kt, err)
	}
	testKeys[kt] = k
	return k
}

// testCA is a throwaway issuing CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keystore test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

var serialCounter struct {
	sync.Mutex
	n int64
}

// issue returns a PEM chain (leaf, CA) for pub and email.
func (ca *testCA) issue(t testing.TB, pub crypto.PublicKey, email string) []byte {
	t.Helper()
	serialCounter.Lock()
	serialCounter.n++
	serial := big.NewInt(1000 + serialCounter.n)
	serialCounter.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: email},
		EmailAddresses: []string{email},
		NotBefore:      time.Now().Add(-time.Minute).Truncate(time.Second),
		NotAfter:       time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	return b.Bytes()
}

func openTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	return s
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
