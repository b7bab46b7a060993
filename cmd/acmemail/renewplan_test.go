package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
)

// rowsOf returns the "renew repeats:" rows as label -> values.
func rowsOf(p *renewPlan) map[string][]string {
	m := map[string][]string{}
	for _, kv := range planRows(p) {
		k := strings.TrimSuffix(kv[0], ":")
		m[k] = append(m[k], kv[1])
	}
	return m
}

func TestPlanRenewal(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "gone.pem")
	base := func(edit func(*keystore.CertMeta)) keystore.CertMeta {
		m := keystore.CertMeta{Email: "alice@example.com", KeyType: "rsa2048", Usage: "both", Settings: &keystore.Settings{
			Server: "castle", IMAP: "imaps://imap.example.com", SMTP: "smtps://smtp.example.com", User: "alice", AuthMech: "auto",
			Mailbox: "Junk", P12Profile: "legacy", PasswordFile: "/etc/acmemail/alice.pw",
		}}
		if edit != nil {
			edit(&m)
		}
		return m
	}
	reason := "keyCompromise"
	tests := []struct {
		name    string
		meta    keystore.CertMeta
		revoked *string
		want    map[string]string // label: value; "" means absent
		warn    []string          // substrings of the warnings, in order
	}{
		{"password file", base(nil), nil, map[string]string{
			"IMAP":       "imaps://imap.example.com, login alice, folder Junk",
			"SMTP":       "smtps://smtp.example.com",
			"mail login": "password file: /etc/acmemail/alice.pw", "SMTP login": "", "auth mech": "",
			"PKCS#12": "legacy profile, written to /p/cert.p12 (an --out file of obtain is not rewritten)",
		}, []string{"/etc/acmemail/alice.pw does not exist"}},
		{"separate submission login, token", base(func(m *keystore.CertMeta) {
			m.Settings.PasswordFile, m.Settings.OAuthTokenCommand, m.Settings.SMTPUser, m.Settings.AuthMech = "", "oama access alice", "alice-smtp", "xoauth2"
		}), nil, map[string]string{
			"SMTP": "smtps://smtp.example.com, login alice-smtp", "mail login": "OAuth token command: oama access alice",
			"SMTP login": "", "auth mech": "xoauth2",
		}, nil},
		{"separate submission password", base(func(m *keystore.CertMeta) {
			m.Settings.PasswordFile, m.Settings.PasswordCommand, m.Settings.SMTPUser, m.Settings.SMTPPasswordCommand = "", "pass mail", "alice-smtp", "pass smtp"
		}), nil, map[string]string{"mail login": "password command: pass mail", "SMTP login": "password command: pass smtp"}, nil},
		{"separate submission login, nothing recorded", base(func(m *keystore.CertMeta) {
			m.Settings.PasswordFile, m.Settings.SMTPUser = "", "alice-smtp"
		}), nil, map[string]string{
			"mail login": "nothing recorded: ACMEMAIL_PASSWORD, else the OS keyring, else a prompt on the terminal",
			"SMTP login": "nothing recorded: ACMEMAIL_SMTP_PASSWORD, else the OS keyring, else the mail password",
		}, []string{"no source of the mail password is recorded"}},
		{"token mechanism without a token command", base(func(m *keystore.CertMeta) {
			m.Settings.PasswordFile, m.Settings.AuthMech = "", "oauthbearer"
		}), nil, nil, []string{"--auth-mech oauthbearer is recorded but no --oauth-token-command"}},
		{"also mailboxes", base(func(m *keystore.CertMeta) {
			m.Settings.PasswordFile = ""
			m.Settings.PasswordCommand = "pass mail"
			m.Also = "alias@example.com,Bob@example.org,carol@example.net"
			m.Settings.AlsoMailboxes = []keystore.AlsoMailbox{
				{Email: "bob@example.org", IMAP: "imaps://imap.example.org", SMTP: "smtps://smtp.example.org", User: "alice"},
				{Email: "carol@example.net", IMAP: "imap://mail.example.net", SMTP: "smtp://mail.example.net", User: "carol"},
			}
		}), nil, map[string]string{
			"also alias@example.com": "read from the primary mailbox",
			"also Bob@example.org":   "own mailbox imaps://imap.example.org, login alice; SMTP smtps://smtp.example.org; the primary mail password (same login)",
			"also carol@example.net": "own mailbox imap://mail.example.net, login carol; SMTP smtp://mail.example.net; nothing recorded: a prompt on the terminal",
		}, []string{"mail password of carol@example.net"}},
		{"revoked, other options", base(func(m *keystore.CertMeta) {
			m.Settings.PasswordFile, m.Settings.PasswordCommand = "", "pass mail"
			m.Settings.Insecure, m.Settings.SkipMailAuth, m.Settings.IssuerRoots, m.Settings.Contact = true, true, gone, []string{"mailto:a@b", "mailto:c@d"}
		}), &reason, map[string]string{
			"renew skips it": "its certificate was revoked (keyCompromise); only renew --force renews it",
			"insecure":       "unencrypted IMAP and SMTP to loopback (--insecure)", "mail auth": "NOT checked (--insecure-skip-mail-auth)",
			"issuer roots": gone, "contact": "mailto:a@b, mailto:c@d",
		}, []string{"--issuer-roots " + gone + " does not exist"}},
		{"in-process sandbox", base(func(m *keystore.CertMeta) { m.Settings.Server, m.Settings.PasswordFile = "sandbox", "" }), nil,
			map[string]string{"renew skips it": "its certificate came from an in-process sandbox, which no longer runs"}, nil},
		{"nothing recorded", keystore.CertMeta{Email: "alice@example.com", KeyType: "p256", Usage: "sign"}, nil, map[string]string{
			"recorded": "nothing", "IMAP": "", "mail login": "", "key": "", "PKCS#12": "",
		}, []string{"renew fails for it; run acmemail obtain alice@example.com once more"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := issuer.PlanOfMeta(tt.meta, "/p/cert.p12", false, tt.revoked)
			rows := rowsOf(p)
			for k, v := range tt.want {
				got := strings.Join(rows[k], " | ")
				if got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if len(p.Warnings) != len(tt.warn) || len(rows["warning"]) != len(tt.warn) {
				t.Fatalf("warnings = %q, want %d like %q", p.Warnings, len(tt.warn), tt.warn)
			}
			for i, w := range tt.warn {
				if !strings.Contains(p.Warnings[i], w) {
					t.Errorf("warning %d = %q, want it to say %q", i, p.Warnings[i], w)
				}
			}
		})
	}
}

// TestPlanRenewalSplit: a --split pair's block says the encryption
// certificate is renewed with it; show --json has "split": true.
func TestPlanRenewalSplit(t *testing.T) {
	meta := keystore.CertMeta{Email: "alice@example.com", KeyType: "p256", Usage: "sign", Settings: &keystore.Settings{Server: "castle", PasswordCommand: "pass mail"}}
	p := issuer.PlanOfMeta(meta, "/p/cert.p12", true, nil)
	if got := rowsOf(p)["encryption"]; !p.Split || len(got) != 1 || got[0] != "the encryption certificate of the --split pair is renewed with it" {
		t.Errorf("split %v, encryption row %q", p.Split, got)
	}
	if got := rowsOf(issuer.PlanOfMeta(meta, "/p/cert.p12", false, nil))["encryption"]; got != nil {
		t.Errorf("a single certificate has an encryption row %q", got)
	}
}
