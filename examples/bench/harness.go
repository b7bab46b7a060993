//go:build unix

package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// recorder keeps the observations of a sandbox world.
type recorder struct {
	mu  sync.Mutex
	obs []sandbox.Observation
}

func (r *recorder) observe(o sandbox.Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

// take returns the observations recorded so far and forgets them.
func (r *recorder) take() []sandbox.Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.obs
	r.obs = nil
	return out
}

// world is a running sandbox with its recorder.
type world struct {
	*sandbox.World
	rec       *recorder
	dir       string // roots.pem, passwords
	rootsPath string
	pool      *x509.CertPool
	resolver  *net.Resolver // the sandbox's DNS server
	password  string        // if set, every user's password (acmemail renew takes one for all)

	mu    sync.Mutex
	users map[string]string // email -> password
}

func startWorld(ctx context.Context, opts sandbox.Options, dir string) (*world, error) {
	rec := &recorder{}
	opts.Observe = rec.observe
	w, err := sandbox.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.TLSRootsPEM)
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, w.TLSRootsPEM, 0o644); err != nil {
		w.Close()
		return nil, err
	}
	// DKIM keys are looked up over UDP from the sandbox's DNS server, as
	// acmemail obtain --dns-resolver does.
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, w.DNSAddr)
	}}
	return &world{World: w, rec: rec, dir: dir, rootsPath: roots, pool: pool, resolver: resolver, users: map[string]string{}}, nil
}

// user creates a mailbox for email (once) and returns its password.
func (w *world) user(email string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pw, ok := w.users[email]; ok {
		return pw, nil
	}
	pw := w.password
	if pw == "" {
		pw = fmt.Sprintf("pw-%d-%s", len(w.users), strings.ReplaceAll(email, "@", "-"))
	}
	if err := w.AddUser(email, pw); err != nil {
		return "", err
	}
	w.users[email] = pw
	return pw, nil
}

// mailAdapter joins a watcher and a sender into an acmemail.Mail.
type mailAdapter struct {
	w *mailbox.Watcher
	s *mailbox.Sender
}

func (m mailAdapter) Next(ctx context.Context) ([]byte, error) { return m.w.Next(ctx) }
func (m mailAdapter) Expect()                                  { m.w.Expect() }
func (m mailAdapter) Send(ctx context.Context, from string, to []string, raw []byte) error {
	return m.s.Send(ctx, from, to, raw)
}

// account is the ACME account every library issuance of a run shares, with
// one HTTP client, so that connections to the CA are reused.
type account struct {
	key  crypto.Signer
	http *http.Client

	mu  sync.Mutex
	url string
}

func newAccount(pool *x509.CertPool) (*account, error) {
	key, err := keystore.GenerateKey(keystore.KeyP256)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig(pool)
	tr.MaxIdleConnsPerHost = 64
	return &account{key: key, http: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}

func (a *account) client(w *world, mail acmemail.Mail, store *keystore.Store) *acmemail.Client {
	a.mu.Lock()
	url := a.url
	a.mu.Unlock()
	return &acmemail.Client{
		DirectoryURL: w.DirectoryURL,
		HTTPClient:   a.http,
		UserAgent:    "acmemail-bench",
		AccountKey:   a.key,
		AccountURL:   url,
		Mail:         mail,
		Verifier:     &acmemail.MailVerifier{LookupTXT: w.resolver.LookupTXT},
		Guard:        store, // answered challenges recorded in the state directory
		OnAccount: func(u string) error {
			a.mu.Lock()
			a.url = u
			a.mu.Unlock()
			return nil
		},
	}
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// libObtain runs one issuance for email through the library against w,
// wired the way cmd/acmemail wires it: an IMAP watcher started before the
// order, a submission session prepared while waiting, the state directory
// as reply guard, and the certificate saved with its PKCS#12 file.
func libObtain(ctx context.Context, w *world, store *keystore.Store, acct *account, email string, kt keystore.KeyType, poll time.Duration) error {
	pw, err := w.user(email)
	if err != nil {
		return err
	}
	creds := mailbox.Credentials{Username: email, Password: pw}
	imapEP, err := mailbox.ParseIMAPURL(w.IMAPURL)
	if err != nil {
		return err
	}
	smtpEP, err := mailbox.ParseSMTPURL(w.SMTPURL)
	if err != nil {
		return err
	}
	tlsConf := tlsConfig(w.pool)
	watcher, err := mailbox.Watch(ctx, mailbox.IMAPConfig{Endpoint: imapEP, Credentials: creds, TLSConfig: tlsConf, PollInterval: poll, NoIdle: poll > 0})
	if err != nil {
		return err
	}
	defer watcher.Close()
	sender := mailbox.NewSender(mailbox.SMTPConfig{Endpoint: smtpEP, Credentials: creds, TLSConfig: tlsConf})
	defer sender.Close()
	if err := sender.Prepare(ctx); err != nil {
		return err
	}
	certKey, err := store.CertKey(email, kt)
	if err != nil {
		return err
	}
	csr, err := acmemail.NewCSR(certKey, []string{email}, acmemail.UsageBoth)
	if err != nil {
		return err
	}
	client := acct.client(w, mailAdapter{watcher, sender}, store)
	cert, err := client.Obtain(ctx, acmemail.ObtainRequest{Emails: []string{email}, CSR: csr})
	if err != nil {
		return fmt.Errorf("obtain for %s: %w", email, err)
	}
	if _, err := acmemail.CheckCertificate(cert.Chain, certKey.Public(), []string{email}, acmemail.UsageBoth); err != nil {
		return err
	}
	if _, err := store.SaveCertificate(email, cert.ChainPEM, keystore.CertMeta{Email: email, Directory: w.DirectoryURL, KeyType: kt, Usage: "both"}); err != nil {
		return err
	}
	_, err = store.WritePKCS12(email, "bench", keystore.P12Modern)
	return err
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// summary is the median and p99 of a sample (nearest-rank).
type summary struct {
	n             int
	median, p99   time.Duration
	min, max, avg time.Duration
}

func summarize(d []time.Duration) summary {
	if len(d) == 0 {
		return summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return summary{n: len(s), median: rank(0.5), p99: rank(0.99), min: s[0], max: s[len(s)-1], avg: sum / time.Duration(len(s))}
}

// medianCount is the median of counts (the upper one of an even number,
// as summarize takes it), 0 for none.
func medianCount(counts []int64) int64 {
	if len(counts) == 0 {
		return 0
	}
	s := slices.Clone(counts)
	slices.Sort(s)
	return s[len(s)/2]
}
