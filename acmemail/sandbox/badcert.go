package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
)

// BadCert makes the sandbox CA issue a certificate that a careful client
// must refuse (or, for BadCertKeyUsage, warn about), to test that it checks
// what the CA returns before it saves it. The zero value issues correct
// certificates.
type BadCert string

const (
	// BadCertNone issues correct certificates.
	BadCertNone BadCert = ""
	// BadCertForeignKey issues the certificate for a key the CA made up,
	// not the CSR's.
	BadCertForeignKey BadCert = "foreign-key"
	// BadCertWrongSAN puts another address of the same domain into the
	// subjectAltName instead of the identifiers.
	BadCertWrongSAN BadCert = "wrong-san"
	// BadCertNoEmailProtection issues a certificate for clientAuth only,
	// without the emailProtection extended key usage.
	BadCertNoEmailProtection BadCert = "no-email-protection"
	// BadCertKeyUsage issues the certificate with a keyUsage other than
	// the CSR asked for (digitalSignature and nonRepudiation, plus the
	// key type's encryption bit), as some CAs do by policy. A server
	// certificate gets a keyUsage unfit for its key: keyEncipherment on
	// an EC key, no digitalSignature on an RSA or Ed25519 key.
	BadCertKeyUsage BadCert = "changed-key-usage"
	// BadCertNoServerAuth issues a certificate for clientAuth only,
	// without the serverAuth extended key usage. It spoils an S/MIME
	// certificate as BadCertNoEmailProtection does, and that mode a
	// server certificate as this one does: the only EKU is clientAuth.
	BadCertNoServerAuth BadCert = "no-server-auth"
)

// BadCerts lists the non-zero [BadCert] values. foreign-key, wrong-san
// (another host of the same domain as the first dNSName) and
// changed-key-usage apply to server certificates as well.
var BadCerts = []BadCert{BadCertForeignKey, BadCertWrongSAN, BadCertNoEmailProtection, BadCertKeyUsage, BadCertNoServerAuth}

func (b BadCert) valid() error {
	if b == BadCertNone {
		return nil
	}
	for _, x := range BadCerts {
		if b == x {
			return nil
		}
	}
	return fmt.Errorf("bad certificate mode %q: must be one of foreign-key, wrong-san, no-email-protection, changed-key-usage, no-server-auth", string(b))
}

// spoil changes the leaf template and key the way b asks for.
func (b BadCert) spoil(tmpl *x509.Certificate, pub crypto.PublicKey) (crypto.PublicKey, error) {
	switch b {
	case BadCertForeignKey:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		tmpl.SubjectKeyId = keyID(k.Public())
		return k.Public(), nil
	case BadCertWrongSAN:
		_, domain := splitAddress(tmpl.Subject.CommonName) // the first identifier
		tmpl.EmailAddresses = []string{"mallory@" + domain}
		tmpl.ExtraExtensions = nil
		tmpl.Subject.CommonName = tmpl.EmailAddresses[0]
	case BadCertNoEmailProtection, BadCertNoServerAuth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	case BadCertKeyUsage:
		enc := x509.KeyUsageKeyEncipherment
		if _, ok := pub.(*ecdsa.PublicKey); ok {
			enc = x509.KeyUsageKeyAgreement
		}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | enc
	}
	return pub, nil
}
