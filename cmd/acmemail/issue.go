package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/acmemail/acmemail/acmemail/sandbox"
	"github.com/acmemail/acmemail/keystore"
	"github.com/acmemail/acmemail/mailbox"
)

// identity is one address and everything needed to get it a certificate,
// resolved from obtain's flags (or, for renew, from what the certificate's
// metadata recorded). It never holds a password.
type identity struct {
	email           string
	also            []string            // more addresses in the same certificate (--also)
	alsoBoxes       map[string]*alsoBox // their own mailboxes, by lowercased address
	server          string              // as given: a name, "sandbox" or a directory URL
	join            string              // --join as given ("" = per server)
	imapURL         string              // "" = the sandbox's
	smtpURL         string
	user            string // "" = email
	mailbox         string
	keyType         keystore.KeyType
	usage           acmemail.Usage
	profile         keystore.P12Profile
	insecure        bool
	skipMailAuth    bool
	trustAuthserv   string
	smimeRoots      string
	issuerRoots     []byte // PEM of --issuer-roots, checked when read
	issuerRootsFile string // its absolute path, recorded for renew
	dnsResolver     string
	mailWait        time.Duration
	replySettle     time.Duration // < 0: per server
	contact         []string
	agreeTOS        bool
	eab             eabFlags  // for a new account at a CA that requires EAB
	cred            credFlags // where the login comes from (no secrets)
	deployHook      string    // run after each issuance (sh -c)

	// renew: the login sources obtain recorded (see renewCred).
	keptLogin loginSources
}

// identity validates obtain's flags for email.
func (o *obtainOptions) identity(email string) (*identity, error) {
	email, err := checkEmail(email)
	if err != nil {
		return nil, err
	}
	kt, err := keystore.ParseKeyType(o.keyType)
	if err != nil || kt == "ed25519" {
		return nil, usageErrorf("--key-type %q: choose rsa2048, rsa3072, rsa4096, p256 or p384", o.keyType)
	}
	usage, err := acmemail.ParseUsage(o.usage)
	if err != nil {
		return nil, usageErrorf("--usage: %w", err)
	}
	profile := keystore.P12Profile(o.p12Profile)
	if profile != "modern" && profile != "legacy" {
		return nil, usageErrorf("--p12-profile %q: choose modern or legacy", o.p12Profile)
	}
	also, boxes, err := o.also.resolve(email)
	if err != nil {
		return nil, err
	}
	cred := o.cred
	cred.passwordFile = o.passwordFile
	issuerRoots, err := readIssuerRoots(o.issuerRoots)
	if err != nil {
		return nil, err
	}
	return &identity{
		email: email, also: also, alsoBoxes: boxes, issuerRoots: issuerRoots, issuerRootsFile: absPath(o.issuerRoots), server: o.server, join: o.join, imapURL: o.imap, smtpURL: o.smtp, user: o.user,
		mailbox: o.mailboxName, keyType: kt, usage: usage, profile: profile, insecure: o.insecure,
		skipMailAuth: o.skipMailAuth, trustAuthserv: o.trustAuthserv, smimeRoots: o.smimeRoots,
		dnsResolver: o.dnsResolver, mailWait: o.mailWait, replySettle: o.replySettle,
		contact: o.contact, agreeTOS: o.agreeTOS, eab: o.eab, cred: cred, deployHook: o.life.deployHook,
	}, nil
}

// session holds what one run for one identity uses: the CA, the mail
// connections, the state directory. Close releases all of it.
type session struct {
	g    *globals
	id   *identity
	prog *progress
	log  *slog.Logger

	dirURL       string
	join         acmemail.JoinMode
	replySettle  time.Duration
	world        *sandbox.World // the in-process sandbox, or nil
	noMail       bool           // --manual or --pipe: no IMAP and SMTP
	extMail      acmemail.Mail  // with noMail: what replaces them
	extraRoots   []byte
	lookupTXT    func(context.Context, string) ([]string, error)
	mailPassword string
	cred         mailCreds
	pool         *x509.CertPool
	store        *keystore.Store
	mail         *mailAdapter
	multi        *multiMail // several mailboxes (--also-imap), or nil
	client       *acmemail.Client
	certKey      func() (crypto.Signer, error) // started by startCertKey, or nil
	orderOnDisk  *acmemail.OrderState          // the order state last read or written (saveOrderState)

	closers []func()
}

func newSession(g *globals, id *identity, prog *progress) *session {
	return &session{g: g, id: id, prog: prog, log: g.logger()}
}

// Close releases the session's connections (and stops its sandbox), last
// opened first.
func (s *session) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// resolveServer turns --server into a directory URL and the CA's quirks;
// for "sandbox" it starts the in-process sandbox with a mailbox for the
// identity.
func (s *session) resolveServer(ctx context.Context, sb *sandboxFlags) error {
	id := s.id
	s.dirURL, s.join, s.replySettle = id.server, acmemail.JoinString, id.replySettle
	switch {
	case id.server == "sandbox":
		opts, err := sb.options()
		if err != nil {
			return err
		}
		opts.Logger = s.log.With("component", "sandbox")
		w, err := sandbox.Start(ctx, opts)
		if err != nil {
			return fmt.Errorf("start the sandbox: %w", err)
		}
		s.closers = append(s.closers, func() { w.Close() })
		s.world = w
		if err := s.sandboxLogin(ctx, w, opts.OAuth); err != nil {
			return err
		}
		s.dirURL, s.extraRoots, s.lookupTXT = w.DirectoryURL, w.TLSRootsPEM, w.LookupTXT
		if id.imapURL == "" {
			id.imapURL = w.IMAPURL
		}
		if id.smtpURL == "" {
			id.smtpURL = w.SMTPURL
		}
		if s.replySettle < 0 {
			s.replySettle = 0
		}
		id.agreeTOS = true
		s.prog.printf("started the sandbox CA at %s", w.DirectoryURL)
	case namedServers[id.server].url != "":
		s.dirURL, s.join = namedServers[id.server].url, namedServers[id.server].join
	case strings.HasPrefix(id.server, "https://"):
	case strings.HasPrefix(id.server, "http://"):
		return withHint(usageErrorf("--server %s: ACME needs HTTPS", id.server), "use the https:// URL of the directory")
	default:
		return usageErrorf("--server %q is neither a directory URL nor a known name (sandbox, castle, castle-staging)", id.server)
	}
	if s.replySettle < 0 {
		s.replySettle = defaultReplySettle
	}
	if id.join != "" {
		j, err := acmemail.ParseJoinMode(id.join)
		if err != nil {
			return usageErrorf("--join: %w", err)
		}
		s.join = j
	}
	if !s.noMail {
		if err := s.discoverServers(ctx); err != nil {
			return err
		}
	}
	if id.user == "" {
		id.user = id.email
	}
	if id.dnsResolver != "" && s.lookupTXT == nil {
		if _, _, err := net.SplitHostPort(id.dnsResolver); err != nil {
			return usageErrorf("--dns-resolver %q: want HOST:PORT", id.dnsResolver)
		}
		addr := id.dnsResolver
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
		s.lookupTXT = r.LookupTXT
	}
	pool, err := s.g.rootPool(s.extraRoots)
	if err != nil {
		return err
	}
	s.pool = pool
	return nil
}

// openStore opens the state directory.
func (s *session) openStore() error {
	store, err := openState(s.g.getenv)
	if err != nil {
		return err
	}
	s.store = store
	return nil
}

// mailConfigs builds the IMAP and SMTP configurations of the identity
// (endpoints, credentials, TLS), for openMail and acmemail doctor.
func (s *session) mailConfigs() (mailbox.IMAPConfig, mailbox.SMTPConfig, error) {
	id := s.id
	imapEP, err := mailbox.ParseIMAPURL(id.imapURL)
	if err != nil {
		return mailbox.IMAPConfig{}, mailbox.SMTPConfig{}, usageErrorf("--imap: %w", err)
	}
	smtpEP, err := mailbox.ParseSMTPURL(id.smtpURL)
	if err != nil {
		return mailbox.IMAPConfig{}, mailbox.SMTPConfig{}, usageErrorf("--smtp: %w", err)
	}
	imapCreds, smtpCreds := s.credentials()
	return mailbox.IMAPConfig{
			Endpoint: imapEP, Credentials: imapCreds, Mailbox: id.mailbox,
			TLSConfig: imapTLSConfig(s.pool), AllowInsecure: id.insecure, Logger: s.log.With("component", "imap"),
			DebugWriter: s.g.protocolTrace("imap"),
		}, mailbox.SMTPConfig{
			Endpoint: smtpEP, Credentials: smtpCreds, TLSConfig: smtpTLSConfig(s.pool), AllowInsecure: id.insecure,
			Logger: s.log.With("component", "smtp"), DebugWriter: s.g.protocolTrace("smtp"),
		}, nil
}

// openMail starts watching the mailbox and logs in to the submission
// server, so a wrong password is found before the CA is contacted.
func (s *session) openMail(ctx context.Context) error {
	id := s.id
	imapCfg, smtpCfg, err := s.mailConfigs()
	if err != nil {
		return err
	}
	watcher, err := mailbox.Watch(ctx, imapCfg)
	if err != nil {
		return withHint(fmt.Errorf("open the mailbox: %w", err), imapHints(err, id.imapURL)...)
	}
	s.closers = append(s.closers, func() { watcher.Close() })
	s.prog.printf("watching %s on %s", id.mailbox, imapCfg.Endpoint.Host)
	sender := mailbox.NewSender(smtpCfg)
	s.closers = append(s.closers, func() { sender.Close() })
	if err := sender.Prepare(ctx); err != nil {
		return withHint(fmt.Errorf("log in to the submission server: %w", err), smtpHints(err)...)
	}
	s.mail = &mailAdapter{watcher, sender}
	return nil
}

// mailVerifier builds the checker of challenge-mail authenticity.
func (s *session) mailVerifier() (*acmemail.MailVerifier, error) {
	v := &acmemail.MailVerifier{LookupTXT: s.lookupTXT, TrustAuthservID: s.id.trustAuthserv}
	if s.id.smimeRoots != "" {
		data, err := os.ReadFile(s.id.smimeRoots)
		if err != nil {
			return nil, usageErrorf("--smime-roots: %w", err)
		}
		v.SMIMERoots = x509.NewCertPool()
		if !v.SMIMERoots.AppendCertsFromPEM(data) {
			return nil, usageErrorf("--smime-roots %s holds no PEM certificate", s.id.smimeRoots)
		}
	}
	return v, nil
}

// clientMail is what the order flow reads and sends mail with: several
// mailboxes (--also-imap), the mailbox, or what replaces it (--manual,
// --pipe); nil before any is open.
func (s *session) clientMail() acmemail.Mail {
	switch {
	case s.multi != nil:
		return s.multi
	case s.mail != nil:
		return *s.mail
	case s.extMail != nil:
		return s.extMail
	}
	return nil
}

// newClient builds the ACME client with the stored account (registering
// one, after the terms-of-service check, when there is none).
func (s *session) newClient(ctx context.Context) error {
	verifier, err := s.mailVerifier()
	if err != nil {
		return err
	}
	store, dirURL := s.store, s.dirURL
	if err := pendingRolloverError(store, dirURL, s.id.server); err != nil {
		return err
	}
	accountKey, err := store.AccountKey(dirURL)
	if err != nil {
		return err
	}
	var accountURL string
	if acct, err := store.LoadAccount(dirURL); err == nil {
		accountURL = acct.URL
	} else if !errors.Is(err, keystore.ErrNotFound) {
		return err
	}
	contact := s.id.contact
	client := &acmemail.Client{
		DirectoryURL:         dirURL,
		HTTPClient:           httpClient(s.pool),
		UserAgent:            "acmemail/" + versionString(),
		AccountKey:           accountKey,
		AccountURL:           accountURL,
		Contact:              mailtoContacts(contact),
		Join:                 s.join,
		Verifier:             verifier,
		InsecureSkipMailAuth: s.id.skipMailAuth,
		Guard:                storeGuard{store},
		MailWait:             s.id.mailWait,
		ReplySettle:          s.replySettle,
		Logger:               s.log.With("component", "acme"),
		Progress:             s.prog.event,
		OnAccount: func(u string) error {
			return store.SaveAccount(&keystore.Account{Directory: dirURL, URL: u, Contact: contact, Key: accountKey, Created: time.Now()})
		},
	}
	client.Mail = s.clientMail()
	if accountURL == "" {
		if err := agreeToTerms(ctx, s.g, client, s.id.agreeTOS); err != nil {
			return err
		}
		if client.EAB, err = s.id.eab.load(s.g); err != nil {
			return err
		}
		if w := s.world; w != nil && client.EAB == nil && w.EABKeyID != "" {
			key, err := acmemail.ParseEABKey(w.EABHMACKey)
			if err != nil {
				return err
			}
			client.EAB = &acmemail.EAB{KeyID: w.EABKeyID, HMACKey: key}
		}
		if _, err := client.EnsureAccount(ctx); err != nil {
			return eabRequiredError(err)
		}
	}
	s.client = client
	return nil
}

// issueRequest says how to issue: which certificate it replaces, whether
// to keep the current key.
type issueRequest struct {
	replaces string // ARI certificate ID of the certificate being renewed, or ""
	reuseKey bool   // finalize with the installed key instead of a new one
}

// issued is a saved certificate.
type issued struct {
	meta   keystore.CertMeta
	paths  keystore.CertPaths
	cert   *acmemail.Certificate
	key    crypto.Signer // the certificate's key, as saved
	p12    []byte        // the PKCS#12 file's content
	p12Out string        // where the PKCS#12 file was written (cert.p12)
}

// issue orders a certificate, checks it, saves it with its key, and
// writes the PKCS#12 file into the state directory.
func (s *session) issue(ctx context.Context, p12Password string, req issueRequest) (*issued, error) {
	id, store := s.id, s.store
	var certKey crypto.Signer
	if req.reuseKey {
		key, _, _, _, err := store.LoadCertificate(id.email)
		if err != nil {
			return nil, err
		}
		certKey = key
	} else {
		getKey := s.certKey
		if getKey == nil {
			getKey = func() (crypto.Signer, error) { return store.CertKey(id.email, id.keyType) }
		}
		key, err := getKey()
		if err != nil {
			return nil, err
		}
		certKey = key
	}
	csr, err := acmemail.NewCSR(certKey, id.emails(), id.usage)
	if err != nil {
		return nil, err
	}
	s.prog.printf("ordering a certificate for %s from %s", strings.Join(id.emails(), ", "), s.dirURL)
	cert, err := s.client.Obtain(ctx, acmemail.ObtainRequest{
		Emails: id.emails(), CSR: csr, Replaces: req.replaces,
		Resume: s.orderState(), OnState: s.saveOrderState,
	})
	s.prog.endLive()
	if err != nil {
		return nil, err
	}
	// The order is done at the CA. If its certificate cannot be used,
	// continuing the order again would only fetch the same one: forget it.
	forget := func() {
		if err := store.RemoveOrderState(id.email); err != nil {
			s.prog.printf("warning: %v", err)
		}
	}
	warnings, err := acmemail.CertificateCheck{PublicKey: certKey.Public(), Emails: id.emails(), Usage: id.usage, Roots: s.issuerRoots()}.Check(cert.Chain)
	if err != nil {
		forget()
		return nil, withHint(fmt.Errorf("the CA's certificate is not acceptable, nothing was saved: %w", err), "report this to the CA")
	}
	for _, w := range warnings {
		s.prog.printf("warning: %s", w)
	}
	meta := keystore.CertMeta{
		Email: id.email, Also: strings.Join(id.also, ","), Directory: s.dirURL, KeyType: id.keyType, Usage: id.usage.String(),
		Serial: cert.Chain[0].SerialNumber.Text(16), NotBefore: cert.Chain[0].NotBefore, NotAfter: cert.Chain[0].NotAfter,
		OrderURL: cert.OrderURL, CertURL: cert.CertURL, Settings: s.settings(),
	}
	paths, err := store.SaveCertificate(id.email, cert.ChainPEM, meta)
	if err != nil {
		forget()
		return nil, err
	}
	// RFC 9773: the window is fetched right after issuance (acmez did).
	if ri := cert.RenewalInfo; ri != nil {
		st := renewalState{Serial: meta.Serial}
		st.adopt(ri)
		if err := saveFetchedWindow(store, id.email, st); err != nil {
			s.prog.printf("warning: %v", err)
		}
	}
	key, chain, meta, _, err := store.LoadCertificate(id.email)
	if err != nil {
		return nil, err
	}
	p12, err := keystore.EncodePKCS12(key, chain, p12Password, id.profile)
	if err != nil {
		return nil, err
	}
	if err := keystore.WriteFileAtomic(paths.PKCS12, p12, 0o600); err != nil {
		return nil, err
	}
	return &issued{meta: meta, paths: paths, cert: cert, key: key, p12: p12, p12Out: paths.PKCS12}, nil
}
