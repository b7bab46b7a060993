package main

import (
	"strings"

	"github.com/acmemail/acmemail/keystore"
)

// loginSources say where a mail login comes from: the commands and files
// of credFlags. They are recorded with the certificate, so that renew (from
// cron, without the flags) logs in the way obtain did, like the deploy
// hook. They never hold a secret: a command is recorded, not what it
// prints; a file's path, not what it holds.
type loginSources struct {
	passwordCommand, passwordFile, oauthTokenCommand string // the mail login
	smtpPasswordCommand, smtpPasswordFile            string // a separate submission password
}

func (l loginSources) hasMail() bool {
	return l.passwordCommand != "" || l.passwordFile != "" || l.oauthTokenCommand != ""
}

func (l loginSources) hasSMTP() bool {
	return l.smtpPasswordCommand != "" || l.smtpPasswordFile != ""
}

// sources returns the login sources of the flags.
func (c credFlags) sources() loginSources {
	return loginSources{
		passwordCommand: c.passwordCommand, passwordFile: c.passwordFile, oauthTokenCommand: c.oauthTokenCommand,
		smtpPasswordCommand: c.smtpPasswordCommand, smtpPasswordFile: c.smtpPasswordFile,
	}
}

// recordLogin adds to what renew repeats where the login came from: the
// sources this run used, and where it used none that can be recorded (the
// secret came from ACMEMAIL_PASSWORD, say), the ones recorded before.
func (id *identity) recordLogin(st *keystore.Settings) {
	l := id.cred.sources()
	if !l.hasMail() {
		l.passwordCommand, l.passwordFile, l.oauthTokenCommand = id.keptLogin.passwordCommand, id.keptLogin.passwordFile, id.keptLogin.oauthTokenCommand
	}
	if !l.hasSMTP() {
		l.smtpPasswordCommand, l.smtpPasswordFile = id.keptLogin.smtpPasswordCommand, id.keptLogin.smtpPasswordFile
	}
	// Files are recorded by absolute path: cron runs elsewhere.
	st.PasswordCommand, st.PasswordFile, st.OAuthTokenCommand = l.passwordCommand, absPath(l.passwordFile), l.oauthTokenCommand
	st.SMTPPasswordCommand, st.SMTPPasswordFile = l.smtpPasswordCommand, absPath(l.smtpPasswordFile)
}

// restoreLogin is the inverse of recordLogin, for renew: the recorded
// sources are kept aside until renewCred knows what renew was given.
func (id *identity) restoreLogin(st *keystore.Settings) {
	id.keptLogin = loginSources{
		passwordCommand: st.PasswordCommand, passwordFile: st.PasswordFile, oauthTokenCommand: st.OAuthTokenCommand,
		smtpPasswordCommand: st.SMTPPasswordCommand, smtpPasswordFile: st.SMTPPasswordFile,
	}
}

// renewCred returns the login settings of a renewal (and forgets a
// recorded submission password that does not belong to them): what renew was given
// (flags, ACMEMAIL_* variables, the configuration file) wins; where it was
// given nothing, what obtain recorded is used. The mail login and a
// separate submission password are decided each on its own: a mail
// password given to renew (a source, or ACMEMAIL_PASSWORD) replaces all
// recorded mail-login sources, password and token alike.
func (id *identity) renewCred(given credFlags, getenv func(string) string) credFlags {
	c := given
	rec := id.keptLogin
	givenMail := given.sources().hasMail() || getenv("ACMEMAIL_PASSWORD") != ""
	if !givenMail && rec.hasMail() {
		c.passwordCommand, c.passwordFile, c.oauthTokenCommand = rec.passwordCommand, rec.passwordFile, rec.oauthTokenCommand
		c.recordedMail = true
	}
	// The recorded submission password is that of the recorded submission
	// login: another --smtp-user given to renew does not get it, and it is
	// not recorded again (recordLogin) beside the new login.
	sameSMTPUser := given.smtpUser == "" || given.smtpUser == id.cred.smtpUser
	if !sameSMTPUser {
		id.keptLogin.smtpPasswordCommand, id.keptLogin.smtpPasswordFile = "", ""
	}
	if !given.sources().hasSMTP() && getenv("ACMEMAIL_SMTP_PASSWORD") == "" && rec.hasSMTP() && sameSMTPUser {
		c.smtpPasswordCommand, c.smtpPasswordFile = rec.smtpPasswordCommand, rec.smtpPasswordFile
		c.recordedSMTP = true
	}
	if c.smtpUser == "" {
		c.smtpUser = id.cred.smtpUser
	}
	if c.authMech == "" || c.authMech == "auto" {
		c.authMech = id.cred.authMech
		// A recorded mechanism that needs a token does not fit a password
		// given to renew, nor one that needs a password a token.
		token := isTokenMech(c.authMech)
		if givenMail && !strings.EqualFold(c.authMech, "auto") && token != (given.oauthTokenCommand != "") {
			c.authMech = "auto"
		}
	}
	return c
}

func isTokenMech(m string) bool {
	return strings.EqualFold(m, "oauthbearer") || strings.EqualFold(m, "xoauth2")
}

// recordedHint adds to an error about a login source that was recorded
// at obtain (not given to this run) where it came from and what to do.
func recordedHint(err error, recorded bool, flag, others string) error {
	if err == nil || !recorded {
		return err
	}
	return withHint(err, "renew used the --"+flag+" recorded with the certificate (given to obtain, or to an earlier renew; see acmemail renew --help); give renew "+others+" to use another source, which is then recorded instead")
}
