package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
)

// TSIGKey is the key (RFC 8945) that signs dynamic updates (RFC 2136) to
// the world's DNS server. Secret is the base64 HMAC key, as tsig-keygen
// writes it; Name and Algorithm are fully qualified ("hmac-sha256.").
type TSIGKey struct {
	Name, Algorithm, Secret string
}

const (
	tsigKeyName   = "acmemail-sandbox."
	tsigAlgorithm = dns.HmacSHA256
)

func newTSIGKey() (TSIGKey, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return TSIGKey{}, err
	}
	return TSIGKey{Name: tsigKeyName, Algorithm: tsigAlgorithm, Secret: base64.StdEncoding.EncodeToString(b)}, nil
}

// File returns the key in the format of BIND's tsig-keygen, which
// nsupdate -k, lego's RFC2136_TSIG_FILE and certbot-dns-rfc2136 read.
func (k TSIGKey) File() []byte {
	return fmt.Appendf(nil, "key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n",
		strings.TrimSuffix(k.Name, "."), strings.TrimSuffix(k.Algorithm, "."), k.Secret)
}

// DNSUpdateEnv returns the environment that points lego's rfc2136 provider
// (dnsupdate in lego v5), and with it acmemail's --dns rfc2136, at the
// world's DNS server and TSIG key.
func (w *World) DNSUpdateEnv() []string {
	return []string{
		"RFC2136_NAMESERVER=" + w.DNSAddr,
		"RFC2136_TSIG_KEY=" + w.TSIG.Name,
		"RFC2136_TSIG_SECRET=" + w.TSIG.Secret,
		"RFC2136_TSIG_ALGORITHM=" + w.TSIG.Algorithm,
	}
}

// zoneSet holds the zones the world's DNS server is authoritative for
// besides the users' domains and the CA's own.
type zoneSet struct {
	mu    sync.Mutex
	extra []string
}

// AddZone makes the world's DNS server authoritative for domain (and the
// CA accept "dns" identifiers below it) without adding a user there. The
// domain of every user is a zone already, as is the CA's own.
func (w *World) AddZone(domain string) error {
	d, err := canonicalHost(domain)
	if err != nil {
		return fmt.Errorf("add zone: %w", err)
	}
	w.zoneSet.mu.Lock()
	defer w.zoneSet.mu.Unlock()
	if !slices.Contains(w.zoneSet.extra, d) {
		w.zoneSet.extra = append(w.zoneSet.extra, d)
	}
	return nil
}

// Zones returns the zones the world's DNS server is authoritative for:
// the CA's domain, every user's domain and those of [World.AddZone].
func (w *World) Zones() []string {
	zs := []string{w.mail.caDomain}
	w.zoneSet.mu.Lock()
	zs = append(zs, w.zoneSet.extra...)
	w.zoneSet.mu.Unlock()
	for _, d := range w.mail.domains() {
		zs = append(zs, strings.ToLower(d))
	}
	slices.Sort(zs)
	return slices.Compact(zs)
}

// domains returns the domains of the users' addresses.
func (m *mailSystem) domains() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, u := range m.users {
		_, d := splitAddress(u.addr)
		out = append(out, d)
	}
	return out
}

// canonicalHost checks a host name for a "dns" identifier or a zone: LDH
// labels (underscores allowed, as in SRV owner names), in A-labels, lower
// case, without the trailing dot.
func canonicalHost(name string) (string, error) {
	n := strings.TrimSuffix(name, ".")
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%q is not a host name", name)
	}
	if a, err := idna.Lookup.ToASCII(n); err == nil {
		n = a
	} else if !isASCII(n) {
		return "", fmt.Errorf("%q is not a valid internationalized host name: %v", name, err)
	}
	n = strings.ToLower(n)
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a host name", name)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is not a host name (character %q)", name, c)
			}
		}
	}
	return n, nil
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// queryTXT asks the world's own DNS server, over the network as a CA
// would, for the TXT records at name. found is false for NXDOMAIN and
// NODATA.
func (w *World) queryTXT(ctx context.Context, name string) (recs []string, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = false
	m.SetEdns0(dnsUDPSize, false)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, UDPSize: dnsUDPSize}
	r, _, err := c.ExchangeContext(ctx, m, w.DNSAddr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, w.DNSAddr)
	}
	if err != nil {
		return nil, false, err
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("DNS server answered %s", dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			recs = append(recs, strings.Join(t.Txt, ""))
		}
	}
	return recs, len(recs) > 0, nil
}

// dnsHostIP is the address the DNS server gives the host names of its
// zones: the one the world's listeners bind to.
func dnsHostIP(host string) net.IP {
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			return net.IPv6loopback
		}
		return net.IPv4(127, 0, 0, 1)
	}
	return ip
}
