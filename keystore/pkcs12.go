package keystore

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// P12Profile selects the algorithms of a PKCS #12 file.
type P12Profile string

const (
	// P12Modern encrypts keys and certificates with PBES2 (PBKDF2-HMAC-
	// SHA-256, AES-256-CBC) and uses an HMAC-SHA-256 MAC with an 8-byte
	// salt, as OpenSSL 3's pkcs12 -export writes them. It is read by
	// OpenSSL 1.1.1+, NSS, Java 12+ and Windows Server 2019+/Windows 10
	// 1709+. The zero P12Profile means P12Modern.
	P12Modern P12Profile = "modern"
	// P12Legacy uses PBE-SHA1-3DES for keys and certificates and an
	// HMAC-SHA-1 MAC, for old importers (e.g. Windows before 10, old
	// Android, some mail clients). Its encryption is weak: protect the file.
	P12Legacy P12Profile = "legacy"
)

// ParseP12Profile parses a profile name: "modern" or "legacy"
// (case-insensitive).
func ParseP12Profile(s string) (P12Profile, error) {
	switch p := P12Profile(strings.ToLower(strings.TrimSpace(s))); p {
	case P12Modern, P12Legacy:
		return p, nil
	}
	return "", fmt.Errorf("unknown PKCS #12 profile %q (want modern or legacy)", s)
}

func (p P12Profile) String() string { return string(p) }

func (p P12Profile) encoder() (*pkcs12.Encoder, error) {
	switch p {
	case P12Modern, "":
		// Pinned to Modern2023 rather than pkcs12.Modern, which may move
		// on to PBMAC1 (Modern2026), not read by OpenSSL before 3.4.
		return pkcs12.Modern2023, nil
	case P12Legacy:
		return pkcs12.LegacyDES, nil
	}
	return nil, fmt.Errorf("unknown PKCS #12 profile %q", string(p))
}

// EncodePKCS12 encodes key and its certificate chain (leaf first; every
// certificate is included) as a PKCS #12 file protected by password, with
// the algorithms of profile. The password must not be empty, and key must
// be the leaf's key (an *ecdsa.PrivateKey, *rsa.PrivateKey or
// ed25519.PrivateKey).
func EncodePKCS12(key crypto.Signer, chain []*x509.Certificate, password string, profile P12Profile) ([]byte, error) {
	enc, err := profile.encoder()
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	switch {
	case password == "":
		return nil, errors.New("encode PKCS #12: empty password")
	case key == nil:
		return nil, errors.New("encode PKCS #12: no key")
	case len(chain) == 0:
		return nil, errors.New("encode PKCS #12: no certificate")
	case !publicKeysEqual(key.Public(), chain[0].PublicKey):
		return nil, errors.New("encode PKCS #12: the key is not the certificate's key")
	}
	if k, ok := key.(*ed25519.PrivateKey); ok {
		key = *k
	}
	data, err := enc.Encode(key, chain[0], chain[1:], password)
	if err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	// The MAC salt as OpenSSL 3 writes it (8 bytes; see p12MACSaltLen).
	if data, err = p12Resalt(data, password); err != nil {
		return nil, fmt.Errorf("encode PKCS #12: %w", err)
	}
	return data, nil
}
