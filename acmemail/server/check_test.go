package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/acmemail/acmemail/acmemail"
)

// issue signs, with a throwaway CA, a certificate for the CSR's key and
// extensions (as a CA copies them), after edit may change the template.
func issue(t *testing.T, csrDER []byte, edit func(*x509.Certificate)) ([]*x509.Certificate, *x509.CertPool) {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatalf("parse our CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("our CSR's signature: %v", err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: csr.Extensions}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return []*x509.Certificate{leaf, ca}, pool
}

func withoutExt(tmpl *x509.Certificate, oid []int) {
	var keep = tmpl.ExtraExtensions[:0:0]
	for _, e := range tmpl.ExtraExtensions {
		if !e.Id.Equal(oid) {
			keep = append(keep, e)
		}
	}
	tmpl.ExtraExtensions = keep
}

// TestCheck: the certificate of our own CSR passes for both key types,
// with and without SRVNames; a wrong name, a missing serverAuth, a key
// usage without digitalSignature or with keyEncipherment on an EC key are
// refused as acmemail.ErrCertificateRefused.
func TestCheck(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	const host = "mail.example.test"
	for _, key := range []crypto.Signer{ec, rsaKey} {
		for _, services := range [][]string{nil, {"imaps", "submissions"}} {
			csr, err := NewCSR(key, host, services)
			if err != nil {
				t.Fatalf("NewCSR: %v", err)
			}
			chain, pool := issue(t, csr, nil)
			if err := Check(chain, key.Public(), host, services, pool); err != nil {
				t.Errorf("%T %v: our own certificate refused: %v", key, services, err)
			}
			n, _ := ParseNames(chain[0])
			if len(n.DNS) != 1 || n.DNS[0] != host || len(n.SRV) != len(services) {
				t.Errorf("names = %+v", n)
			}
			for i, s := range services {
				if n.SRV[i] != "_"+s+"."+host {
					t.Errorf("SRVName %d = %q", i, n.SRV[i])
				}
			}
			wantKU := x509.KeyUsageDigitalSignature
			if key == rsaKey {
				wantKU |= x509.KeyUsageKeyEncipherment
			}
			if chain[0].KeyUsage != wantKU || len(chain[0].ExtKeyUsage) != 1 || chain[0].ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
				t.Errorf("%T: key usage %v, EKU %v", key, chain[0].KeyUsage, chain[0].ExtKeyUsage)
			}
		}
	}
	csr, _ := NewCSR(ec, host, []string{"imaps"})
	bad := map[string]func(*x509.Certificate){
		"wrong-san":  func(c *x509.Certificate) { withoutExt(c, oidSAN); c.DNSNames = []string{"other.example.test"} },
		"no SRVName": func(c *x509.Certificate) { withoutExt(c, oidSAN); c.DNSNames = []string{host} },
		"extra name": func(c *x509.Certificate) {
			withoutExt(c, oidSAN)
			c.DNSNames, c.EmailAddresses = []string{host}, []string{"a@example.test"}
		},
		"no-server-auth": func(c *x509.Certificate) {
			withoutExt(c, oidExtKeyUse)
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		},
		"no digitalSignature": func(c *x509.Certificate) { withoutExt(c, oidKeyUsage); c.KeyUsage = x509.KeyUsageKeyAgreement },
		"keyEncipherment on EC": func(c *x509.Certificate) {
			withoutExt(c, oidKeyUsage)
			c.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		},
	}
	for name, edit := range bad {
		chain, pool := issue(t, csr, edit)
		err := Check(chain, ec.Public(), host, []string{"imaps"}, pool)
		if !errors.Is(err, acmemail.ErrCertificateRefused) {
			t.Errorf("%s: Check = %v, want a refusal", name, err)
		}
	}
	// Out of its validity period, also without roots (the default for a
	// public CA, where only the signatures are checked).
	for name, edit := range map[string]func(*x509.Certificate){
		"expired": func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-50*time.Minute), time.Now().Add(-time.Minute)
		},
		"not yet valid": func(c *x509.Certificate) { c.NotBefore = time.Now().Add(2 * time.Hour) },
	} {
		chain, pool := issue(t, csr, edit)
		for _, roots := range []*x509.CertPool{pool, nil} {
			if err := Check(chain, ec.Public(), host, []string{"imaps"}, roots); !errors.Is(err, acmemail.ErrCertificateRefused) {
				t.Errorf("%s (roots %v): Check = %v, want a refusal", name, roots != nil, err)
			}
		}
	}
	chain, _ := issue(t, csr, nil)
	if err := Check(chain, rsaKey.Public(), host, []string{"imaps"}, nil); !errors.Is(err, acmemail.ErrCertificateRefused) {
		t.Errorf("another key's certificate: Check = %v", err)
	}
	if err := Check(chain, ec.Public(), host, []string{"imaps"}, x509.NewCertPool()); !errors.Is(err, acmemail.ErrCertificateRefused) {
		t.Errorf("a chain to other roots: Check = %v", err)
	}
}

// TestBoundKeyAuthorization recomputes the proposal's record by hand.
func TestBoundKeyAuthorization(t *testing.T) {
	t.Parallel()
	if got := BoundKeyAuthorization("tok.thumb", "imaps", 993); got != "tok.thumb.imaps.993" {
		t.Errorf("BoundKeyAuthorization = %q", got)
	}
	if got := ChallengeDomain("mail.example.test", "imaps", 993); got != "_993._imaps.mail.example.test" {
		t.Errorf("ChallengeDomain = %q", got)
	}
	// sha256("tok.thumb.imaps.993"), base64url without padding.
	if got := TXTValue("abc"); got != "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0" {
		t.Errorf("TXTValue(abc) = %q", got)
	}
	if s, err := ParseServices([]string{"IMAPS", "_submissions", "imaps"}); err != nil || len(s) != 2 || s[0] != "imaps" || s[1] != "submissions" {
		t.Errorf("ParseServices = %v, %v", s, err)
	}
	if _, err := ParseServices([]string{"http"}); err == nil {
		t.Errorf("ParseServices took http")
	}
	for svc, port := range map[string]int{"submissions": 465, "submission": 587, "imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110, "smtp": 25} {
		if p, ok := Port(svc); !ok || p != port {
			t.Errorf("Port(%s) = %d", svc, p)
		}
	}
}
