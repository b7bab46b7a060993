package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeyType names a kind of private key.
type KeyType string

// The supported key types. [KeyEd25519] is for ACME account keys only:
// [Store.CertKey] refuses it, as S/MIME clients do not accept Ed25519
// certificates.
const (
	KeyP256    KeyType = "p256"
	KeyP384    KeyType = "p384"
	KeyRSA2048 KeyType = "rsa2048"
	KeyRSA3072 KeyType = "rsa3072"
	KeyRSA4096 KeyType = "rsa4096"
	KeyEd25519 KeyType = "ed25519"
)

var keyTypes = []KeyType{KeyP256, KeyP384, KeyRSA2048, KeyRSA3072, KeyRSA4096, KeyEd25519}

// KeyTypes returns every supported key type, in a stable order.
func KeyTypes() []KeyType { return append([]KeyType(nil), keyTypes...) }

func (kt KeyType) String() string { return string(kt) }

// valid reports whether kt is one of the supported key types.
func (kt KeyType) valid() bool {
	for _, k := range keyTypes {
		if kt == k {
			return true
		}
	}
	return false
}

// CertificateKey reports whether kt may be used for a certificate key
// (every supported type except ed25519).
func (kt KeyType) CertificateKey() bool { return kt.valid() && kt != KeyEd25519 }

// ParseKeyType parses a key type name (case-insensitive): p256, p384,
// rsa2048, rsa3072, rsa4096 or ed25519.
func ParseKeyType(s string) (KeyType, error) {
	kt := KeyType(strings.ToLower(strings.TrimSpace(s)))
	if !kt.valid() {
		names := make([]string, len(keyTypes))
		for i, k := range keyTypes {
			names[i] = string(k)
		}
		return "", fmt.Errorf("unknown key type %q (want one of %s)", s, strings.Join(names, ", "))
	}
	return kt, nil
}

// GenerateKey generates a new private key of type kt.
func GenerateKey(kt KeyType) (crypto.Signer, error) {
	switch kt {
	case KeyP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return priv, nil
	}
	return nil, fmt.Errorf("generate key: unknown key type %q", string(kt))
}

// KeyTypeOf returns the type of a public key (use key.Public() for a
// private one). Keys of other sizes or curves are an error.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyP256, nil
		case elliptic.P384():
			return KeyP384, nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch n := k.N.BitLen(); n {
		case 2048:
			return KeyRSA2048, nil
		case 3072:
			return KeyRSA3072, nil
		case 4096:
			return KeyRSA4096, nil
		default:
			return "", fmt.Errorf("unsupported RSA key size %d", n)
		}
	case ed25519.PublicKey:
		return KeyEd25519, nil
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}

// MarshalPrivateKey encodes key as an unencrypted PKCS #8 PEM block
// ("PRIVATE KEY"). key must be an *ecdsa.PrivateKey, *rsa.PrivateKey or
// ed25519.PrivateKey.
func MarshalPrivateKey(key crypto.Signer) ([]byte, error) {
	if k, ok := key.(*ed25519.PrivateKey); ok {
		key = *k
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes the first PEM block of data as a private key.
// It reads PKCS #8 ("PRIVATE KEY") as written by [MarshalPrivateKey], and
// for keys made by other tools also SEC 1 ("EC PRIVATE KEY") and PKCS #1
// ("RSA PRIVATE KEY"). Encrypted keys are not supported. Errors never
// include key material.
func ParsePrivateKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("parse private key: encrypted keys are not supported")
	default:
		return nil, fmt.Errorf("parse private key: unexpected PEM block type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key (%s): %w", block.Type, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse private key: %T is not a signing key", key)
	}
	return s, nil
}

// readKey reads and parses the private key file path. A missing file gives
// an error wrapping fs.ErrNotExist.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	return k, nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}
