package mailbox_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/acmemail/acmemail/mailbox"
)

const (
	testUser     = "alice@example.org"
	testPassword = "s3cret-Pa55word!"
)

// testPKI is a throw-away CA and a server certificate for 127.0.0.1, ::1,
// localhost, example.org and *.example.org.
type testPKI struct {
	server *tls.Config // for servers
	client *tls.Config // trusts the CA
}

var getPKI = sync.OnceValue(func() *testPKI {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailbox test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	caCert, err := x509.ParseCertificate(caDER)
	must(err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "example.org", "*.example.org"}, // the names the discovery tests fetch
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	must(err)

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &testPKI{
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}}},
		client: &tls.Config{RootCAs: pool},
	}
})

// tLogger writes server logs to t.Output until the test is over, then
// discards them (server goroutines may log after Close).
type tLogger struct {
	mu   sync.Mutex
	w    io.Writer
	done bool
}

func newTLogger(tb testing.TB, prefix string) *log.Logger {
	tl := &tLogger{w: tb.Output()}
	tb.Cleanup(func() {
		tl.mu.Lock()
		tl.done = true
		tl.mu.Unlock()
	})
	return log.New(tl, prefix, 0)
}

func (l *tLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return len(p), nil
	}
	return l.w.Write(p)
}

// trackingListener remembers accepted connections so a test can drop them,
// optionally rewriting what the server writes (only useful in plaintext).
type trackingListener struct {
	net.Listener
	rewrite func([]byte) []byte

	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.rewrite != nil {
		c = &rewriteConn{Conn: c, rewrite: l.rewrite}
	}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.accepted++
	l.mu.Unlock()
	return c, nil
}

// KillConns closes every accepted connection, as a server restart would.
func (l *trackingListener) KillConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

func (l *trackingListener) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

type rewriteConn struct {
	net.Conn
	rewrite func([]byte) []byte
}

func (c *rewriteConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(c.rewrite(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func listen(tb testing.TB) *trackingListener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return &trackingListener{Listener: ln}
}

// imapTestServer is an in-memory IMAP server with one user, alice.
type imapTestServer struct {
	Endpoint mailbox.Endpoint
	User     *imapmemserver.User
	ln       *trackingListener
}

type imapServerOptions struct {
	security mailbox.Security
	rewrite  func([]byte) []byte // plaintext only
	uidplus  bool                // announce UIDPLUS (UID EXPUNGE)
	oauth    []string            // offer these OAuth mechanisms (and PLAIN)
}

func newIMAPServer(tb testing.TB, opt imapServerOptions) *imapTestServer {
	tb.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(testUser, testPassword)
	if err := user.Create("INBOX", nil); err != nil {
		tb.Fatal(err)
	}
	mem.AddUser(user)

	pki := getPKI()
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	options := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			if opt.oauth != nil {
				return oauthSession{flushingSession{mem.NewSession()}, opt.oauth}, nil, nil
			}
			return flushingSession{mem.NewSession()}, nil, nil
		},
		Caps:   caps,
		Logger: newTLogger(tb, "imapserver: "),
	}
	if opt.uidplus {
		options.Caps[imap.CapUIDPlus] = struct{}{}
	}
	ln := listen(tb)
	ln.rewrite = opt.rewrite
	var serveLn net.Listener = ln
	switch opt.security {
	case mailbox.TLS:
		serveLn = tls.NewListener(ln, pki.server)
	case mailbox.StartTLS:
		options.TLSConfig = pki.server
	case mailbox.Insecure:
		options.InsecureAuth = true
	}
	srv := imapserver.New(options)
	go srv.Serve(serveLn)
	tb.Cleanup(func() { srv.Close() })

	port := ln.Addr().(*net.TCPAddr).Port
	return &imapTestServer{
		Endpoint: mailbox.Endpoint{Host: "127.0.0.1", Port: port, Security: opt.security},
		User:     user,
		ln:       ln,
	}
}

// flushingSession works around an imapmemserver quirk (beta.8): updates
// queued between two commands are not sent when IDLE starts, only with the
// next change, so a message delivered just before IDLE went unannounced.
// Real servers (Dovecot) report pending changes when IDLE begins.
type flushingSession struct{ imapserver.Session }

func (s flushingSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.Session.Poll(w, true); err != nil {
		return err
	}
	return s.Session.Idle(w, stop)
}

// testToken is the OAuth access token the test servers accept for alice.
const testToken = "ya29.test-access-token-Zq8"

// oauthSession adds OAuth mechanisms to an imapmemserver session.
type oauthSession struct {
	flushingSession
	mechs []string
}

func (s oauthSession) AuthenticateMechanisms() []string { return append([]string{"PLAIN"}, s.mechs...) }

func (s oauthSession) Authenticate(mech string) (sasl.Server, error) {
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(_, user, pass string) error { return s.Login(user, pass) }), nil
	case mailbox.MechOAuthBearer, mailbox.MechXOAuth2:
		fail := &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthenticationFailed, Text: "invalid credentials"}
		return &testOAuthServer{mech: mech, failErr: fail, check: func(user, token string) error {
			if user != testUser || token != testToken {
				return errors.New("bad token")
			}
			return s.Login(testUser, testPassword)
		}}, nil
	}
	return nil, errors.New("mechanism not supported")
}

// testOAuthServer is the server side of OAUTHBEARER and XOAUTH2, enough for
// tests: on a bad token it sends the JSON error challenge and fails after
// the client's dummy response.
type testOAuthServer struct {
	mech    string
	check   func(user, token string) error
	failErr error
	failed  error
}

func (a *testOAuthServer) Next(resp []byte) ([]byte, bool, error) {
	if a.failed != nil {
		return nil, true, a.failed
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	var user, token string
	kv := string(resp)
	if a.mech == mailbox.MechOAuthBearer {
		head, rest, ok := strings.Cut(kv, ",\x01")
		if !ok || !strings.HasPrefix(head, "n,a=") {
			return nil, true, errors.New("malformed OAUTHBEARER response")
		}
		user, kv = strings.TrimPrefix(head, "n,a="), "\x01"+rest
	}
	for _, f := range strings.Split(kv, "\x01") {
		switch {
		case strings.HasPrefix(f, "user="):
			user = strings.TrimPrefix(f, "user=")
		case strings.HasPrefix(f, "auth=Bearer "):
			token = strings.TrimPrefix(f, "auth=Bearer ")
		}
	}
	if err := a.check(user, token); err != nil {
		a.failed = a.failErr
		return []byte(`{"status":"invalid_token","scope":"https://mail.example/"}`), false, nil
	}
	return nil, true, nil
}

// Config returns a watcher configuration for alice.
func (s *imapTestServer) Config(tb testing.TB) mailbox.IMAPConfig {
	return mailbox.IMAPConfig{
		Endpoint:      s.Endpoint,
		Credentials:   mailbox.Credentials{Username: testUser, Password: testPassword},
		TLSConfig:     getPKI().client,
		AllowInsecure: s.Endpoint.Security == mailbox.Insecure,
		PollInterval:  50 * time.Millisecond,
		Logger:        testLogger(tb),
	}
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return int64(l.Len()) }

// Deliver appends raw to INBOX as a delivery agent would.
func (s *imapTestServer) Deliver(tb testing.TB, raw string) {
	tb.Helper()
	if err := s.deliver(raw); err != nil {
		tb.Fatalf("Append: %v", err)
	}
}

func (s *imapTestServer) deliver(raw string) error {
	// At beta.8 a nil *imap.AppendOptions panics.
	_, err := s.User.Append("INBOX", literal{bytes.NewReader([]byte(raw))}, &imap.AppendOptions{})
	return err
}

func testMessage(n int) string {
	return fmt.Sprintf("From: ca@example.net\r\nTo: alice@example.org\r\nSubject: test %d\r\nMessage-ID: <%d@example.net>\r\n\r\nbody %d\r\n", n, n, n)
}

// smtpBackend records submissions; the *Err fields inject failures, in
// the style of maddy's test server.
type smtpBackend struct {
	Mechs   []string // offered AUTH mechanisms; nil means PLAIN
	AuthErr error
	MailErr error
	RcptErr map[string]error
	DataErr error

	mu           sync.Mutex
	msgs         []smtpMsg
	authAttempts int
}

type smtpMsg struct {
	AuthUser string
	From     string
	To       []string
	Data     string
}

func (be *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &smtpSession{be: be}, nil
}

func (be *smtpBackend) Messages() []smtpMsg {
	be.mu.Lock()
	defer be.mu.Unlock()
	return append([]smtpMsg(nil), be.msgs...)
}

func (be *smtpBackend) AuthAttempts() int {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.authAttempts
}

type smtpSession struct {
	be   *smtpBackend
	user string
	msg  smtpMsg
}

func (s *smtpSession) AuthMechanisms() []string {
	if s.be.Mechs != nil {
		return s.be.Mechs
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		s.be.mu.Lock()
		s.be.authAttempts++
		s.be.mu.Unlock()
		if s.be.AuthErr != nil {
			return s.be.AuthErr
		}
		if user != testUser || pass != testPassword {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return errors.New("identity mismatch")
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	case mailbox.MechOAuthBearer, mailbox.MechXOAuth2:
		return &testOAuthServer{mech: mech, failErr: smtp.ErrAuthFailed, check: func(user, token string) error {
			s.be.mu.Lock()
			s.be.authAttempts++
			s.be.mu.Unlock()
			if user != testUser || token != testToken {
				return errors.New("bad token")
			}
			s.user = user
			return nil
		}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if s.be.MailErr != nil {
		return s.be.MailErr
	}
	s.msg = smtpMsg{AuthUser: s.user, From: from}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.be.RcptErr[to]; err != nil {
		return err
	}
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.be.DataErr != nil {
		return s.be.DataErr
	}
	s.msg.Data = string(b)
	s.be.mu.Lock()
	s.be.msgs = append(s.be.msgs, s.msg)
	s.be.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.msg = smtpMsg{} }
func (s *smtpSession) Logout() error { return nil }

// loginServer is a server for the obsolete LOGIN mechanism, which go-sasl
// implements only as a client.
type loginServer struct {
	check    func(user, pass string) error
	user     string
	haveUser bool
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch {
	case !l.haveUser && resp == nil:
		return []byte("Username:"), false, nil
	case !l.haveUser:
		l.user, l.haveUser = string(resp), true
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

type smtpTestServer struct {
	Endpoint mailbox.Endpoint
	Backend  *smtpBackend
	ln       *trackingListener
}

// newSMTPServer starts a submission server. With StartTLS it offers
// STARTTLS unless noStartTLS is set; with Insecure it allows AUTH in
// plaintext.
func newSMTPServer(tb testing.TB, sec mailbox.Security, be *smtpBackend, noStartTLS bool) *smtpTestServer {
	tb.Helper()
	if be == nil {
		be = &smtpBackend{}
	}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ErrorLog = newTLogger(tb, "smtpserver: ")
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	ln := listen(tb)
	var serveLn net.Listener = ln
	switch sec {
	case mailbox.TLS:
		serveLn = tls.NewListener(ln, getPKI().server)
	case mailbox.StartTLS:
		if !noStartTLS {
			srv.TLSConfig = getPKI().server
		}
	case mailbox.Insecure:
		srv.AllowInsecureAuth = true
	}
	go srv.Serve(serveLn)
	tb.Cleanup(func() { srv.Close() })
	return &smtpTestServer{
		Endpoint: mailbox.Endpoint{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Security: sec},
		Backend:  be,
		ln:       ln,
	}
}

func (s *smtpTestServer) Config(tb testing.TB) mailbox.SMTPConfig {
	return mailbox.SMTPConfig{
		Endpoint:      s.Endpoint,
		Credentials:   mailbox.Credentials{Username: testUser, Password: testPassword},
		TLSConfig:     getPKI().client,
		AllowInsecure: s.Endpoint.Security == mailbox.Insecure,
		LocalName:     "client.example.org",
		Logger:        testLogger(tb),
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// checkNoSecret fails if s contains the test password in any form a client
// would send it.
func checkNoSecret(tb testing.TB, what, s string) {
	tb.Helper()
	for _, secret := range secretForms() {
		if strings.Contains(s, secret) {
			tb.Errorf("%s contains the password (as %q):\n%s", what, secret, s)
		}
	}
}

func secretForms() []string {
	return []string{
		testPassword,
		b64(testPassword),
		b64("\x00" + testPassword),
		b64("\x00" + testUser + "\x00" + testPassword),
		b64(testUser + "\x00" + testUser + "\x00" + testPassword),
	}
}

func testLogger(tb testing.TB) *slog.Logger {
	tl := &tLogger{w: tb.Output()}
	tb.Cleanup(func() {
		tl.mu.Lock()
		tl.done = true
		tl.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(tl, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
