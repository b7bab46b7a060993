package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"
)

// resolverFor returns a pure-Go resolver that asks only addr.
func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// startTestDNS serves zone on a fresh UDP+TCP port.
func startTestDNS(t *testing.T, zone map[string][]string) *dnsServer {
	t.Helper()
	udp, tcp, err := listenDNS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{udp: udp, tcp: tcp, log: slog.New(slog.DiscardHandler), lookup: func(name string) ([]string, bool) {
		r, ok := zone[name]
		return r, ok
	}}
	s.start()
	t.Cleanup(func() { s.close() })
	return s
}

func TestDNSWorld(t *testing.T) {
	t.Parallel()
	w := startWorld(t, Options{})
	if err := w.AddUser("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.keys.key("example.org"); err != nil {
		t.Fatal(err)
	}
	r := resolverFor(w.DNSAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, name := range []string{"sandbox._domainkey.ca.sandbox.test", "sandbox._domainkey.example.org", "SANDBOX._domainkey.Example.ORG."} {
		got, err := r.LookupTXT(ctx, name)
		if err != nil {
			t.Fatalf("LookupTXT(%s) = %v", name, err)
		}
		want, err := w.LookupTXT(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, "") != want[0] || !strings.HasPrefix(want[0], "v=DKIM1; k=rsa; p=") {
			t.Errorf("LookupTXT(%s) = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"nothing.example.org", "other._domainkey.example.org"} {
		_, err := r.LookupTXT(ctx, name)
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("LookupTXT(%s) = %v, want not found", name, err)
		}
		if _, err := w.LookupTXT(ctx, name); !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("World.LookupTXT(%s) = %v, want not found", name, err)
		}
	}
}

// TestDNSLarge: a record larger than a UDP answer can carry is truncated
// over UDP and served whole over TCP; Go's resolver falls back by itself.
func TestDNSLarge(t *testing.T) {
	big := strings.Repeat("0123456789", 200) // 2000 bytes, 8 strings
	s := startTestDNS(t, map[string][]string{"big.example": {big}, "two.example": {"a", "b"}})
	r := resolverFor(s.tcp.Addr().String())
	got, err := r.LookupTXT(t.Context(), "big.example")
	if err != nil {
		t.Fatalf("LookupTXT = %v", err)
	}
	if strings.Join(got, "") != big {
		t.Errorf("LookupTXT returned %d bytes, want %d", len(strings.Join(got, "")), len(big))
	}
	got, err = r.LookupTXT(t.Context(), "two.example")
	if err != nil || len(got) != 2 {
		t.Errorf("LookupTXT(two records) = %q, %v", got, err)
	}
}

func query(t testing.TB, name string, typ dnsmessage.Type, edns bool, mutate func(*dnsmessage.Header)) []byte {
	t.Helper()
	h := dnsmessage.Header{ID: 4242, RecursionDesired: true}
	if mutate != nil {
		mutate(&h)
	}
	b := dnsmessage.NewBuilder(nil, h)
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	if edns {
		b.StartAdditionals()
		var rh dnsmessage.ResourceHeader
		rh.SetEDNS0(4096, dnsmessage.RCodeSuccess, false)
		b.OPTResource(rh, dnsmessage.OPTResource{})
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestDNSHandle(t *testing.T) {
	long := strings.Repeat("x", 700)
	s := &dnsServer{log: slog.New(slog.DiscardHandler), lookup: func(name string) ([]string, bool) {
		switch name {
		case "k._domainkey.example.org":
			return []string{"v=DKIM1; p=abc"}, true
		case "long.example.org":
			return []string{long}, true
		}
		return nil, false
	}}
	tests := []struct {
		name      string
		req       []byte
		udp       bool
		rcode     dnsmessage.RCode
		answers   int
		truncated bool
		opt       bool
	}{
		{"TXT", query(t, "k._domainkey.example.org.", dnsmessage.TypeTXT, false, nil), true, dnsmessage.RCodeSuccess, 1, false, false},
		{"TXT with EDNS0", query(t, "K._DOMAINKEY.example.org.", dnsmessage.TypeTXT, true, nil), true, dnsmessage.RCodeSuccess, 1, false, true},
		{"A of an existing name", query(t, "k._domainkey.example.org.", dnsmessage.TypeA, false, nil), true, dnsmessage.RCodeSuccess, 0, false, false},
		{"unknown name", query(t, "x.example.org.", dnsmessage.TypeTXT, true, nil), true, dnsmessage.RCodeNameError, 0, false, true},
		{"long over UDP", query(t, "long.example.org.", dnsmessage.TypeTXT, false, nil), true, dnsmessage.RCodeSuccess, 0, true, false},
		{"long over UDP with EDNS0", query(t, "long.example.org.", dnsmessage.TypeTXT, true, nil), true, dnsmessage.RCodeSuccess, 1, false, true},
		{"long over TCP", query(t, "long.example.org.", dnsmessage.TypeTXT, false, nil), false, dnsmessage.RCodeSuccess, 1, false, false},
		{"opcode STATUS", query(t, "x.example.org.", dnsmessage.TypeTXT, false, func(h *dnsmessage.Header) { h.OpCode = 2 }), true, dnsmessage.RCodeNotImplemented, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := s.handle(tt.req, tt.udp)
			var p dnsmessage.Parser
			h, err := p.Start(resp)
			if err != nil {
				t.Fatalf("response does not parse: %v", err)
			}
			if h.ID != 4242 || !h.Response || !h.Authoritative || h.RCode != tt.rcode || h.Truncated != tt.truncated {
				t.Errorf("header = %+v, want rcode %v truncated %v", h, tt.rcode, tt.truncated)
			}
			if tt.udp && len(resp) > 512 && !tt.opt {
				t.Errorf("UDP answer of %d bytes without EDNS0", len(resp))
			}
			if err := p.SkipAllQuestions(); err != nil {
				t.Fatal(err)
			}
			answers, err := p.AllAnswers()
			if err != nil {
				t.Fatal(err)
			}
			if len(answers) != tt.answers {
				t.Errorf("%d answers, want %d", len(answers), tt.answers)
			}
			for _, a := range answers {
				for _, s := range a.Body.(*dnsmessage.TXTResource).TXT {
					if len(s) > 255 {
						t.Errorf("character-string of %d bytes", len(s))
					}
				}
			}
			p.SkipAllAuthorities()
			adds, _ := p.AllAdditionals()
			if hasOPT := len(adds) == 1 && adds[0].Header.Type == dnsmessage.TypeOPT; hasOPT != tt.opt {
				t.Errorf("OPT in response = %v, want %v", hasOPT, tt.opt)
			}
		})
	}
	if s.handle([]byte{1, 2, 3}, true) != nil {
		t.Errorf("garbage got an answer")
	}
	resp := query(t, "x.example.org.", dnsmessage.TypeTXT, false, func(h *dnsmessage.Header) { h.Response = true })
	if s.handle(resp, true) != nil {
		t.Errorf("a response got an answer")
	}
}

// TestDNSTCPPipelining sends two queries on one TCP connection.
func TestDNSTCPPipelining(t *testing.T) {
	s := startTestDNS(t, map[string][]string{"a.example": {"x"}})
	c, err := net.Dial("tcp", s.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for range 2 {
		q := query(t, "a.example.", dnsmessage.TypeTXT, false, nil)
		if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(q)))); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(q); err != nil {
			t.Fatal(err)
		}
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			t.Fatal(err)
		}
		resp := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			t.Fatal(err)
		}
		var p dnsmessage.Parser
		if h, err := p.Start(resp); err != nil || h.RCode != dnsmessage.RCodeSuccess {
			t.Fatalf("response = %+v, %v", h, err)
		}
	}
}

// FuzzDNSHandle: whatever arrives, a response parses, carries the
// request's ID and fits the UDP size the request allows (512 octets, or
// its EDNS0 size up to 1232); updates never grow the store past its bound.
func FuzzDNSHandle(f *testing.F) {
	f.Add(query(f, "k._domainkey.example.org.", dnsmessage.TypeTXT, true, nil))
	f.Add(query(f, "x.", dnsmessage.TypeA, false, nil))
	f.Add(query(f, "example.test.", dnsmessage.TypeSOA, false, nil))
	f.Add(query(f, "nothing.example.test.", dnsmessage.TypeTXT, true, nil))
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	key := TSIGKey{Name: tsigKeyName, Algorithm: tsigAlgorithm, Secret: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}
	for _, signed := range []bool{false, true} {
		m := new(dns.Msg).SetUpdate("example.test.")
		m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "_acme-challenge.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{strings.Repeat("v", 250), strings.Repeat("w", 250)}}})
		m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "old.example.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
		var b []byte
		var err error
		if signed {
			m.SetTsig(key.Name, key.Algorithm, 300, time.Now().Unix())
			b, _, err = dns.TsigGenerate(m, key.Secret, "", false)
		} else {
			b, err = m.Pack()
		}
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := &dnsServer{log: slog.New(slog.DiscardHandler), lookup: func(name string) ([]string, bool) {
		if name == "k._domainkey.example.org" {
			return []string{strings.Repeat("p", 600)}, true
		}
		return nil, false
	}, zones: func() []string { return []string{"example.test", "example.org"} }, addr: net.IPv4(127, 0, 0, 1), tsig: &key}
	f.Fuzz(func(t *testing.T, msg []byte) {
		limit := dnsMinUDPSize
		if req := new(dns.Msg); req.Unpack(msg) == nil {
			if opt := req.IsEdns0(); opt != nil {
				limit = min(max(int(opt.UDPSize()), dnsMinUDPSize), dnsUDPSize)
			}
		}
		for _, udp := range []bool{true, false} {
			resp := s.handle(msg, udp)
			if resp == nil {
				if len(msg) >= 12 && msg[2]&0x80 == 0 {
					t.Fatalf("no response to a request with a header")
				}
				continue
			}
			var p dnsmessage.Parser
			h, err := p.Start(resp)
			if err != nil {
				t.Fatalf("unparsable response: %v", err)
			}
			if err := new(dns.Msg).Unpack(resp); err != nil {
				t.Fatalf("miekg/dns cannot parse the response: %v", err)
			}
			if !h.Response || h.ID != binary.BigEndian.Uint16(msg) {
				t.Fatalf("response ID %d (response %v), request ID %d", h.ID, h.Response, binary.BigEndian.Uint16(msg))
			}
			if udp && len(resp) > limit {
				t.Fatalf("UDP response of %d bytes, limit %d", len(resp), limit)
			}
		}
		s.dynMu.Lock()
		n := len(s.dyn)
		s.dynMu.Unlock()
		if n > maxDynamicNames {
			t.Fatalf("%d dynamic names", n)
		}
	})
}
