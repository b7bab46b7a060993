package sandbox

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/mholt/acmez/v3/acme"
)

func mustKey(t *testing.T, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var tokenPatterns = map[int]*regexp.Regexp{
	22: regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`),
	32: regexp.MustCompile(`^[A-Za-z0-9]{32}$`),
	43: regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`),
}

// TestIssue runs the whole RFC 8823 flow against every server imitation:
// account, order, challenge email over IMAP, a hand-written reply through
// SMTP submission, challenge POST, finalize, download, certificate checks.
func TestIssue(t *testing.T) {
	tests := []struct {
		name       string
		opt        Options
		acctKey    string
		certKey    string
		split      bool
		wantLength int
	}{
		{"secsy/after-challenge/43/string", Options{MailTiming: MailAfterChallenge}, "p256", "p256", true, 43},
		{"acme2certifier/at-authz/32/string", Options{MailTiming: MailAtAuthorization, TokenLength: 32, OmitAutoSubmitted: true, ValidationWindow: 2 * time.Second}, "p256", "rsa", false, 32},
		{"castle/at-authz/22/octet", Options{MailTiming: MailAtAuthorization, TokenLength: 22, Join: "octet"}, "p384", "p256", false, 22},
		{"after-challenge/22/octet", Options{MailTiming: MailAfterChallenge, TokenLength: 22, Join: "octet"}, "rsa", "p256", true, 22},
		{"at-authz/43/octet", Options{MailTiming: MailAtAuthorization, TokenLength: 43, Join: "octet"}, "p256", "p256", true, 43},
		{"after-challenge/32/octet", Options{MailTiming: MailAfterChallenge, TokenLength: 32, Join: "octet"}, "p256", "p256", false, 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const alice = "alice@example.org"
			e := newEnv(t, tt.opt, alice)
			if tt.acctKey != "p256" {
				e.acct = e.newAccount(mustKey(t, tt.acctKey))
			}
			ctx := e.t.Context()
			o, az, ch := e.order(alice)

			if !tokenPatterns[tt.wantLength].MatchString(ch.Token) {
				t.Errorf("token-part2 = %q, want %d characters of the configured alphabet", ch.Token, tt.wantLength)
			}
			if !strings.HasPrefix(ch.From, "acme-challenge+") || !strings.HasSuffix(ch.From, "@ca.sandbox.test") {
				t.Errorf("challenge from = %q, want acme-challenge+...@ca.sandbox.test", ch.From)
			}

			if tt.opt.MailTiming == MailAfterChallenge {
				if n := e.w.Stats().ChallengesSent; n != 0 {
					t.Fatalf("ChallengesSent before the POST = %d, want 0", n)
				}
				if _, err := e.client.InitiateChallenge(ctx, e.acct, ch); err != nil {
					t.Fatalf("InitiateChallenge() = %v", err)
				}
			}
			cm := parseChallengeMail(t, e.fetchMail(alice, 1))
			checkChallengeMail(t, e.w, cm, ch.From, alice, !tt.opt.OmitAutoSubmitted)
			if !tokenPatterns[tt.wantLength].MatchString(cm.tp1) {
				t.Errorf("token-part1 = %q, want %d characters of the configured alphabet", cm.tp1, tt.wantLength)
			}

			thumb, err := e.acct.Thumbprint()
			if err != nil {
				t.Fatal(err)
			}
			digest := digestFor(t, cm.tp1, ch.Token, thumb, tt.opt.Join == "octet")
			reply := composeReply(alice, ch.From, cm, digest, replyOpts{split: tt.split})
			if err := e.submit(alice, []string{ch.From}, reply); err != nil {
				t.Fatalf("submit reply: %v", err)
			}
			if tt.opt.MailTiming == MailAtAuthorization {
				if _, err := e.client.InitiateChallenge(ctx, e.acct, ch); err != nil {
					t.Fatalf("InitiateChallenge() = %v", err)
				}
			}
			az = e.waitAuthz(az.Location)
			if az.Status != "valid" {
				t.Fatalf("authorization status = %q (%+v), want valid", az.Status, az.Challenges[0].Error)
			}

			certKey := mustKey(t, tt.certKey)
			o, err = e.client.FinalizeOrder(ctx, e.acct, o, newCSR(t, certKey, []string{alice}, nil))
			if err != nil {
				t.Fatalf("FinalizeOrder() = %v", err)
			}
			chains, err := e.client.GetCertificateChain(ctx, e.acct, o.Certificate)
			if err != nil {
				t.Fatalf("GetCertificateChain() = %v", err)
			}
			leaf := checkChain(t, e.w, chains[0].ChainPEM, alice, certKey)
			wantKU := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement
			if tt.certKey == "rsa" {
				wantKU = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
			}
			if leaf.KeyUsage != wantKU {
				t.Errorf("KeyUsage = %b, want %b", leaf.KeyUsage, wantKU)
			}

			st := e.w.Stats()
			if st.ChallengesSent != 1 || st.RepliesReceived != 1 || st.RepliesAccepted != 1 || st.RepliesRejected != 0 ||
				st.CertificatesIssued != 1 || st.Orders != 1 || st.ChallengesValid != 1 || st.MessagesSubmitted != 1 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

// checkChallengeMail checks the challenge email against RFC 8823 §3.1.
func checkChallengeMail(t *testing.T, w *World, cm challengeMail, from, to string, autoSubmitted bool) {
	t.Helper()
	if got := cm.header.Get("From"); got != from {
		t.Errorf("challenge From = %q, want %q", got, from)
	}
	if got := cm.header.Get("To"); got != to {
		t.Errorf("challenge To = %q, want %q", got, to)
	}
	if cm.messageID == "" || cm.header.Get("Date") == "" {
		t.Errorf("challenge has no Message-ID or Date")
	}
	got := cm.header.Get("Auto-Submitted")
	if autoSubmitted && got != "auto-generated; type=acme" {
		t.Errorf("Auto-Submitted = %q, want auto-generated; type=acme", got)
	}
	if !autoSubmitted && got != "" {
		t.Errorf("Auto-Submitted = %q, want none", got)
	}
	if ar := cm.header.Get("Authentication-Results"); !strings.Contains(ar, "dkim=pass header.d=ca.sandbox.test") {
		t.Errorf("Authentication-Results = %q, want dkim=pass for ca.sandbox.test", ar)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(cm.raw), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) { return w.LookupTXT(t.Context(), name) },
	})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil {
		t.Fatalf("challenge DKIM = %+v, %v; want one valid signature", verifs, err)
	}
	if verifs[0].Domain != "ca.sandbox.test" {
		t.Errorf("challenge DKIM d= %q, want ca.sandbox.test", verifs[0].Domain)
	}
	want := []string{"From", "To", "Subject", "Date", "Message-ID", "Content-Type", "Content-Transfer-Encoding"}
	if autoSubmitted {
		want = append(want, "Auto-Submitted")
	}
	for _, h := range want {
		if !slices.ContainsFunc(verifs[0].HeaderKeys, func(k string) bool { return strings.EqualFold(k, h) }) {
			t.Errorf("challenge DKIM h= %v does not cover %s", verifs[0].HeaderKeys, h)
		}
	}
}

// checkChain parses a PEM chain (leaf, intermediate), verifies it to the
// issuer root for emailProtection and checks the leaf.
func checkChain(t *testing.T, w *World, chainPEM []byte, email string, key crypto.Signer) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parse chain: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		t.Fatalf("chain has %d certificates, want 2 (leaf, intermediate)", len(certs))
	}
	leaf, inter := certs[0], certs[1]
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(w.IssuerRootPEM)
	interPool := x509.NewCertPool()
	interPool.AddCert(inter)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: interPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}); err != nil {
		t.Errorf("chain does not verify to IssuerRootPEM: %v", err)
	}
	if !slices.Equal(leafEmails(leaf), []string{email}) || len(leaf.DNSNames) > 0 || internationalLocal(email) && len(leaf.EmailAddresses) > 0 {
		t.Errorf("SANs = %v (rfc822Names %v) %v, want %s only, as an SmtpUTF8Mailbox if it is internationalized", leafEmails(leaf), leaf.EmailAddresses, leaf.DNSNames, email)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}) {
		t.Errorf("ExtKeyUsage = %v, want emailProtection", leaf.ExtKeyUsage)
	}
	if !bytes.Equal(leaf.AuthorityKeyId, inter.SubjectKeyId) || len(leaf.AuthorityKeyId) == 0 {
		t.Errorf("AuthorityKeyId = %x, want the intermediate's %x", leaf.AuthorityKeyId, inter.SubjectKeyId)
	}
	if leaf.IsCA || leaf.SerialNumber.Sign() <= 0 {
		t.Errorf("leaf IsCA = %v, serial %v", leaf.IsCA, leaf.SerialNumber)
	}
	if !sameKey(leaf.PublicKey, key.Public()) {
		t.Errorf("leaf key is not the CSR key")
	}
	if d := time.Until(leaf.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("leaf lifetime ends in %v, want about 90 days", d)
	}
	return leaf
}

func problemOf(t *testing.T, err error) acme.Problem {
	t.Helper()
	var p acme.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not an ACME problem", err)
	}
	return p
}

// TestWrongDigest: a wrong digest makes the challenge, the authorization
// and the order invalid at once.
func TestWrongDigest(t *testing.T) {
	for _, timing := range []MailTiming{MailAtAuthorization, MailAfterChallenge} {
		t.Run(timing.String(), func(t *testing.T) {
			t.Parallel()
			const alice = "alice@example.org"
			e := newEnv(t, Options{MailTiming: timing}, alice)
			ctx := t.Context()
			o, az, ch := e.order(alice)
			if timing == MailAfterChallenge {
				if _, err := e.client.InitiateChallenge(ctx, e.acct, ch); err != nil {
					t.Fatal(err)
				}
			}
			cm := parseChallengeMail(t, e.fetchMail(alice, 1))
			thumb, _ := e.acct.Thumbprint()
			// The other join mode gives a different digest for 43-char tokens.
			wrong := digestFor(t, cm.tp1, ch.Token, thumb, true)
			if err := e.submit(alice, []string{ch.From}, composeReply(alice, ch.From, cm, wrong, replyOpts{})); err != nil {
				t.Fatal(err)
			}
			if timing == MailAtAuthorization {
				got, err := e.client.InitiateChallenge(ctx, e.acct, ch)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != "invalid" {
					t.Errorf("challenge POST status = %q, want invalid at once", got.Status)
				}
			}
			az = e.waitAuthz(az.Location)
			if az.Status != "invalid" {
				t.Fatalf("authorization = %q, want invalid", az.Status)
			}
			p := az.Challenges[0].Error
			if p == nil || p.Type != acme.ProblemTypeIncorrectResponse || !strings.Contains(p.Detail, "as strings") {
				t.Errorf("challenge error = %+v, want incorrectResponse naming the string join", p)
			}
			o, err := e.client.GetOrder(ctx, e.acct, o)
			if err != nil {
				t.Fatal(err)
			}
			if o.Status != "invalid" || o.Error == nil {
				t.Errorf("order = %q %+v, want invalid with an error", o.Status, o.Error)
			}
			if _, err := e.client.FinalizeOrder(ctx, e.acct, o, newCSR(t, mustKey(t, "p256"), []string{alice}, nil)); err == nil {
				t.Errorf("finalize of an invalid order succeeded")
			}
			if st := e.w.Stats(); st.RepliesRejected != 1 || st.ChallengesInvalid != 1 || st.RepliesAccepted != 0 {
				t.Errorf("Stats() = %+v", st)
			}
		})
	}
}

// TestValidationWindow: without a reply the challenge fails once the window
// after the POST has passed; a reply after that is refused.
func TestValidationWindow(t *testing.T) {
	for _, timing := range []MailTiming{MailAtAuthorization, MailAfterChallenge} {
		t.Run(timing.String(), func(t *testing.T) {
			t.Parallel()
			const alice = "alice@example.org"
			e := newEnv(t, Options{MailTiming: timing, ValidationWindow: 300 * time.Millisecond}, alice)
			_, az, ch := e.order(alice)
			start := time.Now()
			if _, err := e.client.InitiateChallenge(t.Context(), e.acct, ch); err != nil {
				t.Fatal(err)
			}
			az = e.waitAuthz(az.Location)
			if az.Status != "invalid" {
				t.Fatalf("authorization = %q, want invalid", az.Status)
			}
			if d := time.Since(start); d < 300*time.Millisecond {
				t.Errorf("challenge failed after %v, before the window closed", d)
			}
			p := az.Challenges[0].Error
			if p == nil || p.Type != acme.ProblemTypeIncorrectResponse || !strings.Contains(p.Detail, "no valid response") {
				t.Errorf("challenge error = %+v, want incorrectResponse about the missing response", p)
			}
			cm := parseChallengeMail(t, e.fetchMail(alice, 1))
			thumb, _ := e.acct.Thumbprint()
			late := composeReply(alice, ch.From, cm, digestFor(t, cm.tp1, ch.Token, thumb, false), replyOpts{})
			if err := e.submit(alice, []string{ch.From}, late); err != nil {
				t.Fatal(err)
			}
			st := e.w.Stats()
			if st.RepliesRejected != 1 || !strings.Contains(st.RejectedReasons[0], "already invalid") {
				t.Errorf("Stats() = %+v, want the late reply refused", st)
			}
		})
	}
}

// TestReplyWithinWindow imitates acme2certifier: the client POSTs first and
// replies a moment later, still inside the window.
func TestReplyWithinWindow(t *testing.T) {
	t.Parallel()
	const alice = "alice@example.org"
	e := newEnv(t, Options{MailTiming: MailAtAuthorization, TokenLength: 32, ValidationWindow: 5 * time.Second}, alice)
	_, az, ch := e.order(alice)
	cm := parseChallengeMail(t, e.fetchMail(alice, 1))
	got, err := e.client.InitiateChallenge(t.Context(), e.acct, ch)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "processing" {
		t.Errorf("challenge POST status = %q, want processing", got.Status)
	}
	thumb, _ := e.acct.Thumbprint()
	if err := e.submit(alice, []string{ch.From}, composeReply(alice, ch.From, cm, digestFor(t, cm.tp1, ch.Token, thumb, false), replyOpts{})); err != nil {
		t.Fatal(err)
	}
	if az = e.waitAuthz(az.Location); az.Status != "valid" {
		t.Fatalf("authorization = %q, want valid", az.Status)
	}
}

// TestConcurrentOrders runs several clients against one world at once.
func TestConcurrentOrders(t *testing.T) {
	t.Parallel()
	users := []string{"u1@example.org", "u2@example.org", "u3@example.net", "u4@example.com"}
	base := newEnv(t, Options{MailTiming: MailAtAuthorization, TokenLength: 22, Join: "octet"}, users...)
	errs := make(chan error, len(users))
	for _, u := range users {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					errs <- fmt.Errorf("%s: %v", u, r)
				}
			}()
			errs <- runFlow(base, u)
		}()
	}
	for range users {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if st := base.w.Stats(); st.CertificatesIssued != len(users) || st.RepliesAccepted != len(users) {
		t.Errorf("Stats() = %+v", st)
	}
}

// runFlow obtains a certificate for user with a fresh account, without
// calling t.Fatal (it runs in its own goroutine).
func runFlow(base *env, user string) error {
	ctx := base.t.Context()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	acct, err := base.client.NewAccount(ctx, acme.Account{TermsOfServiceAgreed: true, PrivateKey: key})
	if err != nil {
		return err
	}
	o, err := base.client.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{{Type: "email", Value: user}}})
	if err != nil {
		return err
	}
	az, err := base.client.GetAuthorization(ctx, acct, o.Authorizations[0])
	if err != nil {
		return err
	}
	ch := az.Challenges[0]
	raw, err := fetchFirst(base, user)
	if err != nil {
		return err
	}
	subj := regexp.MustCompile(`(?m)^Subject: ACME: (\S+)\r$`).FindSubmatch(raw)
	if subj == nil {
		return fmt.Errorf("%s: no challenge subject", user)
	}
	cm := challengeMail{tp1: string(subj[1])}
	thumb, _ := acct.Thumbprint()
	dec := func(s string) []byte { b, _ := base64.RawURLEncoding.DecodeString(s); return b }
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(append(dec(cm.tp1), dec(ch.Token)...)) + "." + thumb))
	if err := base.submit(user, []string{ch.From}, composeReply(user, ch.From, cm, base64.RawURLEncoding.EncodeToString(sum[:]), replyOpts{})); err != nil {
		return err
	}
	if _, err := base.client.InitiateChallenge(ctx, acct, ch); err != nil {
		return err
	}
	if az, err = base.client.PollAuthorization(ctx, acct, az); err != nil {
		return err
	}
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{EmailAddresses: []string{user}}, certKey)
	if err != nil {
		return err
	}
	if o, err = base.client.FinalizeOrder(ctx, acct, o, der); err != nil {
		return err
	}
	_, err = base.client.GetCertificateChain(ctx, acct, o.Certificate)
	return err
}

// fetchFirst reads the first message of user's INBOX over IMAP STARTTLS.
func fetchFirst(e *env, user string) ([]byte, error) {
	c, err := imapclient.DialStartTLS(hostOf(e.w.IMAPStartTLSURL), &imapclient.Options{TLSConfig: e.tls})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(user, password(user)).Wait(); err != nil {
		return nil, err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		return nil, err
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("fetch %s: %d messages, %v", user, len(msgs), err)
	}
	return msgs[0].FindBodySection(&imap.FetchItemBodySection{}), nil
}
