package main

import "crypto/x509"

// issuerRoots returns the roots the CA's certificate chain must verify to,
// when they are known: the in-process sandbox's issuing root. For other
// CAs nil: the chain is then only checked to link up.
func (s *session) issuerRoots() *x509.CertPool {
	if s.world == nil {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.world.IssuerRootPEM) {
		return nil
	}
	return pool
}
