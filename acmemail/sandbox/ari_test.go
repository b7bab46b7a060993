package sandbox

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// issueCert runs a whole order for addr and returns the leaf.
func (e *env) issueCert(addr string, replaces string) *x509.Certificate {
	e.t.Helper()
	o, ch, err := e.orderReplacing(addr, replaces)
	if err != nil {
		e.t.Fatalf("NewOrder() = %v", err)
	}
	cm := parseChallengeMail(e.t, e.fetchMail(addr, uint32(e.w.Stats().ChallengesSent)))
	thumb, _ := e.acct.Thumbprint()
	if err := e.submit(addr, []string{ch.From}, composeReply(addr, ch.From, cm, digestFor(e.t, cm.tp1, ch.Token, thumb, false), replyOpts{})); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.client.InitiateChallenge(e.t.Context(), e.acct, ch); err != nil {
		e.t.Fatal(err)
	}
	e.waitAuthz(o.Authorizations[0])
	key := mustKey(e.t, "p256")
	fo, err := e.client.FinalizeOrder(e.t.Context(), e.acct, *o, newCSR(e.t, key, []string{addr}, nil))
	if err != nil {
		e.t.Fatalf("FinalizeOrder() = %v", err)
	}
	chains, err := e.client.GetCertificateChain(e.t.Context(), e.acct, fo.Certificate)
	if err != nil {
		e.t.Fatalf("GetCertificateChain() = %v", err)
	}
	return checkChain(e.t, e.w, chains[0].ChainPEM, addr, key)
}

func (e *env) orderReplacing(addr, replaces string) (*acme.Order, acme.Challenge, error) {
	ctx := e.t.Context()
	o, err := e.client.NewOrder(ctx, e.acct, acme.Order{Identifiers: []acme.Identifier{{Type: "email", Value: addr}}, Replaces: replaces})
	if err != nil {
		return nil, acme.Challenge{}, err
	}
	az, err := e.client.GetAuthorization(ctx, e.acct, o.Authorizations[0])
	if err != nil {
		e.t.Fatalf("GetAuthorization() = %v", err)
	}
	return &o, az.Challenges[0], nil
}

func getRenewalInfo(t *testing.T, e *env, id string) (int, string, map[string]map[string]string) {
	t.Helper()
	dir, err := e.client.GetDirectory(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if dir.RenewalInfo == "" {
		return 0, "", nil
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: e.tls}}
	resp, err := hc.Get(dir.RenewalInfo + "/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]map[string]string
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), body
}

func TestRenewalInfo(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{RenewalWindow: &RenewalWindow{Start: time.Hour, End: 2 * time.Hour}, RenewalRetryAfter: time.Hour}, alice)
	leaf := e.issueCert(alice, "")
	id := certID(leaf)

	code, ra, body := getRenewalInfo(t, e, id)
	if code != http.StatusOK || ra != "3600" {
		t.Fatalf("renewalInfo: status %d, Retry-After %q", code, ra)
	}
	start, _ := time.Parse(time.RFC3339Nano, body["suggestedWindow"]["start"])
	end, _ := time.Parse(time.RFC3339Nano, body["suggestedWindow"]["end"])
	if !start.Equal(leaf.NotBefore.Add(time.Hour)) || !end.Equal(leaf.NotBefore.Add(2*time.Hour)) {
		t.Errorf("window %v..%v, want notBefore+1h..+2h (notBefore %v)", start, end, leaf.NotBefore)
	}
	if code, _, _ := getRenewalInfo(t, e, "AAAA.AQ"); code != http.StatusNotFound {
		t.Errorf("unknown certID: status %d, want 404", code)
	}

	// Told a window at run time, it serves it, even an invalid one.
	now := time.Now().Truncate(time.Second)
	e.w.SetRenewalWindow(now.Add(-time.Minute), now)
	_, _, body = getRenewalInfo(t, e, id)
	if got := body["suggestedWindow"]["start"]; got != now.Add(-time.Minute).UTC().Format(time.RFC3339Nano) {
		t.Errorf("start after SetRenewalWindow = %s", got)
	}
	st, ok := e.w.Certificate(leaf.SerialNumber.Text(16))
	if !ok || st.CertID != id || !st.RenewalEnd.Equal(now) {
		t.Errorf("Certificate() = %+v, %v", st, ok)
	}

	// A renewal order replaces the certificate; a second one is refused.
	newLeaf := e.issueCert(alice, id)
	if _, _, err := e.orderReplacing(alice, id); err == nil || problemOf(t, err).Type != probAlreadyReplaced {
		t.Errorf("second replacement: %v, want alreadyReplaced", err)
	}
	if _, _, err := e.orderReplacing(alice, "AAAA.AQ"); err == nil || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("replacing an unknown certificate: %v", err)
	}
	st, _ = e.w.Certificate(leaf.SerialNumber.Text(16))
	if st.ReplacedBy != newLeaf.SerialNumber.Text(16) {
		t.Errorf("ReplacedBy = %q, want %s", st.ReplacedBy, newLeaf.SerialNumber.Text(16))
	}
	// Two GETs by the test, one by acmez after each of the two downloads.
	if s := e.w.Stats(); s.OrdersReplacing != 1 || s.RenewalInfoRequests != 4 {
		t.Errorf("stats: %d replacing orders, %d renewalInfo answers; want 1 and 4", s.OrdersReplacing, s.RenewalInfoRequests)
	}

	// Revocation shows in the status, also over HTTP.
	if err := e.client.RevokeCertificate(t.Context(), e.acct, newLeaf, nil, acme.ReasonSuperseded); err != nil {
		t.Fatalf("RevokeCertificate() = %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: e.tls}}
	resp, err := hc.Get(strings.TrimSuffix(e.w.DirectoryURL, pathDirectory) + pathStatus + newLeaf.SerialNumber.Text(16))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got CertificateStatus
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || !got.Revoked || got.RevocationReason != acme.ReasonSuperseded {
		t.Errorf("status over HTTP = %+v, %v; want revoked, reason 4", got, err)
	}
}

func TestNoRenewalInfo(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{NoRenewalInfo: true}, alice)
	leaf := e.issueCert(alice, "")
	if code, _, _ := getRenewalInfo(t, e, certID(leaf)); code != 0 {
		t.Errorf("the directory offers renewalInfo")
	}
	if _, _, err := e.orderReplacing(alice, certID(leaf)); err == nil {
		t.Errorf("an order with replaces was accepted by a CA without renewalInfo")
	}
}

func TestParseRenewalWindow(t *testing.T) {
	w, err := ParseRenewalWindow("-1h, 30m")
	if err != nil || w.Start != -time.Hour || w.End != 30*time.Minute {
		t.Errorf("ParseRenewalWindow = %+v, %v", w, err)
	}
	for _, bad := range []string{"", "1h", "x,1h", "1h,y"} {
		if _, err := ParseRenewalWindow(bad); err == nil {
			t.Errorf("ParseRenewalWindow(%q) succeeded", bad)
		}
	}
}

// TestReplacesInternationalized: a certificate for an address with a
// non-ASCII local part names it in an SmtpUTF8Mailbox otherName only;
// an order for the address may replace it.
func TestReplacesInternationalized(t *testing.T) {
	t.Parallel()
	const addr = "j\u00f6rg@example.org"
	e := newEnv(t, Options{}, addr)
	leaf := e.issueCert(addr, "")
	if _, _, err := e.orderReplacing(addr, certID(leaf)); err != nil {
		t.Errorf("an order for %s replacing its certificate: %v", addr, err)
	}
}
