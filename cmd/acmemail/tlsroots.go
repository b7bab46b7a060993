package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// rootPool returns the system roots plus the PEM certificates of
// ACMEMAIL_CA_ROOTS (a file) and of extra (see issuer.RootPool).
func (g *globals) rootPool(extra ...[]byte) (*x509.CertPool, error) {
	pool, err := issuer.RootPool(g.getenv("ACMEMAIL_CA_ROOTS"), extra...)
	return pool, settingErr(err)
}

func tlsConfig(pool *x509.CertPool) *tls.Config     { return issuer.TLSConfig(pool) }
func imapTLSConfig(pool *x509.CertPool) *tls.Config { return issuer.MailTLSConfig(pool, "imap") }
func smtpTLSConfig(pool *x509.CertPool) *tls.Config { return issuer.MailTLSConfig(pool, "smtp") }
func httpClient(pool *x509.CertPool) *http.Client   { return issuer.HTTPClient(pool) }
