package issuer

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// NamedServer is a CA known by name, with its quirks.
type NamedServer struct {
	URL  string
	Join acmemail.JoinMode
}

// NamedServers are the CAs a Profile's Server may name.
var NamedServers = map[string]NamedServer{
	"castle":         {"https://acme.castle.cloud/acme/directory", acmemail.JoinOctet},
	"castle-staging": {"https://acme-staging.castle.cloud/acme/directory", acmemail.JoinOctet},
}

// Issuer obtains and renews the certificates of one state directory. Its
// fields are set once; Obtain, Renew and Plan may run concurrently (for
// different addresses; one address's runs exclude each other by its lock).
type Issuer struct {
	Store   *keystore.Store
	Secrets Secrets
	Logger  *slog.Logger // nil: no logs
	// Trace, if set, returns where the raw IMAP or SMTP protocol of a run
	// goes ("imap", "smtp"), or nil.
	Trace func(proto string) io.Writer
	// Terms is asked before an account is created at a CA with terms of
	// service (url), unless the run agreed already. nil: agreed.
	Terms func(ctx context.Context, url string) error
	// EAB gives the external account binding for a new account, or nil.
	EAB func() (*acmemail.EAB, error)
	// HookOutput receives each line the deploy hooks print. nil: discarded.
	HookOutput io.Writer
	// Environ is the environment hooks and secret commands start from
	// (nil: os.Environ).
	Environ   func() []string
	UserAgent string
	// OnOrderState, if set, sees every order state once it is recorded.
	OnOrderState func(acmemail.OrderState)
	// Limits bound the logins per mail server and the requests per CA of
	// the renewals of one RenewAll (zero fields: the defaults).
	Limits Limits

	hookMu sync.Mutex // hooks run one at a time
}

// Secrets gives a run the secrets it needs, when it needs them.
type Secrets interface {
	// MailLogin returns the IMAP and submission logins of p's account.
	MailLogin(ctx context.Context, p *Profile) (imap, smtp mailbox.Credentials, err error)
	// AlsoPassword returns the mail password of an address with a mailbox
	// of its own.
	AlsoPassword(ctx context.Context, p *Profile, a Also) (string, error)
	// P12Password returns the password of the PKCS#12 files.
	P12Password(ctx context.Context, p *Profile) (string, error)
}

// Reporter shows a run's progress.
type Reporter interface {
	Printf(format string, args ...any)
	Event(acmemail.Event) // the order flow's events
	EndLive()             // a live line (waiting for mail) ends
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Event(acmemail.Event)  {}
func (quiet) EndLive()              {}
func reporter(r Reporter) Reporter {
	if r == nil {
		return quiet{}
	}
	return r
}

func (is *Issuer) logger() *slog.Logger {
	if is.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return is.Logger
}

func (is *Issuer) environ() []string {
	if is.Environ != nil {
		return is.Environ()
	}
	return os.Environ()
}

// Issued is a saved certificate.
type Issued struct {
	Meta     keystore.CertMeta
	Paths    keystore.CertPaths
	Chain    []*x509.Certificate
	Key      crypto.Signer // the certificate's key, as saved
	P12      []byte        // the PKCS#12 file's content, written to Paths.PKCS12
	OrderURL string
}

// run is what one Obtain or Renew of one address uses: the CA, the mail
// connections, the client. It is assembled once by open and not changed
// after; close releases it.
type run struct {
	is        *Issuer
	p         Profile // what the run uses
	rec       Profile // what it records with the certificates
	secrets   Secrets
	prog      Reporter
	log       *slog.Logger
	dirURL    string
	join      acmemail.JoinMode
	world     *sandbox.World
	pool      *x509.CertPool // trusted for HTTPS, IMAP and SMTP
	issuers   *x509.CertPool // the CA's roots the chain must verify to, or nil
	smime     *x509.CertPool // roots for S/MIME-signed challenges, or nil
	lookupTXT func(context.Context, string) ([]string, error)
	resolver  string // whom lookupTXT asks ("": the system resolver)
	closers   []func()

	// How the run times its challenges (see useTiming): learnable says
	// whether it learns about the CA, learned is what it knew before.
	rt        RunTiming
	learnable bool
	learned   *CATiming

	claims *claimLog   // the client's reply guard, noting challenge claims
	input  *inputWatch // the mail of --manual or --pipe, or nil

	together *together // what the renewals of one RenewAll share, or nil
}

func (r *run) close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// open resolves the profile's CA and the roots it trusts.
func (is *Issuer) open(p Profile, world *sandbox.World, prog Reporter) (*run, error) {
	r := &run{is: is, p: p, rec: p, secrets: is.Secrets, prog: reporter(prog), log: is.logger(), world: world}
	dirURL, join, err := p.Directory(world)
	if err != nil {
		return nil, err
	}
	r.dirURL, r.join = dirURL, join
	var extraRoots []byte
	if world != nil {
		extraRoots, r.lookupTXT = world.TLSRootsPEM, world.LookupTXT
		r.resolver = fmt.Sprintf("in-process sandbox %p", world)
	}
	if p.DNSResolver != "" && r.lookupTXT == nil {
		res, err := Resolver(p.DNSResolver)
		if err != nil {
			return nil, err
		}
		r.lookupTXT, r.resolver = res.LookupTXT, p.DNSResolver
	}
	pool, err := RootPool(p.CARoots, extraRoots)
	if err != nil {
		return nil, err
	}
	r.pool = pool
	// The files the run reads are read now, before anything is sent.
	if r.issuers, err = pemPool("issuer_roots", p.IssuerRoots); err != nil {
		return nil, err
	}
	if r.issuers == nil && world != nil {
		r.issuers = x509.NewCertPool()
		r.issuers.AppendCertsFromPEM(world.IssuerRootPEM)
	}
	if r.smime, err = pemPool("smime_roots", p.SMIMERoots); err != nil {
		return nil, err
	}
	return r, nil
}

// pemPool is the pool of the PEM file at path (the profile's setting), or
// nil for "".
func pemPool(setting, path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	data, err := ReadPEMFile(path)
	if err != nil {
		return nil, &SettingError{Setting: setting, Err: err}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(data)
	return pool, nil
}

// Directory is the directory URL of the profile's CA and how it joins
// tokens; world is the in-process sandbox for Server "sandbox".
func (p *Profile) Directory(world *sandbox.World) (string, acmemail.JoinMode, error) {
	url, join := p.Server, acmemail.JoinString
	switch {
	case p.Server == "sandbox":
		if world == nil {
			return "", join, WithHint(fmt.Errorf("the in-process sandbox runs only as long as the command that started it"),
				"run a sandbox with acmemail sandbox and use its directory URL")
		}
		url = world.DirectoryURL
	case NamedServers[p.Server].URL != "":
		url, join = NamedServers[p.Server].URL, NamedServers[p.Server].Join
	case strings.HasPrefix(p.Server, "https://"):
	case strings.HasPrefix(p.Server, "http://"):
		return "", join, WithHint(&SettingError{Setting: "server", Err: fmt.Errorf("%s: ACME needs HTTPS", p.Server)}, "use the https:// URL of the directory")
	default:
		err := &SettingError{Setting: "server", Err: fmt.Errorf("%q is neither a directory URL nor a known name (sandbox, castle, castle-staging)", p.Server)}
		for _, name := range []string{"sandbox", "castle", "castle-staging"} {
			if editDistance(strings.ToLower(p.Server), name) <= 2 {
				return "", join, WithHint(err, "did you mean --server "+name+"?")
			}
		}
		return "", join, err
	}
	if p.Join != "" {
		j, err := acmemail.ParseJoinMode(p.Join)
		if err != nil {
			return "", join, &SettingError{Setting: "join", Err: err}
		}
		join = j
	}
	return url, join, nil
}

// Resolver is the DNS resolver at addr (HOST:PORT).
func Resolver(addr string) (*net.Resolver, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, &SettingError{Setting: "dns_resolver", Err: fmt.Errorf("%q: want HOST:PORT", addr)}
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}, nil
}

// lock takes the address's run lock for the rest of the run: two runs for
// one address never interleave (orders, replies, key and install).
func (r *run) lock(ctx context.Context, wait bool) error {
	store, email := r.is.Store, r.p.Email
	unlock, err := store.LockIdentity(ctx, email, false)
	if errors.Is(err, keystore.ErrLocked) && wait {
		r.prog.Printf("another acmemail run is working on %s; waiting for it to finish", email)
		unlock, err = store.LockIdentity(ctx, email, true)
	}
	if errors.Is(err, keystore.ErrLocked) {
		return &LockedError{WithHint(fmt.Errorf("another acmemail run is working on %s", email),
			"wait for it to finish, or run again with --wait-lock to wait for it")}
	}
	if err != nil {
		return err
	}
	r.closers = append(r.closers, unlock)
	return nil
}

// startKey makes (or loads) the pending key of a certificate in the
// background, so that key generation (slow for RSA) and its durable write
// overlap the mailbox logins and the account setup instead of following
// them. close waits for it, so a run that fails early does not exit in the
// middle of the write. A key made for a run that then fails stays pending
// and is reused by the next run (see keystore.Store.CertKey).
func (r *run) startKey(store *keystore.Store) func() (crypto.Signer, error) {
	email, kt := r.p.Email, r.p.KeyType
	var key crypto.Signer
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		key, err = store.CertKey(email, kt)
	}()
	r.closers = append(r.closers, func() { <-done })
	return func() (crypto.Signer, error) {
		<-done
		return key, err
	}
}

// newClient builds the ACME client with the stored account (registering
// one, after the terms-of-service check, when there is none).
func (r *run) newClient(ctx context.Context, mail acmemail.Mail, agreeTOS bool, guard func(acmemail.ReplyGuard) acmemail.ReplyGuard) (*acmemail.Client, error) {
	mv := acmemail.MailVerifier{LookupTXT: r.lookupTXT, TrustAuthservID: r.p.TrustAuthservID, SMIMERoots: r.smime}
	var verifier acmemail.Verifier = &mv
	if r.together != nil {
		verifier = &keyVerifier{v: mv, resolver: r.resolver, keys: &r.together.keys}
	}
	store, dirURL := r.is.Store, r.dirURL
	if err := PendingRollover(store, dirURL, r.p.Server); err != nil {
		return nil, err
	}
	accountKey, err := store.AccountKey(dirURL)
	if err != nil {
		return nil, err
	}
	var accountURL string
	if acct, err := store.LoadAccount(dirURL); err == nil {
		accountURL = acct.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return nil, err
	}
	contact := r.p.Contact
	ua := r.is.UserAgent
	if ua == "" {
		ua = "acmemail"
	}
	client := &acmemail.Client{
		DirectoryURL:         dirURL,
		HTTPClient:           r.httpClient(),
		UserAgent:            ua,
		AccountKey:           accountKey,
		AccountURL:           accountURL,
		Contact:              MailtoContacts(contact),
		Join:                 r.join,
		Verifier:             verifier,
		InsecureSkipMailAuth: r.p.SkipMailAuth,
		Guard:                acmemail.ReplyGuard(store),
		Mail:                 mail,
		MailWait:             r.rt.MailWait,
		ReplySettle:          r.rt.ReplySettle,
		PostAtOnce:           r.rt.PostAtOnce,
		Logger:               r.log.With("component", "acme"),
		Progress:             r.prog.Event,
		OnAccount: func(u string) error {
			return store.SaveAccount(&keystore.Account{Directory: dirURL, URL: u, Contact: contact, Key: accountKey, Created: time.Now()})
		},
	}
	if guard != nil {
		client.Guard = guard(client.Guard)
	}
	r.claims = &claimLog{ReplyGuard: client.Guard}
	client.Guard = r.claims
	if accountURL != "" {
		return client, nil
	}
	if !agreeTOS && r.world == nil && r.is.Terms != nil {
		dir, err := client.Directory(ctx)
		if err != nil {
			return nil, err
		}
		if dir.Meta != nil && dir.Meta.TermsOfService != "" {
			if err := r.is.Terms(ctx, dir.Meta.TermsOfService); err != nil {
				return nil, err
			}
		}
	}
	if r.is.EAB != nil {
		if client.EAB, err = r.is.EAB(); err != nil {
			return nil, err
		}
	}
	if w := r.world; w != nil && client.EAB == nil && w.EABKeyID != "" {
		key, err := acmemail.ParseEABKey(w.EABHMACKey)
		if err != nil {
			return nil, err
		}
		client.EAB = &acmemail.EAB{KeyID: w.EABKeyID, HMACKey: key}
	}
	if _, err := client.EnsureAccount(ctx); err != nil {
		return nil, err
	}
	return client, nil
}

// httpClient is the HTTP client of the run's CA: the process's client for
// its roots, bounded per CA when the run is one of many renewals.
func (r *run) httpClient() *http.Client {
	c := HTTPClient(r.pool)
	if r.together != nil {
		c = r.together.httpClient(c, r.dirURL)
	}
	return c
}

// PendingRollover reports an interrupted account key rollover at dirURL,
// which must be finished before the account is used.
func PendingRollover(store *keystore.Store, dirURL, server string) error {
	if _, err := store.PendingAccountKey(dirURL); err == nil {
		return WithHint(&PendingRolloverError{Directory: dirURL}, "finish it with: acmemail account rollover --server "+server)
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	return nil
}

// MailtoContacts makes each contact a mailto: URL.
func MailtoContacts(list []string) []string {
	var out []string
	for _, c := range list {
		if !strings.HasPrefix(c, "mailto:") {
			c = "mailto:" + c
		}
		out = append(out, c)
	}
	return out
}

// target is where one certificate of a run goes: the address's main slot,
// or the encryption slot of a split pair.
type target struct {
	store *keystore.Store
	usage acmemail.Usage
	key   func() (crypto.Signer, error) // nil: the store's pending key
}

// issue orders a certificate, checks it, saves it with its key, and
// writes the PKCS#12 file into the state directory.
func (r *run) issue(ctx context.Context, client *acmemail.Client, t target, p12Password, replaces string, reuseKey bool) (*Issued, error) {
	p, store := &r.p, t.store
	saver := &orderSaver{store: store, email: p.Email, hook: r.is.OnOrderState, warn: r.prog.Printf}
	resume := saver.load(r.prog)
	// The certificate must fit on the disk once the CA has issued it.
	if err := checkSpace(store, resume != nil); err != nil {
		return nil, err
	}
	var certKey crypto.Signer
	switch {
	case reuseKey:
		key, _, _, _, err := store.LoadCertificate(p.Email)
		if err != nil {
			return nil, err
		}
		certKey = key
	default:
		getKey := t.key
		if getKey == nil {
			getKey = func() (crypto.Signer, error) { return store.CertKey(p.Email, p.KeyType) }
		}
		key, err := getKey()
		if err != nil {
			return nil, err
		}
		certKey = key
	}
	emails := p.Emails()
	csr, err := acmemail.NewCSR(certKey, emails, t.usage)
	if err != nil {
		return nil, err
	}
	r.prog.Printf("ordering a certificate for %s from %s", strings.Join(emails, ", "), r.dirURL)
	cert, err := client.Obtain(ctx, acmemail.ObtainRequest{
		Emails: emails, CSR: csr, Replaces: replaces,
		Resume: resume, OnState: saver.save,
	})
	r.prog.EndLive()
	if err != nil && ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The run's --timeout, not a signal: timings learned about
			// the CA that got nowhere in all that time are forgotten, so
			// the next run is a safe one rather than a repeat.
			r.forgetLearned()
		}
		return nil, saver.interrupted(err, r.claims.has)
	}
	if err != nil && r.input != nil && r.input.failed.Load() {
		return nil, saver.inputEnded(err, r.claims.has)
	}
	if err != nil {
		r.unlearn(err)
		return nil, err
	}
	r.learn(cert.Timings)
	// The order is done at the CA. If its certificate cannot be used,
	// continuing the order again would only fetch the same one: forget it.
	forget := func() {
		if err := store.RemoveOrderState(p.Email); err != nil {
			r.prog.Printf("warning: %v", err)
		}
	}
	warnings, err := acmemail.CertificateCheck{PublicKey: certKey.Public(), Emails: emails, Usage: t.usage, Roots: r.issuers}.Check(cert.Chain)
	if err != nil {
		forget()
		err = fmt.Errorf("the CA's certificate is not acceptable, nothing was saved: %w", err)
		if errors.Is(err, acmemail.ErrKeyUsageRefused) {
			return nil, WithHint(err, keyUsageHint(cert.Profile, t.usage))
		}
		return nil, WithHint(err, "report this to the CA")
	}
	for _, w := range warnings {
		r.prog.Printf("warning: %s", w)
	}
	var also []string
	for _, a := range p.Also {
		also = append(also, a.Email)
	}
	meta := keystore.CertMeta{
		Email: p.Email, Also: strings.Join(also, ","), Directory: r.dirURL, KeyType: p.KeyType, Usage: t.usage.String(),
		Serial: cert.Chain[0].SerialNumber.Text(16), NotBefore: cert.Chain[0].NotBefore, NotAfter: cert.Chain[0].NotAfter,
		OrderURL: cert.OrderURL, CertURL: cert.CertURL, Profile: r.rec.encode(),
	}
	// The certificate is saved with its PKCS#12 file in one install,
	// which also removes the order's state: until both are saved, the
	// order can be continued, and its certificate downloaded again.
	prof, _ := keystore.ParseP12Profile(p.P12Profile)
	p12, err := keystore.EncodePKCS12(certKey, cert.Chain, p12Password, prof)
	if err != nil {
		return nil, notSaved(store, meta.Serial, cert.OrderURL, err)
	}
	inst, err := store.SaveCertificateWithPKCS12(p.Email, cert.ChainPEM, meta, p12)
	if err != nil {
		return nil, notSaved(store, meta.Serial, cert.OrderURL, err)
	}
	// RFC 9773: the window is fetched right after issuance.
	if ri := cert.RenewalInfo; ri != nil {
		st := RenewalState{Serial: meta.Serial}
		st.adopt(ri)
		if err := saveFetchedWindow(store, p.Email, st); err != nil {
			r.prog.Printf("warning: %v", err)
		}
	}
	return &Issued{Meta: inst.Meta, Paths: inst.CertPaths, Chain: inst.Chain, Key: inst.Key, P12: p12, OrderURL: cert.OrderURL}, nil
}

// keyUsageHint says what to do about a certificate whose keyUsage does
// not allow what it was requested for: the CA's profile decides it.
func keyUsageHint(profile string, u acmemail.Usage) string {
	which := "the CA's certificate profile"
	if profile != "" {
		which = fmt.Sprintf("the CA's certificate profile %q (named in the order)", profile)
	}
	other := "sign"
	if u == acmemail.UsageSign {
		other = "encrypt"
	}
	return which + " sets the key usage whatever the request asks (secsy-pki's smime-sign profile, for one, issues digitalSignature only): " +
		"ask the CA's operator for a profile that allows " + u.String() + ", or obtain with --usage " + other + " if that is what this CA issues"
}

// notSaved is the error of a certificate the CA issued that could not be
// saved. Its order's state is kept: the next run continues the order and
// downloads the certificate again, without a new order or reply.
func notSaved(store *keystore.Store, serial, orderURL string, err error) error {
	err = fmt.Errorf("the CA issued the certificate (serial %s), but it could not be saved: %w", acmemail.FormatSerialText(serial), err)
	again := "run the same command again: it downloads this certificate from its order " + orderURL + ", without a new order or reply"
	if errors.Is(err, syscall.ENOSPC) {
		return WithHint(err, "free space on the disk of "+store.Dir+", then "+again)
	}
	return WithHint(err, "once the cause is fixed, "+again)
}

// RandomToken is a random hex string (sandbox passwords).
func RandomToken() string {
	b := make([]byte, 18)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// editDistance is the Levenshtein distance of a and b (short strings).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
