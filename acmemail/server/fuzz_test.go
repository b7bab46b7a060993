package server

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/acmemail/acmemail/keystore"
)

func sanCert(san []byte) *x509.Certificate {
	return &x509.Certificate{Extensions: []pkix.Extension{{Id: oidSAN, Value: san}}}
}

// FuzzParseNames: ParseNames reads any subjectAltName a CA may send
// without panicking; it finds at most one name per two bytes (a
// GeneralName's tag and length); and a name set it reads as a host with
// SRVNames of known services for it is re-encoded by MarshalSAN and read
// back the same.
func FuzzParseNames(f *testing.F) {
	for _, seed := range [][]string{{}, {"imaps"}, {"submissions", "imaps", "pop3"}} {
		san, err := MarshalSAN("mail.example.test", seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(san)
	}
	f.Add([]byte{0x30, 0x03, 0x87, 0x01, 0x7f})                   // an IP address
	f.Add([]byte{0x30, 0x06, 0xa0, 0x04, 0x06, 0x02, 0x2a, 0x03}) // an otherName without value
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, san []byte) {
		n, err := ParseNames(sanCert(san))
		if err != nil {
			return
		}
		if total := len(n.DNS) + len(n.SRV) + len(n.Other); total > len(san)/2 {
			t.Fatalf("%d names from %d bytes", total, len(san))
		}
		if len(n.DNS) != 1 || len(n.Other) != 0 {
			return
		}
		host := n.DNS[0]
		if h, err := keystore.NormalizeHost(host); err != nil || h != host {
			return
		}
		var services []string
		for _, s := range n.SRV {
			svc, h, ok := ParseSRVName(s)
			if _, known := Port(svc); !ok || !known || h != host {
				return
			}
			services = append(services, svc)
		}
		again, err := MarshalSAN(host, services)
		if err != nil {
			t.Fatalf("MarshalSAN(%q, %q): %v", host, services, err)
		}
		m, err := ParseNames(sanCert(again))
		if err != nil || !slices.Equal(m.DNS, n.DNS) || !slices.Equal(m.SRV, n.SRV) || len(m.Other) != 0 {
			t.Fatalf("round trip of %+v: %+v, %v", n, m, err)
		}
	})
}

// FuzzSANRoundTrip: every host and set of services MarshalSAN encodes is
// read back by ParseNames as exactly that dNSName and those SRVNames.
func FuzzSANRoundTrip(f *testing.F) {
	f.Add("mail.example.test", uint8(0))
	f.Add("MAIL.Example.TEST.", uint8(0x7f))
	f.Add("xn--bcher-kva.example", uint8(5))
	f.Fuzz(func(t *testing.T, host string, mask uint8) {
		h, err := keystore.NormalizeHost(host)
		if err != nil {
			return
		}
		var services, want []string
		for i, s := range Services() {
			if mask&(1<<i) != 0 {
				services = append(services, s)
				want = append(want, SRVName(s, h))
			}
		}
		san, err := MarshalSAN(h, services)
		if err != nil {
			t.Fatalf("MarshalSAN(%q, %q): %v", h, services, err)
		}
		n, err := ParseNames(sanCert(san))
		if err != nil || !slices.Equal(n.DNS, []string{h}) || !slices.Equal(n.SRV, want) || len(n.Other) != 0 {
			t.Fatalf("ParseNames(MarshalSAN(%q, %q)) = %+v, %v", h, services, n, err)
		}
	})
}

// FuzzChallengePort: the port of a dns-service-01 challenge is read from
// any authorization body only when it is an integer from 1 to 65535; an
// authorization holding a port p (as the sandbox CA encodes it) gives p
// back exactly when p is in that range.
func FuzzChallengePort(f *testing.F) {
	f.Add([]byte(`{"challenges":[{"type":"dns-service-01","url":"https://ca/ch/1","token":"t","port":993}]}`), "https://ca/ch/1", 993)
	f.Add([]byte(`{"challenges":[{"url":"u","port":"993"}]}`), "u", 0)
	f.Add([]byte(`{"challenges":[{"url":"u","port":9.93e2}]}`), "u", 65536)
	f.Add([]byte(`{"challenges":[{"url":"u"}]}`), "u", -1)
	f.Fuzz(func(t *testing.T, body []byte, url string, p int) {
		if port, err := challengePort(body, url); err == nil && (port < 1 || port > 65535) {
			t.Fatalf("challengePort(%q) = %d", body, port)
		}
		doc, err := json.Marshal(map[string]any{"challenges": []map[string]any{
			{"type": ChallengeDNSService, "url": "other", "port": 1},
			{"type": ChallengeDNSService, "url": url, "token": "t", "port": p},
		}})
		if err != nil || url == "other" || !utf8.ValidString(url) { // JSON holds no invalid UTF-8
			return
		}
		got, err := challengePort(doc, url)
		if valid := p >= 1 && p <= 65535; valid != (err == nil) || valid && got != p {
			t.Fatalf("port %d: got %d, %v", p, got, err)
		}
	})
}
