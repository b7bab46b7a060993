package sandbox

import (
	"net"
	"strconv"
	"testing"
)

// TestSRVRecords: a client discovering the mail servers of a user's
// domain by RFC 6186 finds the world's listeners; other domains have none.
func TestSRVRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{}, "alice@example.org")
	r := resolverFor(e.w.DNSAddr)
	port := func(u string) uint16 {
		_, p, _ := net.SplitHostPort(hostOf(u))
		n, _ := strconv.Atoi(p)
		return uint16(n)
	}
	for _, tt := range []struct {
		service string
		port    uint16
	}{
		{"imaps", port(e.w.IMAPURL)}, {"imap", port(e.w.IMAPStartTLSURL)},
		{"submissions", port(e.w.SMTPURL)}, {"submission", port(e.w.SMTPStartTLSURL)},
	} {
		_, recs, err := r.LookupSRV(t.Context(), tt.service, "tcp", "Example.org")
		if err != nil || len(recs) != 1 || recs[0].Target != "localhost." || recs[0].Port != tt.port {
			t.Errorf("LookupSRV(%s) = %v, %v; want localhost.:%d", tt.service, recs, err, tt.port)
		}
	}
	if _, _, err := r.LookupSRV(t.Context(), "imaps", "tcp", "elsewhere.example"); err == nil {
		t.Errorf("LookupSRV for a domain without users succeeded")
	} else if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
		t.Errorf("LookupSRV for a domain without users = %v, want NXDOMAIN", err)
	}
}
