package sandbox

import (
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/miekg/dns"
)

// useLegoResolver points lego's DNS client (CNAME following and zone
// lookups, as lego's --dns.resolvers does) at the world's server for the
// test. It changes process-wide state: tests that call it do not run in
// parallel.
func useLegoResolver(t *testing.T, w *World) {
	old := dns01.DefaultClient()
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{w.DNSAddr}, Timeout: 5 * time.Second}))
	t.Cleanup(func() { dns01.SetDefaultClient(old) })
}

// setEnv sets the environment lines of DNSUpdateEnv for the test.
func setEnv(t *testing.T, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// exchange sends m to the world's DNS server over UDP.
func exchange(t *testing.T, w *World, m *dns.Msg, tsigSecret map[string]string) *dns.Msg {
	t.Helper()
	c := &dns.Client{Timeout: 5 * time.Second, TsigSecret: tsigSecret}
	r, _, err := c.ExchangeContext(t.Context(), m, w.DNSAddr)
	if err != nil {
		t.Fatalf("exchange %v: %v", m.Question, err)
	}
	if r.Id != m.Id {
		t.Fatalf("response ID %d, want %d", r.Id, m.Id)
	}
	return r
}

func queryRR(t *testing.T, w *World, name string, typ uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), typ)
	return exchange(t, w, m, nil)
}

func txtAt(t *testing.T, w *World, name string) []string {
	t.Helper()
	var out []string
	for _, rr := range queryRR(t, w, name, dns.TypeTXT).Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

func dns01Value(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// TestDNSUpdateLego: lego's own RFC 2136 provider (dnsupdate, alias
// rfc2136), configured only from DNSUpdateEnv or from the tsig-keygen file
// of TSIGKey.File, adds a challenge record the server then serves, and
// removes it again.
func TestDNSUpdateLego(t *testing.T) {
	w := startWorld(t, Options{})
	if err := w.AddZone("example.test"); err != nil {
		t.Fatal(err)
	}
	useLegoResolver(t, w)
	keyFile := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(keyFile, w.TSIG.File(), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		env  []string
	}{
		{"env", w.DNSUpdateEnv()},
		{"tsig file", []string{"RFC2136_NAMESERVER=" + w.DNSAddr, "RFC2136_TSIG_FILE=" + keyFile}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			p, err := dnsupdate.NewDNSProvider()
			if err != nil {
				t.Fatalf("NewDNSProvider() = %v", err)
			}
			const host, token = "mail.example.test", "tok"
			keyAuth := token + ".thumb-" + strings.ReplaceAll(tt.name, " ", "-")
			before := w.Stats().DNSUpdates
			if err := p.Present(t.Context(), host, token, keyAuth); err != nil {
				t.Fatalf("Present() = %v", err)
			}
			if got := txtAt(t, w, "_acme-challenge."+host); !slices.Equal(got, []string{dns01Value(keyAuth)}) {
				t.Errorf("TXT after Present = %q, want %q", got, dns01Value(keyAuth))
			}
			if got, _ := w.LookupTXT(t.Context(), "_acme-challenge."+host); !slices.Equal(got, []string{dns01Value(keyAuth)}) {
				t.Errorf("World.LookupTXT after Present = %q", got)
			}
			if err := p.CleanUp(t.Context(), host, token, keyAuth); err != nil {
				t.Fatalf("CleanUp() = %v", err)
			}
			r := queryRR(t, w, "_acme-challenge."+host, dns.TypeTXT)
			if len(r.Answer) != 0 || r.Rcode != dns.RcodeNameError {
				t.Errorf("after CleanUp: rcode %s, answers %v; want NXDOMAIN", dns.RcodeToString[r.Rcode], r.Answer)
			}
			if got := w.Stats().DNSUpdates - before; got != 2 {
				t.Errorf("Stats().DNSUpdates grew by %d, want 2", got)
			}
		})
	}
}

// TestDNSUpdateRefused: updates without the world's key, with a wrong
// one, outside the zones or of other types are refused and change
// nothing.
func TestDNSUpdateRefused(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{})
	if err := w.AddZone("example.test"); err != nil {
		t.Fatal(err)
	}
	const name = "_acme-challenge.mail.example.test."
	txt := func(owner string) dns.RR {
		return &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"value"}}
	}
	goodKey := map[string]string{w.TSIG.Name: w.TSIG.Secret}
	otherSecret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	tests := []struct {
		name   string
		zone   string
		rrs    []dns.RR
		prereq []dns.RR
		key    string // "" unsigned
		alg    string
		secret map[string]string
		rcode  int
	}{
		{"unsigned", "example.test.", []dns.RR{txt(name)}, nil, "", "", nil, dns.RcodeRefused},
		{"wrong secret", "example.test.", []dns.RR{txt(name)}, nil, w.TSIG.Name, w.TSIG.Algorithm, map[string]string{w.TSIG.Name: otherSecret}, dns.RcodeNotAuth},
		{"unknown key", "example.test.", []dns.RR{txt(name)}, nil, "other-key.", w.TSIG.Algorithm, map[string]string{"other-key.": w.TSIG.Secret}, dns.RcodeNotAuth},
		{"other algorithm", "example.test.", []dns.RR{txt(name)}, nil, w.TSIG.Name, dns.HmacSHA1, goodKey, dns.RcodeNotAuth},
		{"zone outside", "elsewhere.test.", []dns.RR{txt("_acme-challenge.elsewhere.test.")}, nil, w.TSIG.Name, w.TSIG.Algorithm, goodKey, dns.RcodeNotAuth},
		{"record outside the zone", "example.test.", []dns.RR{txt(name), txt("_acme-challenge.elsewhere.test.")}, nil, w.TSIG.Name, w.TSIG.Algorithm, goodKey, dns.RcodeNotZone},
		{"not TXT", "example.test.", []dns.RR{txt(name), &dns.A{Hdr: dns.RR_Header{Name: "mail.example.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{10, 0, 0, 1}}}, nil, w.TSIG.Name, w.TSIG.Algorithm, goodKey, dns.RcodeRefused},
		{"prerequisite", "example.test.", []dns.RR{txt(name)}, []dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassANY}}}, w.TSIG.Name, w.TSIG.Algorithm, goodKey, dns.RcodeNotImplemented},
	}
	for i, tt := range tests {
		m := new(dns.Msg).SetUpdate(tt.zone)
		m.Insert(tt.rrs)
		m.Answer = tt.prereq
		if tt.key != "" {
			m.SetTsig(tt.key, tt.alg, 300, time.Now().Unix())
		}
		c := &dns.Client{Timeout: 5 * time.Second, TsigSecret: tt.secret}
		r, _, err := c.ExchangeContext(t.Context(), m, w.DNSAddr)
		if err != nil {
			t.Errorf("%s: exchange = %v", tt.name, err)
			continue
		}
		if r.Rcode != tt.rcode {
			t.Errorf("%s: rcode %s, want %s", tt.name, dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.rcode])
		}
		for _, rr := range tt.rrs {
			if got := txtAt(t, w, rr.Header().Name); len(got) != 0 {
				t.Errorf("%s: %s has TXT %q after a refused update", tt.name, rr.Header().Name, got)
			}
		}
		if st := w.Stats(); st.DNSUpdates != 0 || st.DNSUpdatesRefused != i+1 {
			t.Errorf("%s: stats DNSUpdates %d, DNSUpdatesRefused %d; want 0, %d", tt.name, st.DNSUpdates, st.DNSUpdatesRefused, i+1)
		}
	}

	// The same update, signed with the world's key, applies; its response
	// is signed (the client verified it) and the record is served.
	m := new(dns.Msg).SetUpdate("example.test.")
	m.Insert([]dns.RR{txt(name)})
	m.SetTsig(w.TSIG.Name, w.TSIG.Algorithm, 300, time.Now().Unix())
	r := exchange(t, w, m, goodKey)
	if r.Rcode != dns.RcodeSuccess || r.IsTsig() == nil {
		t.Fatalf("signed update: rcode %s, TSIG %v", dns.RcodeToString[r.Rcode], r.IsTsig())
	}
	if got := txtAt(t, w, name); !slices.Equal(got, []string{"value"}) {
		t.Errorf("TXT after the signed update = %q", got)
	}
}

// TestDNSZones: the server is authoritative for the zones: SOA and NS at
// the apex, addresses for the host names, NXDOMAIN with the SOA below,
// and lego finds the zone of a challenge name.
func TestDNSZones(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{})
	if err := w.AddUser("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	if err := w.AddZone("Example.TEST."); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Zones(), []string{"ca.sandbox.test", "example.org", "example.test"}; !slices.Equal(got, want) {
		t.Errorf("Zones() = %q, want %q", got, want)
	}
	for _, zone := range []string{"example.org", "example.test", "ca.sandbox.test"} {
		r := queryRR(t, w, zone, dns.TypeSOA)
		if len(r.Answer) != 1 || !r.Authoritative {
			t.Fatalf("SOA %s: %v", zone, r)
		}
		if soa, ok := r.Answer[0].(*dns.SOA); !ok || soa.Ns != "ns."+zone+"." {
			t.Errorf("SOA %s = %v", zone, r.Answer[0])
		}
		r = queryRR(t, w, zone, dns.TypeNS)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.NS).Ns != "ns."+zone+"." {
			t.Errorf("NS %s = %v", zone, r.Answer)
		}
		for _, host := range []string{"ns." + zone, "mail." + zone, zone} {
			r = queryRR(t, w, host, dns.TypeA)
			if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.1" {
				t.Errorf("A %s = %v", host, r.Answer)
			}
		}
		r = queryRR(t, w, "nothing."+zone, dns.TypeTXT)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("nothing.%s: rcode %s, authority %v; want NXDOMAIN with the SOA", zone, dns.RcodeToString[r.Rcode], r.Ns)
		}
	}
	if r := queryRR(t, w, "mail.example.test", dns.TypeTXT); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
		t.Errorf("TXT of a host: %v; want NODATA with the SOA", r)
	}
	if r := queryRR(t, w, "example.net", dns.TypeSOA); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
		t.Errorf("SOA outside the zones: %v", r)
	}
	zone, err := dns01.NewClient(nil).FindZoneByFqdnCustom(t.Context(), "_acme-challenge._993._imaps.mail.example.test.", []string{w.DNSAddr})
	if err != nil || zone != "example.test." {
		t.Errorf("lego FindZoneByFqdnCustom = %q, %v; want example.test.", zone, err)
	}
}

func TestTSIGKeyFile(t *testing.T) {
	t.Parallel()
	k := TSIGKey{Name: "acmemail-sandbox.", Algorithm: "hmac-sha256.", Secret: "c2VjcmV0"}
	want := "key \"acmemail-sandbox\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n"
	if got := string(k.File()); got != want {
		t.Errorf("File() = %q, want %q", got, want)
	}
}

// TestOptionsZones: Options.Zones adds zones at start; a malformed one
// stops Start.
func TestOptionsZones(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{Zones: []string{"Example.NET.", "mx.example.org"}})
	if got, want := w.Zones(), []string{"ca.sandbox.test", "example.net", "mx.example.org"}; !slices.Equal(got, want) {
		t.Errorf("Zones() = %q, want %q", got, want)
	}
	if r := queryRR(t, w, "example.net", dns.TypeSOA); len(r.Answer) != 1 {
		t.Errorf("SOA example.net: %v", r)
	}
	for _, bad := range []string{"", "a..b", "bad domain.test", "-x.test"} {
		if w, err := Start(t.Context(), Options{Zones: []string{bad}}); err == nil {
			w.Close()
			t.Errorf("Start with zone %q succeeded", bad)
		}
	}
}
