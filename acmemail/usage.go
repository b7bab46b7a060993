package acmemail

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"strings"
)

// Usage is what the certificate is requested for (RFC 8823 §3.3). It
// becomes the keyUsage extension of the CSR; see [KeyUsageFor].
type Usage int

const (
	// UsageBoth asks for a certificate for signing and encryption.
	UsageBoth Usage = iota
	// UsageSign asks for a signing-only certificate.
	UsageSign
	// UsageEncrypt asks for an encryption-only certificate.
	UsageEncrypt
)

// String returns "both", "sign" or "encrypt".
func (u Usage) String() string {
	switch u {
	case UsageBoth:
		return "both"
	case UsageSign:
		return "sign"
	case UsageEncrypt:
		return "encrypt"
	}
	return fmt.Sprintf("Usage(%d)", int(u))
}

// MarshalText implements [encoding.TextMarshaler].
func (u Usage) MarshalText() ([]byte, error) {
	if u < UsageBoth || u > UsageEncrypt {
		return nil, fmt.Errorf("unknown key usage %d", int(u))
	}
	return []byte(u.String()), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseUsage].
func (u *Usage) UnmarshalText(text []byte) error {
	v, err := ParseUsage(string(text))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

// ParseUsage parses "both", "sign" or "encrypt" (case-insensitive).
func ParseUsage(s string) (Usage, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "both":
		return UsageBoth, nil
	case "sign":
		return UsageSign, nil
	case "encrypt":
		return UsageEncrypt, nil
	}
	return 0, fmt.Errorf("unknown key usage %q (want both, sign or encrypt)", tokenQuoteShort(s))
}

// KeyUsageFor returns the keyUsage bits to request for a key of type pub
// and the usage u (RFC 8823 §3.3 with RFC 8550 §4.4.2):
//
//	          sign              encrypt           both
//	RSA       digitalSignature  keyEncipherment   digitalSignature|keyEncipherment
//	ECDSA     digitalSignature  keyAgreement      digitalSignature|keyAgreement
//	Ed25519   digitalSignature  -                 -
//
// ok is false when the key cannot serve u (Ed25519 cannot encrypt) or the
// key type or usage is unknown.
func KeyUsageFor(pub crypto.PublicKey, u Usage) (ku x509.KeyUsage, ok bool) {
	var enc x509.KeyUsage
	switch pub.(type) {
	case *rsa.PublicKey:
		enc = x509.KeyUsageKeyEncipherment
	case *ecdsa.PublicKey:
		enc = x509.KeyUsageKeyAgreement
	case ed25519.PublicKey:
		enc = 0 // signing only
	default:
		return 0, false
	}
	switch u {
	case UsageSign:
		return x509.KeyUsageDigitalSignature, true
	case UsageEncrypt, UsageBoth:
		if enc == 0 {
			return 0, false
		}
		if u == UsageEncrypt {
			return enc, true
		}
		return x509.KeyUsageDigitalSignature | enc, true
	}
	return 0, false
}
