package main

import (
	"crypto/x509"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/acmemail/sandbox/standalone"
	"github.com/acmemail/acmemail/cmd/internal/secret"
)

// sandboxMailFlags make `acmemail sandbox` use a real mail system for the
// CA's own mail: it submits its challenges through --mail-smtp (where the
// provider DKIM-signs them) and reads the replies from its mailbox at
// --mail-imap, checking their DKIM keys through --dns-resolver.
type sandboxMailFlags struct {
	address      string
	imap, smtp   string
	user         string
	passwordFile string
	dnsResolver  string
	mailboxName  string
}

func (m *sandboxMailFlags) addFlags(f *pflag.FlagSet) {
	f.StringVar(&m.address, "mail-address", "", "the CA's address on a real mail system; turns on external mail (challenges come from its plus addresses)")
	f.StringVar(&m.imap, "mail-imap", "", "with --mail-address: IMAP URL of the CA's mailbox, where replies arrive")
	f.StringVar(&m.smtp, "mail-smtp", "", "with --mail-address: submission URL the CA sends its challenges through")
	f.StringVar(&m.user, "mail-user", "", "with --mail-address: login for --mail-imap and --mail-smtp (default: the address)")
	f.StringVar(&m.passwordFile, "mail-password-file", "", "with --mail-address: read the CA's mail password from the first line of this file (else ACMEMAIL_PASSWORD)")
	f.StringVar(&m.mailboxName, "mail-mailbox", "INBOX", "with --mail-address: the folder replies arrive in")
	f.StringVar(&m.dnsResolver, "dns-resolver", "", "with --mail-address: DNS server (HOST:PORT) for the DKIM keys of replies (default: the system resolver)")
}

func (m *sandboxMailFlags) enabled() bool { return m.address != "" }

// checkFlags refuses the external-mail flags without --mail-address, and
// --user (sandbox mailboxes) with it.
func (m *sandboxMailFlags) checkFlags(f *pflag.FlagSet) error {
	if m.enabled() {
		if f.Changed("user") {
			return usageErrorf("--user creates sandbox mailboxes; with --mail-address the users' mail is on the real mail system")
		}
		return nil
	}
	for _, name := range []string{"mail-imap", "mail-smtp", "mail-user", "mail-password-file", "mail-mailbox", "dns-resolver"} {
		if f.Changed(name) {
			return usageErrorf("--%s is for external mail; it needs --mail-address (the CA's address on that mail system)", name)
		}
	}
	return nil
}

// config checks the flags that go with --mail-address and says how the
// CA reaches the mail system; the password and the roots are read once the
// URLs are checked.
func (m *sandboxMailFlags) config(g *globals, opts sandbox.Options) (*standalone.Mail, error) {
	if m.imap == "" || m.smtp == "" {
		return nil, usageErrorf("--mail-address needs --mail-imap and --mail-smtp (where the CA reads replies and sends challenges)")
	}
	if opts.Hostile {
		return nil, usageErrorf("--sandbox-hostile delivers forgeries into the sandbox's own mailboxes; it does not work with --mail-address")
	}
	address, err := checkEmail(m.address)
	if err != nil {
		return nil, err
	}
	return &standalone.Mail{
		Address: address, IMAP: m.imap, SMTP: m.smtp, User: m.user, Mailbox: m.mailboxName,
		DNSResolver: m.dnsResolver, Logger: g.logger(),
		Login: func(user string) (string, *x509.CertPool, error) {
			password, err := g.secretSources().Get(secret.Spec{What: "mail password for " + user, EnvVar: "ACMEMAIL_PASSWORD", File: m.passwordFile, Flag: "mail-password-file"})
			if err != nil {
				return "", nil, err
			}
			pool, err := g.rootPool()
			return password, pool, err
		},
	}, nil
}
