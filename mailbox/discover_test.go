package mailbox_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/acmemail/acmemail/mailbox"
)

// fakeResolver answers SRV and MX queries from maps; anything else is
// NXDOMAIN.
type fakeResolver struct {
	srv map[string][]*net.SRV // by "_service._proto.name"
	mx  map[string][]*net.MX

	mu      sync.Mutex
	queries []string
}

func (r *fakeResolver) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	q := "_" + service + "._" + proto + "." + name
	r.mu.Lock()
	r.queries = append(r.queries, "SRV "+q)
	r.mu.Unlock()
	if recs, ok := r.srv[q]; ok {
		return q + ".", recs, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: q, IsNotFound: true}
}

func (r *fakeResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	r.mu.Lock()
	r.queries = append(r.queries, "MX "+name)
	r.mu.Unlock()
	if recs, ok := r.mx[name]; ok {
		return recs, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// autoconfigServer is a fake HTTPS server for autoconfig.example.org and
// example.org: handler answers, and every request is recorded.
type autoconfigServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newAutoconfigServer(t *testing.T, handler http.HandlerFunc) *autoconfigServer {
	t.Helper()
	a := &autoconfigServer{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.reqs = append(a.reqs, r.Host+r.URL.RequestURI())
		a.mu.Unlock()
		handler(w, r)
	}))
	a.srv.TLS = getPKI().server.Clone()
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	return a
}

// client returns an HTTP client that reaches the fake server whatever host
// it asks for, verifying its certificate against the test roots (so the
// server's certificate must name the host asked for).
func (a *autoconfigServer) client(roots *tls.Config) *http.Client {
	addr := a.srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: roots.Clone(),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func (a *autoconfigServer) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.reqs...)
}

// answering returns a Dial for probes that connects only to the given
// host:port addresses (to an in-memory pipe).
func answering(addrs ...string) func(context.Context, string, string) (net.Conn, error) {
	return func(_ context.Context, _, addr string) (net.Conn, error) {
		for _, a := range addrs {
			if a == addr {
				c1, c2 := net.Pipe()
				c2.Close()
				return c1, nil
			}
		}
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
}

const autoconfigXML = `<?xml version="1.0" encoding="UTF-8"?>
<clientConfig version="1.1">
  <emailProvider id="example.org">
    <domain>example.org</domain>
    <incomingServer type="pop3">
      <hostname>pop.example.org</hostname><port>995</port><socketType>SSL</socketType>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>plain.example.org</hostname><port>143</port><socketType>plain</socketType>
      <username>%EMAILADDRESS%</username>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.%EMAILDOMAIN%</hostname><port>1993</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.org</hostname><port>587</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username>
    </outgoingServer>
  </emailProvider>
</clientConfig>`

func TestDiscoverSRV(t *testing.T) {
	r := &fakeResolver{srv: map[string][]*net.SRV{
		// Priority beats implicit TLS: the STARTTLS record has priority 0.
		"_imaps._tcp.example.org": {{Target: "imaps-backup.example.org.", Port: 993, Priority: 10, Weight: 1}},
		"_imap._tcp.example.org":  {{Target: "imap.example.org.", Port: 143, Priority: 0, Weight: 1}},
		// "." says implicit TLS submission is not offered; within one
		// priority the higher weight wins.
		"_submissions._tcp.example.org": {{Target: ".", Port: 0, Priority: 0}},
		"_submission._tcp.example.org": {
			{Target: "smtp-light.example.org.", Port: 587, Priority: 5, Weight: 10},
			{Target: "smtp-heavy.example.org.", Port: 2587, Priority: 5, Weight: 90},
		},
	}}
	got, err := mailbox.Discover(t.Context(), "alice@Example.org", mailbox.DiscoverConfig{Resolver: r, Dial: answering()})
	if err != nil {
		t.Fatalf("Discover() = %v", err)
	}
	want := mailbox.Discovered{
		IMAP:       mailbox.Endpoint{Host: "imap.example.org", Port: 143, Security: mailbox.StartTLS},
		IMAPSource: "SRV _imap._tcp.example.org",
		SMTP:       mailbox.Endpoint{Host: "smtp-heavy.example.org", Port: 2587, Security: mailbox.StartTLS},
		SMTPSource: "SRV _submission._tcp.example.org",
	}
	if *got != want {
		t.Errorf("Discover() = %+v, want %+v", *got, want)
	}
}

func TestDiscoverSRVImplicitTLSFirst(t *testing.T) {
	r := &fakeResolver{srv: map[string][]*net.SRV{
		"_imap._tcp.example.org":        {{Target: "imap.example.org", Port: 143, Priority: 1, Weight: 100}},
		"_imaps._tcp.example.org":       {{Target: "imap.example.org", Port: 993, Priority: 1, Weight: 0}},
		"_submissions._tcp.example.org": {{Target: "smtp.example.org", Port: 465, Priority: 1}},
	}}
	got, err := mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{Resolver: r, Dial: answering()})
	if err != nil {
		t.Fatalf("Discover() = %v", err)
	}
	if got.IMAP.Security != mailbox.TLS || got.IMAP.Port != 993 || got.SMTP.Port != 465 || got.SMTP.Security != mailbox.TLS {
		t.Errorf("Discover() = %+v, want implicit TLS on 993 and 465", *got)
	}
}

func TestDiscoverAutoconfig(t *testing.T) {
	ac := newAutoconfigServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "autoconfig.example.org" || r.URL.Path != "/mail/config-v1.1.xml" || r.URL.Query().Get("emailaddress") != "alice@example.org" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, autoconfigXML)
	})
	// SRV only for IMAP: SMTP comes from the document, and IMAP stays with
	// the SRV record.
	r := &fakeResolver{srv: map[string][]*net.SRV{
		"_imaps._tcp.example.org": {{Target: "mail.example.org", Port: 993}},
	}}
	got, err := mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{Resolver: r, HTTPClient: ac.client(getPKI().client), Dial: answering()})
	if err != nil {
		t.Fatalf("Discover() = %v", err)
	}
	want := mailbox.Discovered{
		IMAP:       mailbox.Endpoint{Host: "mail.example.org", Port: 993, Security: mailbox.TLS},
		IMAPSource: "SRV _imaps._tcp.example.org",
		SMTP:       mailbox.Endpoint{Host: "smtp.example.org", Port: 587, Security: mailbox.StartTLS},
		SMTPSource: "autoconfig https://autoconfig.example.org/mail/config-v1.1.xml",
		Username:   "alice",
	}
	if *got != want {
		t.Errorf("Discover() = %+v, want %+v", *got, want)
	}

	// Without SRV records both come from the document; the plaintext
	// server listed first is skipped.
	got, err = mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{Resolver: &fakeResolver{}, HTTPClient: ac.client(getPKI().client), Dial: answering()})
	if err != nil {
		t.Fatalf("Discover() = %v", err)
	}
	if want := (mailbox.Endpoint{Host: "imap.example.org", Port: 1993, Security: mailbox.TLS}); got.IMAP != want {
		t.Errorf("IMAP = %v, want %v (the first TLS server of the document)", got.IMAP, want)
	}
}

func TestDiscoverAutoconfigWellKnown(t *testing.T) {
	ac := newAutoconfigServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host == "example.org" && r.URL.Path == "/.well-known/autoconfig/mail/config-v1.1.xml" {
			io.WriteString(w, autoconfigXML)
			return
		}
		http.NotFound(w, r)
	})
	got, err := mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{Resolver: &fakeResolver{}, HTTPClient: ac.client(getPKI().client), Dial: answering()})
	if err != nil {
		t.Fatalf("Discover() = %v", err)
	}
	if got.IMAPSource != "autoconfig https://example.org/.well-known/autoconfig/mail/config-v1.1.xml" {
		t.Errorf("IMAPSource = %q", got.IMAPSource)
	}
	reqs := ac.requests()
	if len(reqs) != 2 || !strings.HasPrefix(reqs[0], "autoconfig.example.org/mail/config-v1.1.xml?emailaddress=alice%40example.org") {
		t.Errorf("requests = %q, want autoconfig.example.org first, then the .well-known form", reqs)
	}
}

// TestDiscoverAutoconfigRefused: documents that must not be used are
// ignored, and discovery goes on to the guesses.
func TestDiscoverAutoconfigRefused(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		roots   *tls.Config
	}{
		{"untrusted certificate", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, autoconfigXML) }, &tls.Config{}},
		{"redirect to http", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.org/config.xml", http.StatusFound)
		}, getPKI().client},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.Replace(autoconfigXML, "<domain>", strings.Repeat(" ", 300<<10)+"<domain>", 1))
		}, getPKI().client},
		{"not XML", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html><body>hello") }, getPKI().client},
		{"only plaintext servers", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.NewReplacer("SSL", "plain", "STARTTLS", "plain").Replace(autoconfigXML))
		}, getPKI().client},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ac := newAutoconfigServer(t, tt.handler)
			dial := answering("imap.example.org:993", "smtp.example.org:465")
			got, err := mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{
				Resolver: &fakeResolver{}, HTTPClient: ac.client(tt.roots), Dial: dial, Logger: testLogger(t),
			})
			if err != nil {
				t.Fatalf("Discover() = %v", err)
			}
			if !strings.HasPrefix(got.IMAPSource, "guess") || !strings.HasPrefix(got.SMTPSource, "guess") {
				t.Errorf("Discover() = %+v, want both from guesses", *got)
			}
			if got.Username != "" {
				t.Errorf("Username = %q from a refused document", got.Username)
			}
		})
	}
}

func TestDiscoverGuesses(t *testing.T) {
	ac := newAutoconfigServer(t, http.NotFound)
	r := &fakeResolver{mx: map[string][]*net.MX{
		"example.org": {{Host: "mx2.backup.example.", Pref: 20}, {Host: "in1.mailhost.example.", Pref: 10}},
	}}
	tests := []struct {
		name       string
		answering  []string
		imap, smtp mailbox.Endpoint
	}{
		{
			"implicit TLS first",
			[]string{"imap.example.org:143", "imap.example.org:993", "mail.example.org:465", "smtp.example.org:587"},
			mailbox.Endpoint{Host: "imap.example.org", Port: 993, Security: mailbox.TLS},
			mailbox.Endpoint{Host: "mail.example.org", Port: 465, Security: mailbox.TLS},
		},
		{
			"STARTTLS when nothing else answers",
			[]string{"mail.example.org:143", "smtp.example.org:587"},
			mailbox.Endpoint{Host: "mail.example.org", Port: 143, Security: mailbox.StartTLS},
			mailbox.Endpoint{Host: "smtp.example.org", Port: 587, Security: mailbox.StartTLS},
		},
		{
			"the MX host's domain",
			[]string{"imap.mailhost.example:993", "smtp.mailhost.example:465"},
			mailbox.Endpoint{Host: "imap.mailhost.example", Port: 993, Security: mailbox.TLS},
			mailbox.Endpoint{Host: "smtp.mailhost.example", Port: 465, Security: mailbox.TLS},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{Resolver: r, HTTPClient: ac.client(getPKI().client), Dial: answering(tt.answering...)})
			if err != nil {
				t.Fatalf("Discover() = %v", err)
			}
			if got.IMAP != tt.imap || got.SMTP != tt.smtp {
				t.Errorf("Discover() = %v, %v; want %v, %v", got.IMAP, got.SMTP, tt.imap, tt.smtp)
			}
		})
	}
}

func TestDiscoverNothing(t *testing.T) {
	ac := newAutoconfigServer(t, http.NotFound)
	r := &fakeResolver{srv: map[string][]*net.SRV{"_imaps._tcp.example.org": {{Target: ".", Port: 0}}}}
	got, err := mailbox.Discover(t.Context(), "alice@example.org", mailbox.DiscoverConfig{Resolver: r, HTTPClient: ac.client(getPKI().client), Dial: answering("smtp.example.org:465")})
	if !errors.Is(err, mailbox.ErrNotDiscovered) || !strings.Contains(err.Error(), "for IMAP") || strings.Contains(err.Error(), "SMTP") {
		t.Fatalf("Discover() = %v, want ErrNotDiscovered for IMAP only", err)
	}
	if got == nil || got.SMTP.Host != "smtp.example.org" {
		t.Errorf("Discover() = %+v, want the SMTP server found", got)
	}
	if _, err := mailbox.Discover(t.Context(), "not-an-address", mailbox.DiscoverConfig{Resolver: r}); err == nil {
		t.Errorf("Discover(not-an-address) succeeded")
	}
}

func TestEndpointURL(t *testing.T) {
	for _, tt := range []struct {
		ep   mailbox.Endpoint
		imap bool
		want string
	}{
		{mailbox.Endpoint{Host: "imap.example.org", Port: 993, Security: mailbox.TLS}, true, "imaps://imap.example.org:993"},
		{mailbox.Endpoint{Host: "::1", Port: 143, Security: mailbox.StartTLS}, true, "imap://[::1]:143"},
		{mailbox.Endpoint{Host: "smtp.example.org", Port: 587, Security: mailbox.StartTLS}, false, "smtp://smtp.example.org:587"},
		{mailbox.Endpoint{Host: "127.0.0.1", Port: 2525, Security: mailbox.Insecure}, false, "smtp+insecure://127.0.0.1:2525"},
	} {
		got := tt.ep.URL(tt.imap)
		if got != tt.want {
			t.Errorf("%v.URL(%v) = %q, want %q", tt.ep, tt.imap, got, tt.want)
		}
		parse := mailbox.ParseSMTPURL
		if tt.imap {
			parse = mailbox.ParseIMAPURL
		}
		if back, err := parse(got); err != nil || back != tt.ep {
			t.Errorf("parse(%q) = %v, %v; want %v", got, back, err, tt.ep)
		}
	}
}

func FuzzParseAutoconfig(f *testing.F) {
	f.Add([]byte(autoconfigXML))
	f.Add([]byte(`<clientConfig><emailProvider><incomingServer type="imap"><hostname>a.b</hostname><port>0</port><socketType>SSL</socketType></incomingServer></emailProvider></clientConfig>`))
	f.Add([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><clientConfig/>`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		imapEP, smtpEP, err := mailbox.ParseAutoconfig(doc, "alice@example.org")
		if err != nil {
			return
		}
		for _, c := range []struct {
			ep   *mailbox.Endpoint
			imap bool
		}{{imapEP, true}, {smtpEP, false}} {
			if c.ep == nil {
				continue
			}
			if c.ep.Security != mailbox.TLS && c.ep.Security != mailbox.StartTLS {
				t.Fatalf("endpoint %v without TLS from %q", c.ep, doc)
			}
			parse := mailbox.ParseSMTPURL
			if c.imap {
				parse = mailbox.ParseIMAPURL
			}
			// Accepted endpoints are well-formed: they survive a round
			// trip through the URL parser (which refuses, for example,
			// STARTTLS on the implicit-TLS port), so they can be saved.
			u := c.ep.URL(c.imap)
			if back, err := parse(u); err != nil {
				t.Fatalf("endpoint %v from %q: URL %q does not parse: %v", c.ep, doc, u, err)
			} else if back != *c.ep {
				t.Fatalf("endpoint %v: URL %q parses back as %v", c.ep, u, back)
			}
		}
	})
}
