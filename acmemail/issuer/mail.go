package issuer

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"

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
func (r *run) openMailbox(ctx context.Context, imapURL, smtpURL string, imapCreds, smtpCreds mailbox.Credentials, who string) (*mailbox.Mailbox, error) {
	ic, sc, err := MailConfigs(&r.p, r.pool, r.log, r.is.Trace, imapURL, smtpURL, imapCreds, smtpCreds, who)
	if err != nil {
		return nil, err
	}
	var watcher *mailbox.Watcher
	if t := r.together; t != nil {
		// One of many renewals: bounded logins, and the mailbox's
		// connection shared with the others that read it.
		t.loginLimits(&ic, &sc)
		w, release, err := t.watch(ctx, t.mailboxKey(&ic, &r.p, fmt.Sprintf("%p", r.pool)), ic, t.othersMail(r.p.Emails()))
		if err != nil {
			return nil, &MailError{Op: "open the mailbox", URL: imapURL, Err: err}
		}
		watcher = w
		r.closers = append(r.closers, release)
	} else {
		w, err := mailbox.Watch(ctx, ic)
		if err != nil {
			return nil, &MailError{Op: "open the mailbox", URL: imapURL, Err: err}
		}
		watcher = w
		r.closers = append(r.closers, func() { w.Close() })
	}
	if who != "" {
		r.prog.Printf("watching %s on %s for %s", r.p.Mailbox, ic.Endpoint.Host, who)
	} else {
		r.prog.Printf("watching %s on %s", r.p.Mailbox, ic.Endpoint.Host)
	}
	sender := mailbox.NewSender(sc)
	r.closers = append(r.closers, func() { sender.Close() })
	if err := sender.Prepare(ctx); err != nil {
		return nil, &MailError{Op: "log in to the submission server", URL: smtpURL, SMTP: true, Err: err}
	}
	return &mailbox.Mailbox{Watcher: watcher, Sender: sender}, nil
}

// openMail opens the profile's mailbox and those of its --also addresses
// and returns what the order flow reads and sends mail with.
func (r *run) openMail(ctx context.Context) (acmemail.Mail, error) {
	p := &r.p
	imapCreds, smtpCreds, err := r.secrets.MailLogin(ctx, p)
	if err != nil {
		return nil, err
	}
	primary, err := r.openMailbox(ctx, p.IMAP, p.SMTP, imapCreds, smtpCreds, "")
	if err != nil {
		return nil, err
	}
	others := map[string]*mailbox.Mailbox{}
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
		m, err := r.openMailbox(ctx, a.IMAP, a.SMTP, creds, creds, a.User)
		if err != nil {
			return nil, fmt.Errorf("the mailbox of %s: %w", a.Email, err)
		}
		others[a.Email] = m
	}
	if len(others) == 0 {
		return primary, nil
	}
	// Mail from any of them; replies through the From address's server.
	multi := mailbox.NewMulti(primary, others)
	r.closers = append(r.closers, func() { multi.Close() })
	return multi, nil
}

var (
	_ acmemail.MailExpecter = (*mailbox.Mailbox)(nil)
	_ acmemail.MailExpecter = (*mailbox.Multi)(nil)
)
