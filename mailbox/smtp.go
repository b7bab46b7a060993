package mailbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPConfig configures a [Sender].
type SMTPConfig struct {
	Endpoint
	// Credentials for SMTP AUTH. An empty Username skips AUTH.
	Credentials
	// TLSConfig is used for implicit TLS and STARTTLS. nil means the system
	// roots; ServerName defaults to the endpoint's host. InsecureSkipVerify
	// is refused.
	TLSConfig *tls.Config
	// AllowInsecure permits Security == Insecure (plaintext, AUTH included),
	// and only to a host whose addresses are all loopback addresses.
	AllowInsecure bool
	// LocalName is the name sent with EHLO; "" means "localhost".
	LocalName string
	// Logger receives milestones at Info and protocol steps at Debug; nil
	// discards.
	Logger *slog.Logger
	// DebugWriter, if set, receives the raw SMTP protocol trace with the
	// AUTH exchange replaced by "[redacted]". Message contents are included.
	DebugWriter io.Writer
	// Logins, if set, bounds the logins in progress at once to the server
	// (shared by the configurations of one server); nil: no bound.
	Logins Limiter
}

const (
	smtpCommandTimeout    = 5 * time.Minute
	smtpSubmissionTimeout = 12 * time.Minute
	// startTLSGreeting is fed to go-smtp after a STARTTLS handshake done by
	// hand (see startTLS); it never travels on the wire.
	startTLSGreeting = "220 acmemail-starttls-done\r\n"
)

// smtpGreetingTimeout bounds the wait for a STARTTLS server's greeting. An
// implicit-TLS port (465) given as smtp:// never greets: its server waits
// silently for a TLS handshake, so without this bound the mistake would
// show only when the caller's context ends. Submission servers greet
// at once; postscreen-style greeting delays (a few seconds) are for port 25.
var smtpGreetingTimeout = 30 * time.Second

// Sender submits messages to an SMTP submission server: implicit TLS
// (port 465) or STARTTLS (port 587, refused if the server does not offer
// STARTTLS), then AUTH PLAIN (or LOGIN if PLAIN is not offered). Each Send
// uses its own session unless [Sender.Prepare] opened one in advance.
//
// A Sender is safe for concurrent use; sends are serialised.
type Sender struct {
	cfg   SMTPConfig
	log   *slog.Logger
	trace *redactor
	sem   chan struct{}
	sess  *smtpSession // prepared, guarded by sem
}

type smtpSession struct {
	c    *smtp.Client
	conn net.Conn
}

// NewSender returns a Sender for cfg. It does not connect.
func NewSender(cfg SMTPConfig) *Sender {
	if cfg.LocalName == "" {
		cfg.LocalName = "localhost"
	}
	return &Sender{
		cfg:   cfg,
		log:   discardLogger(cfg.Logger),
		trace: newRedactor(cfg.DebugWriter, true, cfg.Username, cfg.Password),
		sem:   make(chan struct{}, 1),
	}
}

func (s *Sender) lock(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *Sender) unlock() { <-s.sem }

// Prepare opens and authenticates a session in advance, so that the next
// Send only has to run MAIL FROM, RCPT TO and DATA. If the prepared session
// has died by then (for example a server idle timeout), Send falls back to
// a fresh connection. Prepare errors are those of Send's connection steps.
func (s *Sender) Prepare(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("smtp prepare: %w", err)
	}
	defer s.unlock()
	if s.sess != nil {
		stop := s.sess.bind(ctx)
		err := s.sess.c.Noop()
		stop()
		if err == nil {
			return nil
		}
		s.log.Debug("smtp prepared session died; opening a new one", "error", err)
		s.sess.c.Close()
		s.sess = nil
	}
	sess, err := s.open(ctx)
	if err != nil {
		return err
	}
	s.sess = sess
	return nil
}

// Send submits raw (a complete RFC 5322 message; bare LF line endings are
// converted to CRLF) from the envelope sender from to the recipients to.
// ctx bounds the whole submission.
//
// Errors name the failed step and include the server's reply, for example
// "smtp MAIL FROM alice@example.org: 553 5.7.1 sender not owned by user";
// they wrap a [*ReplyError] when the server refused a command and
// [ErrAuthFailed] for a 535 reply to AUTH.
func (s *Sender) Send(ctx context.Context, from string, to []string, raw []byte) error {
	if len(to) == 0 {
		return errors.New("smtp send: no recipients")
	}
	for _, a := range append([]string{from}, to...) {
		if strings.ContainsAny(a, "\r\n<>") {
			return fmt.Errorf("smtp send: invalid address %q", a)
		}
	}
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("smtp send: %w", err)
	}
	defer s.unlock()

	if sess := s.sess; sess != nil {
		s.sess = nil
		retry, err := s.transact(ctx, sess, from, to, raw)
		if err == nil {
			s.quit(sess)
			return nil
		}
		sess.c.Close()
		if !retry || ctx.Err() != nil {
			return err
		}
		s.log.Info("smtp prepared session unusable; sending over a new connection", "error", err)
	}
	sess, err := s.open(ctx)
	if err != nil {
		return err
	}
	if _, err := s.transact(ctx, sess, from, to, raw); err != nil {
		sess.c.Close()
		return err
	}
	s.quit(sess)
	return nil
}

// Close ends a prepared session, if any.
func (s *Sender) Close() error {
	s.sem <- struct{}{}
	defer s.unlock()
	if s.sess != nil {
		s.quit(s.sess)
		s.sess = nil
	}
	return nil
}

func (s *Sender) quit(sess *smtpSession) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	stop := sess.bind(ctx)
	defer stop()
	if err := sess.c.Quit(); err != nil {
		s.log.Debug("smtp QUIT", "error", err)
		sess.c.Close()
	}
}

// bind makes the session's commands honour ctx: go-smtp sets a deadline of
// CommandTimeout before each command, so the timeouts are capped by ctx's
// deadline, and cancelling ctx closes the connection.
func (sess *smtpSession) bind(ctx context.Context) (stop func() bool) {
	cmd, sub := smtpCommandTimeout, smtpSubmissionTimeout
	if dl, ok := ctx.Deadline(); ok {
		left := max(time.Until(dl), time.Millisecond)
		cmd, sub = min(cmd, left), min(sub, left)
	}
	sess.c.CommandTimeout, sess.c.SubmissionTimeout = cmd, sub
	return context.AfterFunc(ctx, func() { sess.conn.Close() })
}

// open connects, says EHLO, and authenticates.
func (s *Sender) open(ctx context.Context) (*smtpSession, error) {
	ep := s.cfg.Endpoint
	if err := s.cfg.Credentials.check("smtp"); err != nil {
		return nil, err
	}
	release, err := acquire(ctx, s.cfg.Logins)
	if err != nil {
		return nil, fmt.Errorf("smtp connect %s: %w", ep.Address(), err)
	}
	defer release()
	addrs, err := dialAddrs(ctx, smtpProto, ep, s.cfg.AllowInsecure)
	if err != nil {
		return nil, err
	}
	tlsConf, err := clientTLSConfig(s.cfg.TLSConfig, ep.Host)
	if err != nil {
		return nil, fmt.Errorf("smtp connect %s: %w", ep.Address(), err)
	}
	var token string
	if s.cfg.OAuthToken != nil && s.cfg.Username != "" {
		if token, err = s.cfg.token(ctx, "smtp"); err != nil {
			return nil, err
		}
	}
	s.log.Debug("smtp connecting", "server", ep.String(), "addresses", addrs)
	start := time.Now()
	s.trace.reset()

	var conn net.Conn
	switch ep.Security {
	case TLS:
		conn, err = dialTLS(ctx, addrs, tlsConf)
		if err != nil {
			return nil, fmt.Errorf("smtp connect %s: %w", ep.Address(), tlsHint(err, smtpProto, ep))
		}
	case StartTLS:
		plain, err := dial(ctx, addrs)
		if err != nil {
			return nil, fmt.Errorf("smtp connect %s: %w", ep.Address(), err)
		}
		conn, err = s.startTLS(ctx, plain, tlsConf)
		if err != nil {
			plain.Close()
			return nil, err
		}
	default: // Insecure, vetted by dialAddrs
		conn, err = dial(ctx, addrs)
		if err != nil {
			return nil, fmt.Errorf("smtp connect %s: %w", ep.Address(), err)
		}
	}

	c := smtp.NewClient(conn)
	c.DebugWriter = s.trace.writer()
	sess := &smtpSession{c: c, conn: conn}
	stop := sess.bind(ctx)
	defer stop()
	if err := c.Hello(s.cfg.LocalName); err != nil {
		c.Close()
		return nil, s.stepErr(ctx, "EHLO "+s.cfg.LocalName, err)
	}
	if err := s.auth(ctx, sess, ep, token); err != nil {
		c.Close()
		return nil, err
	}
	s.log.Debug("smtp session ready", "server", ep.String(), "elapsed", time.Since(start))
	return sess, nil
}

// startTLS does the plaintext part of a STARTTLS session by hand (greeting,
// EHLO with LocalName, STARTTLS) because go-smtp's STARTTLS helpers always
// greet with "localhost" and hide why an upgrade failed. The returned
// connection replays a synthetic greeting so that go-smtp can start over
// TLS as if freshly connected.
func (s *Sender) startTLS(ctx context.Context, conn net.Conn, tlsConf *tls.Config) (net.Conn, error) {
	ep := s.cfg.Endpoint
	deadline := time.Now().Add(smtpCommandTimeout)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// The plaintext phase is a few short lines; bound what a hostile
	// server can make us buffer.
	var r io.Reader = io.LimitReader(conn, 64<<10)
	var w io.Writer = conn
	if s.trace != nil {
		r, w = io.TeeReader(r, s.trace), io.MultiWriter(conn, s.trace)
	}
	tp := textproto.NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{r, w, conn})
	fail := func(step string, err error) error {
		var pe *textproto.Error
		if errors.As(err, &pe) {
			err = &smtp.SMTPError{Code: pe.Code, Message: pe.Msg}
		}
		return s.stepErr(ctx, step, err)
	}

	greetBy := time.Now().Add(smtpGreetingTimeout)
	greetLimited := greetBy.Before(deadline)
	if greetLimited {
		conn.SetReadDeadline(greetBy)
	}
	if _, _, err := tp.ReadResponse(220); err != nil {
		var ne net.Error
		if greetLimited && ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(greetBy) {
			port := ep.Port
			if port == smtpProto.startTLSPort {
				port = smtpProto.tlsPort
			}
			return nil, fmt.Errorf("smtp greeting from %s: the server said nothing for %s (a server that waits silently speaks implicit TLS: if so, use smtps://%s)",
				ep.Address(), smtpGreetingTimeout, net.JoinHostPort(ep.Host, strconv.Itoa(port)))
		}
		return nil, fail("greeting from "+ep.Address(), err)
	}
	conn.SetReadDeadline(deadline)
	id, err := tp.Cmd("EHLO %s", s.cfg.LocalName)
	if err != nil {
		return nil, fail("EHLO "+s.cfg.LocalName, err)
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, fail("EHLO "+s.cfg.LocalName, err)
	}
	hasStartTLS := false
	for _, line := range strings.Split(msg, "\n")[1:] {
		if strings.EqualFold(strings.Fields(line + " x")[0], "STARTTLS") {
			hasStartTLS = true
		}
	}
	if !hasStartTLS {
		return nil, fmt.Errorf("smtp STARTTLS with %s: the server does not offer STARTTLS, so the password would travel unencrypted; refusing to continue (if the server uses implicit TLS, use smtps://%s)",
			ep.Address(), net.JoinHostPort(ep.Host, strconv.Itoa(smtpProto.tlsPort)))
	}
	id, err = tp.Cmd("STARTTLS")
	if err != nil {
		return nil, fail("STARTTLS", err)
	}
	tp.StartResponse(id)
	_, _, err = tp.ReadResponse(220)
	tp.EndResponse(id)
	if err != nil {
		return nil, fail("STARTTLS", err)
	}
	if tp.R.Buffered() > 0 {
		// Anything after the 220 would be plaintext injected before the
		// handshake (CVE-2011-0411 style).
		return nil, fmt.Errorf("smtp STARTTLS with %s: the server sent data before the TLS handshake; refusing the connection", ep.Address())
	}
	tc := tls.Client(conn, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("smtp STARTTLS with %s: TLS handshake: %w", ep.Address(), ctxErr(ctx, err))
	}
	conn.SetDeadline(time.Time{})
	if s.trace != nil {
		s.trace.suppressLine(startTLSGreeting)
	}
	return &greetedConn{Conn: tc, r: io.MultiReader(strings.NewReader(startTLSGreeting), tc)}, nil
}

// greetedConn prepends a synthetic greeting to a connection's input.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func (s *Sender) auth(ctx context.Context, sess *smtpSession, ep Endpoint, token string) error {
	user, pass := s.cfg.Username, s.cfg.Password
	if user == "" {
		return nil
	}
	if !sess.encrypted() && ep.Security != Insecure {
		// Unreachable by construction; kept as a guard for future changes.
		return errors.New("smtp AUTH: refusing to authenticate over an unencrypted connection")
	}
	ok, mechs := sess.c.Extension("AUTH")
	if !ok {
		return fmt.Errorf("smtp AUTH as %s: the server at %s does not offer authentication", user, ep.Address())
	}
	offered := strings.Fields(strings.ToUpper(mechs))
	forced := strings.ToUpper(s.cfg.Mechanism)
	var mech string
	var client sasl.Client
	var oc *oauthClient
	switch {
	case s.cfg.OAuthToken != nil:
		m, err := chooseOAuthMech("smtp", offered, forced)
		if err != nil {
			return err
		}
		mech = m
		oc = newOAuthClient(mech, user, token)
		s.trace.addSecrets(oc.secrets()...)
		client = oc
	default:
		mech = forced
		if mech == "" {
			for _, m := range offered {
				if m == sasl.Plain || (m == sasl.Login && mech == "") {
					mech = m
				}
			}
		}
		switch mech {
		case sasl.Plain:
			client = sasl.NewPlainClient("", user, pass)
		case sasl.Login:
			client = sasl.NewLoginClient(user, pass)
		default:
			return fmt.Errorf("smtp AUTH as %s: the server offers %q, none of which is supported with a password (PLAIN, LOGIN)", user, mechs)
		}
	}
	if err := sess.c.Auth(client); err != nil {
		op := "smtp AUTH " + mech + " as " + user
		if d := oc.detail(); d != "" {
			op += " (" + d + ")"
		}
		if re := replyError(err); re != nil && re.Code == 535 {
			return fmt.Errorf("%s: %w (%w)", op, ErrAuthFailed, re)
		}
		if oc != nil && oc.failure != nil {
			// The server answered the token with an error challenge: that
			// is a refused login whatever the final reply code.
			return fmt.Errorf("%s: %w (%w)", op, ErrAuthFailed, s.stepErr(ctx, "AUTH "+mech, err))
		}
		return s.stepErr(ctx, "AUTH "+mech+" as "+user, err)
	}
	s.log.Debug("smtp authenticated", "user", user, "mechanism", mech)
	return nil
}

func (sess *smtpSession) encrypted() bool {
	conn := sess.conn
	if g, ok := conn.(*greetedConn); ok {
		conn = g.Conn
	}
	_, ok := conn.(*tls.Conn)
	return ok
}

// transact runs MAIL FROM, RCPT TO and DATA. retry reports whether the
// failure happened before the server accepted anything, on a connection
// that looks dead (so that a fresh connection may be tried).
func (s *Sender) transact(ctx context.Context, sess *smtpSession, from string, to []string, raw []byte) (retry bool, err error) {
	if ctx.Err() != nil {
		return false, fmt.Errorf("smtp send: %w", context.Cause(ctx))
	}
	stop := sess.bind(ctx)
	defer stop()
	c := sess.c
	var mailOpts *smtp.MailOptions
	if needsUTF8(from, to, raw) {
		// RFC 6531: internationalized addresses or UTF-8 header fields.
		mailOpts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(from, mailOpts); err != nil {
		re := replyError(err)
		return re == nil || re.Code == 421, s.stepErr(ctx, "MAIL FROM "+from, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return false, s.stepErr(ctx, "RCPT TO "+rcpt, err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		return false, s.stepErr(ctx, "DATA", err)
	}
	if _, err := wc.Write(raw); err != nil {
		wc.Close()
		return false, s.stepErr(ctx, "DATA", err)
	}
	if err := wc.Close(); err != nil {
		return false, s.stepErr(ctx, "DATA", err)
	}
	s.log.Info("smtp message submitted", "from", from, "recipients", len(to), "bytes", len(raw))
	return false, nil
}

// stepErr formats an error of an SMTP step: the server's reply if there is
// one, the context's error if it ended, the I/O error otherwise.
func (s *Sender) stepErr(ctx context.Context, step string, err error) error {
	if re := replyError(err); re != nil {
		return fmt.Errorf("smtp %s: %w", step, re)
	}
	return fmt.Errorf("smtp %s: %w", step, ctxErr(ctx, err))
}

// needsUTF8 reports whether a message needs the SMTPUTF8 extension: a
// non-ASCII envelope address or header field (RFC 6531, RFC 6532). A
// non-ASCII body alone does not (that is 8BITMIME's business).
func needsUTF8(from string, to []string, raw []byte) bool {
	nonASCII := func(b []byte) bool {
		for _, c := range b {
			if c >= 0x80 {
				return true
			}
		}
		return false
	}
	if nonASCII([]byte(from)) {
		return true
	}
	for _, a := range to {
		if nonASCII([]byte(a)) {
			return true
		}
	}
	header := raw
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		header = raw[:i]
	} else if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		header = raw[:i]
	}
	return nonASCII(header)
}
