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

	"github.com/acmemail/acmemail/acmemail/issuer"
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
func discoverServers(ctx context.Context, g *globals, prog *progress, p *issuer.Profile, rediscover bool) error {
	if p.IMAP != "" && p.SMTP != "" {
		return nil
	}
	path, err := rememberedPath(g.getenv, p.Email)
	if err != nil {
		return err
	}
	if !rediscover {
		r, err := loadRemembered(path)
		switch {
		case err == nil:
			useServers(p, r)
			prog.printf("using the mail servers found for %s on %s: IMAP %s, SMTP %s (--rediscover looks again)",
				p.Email, r.Found.UTC().Format(time.DateOnly), r.IMAP, r.SMTP)
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}

	pool, err := issuer.RootPool(p.CARoots)
	if err != nil {
		return settingErr(err)
	}
	// The client is shared with the ACME client: Discover bounds each
	// fetch itself, and never changes the client.
	cfg := mailbox.DiscoverConfig{HTTPClient: httpClient(pool), Logger: g.logger().With("component", "discover")}
	resolver := net.DefaultResolver
	if p.DNSResolver != "" {
		if resolver, err = issuer.Resolver(p.DNSResolver); err != nil {
			return settingErr(err)
		}
		cfg.Resolver = resolver
	}
	prog.printf("looking up the mail servers of %s (--imap and --smtp were not given)", p.Email)
	d, err := mailbox.Discover(ctx, p.Email, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		hints := []string{
			"give the servers: --imap imaps://HOST:993 (or imap://HOST:143 for STARTTLS) and --smtp smtps://HOST:465 (or smtp://HOST:587)",
			"your provider's help pages name them, usually under \"IMAP settings\"",
		}
		if domain := p.Email[strings.LastIndex(p.Email, "@")+1:]; domainUnknown(ctx, resolver, domain) {
			hints = append([]string{"the DNS knows no MX, address or NS record for " + domain + ": is the address spelled right?"}, hints...)
		}
		return withHint(usageErrorf("--imap and --smtp are needed: %w", err), hints...)
	}
	r := &rememberedServers{
		Email: p.Email, IMAP: d.IMAP.URL(true), IMAPSource: d.IMAPSource, SMTP: d.SMTP.URL(false), SMTPSource: d.SMTPSource,
		User: d.Username, OAuth2Only: d.OAuth2, Found: time.Now().UTC(),
	}
	prog.printf("found IMAP %s from %s", d.IMAP, d.IMAPSource)
	prog.printf("found SMTP %s from %s", d.SMTP, d.SMTPSource)
	if d.Username != "" && d.Username != p.Email {
		prog.printf("the autoconfig document names the login %q (--user overrides it)", d.Username)
	}
	if d.OAuth2 && p.Login.OAuthTokenCommand == "" {
		prog.printf("warning: the provider's autoconfig document offers only OAuth2 logins; a password will likely be refused (use --oauth-token-command)")
	}
	if err := saveRemembered(path, r); err != nil {
		prog.printf("warning: could not remember the servers: %v", err)
	}
	useServers(p, r)
	return nil
}

// useServers fills the profile's missing servers and login from r.
func useServers(p *issuer.Profile, r *rememberedServers) {
	if p.IMAP == "" {
		p.IMAP = r.IMAP
	}
	if p.SMTP == "" {
		p.SMTP = r.SMTP
	}
	if p.User == "" && r.User != "" && r.User != p.Email {
		p.User = r.User
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
