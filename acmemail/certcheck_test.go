package acmemail

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// certTestCA is a root and an intermediate that issue test leaves.
type certTestCA struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newCertTestCA(t *testing.T) *certTestCA {
	t.Helper()
	mk := func(name string, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, key
	}
	ca := &certTestCA{}
	ca.root, ca.rootKey = mk("test root", nil, nil)
	ca.inter, ca.interKey = mk("test intermediate", ca.root, ca.rootKey)
	return ca
}

func (ca *certTestCA) leaf(t *testing.T, pub crypto.PublicKey, edit func(*x509.Certificate)) []*x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
		EmailAddresses: []string{"alice@example.com"},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, pub, ca.interKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{c, ca.inter}
}

func TestCheckCertificate(t *testing.T) {
	ca := newCertTestCA(t)
	key := csrTestKeys()["p256"]
	other := csrTestKeys()["p384"]
	roots := x509.NewCertPool()
	roots.AddCert(ca.root)
	otherCA := newCertTestCA(t)
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(otherCA.root)
	idnSAN, err := marshalEmailSAN([]string{"jörg@xn--bcher-kva.example", "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		pub      crypto.PublicKey // the leaf's key (default: key)
		edit     func(*x509.Certificate)
		emails   []string // requested (default alice@example.com)
		usage    Usage
		roots    *x509.CertPool
		errText  string
		warnText string
	}{
		{name: "ok", usage: UsageBoth},
		{name: "ok with roots", usage: UsageBoth, roots: roots},
		{name: "ok, case of the domain differs", usage: UsageBoth, emails: []string{"alice@EXAMPLE.com"}},
		{name: "foreign key", pub: other.Public(), usage: UsageBoth, errText: "public key that is not ours"},
		{name: "wrong SAN", usage: UsageBoth, edit: func(c *x509.Certificate) { c.EmailAddresses = []string{"mallory@example.com"} },
			errText: "email addresses (mallory@example.com) are not the requested ones (alice@example.com)"},
		{name: "extra SAN", usage: UsageBoth, edit: func(c *x509.Certificate) { c.EmailAddresses = append(c.EmailAddresses, "bob@example.com") },
			errText: "are not the requested ones"},
		{name: "missing SAN", usage: UsageBoth, emails: []string{"alice@example.com", "alice@example.org"}, errText: "are not the requested ones"},
		{name: "no SAN", usage: UsageBoth, edit: func(c *x509.Certificate) { c.EmailAddresses = nil }, errText: "email addresses (none)"},
		{name: "DNS name too", usage: UsageBoth, edit: func(c *x509.Certificate) { c.DNSNames = []string{"example.com"} }, errText: "more than the requested email addresses (dNSName)"},
		{name: "IP too", usage: UsageBoth, edit: func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.IPv4(192, 0, 2, 1)} }, errText: "(iPAddress)"},
		{name: "no EKU", usage: UsageBoth, edit: func(c *x509.Certificate) { c.ExtKeyUsage = nil }, errText: "lacks emailProtection"},
		{name: "clientAuth only", usage: UsageBoth, edit: func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }, errText: "lacks emailProtection"},
		{name: "key usage changed", usage: UsageSign, warnText: "the CA changed the key usage (asked digitalSignature, got digitalSignature,keyAgreement)"},
		{name: "encryption certificate without keyAgreement", usage: UsageEncrypt, edit: func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature },
			errText: "cannot be used for encryption: the CA issued it with keyUsage digitalSignature, without keyAgreement"},
		{name: "signing certificate without digitalSignature", usage: UsageSign, edit: func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement },
			errText: "cannot be used for signing"},
		{name: "both, only signing allowed", usage: UsageBoth, edit: func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageDigitalSignature },
			warnText: "the CA changed the key usage (asked digitalSignature,keyAgreement, got digitalSignature)"},
		{name: "both, neither allowed", usage: UsageBoth, edit: func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCertSign },
			errText: "cannot be used for signing or encryption"},
		{name: "no key usage", usage: UsageEncrypt, edit: func(c *x509.Certificate) { c.KeyUsage = 0 }, warnText: "without a key usage (asked keyAgreement)"},
		{name: "other root", usage: UsageBoth, roots: otherRoots, errText: "does not verify to the CA's root"},
		{name: "SmtpUTF8Mailbox", usage: UsageBoth, emails: []string{"alice@example.com", "jörg@bücher.example"},
			edit: func(c *x509.Certificate) {
				c.EmailAddresses = nil
				c.ExtraExtensions = []pkix.Extension{{Id: oidSubjectAltName, Value: idnSAN}}
			}},
		{name: "SmtpUTF8Mailbox not requested", usage: UsageBoth,
			edit: func(c *x509.Certificate) {
				c.EmailAddresses = nil
				c.ExtraExtensions = []pkix.Extension{{Id: oidSubjectAltName, Value: idnSAN}}
			}, errText: "(jörg@xn--bcher-kva.example, alice@example.com) are not the requested ones"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := tt.pub
			if pub == nil {
				pub = key.Public()
			}
			emails := tt.emails
			if emails == nil {
				emails = []string{"alice@example.com"}
			}
			chain := ca.leaf(t, pub, tt.edit)
			warnings, err := CertificateCheck{PublicKey: key.Public(), Emails: emails, Usage: tt.usage, Roots: tt.roots}.Check(chain)
			if tt.errText != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Check error = %v, want one containing %q", err, tt.errText)
				}
				if got, want := errors.Is(err, ErrKeyUsageRefused), strings.Contains(tt.errText, "cannot be used for"); got != want {
					t.Errorf("errors.Is(err, ErrKeyUsageRefused) = %v, want %v", got, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check = %v", err)
			}
			got := strings.Join(warnings, "\n")
			if tt.warnText == "" && got != "" || !strings.Contains(got, tt.warnText) {
				t.Errorf("warnings = %q, want %q", got, tt.warnText)
			}
		})
	}

	t.Run("broken chain", func(t *testing.T) {
		chain := ca.leaf(t, key.Public(), nil)
		chain[1] = otherCA.inter
		if _, err := CheckCertificate(chain, key.Public(), []string{"alice@example.com"}, UsageBoth); err == nil || !strings.Contains(err.Error(), "not signed by the next one") {
			t.Errorf("CheckCertificate = %v, want a chain error", err)
		}
	})
	t.Run("empty chain", func(t *testing.T) {
		if _, err := CheckCertificate(nil, key.Public(), []string{"alice@example.com"}, UsageBoth); err == nil {
			t.Error("CheckCertificate(nil) = nil error")
		}
	})
}

func TestSANRoundTrip(t *testing.T) {
	in := []string{"alice@example.com", "jörg@xn--bcher-kva.example", "用户@example.com"}
	der, err := marshalEmailSAN(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseSANEmails(der)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Emails, " ") != strings.Join(in, " ") || len(got.Others) != 0 {
		t.Errorf("ParseSANEmails = %+v, want %q", got, in)
	}
	// The otherName holds the domain in U-labels (RFC 9598 §3).
	if !strings.Contains(string(der), "jörg@bücher.example") {
		t.Errorf("SmtpUTF8Mailbox does not hold the U-label domain: %x", der)
	}
	// Go's x509 sees only the rfc822Name.
	ca := newCertTestCA(t)
	chain := ca.leaf(t, csrTestKeys()["p256"].Public(), func(c *x509.Certificate) {
		c.EmailAddresses = nil
		c.ExtraExtensions = []pkix.Extension{{Id: oidSubjectAltName, Value: der}}
	})
	if len(chain[0].EmailAddresses) != 1 {
		t.Errorf("x509 EmailAddresses = %q", chain[0].EmailAddresses)
	}
}

// TestNormalizeAddress: one form per address, whatever Unicode form and
// domain case it was given in; the local part's case is kept.
func TestNormalizeAddress(t *testing.T) {
	tests := []struct{ in, want, errText string }{
		{"alice@Example.COM", "alice@example.com", ""},
		{"Alice@example.com", "Alice@example.com", ""},
		{"jörg@bücher.example", "jörg@xn--bcher-kva.example", ""},
		{"jörg@XN--BCHER-KVA.example", "jörg@xn--bcher-kva.example", ""},
		{"用户@例子.广告", "用户@xn--fsqu00a.xn--4rr70v", ""},
		{"a b@example.com", "", "dot-atom"},
		{"\"a\"@example.com", "", "dot-atom"},
		{".a@example.com", "", "dot-atom"},
		{"a\u200b@example.com", "", "dot-atom"},
		{"a@exa mple.com", "", "not a host name"},
		{"a@", "", "not a host name"},
		{"example.com", "", "has no @"},
		// NFD (o + U+0308 COMBINING DIAERESIS) is the NFC address.
		{"jo\u0308rg@example.test", "j\u00f6rg@example.test", ""},
		{"j\u00f6rg@bu\u0308cher.example", "j\u00f6rg@xn--bcher-kva.example", ""},
		{"Carol@Example.TEST", "Carol@example.test", ""},
		{"carol@XN--BCHER-KVA.EXAMPLE", "carol@xn--bcher-kva.example", ""},
		{"a@xn--zz.example", "", "internationalized domain"},
	}
	for _, tt := range tests {
		got, err := NormalizeAddress(tt.in)
		if tt.errText != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("NormalizeAddress(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.errText)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestAddressFold: addresses that differ only in the local part's case
// (or in Unicode form) share a fold key, and SimilarAddress names the
// managed one for a "did you mean"; the address itself, in whatever form,
// is not similar to itself.
func TestAddressFold(t *testing.T) {
	managed := []string{"bob@example.test", "Carol@example.test", "j\u00f6rg@example.test"}
	for _, tt := range []struct{ in, want string }{
		{"carol@example.test", "Carol@example.test"},
		{"CAROL@EXAMPLE.TEST", "Carol@example.test"},
		{"Carol@Example.TEST", ""}, // the same address
		{"J\u00d6RG@example.test", "j\u00f6rg@example.test"},
		{"JO\u0308RG@example.test", "j\u00f6rg@example.test"},
		{"jo\u0308rg@example.test", ""}, // the same address in NFD
		{"dave@example.test", ""},
	} {
		if got := SimilarAddress(tt.in, managed); got != tt.want {
			t.Errorf("SimilarAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSANNotNFC: a certificate that names an address in Unicode NFD is
// not for the NFC address that was asked for (a mail client would not
// match it with the sender's), though both normalize to the same.
func TestSANNotNFC(t *testing.T) {
	der, err := marshalEmailSAN([]string{"jo\u0308rg@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseSANEmails(der); err == nil || !strings.Contains(err.Error(), "NFC") {
		t.Errorf("ParseSANEmails of an NFD SmtpUTF8Mailbox = %+q, %v; want an error", got.Emails, err)
	}
	der, _ = marshalEmailSAN([]string{"j\u00f6rg@example.test"})
	if got, err := ParseSANEmails(der); err != nil || len(got.Emails) != 1 || got.Emails[0] != "j\u00f6rg@example.test" {
		t.Errorf("ParseSANEmails of the NFC one = %+q, %v", got.Emails, err)
	}
}
