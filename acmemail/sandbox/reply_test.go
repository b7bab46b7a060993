package sandbox

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// TestReplyRejected sends replies that a CA must refuse and checks that
// each is refused for the right reason without touching the challenge; a
// good reply then still validates it.
func TestReplyRejected(t *testing.T) {
	t.Parallel()
	const alice, bob = "alice@example.org", "bob@example.net"
	e := newEnv(t, Options{MailTiming: MailAfterChallenge}, alice, bob)
	_, az, ch := e.order(alice)
	if _, err := e.client.InitiateChallenge(t.Context(), e.acct, ch); err != nil {
		t.Fatal(err)
	}
	cm := parseChallengeMail(t, e.fetchMail(alice, 1))
	thumb, _ := e.acct.Thumbprint()
	digest := digestFor(t, cm.tp1, ch.Token, thumb, false)
	good := composeReply(alice, ch.From, cm, digest, replyOpts{})

	sign := func(domain string, raw []byte) []byte {
		t.Helper()
		out, err := e.w.keys.sign(domain, raw)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name   string
		send   func() error
		reason string
	}{
		{"no DKIM signature", func() error {
			return e.w.Deliver(ch.From, good)
		}, "no DKIM signature"},
		{"signed by another domain", func() error {
			return e.w.Deliver(ch.From, sign("example.net", good))
		}, "not from the From domain example.org"},
		{"body altered after signing", func() error {
			signed := sign("example.org", good)
			last := "A"
			if digest[42:] == last {
				last = "B"
			}
			return e.w.Deliver(ch.From, []byte(strings.Replace(string(signed), digest, digest[:42]+last, 1)))
		}, "does not verify"},
		{"Subject not signed", func() error {
			key, err := e.w.keys.key("example.org")
			if err != nil {
				return err
			}
			var out bytes.Buffer
			err = dkim.Sign(&out, bytes.NewReader(good), &dkim.SignOptions{Domain: "example.org", Selector: dkimSelector, Signer: key, HeaderKeys: []string{"From", "To"}})
			if err != nil {
				return err
			}
			return e.w.Deliver(ch.From, out.Bytes())
		}, "does not cover the Subject field"},
		{"from another user", func() error {
			return e.submit(bob, []string{ch.From}, composeReply(bob, ch.From, cm, digest, replyOpts{}))
		}, "not from the identifier alice@example.org"},
		{"wrong token in Subject", func() error {
			return e.submit(alice, []string{ch.From}, composeReply(alice, ch.From, cm, digest, replyOpts{subject: "Re: ACME: AAAA"}))
		}, "does not carry the token-part1"},
		{"no ACME: in Subject", func() error {
			return e.submit(alice, []string{ch.From}, composeReply(alice, ch.From, cm, digest, replyOpts{subject: "hello"}))
		}, `does not contain "ACME:"`},
		{"no response block", func() error {
			return e.submit(alice, []string{ch.From}, composeReply(alice, ch.From, cm, digest, replyOpts{noBlock: true}))
		}, "has no -----BEGIN ACME RESPONSE----- line"},
		{"List-Id field", func() error {
			return e.submit(alice, []string{ch.From}, composeReply(alice, ch.From, cm, digest, replyOpts{extra: "List-Id: <x.example.org>\r\n"}))
		}, "forbids List-* fields"},
		{"two From fields", func() error {
			return e.w.Deliver(ch.From, append([]byte("From: mallory@example.org\r\n"), sign("example.org", good)...))
		}, "2 From fields"},
		{"unknown plus address", func() error {
			return e.w.Deliver("acme-challenge+nope@ca.sandbox.test", good)
		}, "does not answer any challenge"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatalf("send: %v", err)
			}
			st := e.w.Stats()
			if st.RepliesRejected != i+1 || len(st.RejectedReasons) != i+1 {
				t.Fatalf("RepliesRejected = %d, want %d", st.RepliesRejected, i+1)
			}
			if got := st.RejectedReasons[i]; !strings.Contains(got, tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", got, tt.reason)
			}
			if st.RepliesAccepted != 0 || st.ChallengesInvalid != 0 {
				t.Errorf("Stats() = %+v, want nothing accepted or failed", st)
			}
		})
	}

	// The base address works too: the CA matches the reply by In-Reply-To.
	if err := e.submit(alice, []string{e.w.CAFrom}, good); err != nil {
		t.Fatal(err)
	}
	if az = e.waitAuthz(az.Location); az.Status != "valid" {
		t.Fatalf("authorization = %q, want valid", az.Status)
	}
	// A second reply to the same challenge is refused.
	if err := e.submit(alice, []string{ch.From}, good); err != nil {
		t.Fatal(err)
	}
	st := e.w.Stats()
	if last := st.RejectedReasons[len(st.RejectedReasons)-1]; !strings.Contains(last, "already valid") {
		t.Errorf("last reason = %q, want already valid", last)
	}
}

func TestExtractDigest(t *testing.T) {
	tests := []struct {
		name, text, want, reason string
	}{
		{"one line", "-----BEGIN ACME RESPONSE-----\r\nabc_-DEF\r\n-----END ACME RESPONSE-----\r\n", "abc_-DEF", ""},
		{"split lines and padding", "hi\r\n-----BEGIN ACME RESPONSE-----\r\nLoqXcYV8q5ON\r\n  jxAjEuX0=\r\n-----END ACME RESPONSE-----\r\nbye", "LoqXcYV8q5ONjxAjEuX0=", ""},
		{"LF only", "-----BEGIN ACME RESPONSE-----\nabc\n-----END ACME RESPONSE-----\n", "abc", ""},
		{"no begin", "abc", "", "no -----BEGIN"},
		{"no end", "-----BEGIN ACME RESPONSE-----\r\nabc\r\n", "", "no -----END"},
		{"empty", "-----BEGIN ACME RESPONSE-----\r\n-----END ACME RESPONSE-----\r\n", "", "empty"},
		{"not base64url", "-----BEGIN ACME RESPONSE-----\r\nab+c\r\n-----END ACME RESPONSE-----\r\n", "", "not base64url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := extractDigest([]byte(tt.text))
			if got != tt.want || !strings.Contains(reason, tt.reason) || (tt.reason == "") != (reason == "") {
				t.Errorf("extractDigest() = %q, %q; want %q, %q", got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestParseReplyBody(t *testing.T) {
	noKeys := func(string) ([]string, error) { return nil, errors.New("no dns") }
	const head = "From: alice@example.org\r\nTo: ca@example.com\r\nSubject: =?UTF-8?Q?Re=3A_ACME=3A_abc?=\r\n\t def\r\nIn-Reply-To: <1@x> <2@y>\r\nMIME-Version: 1.0\r\n"
	tests := []struct {
		name, raw, digest, noBlock string
	}{
		{"plain", head + "Content-Type: text/plain\r\n\r\n-----BEGIN ACME RESPONSE-----\r\nAAA\r\n-----END ACME RESPONSE-----\r\n", "AAA", ""},
		{"no content type", head + "\r\n-----BEGIN ACME RESPONSE-----\r\nAAA\r\n-----END ACME RESPONSE-----\r\n", "AAA", ""},
		{"quoted-printable", head + "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n-----BEGIN ACME RESPONSE-----=0D=0AAA=\r\nA\r\n-----END ACME RESPONSE-----\r\n", "AAA", ""},
		{"base64", head + "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nLS0tLS1CRUdJTiBBQ01FIFJFU1BPTlNFLS0tLS0NCkFBQQ0KLS0tLS1FTkQgQUNNRSBSRVNQT05T\r\nRS0tLS0tDQo=\r\n", "AAA", ""},
		{"alternative", head + "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\n-----BEGIN ACME RESPONSE-----\r\nAAA\r\n-----END ACME RESPONSE-----\r\n--b--\r\n", "AAA", ""},
		{"html only", head + "Content-Type: text/html\r\n\r\n<p>x</p>\r\n", "", "wants text/plain"},
		{"mixed", head + "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n", "", "multipart/mixed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := parseReply([]byte(tt.raw), noKeys)
			if r.fatal != "" {
				t.Fatalf("fatal = %q", r.fatal)
			}
			if r.digest != tt.digest || !strings.Contains(r.noBlock, tt.noBlock) {
				t.Errorf("digest, noBlock = %q, %q; want %q, %q", r.digest, r.noBlock, tt.digest, tt.noBlock)
			}
			if r.from != "alice@example.org" || subjectToken(r.subject) != "abcdef" {
				t.Errorf("from, subject = %q, %q", r.from, r.subject)
			}
			if len(r.msgIDs) != 2 || r.msgIDs[1] != "<2@y>" {
				t.Errorf("msgIDs = %q", r.msgIDs)
			}
			if r.dkim.pass || !strings.Contains(r.dkim.reason, "no DKIM signature") {
				t.Errorf("dkim = %+v, want no signature", r.dkim)
			}
		})
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add([]byte("From: a@b.example\r\nSubject: Re: ACME: abc\r\n\r\n-----BEGIN ACME RESPONSE-----\r\nAAA\r\n-----END ACME RESPONSE-----\r\n"))
	f.Add([]byte("From: a@b.example\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nQUFB\r\n--b--\r\n"))
	f.Add([]byte("DKIM-Signature: v=1; a=rsa-sha256; d=b.example; s=x; h=from; bh=; b=\r\nFrom: a@b.example\r\n\r\n"))
	f.Add([]byte(" folded\r\n"))
	noKeys := func(string) ([]string, error) { return nil, errors.New("no dns") }
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := parseReply(raw, noKeys)
		if r.dkim.pass {
			t.Fatalf("DKIM passed without keys")
		}
		if r.digest != "" && r.noBlock != "" {
			t.Fatalf("digest %q and reason %q", r.digest, r.noBlock)
		}
		fields, body, err := splitMessage(raw)
		if err == nil {
			n := len(body)
			for _, f := range fields {
				n += len(f.raw)
			}
			if n > len(raw) {
				t.Fatalf("fields and body are longer than the message")
			}
		}
	})
}
