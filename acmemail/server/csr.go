package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

var (
	oidSAN        = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage   = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUse  = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidServerAuth = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}
	// OIDSRVName is the otherName type of RFC 4985's SRVName.
	OIDSRVName = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// KeyUsage is the key usage a server certificate for key needs:
// digitalSignature (TLS 1.3 and ECDHE handshakes), plus keyEncipherment for
// RSA keys (TLS 1.2 RSA key exchange). An EC key never gets
// keyEncipherment: it cannot encipher keys.
func KeyUsage(pub crypto.PublicKey) (x509.KeyUsage, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, nil
	case *ecdsa.PublicKey:
		return x509.KeyUsageDigitalSignature, nil
	}
	return 0, fmt.Errorf("a server certificate needs an RSA or ECDSA key, not %T", pub)
}

// MarshalSAN encodes the subjectAltName of a server certificate: the
// dNSName host and, per service, the SRVName otherName "_service.host"
// (IA5String).
func MarshalSAN(host string, services []string) ([]byte, error) {
	var names []asn1.RawValue
	names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(host)})
	for _, s := range services {
		value, err := asn1.MarshalWithParams(SRVName(s, host), "ia5")
		if err != nil {
			return nil, err
		}
		// otherName ::= [0] IMPLICIT SEQUENCE { type-id OID, value [0] EXPLICIT ANY }
		typ, err := asn1.Marshal(OIDSRVName)
		if err != nil {
			return nil, err
		}
		wrapped, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: value})
		if err != nil {
			return nil, err
		}
		seq := asn1.RawValue{Bytes: append(typ, wrapped...)}
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: seq.Bytes})
	}
	return asn1.Marshal(names)
}

// NewCSR makes the certificate signing request of a server certificate
// for host and services, signed with key: subjectAltName as [MarshalSAN],
// extended key usage serverAuth, and the critical key usage of [KeyUsage].
// The subject is empty (RFC 8555 takes the names from the SAN).
func NewCSR(key crypto.Signer, host string, services []string) ([]byte, error) {
	if key == nil {
		return nil, errors.New("server CSR: no key")
	}
	ku, err := KeyUsage(key.Public())
	if err != nil {
		return nil, err
	}
	san, err := MarshalSAN(host, services)
	if err != nil {
		return nil, fmt.Errorf("server CSR: encode the subjectAltName: %w", err)
	}
	eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidServerAuth})
	if err != nil {
		return nil, err
	}
	kuDER, err := asn1.Marshal(keyUsageBits(ku))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{
		ExtraExtensions: []pkix.Extension{
			{Id: oidSAN, Critical: true, Value: san}, // critical: the subject is empty (RFC 5280 §4.2.1.6)
			{Id: oidExtKeyUse, Value: eku},
			{Id: oidKeyUsage, Critical: true, Value: kuDER},
		},
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("server CSR: %w", err)
	}
	return der, nil
}

// keyUsageBits is ku as RFC 5280's KeyUsage BIT STRING (bit 0 first,
// trailing zero bits dropped).
func keyUsageBits(ku x509.KeyUsage) asn1.BitString {
	var b [2]byte
	n := 0
	for i := 0; i < 9; i++ {
		if ku&(1<<i) != 0 {
			b[i/8] |= 0x80 >> (i % 8)
			n = i + 1
		}
	}
	return asn1.BitString{Bytes: b[:(n+7)/8], BitLength: n}
}
