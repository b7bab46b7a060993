package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// RememberedServers is mail/<email>.json in the state directory.
type RememberedServers struct {
	Email      string    `json:"email"`
	IMAP       string    `json:"imap"`
	IMAPSource string    `json:"imap_source"`
	SMTP       string    `json:"smtp"`
	SMTPSource string    `json:"smtp_source"`
	User       string    `json:"user,omitempty"`
	OAuth2Only bool      `json:"oauth2_only,omitempty"`
	Found      time.Time `json:"found"`
}

func RememberedPath(stateDir, email string) (string, error) {
	norm, err := keystore.NormalizeEmail(email)
	if err != nil {
		return "", Usagef("%w", err)
	}
	return filepath.Join(stateDir, "mail", norm+".json"), nil
}

func LoadRemembered(path string) (*RememberedServers, error) {
	data, err := readRegular(path, 64<<10)
	if err != nil {
		return nil, err
	}
	var r RememberedServers
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

func SaveRemembered(path string, r *RememberedServers) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return keystore.WriteFileAtomic(path, append(data, '\n'), 0o600)
}

// DiscoverOptions say how Discover looks.
type DiscoverOptions struct {
	StateDir   string // where the servers found are remembered (mail/EMAIL.json)
	Rediscover bool   // look again instead of using the remembered servers
	Progress   Reporter
	Logger     *slog.Logger
}

// DiscoveryError: no mail server was found for the address. Unknown says
// the DNS knows nothing of its domain (a typo, most likely).
type DiscoveryError struct {
	Domain  string
	Unknown bool
	Err     error
}

func (e *DiscoveryError) Error() string { return e.Err.Error() }
func (e *DiscoveryError) Unwrap() error { return e.Err }

// Discover fills in the profile's IMAP and SMTP servers when they are not
// set: from what was remembered for the address, else by
// mailbox.Discover (whose result is then remembered).
func Discover(ctx context.Context, p *Profile, o DiscoverOptions) error {
	if p.IMAP != "" && p.SMTP != "" {
		return nil
	}
	prog := reporter(o.Progress)
	path, err := RememberedPath(o.StateDir, p.Email)
	if err != nil {
		return err
	}
	if !o.Rediscover {
		r, err := LoadRemembered(path)
		switch {
		case err == nil:
			useServers(p, r)
			prog.Printf("using the mail servers found for %s on %s: IMAP %s, SMTP %s (--rediscover looks again)",
				p.Email, r.Found.UTC().Format(time.DateOnly), r.IMAP, r.SMTP)
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	pool, err := RootPool(p.CARoots)
	if err != nil {
		return err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The client is shared with the ACME client: Discover bounds each
	// fetch itself, and never changes the client.
	cfg := mailbox.DiscoverConfig{HTTPClient: HTTPClient(pool), Logger: log.With("component", "discover")}
	resolver := net.DefaultResolver
	if p.DNSResolver != "" {
		if resolver, err = Resolver(p.DNSResolver); err != nil {
			return err
		}
		cfg.Resolver = resolver
	}
	prog.Printf("looking up the mail servers of %s (--imap and --smtp were not given)", p.Email)
	d, err := mailbox.Discover(ctx, p.Email, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		domain := p.Email[strings.LastIndex(p.Email, "@")+1:]
		return &DiscoveryError{Domain: domain, Unknown: domainUnknown(ctx, resolver, domain), Err: err}
	}
	r := &RememberedServers{
		Email: p.Email, IMAP: d.IMAP.URL(true), IMAPSource: d.IMAPSource, SMTP: d.SMTP.URL(false), SMTPSource: d.SMTPSource,
		User: d.Username, OAuth2Only: d.OAuth2, Found: time.Now().UTC(),
	}
	prog.Printf("found IMAP %s from %s", d.IMAP, d.IMAPSource)
	prog.Printf("found SMTP %s from %s", d.SMTP, d.SMTPSource)
	if d.Username != "" && d.Username != p.Email {
		prog.Printf("the autoconfig document names the login %q (--user overrides it)", d.Username)
	}
	if d.OAuth2 && p.Login.OAuthTokenCommand == "" {
		prog.Printf("warning: the provider's autoconfig document offers only OAuth2 logins; a password will likely be refused (use --oauth-token-command)")
	}
	if err := SaveRemembered(path, r); err != nil {
		prog.Printf("warning: could not remember the servers: %v", err)
	}
	useServers(p, r)
	return nil
}

// useServers fills the profile's missing servers and login from r.
func useServers(p *Profile, r *RememberedServers) {
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
