package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

const discoveryHelp = `Without --imap and --smtp, acmemail finds the servers from EMAIL's domain: SRV
records (RFC 6186 and 8314: _imaps, _imap, _submissions, _submission), then the
domain's autoconfig document (over HTTPS, certificate verified), then the usual
names (imap., smtp., mail. of the domain and of its MX host) if they answer. Only
TLS and STARTTLS servers are used. What was found, and where, is printed, and
remembered for EMAIL in the state directory (mail/EMAIL.json): later runs and
renewals use it without looking again; --rediscover looks again.`

// rememberedServers is mail/<email>.json in the state directory.
type rememberedServers struct {
	Email      string    `json:"email"`
	IMAP       string    `json:"imap"`
	IMAPSource string    `json:"imap_source"`
	SMTP       string    `json:"smtp"`
	SMTPSource string    `json:"smtp_source"`
	User       string    `json:"user,omitempty"`
	OAuth2Only bool      `json:"oauth2_only,omitempty"`
	Found      time.Time `json:"found"`
}

func rememberedPath(getenv func(string) string, email string) (string, error) {
	norm, err := keystore.NormalizeEmail(email)
	if err != nil {
		return "", usageErrorf("%w", err)
	}
	home, err := keystore.DefaultDir(getenv)
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "mail", norm+".json"), nil
}

func loadRemembered(path string) (*rememberedServers, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r rememberedServers
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w (delete it, or use --rediscover)", path, err)
	}
	if _, err := mailbox.ParseIMAPURL(r.IMAP); err != nil {
		return nil, fmt.Errorf("read %s: %w (delete it, or use --rediscover)", path, err)
	}
	if _, err := mailbox.ParseSMTPURL(r.SMTP); err != nil {
		return nil, fmt.Errorf("read %s: %w (delete it, or use --rediscover)", path, err)
	}
	return &r, nil
}

func saveRemembered(path string, r *rememberedServers) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return keystore.WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// discoverServers fills in --imap and --smtp when they were not given:
// from what was remembered for the identity, else by mailbox.Discover
// (whose result is then remembered).
func (s *session) discoverServers(ctx context.Context) error {
	id := s.id
	if id.imapURL != "" && id.smtpURL != "" {
		return nil
	}
	path, err := rememberedPath(s.g.getenv, id.email)
	if err != nil {
		return err
	}
	if !id.cred.rediscover {
		r, err := loadRemembered(path)
		switch {
		case err == nil:
			s.useServers(r)
			s.prog.printf("using the mail servers found for %s on %s: IMAP %s, SMTP %s (--rediscover looks again)",
				id.email, r.Found.UTC().Format(time.DateOnly), r.IMAP, r.SMTP)
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}

	pool, err := s.g.rootPool(s.extraRoots)
	if err != nil {
		return err
	}
	// The client is shared with the ACME client: Discover bounds each
	// fetch itself, and never changes the client.
	cfg := mailbox.DiscoverConfig{HTTPClient: httpClient(pool), Logger: s.log.With("component", "discover")}
	resolver := net.DefaultResolver
	if id.dnsResolver != "" {
		addr := id.dnsResolver
		resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		cfg.Resolver = resolver
	}
	s.prog.printf("looking up the mail servers of %s (--imap and --smtp were not given)", id.email)
	d, err := mailbox.Discover(ctx, id.email, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		hints := []string{
			"give the servers: --imap imaps://HOST:993 (or imap://HOST:143 for STARTTLS) and --smtp smtps://HOST:465 (or smtp://HOST:587)",
			"your provider's help pages name them, usually under \"IMAP settings\"",
		}
		if domain := id.email[strings.LastIndex(id.email, "@")+1:]; domainUnknown(ctx, resolver, domain) {
			hints = append([]string{"the DNS knows no MX, address or NS record for " + domain + ": is the address spelled right?"}, hints...)
		}
		return withHint(usageErrorf("--imap and --smtp are needed: %w", err), hints...)
	}
	r := &rememberedServers{
		Email: id.email, IMAP: d.IMAP.URL(true), IMAPSource: d.IMAPSource, SMTP: d.SMTP.URL(false), SMTPSource: d.SMTPSource,
		User: d.Username, OAuth2Only: d.OAuth2, Found: time.Now().UTC(),
	}
	s.prog.printf("found IMAP %s from %s", d.IMAP, d.IMAPSource)
	s.prog.printf("found SMTP %s from %s", d.SMTP, d.SMTPSource)
	if d.Username != "" && d.Username != id.email {
		s.prog.printf("the autoconfig document names the login %q (--user overrides it)", d.Username)
	}
	if d.OAuth2 && id.cred.oauthTokenCommand == "" {
		s.prog.printf("warning: the provider's autoconfig document offers only OAuth2 logins; a password will likely be refused (use --oauth-token-command)")
	}
	if err := saveRemembered(path, r); err != nil {
		s.prog.printf("warning: could not remember the servers: %v", err)
	}
	s.useServers(r)
	return nil
}

// useServers fills the identity's missing servers and login from r.
func (s *session) useServers(r *rememberedServers) {
	id := s.id
	if id.imapURL == "" {
		id.imapURL = r.IMAP
	}
	if id.smtpURL == "" {
		id.smtpURL = r.SMTP
	}
	if id.user == "" && r.User != "" {
		id.user = r.User
	}
}

// domainUnknown reports whether the DNS says that domain has no MX, no
// address and no NS record: most likely a typo in the address. Any other
// answer, or none within a few seconds, is not taken as that.
func domainUnknown(ctx context.Context, r *net.Resolver, domain string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	notFound := func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de) && de.IsNotFound
	}
	if _, err := r.LookupMX(ctx, domain); !notFound(err) {
		return false
	}
	if _, err := r.LookupHost(ctx, domain); !notFound(err) {
		return false
	}
	_, err := r.LookupNS(ctx, domain)
	return notFound(err)
}
