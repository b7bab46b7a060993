package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// rootPool returns the system roots plus the PEM certificates of
// ACMEMAIL_CA_ROOTS (a file) and of extra.
func (g *globals) rootPool(extra ...[]byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if path := g.getenv("ACMEMAIL_CA_ROOTS"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, usageErrorf("read ACMEMAIL_CA_ROOTS: %w", err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, usageErrorf("ACMEMAIL_CA_ROOTS (%s) holds no PEM certificate", path)
		}
	}
	for _, pem := range extra {
		if len(pem) > 0 && !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("internal: extra roots hold no PEM certificate")
		}
	}
	return pool, nil
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func httpClient(pool *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig(pool)
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}
