package issuer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Plan is what acmemail renew will do for a certificate, from what
// obtain (or the last renew) recorded with it in meta.json: show prints
// it under "renew repeats:", show --json and list --json as "renew". Like
// the record it comes from it holds commands and file paths, never a
// secret. Sources given to renew itself (flags, ACMEMAIL_* variables, the
// configuration file) win over it; show does not know them.
type Plan struct {
	// Recorded is false for a certificate whose meta.json says nothing of
	// how it was obtained (an older acmemail): renew fails for it until
	// obtain runs once more.
	Recorded bool `json:"recorded"`
	// Skip says why renew leaves the certificate alone, if it does.
	Skip     string `json:"skip,omitempty"`
	Server   string `json:"server,omitempty"` // --server as given to obtain
	IMAP     string `json:"imap,omitempty"`
	SMTP     string `json:"smtp,omitempty"`
	User     string `json:"user,omitempty"`      // the mail login
	SMTPUser string `json:"smtp_user,omitempty"` // a separate submission login
	Mailbox  string `json:"mailbox,omitempty"`   // the IMAP folder watched
	AuthMech string `json:"auth_mech,omitempty"` // only when not auto
	// Login is where the mail password or token comes from; SMTPLogin a
	// separate submission password (only with one, or a separate login).
	Login      *LoginPlan `json:"login,omitempty"`
	SMTPLogin  *LoginPlan `json:"smtp_login,omitempty"`
	Also       []AlsoPlan `json:"also,omitempty"`
	DeployHook string     `json:"deploy_hook,omitempty"`
	KeyType    string     `json:"key_type,omitempty"` // a new key of this type each renewal, unless renew --reuse-key
	Usage      string     `json:"usage,omitempty"`
	// Split: the encryption certificate of an obtain --split pair is
	// renewed along with this one.
	Split      bool   `json:"split,omitempty"`
	P12Profile string `json:"p12_profile,omitempty"`
	// PKCS12 is the file renew writes (obtain's --out is not written again).
	PKCS12          string   `json:"pkcs12,omitempty"`
	IssuerRoots     string   `json:"issuer_roots,omitempty"`
	CARoots         string   `json:"ca_roots,omitempty"`
	SMIMERoots      string   `json:"smime_roots,omitempty"`
	TrustAuthservID string   `json:"trust_authserv_id,omitempty"`
	DNSResolver     string   `json:"dns_resolver,omitempty"`
	Join            string   `json:"join,omitempty"`
	MailWait        string   `json:"mail_wait,omitempty"`
	ReplySettle     string   `json:"reply_settle,omitempty"`
	Contact         []string `json:"contact,omitempty"`
	Insecure        bool     `json:"insecure,omitempty"`
	SkipMailAuth    bool     `json:"insecure_skip_mail_auth,omitempty"`
	// P12PasswordFile is the file renew reads the PKCS#12 password from:
	// recorded, or given to renew by the configuration file.
	P12PasswordFile string `json:"p12_password_file,omitempty"`
	// Config lists the renew flags the configuration file sets for the
	// address; those above (login sources, deploy hook, PKCS#12 profile)
	// are already shown in place of the recorded ones.
	Config []ConfigSetting `json:"config,omitempty"`
	// Warnings are what show can tell offline will make renew fail or
	// stop to ask (a recorded file that is gone, no recorded login).
	Warnings []string `json:"warnings,omitempty"`
}

// LoginPlan is where renew gets a mail password or token.
type LoginPlan struct {
	// Source is password-command, password-file or oauth-token-command
	// (recorded); not-recorded (renew takes ACMEMAIL_PASSWORD, else the
	// OS keyring, else asks on the terminal; for a submission password
	// ACMEMAIL_SMTP_PASSWORD, the keyring, else the mail password); for
	// an --also mailbox primary (the primary's password, same login) or
	// prompt (asks on the terminal).
	Source  string `json:"source"`
	Command string `json:"command,omitempty"`
	File    string `json:"file,omitempty"`
	// From is the configuration file's line that gives it to renew (in
	// place of the recorded one); "" for what was recorded.
	From string `json:"from,omitempty"`
}

// AlsoPlan is how renew reads and answers the challenge of one --also
// address.
type AlsoPlan struct {
	Email string `json:"email"`
	// Mailbox is "own" (the recorded servers and login below) or
	// "primary" (read from the primary mailbox, sent through its server).
	Mailbox string     `json:"mailbox"`
	IMAP    string     `json:"imap,omitempty"`
	SMTP    string     `json:"smtp,omitempty"`
	User    string     `json:"user,omitempty"`
	Login   *LoginPlan `json:"login,omitempty"`
}

// PlanOf is what renew will repeat from the profile p (and whether the
// files it names are there); pkcs12 is the file renew writes, split
// whether the certificate has an encryption partner, revoked the reason of
// its revocation (nil when it is not revoked).
func PlanOf(prof Profile, pkcs12 string, split bool, revoked *string) *Plan {
	p := &Plan{
		Recorded: true, Server: prof.Server, IMAP: prof.IMAP, SMTP: prof.SMTP, User: prof.LoginUser(), SMTPUser: prof.SMTPUser,
		Mailbox: prof.Mailbox, DeployHook: prof.DeployHook, KeyType: string(prof.KeyType), Usage: prof.Usage, Split: split || prof.Split,
		P12Profile: prof.P12Profile, PKCS12: pkcs12, IssuerRoots: prof.IssuerRoots, CARoots: prof.CARoots, SMIMERoots: prof.SMIMERoots,
		TrustAuthservID: prof.TrustAuthservID, DNSResolver: prof.DNSResolver, Join: prof.Join, MailWait: prof.MailWait.D().String(),
		ReplySettle: prof.ReplySettle.D().String(), Contact: prof.Contact, Insecure: prof.Insecure, SkipMailAuth: prof.SkipMailAuth,
		P12PasswordFile: prof.P12PasswordFile,
	}
	if !strings.EqualFold(prof.AuthMech, "auto") {
		p.AuthMech = prof.AuthMech
	}
	switch {
	case prof.Server == "sandbox":
		p.Skip = "its certificate came from an in-process sandbox, which no longer runs"
	case revoked != nil:
		why := ""
		if *revoked != "" {
			why = " (" + *revoked + ")"
		}
		p.Skip = "its certificate was revoked" + why + "; only renew --force renews it"
	}
	missing := func(what, path string) { p.CheckFile("the recorded "+what, path) }
	l := prof.Login
	switch {
	case l.OAuthTokenCommand != "":
		p.Login = &LoginPlan{Source: "oauth-token-command", Command: l.OAuthTokenCommand}
	case l.PasswordCommand != "":
		p.Login = &LoginPlan{Source: "password-command", Command: l.PasswordCommand}
	case l.PasswordFile != "":
		p.Login = &LoginPlan{Source: "password-file", File: l.PasswordFile}
		missing("--password-file", l.PasswordFile)
	default:
		p.Login = &LoginPlan{Source: "not-recorded"}
		if IsTokenMech(prof.AuthMech) {
			p.Warnings = append(p.Warnings, "--auth-mech "+strings.ToLower(prof.AuthMech)+" is recorded but no --oauth-token-command: give renew one")
		} else {
			p.Warnings = append(p.Warnings, "no source of the mail password is recorded: renew logs in only if it is given one (ACMEMAIL_PASSWORD, --password-command, --password-file) or the OS keyring has it (acmemail login "+prof.Email+"); cron has no terminal to ask on")
		}
	}
	switch {
	case l.SMTPPasswordCommand != "":
		p.SMTPLogin = &LoginPlan{Source: "password-command", Command: l.SMTPPasswordCommand}
	case l.SMTPPasswordFile != "":
		p.SMTPLogin = &LoginPlan{Source: "password-file", File: l.SMTPPasswordFile}
		missing("--smtp-password-file", l.SMTPPasswordFile)
	case prof.SMTPUser != "" && l.OAuthTokenCommand == "":
		p.SMTPLogin = &LoginPlan{Source: "not-recorded"}
	}
	for _, a := range prof.Also {
		if !a.Own() {
			p.Also = append(p.Also, AlsoPlan{Email: a.Email, Mailbox: "primary"})
			continue
		}
		ap := AlsoPlan{Email: a.Email, Mailbox: "own", IMAP: a.IMAP, SMTP: a.SMTP, User: a.User}
		switch {
		case a.PasswordCommand != "":
			ap.Login = &LoginPlan{Source: "password-command", Command: a.PasswordCommand}
		case a.PasswordFile != "":
			ap.Login = &LoginPlan{Source: "password-file", File: a.PasswordFile}
			missing("--also-password-file of "+a.Email, a.PasswordFile)
		case a.User == prof.LoginUser():
			ap.Login = &LoginPlan{Source: "primary"}
		default:
			ap.Login = &LoginPlan{Source: "prompt"}
			p.Warnings = append(p.Warnings, "no source of the mail password of "+a.Email+" is recorded: renew asks for it on the terminal, which cron does not have; run obtain again with --also-password-command or --also-password-file "+a.Email+"=...")
		}
		p.Also = append(p.Also, ap)
	}
	missing("--issuer-roots", prof.IssuerRoots)
	missing("ACMEMAIL_CA_ROOTS", prof.CARoots)
	missing("--smime-roots", prof.SMIMERoots)
	missing("--p12-password-file", prof.P12PasswordFile)
	if prof.Server == "sandbox" {
		p.Warnings = nil // renew never logs in for it
	}
	return p
}

// NotRecordedPlan is the plan of a certificate whose meta.json says
// nothing of how it was obtained.
func NotRecordedPlan(email string) *Plan {
	return &Plan{Warnings: []string{"nothing is recorded of how this certificate was obtained (an older acmemail): renew fails for it; run acmemail obtain " + email + " once more"}}
}

// ConfigSetting is a renew flag that a configuration file sets for an
// address.
type ConfigSetting struct {
	Flag  string `json:"flag"`
	Value string `json:"value"`
	From  string `json:"from"` // file:line
}

// checkFile adds a warning when the file at path (absolute) does not
// exist; what names it.
func (p *Plan) CheckFile(what, path string) {
	if path == "" || !filepath.IsAbs(path) {
		return
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s %s does not exist", what, path))
	}
}

// ApplyConfig puts what a configuration file gives renew in place of
// what was recorded: the mail login's and the submission password's
// sources, the deploy hook, the PKCS#12 profile (renew uses them, and
// records a given login source instead of the old one).
func (p *Plan) ApplyConfig(cfg []ConfigSetting) {
	if len(cfg) == 0 {
		return
	}
	p.Config = cfg
	get := func(flag string) *ConfigSetting {
		for i := range cfg {
			if cfg[i].Flag == flag && cfg[i].Value != "" {
				return &cfg[i]
			}
		}
		return nil
	}
	dropWarning := func(prefix string) {
		var kept []string
		for _, w := range p.Warnings {
			if !strings.HasPrefix(w, prefix) {
				kept = append(kept, w)
			}
		}
		p.Warnings = kept
	}
	if !p.Recorded {
		return // renew fails before it looks at them
	}
	for _, src := range []struct{ flag, source string }{{"oauth-token-command", "oauth-token-command"}, {"password-command", "password-command"}, {"password-file", "password-file"}} {
		if c := get(src.flag); c != nil {
			l := &LoginPlan{Source: src.source, From: c.From}
			if src.source == "password-file" {
				l.File = c.Value
				p.CheckFile("the --password-file of the configuration file ("+c.From+")", c.Value)
			} else {
				l.Command = c.Value
			}
			p.Login = l
			dropWarning("no source of the mail password is recorded")
			dropWarning("the recorded --password-file")
			break
		}
	}
	for _, src := range []string{"smtp-password-command", "smtp-password-file"} {
		if c := get(src); c != nil {
			l := &LoginPlan{Source: strings.TrimPrefix(src, "smtp-"), From: c.From}
			if src == "smtp-password-file" {
				l.File = c.Value
				p.CheckFile("the --smtp-password-file of the configuration file ("+c.From+")", c.Value)
			} else {
				l.Command = c.Value
			}
			p.SMTPLogin = l
			dropWarning("the recorded --smtp-password-file")
			break
		}
	}
	if c := get("deploy-hook"); c != nil {
		p.DeployHook = c.Value
	}
	if c := get("p12-profile"); c != nil {
		p.P12Profile = c.Value
	}
	if c := get("p12-password-file"); c != nil {
		p.P12PasswordFile = c.Value
		p.CheckFile("the --p12-password-file of the configuration file ("+c.From+")", c.Value)
	}
}
