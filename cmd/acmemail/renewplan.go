package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/acmemail/acmemail/keystore"
)

// renewPlan is what acmemail renew will do for a certificate, from what
// obtain (or the last renew) recorded with it in meta.json: show prints
// it under "renew repeats:", show --json and list --json as "renew". Like
// the record it comes from it holds commands and file paths, never a
// secret. Sources given to renew itself (flags, ACMEMAIL_* variables, the
// configuration file) win over it; show does not know them.
type renewPlan struct {
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
	Login      *loginPlan `json:"login,omitempty"`
	SMTPLogin  *loginPlan `json:"smtp_login,omitempty"`
	Also       []alsoPlan `json:"also,omitempty"`
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
	SMIMERoots      string   `json:"smime_roots,omitempty"`
	TrustAuthservID string   `json:"trust_authserv_id,omitempty"`
	DNSResolver     string   `json:"dns_resolver,omitempty"`
	Join            string   `json:"join,omitempty"`
	MailWait        string   `json:"mail_wait,omitempty"`
	ReplySettle     string   `json:"reply_settle,omitempty"`
	Contact         []string `json:"contact,omitempty"`
	Insecure        bool     `json:"insecure,omitempty"`
	SkipMailAuth    bool     `json:"insecure_skip_mail_auth,omitempty"`
	// P12PasswordFile is the --p12-password-file the configuration file
	// gives renew; the PKCS#12 password's source is never recorded.
	P12PasswordFile string `json:"p12_password_file,omitempty"`
	// Config lists the renew flags the configuration file sets for the
	// address; those above (login sources, deploy hook, PKCS#12 profile)
	// are already shown in place of the recorded ones.
	Config []configSetting `json:"config,omitempty"`
	// Warnings are what show can tell offline will make renew fail or
	// stop to ask (a recorded file that is gone, no recorded login).
	Warnings []string `json:"warnings,omitempty"`
}

// loginPlan is where renew gets a mail password or token.
type loginPlan struct {
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

// alsoPlan is how renew reads and answers the challenge of one --also
// address.
type alsoPlan struct {
	Email string `json:"email"`
	// Mailbox is "own" (the recorded servers and login below) or
	// "primary" (read from the primary mailbox, sent through its server).
	Mailbox string     `json:"mailbox"`
	IMAP    string     `json:"imap,omitempty"`
	SMTP    string     `json:"smtp,omitempty"`
	User    string     `json:"user,omitempty"`
	Login   *loginPlan `json:"login,omitempty"`
}

// planRenewal reads what renew will repeat from meta (and whether the
// files it names are there); pkcs12 is the file renew writes, split
// whether the certificate has an encryption partner, revoked the reason
// of its revocation (nil when it is not revoked).
func planRenewal(meta keystore.CertMeta, pkcs12 string, split bool, revoked *string) *renewPlan {
	set := meta.Settings
	if set == nil {
		return &renewPlan{Warnings: []string{"nothing is recorded of how this certificate was obtained (an older acmemail): renew fails for it; run acmemail obtain " + meta.Email + " once more"}}
	}
	p := &renewPlan{
		Recorded: true, Server: set.Server, IMAP: set.IMAP, SMTP: set.SMTP, User: set.User, SMTPUser: set.SMTPUser,
		Mailbox: set.Mailbox, DeployHook: set.DeployHook, KeyType: string(meta.KeyType), Usage: meta.Usage, Split: split,
		P12Profile: set.P12Profile, PKCS12: pkcs12, IssuerRoots: set.IssuerRoots, SMIMERoots: set.SMIMERoots,
		TrustAuthservID: set.TrustAuthservID, DNSResolver: set.DNSResolver, Join: set.Join, MailWait: set.MailWait,
		ReplySettle: set.ReplySettle, Contact: set.Contact, Insecure: set.Insecure, SkipMailAuth: set.SkipMailAuth,
	}
	// The defaults identityFromMeta fills in.
	if p.Mailbox == "" {
		p.Mailbox = "INBOX"
	}
	if p.P12Profile == "" {
		p.P12Profile = "modern"
	}
	if !strings.EqualFold(set.AuthMech, "auto") {
		p.AuthMech = set.AuthMech
	}
	switch {
	case set.Server == "sandbox":
		p.Skip = "its certificate came from an in-process sandbox, which no longer runs"
	case revoked != nil:
		why := ""
		if *revoked != "" {
			why = " (" + *revoked + ")"
		}
		p.Skip = "its certificate was revoked" + why + "; only renew --force renews it"
	}
	missing := func(what, path string) { p.checkFile("the recorded "+what, path) }

	switch {
	case set.OAuthTokenCommand != "":
		p.Login = &loginPlan{Source: "oauth-token-command", Command: set.OAuthTokenCommand}
	case set.PasswordCommand != "":
		p.Login = &loginPlan{Source: "password-command", Command: set.PasswordCommand}
	case set.PasswordFile != "":
		p.Login = &loginPlan{Source: "password-file", File: set.PasswordFile}
		missing("--password-file", set.PasswordFile)
	default:
		p.Login = &loginPlan{Source: "not-recorded"}
		if isTokenMech(set.AuthMech) {
			p.Warnings = append(p.Warnings, "--auth-mech "+strings.ToLower(set.AuthMech)+" is recorded but no --oauth-token-command: give renew one")
		} else {
			p.Warnings = append(p.Warnings, "no source of the mail password is recorded: renew logs in only if it is given one (ACMEMAIL_PASSWORD, --password-command, --password-file) or the OS keyring has it (acmemail login "+meta.Email+"); cron has no terminal to ask on")
		}
	}
	switch {
	case set.SMTPPasswordCommand != "":
		p.SMTPLogin = &loginPlan{Source: "password-command", Command: set.SMTPPasswordCommand}
	case set.SMTPPasswordFile != "":
		p.SMTPLogin = &loginPlan{Source: "password-file", File: set.SMTPPasswordFile}
		missing("--smtp-password-file", set.SMTPPasswordFile)
	case set.SMTPUser != "" && set.OAuthTokenCommand == "":
		p.SMTPLogin = &loginPlan{Source: "not-recorded"}
	}

	own := map[string]keystore.AlsoMailbox{}
	for _, m := range set.AlsoMailboxes {
		own[strings.ToLower(m.Email)] = m
	}
	if meta.Also != "" {
		for _, a := range strings.Split(meta.Also, ",") {
			m, ok := own[strings.ToLower(a)]
			if !ok {
				p.Also = append(p.Also, alsoPlan{Email: a, Mailbox: "primary"})
				continue
			}
			ap := alsoPlan{Email: a, Mailbox: "own", IMAP: m.IMAP, SMTP: m.SMTP, User: m.User}
			switch {
			case m.PasswordCommand != "":
				ap.Login = &loginPlan{Source: "password-command", Command: m.PasswordCommand}
			case m.PasswordFile != "":
				ap.Login = &loginPlan{Source: "password-file", File: m.PasswordFile}
				missing("--also-password-file of "+a, m.PasswordFile)
			case m.User == set.User:
				ap.Login = &loginPlan{Source: "primary"}
			default:
				ap.Login = &loginPlan{Source: "prompt"}
				p.Warnings = append(p.Warnings, "no source of the mail password of "+a+" is recorded: renew asks for it on the terminal, which cron does not have; run obtain again with --also-password-command or --also-password-file "+a+"=...")
			}
			p.Also = append(p.Also, ap)
		}
	}
	missing("--issuer-roots", set.IssuerRoots)
	missing("--smime-roots", set.SMIMERoots)
	if set.Server == "sandbox" {
		p.Warnings = nil // renew never logs in for it
	}
	return p
}

// checkFile adds a warning when the file at path (absolute) does not
// exist; what names it.
func (p *renewPlan) checkFile(what, path string) {
	if path == "" || !filepath.IsAbs(path) {
		return
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s %s does not exist", what, path))
	}
}

// describe is the login source in words, for show.
func (l *loginPlan) describe(smtp bool) string {
	if l.From != "" {
		c := *l
		c.From = ""
		return c.describe(smtp) + " (" + l.From + ")"
	}
	switch l.Source {
	case "password-command":
		return "password command: " + l.Command
	case "password-file":
		return "password file: " + l.File
	case "oauth-token-command":
		return "OAuth token command: " + l.Command
	case "primary":
		return "the primary mail password (same login)"
	case "prompt":
		return "nothing recorded: a prompt on the terminal"
	}
	if smtp {
		return "nothing recorded: ACMEMAIL_SMTP_PASSWORD, else the OS keyring, else the mail password"
	}
	return "nothing recorded: ACMEMAIL_PASSWORD, else the OS keyring, else a prompt on the terminal"
}

// rows are the lines of show's "renew repeats:" block, label and value;
// settings not recorded are left out.
func (p *renewPlan) rows() [][2]string {
	var r [][2]string
	add := func(k, v string) {
		if v != "" {
			r = append(r, [2]string{k, v})
		}
	}
	if !p.Recorded {
		add("recorded:", "nothing")
	}
	add("renew skips it:", p.Skip)
	add("server:", p.Server)
	login := func(url, user, folder string) string {
		if url == "" {
			return ""
		}
		s := url
		if user != "" {
			s += ", login " + user
		}
		if folder != "" {
			s += ", folder " + folder
		}
		return s
	}
	if p.Recorded {
		add("IMAP:", login(p.IMAP, p.User, p.Mailbox))
		add("SMTP:", login(p.SMTP, p.SMTPUser, ""))
	}
	if p.Login != nil {
		add("mail login:", p.Login.describe(false))
	}
	if p.SMTPLogin != nil {
		add("SMTP login:", p.SMTPLogin.describe(true))
	}
	add("auth mech:", p.AuthMech)
	for _, a := range p.Also {
		if a.Mailbox == "primary" {
			add("also "+a.Email+":", "read from the primary mailbox")
			continue
		}
		v := "own mailbox " + login(a.IMAP, a.User, "") + "; SMTP " + a.SMTP
		if a.Login != nil {
			v += "; " + a.Login.describe(false)
		}
		add("also "+a.Email+":", v)
	}
	if p.DeployHook != "" {
		add("deploy hook:", p.DeployHook+p.configFrom("deploy-hook"))
	}
	if p.KeyType != "" {
		add("key:", "a new "+p.KeyType+" key (renew --reuse-key keeps the current one), usage "+p.Usage)
	}
	if p.Split {
		add("encryption:", "the encryption certificate of the --split pair is renewed with it")
	}
	if p.Recorded {
		v := p.P12Profile + " profile" + p.configFrom("p12-profile")
		if p.PKCS12 != "" {
			v += ", written to " + p.PKCS12 + " (an --out file of obtain is not rewritten)"
		}
		add("PKCS#12:", v)
		if p.Server != "sandbox" {
			pw := "never recorded: ACMEMAIL_P12_PASSWORD or renew --p12-password-file (cron has no terminal to ask on)"
			if p.P12PasswordFile != "" {
				pw = "password file: " + p.P12PasswordFile + p.configFrom("p12-password-file")
			}
			add("PKCS#12 password:", pw)
		}
	}
	add("issuer roots:", p.IssuerRoots)
	add("S/MIME roots:", p.SMIMERoots)
	add("trust authserv-id:", p.TrustAuthservID)
	add("DNS resolver:", p.DNSResolver)
	add("join:", p.Join)
	add("mail wait:", p.MailWait)
	add("reply settle:", p.ReplySettle)
	add("contact:", strings.Join(p.Contact, ", "))
	if p.Insecure {
		add("insecure:", "unencrypted IMAP and SMTP to loopback (--insecure)")
	}
	if p.SkipMailAuth {
		add("mail auth:", "NOT checked (--insecure-skip-mail-auth)")
	}
	for _, c := range p.Config {
		switch c.Flag {
		case "password-command", "password-file", "oauth-token-command", "smtp-password-command", "smtp-password-file",
			"deploy-hook", "p12-profile", "p12-password-file":
			continue // shown above
		}
		add("config file:", "--"+c.Flag+" "+c.Value+" ("+c.From+")")
	}
	for _, w := range p.Warnings {
		add("warning:", w)
	}
	return r
}

// configFrom is " (FILE:LINE)" when the configuration file gives renew
// the flag, else "".
func (p *renewPlan) configFrom(flag string) string {
	for _, c := range p.Config {
		if c.Flag == flag && c.Value != "" {
			return " (" + c.From + ")"
		}
	}
	return ""
}

// configSetting is a renew flag that the configuration file sets for an
// address (its identity table or [defaults]).
type configSetting struct {
	Flag  string `json:"flag"`
	Value string `json:"value"`
	From  string `json:"from"` // file:line
}

// renewConfig returns the flags the configuration file gives renew for
// email, as renew would apply them (not the environment: cron's is not the
// shell's that runs show). The file holds no secrets (parseConfig refuses
// them), only commands and paths.
func renewConfig(g *globals, email string) ([]configSetting, error) {
	c := g.config
	if c == nil {
		return nil, nil
	}
	rc := newRenewCmd(g)
	gc := *g
	gc.getenv = func(string) string { return "" }
	saved := c.before
	c.before = nil
	defer func() { c.before = saved }()
	sources, err := gc.applySettings(rc, c, email)
	if err != nil {
		return nil, err
	}
	var out []configSetting
	for _, s := range sources {
		if f := rc.Flags().Lookup(s.flag); f != nil {
			out = append(out, configSetting{Flag: s.flag, Value: f.Value.String(), From: s.from})
		}
	}
	return out, nil
}

// applyConfig puts what the configuration file gives renew in place of
// what was recorded: the mail login's and the submission password's
// sources, the deploy hook, the PKCS#12 profile (renew uses them, and
// records a given login source instead of the old one).
func (p *renewPlan) applyConfig(cfg []configSetting) {
	if len(cfg) == 0 {
		return
	}
	p.Config = cfg
	get := func(flag string) *configSetting {
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
			l := &loginPlan{Source: src.source, From: c.From}
			if src.source == "password-file" {
				l.File = c.Value
				p.checkFile("the --password-file of the configuration file ("+c.From+")", c.Value)
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
			l := &loginPlan{Source: strings.TrimPrefix(src, "smtp-"), From: c.From}
			if src == "smtp-password-file" {
				l.File = c.Value
				p.checkFile("the --smtp-password-file of the configuration file ("+c.From+")", c.Value)
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
		p.checkFile("the --p12-password-file of the configuration file ("+c.From+")", c.Value)
	}
}

// withConfig adds to p what the configuration file gives renew for email;
// a value renew would refuse is a warning.
func (p *renewPlan) withConfig(g *globals, email string) {
	cfg, err := renewConfig(g, email)
	if err != nil {
		p.Warnings = append(p.Warnings, "the configuration file gives renew a value it refuses: "+err.Error())
		return
	}
	p.applyConfig(cfg)
}
