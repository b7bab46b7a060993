package issuer

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// MailConfigs are the IMAP and SMTP configurations of a mailbox of p
// (the profile's folder and security flags) at imapURL and smtpURL, with
// the given logins; pool holds the roots trusted for TLS, trace (if not
// nil) says where the raw protocol goes, who is the login when it is not
// the primary one.
func MailConfigs(p *Profile, pool *x509.CertPool, log *slog.Logger, trace func(string) io.Writer, imapURL, smtpURL string, imapCreds, smtpCreds mailbox.Credentials, who string) (mailbox.IMAPConfig, mailbox.SMTPConfig, error) {
	imapEP, err := mailbox.ParseIMAPURL(imapURL)
	if err != nil {
		return mailbox.IMAPConfig{}, mailbox.SMTPConfig{}, &SettingError{Setting: "imap", Err: err}
	}
	smtpEP, err := mailbox.ParseSMTPURL(smtpURL)
	if err != nil {
		return mailbox.IMAPConfig{}, mailbox.SMTPConfig{}, &SettingError{Setting: "smtp", Err: err}
	}
	imapLog, smtpLog := log.With("component", "imap"), log.With("component", "smtp")
	if who != "" {
		imapLog, smtpLog = imapLog.With("user", who), smtpLog.With("user", who)
	}
	ic := mailbox.IMAPConfig{
		Endpoint: imapEP, Credentials: imapCreds, Mailbox: p.Mailbox,
		TLSConfig: MailTLSConfig(pool, "imap"), AllowInsecure: p.Insecure, Logger: imapLog,
	}
	sc := mailbox.SMTPConfig{
		Endpoint: smtpEP, Credentials: smtpCreds, TLSConfig: MailTLSConfig(pool, "smtp"), AllowInsecure: p.Insecure,
		Logger: smtpLog,
	}
	if trace != nil {
		// The mailboxes of --also addresses are traced too, named by login.
		suffix := ""
		if who != "" {
			suffix = " " + who
		}
		ic.DebugWriter, sc.DebugWriter = trace("imap"+suffix), trace("smtp"+suffix)
	}
	return ic, sc, nil
}

// MailError says which mailbox of a run could not be opened, and how.
type MailError struct {
	Op   string // "open the mailbox" or "log in to the submission server"
	URL  string // the server's URL as configured
	SMTP bool   // the submission server (else IMAP)
	Err  error
}

func (e *MailError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *MailError) Unwrap() error { return e.Err }

// openMailbox starts watching a mailbox (the profile's folder) and logs in
// to its submission server, so that a wrong password is found before the
// CA is contacted.
func (r *run) openMailbox(ctx context.Context, imapURL, smtpURL string, imapCreds, smtpCreds mailbox.Credentials, who string) (*mailbox.Watcher, *mailbox.Sender, error) {
	ic, sc, err := MailConfigs(&r.p, r.pool, r.log, r.is.Trace, imapURL, smtpURL, imapCreds, smtpCreds, who)
	if err != nil {
		return nil, nil, err
	}
	watcher, err := mailbox.Watch(ctx, ic)
	if err != nil {
		return nil, nil, &MailError{Op: "open the mailbox", URL: imapURL, Err: err}
	}
	r.closers = append(r.closers, func() { watcher.Close() })
	if who != "" {
		r.prog.Printf("watching %s on %s for %s", r.p.Mailbox, ic.Endpoint.Host, who)
	} else {
		r.prog.Printf("watching %s on %s", r.p.Mailbox, ic.Endpoint.Host)
	}
	sender := mailbox.NewSender(sc)
	r.closers = append(r.closers, func() { sender.Close() })
	if err := sender.Prepare(ctx); err != nil {
		return nil, nil, &MailError{Op: "log in to the submission server", URL: smtpURL, SMTP: true, Err: err}
	}
	return watcher, sender, nil
}

// openMail opens the profile's mailbox and those of its --also addresses
// and returns what the order flow reads and sends mail with.
func (r *run) openMail(ctx context.Context) (acmemail.Mail, error) {
	p := &r.p
	imapCreds, smtpCreds, err := r.secrets.MailLogin(ctx, p)
	if err != nil {
		return nil, err
	}
	w, s, err := r.openMailbox(ctx, p.IMAP, p.SMTP, imapCreds, smtpCreds, "")
	if err != nil {
		return nil, err
	}
	primary := &box{w, s}
	var extra []*box
	senders := map[string]*mailbox.Sender{}
	for _, a := range p.Also {
		if r.world != nil && !a.Own() {
			if err := r.world.AddAlias(a.Email, p.Email); err != nil {
				return nil, fmt.Errorf("sandbox: add %s to the mailbox of %s: %w", a.Email, p.Email, err)
			}
			continue
		}
		if !a.Own() {
			continue // read from the primary mailbox, sent through the primary server
		}
		var password string
		switch {
		case a.User == p.LoginUser() && a.PasswordFile == "" && a.PasswordCommand == "":
			password = imapCreds.Password
		default:
			pw, err := r.secrets.AlsoPassword(ctx, p, a)
			if err != nil {
				return nil, err
			}
			password = pw
		}
		creds := mailbox.Credentials{Username: a.User, Password: password}
		w, s, err := r.openMailbox(ctx, a.IMAP, a.SMTP, creds, creds, a.User)
		if err != nil {
			return nil, fmt.Errorf("the mailbox of %s: %w", a.Email, err)
		}
		extra = append(extra, &box{w, s})
		senders[strings.ToLower(a.Email)] = s
	}
	if len(extra) == 0 {
		return primary, nil
	}
	mctx, cancel := context.WithCancel(context.Background())
	mm := &multiMail{ch: make(chan []byte), errc: make(chan error, 1+len(extra)), senders: senders, def: s}
	var wg sync.WaitGroup
	for _, m := range append([]*box{primary}, extra...) {
		mm.watchers = append(mm.watchers, m.w)
		wg.Go(func() { mm.read(mctx, m.w) })
	}
	r.closers = append(r.closers, func() { cancel(); wg.Wait() })
	return mm, nil
}

// box joins a mailbox's watcher and its submission server into the
// acmemail.Mail the order flow needs.
type box struct {
	w *mailbox.Watcher
	s *mailbox.Sender
}

func (m *box) Next(ctx context.Context) ([]byte, error) { return m.w.Next(ctx) }
func (m *box) Expect()                                  { m.w.Expect() }
func (m *box) Send(ctx context.Context, from string, to []string, raw []byte) error {
	return m.s.Send(ctx, from, to, raw)
}

// multiMail is the acmemail.Mail of a certificate whose addresses live in
// several mailboxes: Next returns mail from any of them (nothing read is
// dropped between calls), Send replies through the submission server of
// the address the reply is from.
type multiMail struct {
	watchers []*mailbox.Watcher
	ch       chan []byte
	errc     chan error
	senders  map[string]*mailbox.Sender // by lowercased address
	def      *mailbox.Sender            // the primary mailbox's
}

var (
	_ acmemail.Mail         = (*multiMail)(nil)
	_ acmemail.MailExpecter = (*multiMail)(nil)
	_ acmemail.MailExpecter = (*box)(nil)
)

// Expect tells every watcher that a mail is due.
func (m *multiMail) Expect() {
	for _, w := range m.watchers {
		w.Expect()
	}
}

func (m *multiMail) read(ctx context.Context, w *mailbox.Watcher) {
	for {
		raw, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.errc <- err
			}
			return
		}
		select {
		case m.ch <- raw:
		case <-ctx.Done():
			return
		}
	}
}

func (m *multiMail) Next(ctx context.Context) ([]byte, error) {
	select {
	case raw := <-m.ch:
		return raw, nil
	case err := <-m.errc:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *multiMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	s := m.senders[strings.ToLower(from)]
	if s == nil {
		s = m.def
	}
	return s.Send(ctx, from, to, raw)
}
