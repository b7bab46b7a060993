package mailbox

import (
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resolver is the part of [net.Resolver] that [Discover] uses. Tests pass a
// fake.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// DiscoverConfig configures [Discover]. The zero value uses the system
// resolver, an HTTPS client with the system roots and direct TCP probes.
type DiscoverConfig struct {
	// Resolver answers the SRV and MX queries; nil means net.DefaultResolver.
	Resolver Resolver
	// HTTPClient fetches the autoconfig documents. nil means a client with
	// the system roots and a 10 s timeout. Only https:// URLs are fetched,
	// redirects included, and certificates are verified unless the
	// client's own TLS configuration says otherwise.
	HTTPClient *http.Client
	// Dial opens the TCP connections that check whether a guessed server
	// answers; nil means a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// ProbeTimeout bounds each such check; 0 means 3 s.
	ProbeTimeout time.Duration
	// Logger receives each step at Debug; nil discards.
	Logger *slog.Logger
}

// Discovered is what [Discover] found for an address.
type Discovered struct {
	IMAP       Endpoint
	IMAPSource string // where it came from, e.g. "SRV _imaps._tcp.example.org"
	SMTP       Endpoint
	SMTPSource string
	// Username is the login the autoconfig document names (its
	// placeholders filled in); "" when no document said, which means the
	// address itself.
	Username string
	// OAuth2 reports that the autoconfig document offers only OAuth2
	// authentication for a server found there.
	OAuth2 bool
}

// ErrNotDiscovered is wrapped by [Discover]'s error when no usable IMAP or
// submission server was found.
var ErrNotDiscovered = errors.New("no mail server found")

const (
	maxAutoconfigSize   = 256 << 10
	defaultProbeTimeout = 3 * time.Second
	autoconfigTimeout   = 10 * time.Second
)

// Discover finds the IMAP and submission servers for email, trying in
// order, for each protocol separately:
//
//  1. SRV records (RFC 6186, RFC 8314): _imaps._tcp and _imap._tcp,
//     _submissions._tcp and _submission._tcp. The records of both names
//     are ordered by priority, implicit TLS first within a priority, then
//     by weight (highest first, so the result is stable). A target of "."
//     means the service is not offered and is skipped.
//  2. The domain's autoconfig documents, over HTTPS only:
//     https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=EMAIL,
//     then https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml.
//  3. Guesses: imap.D, mail.D, smtp.D for D the domain and the domain of
//     its first MX host, implicit TLS before STARTTLS, used only if a TCP
//     connection opens within ProbeTimeout.
//
// Only TLS endpoints (implicit TLS or STARTTLS) are ever returned; a
// plaintext server in an autoconfig document is skipped.
func Discover(ctx context.Context, email string, cfg DiscoverConfig) (*Discovered, error) {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return nil, fmt.Errorf("discover mail servers: %s is not a mail address", quoteShort(email, 100))
	}
	domain := strings.ToLower(strings.TrimSuffix(email[at+1:], "."))
	if err := checkHostName(domain); err != nil {
		return nil, fmt.Errorf("discover mail servers for %s: %w", email, err)
	}
	d := &discoverer{cfg: cfg, email: email, local: email[:at], domain: domain, log: discardLogger(cfg.Logger)}
	if d.cfg.Resolver == nil {
		d.cfg.Resolver = net.DefaultResolver
	}
	if d.cfg.ProbeTimeout <= 0 {
		d.cfg.ProbeTimeout = defaultProbeTimeout
	}
	res := &Discovered{}
	var imapOK, smtpOK bool
	res.IMAP, res.IMAPSource, imapOK = d.srv(ctx, imapProto, "imaps", "imap")
	res.SMTP, res.SMTPSource, smtpOK = d.srv(ctx, smtpProto, "submissions", "submission")
	if !imapOK || !smtpOK {
		if ac, src := d.autoconfig(ctx); ac != nil {
			if !imapOK && ac.imap != nil {
				res.IMAP, res.IMAPSource, imapOK = *ac.imap, src, true
				res.Username, res.OAuth2 = ac.imapUser, ac.imapOAuth
			}
			if !smtpOK && ac.smtp != nil {
				res.SMTP, res.SMTPSource, smtpOK = *ac.smtp, src, true
				if res.Username == "" {
					res.Username = ac.smtpUser
				}
				res.OAuth2 = res.OAuth2 || ac.smtpOAuth
			}
		}
	}
	if !imapOK || !smtpOK {
		gi, gs := d.guess(ctx, !imapOK, !smtpOK)
		if gi != nil {
			res.IMAP, res.IMAPSource, imapOK = *gi, "guess (the server answered)", true
		}
		if gs != nil {
			res.SMTP, res.SMTPSource, smtpOK = *gs, "guess (the server answered)", true
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discover mail servers for %s: %w", email, context.Cause(ctx))
	}
	var missing []string
	if !imapOK {
		missing = append(missing, "IMAP")
	}
	if !smtpOK {
		missing = append(missing, "submission (SMTP)")
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("discover mail servers for %s: %w for %s (no SRV records, no autoconfig document, no answer from the usual host names)",
			email, ErrNotDiscovered, strings.Join(missing, " or "))
	}
	return res, nil
}

type discoverer struct {
	cfg                  DiscoverConfig
	email, local, domain string
	log                  *slog.Logger
}

type srvCandidate struct {
	rec      *net.SRV
	security Security
	name     string
}

// srv looks up the implicit-TLS and STARTTLS SRV names of one protocol.
func (d *discoverer) srv(ctx context.Context, p protocol, tlsService, startTLSService string) (Endpoint, string, bool) {
	var cands []srvCandidate
	for _, s := range []struct {
		service string
		sec     Security
	}{{tlsService, TLS}, {startTLSService, StartTLS}} {
		name := "_" + s.service + "._tcp." + d.domain
		_, recs, err := d.cfg.Resolver.LookupSRV(ctx, s.service, "tcp", d.domain)
		if err != nil {
			d.log.Debug("discover: no SRV records", "name", name, "error", err)
			continue
		}
		for _, r := range recs {
			if r == nil {
				continue
			}
			cands = append(cands, srvCandidate{r, s.sec, name})
		}
	}
	slices.SortStableFunc(cands, func(a, b srvCandidate) int {
		if c := cmp.Compare(a.rec.Priority, b.rec.Priority); c != 0 {
			return c
		}
		if c := cmp.Compare(a.security, b.security); c != 0 { // TLS before StartTLS
			return c
		}
		return cmp.Compare(b.rec.Weight, a.rec.Weight)
	})
	for _, c := range cands {
		target := strings.ToLower(strings.TrimSuffix(c.rec.Target, "."))
		if target == "" {
			d.log.Debug("discover: service not offered", "name", c.name)
			continue
		}
		if checkHostName(target) != nil || c.rec.Port == 0 {
			d.log.Debug("discover: unusable SRV record", "name", c.name, "target", truncate(c.rec.Target, 64), "port", c.rec.Port)
			continue
		}
		ep := Endpoint{Host: target, Port: int(c.rec.Port), Security: c.security}
		return ep, "SRV " + c.name, true
	}
	return Endpoint{}, "", false
}

// autoconfigResult holds the first usable servers of a document.
type autoconfigResult struct {
	imap, smtp           *Endpoint
	imapUser, smtpUser   string
	imapOAuth, smtpOAuth bool
}

func (d *discoverer) autoconfig(ctx context.Context) (*autoconfigResult, string) {
	client := d.cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: autoconfigTimeout}
	}
	// Never leave HTTPS, whatever the server redirects to.
	c := *client
	inner := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused: autoconfig is fetched over HTTPS only", req.URL.Redacted())
		}
		if inner != nil {
			return inner(req, via)
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	}
	urls := []string{
		"https://autoconfig." + d.domain + "/mail/config-v1.1.xml?emailaddress=" + url.QueryEscape(d.email),
		"https://" + d.domain + "/.well-known/autoconfig/mail/config-v1.1.xml",
	}
	for _, u := range urls {
		doc, err := d.fetch(ctx, &c, u)
		if err != nil {
			d.log.Debug("discover: no autoconfig document", "url", u, "error", err)
			continue
		}
		res, err := d.parseAutoconfig(doc)
		if err != nil {
			d.log.Debug("discover: unusable autoconfig document", "url", u, "error", err)
			continue
		}
		shown, _, _ := strings.Cut(u, "?")
		return res, "autoconfig " + shown
	}
	return nil, ""
}

func (d *discoverer) fetch(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, autoconfigTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/xml, text/xml")
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAutoconfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxAutoconfigSize {
		return nil, fmt.Errorf("document larger than %d bytes", maxAutoconfigSize)
	}
	return body, nil
}

// The parts of the Thunderbird autoconfig format (config-v1.1.xml) that
// matter here.
type autoconfigDoc struct {
	XMLName   xml.Name `xml:"clientConfig"`
	Providers []struct {
		Incoming []autoconfigServer `xml:"incomingServer"`
		Outgoing []autoconfigServer `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type autoconfigServer struct {
	Type           string   `xml:"type,attr"`
	Hostname       string   `xml:"hostname"`
	Port           string   `xml:"port"`
	SocketType     string   `xml:"socketType"`
	Username       string   `xml:"username"`
	Authentication []string `xml:"authentication"`
}

// ParseAutoconfig reads a Thunderbird autoconfig document (config-v1.1.xml)
// and returns the first IMAP and SMTP servers it lists that use TLS or
// STARTTLS, with the placeholders (%EMAILADDRESS%, %EMAILLOCALPART%,
// %EMAILDOMAIN%) filled in from email. Either may be nil. The document is
// untrusted input: host names and ports are checked as for user input.
func ParseAutoconfig(doc []byte, email string) (imapEP, smtpEP *Endpoint, err error) {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return nil, nil, fmt.Errorf("%s is not a mail address", quoteShort(email, 100))
	}
	d := &discoverer{email: email, local: email[:at], domain: strings.ToLower(email[at+1:])}
	res, err := d.parseAutoconfig(doc)
	if err != nil {
		return nil, nil, err
	}
	return res.imap, res.smtp, nil
}

func (d *discoverer) parseAutoconfig(doc []byte) (*autoconfigResult, error) {
	if len(doc) > maxAutoconfigSize {
		return nil, fmt.Errorf("document larger than %d bytes", maxAutoconfigSize)
	}
	var cfg autoconfigDoc
	dec := xml.NewDecoder(strings.NewReader(string(doc)))
	dec.Strict = true
	dec.CharsetReader = func(charset string, r io.Reader) (io.Reader, error) {
		if strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "us-ascii") {
			return r, nil
		}
		return nil, fmt.Errorf("charset %s not supported", quoteShort(charset, 20))
	}
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("parse autoconfig XML: %w", err)
	}
	fill := strings.NewReplacer("%EMAILADDRESS%", d.email, "%EMAILLOCALPART%", d.local, "%EMAILDOMAIN%", d.domain)
	res := &autoconfigResult{}
	for _, p := range cfg.Providers {
		for _, s := range p.Incoming {
			if res.imap == nil && strings.EqualFold(s.Type, "imap") {
				if ep, ok := d.autoconfigEndpoint(s, imapProto, fill); ok {
					res.imap, res.imapUser, res.imapOAuth = ep, username(s, fill), oauthOnly(s)
				}
			}
		}
		for _, s := range p.Outgoing {
			if res.smtp == nil && strings.EqualFold(s.Type, "smtp") {
				if ep, ok := d.autoconfigEndpoint(s, smtpProto, fill); ok {
					res.smtp, res.smtpUser, res.smtpOAuth = ep, username(s, fill), oauthOnly(s)
				}
			}
		}
	}
	if res.imap == nil && res.smtp == nil {
		return nil, errors.New("the document lists no IMAP or SMTP server with TLS or STARTTLS")
	}
	return res, nil
}

func (d *discoverer) autoconfigEndpoint(s autoconfigServer, p protocol, fill *strings.Replacer) (*Endpoint, bool) {
	ep := Endpoint{Host: strings.ToLower(strings.TrimSuffix(strings.TrimSpace(fill.Replace(s.Hostname)), "."))}
	switch strings.ToUpper(strings.TrimSpace(s.SocketType)) {
	case "SSL", "TLS":
		ep.Security, ep.Port = TLS, p.tlsPort
	case "STARTTLS":
		ep.Security, ep.Port = StartTLS, p.startTLSPort
	default: // "plain" or unknown: never used
		if d.log != nil {
			d.log.Debug("discover: autoconfig server without TLS skipped", "host", truncate(ep.Host, 64), "socket_type", truncate(s.SocketType, 20))
		}
		return nil, false
	}
	if checkHostName(ep.Host) != nil {
		return nil, false
	}
	if _, err := netip.ParseAddr(ep.Host); err == nil {
		return nil, false // TLS certificates name hosts; an address here is suspect
	}
	if port := strings.TrimSpace(s.Port); port != "" {
		n, err := parsePort(port)
		if err != nil {
			return nil, false
		}
		ep.Port = n
	}
	// Refuse what a user could not type either (STARTTLS on the implicit
	// TLS port and the like), so that the result can be saved as a URL.
	if _, err := parseEndpoint(ep.URL(p.name == imapProto.name), p); err != nil {
		return nil, false
	}
	return &ep, true
}

func username(s autoconfigServer, fill *strings.Replacer) string {
	u := strings.TrimSpace(fill.Replace(s.Username))
	if len(u) > 320 || strings.ContainsAny(u, "\x00\r\n") || strings.Contains(u, "%") {
		return ""
	}
	return u
}

// oauthOnly reports whether a server's authentication methods are OAuth2
// only.
func oauthOnly(s autoconfigServer) bool {
	if len(s.Authentication) == 0 {
		return false
	}
	for _, a := range s.Authentication {
		if !strings.EqualFold(strings.TrimSpace(a), "OAuth2") {
			return false
		}
	}
	return true
}

// guess probes the conventional host names, in parallel, and returns the
// most preferred one that answered, per protocol.
func (d *discoverer) guess(ctx context.Context, wantIMAP, wantSMTP bool) (imapEP, smtpEP *Endpoint) {
	domains := []string{d.domain}
	if mxs, err := d.cfg.Resolver.LookupMX(ctx, d.domain); err == nil && len(mxs) > 0 {
		slices.SortStableFunc(mxs, func(a, b *net.MX) int { return cmp.Compare(a.Pref, b.Pref) })
		host := strings.ToLower(strings.TrimSuffix(mxs[0].Host, "."))
		labels := strings.Split(host, ".")
		if len(labels) >= 2 {
			base := strings.Join(labels[len(labels)-2:], ".")
			if base != d.domain && checkHostName(base) == nil {
				domains = append(domains, base)
			}
		}
	} else if err != nil {
		d.log.Debug("discover: no MX records", "domain", d.domain, "error", err)
	}
	var imapCands, smtpCands []Endpoint
	for _, dom := range domains {
		for _, sec := range []Security{TLS, StartTLS} {
			for _, h := range []string{"imap.", "mail."} {
				imapCands = append(imapCands, Endpoint{Host: h + dom, Port: portFor(imapProto, sec), Security: sec})
			}
			for _, h := range []string{"smtp.", "mail."} {
				smtpCands = append(smtpCands, Endpoint{Host: h + dom, Port: portFor(smtpProto, sec), Security: sec})
			}
		}
	}
	if !wantIMAP {
		imapCands = nil
	}
	if !wantSMTP {
		smtpCands = nil
	}
	all := append(imapCands, smtpCands...)
	ok := make([]bool, len(all))
	var wg sync.WaitGroup
	for i, ep := range all {
		wg.Go(func() { ok[i] = d.probe(ctx, ep) })
	}
	wg.Wait()
	for i := range imapCands {
		if ok[i] {
			imapEP = &imapCands[i]
			break
		}
	}
	for i := range smtpCands {
		if ok[len(imapCands)+i] {
			smtpEP = &smtpCands[i]
			break
		}
	}
	return imapEP, smtpEP
}

func portFor(p protocol, s Security) int {
	if s == TLS {
		return p.tlsPort
	}
	return p.startTLSPort
}

func (d *discoverer) probe(ctx context.Context, ep Endpoint) bool {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ProbeTimeout)
	defer cancel()
	dial := d.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", ep.Address())
	if err != nil {
		d.log.Debug("discover: no answer", "server", ep.String(), "error", err)
		return false
	}
	conn.Close()
	d.log.Debug("discover: answered", "server", ep.String())
	return true
}

// URL returns the endpoint as a URL that [ParseIMAPURL] (imap is true) or
// [ParseSMTPURL] reads back unchanged.
func (e Endpoint) URL(imap bool) string {
	p := smtpProto
	if imap {
		p = imapProto
	}
	scheme := p.tlsScheme
	switch e.Security {
	case StartTLS:
		scheme = p.startTLSScheme
	case Insecure:
		scheme = p.insecureScheme
	}
	return scheme + "://" + net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}
