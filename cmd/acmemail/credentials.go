package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
)

// credFlags say where the mail login comes from. None of them holds a
// secret: passwords and tokens come from commands, files, the environment,
// the OS keyring or the terminal.
type credFlags struct {
	passwordFile        string
	passwordCommand     string
	smtpUser            string
	smtpPasswordFile    string
	smtpPasswordCommand string
	oauthTokenCommand   string
	authMech            string
	rediscover          bool
	// The mail-login and submission-password sources are the ones recorded
	// when the certificate was obtained (renew), not given to this run.
	recordedMail, recordedSMTP bool
}

func (c *credFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&c.passwordCommand, "password-command", "", "run this shell command and use the first line it prints as the mail password (like mbsync's PassCmd)")
	f.StringVar(&c.smtpUser, "smtp-user", "", "login name for the submission server, if it differs from --user")
	f.StringVar(&c.smtpPasswordFile, "smtp-password-file", "", "read a separate submission (SMTP) password from the first line of this file")
	f.StringVar(&c.smtpPasswordCommand, "smtp-password-command", "", "run this shell command for a separate submission (SMTP) password")
	f.StringVar(&c.oauthTokenCommand, "oauth-token-command", "", "log in with OAuth2 (OAUTHBEARER or XOAUTH2): run this shell command for an access token before each login")
	f.StringVar(&c.authMech, "auth-mech", "auto", "login mechanism: auto, plain, login, oauthbearer or xoauth2")
	f.BoolVar(&c.rediscover, "rediscover", false, "look up the mail servers again instead of using the ones remembered for EMAIL")
}

const credentialsHelp = `The mail password comes from, in this order: --password-command CMD (run with
sh -c, cmd.exe /c on Windows; the first line of its output, like mbsync's PassCmd; its stderr is shown),
--password-file FILE (its first line), ACMEMAIL_PASSWORD, the OS keyring (stored by
'acmemail login EMAIL'), or a prompt on the terminal. If the submission server needs
another login, give --smtp-user and --smtp-password-command, --smtp-password-file or
ACMEMAIL_SMTP_PASSWORD (else the keyring entry of 'acmemail login --smtp', looked up
when the mail password came from the keyring or --smtp-user is given; else the mail
password). For providers that accept only OAuth2 (Gmail, Microsoft 365), give
--oauth-token-command CMD: any helper that prints a current access token (oama,
mutt_oauth2.py, a password manager); it runs before each login, and OAUTHBEARER or
XOAUTH2 is chosen by what the server offers (--auth-mech forces one); the password
is then not used.

obtain records which of these sources it was given, for acmemail renew to use again
unattended: the command as given, or the file's absolute path (also those of
--also-password-file and --also-password-command), in meta.json in the state directory (0700); never a password
or token, nor what a command prints. So keep the secret itself out of the command
(it would show in ps too), and name files in it by absolute path: renew runs it from
its own working directory. A source given to renew wins; see acmemail renew --help.`

// secretCommandTimeout bounds --password-command and friends.
const secretCommandTimeout = time.Minute

// mailLogin resolves the mail logins of one run of a profile from their
// sources: an OAuth token command, or the mail password (and a separate
// SMTP password) from a command, a file, the environment, the OS keyring
// or a prompt. It never keeps a secret beyond the run.
type mailLogin struct {
	g   *globals
	p   *issuer.Profile
	log *slog.Logger
	// The mail-login and submission-password sources are the ones recorded
	// with the certificate (renew), not given to this run.
	recordedMail, recordedSMTP bool
}

// credentials returns the IMAP and SMTP logins.
func (m *mailLogin) credentials(ctx context.Context) (imapCreds, smtpCreds mailbox.Credentials, err error) {
	p := m.p
	mech, err := mailbox.ParseMechanism(p.AuthMech)
	if err != nil {
		return imapCreds, smtpCreds, usageErrorf("--auth-mech: %w", err)
	}
	user, smtpUser := p.LoginUser(), p.SMTPUser
	if smtpUser == "" {
		smtpUser = user
	}
	if cmd := p.Login.OAuthTokenCommand; cmd != "" {
		if mech == mailbox.MechPlain || mech == mailbox.MechLogin {
			return imapCreds, smtpCreds, usageErrorf("--auth-mech %s needs a password, but --oauth-token-command gives a token", strings.ToLower(mech))
		}
		tok := m.tokenSource(cmd)
		// Run it once now: a broken helper is reported before any
		// connection is made (the token is then used for the first login).
		if _, err := tok.peek(ctx); err != nil {
			return imapCreds, smtpCreds, recordedHint(err, m.recordedMail, "oauth-token-command", "--oauth-token-command, --password-command, --password-file or ACMEMAIL_PASSWORD")
		}
		return mailbox.Credentials{Username: user, OAuthToken: tok.token, Mechanism: mech},
			mailbox.Credentials{Username: smtpUser, OAuthToken: tok.token, Mechanism: mech}, nil
	}
	if mech == mailbox.MechOAuthBearer || mech == mailbox.MechXOAuth2 {
		return imapCreds, smtpCreds, withHint(usageErrorf("--auth-mech %s needs an OAuth2 access token", strings.ToLower(mech)),
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
	p, g, s := m.p, m.g, m
	what, command, cmdFlag, file, fileFlag, env := "mail password for "+p.LoginUser(), p.Login.PasswordCommand, "password-command", p.Login.PasswordFile, "password-file", "ACMEMAIL_PASSWORD"
	recorded := m.recordedMail
	if smtp {
		user := p.SMTPUser
		if user == "" {
			user = p.LoginUser()
		}
		what, command, cmdFlag, file, fileFlag, env = "submission (SMTP) password for "+user, p.Login.SMTPPasswordCommand, "smtp-password-command", p.Login.SMTPPasswordFile, "smtp-password-file", "ACMEMAIL_SMTP_PASSWORD"
		recorded = m.recordedSMTP
	}
	// A source recorded at obtain (renew) says so in logs and errors.
	others, from := "--"+cmdFlag+", --"+fileFlag+" or "+env, ""
	if recorded {
		from = " (recorded)"
	}
	if command != "" && file != "" {
		return "", false, usageErrorf("--%s and --%s both give the %s; use one", cmdFlag, fileFlag, what)
	}
	switch {
	case command != "":
		v, err := s.runSecretCommand(ctx, command, cmdFlag, what)
		if err == nil {
			s.log.Info("secret loaded", "what", what, "from", "--"+cmdFlag+from)
		}
		return v, false, recordedHint(err, recorded, cmdFlag, others)
	case file != "":
		v, err := readSecretFile(file)
		if err != nil {
			return "", false, recordedHint(usageErrorf("read the %s from --%s%s: %w", what, fileFlag, from, err), recorded, fileFlag, others)
		}
		s.log.Info("secret loaded", "what", what, "from", "--"+fileFlag+from)
		return v, false, nil
	case g.getenv(env) != "":
		s.log.Info("secret loaded", "what", what, "from", env)
		return g.getenv(env), false, nil
	}
	kerr := errKeyringNotFound
	if useKeyring {
		var v string
		if v, kerr = openKeyring().Get(keyringService, keyringUser(p.Email, smtp)); kerr == nil {
			s.log.Info("secret loaded", "what", what, "from", "the OS keyring")
			return v, true, nil
		}
		s.log.Info("secret not in the OS keyring", "what", what, "error", kerr)
	}
	if smtp {
		return "", false, errNoSecret
	}
	v, err := promptTTY(what, false)
	if errors.Is(err, errNoTTY) {
		keyNote := "the OS keyring has no entry for it"
		if errors.Is(kerr, errNoKeyring) {
			keyNote = kerr.Error()
		}
		return "", false, withHint(usageErrorf("the %s is needed, and there is no terminal to ask on (%s)", what, keyNote),
			"give --password-command CMD (your password manager), --password-file FILE or ACMEMAIL_PASSWORD, or store it with 'acmemail login "+p.Email+"'")
	}
	return v, false, err
}

// runSecretCommand runs command with the shell (shellCommand) and returns the first line it
// prints. Its stderr goes to ours (a password manager may ask there); its
// output is never shown, not even in errors.
func (m *mailLogin) runSecretCommand(ctx context.Context, command, flag, what string) (string, error) {
	return runSecretCommand(ctx, m.g, command, flag, what, m.p.Email, m.p.LoginUser())
}

func runSecretCommand(ctx context.Context, g *globals, command, flag, what, email, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, secretCommandTimeout)
	defer cancel()
	cmd := issuer.ShellCommand(ctx, command)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, g.stderr, nil
	// The command may serve several accounts: tell it which one.
	cmd.Env = append(os.Environ(), "ACMEMAIL_EMAIL="+email, "ACMEMAIL_USER="+user)
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return "", withHint(fmt.Errorf("--%s (for the %s) did not finish within %v", flag, what, secretCommandTimeout),
			"run the command by hand to see what it waits for")
	case ctx.Err() != nil:
		return "", context.Cause(ctx)
	case err != nil:
		return "", withHint(fmt.Errorf("--%s (for the %s) failed: %w", flag, what, err),
			"its error output, if any, is above; run the command by hand to check it")
	}
	line, _, _ := bytes.Cut(out.Bytes(), []byte("\n"))
	v := strings.TrimRight(string(line), "\r")
	if v == "" {
		return "", withHint(fmt.Errorf("--%s (for the %s) printed nothing on its first line", flag, what),
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
	s       *mailLogin
	command string

	mu     sync.Mutex
	cached string
}

func (s *mailLogin) tokenSource(command string) *tokenSource {
	return &tokenSource{s: s, command: command}
}

func (t *tokenSource) peek(ctx context.Context) (string, error) {
	tok, err := t.s.runSecretCommand(ctx, t.command, "oauth-token-command", "OAuth2 access token for "+t.s.p.LoginUser())
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
	return t.s.runSecretCommand(ctx, t.command, "oauth-token-command", "OAuth2 access token for "+t.s.p.LoginUser())
}

// sandboxLogin creates the address's mailbox in the in-process sandbox
// and returns its login. A password or token the user gave explicitly
// (command, file, environment) becomes the sandbox user's, so a test can
// know it; otherwise they are random. With --sandbox-oauth the run logs
// in with a token.
func (m *mailLogin) sandboxLogin(ctx context.Context, w *sandbox.World, mode sandbox.OAuthMode) (mailbox.Credentials, error) {
	p := m.p
	pw := issuer.RandomToken()
	if p.Login.PasswordCommand != "" || p.Login.PasswordFile != "" || m.g.getenv("ACMEMAIL_PASSWORD") != "" {
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
		return creds, usageErrorf("--oauth-token-command with the sandbox needs --sandbox-oauth also or only")
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
	return withHint(err, "renew used the --"+flag+" recorded with the certificate (given to obtain, or to an earlier renew; see acmemail renew --help); give renew "+others+" to use another source, which is then recorded instead")
}
