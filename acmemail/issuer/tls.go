package issuer

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// RootPool returns the system roots plus the PEM certificates of the file
// at path (ACMEMAIL_CA_ROOTS; "" for none) and of extra. The same roots
// give the same pool within a process, so that HTTPClient can share its
// connections.
func RootPool(path string, extra ...[]byte) (*x509.CertPool, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = ReadPEMFile(path); err != nil {
			return nil, &SettingError{Setting: "ca_roots", Err: err}
		}
	}
	h := sha256.New()
	for _, b := range append([][]byte{[]byte(path), data}, extra...) {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	key := string(h.Sum(nil))
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if pool, ok := shared.pools[key]; ok {
		return pool, nil
	}
	pool, err := newRootPool(path, data, extra)
	if err != nil {
		return nil, err
	}
	if shared.pools == nil {
		shared.pools = map[string]*x509.CertPool{}
	}
	shared.pools[key] = pool
	return pool, nil
}

// shared holds what the sessions of one process share: root pools and the
// HTTP clients built on them (and so their connections).
var shared struct {
	mu      sync.Mutex
	pools   map[string]*x509.CertPool
	clients map[*x509.CertPool]*http.Client
}

func newRootPool(path string, data []byte, extra [][]byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if path != "" {
		if !pool.AppendCertsFromPEM(data) {
			return nil, &SettingError{Setting: "ca_roots", Err: fmt.Errorf("%s holds no PEM certificate", path)}
		}
	}
	for _, pem := range extra {
		if len(pem) > 0 && !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("internal: extra roots hold no PEM certificate")
		}
	}
	return pool, nil
}

func TLSConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// The process's TLS session caches for the mail sessions, one per set of
// roots and protocol: renew opens an IMAP and an SMTP session per identity,
// usually all to the same servers, and a resumed handshake (RFC 8446 §2.2,
// still with a fresh key exchange) spares the server's certificate chain,
// its verification and its signature. Per set of roots, because a resumed
// session is not verified again: it must only be offered by a session that
// trusts what the first one verified. Per protocol, because a cache is
// keyed by server name only, and the IMAP and the submission server of a
// domain are often one name with two ticket keys. Tickets hold no mail
// login: authentication comes after TLS.
var mailSessions struct {
	mu     sync.Mutex
	caches map[mailSessionKey]tls.ClientSessionCache
}

type mailSessionKey struct {
	pool  *x509.CertPool
	proto string
}

func MailTLSConfig(pool *x509.CertPool, proto string) *tls.Config {
	mailSessions.mu.Lock()
	defer mailSessions.mu.Unlock()
	k := mailSessionKey{pool, proto}
	cache, ok := mailSessions.caches[k]
	if !ok {
		if mailSessions.caches == nil {
			mailSessions.caches = map[mailSessionKey]tls.ClientSessionCache{}
		}
		cache = tls.NewLRUClientSessionCache(0)
		mailSessions.caches[k] = cache
	}
	c := TLSConfig(pool)
	c.ClientSessionCache = cache
	return c
}

// HTTPClient returns the HTTP client for pool's roots. It is shared by the
// sessions of a process (renew runs several at once), so they reuse their
// connections to the CA.
func HTTPClient(pool *x509.CertPool) *http.Client {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if c, ok := shared.clients[pool]; ok {
		return c
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = TLSConfig(pool)
	tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	c := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	if shared.clients == nil {
		shared.clients = map[*x509.CertPool]*http.Client{}
	}
	shared.clients[pool] = c
	return c
}
