package main

import (
	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/cmd/internal/secret"
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

// secretSources is where the command's secrets come from.
func (g *globals) secretSources() *secret.Sources {
	return &secret.Sources{Getenv: g.getenv, Stderr: g.stderr, Logger: g.logger()}
}
