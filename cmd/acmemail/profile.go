package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/cmd/internal/termout"
	"github.com/acmemail/acmemail/keystore"
)

// profileFlags maps each obtain flag that decides an issuance to the
// profile field it sets: the one place flags become a profile. A group of
// flags that give one thing (the mail login's sources) is copied whole.
var profileFlags = []struct {
	flags []string
	copy  func(dst, src *issuer.Profile)
}{
	{[]string{"server"}, func(d, s *issuer.Profile) { d.Server = s.Server }},
	{[]string{"imap"}, func(d, s *issuer.Profile) { d.IMAP = s.IMAP }},
	{[]string{"smtp"}, func(d, s *issuer.Profile) { d.SMTP = s.SMTP }},
	{[]string{"user"}, func(d, s *issuer.Profile) { d.User = s.User }},
	{[]string{"smtp-user"}, func(d, s *issuer.Profile) { d.SMTPUser = s.SMTPUser }},
	{[]string{"mailbox"}, func(d, s *issuer.Profile) { d.Mailbox = s.Mailbox }},
	{[]string{"auth-mech"}, func(d, s *issuer.Profile) { d.AuthMech = s.AuthMech }},
	{[]string{"password-command", "password-file", "oauth-token-command"}, func(d, s *issuer.Profile) {
		d.Login.PasswordCommand, d.Login.PasswordFile, d.Login.OAuthTokenCommand = s.Login.PasswordCommand, s.Login.PasswordFile, s.Login.OAuthTokenCommand
	}},
	{[]string{"smtp-password-command", "smtp-password-file"}, func(d, s *issuer.Profile) {
		d.Login.SMTPPasswordCommand, d.Login.SMTPPasswordFile = s.Login.SMTPPasswordCommand, s.Login.SMTPPasswordFile
	}},
	{[]string{"dns-resolver"}, func(d, s *issuer.Profile) { d.DNSResolver = s.DNSResolver }},
	{[]string{"insecure"}, func(d, s *issuer.Profile) { d.Insecure = s.Insecure }},
	{[]string{"insecure-skip-mail-auth"}, func(d, s *issuer.Profile) { d.SkipMailAuth = s.SkipMailAuth }},
	{[]string{"trust-authserv-id"}, func(d, s *issuer.Profile) { d.TrustAuthservID = s.TrustAuthservID }},
	{[]string{"smime-roots"}, func(d, s *issuer.Profile) { d.SMIMERoots = s.SMIMERoots }},
	{[]string{"issuer-roots"}, func(d, s *issuer.Profile) { d.IssuerRoots = s.IssuerRoots }},
	{[]string{"key-type"}, func(d, s *issuer.Profile) { d.KeyType = s.KeyType }},
	{[]string{"usage", "split"}, func(d, s *issuer.Profile) { d.Usage, d.Split = s.Usage, s.Split }},
	{[]string{"p12-profile"}, func(d, s *issuer.Profile) { d.P12Profile = s.P12Profile }},
	{[]string{"p12-password-file"}, func(d, s *issuer.Profile) { d.P12PasswordFile = s.P12PasswordFile }},
	{[]string{"deploy-hook"}, func(d, s *issuer.Profile) { d.DeployHook = s.DeployHook }},
	{[]string{"join"}, func(d, s *issuer.Profile) { d.Join = s.Join }},
	{[]string{"contact", "no-contact"}, func(d, s *issuer.Profile) { d.Contact, d.NoContact = s.Contact, s.NoContact }},
	{[]string{"mail-wait"}, func(d, s *issuer.Profile) { d.MailWait = s.MailWait }},
	{[]string{"reply-settle"}, func(d, s *issuer.Profile) { d.ReplySettle = s.ReplySettle }},
	{[]string{"also", "also-imap", "also-smtp", "also-user", "also-password-file", "also-password-command"}, func(d, s *issuer.Profile) { d.Also = s.Also }},
}

// settingFlags names the flag (or variable) of each profile setting, for
// errors about a setting.
var settingFlags = map[string]string{
	"ca_roots": "ACMEMAIL_CA_ROOTS", "insecure_skip_mail_auth": "--insecure-skip-mail-auth",
	"also": "--also",
}

// settingFlag is the flag (or variable) of a profile setting.
func settingFlag(setting string) string {
	if name := settingFlags[setting]; name != "" {
		return name
	}
	return "--" + strings.ReplaceAll(setting, "_", "-")
}

// settingErr turns an *issuer.SettingError into a usage error that names
// the flag; other errors are returned as they are.
func settingErr(err error) error {
	var se *issuer.SettingError
	if !errors.As(err, &se) {
		return err
	}
	name := settingFlag(se.Setting)
	sep := ": "
	if strings.HasPrefix(se.Err.Error(), `"`) {
		sep = " " // --key-type "dsa": ...
	}
	var he *hintError
	if errors.As(err, &he) {
		return withHint(usageErrorf("%s%s%w", name, sep, se.Err), he.Hints...)
	}
	return usageErrorf("%s%s%w", name, sep, se.Err)
}

// cliError puts the CLI's words on an error of the issuer: the flag of a
// setting, what to do about a mail server or a CA that wants EAB.
func cliError(err error) error {
	if err == nil {
		return nil
	}
	var me *issuer.MailError
	if errors.As(err, &me) {
		if me.SMTP {
			err = withHint(err, smtpHints(me.Err)...)
		} else {
			err = withHint(err, imapHints(me.Err, me.URL)...)
		}
	}
	return settingErr(eabRequiredError(err))
}

// settle checks obtain's settings for email and builds its profile from
// them: all that obtain refuses of its flags, before it reads a secret or
// sends anything. acmemail config runs it too (checkSettings), so the two
// refuse the same settings with the same words.
func (o *obtainOptions) settle(email string, base *issuer.Profile, set func(flag string) bool) (issuer.Profile, error) {
	if err := o.ext.check(o.server); err != nil {
		return issuer.Profile{}, err
	}
	p, err := o.profile(email, base, set)
	if err != nil {
		return p, err
	}
	if o.ext.active() && len(p.Also) > 0 {
		return p, usageErrorf("--also needs IMAP and SMTP; it does not work with --manual or --pipe")
	}
	if p.Server == "sandbox" {
		if _, err := o.sandbox.Options(); err != nil {
			return p, err
		}
	}
	return p, nil
}

// profile builds the issuance profile of email from obtain's flags. For
// an address obtained before, base is what was recorded: only the flags
// that were set (on the command line, by ACMEMAIL_* variables or the
// configuration file) replace its values, so a second obtain keeps the
// hook, the --also addresses and the mailboxes it is not told to change.
func (o *obtainOptions) profile(email string, base *issuer.Profile, set func(flag string) bool) (issuer.Profile, error) {
	getenv := o.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	email, err := checkEmail(email)
	if err != nil {
		return issuer.Profile{}, err
	}
	also, err := o.also.resolve(email, getenv("HOME"))
	if err != nil {
		return issuer.Profile{}, err
	}
	f := issuer.Profile{
		Email: email, Also: also, Server: o.server, Join: o.join, Contact: o.contact, NoContact: o.noContact, IssuerRoots: o.issuerRoots,
		IMAP: o.imap, SMTP: o.smtp, User: o.user, SMTPUser: o.cred.smtpUser, Mailbox: o.mailboxName, AuthMech: o.cred.authMech,
		Login: issuer.Login{
			PasswordCommand: o.cred.passwordCommand, PasswordFile: o.passwordFile, OAuthTokenCommand: o.cred.oauthTokenCommand,
			SMTPPasswordCommand: o.cred.smtpPasswordCommand, SMTPPasswordFile: o.cred.smtpPasswordFile,
		},
		DNSResolver: o.dnsResolver, TrustAuthservID: o.trustAuthserv, SMIMERoots: o.smimeRoots,
		Insecure: o.insecure, SkipMailAuth: o.skipMailAuth,
		KeyType: parseKeyType(o.keyType), Usage: o.usage, Split: o.split, P12Profile: o.p12Profile, P12PasswordFile: o.p12PasswordFile,
		DeployHook: o.life.deployHook, MailWait: issuer.Duration(o.mailWait), ReplySettle: issuer.Duration(o.replySettle),
	}
	if f.User == email {
		f.User = ""
	}
	p := f
	if base != nil {
		p = *base
		p.Email = email
		for _, pf := range profileFlags {
			for _, name := range pf.flags {
				if set(name) {
					pf.copy(&p, &f)
					break
				}
			}
		}
		// --usage alone ends a split pair; --split alone makes one.
		if set("usage") && !set("split") {
			p.Split = false
		}
		if set("split") && !set("usage") && p.Split {
			p.Usage = "both"
		}
		// Another CA's per-server reply settle is not kept.
		if set("server") && p.Server != base.Server && !set("reply-settle") {
			p.ReplySettle = -1
		}
		// --rediscover looks for the servers again.
		if o.cred.rediscover {
			if !set("imap") {
				p.IMAP = ""
			}
			if !set("smtp") {
				p.SMTP = ""
			}
		}
		// A mail password given itself (ACMEMAIL_PASSWORD) is used in place
		// of the recorded sources, as renew uses it.
		if getenv("ACMEMAIL_PASSWORD") != "" && !set("password-command") && !set("password-file") && !set("oauth-token-command") {
			p.Login.PasswordCommand, p.Login.PasswordFile, p.Login.OAuthTokenCommand = "", "", ""
			if issuer.IsTokenMech(p.AuthMech) && !set("auth-mech") {
				p.AuthMech = "auto"
			}
		}
	}
	if path := getenv("ACMEMAIL_CA_ROOTS"); path != "" {
		p.CARoots = path
	}
	p = p.WithDefaults()
	return p, settingErr(p.Check())
}

// describeChanges says which recorded settings a new obtain changes, by
// their flags.
func describeChanges(old, p issuer.Profile) []string {
	var out []string
	value := func(v string) string {
		var s string
		switch {
		case v == "" || v == `""`:
			return "none"
		case json.Unmarshal([]byte(v), &s) == nil:
			return s
		}
		return v
	}
	for _, c := range issuer.Diff(old, p) {
		name := settingFlag(c.Setting)
		if c.Setting == "login" {
			name = "the mail login's source"
		}
		out = append(out, fmt.Sprintf("%s %s (was %s)", name, value(c.New), value(c.Old)))
	}
	return out
}

// newIssuer is the issuer of the state directory for a command.
func newIssuer(g *globals, secrets issuer.Secrets) (*issuer.Issuer, error) {
	store, err := openState(g.getenv)
	if err != nil {
		return nil, err
	}
	// What the state directory got past on its own (a pending key that
	// did not parse, moved aside) is said, as a warning.
	store.Notice = func(msg string) { fmt.Fprintf(g.stderr, "acmemail: warning: %s\n", termout.Escape(msg)) }
	return &issuer.Issuer{
		Store: store, Secrets: secrets, Logger: g.logger(), Trace: g.protocolTrace,
		Terms:      func(ctx context.Context, url string) error { return askTerms(g, url, false) },
		HookOutput: g.stderr, UserAgent: "acmemail/" + versionString(), OnOrderState: g.onOrderState,
	}, nil
}

// parseKeyType is the key type of --key-type, normalized; a value that is
// none is kept for Profile.Check to refuse.
func parseKeyType(s string) keystore.KeyType {
	if kt, err := keystore.ParseKeyType(s); err == nil {
		return kt
	}
	return keystore.KeyType(s)
}
