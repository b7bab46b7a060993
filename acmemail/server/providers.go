package server

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/providers/dns/acmedns"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/duckdns"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/gandiv5"
	"github.com/go-acme/lego/v5/providers/dns/godaddy"
	"github.com/go-acme/lego/v5/providers/dns/hetzner"
	"github.com/go-acme/lego/v5/providers/dns/httpreq"
	"github.com/go-acme/lego/v5/providers/dns/inwx"
	"github.com/go-acme/lego/v5/providers/dns/ionos"
	"github.com/go-acme/lego/v5/providers/dns/namecheap"
	"github.com/go-acme/lego/v5/providers/dns/netcup"
	"github.com/go-acme/lego/v5/providers/dns/ovh"
	"github.com/go-acme/lego/v5/providers/dns/pdns"
	"github.com/go-acme/lego/v5/providers/dns/porkbun"
	"github.com/go-acme/lego/v5/providers/dns/route53"
	"github.com/go-acme/lego/v5/providers/dns/vultr"
)

// Provider writes and removes the TXT records of DNS challenges: lego's
// challenge.Provider (Present and CleanUp of "_acme-challenge.<domain>"
// with base64url(SHA-256(keyAuth))).
type Provider = challenge.Provider

// providers are the lego DNS providers compiled in, by lego's name.
// Each reads its credentials from the environment variables lego
// documents for it (https://go-acme.github.io/lego/dns/), as lego does.
// The set is curated: lego's ~180 providers would add tens of MB and
// minutes of build; exec and httpreq reach any other DNS service.
var providers = map[string]func() (challenge.Provider, error){
	"acmedns":      func() (challenge.Provider, error) { return acmedns.NewDNSProvider() },
	"cloudflare":   func() (challenge.Provider, error) { return cloudflare.NewDNSProvider() },
	"digitalocean": func() (challenge.Provider, error) { return digitalocean.NewDNSProvider() },
	"duckdns":      func() (challenge.Provider, error) { return duckdns.NewDNSProvider() },
	"exec":         func() (challenge.Provider, error) { return exec.NewDNSProvider() },
	"gandiv5":      func() (challenge.Provider, error) { return gandiv5.NewDNSProvider() },
	"godaddy":      func() (challenge.Provider, error) { return godaddy.NewDNSProvider() },
	"hetzner":      func() (challenge.Provider, error) { return hetzner.NewDNSProvider() },
	"httpreq":      func() (challenge.Provider, error) { return httpreq.NewDNSProvider() },
	"inwx":         func() (challenge.Provider, error) { return inwx.NewDNSProvider() },
	"ionos":        func() (challenge.Provider, error) { return ionos.NewDNSProvider() },
	"namecheap":    func() (challenge.Provider, error) { return namecheap.NewDNSProvider() },
	"netcup":       func() (challenge.Provider, error) { return netcup.NewDNSProvider() },
	"ovh":          func() (challenge.Provider, error) { return ovh.NewDNSProvider() },
	"pdns":         func() (challenge.Provider, error) { return pdns.NewDNSProvider() },
	"porkbun":      func() (challenge.Provider, error) { return porkbun.NewDNSProvider() },
	"route53":      func() (challenge.Provider, error) { return route53.NewDNSProvider() },
	"vultr":        func() (challenge.Provider, error) { return vultr.NewDNSProvider() },
}

// aliases are other names of providers, as lego v5 accepts them.
var aliases = map[string]string{"rfc2136": "dnsupdate", "acme-dns": "acmedns"}

// ProviderNames are the names --dns accepts, sorted (aliases included).
func ProviderNames() []string {
	out := []string{"dnsupdate"}
	for n := range providers {
		out = append(out, n)
	}
	for a := range aliases {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// CanonicalProvider is lego's own name of the provider name (an alias
// resolved), or false if it is not compiled in.
func CanonicalProvider(name string) (string, bool) {
	n := strings.ToLower(name)
	if a, ok := aliases[n]; ok {
		n = a
	}
	if _, ok := providers[n]; ok || n == "dnsupdate" {
		return n, true
	}
	return "", false
}

// NewProvider makes the DNS provider name with its credentials from the
// environment, as lego does. RFC 2136 (dnsupdate, alias rfc2136) reads
// its RFC2136_* or DNSUPDATE_* variables through getenv (so a caller can
// give an environment of its own); the other providers read the
// process's environment through lego.
func NewProvider(name string, getenv func(string) string) (Provider, error) {
	n, ok := CanonicalProvider(name)
	if !ok {
		return nil, fmt.Errorf("unknown DNS provider %q: this acmemail has %s (exec or httpreq reach any other)", name, strings.Join(ProviderNames(), ", "))
	}
	if n == "dnsupdate" {
		return newRFC2136(getenv)
	}
	p, err := providers[n]()
	if err != nil {
		return nil, fmt.Errorf("DNS provider %s: %w", n, redactError(err, os.Environ()))
	}
	return p, nil
}

// newRFC2136 is lego's dnsupdate provider configured from getenv, with
// lego's variable names: DNSUPDATE_X, else RFC2136_X.
func newRFC2136(getenv func(string) string) (Provider, error) {
	get := func(x string) string {
		if v := getenv("DNSUPDATE_" + x); v != "" {
			return v
		}
		return getenv("RFC2136_" + x)
	}
	cfg := &dnsupdate.Config{
		Nameserver:         get("NAMESERVER"),
		TSIGFile:           get("TSIG_FILE"),
		TSIGKey:            get("TSIG_KEY"),
		TSIGSecret:         get("TSIG_SECRET"),
		TSIGAlgorithm:      get("TSIG_ALGORITHM"),
		DNSTimeout:         10 * time.Second,
		TTL:                120,
		PropagationTimeout: 2 * time.Minute,
		PollingInterval:    2 * time.Second,
	}
	if cfg.TSIGAlgorithm == "" {
		cfg.TSIGAlgorithm = "hmac-sha1."
	}
	if z := get("ZONES"); z != "" {
		cfg.Zones = strings.Split(z, ",")
	}
	for name, d := range map[string]*time.Duration{"DNS_TIMEOUT": &cfg.DNSTimeout, "PROPAGATION_TIMEOUT": &cfg.PropagationTimeout, "POLLING_INTERVAL": &cfg.PollingInterval} {
		if v := get(name); v != "" {
			s, err := strconv.Atoi(v)
			if err != nil || s <= 0 {
				return nil, fmt.Errorf("DNS provider dnsupdate: RFC2136_%s=%q: want a number of seconds", name, v)
			}
			*d = time.Duration(s) * time.Second
		}
	}
	if v := get("TTL"); v != "" {
		ttl, err := strconv.Atoi(v)
		if err != nil || ttl <= 0 {
			return nil, fmt.Errorf("DNS provider dnsupdate: RFC2136_TTL=%q: want a number of seconds", v)
		}
		cfg.TTL = ttl
	}
	if cfg.Nameserver == "" {
		return nil, fmt.Errorf("DNS provider dnsupdate: RFC2136_NAMESERVER (or DNSUPDATE_NAMESERVER) is not set")
	}
	p, err := dnsupdate.NewDNSProviderConfig(cfg)
	if err != nil {
		// lego quotes a TSIG file's line it cannot parse, secret and all.
		environ := os.Environ()
		for _, name := range []string{"TSIG_SECRET", "TSIG_FILE"} {
			environ = append(environ, "DNSUPDATE_"+name+"="+getenv("DNSUPDATE_"+name), "RFC2136_"+name+"="+getenv("RFC2136_"+name))
		}
		return nil, fmt.Errorf("DNS provider %w", redactError(err, environ))
	}
	return p, nil
}
