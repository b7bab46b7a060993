package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/acmemail/acmemail/acmemail"
	"github.com/mholt/acmez/v3/acme"
)

// Identifier and challenge types of the server certificates' orders.
const (
	IdentifierDNS        = "dns"
	IdentifierSRVName    = "srvname"
	ChallengeDNS01       = "dns-01"
	ChallengeDNSService  = "dns-service-01"
	maxACMEObjectCapture = 64 << 10
)

// Request is one certificate to obtain.
type Request struct {
	Host     string   // normalized host name
	Services []string // from ParseServices; in the certificate only with ServiceChallenge
	// ServiceChallenge orders an srvname identifier per service, proved
	// with the experimental dns-service-01 challenge.
	ServiceChallenge bool
	Key              crypto.Signer // the certificate's key (pending, on disk)
	Replaces         string        // ARI certificate ID of the certificate it replaces, or ""
}

// Names are the certificate names r asks for: host, and the SRVNames of
// its services with ServiceChallenge.
func (r Request) CertServices() []string {
	if r.ServiceChallenge {
		return r.Services
	}
	return nil
}

// Issued is what the CA issued.
type Issued struct {
	ChainPEM []byte
	Chain    []*x509.Certificate
	OrderURL string
	CertURL  string
}

// Client places the orders of server certificates. Account registration,
// renewal information and revocation go through acmemail.Client with the
// same account.
type Client struct {
	DirectoryURL string
	HTTPClient   *http.Client // nil: a client with the system roots
	UserAgent    string
	AccountKey   crypto.Signer
	AccountURL   string // required: the registered account
	Provider     Provider
	// Resolver (HOST:PORT) is asked for CNAMEs, zones and propagation;
	// "" for the system's resolver and the zone's authoritative servers.
	Resolver           string
	PropagationTimeout time.Duration // default 2 minutes
	PollInterval       time.Duration // between propagation checks, default 2 s
	Logger             *slog.Logger
	// Progress, if set, is told each step in one sentence.
	Progress func(msg string)

	once    sync.Once
	acme    *acme.Client
	capture *captureTransport
	account acme.Account
}

func (c *Client) init() {
	c.once.Do(func() {
		hc := c.HTTPClient
		if hc == nil {
			hc = &http.Client{Timeout: 60 * time.Second}
		}
		tracked := *hc
		c.capture = &captureTransport{next: hc.Transport, bodies: map[string][]byte{}}
		tracked.Transport = c.capture
		ua := "acmemail"
		if c.UserAgent != "" {
			ua = c.UserAgent
		}
		log := c.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		c.acme = &acme.Client{Directory: c.DirectoryURL, HTTPClient: &tracked, UserAgent: ua, Logger: log, PollTimeout: 2 * time.Minute}
		c.account = acme.Account{PrivateKey: c.AccountKey, Location: c.AccountURL}
	})
}

func (c *Client) say(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(fmt.Sprintf(format, args...))
	}
}

// captureTransport keeps the last body (at most 64 KiB) of the responses
// to the URLs it is asked to watch: acmez does not expose a challenge's
// "port", which dns-service-01 adds.
type captureTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	watch  map[string]bool
	bodies map[string][]byte
}

func (t *captureTransport) Watch(url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watch == nil {
		t.watch = map[string]bool{}
	}
	t.watch[url] = true
}

func (t *captureTransport) Body(url string) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bodies[url]
}

func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	t.mu.Lock()
	watched := t.watch[req.URL.String()]
	t.mu.Unlock()
	if !watched {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxACMEObjectCapture+1))
	resp.Body.Close()
	if rerr != nil {
		return nil, rerr
	}
	if len(body) > maxACMEObjectCapture {
		return nil, fmt.Errorf("the CA's answer from %s is larger than %d bytes", req.URL, maxACMEObjectCapture)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	t.mu.Lock()
	t.bodies[req.URL.String()] = body
	t.mu.Unlock()
	return resp, nil
}

// challengePort reads the "port" of the challenge at chURL from the
// authorization's captured body.
func challengePort(body []byte, chURL string) (int, error) {
	var doc struct {
		Challenges []struct {
			URL  string          `json:"url"`
			Port json.RawMessage `json:"port"`
		} `json:"challenges"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return 0, fmt.Errorf("read the authorization: %w", err)
	}
	for _, ch := range doc.Challenges {
		if ch.URL != chURL {
			continue
		}
		var port int
		if err := json.Unmarshal(ch.Port, &port); err != nil || port < 1 || port > 65535 {
			return 0, fmt.Errorf("the %s challenge has no valid port (%s)", ChallengeDNSService, string(ch.Port))
		}
		return port, nil
	}
	return 0, fmt.Errorf("the %s challenge is not in its authorization", ChallengeDNSService)
}

// record is one TXT record a run wrote.
type record struct {
	domain, token, keyAuth, name, value string
	ch                                  acme.Challenge
}

// Obtain places the order for r, answers its DNS challenges through the
// provider (the records are removed again whatever happens), finalizes
// with a CSR for r.Key and downloads the chain. It does not check the
// certificate: see [Check].
func (c *Client) Obtain(ctx context.Context, r Request) (*Issued, error) {
	c.init()
	if c.Provider == nil {
		return nil, errors.New("obtain a server certificate: no DNS provider")
	}
	if c.AccountURL == "" {
		return nil, errors.New("obtain a server certificate: no ACME account")
	}
	ids := []acme.Identifier{{Type: IdentifierDNS, Value: r.Host}}
	for _, s := range r.CertServices() {
		ids = append(ids, acme.Identifier{Type: IdentifierSRVName, Value: SRVName(s, r.Host)})
	}
	order, err := c.acme.NewOrder(ctx, c.account, acme.Order{Identifiers: ids, Replaces: r.Replaces})
	if err != nil {
		return nil, acmemail.ACMEError("create the order for "+r.Host, err)
	}
	c.say("created order %s", order.Location)
	if err := checkIdentifiers(order.Identifiers, ids); err != nil {
		return nil, err
	}
	thumb, err := c.account.Thumbprint()
	if err != nil {
		return nil, err
	}
	ctx = WithLegoLogger(ctx, c.Logger) // the provider's log: the client's
	var records []record
	defer func() {
		for _, rec := range records {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if err := CleanUp(cctx, c.Provider, c.Resolver, rec.domain, rec.token, rec.keyAuth); err != nil {
				c.say("warning: could not remove the TXT record %s: %v", rec.name, err)
			}
			cancel()
		}
	}()
	for _, u := range order.Authorizations {
		c.capture.Watch(u)
		authz, err := c.acme.GetAuthorization(ctx, c.account, u)
		if err != nil {
			return nil, acmemail.ACMEError("fetch the authorization", err)
		}
		if authz.Status == acme.StatusValid {
			continue
		}
		rec, err := c.prepare(authz, u, thumb, r)
		if err != nil {
			return nil, err
		}
		rec.name = RecordName(ctx, c.Resolver, rec.domain, rec.keyAuth)
		if err := Present(ctx, c.Provider, c.Resolver, rec.domain, rec.token, rec.keyAuth); err != nil {
			return nil, fmt.Errorf("write the TXT record %s through the DNS provider: %w", rec.name, err)
		}
		records = append(records, rec)
		c.say("wrote TXT %s for %s", strings.TrimSuffix(rec.name, "."), authz.Identifier.Value)
	}
	timeout, interval := c.PropagationTimeout, c.PollInterval
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	if interval <= 0 {
		interval = 2 * time.Second
	}
	for _, rec := range records {
		if err := WaitPropagation(ctx, c.Resolver, rec.name, rec.value, timeout, interval); err != nil {
			return nil, err
		}
	}
	for _, rec := range records {
		if _, err := c.acme.InitiateChallenge(ctx, c.account, rec.ch); err != nil {
			return nil, acmemail.ACMEError("ask the CA to validate "+rec.ch.Identifier.Value, err)
		}
	}
	for _, u := range order.Authorizations {
		authz, err := c.acme.PollAuthorization(ctx, c.account, acme.Authorization{Location: u})
		if err != nil {
			return nil, acmemail.ACMEError("validation of "+authz.Identifier.Value, err)
		}
	}
	c.say("the CA validated every name")
	csr, err := NewCSR(r.Key, r.Host, r.CertServices())
	if err != nil {
		return nil, err
	}
	order, err = c.acme.FinalizeOrder(ctx, c.account, order, csr)
	if err != nil {
		if order.Error != nil {
			return nil, acmemail.ACMEError("finalize the order", *order.Error)
		}
		return nil, acmemail.ACMEError("finalize the order", err)
	}
	if order.Certificate == "" {
		return nil, errors.New("finalize the order: the order is valid but has no certificate URL")
	}
	chains, err := c.acme.GetCertificateChain(ctx, c.account, order.Certificate)
	if err != nil {
		return nil, acmemail.ACMEError("download the certificate", err)
	}
	if len(chains) == 0 {
		return nil, errors.New("download the certificate: the CA sent no certificate")
	}
	chain, err := parsePEMChain(chains[0].ChainPEM)
	if err != nil {
		return nil, fmt.Errorf("download the certificate: %w", err)
	}
	return &Issued{ChainPEM: chains[0].ChainPEM, Chain: chain, OrderURL: order.Location, CertURL: order.Certificate}, nil
}

// prepare picks the challenge of authz (fetched from authzURL) and what
// answers it.
func (c *Client) prepare(authz acme.Authorization, authzURL, thumb string, r Request) (record, error) {
	id := authz.Identifier
	want := ChallengeDNS01
	if id.Type == IdentifierSRVName {
		want = ChallengeDNSService
	}
	var ch *acme.Challenge
	for i := range authz.Challenges {
		if authz.Challenges[i].Type == want {
			ch = &authz.Challenges[i]
		}
	}
	if ch == nil {
		return record{}, fmt.Errorf("the CA offers no %s challenge for %s %s", want, id.Type, id.Value)
	}
	ch.Identifier = id
	keyAuth := ch.Token + "." + thumb
	switch id.Type {
	case IdentifierDNS:
		if !strings.EqualFold(strings.TrimPrefix(id.Value, "*."), r.Host) || strings.HasPrefix(id.Value, "*.") {
			return record{}, fmt.Errorf("the order holds an authorization for %s, which was not asked for", id.Value)
		}
		return record{domain: r.Host, token: ch.Token, keyAuth: keyAuth, value: TXTValue(keyAuth), ch: *ch}, nil
	case IdentifierSRVName:
		service, host, ok := ParseSRVName(strings.ToLower(id.Value))
		wantPort, known := Port(service)
		if !ok || !known || host != r.Host {
			return record{}, fmt.Errorf("the order holds an authorization for %s, which was not asked for", id.Value)
		}
		port, err := challengePort(c.capture.Body(authzURL), ch.URL)
		if err != nil {
			return record{}, err
		}
		if port != wantPort {
			return record{}, fmt.Errorf("the CA binds the %s challenge of %s to port %d, not %s's port %d: refused", ChallengeDNSService, id.Value, port, service, wantPort)
		}
		bound := BoundKeyAuthorization(keyAuth, service, port)
		return record{domain: ChallengeDomain(host, service, port), token: ch.Token, keyAuth: bound, value: TXTValue(bound), ch: *ch}, nil
	}
	return record{}, fmt.Errorf("the order holds an identifier of type %q, which was not asked for", id.Type)
}

// checkIdentifiers: the order is for exactly the identifiers asked for.
func checkIdentifiers(got, want []acme.Identifier) error {
	key := func(ids []acme.Identifier) string {
		var s []string
		for _, id := range ids {
			s = append(s, id.Type+":"+strings.ToLower(id.Value))
		}
		sortStrings(s)
		return strings.Join(s, ",")
	}
	if key(got) != key(want) {
		return fmt.Errorf("the CA's order is for %s, not for %s", key(got), key(want))
	}
	return nil
}
