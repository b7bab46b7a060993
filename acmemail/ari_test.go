package acmemail

import (
	"crypto/x509"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestParseRenewalInfo(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ok := []byte(`{"suggestedWindow":{"start":"2026-06-01T00:00:00Z","end":"2026-06-03T00:00:00Z"},"explanationURL":"https://ca.example/why"}`)
	cases := []struct {
		retryAfter string
		next       time.Duration
	}{
		{"3600", time.Hour},
		{"1", MinRenewalInfoRetry},                                   // clamped up to a minute
		{"864000", MaxRenewalInfoRetry},                              // ten days, clamped down to one
		{"", DefaultRenewalInfoRetry},                                // absent
		{"soon", DefaultRenewalInfoRetry},                            // garbage
		{now.Add(2 * time.Hour).Format(time.RFC1123), 2 * time.Hour}, // HTTP-date
	}
	for _, c := range cases {
		ri, err := parseRenewalInfo(ok, strings.Replace(c.retryAfter, "UTC", "GMT", 1), "id", now)
		if err != nil {
			t.Fatalf("Retry-After %q: %v", c.retryAfter, err)
		}
		if got := ri.NextCheck.Sub(now); got != c.next {
			t.Errorf("Retry-After %q: next check in %v, want %v", c.retryAfter, got, c.next)
		}
		if ri.ExplanationURL != "https://ca.example/why" || ri.CertID != "id" || !ri.Start.Equal(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("parsed %+v", ri)
		}
	}
	for _, bad := range []string{
		`{"suggestedWindow":{"start":"2026-06-03T00:00:00Z","end":"2026-06-03T00:00:00Z"}}`, // empty
		`{"suggestedWindow":{"start":"2026-06-03T00:00:00Z","end":"2026-06-01T00:00:00Z"}}`, // reversed
	} {
		if _, err := parseRenewalInfo([]byte(bad), "", "id", now); !errors.Is(err, ErrInvalidWindow) {
			t.Errorf("%s: err = %v, want ErrInvalidWindow", bad, err)
		}
	}
	for _, bad := range []string{``, `{}`, `{"suggestedWindow":{}}`, `{"suggestedWindow":{"start":"yesterday","end":"x"}}`, `[]`} {
		if _, err := parseRenewalInfo([]byte(bad), "", "id", now); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestPick(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ri := &RenewalInfo{Start: start, End: start.Add(48 * time.Hour)}
	var early, late bool
	for range 2000 {
		p := ri.Pick()
		if p.Before(ri.Start) || !p.Before(ri.End) {
			t.Fatalf("Pick() = %v, outside [%v, %v)", p, ri.Start, ri.End)
		}
		early = early || p.Before(start.Add(12*time.Hour))
		late = late || p.After(start.Add(36*time.Hour))
	}
	if !early || !late {
		t.Errorf("2000 picks never fell into the first or last quarter of the window")
	}
	if got := (&RenewalInfo{Start: start, End: start}).Pick(); !got.Equal(start) {
		t.Errorf("Pick() of an empty window = %v", got)
	}
}

func TestFallbackRenewalTime(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotBefore: nb, NotAfter: nb.Add(90 * 24 * time.Hour)}
	if got, want := FallbackRenewalTime(leaf), nb.Add(60*24*time.Hour); !got.Equal(want) {
		t.Errorf("FallbackRenewalTime = %v, want %v (a third of 90 days left)", got, want)
	}
}

func TestCertID(t *testing.T) {
	// RFC 9773 §4.1 example: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
	// serial 00:87:65:43:21.
	aki := []byte{0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4}
	leaf := &x509.Certificate{AuthorityKeyId: aki, SerialNumber: big.NewInt(0x87654321)}
	id, err := CertID(leaf)
	if err != nil || id != "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE" {
		t.Errorf("CertID = %q, %v; want the RFC's aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE", id, err)
	}
	if _, err := CertID(&x509.Certificate{SerialNumber: big.NewInt(1)}); err == nil {
		t.Errorf("CertID without AKI succeeded")
	}
}

func TestParseRevocationReason(t *testing.T) {
	for name, want := range map[string]int{"unspecified": 0, "keyCompromise": 1, "KEYCOMPROMISE": 1, "affiliationChanged": 3, "superseded": 4, "cessationOfOperation": 5} {
		if got, err := ParseRevocationReason(name); err != nil || got != want {
			t.Errorf("ParseRevocationReason(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, bad := range []string{"", "cACompromise", "2", "removeFromCRL"} {
		if _, err := ParseRevocationReason(bad); err == nil {
			t.Errorf("ParseRevocationReason(%q) succeeded", bad)
		}
	}
	if RevocationReasonName(4) != "superseded" {
		t.Errorf("RevocationReasonName(4) = %q", RevocationReasonName(4))
	}
}

func FuzzParseRenewalInfo(f *testing.F) {
	f.Add([]byte(`{"suggestedWindow":{"start":"2026-06-01T00:00:00Z","end":"2026-06-03T00:00:00Z"}}`), "3600")
	f.Add([]byte(`{"suggestedWindow":{"start":"2026-06-03T00:00:00Z","end":"2026-06-01T00:00:00Z"}}`), "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add([]byte(`{"suggestedWindow":null}`), "-5")
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, retryAfter string) {
		ri, err := parseRenewalInfo(body, retryAfter, "id", now)
		if ri == nil {
			if err == nil {
				t.Fatal("nil info without an error")
			}
			return
		}
		if d := ri.NextCheck.Sub(now); d < MinRenewalInfoRetry || d > MaxRenewalInfoRetry {
			t.Fatalf("next check in %v, outside the clamp", d)
		}
		if err == nil && !ri.End.After(ri.Start) {
			t.Fatalf("accepted an invalid window %v..%v", ri.Start, ri.End)
		}
		if err == nil {
			if p := ri.Pick(); p.Before(ri.Start) || !p.Before(ri.End) {
				t.Fatalf("Pick() = %v outside the window", p)
			}
		}
	})
}
