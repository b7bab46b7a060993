package secret

import (
	"context"
	"strings"
	"sync"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/mailbox"
)

// Run gives one run of a command the secrets it needs (it is an
// issuer.Secrets): the mail login from its sources, the passwords of
// --also mailboxes, the PKCS#12 password; one prompt at a time, the
// PKCS#12 password read once.
type Run struct {
	Sources *Sources
	// SandboxLogin, if set, is the in-process sandbox's login (made, not
	// read; see Sources.SandboxLogin).
	SandboxLogin *mailbox.Credentials
	// SandboxAlso holds the passwords of the sandbox mailboxes of --also
	// addresses (--also-imap ADDR=sandbox), by lowercased address.
	SandboxAlso map[string]string

	mu    sync.Mutex // one prompt at a time
	p12PW string
}

// MailLogin returns the IMAP and SMTP logins of p.
func (r *Run) MailLogin(ctx context.Context, p *issuer.Profile) (mailbox.Credentials, mailbox.Credentials, error) {
	return r.mailLogin(ctx, p, Recorded{})
}

func (r *Run) mailLogin(ctx context.Context, p *issuer.Profile, rec Recorded) (mailbox.Credentials, mailbox.Credentials, error) {
	if r.SandboxLogin != nil {
		mech, err := mailbox.ParseMechanism(p.AuthMech)
		if err != nil {
			return mailbox.Credentials{}, mailbox.Credentials{}, issuer.Usagef("--auth-mech: %w", err)
		}
		c := *r.SandboxLogin
		c.Mechanism = mech
		return c, c, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Sources.MailLogin(ctx, p, rec)
}

// AlsoPassword returns the mail password of a, an --also address with a
// mailbox of its own: from its command or file, else a prompt.
func (r *Run) AlsoPassword(ctx context.Context, p *issuer.Profile, a issuer.Also) (string, error) {
	if pw, ok := r.SandboxAlso[strings.ToLower(a.Email)]; ok {
		return pw, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case a.PasswordCommand != "":
		return r.Sources.Command(ctx, a.PasswordCommand, "also-password-command", "mail password for "+a.User, a.Email, a.User)
	case a.PasswordFile != "":
		pw, err := ReadFile(a.PasswordFile)
		if err != nil {
			return "", issuer.Usagef("read the mail password for %s from --also-password-file: %w", a.User, err)
		}
		return pw, nil
	}
	pw, err := r.Sources.Get(Spec{What: "mail password for " + a.User, Flag: "also-password-file " + a.Email + "=FILE"})
	if err != nil {
		return "", issuer.WithHint(err, "give obtain --also-password-file "+a.Email+"=FILE or --also-password-command "+a.Email+"=CMD: renew, too, reads the password from the one obtain recorded")
	}
	return pw, nil
}

// P12Password returns the password of the PKCS#12 files: from p's
// --p12-password-file, ACMEMAIL_P12_PASSWORD or a prompt (asked twice),
// read once for the run.
func (r *Run) P12Password(ctx context.Context, p *issuer.Profile) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p12PW != "" {
		return r.p12PW, nil
	}
	pw, err := r.Sources.Get(Spec{What: "PKCS#12 password", EnvVar: "ACMEMAIL_P12_PASSWORD", File: p.P12PasswordFile, Flag: "p12-password-file", Confirm: true})
	if err != nil {
		return "", err
	}
	r.p12PW = pw
	return pw, nil
}

// ForAddress returns the secrets of one address of a run (renew), whose
// login sources rec says were recorded with its certificate: errors about
// those say so. It shares r's prompt lock and PKCS#12 password.
func (r *Run) ForAddress(rec Recorded) issuer.Secrets {
	return &addressRun{Run: r, rec: rec}
}

type addressRun struct {
	*Run
	rec Recorded
}

func (a *addressRun) MailLogin(ctx context.Context, p *issuer.Profile) (mailbox.Credentials, mailbox.Credentials, error) {
	return a.mailLogin(ctx, p, Recorded{Mail: a.rec.Mail && p.Login.HasMail(), SMTP: a.rec.SMTP && p.Login.HasSMTP()})
}
