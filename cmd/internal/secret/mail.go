package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

// commandTimeout bounds --password-command and friends.
const commandTimeout = time.Minute

// Recorded says which of a profile's login sources are the ones recorded
// with the certificate (given to obtain, or to an earlier renew), not
// given to this run: errors about them say so.
type Recorded struct {
	Mail bool // the mail login's (password or OAuth token)
	SMTP bool // the separate submission password's
}

// MailLogin returns the IMAP and SMTP logins of p from their sources: an
// OAuth token command, or the mail password (and a separate SMTP
// password) from a command, a file, the environment, the OS keyring or a
// prompt. It never keeps a secret beyond the run.
func (s *Sources) MailLogin(ctx context.Context, p *issuer.Profile, rec Recorded) (imap, smtp mailbox.Credentials, err error) {
	m := &mailLogin{s: s, p: p, recorded: rec}
	return m.credentials(ctx)
}

// mailLogin resolves the mail logins of one profile.
type mailLogin struct {
	s        *Sources
	p        *issuer.Profile
	recorded Recorded
}

// credentials returns the IMAP and SMTP logins.
func (m *mailLogin) credentials(ctx context.Context) (imapCreds, smtpCreds mailbox.Credentials, err error) {
	p := m.p
	mech, err := mailbox.ParseMechanism(p.AuthMech)
	if err != nil {
		return imapCreds, smtpCreds, issuer.Usagef("--auth-mech: %w", err)
	}
	user, smtpUser := p.LoginUser(), p.SMTPUser
	if smtpUser == "" {
		smtpUser = user
	}
	if cmd := p.Login.OAuthTokenCommand; cmd != "" {
		if mech == mailbox.MechPlain || mech == mailbox.MechLogin {
			return imapCreds, smtpCreds, issuer.Usagef("--auth-mech %s needs a password, but --oauth-token-command gives a token", strings.ToLower(mech))
		}
		tok := m.tokenSource(cmd)
		// Run it once now: a broken helper is reported before any
		// connection is made (the token is then used for the first login).
		if _, err := tok.peek(ctx); err != nil {
			return imapCreds, smtpCreds, recordedHint(err, m.recorded.Mail, "oauth-token-command", "--oauth-token-command, --password-command, --password-file or ACMEMAIL_PASSWORD")
		}
		return mailbox.Credentials{Username: user, OAuthToken: tok.token, Mechanism: mech},
			mailbox.Credentials{Username: smtpUser, OAuthToken: tok.token, Mechanism: mech}, nil
	}
	if mech == mailbox.MechOAuthBearer || mech == mailbox.MechXOAuth2 {
		return imapCreds, smtpCreds, issuer.WithHint(issuer.Usagef("--auth-mech %s needs an OAuth2 access token", strings.ToLower(mech)),
			"give --oauth-token-command CMD, a command that prints a current access token")
	}
	pw, fromKeyring, err := m.mailSecret(ctx, false, true)
	if err != nil {
		return imapCreds, smtpCreds, err
	}
	smtpPW := pw
	// The keyring is asked for a separate SMTP password only when it is in
	// use (the mail password came from it, or there is a separate SMTP
	// user): a locked keyring must not delay every run by its timeout.
	if other, _, err := m.mailSecret(ctx, true, fromKeyring || p.SMTPUser != ""); err == nil {
		smtpPW = other
	} else if !errors.Is(err, errNoSecret) {
		return imapCreds, smtpCreds, err
	}
	return mailbox.Credentials{Username: user, Password: pw, Mechanism: mech},
		mailbox.Credentials{Username: smtpUser, Password: smtpPW, Mechanism: mech}, nil
}

// errNoSecret: no source of a separate SMTP password was given.
var errNoSecret = errors.New("no secret given")

// mailSecret returns the mail password (smtp false) or the separate SMTP
// password (smtp true; errNoSecret when none is configured) from the first
// source that has one, and whether that was the keyring (asked only with
// useKeyring).
func (m *mailLogin) mailSecret(ctx context.Context, smtp, useKeyring bool) (secret string, fromKeyring bool, err error) {
	p, s := m.p, m.s
	what, command, cmdFlag, file, fileFlag, env := "mail password for "+p.LoginUser(), p.Login.PasswordCommand, "password-command", p.Login.PasswordFile, "password-file", "ACMEMAIL_PASSWORD"
	recorded := m.recorded.Mail
	if smtp {
		user := p.SMTPUser
		if user == "" {
			user = p.LoginUser()
		}
		what, command, cmdFlag, file, fileFlag, env = "submission (SMTP) password for "+user, p.Login.SMTPPasswordCommand, "smtp-password-command", p.Login.SMTPPasswordFile, "smtp-password-file", "ACMEMAIL_SMTP_PASSWORD"
		recorded = m.recorded.SMTP
	}
	// A source recorded at obtain (renew) says so in logs and errors.
	others, from := "--"+cmdFlag+", --"+fileFlag+" or "+env, ""
	if recorded {
		from = " (recorded)"
	}
	if command != "" && file != "" {
		return "", false, issuer.Usagef("--%s and --%s both give the %s; use one", cmdFlag, fileFlag, what)
	}
	log := s.log()
	switch {
	case command != "":
		v, err := m.command(ctx, command, cmdFlag, what)
		if err == nil {
			log.Info("secret loaded", "what", what, "from", "--"+cmdFlag+from)
		}
		return v, false, recordedHint(err, recorded, cmdFlag, others)
	case file != "":
		v, err := ReadFile(file)
		if err != nil {
			return "", false, recordedHint(issuer.Usagef("read the %s from --%s%s: %w", what, fileFlag, from, err), recorded, fileFlag, others)
		}
		log.Info("secret loaded", "what", what, "from", "--"+fileFlag+from)
		return v, false, nil
	case s.getenv(env) != "":
		log.Info("secret loaded", "what", what, "from", env)
		return s.getenv(env), false, nil
	}
	kerr := ErrKeyringNotFound
	if useKeyring {
		var v string
		if v, kerr = keyringGet(p, smtp); kerr == nil {
			log.Info("secret loaded", "what", what, "from", "the OS keyring")
			return v, true, nil
		}
		log.Info("secret not in the OS keyring", "what", what, "error", kerr)
	}
	if smtp {
		return "", false, errNoSecret
	}
	v, err := Prompt(what, false)
	if errors.Is(err, ErrNoTTY) {
		keyNote := "the OS keyring has no entry for it"
		if errors.Is(kerr, ErrNoKeyring) {
			keyNote = kerr.Error()
		}
		return "", false, issuer.WithHint(issuer.Usagef("the %s is needed, and there is no terminal to ask on (%s)", what, keyNote),
			"give --password-command CMD (your password manager), --password-file FILE or ACMEMAIL_PASSWORD, or store it with 'acmemail login "+p.Email+"'")
	}
	return v, false, err
}

// keyringGet reads the keyring entry of the profile's address; failing
// that, of the spelling an older acmemail stored it under: the login's,
// when that is the address in another Unicode form (issuer.ProfileOf
// keeps a recorded address, normalized since, as the login).
func keyringGet(p *issuer.Profile, smtp bool) (string, error) {
	v, err := OpenKeyring().Get(KeyringService, KeyringUser(p.Email, smtp))
	if errors.Is(err, ErrKeyringNotFound) && p.User != "" && p.User != p.Email {
		if n, nerr := acmemail.NormalizeAddress(p.User); nerr == nil && n == p.Email {
			return OpenKeyring().Get(KeyringService, KeyringUser(p.User, smtp))
		}
	}
	return v, err
}

// command runs a secret command of the profile's login.
func (m *mailLogin) command(ctx context.Context, command, flag, what string) (string, error) {
	return m.s.Command(ctx, command, flag, what, m.p.Email, m.p.LoginUser())
}

// Command runs command with the shell (issuer.ShellCommand) and returns
// the first line it prints. flag (without its dashes) and what name it in
// errors; email and user tell it which account the secret is for
// (ACMEMAIL_EMAIL, ACMEMAIL_USER), as it may serve several. Its stderr
// goes to s.Stderr; its output is never shown, not even in errors. It
// has a minute.
func (s *Sources) Command(ctx context.Context, command, flag, what, email, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := issuer.ShellCommand(ctx, command)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, s.Stderr, nil
	cmd.Env = append(os.Environ(), "ACMEMAIL_EMAIL="+email, "ACMEMAIL_USER="+user)
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", issuer.WithHint(fmt.Errorf("--%s (for the %s) did not finish within %v", flag, what, commandTimeout),
			"run the command by hand to see what it waits for")
	case ctx.Err() != nil:
		return "", context.Cause(ctx)
	case err != nil:
		return "", issuer.WithHint(fmt.Errorf("--%s (for the %s) failed: %w", flag, what, err),
			"its error output, if any, is above; run the command by hand to check it")
	}
	line, _, _ := bytes.Cut(out.Bytes(), []byte("\n"))
	v := strings.TrimRight(string(line), "\r")
	if v == "" {
		return "", issuer.WithHint(fmt.Errorf("--%s (for the %s) printed nothing on its first line", flag, what),
			"the command must print the secret on the first line of its standard output")
	}
	return v, nil
}

// limitedBuffer keeps the first 64 KiB written to it and discards the rest.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte { return l.b.Bytes() }

// tokenSource runs the OAuth token command before each login. The first
// token, fetched when the credentials are loaded, is used once.
type tokenSource struct {
	m       *mailLogin
	command string

	mu     sync.Mutex
	cached string
}

func (m *mailLogin) tokenSource(command string) *tokenSource {
	return &tokenSource{m: m, command: command}
}

func (t *tokenSource) peek(ctx context.Context) (string, error) {
	tok, err := t.m.command(ctx, t.command, "oauth-token-command", "OAuth2 access token for "+t.m.p.LoginUser())
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	t.cached = tok
	t.mu.Unlock()
	return tok, nil
}

func (t *tokenSource) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	tok := t.cached
	t.cached = ""
	t.mu.Unlock()
	if tok != "" {
		return tok, nil
	}
	return t.m.command(ctx, t.command, "oauth-token-command", "OAuth2 access token for "+t.m.p.LoginUser())
}

// SandboxLogin creates p's mailbox in the in-process sandbox w and
// returns its login. A password or token the user gave explicitly
// (command, file, environment) becomes the sandbox user's, so a test can
// know it; otherwise they are random. With mode other than
// sandbox.OAuthOff (--sandbox-oauth) the run logs in with a token.
func (s *Sources) SandboxLogin(ctx context.Context, p *issuer.Profile, w *sandbox.World, mode sandbox.OAuthMode) (mailbox.Credentials, error) {
	m := &mailLogin{s: s, p: p}
	pw := issuer.RandomToken()
	if p.Login.PasswordCommand != "" || p.Login.PasswordFile != "" || s.getenv("ACMEMAIL_PASSWORD") != "" {
		v, _, err := m.mailSecret(ctx, false, false)
		if err != nil {
			return mailbox.Credentials{}, err
		}
		pw = v
	}
	if err := w.AddUser(p.Email, pw); err != nil {
		return mailbox.Credentials{}, fmt.Errorf("sandbox: add a mailbox for %s: %w", p.Email, err)
	}
	creds := mailbox.Credentials{Username: p.Email, Password: pw}
	cmd := p.Login.OAuthTokenCommand
	if cmd != "" && mode == sandbox.OAuthOff {
		return creds, issuer.Usagef("--oauth-token-command with the sandbox needs --sandbox-oauth also or only")
	}
	if mode != sandbox.OAuthOff {
		var tok string
		var source func(context.Context) (string, error)
		if cmd != "" {
			ts := m.tokenSource(cmd)
			var err error
			if tok, err = ts.peek(ctx); err != nil {
				return creds, err
			}
			source = ts.token
		} else {
			tok = issuer.RandomToken()
			source = func(context.Context) (string, error) { return tok, nil }
		}
		if err := w.AddOAuthToken(p.Email, tok); err != nil {
			return creds, fmt.Errorf("sandbox: %w", err)
		}
		if mode == sandbox.OAuthOnly || cmd != "" {
			creds = mailbox.Credentials{Username: p.Email, OAuthToken: source}
		}
	}
	return creds, nil
}

// recordedHint adds to an error about a login source that was recorded
// with the certificate (not given to this run) where it came from and what
// to do.
func recordedHint(err error, recorded bool, flag, others string) error {
	if err == nil || !recorded {
		return err
	}
	return issuer.WithHint(err, "renew used the --"+flag+" recorded with the certificate (given to obtain, or to an earlier renew; see acmemail renew --help); give renew "+others+" to use another source, which is then recorded instead")
}
