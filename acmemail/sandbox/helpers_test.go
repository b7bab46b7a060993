package sandbox

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/mholt/acmez/v3/acme"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func startWorld(t *testing.T, opt Options) *World {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger(t)
	}
	w, err := Start(t.Context(), opt)
	if err != nil {
		t.Fatalf("Start() = %v", err)
	}
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return w
}

func tlsConfigFor(t *testing.T, rootPEM []byte) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootPEM) {
		t.Fatal("cannot parse TLSRootsPEM")
	}
	return &tls.Config{RootCAs: pool}
}

func password(user string) string { return "pw-" + user }

// env is a world plus an acmez client with a registered account.
type env struct {
	t      *testing.T
	w      *World
	tls    *tls.Config
	client *acme.Client
	acct   acme.Account
}

func newEnv(t *testing.T, opt Options, users ...string) *env {
	t.Helper()
	w := startWorld(t, opt)
	for _, u := range users {
		if err := w.AddUser(u, password(u)); err != nil {
			t.Fatalf("AddUser(%s) = %v", u, err)
		}
	}
	e := &env{t: t, w: w, tls: tlsConfigFor(t, w.TLSRootsPEM)}
	e.client = &acme.Client{
		Directory:    w.DirectoryURL,
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: e.tls}, Timeout: 10 * time.Second},
		PollInterval: 20 * time.Millisecond,
		PollTimeout:  10 * time.Second,
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.acct = e.newAccount(key)
	return e
}

func (e *env) newAccount(key crypto.Signer) acme.Account {
	e.t.Helper()
	acct, err := e.client.NewAccount(e.t.Context(), acme.Account{
		Contact:              []string{"mailto:admin@example.org"},
		TermsOfServiceAgreed: true,
		PrivateKey:           key,
	})
	if err != nil {
		e.t.Fatalf("NewAccount() = %v", err)
	}
	return acct
}

// order creates an order for addr and returns it with its authorization.
// Fetching the authorization sends the challenge mail in
// MailAtAuthorization mode.
func (e *env) order(addr string) (acme.Order, acme.Authorization, acme.Challenge) {
	e.t.Helper()
	ctx := e.t.Context()
	o, err := e.client.NewOrder(ctx, e.acct, acme.Order{Identifiers: []acme.Identifier{{Type: "email", Value: addr}}})
	if err != nil {
		e.t.Fatalf("NewOrder(%s) = %v", addr, err)
	}
	if len(o.Authorizations) != 1 {
		e.t.Fatalf("order has %d authorizations, want 1", len(o.Authorizations))
	}
	az, err := e.client.GetAuthorization(ctx, e.acct, o.Authorizations[0])
	if err != nil {
		e.t.Fatalf("GetAuthorization() = %v", err)
	}
	if len(az.Challenges) != 1 || az.Challenges[0].Type != "email-reply-00" {
		e.t.Fatalf("challenges = %+v, want one email-reply-00", az.Challenges)
	}
	return o, az, az.Challenges[0]
}

func hostOf(u string) string {
	_, h, _ := strings.Cut(u, "://")
	return h
}

// fetchMail waits until the INBOX of user holds at least n messages and
// returns the n-th, read over IMAPS.
func (e *env) fetchMail(user string, n uint32) []byte {
	e.t.Helper()
	c, err := imapclient.DialTLS(hostOf(e.w.IMAPURL), &imapclient.Options{TLSConfig: e.tls})
	if err != nil {
		e.t.Fatalf("imap dial: %v", err)
	}
	defer c.Close()
	if err := c.Login(user, password(user)).Wait(); err != nil {
		e.t.Fatalf("imap login: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			e.t.Fatalf("imap status: %v", err)
		}
		if *st.NumMessages >= n {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("INBOX of %s has %d messages, want %d", user, *st.NumMessages, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		e.t.Fatalf("imap select: %v", err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(n), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 {
		e.t.Fatalf("imap fetch = %d messages, %v", len(msgs), err)
	}
	return msgs[0].FindBodySection(&imap.FetchItemBodySection{})
}

// challengeMail is what a test client learns from the challenge email.
type challengeMail struct {
	raw       []byte
	header    mail.Header
	tp1       string
	messageID string
}

func parseChallengeMail(t *testing.T, raw []byte) challengeMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("challenge mail: %v", err)
	}
	subj := m.Header.Get("Subject")
	tp1, ok := strings.CutPrefix(subj, "ACME: ")
	if !ok {
		t.Fatalf("challenge Subject = %q, want ACME: <token>", subj)
	}
	return challengeMail{raw: raw, header: m.Header, tp1: tp1, messageID: m.Header.Get("Message-ID")}
}

// digestFor is the test's own computation of the response digest.
func digestFor(t *testing.T, tp1, tp2, thumbprint string, octet bool) string {
	t.Helper()
	token := tp1 + tp2
	if octet {
		a, err1 := base64.RawURLEncoding.DecodeString(tp1)
		b, err2 := base64.RawURLEncoding.DecodeString(tp2)
		if err1 != nil || err2 != nil {
			t.Fatalf("decode tokens: %v %v", err1, err2)
		}
		token = base64.RawURLEncoding.EncodeToString(append(a, b...))
	}
	sum := sha256.Sum256([]byte(token + "." + thumbprint))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// replyOpts shape a hand-written response email.
type replyOpts struct {
	split   bool   // digest on two lines
	subject string // overrides "Re: ACME: <tp1>"
	extra   string // extra header lines, CRLF-terminated
	noBlock bool
}

func composeReply(from, to string, ch challengeMail, digest string, o replyOpts) []byte {
	var b strings.Builder
	subject := "Re: ACME: " + ch.tp1
	if o.subject != "" {
		subject = o.subject
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\n", from, to, subject)
	if ch.messageID != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\nReferences: %s\r\n", ch.messageID, ch.messageID)
	}
	b.WriteString(o.extra)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n")
	if !o.noBlock {
		b.WriteString("-----BEGIN ACME RESPONSE-----\r\n")
		if o.split {
			b.WriteString(digest[:20] + "\r\n" + digest[20:] + "\r\n")
		} else {
			b.WriteString(digest + "\r\n")
		}
		b.WriteString("-----END ACME RESPONSE-----\r\n")
	} else {
		b.WriteString("Thanks!\r\n")
	}
	return []byte(b.String())
}

// submit sends raw through the implicit-TLS submission listener with AUTH
// PLAIN as user.
func (e *env) submit(user string, to []string, raw []byte) error {
	c, err := smtp.DialTLS(hostOf(e.w.SMTPURL), e.tls)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, password(user))); err != nil {
		return err
	}
	if err := c.SendMail(user, to, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

// waitAuthz polls the authorization until it leaves pending.
func (e *env) waitAuthz(url string) acme.Authorization {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		az, err := e.client.GetAuthorization(e.t.Context(), e.acct, url)
		if err != nil {
			e.t.Fatalf("GetAuthorization() = %v", err)
		}
		if az.Status != "pending" || time.Now().After(deadline) {
			return az
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newCSR(t *testing.T, key crypto.Signer, emails []string, mutate func(*x509.CertificateRequest)) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{EmailAddresses: emails}
	if slices.ContainsFunc(emails, internationalLocal) { // SmtpUTF8Mailbox, which x509 does not write
		san, err := marshalSAN(emails)
		if err != nil {
			t.Fatal(err)
		}
		tmpl = &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: oidExtSubjectAltName, Value: san}}}
	}
	if mutate != nil {
		mutate(tmpl)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest() = %v", err)
	}
	return der
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}
