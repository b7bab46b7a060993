package acmemail

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

var (
	csrOIDSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	csrOIDKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
)

// NewCSR returns a DER PKCS#10 certificate request for the addresses
// emails, signed by key, with an empty subject and exactly two extensions:
// a subjectAltName with one name per address (non-critical, as Go and
// acme4j write it) and a critical keyUsage from [KeyUsageFor]. Some CAs
// reject any other extension, so none is added.
//
// The addresses must be the order's identifiers; they are normalized with
// [NormalizeAddress] (a non-ASCII domain becomes A-labels; an ASCII one
// keeps its case) and duplicates
// are refused. An address with an ASCII local part becomes an rfc822Name;
// one with a non-ASCII local part (RFC 6531) an SmtpUTF8Mailbox otherName
// (RFC 9598, OID 1.3.6.1.5.5.7.8.9).
func NewCSR(key crypto.Signer, emails []string, usage Usage) (der []byte, err error) {
	if key == nil {
		return nil, errors.New("create CSR: no key")
	}
	if len(emails) == 0 {
		return nil, errors.New("create CSR: no email address")
	}
	pub := key.Public()
	ku, ok := KeyUsageFor(pub, usage)
	if !ok {
		if _, isEd := pub.(ed25519.PublicKey); isEd {
			return nil, fmt.Errorf("create CSR: an Ed25519 key can only sign; it cannot be used for %q (ask for usage sign, or use an RSA or ECDSA key)", usage)
		}
		return nil, fmt.Errorf("create CSR: no key usage for a %T key and usage %q", pub, usage)
	}

	norm := make([]string, 0, len(emails))
	seen := make(map[string]bool)
	for _, e := range emails {
		n, err := NormalizeAddress(e)
		if err != nil {
			return nil, fmt.Errorf("create CSR: %w", err)
		}
		if at := strings.LastIndexByte(e, '@'); !addrHasNonASCII(e[at+1:]) {
			n = e // keep the case of the domain: the CSR must match the order
		}
		k := strings.ToLower(n)
		if seen[k] {
			return nil, fmt.Errorf("create CSR: %s is listed twice", e)
		}
		seen[k] = true
		norm = append(norm, n)
	}
	san, err := marshalEmailSAN(norm)
	if err != nil {
		return nil, fmt.Errorf("create CSR: encode subjectAltName: %w", err)
	}
	kuDER, err := asn1.Marshal(csrKeyUsageBits(ku))
	if err != nil {
		return nil, fmt.Errorf("create CSR: encode keyUsage: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		Subject: pkix.Name{},
		ExtraExtensions: []pkix.Extension{
			{Id: csrOIDSubjectAltName, Value: san},
			{Id: csrOIDKeyUsage, Critical: true, Value: kuDER},
		},
	}
	der, err = x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return der, nil
}

// csrKeyUsageBits encodes ku as the KeyUsage BIT STRING of RFC 5280
// §4.2.1.3: bit 0 (digitalSignature) is the most significant bit of the
// first octet, and DER drops trailing zero bits.
func csrKeyUsageBits(ku x509.KeyUsage) asn1.BitString {
	n := bits.Len(uint(ku)) // highest set bit + 1
	b := make([]byte, (n+7)/8)
	for i := 0; i < n; i++ {
		if ku&(1<<i) != 0 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	return asn1.BitString{Bytes: b, BitLength: n}
}
