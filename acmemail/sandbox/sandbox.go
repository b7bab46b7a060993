// Package sandbox runs a self-contained RFC 8823 world in process: an ACME
// certificate authority that issues S/MIME certificates for "email"
// identifiers with the email-reply-00 challenge, and the mail system it
// needs, all on loopback listeners.
//
// A [World] holds:
//
//   - an ACME server (RFC 8555) over HTTPS, whose directory is
//     [World.DirectoryURL];
//   - an IMAP server (implicit TLS and STARTTLS) with one mailbox per user;
//   - an SMTP submission server (implicit TLS and STARTTLS) that requires
//     AUTH PLAIN or LOGIN, lets users send only as themselves, DKIM-signs
//     every message for the sender's domain and delivers locally;
//   - a DNS server (UDP and TCP) that publishes the DKIM keys, and for
//     every user's domain the RFC 6186 SRV records (_imaps._tcp and the
//     others) of the IMAP and submission servers, with target localhost;
//     it is authoritative for the world's zones ([World.Zones]: SOA, NS,
//     addresses of mail host names) and takes RFC 2136 updates of TXT
//     records signed with [World.TSIG];
//   - two private PKIs: one for the TLS listeners ([World.TLSRootsPEM]) and
//     one that issues the S/MIME and server certificates
//     ([World.IssuerRootPEM]).
//
// # The CA
//
// Orders accept only "email" identifiers whose address has a mailbox in the
// world. Each authorization has one email-reply-00 challenge. The CA mails
// the challenge (Subject "ACME: <token-part1>", DKIM-signed by its own
// domain) either when the authorization is first fetched or when the
// challenge is POSTed, see [MailTiming]. It validates response emails that
// users submit to the challenge's from address: the DKIM signature must
// verify with d= equal to the From domain, From must be the identifier, the
// Subject must carry token-part1 and the body must hold
// base64url(SHA-256(token "." thumbprint)) between the BEGIN and END ACME
// RESPONSE lines. [Options] imitate the quirks of real servers (see
// INTEROP): token lengths, string or octet token joins, a missing
// Auto-Submitted field and short validation windows.
//
// Orders of "dns" identifiers (host names in the world's zones, dns-01)
// and "srvname" identifiers ("_imaps.mail.example.test", the experimental
// dns-service-01 challenge bound to the service's port, see [ServicePort])
// get server certificates: dNSName and SRVName SANs, serverAuth, the key
// type's keyUsage. The CA validates them by asking its own DNS server.
//
// The CA serves ACME Renewal Information (RFC 9773): renewalInfo suggests a
// window per certificate (Options.RenewalWindow, or [World.SetRenewalWindow]
// at run time), newOrder honours "replaces" (alreadyReplaced for a second
// replacement), and [World.Certificate] (or GET /sandbox/certificate/<serial>)
// reports whether a certificate was revoked or replaced.
//
// # Security
//
// Everything binds to loopback by default and lives only in memory. The
// roots are generated per world and trusted by nothing else. Passwords,
// tokens and digests are never logged.
package sandbox

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-smtp"
)

// MailTiming says when the CA mails the challenge.
type MailTiming int

const (
	// MailAtAuthorization mails the challenge synchronously the first time
	// the client fetches the authorization (POST-as-GET), as acme2certifier
	// does. The response must arrive before the challenge POST or within
	// Options.ValidationWindow after it.
	MailAtAuthorization MailTiming = iota
	// MailAfterChallenge mails the challenge only when the client POSTs the
	// challenge, as secsy-pki does. The response must arrive within
	// Options.ValidationWindow after the POST.
	MailAfterChallenge
)

func (t MailTiming) String() string {
	switch t {
	case MailAtAuthorization:
		return "at-authorization"
	case MailAfterChallenge:
		return "after-challenge"
	}
	return fmt.Sprintf("MailTiming(%d)", int(t))
}

// Options configure a [World]. The zero value is a usable default.
type Options struct {
	// Host is the address every listener binds to. Default "127.0.0.1".
	Host string
	// MailTiming says when the CA mails the challenge.
	MailTiming MailTiming
	// TokenLength is the length in characters of token-part1 and
	// token-part2: 22 (16 random octets, base64url, like CASTLE), 32
	// ([A-Za-z0-9], like acme2certifier) or 43 (32 random octets,
	// base64url, like secsy-pki). Default 43.
	TokenLength int
	// Join is how the CA joins token-part1 and token-part2 to compute the
	// expected digest: "string" (default; acme2certifier, secsy-pki,
	// acme4j) or "octet" (decode both, join the octets, re-encode without
	// padding; CASTLE).
	Join string
	// OmitAutoSubmitted sends challenge emails without the Auto-Submitted
	// field, as acme2certifier does.
	OmitAutoSubmitted bool
	// ValidationWindow is how long after the challenge POST the CA keeps
	// looking for the response before it fails the challenge. Default 30s.
	// A small value (such as 2s) imitates acme2certifier, which checks its
	// mailbox only briefly after the POST.
	ValidationWindow time.Duration
	// OAuth says whether the IMAP and submission servers accept OAuth 2.0
	// bearer tokens (see [World.AddOAuthToken]) besides or instead of
	// passwords. Default OAuthOff.
	OAuth OAuthMode
	// Hostile delivers forged challenge mails around the genuine one (see
	// hostile.go): a client must ignore every one of them.
	Hostile bool
	// RepeatAuthorizations makes the CA list each authorization of an
	// order twice, as a broken or hostile CA might: a client must refuse
	// the order rather than wait for a second challenge mail.
	RepeatAuthorizations bool
	// NoDKIMSign makes the submission server deliver what users submit
	// without a DKIM signature, like a provider that does not sign
	// outgoing mail (some forwarding services). The CA then rejects every
	// reply; acmemail doctor reports the problem.
	NoDKIMSign bool
	// NoRenewalInfo leaves renewalInfo (RFC 9773 ARI) out of the
	// directory, like CAs without ARI; renewal orders must then not
	// carry "replaces".
	NoRenewalInfo bool
	// RenewalWindow places each certificate's suggested renewal window
	// relative to its notBefore. nil: the window opens when a third of the
	// lifetime is left and closes when a sixth is left.
	// [World.SetRenewalWindow] overrides it at run time.
	RenewalWindow *RenewalWindow
	// RenewalRetryAfter is the Retry-After of renewalInfo responses.
	// Default 6 hours.
	RenewalRetryAfter time.Duration
	// ReuseValidAuthz puts an account's still valid authorization for an
	// identifier into its next orders for that identifier instead of a new
	// one (RFC 8555 §7.4 lets a CA do so, and Let's Encrypt does): the
	// client must then not wait for a challenge mail that never comes.
	// By default every order gets fresh authorizations.
	ReuseValidAuthz bool
	// ASCIIOnly refuses internationalized addresses (a non-ASCII local
	// part or domain) with rejectedIdentifier, as some CAs do. By default
	// they are issued for: a non-ASCII local part as an SmtpUTF8Mailbox
	// otherName (RFC 9598), a non-ASCII domain in A-labels.
	ASCIIOnly bool
	// BadCert makes the CA issue certificates a client must refuse (a
	// foreign key, a wrong SAN, no emailProtection) or warn about (a
	// changed keyUsage). Zero: correct certificates.
	BadCert BadCert
	// ExternalAccountRequired makes the CA demand an external account
	// binding (RFC 8555 §7.3.4) in newAccount, made with one of EABKeys.
	// The directory then says meta.externalAccountRequired: true.
	ExternalAccountRequired bool
	// EABKeys maps external account key identifiers to their HMAC keys.
	// With ExternalAccountRequired and no keys, Start makes one and reports
	// it in World.EABKeyID and World.EABHMACKey. A binding made with one
	// of these keys is verified even when it is not required.
	EABKeys map[string][]byte
	// External, when set, makes the CA send and receive its mail through a
	// real mail system (see [ExternalMail]) instead of the world's own.
	External *ExternalMail
	// LookupTXT looks up the DKIM keys of response emails when External is
	// set. Default: the system resolver. Without External the CA uses the
	// world's own DNS zone and LookupTXT must be nil.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// CertLifetime is the validity of issued certificates. Default 90 days.
	CertLifetime time.Duration
	// RequireContact refuses a new account without a contact address, as
	// acme2certifier does by default (400 malformed).
	RequireContact bool
	// Folder is the IMAP mailbox mail is delivered to: "INBOX" (default),
	// or "Junk" to imitate a spam filter that files the CA's mail there.
	Folder string
	// SubmitDelay makes the submission server hold each message this long
	// after its end before accepting (and delivering) it: a slow provider,
	// or a reply in flight for a test to stop acmemail in. See also
	// World.SetSubmitDelay.
	SubmitDelay time.Duration
	// MailDelay delivers each challenge mail this long after the CA sent
	// it, like a CA whose mail takes seconds to arrive; ReplyDelay
	// delivers each message users submit (replies to the CA) this long
	// after the submission server accepted it, with its 250 sent at once.
	// Each delivery waits on a timer of its own: neither the CA nor other
	// deliveries wait for it. Deliveries still waiting when the world
	// closes are dropped. See also World.SetMailDelay and SetReplyDelay.
	MailDelay, ReplyDelay time.Duration
	// Zones are domains the world's DNS server is authoritative for (and
	// the CA issues server certificates in) besides the users' domains and
	// the CA's own; see also [World.AddZone].
	Zones []string
	// Observe, if set, is called synchronously with every [Observation]:
	// ACME requests, IMAP and SMTP commands on the implicit-TLS listeners,
	// the challenge mail being delivered, submissions, validations. It
	// must be quick and must not call back into the World.
	Observe func(Observation)
	// Logger receives the world's logs. Nil discards them.
	Logger *slog.Logger
}

const (
	defaultHost             = "127.0.0.1"
	defaultTokenLength      = 43
	defaultValidationWindow = 30 * time.Second
	defaultCertLifetime     = 90 * 24 * time.Hour

	caLocalPart = "acme-challenge"
	caDomain    = "ca.sandbox.test"
)

func (o *Options) setDefaults() error {
	if o.Host == "" {
		o.Host = defaultHost
	}
	if o.TokenLength == 0 {
		o.TokenLength = defaultTokenLength
	}
	switch o.TokenLength {
	case 22, 32, 43:
	default:
		return fmt.Errorf("token length %d: must be 22, 32 or 43", o.TokenLength)
	}
	switch o.Join {
	case "":
		o.Join = "string"
	case "string", "octet":
	default:
		return fmt.Errorf("join %q: must be \"string\" or \"octet\"", o.Join)
	}
	switch o.MailTiming {
	case MailAtAuthorization, MailAfterChallenge:
	default:
		return fmt.Errorf("unknown mail timing %d", int(o.MailTiming))
	}
	switch o.OAuth {
	case OAuthOff, OAuthAlso, OAuthOnly:
	default:
		return fmt.Errorf("unknown OAuth mode %d", int(o.OAuth))
	}
	if o.ValidationWindow == 0 {
		o.ValidationWindow = defaultValidationWindow
	}
	if o.ValidationWindow < 0 {
		return fmt.Errorf("validation window %v: must be positive", o.ValidationWindow)
	}
	if err := o.BadCert.valid(); err != nil {
		return err
	}
	for _, z := range o.Zones {
		if _, err := canonicalHost(z); err != nil {
			return fmt.Errorf("zone: %w", err)
		}
	}
	if o.CertLifetime == 0 {
		o.CertLifetime = defaultCertLifetime
	}
	if o.CertLifetime < time.Hour {
		return fmt.Errorf("certificate lifetime %v: must be at least one hour", o.CertLifetime)
	}
	if o.MailDelay < 0 || o.ReplyDelay < 0 || o.SubmitDelay < 0 {
		return fmt.Errorf("mail delay %v, reply delay %v, submit delay %v: must not be negative", o.MailDelay, o.ReplyDelay, o.SubmitDelay)
	}
	if o.External != nil && (o.MailDelay > 0 || o.ReplyDelay > 0) {
		return errors.New("mail and reply delays are for the world's own mail; an external mail system takes its own time")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.External == nil {
		if o.LookupTXT != nil {
			return errors.New("LookupTXT is for external mail only; the world's own mail uses its own DNS zone")
		}
		return nil
	}
	ext := *o.External
	if err := ext.check(); err != nil {
		return err
	}
	o.External = &ext
	if o.Hostile {
		return errors.New("hostile mode delivers forgeries into the world's own mailboxes; it cannot be used with external mail")
	}
	if o.LookupTXT == nil {
		o.LookupTXT = systemLookupTXT
	}
	return nil
}

// World is a running sandbox. Its exported fields describe where to reach
// it; they must not be changed.
type World struct {
	DirectoryURL    string  // https://127.0.0.1:PORT/WORLD/acme/directory (WORLD: random, one per world)
	IMAPURL         string  // imaps://127.0.0.1:PORT (implicit TLS)
	IMAPStartTLSURL string  // imap://127.0.0.1:PORT (STARTTLS)
	SMTPURL         string  // smtps://127.0.0.1:PORT (implicit TLS submission, AUTH required)
	SMTPStartTLSURL string  // smtp://127.0.0.1:PORT (STARTTLS submission, AUTH after STARTTLS)
	DNSAddr         string  // 127.0.0.1:PORT, UDP and TCP; TXT records of the DKIM keys
	TLSRootsPEM     []byte  // the root of the HTTPS, IMAP and SMTP server certificates
	IssuerRootPEM   []byte  // the root of the S/MIME hierarchy (root -> intermediate -> leaf)
	CAFrom          string  // the CA's base address; challenges come from plus addresses of it
	EABKeyID        string  // with Options.ExternalAccountRequired and no EABKeys: the generated key identifier
	EABHMACKey      string  // and its HMAC key, unpadded base64url as CAs hand it out
	TSIG            TSIGKey // signs RFC 2136 updates to DNSAddr (see DNSUpdateEnv)

	opt   Options
	log   *slog.Logger
	stats *statsBox
	pki   *pki
	keys  *dkimRegistry
	mail  *mailSystem
	ca    *authority

	httpSrv  *http.Server
	imapSrv  *imapserver.Server
	smtpSrv  *smtp.Server
	imapsSrv *imapserver.Server // imapSrv, unless commands are observed
	smtpsSrv *smtp.Server       // smtpSrv, unless commands are observed
	dns      *dnsServer
	zoneSet  zoneSet

	listeners []io.Closer
	srvPorts  [4]int // imaps, imap, submissions, submission, for the SRV records

	mu        sync.Mutex // guards closed and wg.Add
	closed    bool
	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start creates the world and starts all its servers. Cancelling ctx closes
// the world, as [World.Close] does.
func Start(ctx context.Context, opt Options) (*World, error) {
	if err := opt.setDefaults(); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	if opt.ExternalAccountRequired && len(opt.EABKeys) == 0 {
		kid, key, err := newEABKey()
		if err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
		opt.EABKeys = map[string][]byte{kid: key}
	}
	w := &World{
		opt:   opt,
		log:   opt.Logger,
		stats: &statsBox{},
		keys:  newDKIMRegistry(),
		done:  make(chan struct{}),
	}
	var err error
	if w.pki, err = newPKI([]string{opt.Host}); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	if w.TSIG, err = newTSIGKey(); err != nil {
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	for _, z := range opt.Zones {
		if err := w.AddZone(z); err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
	}
	w.TLSRootsPEM = w.pki.tlsRootPEM
	w.IssuerRootPEM = w.pki.issuerRootPEM
	if opt.ExternalAccountRequired && len(opt.EABKeys) == 1 {
		for kid, key := range opt.EABKeys {
			w.EABKeyID, w.EABHMACKey = kid, EABKeyString(key)
		}
	}
	caLocal, caDom := caLocalPart, caDomain
	if opt.External != nil {
		caLocal, caDom = splitAddress(opt.External.Address)
	} else if _, err := w.keys.key(caDomain); err != nil {
		// The CA signs every challenge; make its key now rather than
		// during the first authorization fetch.
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	w.CAFrom = caLocal + "@" + caDom

	var listeners []io.Closer
	fail := func(err error) (*World, error) {
		for _, l := range listeners {
			l.Close()
		}
		return nil, fmt.Errorf("start sandbox: %w", err)
	}
	listen := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort(opt.Host, "0"))
		if err == nil {
			listeners = append(listeners, ln)
		}
		return ln, err
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{w.pki.serverCert}, MinVersion: tls.VersionTLS12}

	acmeLn, err := listen()
	if err != nil {
		return fail(fmt.Errorf("listen for ACME: %w", err))
	}
	imapsLn, err := listen()
	if err != nil {
		return fail(fmt.Errorf("listen for IMAP: %w", err))
	}
	imapLn, err := listen()
	if err != nil {
		return fail(fmt.Errorf("listen for IMAP: %w", err))
	}
	smtpsLn, err := listen()
	if err != nil {
		return fail(fmt.Errorf("listen for SMTP: %w", err))
	}
	smtpLn, err := listen()
	if err != nil {
		return fail(fmt.Errorf("listen for SMTP: %w", err))
	}
	udp, tcp, err := listenDNS(opt.Host)
	if err != nil {
		return fail(fmt.Errorf("listen for DNS: %w", err))
	}
	listeners = append(listeners, udp, tcp)

	urlHost := opt.Host
	if ip := net.ParseIP(urlHost); ip != nil && ip.IsUnspecified() {
		urlHost = "127.0.0.1"
		if ip.To4() == nil {
			urlHost = "::1"
		}
	}
	hostPort := func(ln net.Addr) string {
		return net.JoinHostPort(urlHost, fmt.Sprint(ln.(*net.TCPAddr).Port))
	}
	// Every world serves its CA under a path of its own. ACME clients
	// (acmez among them) cache directories by URL for the life of the
	// process, and a later world may get the port of an earlier one: with
	// the same URL it would be handed the earlier world's directory, with
	// other options (EAB, renewalInfo) than its own.
	var id [4]byte
	rand.Read(id[:])
	worldPath := "/" + hex.EncodeToString(id[:])
	baseURL := "https://" + hostPort(acmeLn.Addr()) + worldPath
	w.DirectoryURL = baseURL + pathDirectory
	w.IMAPURL = "imaps://" + hostPort(imapsLn.Addr())
	w.IMAPStartTLSURL = "imap://" + hostPort(imapLn.Addr())
	w.SMTPURL = "smtps://" + hostPort(smtpsLn.Addr())
	w.SMTPStartTLSURL = "smtp://" + hostPort(smtpLn.Addr())
	w.DNSAddr = hostPort(tcp.Addr())
	w.srvPorts = [4]int{listenerPort(imapsLn.Addr()), listenerPort(imapLn.Addr()), listenerPort(smtpsLn.Addr()), listenerPort(smtpLn.Addr())}

	lookup := func(name string) ([]string, error) { return w.LookupTXT(context.Background(), name) }
	caLookup := lookup
	if opt.External != nil {
		caLookup = func(name string) ([]string, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return opt.LookupTXT(ctx, name)
		}
	}
	mem := imapmemserver.New()
	w.mail = &mailSystem{
		log:       w.log.With("component", "mail"),
		keys:      w.keys,
		stats:     w.stats,
		lookupTXT: lookup,
		caLocal:   caLocal,
		caDomain:  caDom,
		noSign:    opt.NoDKIMSign,
		folder:    cmp.Or(opt.Folder, "INBOX"),
		done:      w.done,
		mem:       mem,
		users:     map[string]*mailUser{},
		changed:   make(chan struct{}),
		oauth:     opt.OAuth,
	}
	w.mail.submitDelay.Store(int64(opt.SubmitDelay))
	w.mail.mailDelay.Store(int64(opt.MailDelay))
	w.mail.replyDelay.Store(int64(opt.ReplyDelay))
	w.ca = &authority{
		opt:      opt,
		log:      w.log.With("component", "ca"),
		stats:    w.stats,
		pki:      w.pki,
		mail:     w.mail,
		keys:     w.keys,
		lookup:   caLookup,
		zones:    w.Zones,
		queryTXT: w.queryTXT,
		baseURL:  baseURL,
		nonces:   newNonceStore(1 << 14),
		caLocal:  caLocal,
		caDomain: caDom,
	}
	if opt.Join == "octet" {
		w.ca.join = joinOctet
	}
	w.ca.init()
	w.mail.toCA = w.ca.receive
	if opt.Observe != nil {
		w.ca.observe, w.mail.observe = opt.Observe, opt.Observe
	}

	w.httpSrv = &http.Server{
		Handler:           http.StripPrefix(worldPath, w.ca),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(w.log.With("component", "https").Handler(), slog.LevelDebug),
		TLSConfig:         w.stats.countTLS("https", tlsConf.Clone()),
	}
	newIMAP := func(tlsConfig *tls.Config, insecureAuth bool) *imapserver.Server {
		return imapserver.New(&imapserver.Options{
			NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
				return newIMAPSession(mem.NewSession().(imapserver.SessionIMAP4rev2), w.mail, opt.OAuth), nil, nil
			},
			Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
			Logger:       logAdapter{log: w.log.With("component", "imap"), msg: "imap server"},
			TLSConfig:    tlsConfig,
			InsecureAuth: insecureAuth,
		})
	}
	w.imapSrv = newIMAP(w.stats.countTLS("imap", tlsConf.Clone()), false)
	w.smtpSrv = w.mail.newSubmissionServer()
	w.smtpSrv.TLSConfig = w.stats.countTLS("smtp", tlsConf.Clone())
	w.imapsSrv, w.smtpsSrv = w.imapSrv, w.smtpSrv
	imapsLnTLS := tls.NewListener(imapsLn, w.stats.countTLS("imap", tlsConf.Clone()))
	smtpsLnTLS := tls.NewListener(smtpsLn, w.stats.countTLS("smtp", tlsConf.Clone()))
	if opt.Observe != nil {
		// Commands are counted on the plaintext side of the implicit-TLS
		// listeners. The servers cannot see through the counting wrapper
		// that the connection is TLS, so these listeners get their own
		// servers that allow login (the connection is TLS all the same)
		// and offer no STARTTLS.
		imapsLnTLS = &commandListener{Listener: imapsLnTLS, kind: ObserveIMAP, w: w}
		smtpsLnTLS = &commandListener{Listener: smtpsLnTLS, smtp: true, kind: ObserveSMTP, w: w}
		w.imapsSrv = newIMAP(nil, true)
		w.smtpsSrv = w.mail.newSubmissionServer()
		w.smtpsSrv.AllowInsecureAuth = true
	}
	w.dns = &dnsServer{udp: udp, tcp: tcp, lookup: w.zoneLookup, srv: w.srvLookup, zones: w.Zones,
		addr: dnsHostIP(opt.Host), tsig: &w.TSIG, stats: w.stats, log: w.log.With("component", "dns")}

	w.serve("https", func() error { return w.httpSrv.ServeTLS(acmeLn, "", "") }, http.ErrServerClosed)
	w.serve("imaps", func() error { return w.imapsSrv.Serve(imapsLnTLS) }, nil)
	w.serve("imap", func() error { return w.imapSrv.Serve(imapLn) }, nil)
	w.serve("smtps", func() error { return w.smtpsSrv.Serve(smtpsLnTLS) }, smtp.ErrServerClosed)
	w.serve("smtp", func() error { return w.smtpSrv.Serve(smtpLn) }, smtp.ErrServerClosed)
	w.dns.start()
	w.listeners = listeners

	w.goBackground(func() {
		select {
		case <-ctx.Done():
			go w.Close()
		case <-w.done:
		}
	})

	w.log.Info("sandbox started", "directory", w.DirectoryURL, "imap", w.IMAPURL, "smtp", w.SMTPURL, "dns", w.DNSAddr,
		"mail_timing", opt.MailTiming, "oauth", opt.OAuth, "token_length", opt.TokenLength, "join", opt.Join, "window", opt.ValidationWindow, "no_dkim_sign", opt.NoDKIMSign)
	return w, nil
}

// goBackground runs fn in a goroutine that Close waits for, unless the
// world is closing.
func (w *World) goBackground(fn func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		fn()
	}()
	return true
}

func (w *World) serve(name string, fn func() error, closedErr error) {
	w.goBackground(func() {
		err := fn()
		select {
		case <-w.done:
			return
		default:
		}
		if err != nil && (closedErr == nil || !errors.Is(err, closedErr)) {
			w.log.Error("server stopped", "server", name, "error", err)
		}
	})
}

// SetSubmitDelay changes Options.SubmitDelay for messages submitted from
// now on.
func (w *World) SetSubmitDelay(d time.Duration) { w.mail.submitDelay.Store(int64(d)) }

// SetMailDelay changes Options.MailDelay for challenge mails sent from now
// on.
func (w *World) SetMailDelay(d time.Duration) { w.mail.mailDelay.Store(int64(max(d, 0))) }

// SetReplyDelay changes Options.ReplyDelay for messages submitted from now
// on.
func (w *World) SetReplyDelay(d time.Duration) { w.mail.replyDelay.Store(int64(max(d, 0))) }

// PendingDeliveries is the number of messages held by Options.MailDelay or
// ReplyDelay that are not delivered yet.
func (w *World) PendingDeliveries() int { return w.mail.later.pending() }

// Close stops every server, closes every connection and waits for them. It
// is safe to call more than once.
func (w *World) Close() error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed = true
		w.mu.Unlock()
		close(w.done)
		w.ca.close()
		w.mail.later.close()
		var errs []error
		// Let requests in flight finish, briefly.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := w.httpSrv.Shutdown(ctx); err != nil {
			if err := w.httpSrv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close https: %w", err))
			}
		}
		cancel()
		for _, srv := range []*imapserver.Server{w.imapSrv, w.imapsSrv} {
			if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("close imap: %w", err))
			}
			if w.imapsSrv == w.imapSrv {
				break
			}
		}
		for _, srv := range []*smtp.Server{w.smtpSrv, w.smtpsSrv} {
			if err := srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, smtp.ErrServerClosed) {
				errs = append(errs, fmt.Errorf("close smtp: %w", err))
			}
			if w.smtpsSrv == w.smtpSrv {
				break
			}
		}
		if err := w.dns.close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close dns: %w", err))
		}
		// A server whose Serve had not started yet when it was closed
		// would otherwise keep accepting.
		for _, l := range w.listeners {
			l.Close()
		}
		w.wg.Wait()
		w.closeErr = errors.Join(errs...)
		w.log.Info("sandbox stopped")
	})
	return w.closeErr
}

// AddUser creates a mailbox for email (IMAP login: the address, exactly as
// given with its domain in lower case) and a submission login with the same
// credentials.
func (w *World) AddUser(email, password string) error {
	addr, prob := canonicalAddress(email)
	if prob != nil {
		return fmt.Errorf("add user: %s", prob.Detail)
	}
	if password == "" {
		return fmt.Errorf("add user %s: empty password", addr)
	}
	_, domain := splitAddress(addr)
	if strings.EqualFold(domain, w.mail.caDomain) {
		return fmt.Errorf("add user %s: %s is the CA's own domain", addr, w.mail.caDomain)
	}
	if err := w.mail.addUser(addr, password); err != nil {
		return err
	}
	// Make the domain's DKIM key in the background so the first submission
	// does not wait for it.
	w.goBackground(func() {
		if _, err := w.keys.key(domain); err != nil {
			w.log.Error("dkim key", "domain", domain, "error", err)
		}
	})
	w.log.Info("user added", "user", addr)
	return nil
}

// Deliver appends raw, unchanged, to the INBOX of email. If email is the
// CA's address or one of its plus addresses, raw goes to the CA's mailbox
// instead, where it is validated as a response email (without the trace
// fields the submission path adds).
func (w *World) Deliver(email string, raw []byte) error {
	if w.mail.isCA(email) {
		w.ca.receive(email, raw)
		return nil
	}
	return w.mail.appendInbox(email, raw)
}

// Inbox returns a copy of every message delivered to the INBOX of email so
// far, oldest first, exactly as stored (trace fields included), whether or
// not an IMAP client deleted it since. It is for tests and tools that feed
// a challenge mail to a client by other means than IMAP.
func (w *World) Inbox(email string) [][]byte { return w.mail.inbox(email) }

// WaitInbox waits until at least n messages were delivered to the INBOX of
// email and returns them as [World.Inbox] does, or fails when ctx ends.
func (w *World) WaitInbox(ctx context.Context, email string, n int) ([][]byte, error) {
	for {
		msgs, changed := w.mail.inboxChanged(email)
		if len(msgs) >= n {
			return msgs, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return msgs, fmt.Errorf("wait for %d messages to %s (%d arrived): %w", n, email, len(msgs), ctx.Err())
		case <-w.done:
			return msgs, fmt.Errorf("wait for %d messages to %s: the sandbox was closed", n, email)
		}
	}
}

// LookupTXT returns the TXT records the world's DNS server publishes at
// name (the DKIM keys, and those added by dynamic updates), for verifiers
// that run in process. Unknown names fail with a
// *net.DNSError whose IsNotFound is true.
func (w *World) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name = canonicalDNSName(name)
	recs, ok := w.zoneLookup(name)
	if dyn := w.dns.dynamicTXT(name); len(dyn) > 0 {
		recs, ok = append(recs, dyn...), true
	}
	if ok {
		return recs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, Server: w.DNSAddr, IsNotFound: true}
}

func (w *World) zoneLookup(name string) ([]string, bool) {
	if rec, ok := w.keys.lookup(name); ok {
		return []string{rec}, true
	}
	return nil, false
}

// Stats returns a snapshot of the world's counters.
func (w *World) Stats() Stats { return w.stats.snapshot() }
