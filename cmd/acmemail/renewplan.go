package main

import (
	"strings"

	"github.com/acmemail/acmemail/acmemail/issuer"
)

// renewPlan is what acmemail renew will do for a certificate (see
// issuer.Plan): show prints it under "renew repeats:", show --json and
// list --json as "renew".
type (
	renewPlan     = issuer.Plan
	loginPlan     = issuer.LoginPlan
	configSetting = issuer.ConfigSetting
)

// describe is the login source in words, for show.
func describeLogin(l *loginPlan, smtp bool) string {
	if l.From != "" {
		c := *l
		c.From = ""
		return describeLogin(&c, smtp) + " (" + l.From + ")"
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
func planRows(p *renewPlan) [][2]string {
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
		add("mail login:", describeLogin(p.Login, false))
	}
	if p.SMTPLogin != nil {
		add("SMTP login:", describeLogin(p.SMTPLogin, true))
	}
	add("auth mech:", p.AuthMech)
	for _, a := range p.Also {
		if a.Mailbox == "primary" {
			add("also "+a.Email+":", "read from the primary mailbox")
			continue
		}
		v := "own mailbox " + login(a.IMAP, a.User, "") + "; SMTP " + a.SMTP
		if a.Login != nil {
			v += "; " + describeLogin(a.Login, false)
		}
		add("also "+a.Email+":", v)
	}
	if p.DeployHook != "" {
		add("deploy hook:", p.DeployHook+configFrom(p, "deploy-hook"))
	}
	if p.KeyType != "" {
		add("key:", "a new "+p.KeyType+" key (renew --reuse-key keeps the current one), usage "+p.Usage)
	}
	if p.Split {
		add("encryption:", "the encryption certificate of the --split pair is renewed with it")
	}
	if p.Recorded {
		v := p.P12Profile + " profile" + configFrom(p, "p12-profile")
		if p.PKCS12 != "" {
			v += ", written to " + p.PKCS12 + " (an --out file of obtain is not rewritten)"
		}
		add("PKCS#12:", v)
		if p.Server != "sandbox" {
			pw := "never recorded: ACMEMAIL_P12_PASSWORD or renew --p12-password-file (cron has no terminal to ask on)"
			if p.P12PasswordFile != "" {
				pw = "password file: " + p.P12PasswordFile + configFrom(p, "p12-password-file")
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
func configFrom(p *renewPlan, flag string) string {
	for _, c := range p.Config {
		if c.Flag == flag && c.Value != "" {
			return " (" + c.From + ")"
		}
	}
	return ""
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
	sources, err := c.Clean().Apply(rc.Flags(), func(string) string { return "" }, email)
	if err != nil {
		return nil, err
	}
	var out []configSetting
	for _, s := range sources {
		if f := rc.Flags().Lookup(s.Flag); f != nil {
			out = append(out, configSetting{Flag: s.Flag, Value: f.Value.String(), From: s.From})
		}
	}
	return out, nil
}

// withConfig adds to p what the configuration file gives renew for email;
// a value renew would refuse is a warning.
func planWithConfig(p *renewPlan, g *globals, email string) {
	cfg, err := renewConfig(g, email)
	if err != nil {
		p.Warnings = append(p.Warnings, "the configuration file gives renew a value it refuses: "+err.Error())
		return
	}
	p.ApplyConfig(cfg)
}
