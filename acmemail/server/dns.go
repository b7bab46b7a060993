package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	legolog "github.com/go-acme/lego/v5/log"
	"github.com/miekg/dns"
)

// TXTValue is the TXT record value that answers keyAuth:
// base64url(SHA-256(keyAuth)), without padding (RFC 8555 §8.4).
func TXTValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// legoMu serializes the calls into lego's DNS providers of this process:
// their CNAME and zone lookups use lego's process-wide resolver
// (dns01.DefaultClient), which each call points at its own resolver, and
// they log through lego's process-wide logger, which each call points at
// its own (see WithLegoLogger).
var legoMu sync.Mutex

// discard is the logger of a call that was given none.
var discard = slog.New(slog.DiscardHandler)

func init() {
	// lego logs to stdout unless told otherwise: a followed CNAME, an
	// exec script's output, a provider's deprecation warning would land
	// in the middle of --json. Outside the calls below it logs nowhere.
	legolog.SetDefault(discard)
}

type legoLoggerKey struct{}

// WithLegoLogger returns ctx carrying l for what lego's DNS code logs
// during Present, CleanUp and RecordName with it (without: nothing).
func WithLegoLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, legoLoggerKey{}, l)
}

// withResolver runs f with lego's lookups going to resolver (HOST:PORT;
// "" for the system's) and lego's log going to ctx's logger.
func withResolver(ctx context.Context, resolver string, f func() error) error {
	legoMu.Lock()
	defer legoMu.Unlock()
	opts := dns01.NewOptions()
	opts.Timeout = 5 * time.Second
	if resolver != "" {
		opts.RecursiveNameservers = []string{resolver}
	}
	dns01.SetDefaultClient(dns01.NewClient(opts))
	if l, _ := ctx.Value(legoLoggerKey{}).(*slog.Logger); l != nil {
		legolog.SetDefault(l)
		defer legolog.SetDefault(discard)
	}
	return f()
}

// Present writes the TXT record answering keyAuth for domain through p.
// Its error never holds the provider's credentials (see redactError).
func Present(ctx context.Context, p Provider, resolver, domain, token, keyAuth string) error {
	err := withResolver(ctx, resolver, func() error { return p.Present(ctx, domain, token, keyAuth) })
	return redactError(err, os.Environ())
}

// CleanUp removes what Present wrote; its error is redacted like Present's.
func CleanUp(ctx context.Context, p Provider, resolver, domain, token, keyAuth string) error {
	err := withResolver(ctx, resolver, func() error { return p.CleanUp(ctx, domain, token, keyAuth) })
	return redactError(err, os.Environ())
}

// RecordName is the fully qualified name of the TXT record a provider
// writes for domain: "_acme-challenge.<domain>.", after a CNAME of that
// name is followed (as lego's providers do unless
// LEGO_DISABLE_CNAME_SUPPORT is set).
func RecordName(ctx context.Context, resolver, domain, keyAuth string) string {
	var name string
	withResolver(ctx, resolver, func() error {
		name = dns01.GetChallengeInfo(ctx, domain, keyAuth).EffectiveFQDN
		return nil
	})
	return name
}

// maxDNSReply bounds what a DNS answer may hold (a UDP reply is at most
// 64 KiB; TCP replies are refused beyond this).
const maxDNSReply = 65535

// lookupTXT asks server (HOST:PORT) for the TXT records at name, without
// recursion when authoritative.
func lookupTXT(ctx context.Context, server, name string, authoritative bool) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = !authoritative
	c := &dns.Client{Timeout: 5 * time.Second, UDPSize: dns.DefaultMsgSize}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, err
	}
	if r.Len() > maxDNSReply {
		return nil, errors.New("the DNS answer is too large")
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("the DNS server answered %s", dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok && strings.EqualFold(t.Hdr.Name, dns.Fqdn(name)) {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// authoritativeServers are the addresses (port 53) of the name servers of
// the zone holding name, found through resolver (HOST:PORT, "" for the
// system's first).
func authoritativeServers(ctx context.Context, resolver, name string) ([]string, error) {
	var zone string
	err := withResolver(ctx, resolver, func() error {
		var err error
		zone, err = dns01.DefaultClient().FindZoneByFqdn(ctx, dns.Fqdn(name))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("find the zone of %s: %w", name, err)
	}
	r := net.DefaultResolver
	if resolver != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, resolver)
		}}
	}
	nss, err := r.LookupNS(ctx, zone)
	if err != nil {
		return nil, fmt.Errorf("look up the name servers of %s: %w", zone, err)
	}
	var out []string
	for _, ns := range nss {
		addrs, err := r.LookupHost(ctx, ns.Host)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			out = append(out, net.JoinHostPort(a, "53"))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no address for the name servers of %s", zone)
	}
	return out, nil
}

// WaitPropagation waits until every server that will be asked sees the
// TXT record name with value: with resolver set (HOST:PORT, e.g. an
// authoritative server acmemail is told of, or the sandbox's), that
// server; else the zone's authoritative name servers, asked without
// recursion. It checks every interval until timeout.
func WaitPropagation(ctx context.Context, resolver, name, value string, timeout, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var servers []string
	authoritative := resolver == ""
	if authoritative {
		var err error
		if servers, err = authoritativeServers(ctx, resolver, name); err != nil {
			return err
		}
	} else {
		servers = []string{resolver}
	}
	var last error
	for {
		missing := ""
		for _, s := range servers {
			vals, err := lookupTXT(ctx, s, name, authoritative)
			if err != nil {
				last, missing = fmt.Errorf("%s: %w", s, err), s
				break
			}
			found := false
			for _, v := range vals {
				found = found || v == value
			}
			if !found {
				last, missing = fmt.Errorf("%s does not serve it yet", s), s
				break
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the TXT record %s did not appear within %s: %w", name, timeout, last)
		case <-time.After(interval):
		}
	}
}
