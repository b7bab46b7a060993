package main

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/mailbox"
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

// sandboxMailLink is the CA's connection to a real mail system.
type sandboxMailLink struct {
	address string
	watcher *mailbox.Watcher
	sender  *mailbox.Sender
}

func (x *sandboxMailLink) Close() {
	x.watcher.Close()
	x.sender.Close()
}

// start logs in to the mail system (so a wrong password fails before the
// CA starts), begins watching the CA's mailbox and fills in opts.
func (m *sandboxMailFlags) start(ctx context.Context, g *globals, opts *sandbox.Options) (*sandboxMailLink, error) {
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
	user := m.user
	if user == "" {
		user = address
	}
	imapEP, err := mailbox.ParseIMAPURL(m.imap)
	if err != nil {
		return nil, usageErrorf("--mail-imap: %w", err)
	}
	smtpEP, err := mailbox.ParseSMTPURL(m.smtp)
	if err != nil {
		return nil, usageErrorf("--mail-smtp: %w", err)
	}
	lookup, err := dnsLookupTXT(m.dnsResolver)
	if err != nil {
		return nil, err
	}
	password, err := g.secret(secretSource{what: "mail password for " + user, envVar: "ACMEMAIL_PASSWORD", file: m.passwordFile, flag: "mail-password-file"})
	if err != nil {
		return nil, err
	}
	pool, err := g.rootPool()
	if err != nil {
		return nil, err
	}
	log := g.logger()
	creds := mailbox.Credentials{Username: user, Password: password}
	sender := mailbox.NewSender(mailbox.SMTPConfig{
		Endpoint: smtpEP, Credentials: creds, TLSConfig: tlsConfig(pool), Logger: log.With("component", "ca-smtp"),
	})
	if err := sender.Prepare(ctx); err != nil {
		sender.Close()
		return nil, withHint(fmt.Errorf("log in to the submission server for the CA: %w", err), smtpHints(err)...)
	}
	watcher, err := mailbox.Watch(ctx, mailbox.IMAPConfig{
		Endpoint: imapEP, Credentials: creds, Mailbox: m.mailboxName,
		TLSConfig: tlsConfig(pool), Logger: log.With("component", "ca-imap"),
	})
	if err != nil {
		sender.Close()
		return nil, withHint(fmt.Errorf("open the CA's mailbox: %w", err), imapHints(err, m.imap)...)
	}
	opts.External = &sandbox.ExternalMail{Address: address, Send: sender.Send}
	if lookup != nil {
		opts.LookupTXT = lookup
	}
	return &sandboxMailLink{address: address, watcher: watcher, sender: sender}, nil
}

// serve hands every mail that arrives in the CA's mailbox to the CA, until
// ctx ends or the mailbox fails for good.
func (x *sandboxMailLink) serve(ctx context.Context, w *sandbox.World) error {
	for {
		raw, err := x.watcher.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("the CA's mailbox: %w", err)
		}
		if err := w.Deliver(w.CAFrom, raw); err != nil {
			return fmt.Errorf("the CA's mailbox: %w", err)
		}
	}
}

// dnsLookupTXT returns a TXT lookup through the DNS server addr (HOST:PORT),
// or nil for "" (the system resolver).
func dnsLookupTXT(addr string) (func(context.Context, string) ([]string, error), error) {
	if addr == "" {
		return nil, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usageErrorf("--dns-resolver %q: want HOST:PORT", addr)
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return r.LookupTXT, nil
}
