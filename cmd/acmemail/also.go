package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/pflag"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/mailbox"
)

// alsoFlags are obtain's flags for more addresses in the same certificate.
//
// By default every --also address is read and sent from the primary
// mailbox (the usual case: aliases of one account, which the provider lets
// you send as). An address that lives in another mailbox names it with
// --also-imap ADDR=URL; its submission server, login and password
// (--also-password-file or --also-password-command) default to the
// primary's submission server, ADDR, and a prompt (or the primary password
// when the login is the same). All of them are recorded with the
// certificate for renew: the file's path and the command, never the
// password.
type alsoFlags struct {
	also            []string
	imap            []string // ADDR=URL
	smtp            []string // ADDR=URL
	user            []string // ADDR=LOGIN
	passwordFile    []string // ADDR=FILE
	passwordCommand []string // ADDR=CMD
}

// alsoBox is the mailbox of an --also address that is not the primary's.
type alsoBox struct {
	imapURL, smtpURL, user, passwordFile, passwordCommand string
}

func (a *alsoFlags) addFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&a.also, "also", nil, "another address for the same certificate (repeatable); read from the same mailbox unless --also-imap names its own")
	f.StringArrayVar(&a.imap, "also-imap", nil, "ADDR=URL: the IMAP server of an --also address that has its own mailbox")
	f.StringArrayVar(&a.smtp, "also-smtp", nil, "ADDR=URL: its submission server (default: --smtp)")
	f.StringArrayVar(&a.user, "also-user", nil, "ADDR=LOGIN: its mail login (default: ADDR)")
	f.StringArrayVar(&a.passwordFile, "also-password-file", nil, "ADDR=FILE: its mail password, first line of FILE (default: a prompt, or the primary password for the same login)")
	f.StringArrayVar(&a.passwordCommand, "also-password-command", nil, "ADDR=CMD: its mail password, the first line the shell command CMD prints (like --password-command)")
}

// resolve validates the flags for the primary address and returns the
// extra addresses (normalized, in order) and the mailboxes of those that
// have their own.
func (a *alsoFlags) resolve(primary string) ([]string, map[string]*alsoBox, error) {
	var also []string
	seen := map[string]bool{strings.ToLower(primary): true}
	for _, e := range a.also {
		n, err := checkEmail(e)
		if err != nil {
			return nil, nil, usageErrorf("--also: %w", err)
		}
		if seen[strings.ToLower(n)] {
			return nil, nil, usageErrorf("--also %s: the address is already in the certificate", e)
		}
		seen[strings.ToLower(n)] = true
		also = append(also, n)
	}
	boxes := map[string]*alsoBox{}
	box := func(flag, kv string) (*alsoBox, string, error) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return nil, "", usageErrorf("--%s %q: want ADDR=VALUE", flag, kv)
		}
		n, err := checkEmail(k)
		if err != nil {
			return nil, "", usageErrorf("--%s: %w", flag, err)
		}
		found := false
		for _, x := range also {
			found = found || strings.EqualFold(x, n)
		}
		if !found {
			return nil, "", withHint(usageErrorf("--%s %s: %s is not an --also address", flag, kv, n), "add --also "+n)
		}
		b := boxes[strings.ToLower(n)]
		if b == nil {
			b = &alsoBox{}
			boxes[strings.ToLower(n)] = b
		}
		return b, v, nil
	}
	for _, kv := range a.imap {
		b, v, err := box("also-imap", kv)
		if err != nil {
			return nil, nil, err
		}
		b.imapURL = v
	}
	for _, spec := range []struct {
		flag string
		list []string
		set  func(*alsoBox, string)
	}{
		{"also-smtp", a.smtp, func(b *alsoBox, v string) { b.smtpURL = v }},
		{"also-user", a.user, func(b *alsoBox, v string) { b.user = v }},
		{"also-password-file", a.passwordFile, func(b *alsoBox, v string) { b.passwordFile = v }},
		{"also-password-command", a.passwordCommand, func(b *alsoBox, v string) { b.passwordCommand = v }},
	} {
		for _, kv := range spec.list {
			b, v, err := box(spec.flag, kv)
			if err != nil {
				return nil, nil, err
			}
			if b.imapURL == "" {
				k, _, _ := strings.Cut(kv, "=")
				return nil, nil, withHint(usageErrorf("--%s %s: that address has no --also-imap, so it uses the primary mailbox", spec.flag, kv),
					"give --also-imap "+k+"=URL for its own mailbox")
			}
			spec.set(b, v)
		}
	}
	for _, n := range also {
		if b := boxes[strings.ToLower(n)]; b != nil && b.passwordFile != "" && b.passwordCommand != "" {
			return nil, nil, usageErrorf("--also-password-file and --also-password-command both give the mail password for %s; use one", n)
		}
	}
	return also, boxes, nil
}

// emails are all addresses of the identity's certificate, primary first.
func (id *identity) emails() []string {
	return append([]string{id.email}, id.also...)
}

// openAlso prepares the mailboxes of the --also addresses: in the
// in-process sandbox it creates them (an alias of the primary mailbox, or
// a mailbox of its own with --also-imap sandbox), elsewhere it opens each
// address's own mailbox; the client then reads all mailboxes and replies
// for each address through its own submission server.
func (s *session) openAlso(ctx context.Context) error {
	id := s.id
	if len(id.also) == 0 {
		return nil
	}
	var extra []*mailAdapter
	senders := map[string]*mailbox.Sender{}
	for _, addr := range id.also {
		b := id.alsoBoxes[strings.ToLower(addr)]
		var password string // never kept in the identity
		if s.world != nil {
			if b == nil {
				if err := s.world.AddAlias(addr, id.email); err != nil {
					return fmt.Errorf("sandbox: add %s to the mailbox of %s: %w", addr, id.email, err)
				}
				continue
			}
			if b.imapURL == "sandbox" {
				pw := randomToken()
				if err := s.world.AddUser(addr, pw); err != nil {
					return fmt.Errorf("sandbox: add a mailbox for %s: %w", addr, err)
				}
				b.imapURL, b.smtpURL, b.user = s.world.IMAPURL, s.world.SMTPURL, addr
				password = pw
			}
		}
		if b == nil {
			continue // read from the primary mailbox, sent through the primary server
		}
		if b.smtpURL == "" {
			b.smtpURL = id.smtpURL
		}
		if b.user == "" {
			b.user = addr
		}
		// No shell expands ~ after ADDR=; the path is recorded expanded.
		if rest, ok := strings.CutPrefix(b.passwordFile, "~/"); ok && s.g.getenv("HOME") != "" {
			b.passwordFile = filepath.Join(s.g.getenv("HOME"), rest)
		}
		if password == "" {
			switch {
			case b.passwordCommand != "":
				pw, err := runSecretCommand(ctx, s.g, b.passwordCommand, "also-password-command", "mail password for "+b.user, addr, b.user)
				if err != nil {
					return err
				}
				password = pw
			case b.passwordFile != "":
				pw, err := readSecretFile(b.passwordFile)
				if err != nil {
					return usageErrorf("read the mail password for %s from --also-password-file: %w", b.user, err)
				}
				password = pw
			case b.user == id.user:
				password = s.mailPassword
			default:
				pw, err := s.g.secret(secretSource{what: "mail password for " + b.user, flag: "also-password-file " + addr + "=FILE"})
				if err != nil {
					return withHint(err, "give obtain --also-password-file "+addr+"=FILE or --also-password-command "+addr+"=CMD: renew, too, reads the password from the one obtain recorded")
				}
				password = pw
			}
		}
		m, err := s.openMailbox(ctx, b.imapURL, b.smtpURL, b.user, password)
		if err != nil {
			return fmt.Errorf("the mailbox of %s: %w", addr, err)
		}
		extra = append(extra, m)
		senders[strings.ToLower(addr)] = m.s
	}
	if len(extra) == 0 {
		return nil
	}
	mctx, cancel := context.WithCancel(context.Background())
	mm := &multiMail{ch: make(chan []byte), errc: make(chan error, 1+len(extra)), senders: senders, def: s.mail.s}
	var wg sync.WaitGroup
	for _, m := range append([]*mailAdapter{s.mail}, extra...) {
		mm.watchers = append(mm.watchers, m.w)
		wg.Go(func() { mm.read(mctx, m.w) })
	}
	s.closers = append(s.closers, func() { cancel(); wg.Wait() })
	s.multi = mm
	return nil
}

// openMailbox starts watching one more mailbox (the --mailbox folder) and
// logs in to its submission server.
func (s *session) openMailbox(ctx context.Context, imapURL, smtpURL, user, password string) (*mailAdapter, error) {
	imapEP, err := mailbox.ParseIMAPURL(imapURL)
	if err != nil {
		return nil, usageErrorf("--also-imap: %w", err)
	}
	smtpEP, err := mailbox.ParseSMTPURL(smtpURL)
	if err != nil {
		return nil, usageErrorf("--also-smtp: %w", err)
	}
	creds := mailbox.Credentials{Username: user, Password: password}
	watcher, err := mailbox.Watch(ctx, mailbox.IMAPConfig{
		Endpoint: imapEP, Credentials: creds, Mailbox: s.id.mailbox,
		TLSConfig: imapTLSConfig(s.pool), AllowInsecure: s.id.insecure, Logger: s.log.With("component", "imap", "user", user),
	})
	if err != nil {
		return nil, withHint(fmt.Errorf("open the mailbox: %w", err), imapHints(err, imapURL)...)
	}
	s.closers = append(s.closers, func() { watcher.Close() })
	s.prog.printf("watching %s on %s for %s", s.id.mailbox, imapEP.Host, user)
	sender := mailbox.NewSender(mailbox.SMTPConfig{
		Endpoint: smtpEP, Credentials: creds, TLSConfig: smtpTLSConfig(s.pool), AllowInsecure: s.id.insecure,
		Logger: s.log.With("component", "smtp", "user", user),
	})
	s.closers = append(s.closers, func() { sender.Close() })
	if err := sender.Prepare(ctx); err != nil {
		return nil, withHint(fmt.Errorf("log in to the submission server: %w", err), smtpHints(err)...)
	}
	return &mailAdapter{watcher, sender}, nil
}

// multiMail is the acmemail.Mail of a certificate whose addresses live in
// several mailboxes: Next returns mail from any of them (nothing read is
// dropped between calls), Send replies through the submission server of
// the address the reply is from.
type multiMail struct {
	watchers []*mailbox.Watcher
	ch       chan []byte
	errc     chan error
	senders  map[string]*mailbox.Sender // by lowercased address
	def      *mailbox.Sender            // the primary mailbox's
}

var (
	_ acmemail.Mail         = (*multiMail)(nil)
	_ acmemail.MailExpecter = (*multiMail)(nil)
)

// Expect tells every watcher that a mail is due.
func (m *multiMail) Expect() {
	for _, w := range m.watchers {
		w.Expect()
	}
}

func (m *multiMail) read(ctx context.Context, w *mailbox.Watcher) {
	for {
		raw, err := w.Next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.errc <- err
			}
			return
		}
		select {
		case m.ch <- raw:
		case <-ctx.Done():
			return
		}
	}
}

func (m *multiMail) Next(ctx context.Context) ([]byte, error) {
	select {
	case raw := <-m.ch:
		return raw, nil
	case err := <-m.errc:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *multiMail) Send(ctx context.Context, from string, to []string, raw []byte) error {
	s := m.senders[strings.ToLower(from)]
	if s == nil {
		s = m.def
	}
	return s.Send(ctx, from, to, raw)
}
