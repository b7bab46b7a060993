package main

import (
	"crypto/x509"
	"os"
)

// issuerRoots returns the roots the CA's certificate chain must verify to,
// when they are known: those of --issuer-roots, else the in-process
// sandbox's issuing root. Otherwise nil: the chain is then only checked to
// link up (each certificate signed by the next).
func (s *session) issuerRoots() *x509.CertPool {
	var pemData []byte
	switch {
	case len(s.id.issuerRoots) > 0:
		pemData = s.id.issuerRoots
	case s.world != nil:
		pemData = s.world.IssuerRootPEM
	default:
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil
	}
	return pool
}

// readIssuerRoots reads --issuer-roots (before anything is sent to the
// CA): a PEM file with at least one certificate.
func readIssuerRoots(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("--issuer-roots: %w", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return nil, usageErrorf("--issuer-roots %s holds no PEM certificate", path)
	}
	return data, nil
}
