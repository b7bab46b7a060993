package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/issuer"
	"github.com/acmemail/acmemail/keystore"
)

// Profile is what decides a server certificate's issuance, recorded in its
// meta.json ("profile") so that renew repeats it unattended. It never holds
// a secret: the DNS provider is recorded by name, its credentials stay in
// the environment (as lego keeps them).
type Profile struct {
	Kind             string           `json:"kind"` // "server"
	Host             string           `json:"host"`
	Server           string           `json:"server"` // as given: a directory URL or a name
	Services         []string         `json:"services,omitempty"`
	ServiceChallenge bool             `json:"experimental_service_challenge,omitempty"`
	DNS              string           `json:"dns"` // lego provider name
	DNSResolver      string           `json:"dns_resolver,omitempty"`
	KeyType          keystore.KeyType `json:"key_type"`
	DeployHook       string           `json:"deploy_hook,omitempty"`
	Install          []string         `json:"install,omitempty"`
	CARoots          string           `json:"ca_roots,omitempty"`     // path: extra HTTPS roots
	IssuerRoots      string           `json:"issuer_roots,omitempty"` // path: the chain must verify to these
}

// NamedServers are the CAs --server may name for server certificates.
var NamedServers = map[string]string{
	"letsencrypt":         "https://acme-v02.api.letsencrypt.org/directory",
	"letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}

// DirectoryURL resolves p.Server (a name of NamedServers or an https URL).
func (p *Profile) DirectoryURL() (string, error) {
	if u := NamedServers[p.Server]; u != "" {
		return u, nil
	}
	if len(p.Server) > 8 && p.Server[:8] == "https://" {
		return p.Server, nil
	}
	return "", &issuer.SettingError{Setting: "server", Err: fmt.Errorf("%q is neither an https:// directory URL nor letsencrypt, letsencrypt-staging or sandbox", p.Server)}
}

// Manager obtains and renews the server certificates of a state directory.
type Manager struct {
	Store *keystore.Store // the state directory (its Servers view is used)
	// Getenv reads the DNS provider's RFC 2136 variables (nil: none).
	Getenv    func(string) string
	Logger    *slog.Logger
	Progress  func(msg string)
	UserAgent string
	// Hooks runs deploy hooks (its HookOutput and Environ are used).
	Hooks *issuer.Issuer
	// Install, if set, installs a saved and checked certificate into the
	// servers named by the profile's Install (see package server/install).
	Install func(ctx context.Context, targets []string, host string, keyPEM, chainPEM []byte, notAfter time.Time) error
}

// Env is what one run uses besides the profile: for the in-process
// sandbox, its directory, roots and DNS provider.
type Env struct {
	DirectoryURL string         // overrides the profile's server
	TLSRoots     *x509.CertPool // for HTTPS to the CA; nil: the system's plus CARoots
	IssuerRoots  *x509.CertPool // overrides the profile's IssuerRoots
	Provider     Provider       // overrides the profile's DNS
	// Replaces is the ARI certificate ID of the certificate renewed.
	Replaces string
	// NoRecord: the certificate is from a CA that ends with the command
	// (the in-process sandbox); it is saved, but renew skips it.
	NoRecord bool
	// Renewing, if set, is the serial of the certificate a renewal found
	// due: once the host is locked, a different one means another run has
	// renewed it meanwhile, and Obtain returns errRenewedMeanwhile.
	Renewing string
}

// errRenewedMeanwhile: another run renewed the host while this one waited
// for its lock.
var errRenewedMeanwhile = errors.New("renewed by another run meanwhile")

// Result is a saved server certificate.
type Result struct {
	Meta     keystore.CertMeta
	Paths    keystore.CertPaths
	Chain    []*x509.Certificate
	Profile  Profile
	Warnings []string
	RenewAt  time.Time
	Revoked  *time.Time // when acmemail revoked it; nil: not revoked
}

func (m *Manager) say(format string, args ...any) {
	if m.Progress != nil {
		m.Progress(fmt.Sprintf(format, args...))
	}
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// ErrNotManaged: no certificate for the host in the state directory.
var ErrNotManaged = errors.New("no server certificate for this host is managed here")

// Obtain obtains, checks and saves a certificate for p, then runs its
// deploy hook and installs it. Nothing is saved, run or installed for a
// certificate Check refuses.
func (m *Manager) Obtain(ctx context.Context, p Profile, env Env, wait bool) (*Result, error) {
	host, err := keystore.NormalizeHost(p.Host)
	if err != nil {
		return nil, &issuer.SettingError{Setting: "host", Err: err}
	}
	p.Host, p.Kind = host, "server"
	if p.Services, err = ParseServices(p.Services); err != nil {
		return nil, &issuer.SettingError{Setting: "service", Err: err}
	}
	if p.ServiceChallenge && len(p.Services) == 0 {
		return nil, &issuer.SettingError{Setting: "experimental-service-challenge", Err: errors.New("needs at least one --service")}
	}
	if p.KeyType == "" {
		p.KeyType = keystore.KeyP256
	}
	if !p.KeyType.CertificateKey() || p.KeyType == keystore.KeyEd25519 {
		return nil, &issuer.SettingError{Setting: "key-type", Err: fmt.Errorf("%s cannot be a TLS server key", p.KeyType)}
	}
	dirURL := env.DirectoryURL
	if dirURL == "" {
		if dirURL, err = p.DirectoryURL(); err != nil {
			return nil, err
		}
	}
	provider := env.Provider
	if provider == nil {
		getenv := m.Getenv
		if getenv == nil {
			getenv = func(string) string { return "" }
		}
		if provider, err = NewProvider(p.DNS, getenv); err != nil {
			return nil, &issuer.SettingError{Setting: "dns", Err: err}
		}
	}
	pool := env.TLSRoots
	if pool == nil {
		if pool, err = issuer.RootPool(p.CARoots); err != nil {
			return nil, err
		}
	}
	roots := env.IssuerRoots
	if roots == nil && p.IssuerRoots != "" {
		data, err := issuer.ReadPEMFile(p.IssuerRoots)
		if err != nil {
			return nil, &issuer.SettingError{Setting: "issuer-roots", Err: err}
		}
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(data)
	}
	store := m.Store.Servers()
	unlock, err := store.LockIdentity(ctx, host, false)
	if errors.Is(err, keystore.ErrLocked) && wait {
		unlock, err = store.LockIdentity(ctx, host, true)
	}
	if errors.Is(err, keystore.ErrLocked) {
		return nil, &issuer.LockedError{Err: issuer.WithHint(fmt.Errorf("another acmemail run is working on %s", host), "wait for it to finish, or run again with --wait-lock")}
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	if env.Renewing != "" {
		if _, _, meta, _, err := store.LoadCertificate(host); err == nil && meta.Serial != env.Renewing {
			return nil, errRenewedMeanwhile
		}
	}
	key, err := store.CertKey(host, p.KeyType)
	if err != nil {
		return nil, err
	}
	hc := issuer.HTTPClient(pool)
	acct, err := m.account(ctx, dirURL, hc)
	if err != nil {
		return nil, err
	}
	c := &Client{DirectoryURL: dirURL, HTTPClient: hc, UserAgent: m.UserAgent, AccountKey: acct.AccountKey, AccountURL: acct.AccountURL,
		Provider: provider, Resolver: p.DNSResolver, Logger: m.logger(), Progress: m.Progress}
	if env.TLSRoots != nil {
		c.PollInterval = 100 * time.Millisecond
	}
	req := Request{Host: host, Services: p.Services, ServiceChallenge: p.ServiceChallenge, Key: key, Replaces: env.Replaces}
	got, err := c.Obtain(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := Check(got.Chain, key.Public(), host, req.CertServices(), roots); err != nil {
		return nil, err
	}
	rec := p
	if env.NoRecord {
		rec.Server = "sandbox"
	}
	profJSON, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	meta := keystore.CertMeta{Directory: dirURL, Usage: "server", OrderURL: got.OrderURL, CertURL: got.CertURL, Profile: profJSON}
	paths, err := store.SaveCertificate(host, got.ChainPEM, meta)
	if err != nil {
		return nil, fmt.Errorf("the CA issued the certificate (%s), but it could not be saved: %w", got.CertURL, err)
	}
	_, chain, meta, paths, err := store.LoadCertificate(host)
	if err != nil {
		return nil, err
	}
	res := &Result{Meta: meta, Paths: paths, Chain: chain, Profile: rec}
	st := issuer.RenewalState{Serial: meta.Serial}
	if ri, err := acct.GetRenewalInfo(ctx, chain[0]); err == nil {
		st.Window, st.Chosen, st.NextCheck = ri, ri.Pick(), ri.NextCheck
	} else if errors.Is(err, acmemail.ErrNoRenewalInfo) {
		st.NoRenewalInfo, st.NextCheck = true, time.Now().Add(24*time.Hour)
	}
	if err := issuer.SaveRenewalState(store, host, st); err != nil {
		res.Warnings = append(res.Warnings, "the renewal window could not be recorded: "+err.Error())
	}
	res.RenewAt, _ = st.RenewAt(chain[0])
	m.say("saved the certificate for %s (serial %s, valid until %s) in %s", host, res.Serial(), meta.NotAfter.Format(time.DateOnly), paths.Dir)
	if err := m.deploy(ctx, res); err != nil {
		return res, err
	}
	return res, nil
}

// deploy installs the saved certificate and runs the deploy hook.
func (m *Manager) deploy(ctx context.Context, res *Result) error {
	var errs []error
	if len(res.Profile.Install) > 0 {
		if m.Install == nil {
			errs = append(errs, errors.New("--install is not available in this build"))
		} else {
			key, err := issuer.ReadFile(res.Paths.Key, 1<<20)
			if err == nil {
				var chain []byte
				if chain, err = issuer.ReadFile(res.Paths.Chain, 1<<20); err == nil {
					err = m.Install(ctx, res.Profile.Install, res.Meta.Email, key, chain, res.Meta.NotAfter)
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("install into %v: %w", res.Profile.Install, err))
			}
		}
	}
	if res.Profile.DeployHook != "" && m.Hooks != nil {
		iss := &issuer.Issued{Meta: res.Meta, Paths: res.Paths, Chain: res.Chain}
		if err := m.Hooks.RunHook(ctx, res.Profile.DeployHook, iss, ""); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &issuer.HookError{Err: err}
	}
	return nil
}

// account is the acmemail client of the saved account at dirURL, one
// registered if there is none.
func (m *Manager) account(ctx context.Context, dirURL string, hc *http.Client) (*acmemail.Client, error) {
	store := m.Store
	if _, err := store.PendingAccountKey(dirURL); err == nil {
		return nil, &issuer.PendingRolloverError{Directory: dirURL}
	}
	key, err := store.AccountKey(dirURL)
	if err != nil {
		return nil, err
	}
	var url string
	if a, err := store.LoadAccount(dirURL); err == nil {
		url = a.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return nil, err
	}
	c := &acmemail.Client{DirectoryURL: dirURL, HTTPClient: hc, UserAgent: m.UserAgent, AccountKey: key, AccountURL: url, Logger: m.logger(),
		OnAccount: func(u string) error {
			return store.SaveAccount(&keystore.Account{Directory: dirURL, URL: u, Key: key, Created: time.Now()})
		}}
	if c.AccountURL, err = c.EnsureAccount(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads the managed certificate of host and its recorded profile.
func (m *Manager) Load(host string) (*Result, error) {
	h, err := keystore.NormalizeHost(host)
	if err != nil {
		return nil, &issuer.SettingError{Setting: "host", Err: err}
	}
	store := m.Store.Servers()
	_, chain, meta, paths, err := store.LoadCertificate(h)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", h, ErrNotManaged)
	}
	if err != nil {
		return nil, err
	}
	res := &Result{Meta: meta, Paths: paths, Chain: chain}
	if len(meta.Profile) > 0 {
		if err := json.Unmarshal(meta.Profile, &res.Profile); err != nil {
			return nil, fmt.Errorf("%s: the recorded profile does not parse: %w", paths.Meta, err)
		}
	}
	st := issuer.LoadRenewalState(store, h, meta.Serial)
	res.RenewAt, _ = st.RenewAt(chain[0])
	res.Revoked = st.Revoked
	return res, nil
}

// List is every host with a server certificate, sorted.
func (m *Manager) List() ([]string, error) { return m.Store.Servers().ListIdentities() }

// Serial is the certificate's serial number as OpenSSL prints it (and
// acmemail's JSON): upper-case hex, whole bytes.
func (res *Result) Serial() string { return acmemail.FormatSerial(res.Chain[0].SerialNumber) }

// Due reports whether the certificate of res is due for renewal at now.
func (res *Result) Due(now time.Time) bool { return !now.Before(res.RenewAt) }

// Renew renews host's certificate if it is due (or force), repeating the
// recorded profile; it reports whether it renewed.
func (m *Manager) Renew(ctx context.Context, host string, force, wait bool) (*Result, bool, error) {
	cur, err := m.Load(host)
	if err != nil {
		return nil, false, err
	}
	if cur.Profile.Server == "sandbox" {
		return cur, false, fmt.Errorf("%s: its certificate is from the in-process sandbox, which is gone; obtain it again from a CA", cur.Meta.Email)
	}
	if m.Getenv != nil {
		// As for addresses: roots given at renewal replace the recorded ones.
		if roots := m.Getenv("ACMEMAIL_CA_ROOTS"); roots != "" {
			cur.Profile.CARoots, _ = filepath.Abs(roots)
		}
	}
	st := issuer.LoadRenewalState(m.Store.Servers(), cur.Meta.Email, cur.Meta.Serial)
	if st.Revoked != nil && !force {
		return cur, false, nil
	}
	if !force {
		// The CA may have moved the window (RFC 9773): ask again once
		// its Retry-After has passed, as renew does for addresses.
		pool, perr := issuer.RootPool(cur.Profile.CARoots)
		if acct, aerr := m.Store.LoadAccount(cur.Meta.Directory); perr == nil && aerr == nil {
			client := &acmemail.Client{DirectoryURL: cur.Meta.Directory, HTTPClient: issuer.HTTPClient(pool), UserAgent: m.UserAgent,
				AccountKey: acct.Key, AccountURL: acct.URL, Logger: m.logger()}
			issuer.RefreshRenewalInfo(ctx, client, m.Store.Servers(), cur.Meta.Email, cur.Chain[0], &st, time.Now())
			cur.RenewAt, _ = st.RenewAt(cur.Chain[0])
		}
		if !cur.Due(time.Now()) {
			return cur, false, nil
		}
	}
	var id string // replaces only where the CA offers renewal information
	if st.Window != nil && st.Revoked == nil {
		id, _ = acmemail.CertID(cur.Chain[0])
	}
	env := Env{Replaces: id}
	if !force {
		env.Renewing = cur.Meta.Serial
	}
	res, err := m.Obtain(ctx, cur.Profile, env, wait)
	if errors.Is(err, errRenewedMeanwhile) {
		if cur, err = m.Load(host); err != nil {
			return nil, false, err
		}
		return cur, false, nil
	}
	if err != nil && res == nil {
		return cur, false, err
	}
	return res, true, err
}

// Sorted reports a sorted copy of names (for stable output).
func Sorted(names []string) []string { return slices.Sorted(slices.Values(names)) }
