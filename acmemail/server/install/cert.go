package install

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Size limits of what Install is given: far above any real key or chain.
const (
	maxKeyPEM   = 64 << 10
	maxChainPEM = 1 << 20
	maxChainLen = 10
)

// notBeforeSkew is how far in the future a certificate's notBefore may be
// (the CA's clock and ours).
const notBeforeSkew = 5 * time.Minute

// parsedCert is a Cert that passed checkCert, in the form it is written.
type parsedCert struct {
	host     string
	keyPEM   []byte // one PKCS#8 or SEC 1 or PKCS#1 block, re-encoded
	chainPEM []byte // the certificates, re-encoded, leaf first
	leaf     *x509.Certificate
}

// checkCert checks, before anything is written, that c is a server
// certificate a mail server can use for c.Host: the key is the leaf's, the
// leaf names the host, is valid now and is for serverAuth with a key usage
// that fits its key. The key and chain are re-encoded from what was parsed,
// so that only PEM blocks a server reads reach the disk.
func checkCert(c Cert, now time.Time) (*parsedCert, error) {
	host, err := checkHost(c.Host)
	if err != nil {
		return nil, err
	}
	if len(c.KeyPEM) > maxKeyPEM {
		return nil, fmt.Errorf("the key is larger than %d bytes", maxKeyPEM)
	}
	if len(c.ChainPEM) > maxChainPEM {
		return nil, fmt.Errorf("the chain is larger than %d bytes", maxChainPEM)
	}
	key, keyBlock, err := parseKey(c.KeyPEM)
	if err != nil {
		return nil, err
	}
	certs, err := parseChain(c.ChainPEM)
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("the key is not the certificate's")
	}
	if err := leaf.VerifyHostname(host); err != nil || !slices.Contains(leaf.DNSNames, host) {
		return nil, fmt.Errorf("the certificate does not name %s (its DNS names: %s)", host, sanitize(strings.Join(leaf.DNSNames, ", ")))
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return nil, errors.New("the certificate is not for TLS servers (no serverAuth extended key usage)")
	}
	if leaf.KeyUsage != 0 {
		if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return nil, errors.New("the certificate's key usage lacks digitalSignature")
		}
		if _, isEC := key.(*ecdsa.PrivateKey); isEC && leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0 {
			return nil, errors.New("the certificate's key usage has keyEncipherment, which an EC key cannot do")
		}
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("the certificate expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if leaf.NotBefore.After(now.Add(notBeforeSkew)) {
		return nil, fmt.Errorf("the certificate is not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if !c.NotAfter.IsZero() && !c.NotAfter.Equal(leaf.NotAfter) {
		return nil, fmt.Errorf("NotAfter %s is not the certificate's, %s", c.NotAfter.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	var chain bytes.Buffer
	for _, cert := range certs {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	return &parsedCert{host: host, keyPEM: pem.EncodeToMemory(keyBlock), chainPEM: chain.Bytes(), leaf: leaf}, nil
}

// checkHost accepts a host name in its usual form: lower-case letters,
// digits and hyphens in dot-separated labels (A-labels for IDNs), at least
// two labels, no trailing dot. It becomes a directory name, so nothing
// else may pass.
func checkHost(host string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("host name %q: %s", sanitize(host), why)
	}
	if host == "" {
		return bad("empty")
	}
	if len(host) > 253 {
		return bad("longer than 253 characters")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return bad("not a fully qualified name")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return bad("a label is empty or longer than 63 characters")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return bad("a label starts or ends with a hyphen")
		}
		for i := 0; i < len(l); i++ {
			ch := l[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				return bad("only lower-case letters, digits, hyphens and dots are allowed")
			}
		}
	}
	return host, nil
}

// parseKey reads exactly one private key PEM block.
func parseKey(data []byte) (crypto.Signer, *pem.Block, error) {
	var found *pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return nil, nil, fmt.Errorf("the key file holds a %q PEM block", sanitize(b.Type))
		}
		if found != nil {
			return nil, nil, errors.New("the key file holds more than one key")
		}
		found = b
	}
	if found == nil {
		return nil, nil, errors.New("the key file holds no PEM private key")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, nil, errors.New("the key file has data after its PEM block")
	}
	if len(found.Headers) > 0 {
		return nil, nil, errors.New("the key is encrypted or has PEM headers (servers need it unencrypted)")
	}
	var key any
	var err error
	switch found.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(found.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(found.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(found.Bytes)
	default:
		return nil, nil, fmt.Errorf("unsupported key block %q", sanitize(found.Type))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("the key does not parse: %w", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), &pem.Block{Type: found.Type, Bytes: found.Bytes}, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", key)
}

// parseChain reads the CERTIFICATE blocks of data, leaf first.
func parseChain(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the chain holds a %q PEM block", sanitize(b.Type))
		}
		if len(certs) == maxChainLen {
			return nil, fmt.Errorf("the chain has more than %d certificates", maxChainLen)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain does not parse: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("the chain holds no certificate")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("the chain has data after its last PEM block")
	}
	for i := 1; i < len(certs); i++ {
		if err := certs[i-1].CheckSignatureFrom(certs[i]); err != nil {
			return nil, fmt.Errorf("certificate %d of the chain is not signed by the next one: %w", i, err)
		}
	}
	return certs, nil
}
