package sandbox

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// pki holds the two certificate hierarchies of a world: one for the TLS
// listeners, one that issues S/MIME certificates (root -> intermediate ->
// leaf).
type pki struct {
	tlsRootPEM []byte
	serverCert tls.Certificate

	issuerRoot    *x509.Certificate
	issuerRootPEM []byte
	inter         *x509.Certificate
	interKey      crypto.Signer
	// The issuing CA of server certificates (serverAuth), under the same
	// root.
	serverInter    *x509.Certificate
	serverInterKey crypto.Signer
}

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 90 * 24 * time.Hour
)

func newPKI(hosts []string) (*pki, error) {
	tag, err := randomHex(3)
	if err != nil {
		return nil, err
	}
	now := time.Now()

	// TLS hierarchy: a root that signs one server certificate.
	tlsRoot, tlsRootKey, err := newCA(pkix.Name{Organization: []string{"acmemail sandbox"}, CommonName: "acmemail sandbox TLS root " + tag}, nil, nil, now, -1, nil)
	if err != nil {
		return nil, fmt.Errorf("create TLS root: %w", err)
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"acmemail sandbox"}, CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(serverValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() && !containsIP(tmpl.IPAddresses, ip) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, tmpl, tlsRoot, serverKey.Public(), tlsRootKey)
	if err != nil {
		return nil, fmt.Errorf("create TLS server certificate: %w", err)
	}
	serverLeaf, err := x509.ParseCertificate(serverDER)
	if err != nil {
		return nil, err
	}

	// S/MIME hierarchy.
	root, rootKey, err := newCA(pkix.Name{Organization: []string{"acmemail sandbox"}, CommonName: "acmemail sandbox S/MIME root " + tag}, nil, nil, now, -1, nil)
	if err != nil {
		return nil, fmt.Errorf("create S/MIME root: %w", err)
	}
	inter, interKey, err := newCA(pkix.Name{Organization: []string{"acmemail sandbox"}, CommonName: "acmemail sandbox S/MIME issuing CA " + tag}, root, rootKey, now, 0,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection})
	if err != nil {
		return nil, fmt.Errorf("create S/MIME intermediate: %w", err)
	}
	serverInter, serverInterKey, err := newCA(pkix.Name{Organization: []string{"acmemail sandbox"}, CommonName: "acmemail sandbox server issuing CA " + tag}, root, rootKey, now, 0,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	if err != nil {
		return nil, fmt.Errorf("create server intermediate: %w", err)
	}

	return &pki{
		tlsRootPEM: pemCert(tlsRoot.Raw),
		serverCert: tls.Certificate{
			Certificate: [][]byte{serverDER},
			PrivateKey:  serverKey,
			Leaf:        serverLeaf,
		},
		issuerRoot:     root,
		issuerRootPEM:  pemCert(root.Raw),
		inter:          inter,
		interKey:       interKey,
		serverInter:    serverInter,
		serverInterKey: serverInterKey,
	}, nil
}

// newCA creates a CA certificate signed by parent (self-signed if parent is
// nil). maxPathLen < 0 means no limit.
func newCA(name pkix.Name, parent *x509.Certificate, parentKey crypto.Signer, now time.Time, maxPathLen int, eku []x509.ExtKeyUsage) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          keyID(key.Public()),
	}
	if maxPathLen >= 0 {
		tmpl.MaxPathLen = maxPathLen
		tmpl.MaxPathLenZero = maxPathLen == 0
	}
	signer := crypto.Signer(key)
	if parent == nil {
		parent = tmpl
	} else {
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// keyID is a subject key identifier: the first 20 bytes of the SHA-256 of
// the encoded public key (RFC 7093 §2 method 1).
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20]
}

// randomSerial returns a positive 127-bit serial number.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	for {
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		b[0] &= 0x7f
		n := new(big.Int).SetBytes(b)
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}
