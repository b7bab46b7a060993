package server

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// tsigZone is an authoritative DNS server for example.test on loopback
// that takes RFC 2136 updates of TXT records signed with its TSIG key.
type tsigZone struct {
	mu  sync.Mutex
	txt map[string][]string
}

func (z *tsigZone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	z.mu.Lock()
	defer z.mu.Unlock()
	switch {
	case r.Opcode == dns.OpcodeUpdate:
		if r.IsTsig() == nil || w.TsigStatus() != nil {
			m.Rcode = dns.RcodeRefused
			break
		}
		for _, rr := range r.Ns {
			h := rr.Header()
			name := strings.ToLower(h.Name)
			switch {
			case h.Class == dns.ClassANY && h.Rrtype == dns.TypeTXT:
				delete(z.txt, name)
			case h.Class == dns.ClassNONE:
				var keep []string
				for _, v := range z.txt[name] {
					if v != strings.Join(rr.(*dns.TXT).Txt, "") {
						keep = append(keep, v)
					}
				}
				z.txt[name] = keep
			case h.Rrtype == dns.TypeTXT:
				z.txt[name] = append(z.txt[name], strings.Join(rr.(*dns.TXT).Txt, ""))
			}
		}
	case q.Qtype == dns.TypeSOA && strings.EqualFold(q.Name, "example.test."):
		m.Answer = append(m.Answer, &dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns.example.test.", Mbox: "hostmaster.example.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
	case q.Qtype == dns.TypeTXT:
		for _, v := range z.txt[strings.ToLower(q.Name)] {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}})
		}
	default:
		if !strings.HasSuffix(strings.ToLower(q.Name), "example.test.") {
			m.Rcode = dns.RcodeRefused
		} else {
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: "example.test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
				Ns: "ns.example.test.", Mbox: "hostmaster.example.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60})
		}
	}
	if r.IsTsig() != nil {
		m.SetTsig(r.IsTsig().Hdr.Name, dns.HmacSHA256, 300, time.Now().Unix())
	}
	w.WriteMsg(m)
}

const testTSIGSecret = "c2FuZGJveC10c2lnLXNlY3JldC1mb3ItdGVzdHMhIQ=="

func startTSIGZone(t *testing.T) (*tsigZone, string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z := &tsigZone{txt: map[string][]string{}}
	srv := &dns.Server{PacketConn: pc, Handler: z, TsigSecret: map[string]string{"acmemail-test.": testTSIGSecret},
		MsgAcceptFunc: func(dh dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return z, pc.LocalAddr().String()
}

// TestRFC2136Provider: lego's own dnsupdate provider, configured from
// RFC2136_* variables, writes the dns-service-01 record of the proposal
// through a TSIG-signed UPDATE; WaitPropagation sees it; CleanUp removes
// it. A wrong TSIG secret is refused by the server and reported.
func TestRFC2136Provider(t *testing.T) {
	t.Parallel()
	z, addr := startTSIGZone(t)
	env := map[string]string{"RFC2136_NAMESERVER": addr, "RFC2136_TSIG_KEY": "acmemail-test.", "RFC2136_TSIG_SECRET": testTSIGSecret, "RFC2136_TSIG_ALGORITHM": "hmac-sha256."}
	p, err := NewProvider("rfc2136", func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keyAuth := BoundKeyAuthorization("token.thumb", "imaps", 993)
	domain := ChallengeDomain("mail.example.test", "imaps", 993)
	if err := Present(ctx, p, addr, domain, "token", keyAuth); err != nil {
		t.Fatalf("Present: %v", err)
	}
	name := RecordName(ctx, addr, domain, keyAuth)
	if name != "_acme-challenge._993._imaps.mail.example.test." {
		t.Errorf("RecordName = %q", name)
	}
	if err := WaitPropagation(ctx, addr, name, TXTValue(keyAuth), 5*time.Second, 50*time.Millisecond); err != nil {
		t.Fatalf("WaitPropagation: %v", err)
	}
	z.mu.Lock()
	got := z.txt[name]
	z.mu.Unlock()
	if len(got) != 1 || got[0] != TXTValue(keyAuth) {
		t.Errorf("the zone holds %v at %s, want [%s]", got, name, TXTValue(keyAuth))
	}
	if err := CleanUp(ctx, p, addr, domain, "token", keyAuth); err != nil {
		t.Fatalf("CleanUp: %v", err)
	}
	if vals, _ := lookupTXT(ctx, addr, name, true); len(vals) != 0 {
		t.Errorf("after CleanUp the zone still serves %v", vals)
	}
	if err := WaitPropagation(ctx, addr, name, TXTValue(keyAuth), 300*time.Millisecond, 50*time.Millisecond); err == nil {
		t.Errorf("WaitPropagation found a removed record")
	}

	env["RFC2136_TSIG_SECRET"] = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE="
	bad, err := NewProvider("rfc2136", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	err = Present(ctx, bad, addr, "mail.example.test", "t", "t.x")
	if err == nil {
		t.Fatalf("an UPDATE with the wrong TSIG secret was accepted")
	}
	if strings.Contains(err.Error(), env["RFC2136_TSIG_SECRET"]) {
		t.Errorf("the error shows the TSIG secret: %v", err)
	}
}
