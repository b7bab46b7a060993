package standalone

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

// Mail is the CA's account on a real mail system: the CA submits its
// challenges through SMTP, whose server must DKIM-sign them for the domain
// of Address, reads the replies from the folder Mailbox at IMAP and checks
// their DKIM signatures with keys from DNSResolver. No sandbox mailboxes
// are needed then, and the CA accepts orders for any address.
type Mail struct {
	// Address is the CA's address, normalized, without a +extension: its
	// challenges come from plus addresses of it, which the mail system
	// must deliver to the same mailbox and let the login send as.
	Address string
	// IMAP is the URL of the CA's mailbox ([mailbox.ParseIMAPURL]), SMTP
	// the submission server's ([mailbox.ParseSMTPURL]).
	IMAP, SMTP string
	// User is the login at both; "" is Address.
	User string
	// Mailbox is the folder replies arrive in; "" is INBOX.
	Mailbox string
	// DNSResolver is the DNS server (HOST:PORT) for the DKIM keys of
	// replies; "" is the system resolver.
	DNSResolver string
	// Login is called once the settings above are checked, before
	// connecting: it returns the password of user and the roots to trust
	// for TLS (nil: the system's).
	Login func(user string) (password string, roots *x509.CertPool, err error)
	// Logger gets the mail sessions' logs, as components ca-smtp and
	// ca-imap; nil discards them.
	Logger *slog.Logger
}

// mailLink is the CA's connection to a real mail system.
type mailLink struct {
	watcher *mailbox.Watcher
	sender  *mailbox.Sender
}

func (x *mailLink) close() {
	if x == nil {
		return
	}
	x.watcher.Close()
	x.sender.Close()
}

// dial logs in to the submission server and begins watching the CA's
// mailbox, and points opts at them.
func (m *Mail) dial(ctx context.Context, opts *sandbox.Options) (*mailLink, error) {
	user := m.User
	if user == "" {
		user = m.Address
	}
	folder := m.Mailbox
	if folder == "" {
		folder = "INBOX"
	}
	imapEP, err := mailbox.ParseIMAPURL(m.IMAP)
	if err != nil {
		return nil, &issuer.SettingError{Setting: "mail_imap", Err: err}
	}
	smtpEP, err := mailbox.ParseSMTPURL(m.SMTP)
	if err != nil {
		return nil, &issuer.SettingError{Setting: "mail_smtp", Err: err}
	}
	var lookupTXT func(context.Context, string) ([]string, error)
	if m.DNSResolver != "" {
		r, err := issuer.Resolver(m.DNSResolver)
		if err != nil {
			return nil, err
		}
		lookupTXT = r.LookupTXT
	}
	if m.Login == nil {
		return nil, fmt.Errorf("external mail for %s: no Login", m.Address)
	}
	password, roots, err := m.Login(user)
	if err != nil {
		return nil, err
	}
	log := m.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds := mailbox.Credentials{Username: user, Password: password}
	sender := mailbox.NewSender(mailbox.SMTPConfig{
		Endpoint: smtpEP, Credentials: creds, TLSConfig: issuer.TLSConfig(roots), Logger: log.With("component", "ca-smtp"),
	})
	if err := sender.Prepare(ctx); err != nil {
		sender.Close()
		return nil, &issuer.MailError{Op: "log in to the submission server for the CA", URL: m.SMTP, SMTP: true, Err: err}
	}
	watcher, err := mailbox.Watch(ctx, mailbox.IMAPConfig{
		Endpoint: imapEP, Credentials: creds, Mailbox: folder,
		TLSConfig: issuer.TLSConfig(roots), Logger: log.With("component", "ca-imap"),
	})
	if err != nil {
		sender.Close()
		return nil, &issuer.MailError{Op: "open the CA's mailbox", URL: m.IMAP, Err: err}
	}
	opts.External = &sandbox.ExternalMail{Address: m.Address, Send: sender.Send}
	if lookupTXT != nil {
		opts.LookupTXT = lookupTXT
	}
	return &mailLink{watcher: watcher, sender: sender}, nil
}

// serve hands every mail that arrives in the CA's mailbox to the CA, until
// ctx ends or the mailbox fails for good.
func (x *mailLink) serve(ctx context.Context, w *sandbox.World) error {
	for {
		raw, err := x.watcher.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("the CA's mailbox: %w", err)
		}
		if err := w.Deliver(w.CAFrom, raw); err != nil {
			return fmt.Errorf("the CA's mailbox: %w", err)
		}
	}
}
